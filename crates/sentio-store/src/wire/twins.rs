//! Twins between a cloud and an edge: the cloud sends the desired document of a device of the
//! edge, whole, with its version, on `edges/<id>/down/twins`; the edge sends its devices'
//! reported documents, whole, with the time of the report and the cloud's version it holds,
//! on `edges/<id>/up/twins`. Both as the version byte, then a JSON array (as commands).

use sentio_core::DeviceId;

use super::{VERSION, WireError};

/// A device's desired document as the cloud sends it down.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRecord {
    /// The device (of the edge).
    pub device: DeviceId,
    /// The cloud's version of the document.
    pub version: u64,
    /// The whole desired document (a JSON object).
    pub desired: serde_json::Value,
}

/// A device's reported document as the edge sends it up.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedRecord {
    /// The device (of the edge).
    pub device: DeviceId,
    /// The whole reported document (a JSON object).
    pub reported: serde_json::Value,
    /// When the device last reported (ms, the edge's clock), if ever.
    pub reported_ms: Option<i64>,
    /// The cloud's version of the desired document the edge applied last, if any.
    pub desired_version: Option<u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DesiredJson {
    device: String,
    version: u64,
    desired: serde_json::Value,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportedJson {
    device: String,
    reported: serde_json::Value,
    reported_ms: Option<i64>,
    desired_version: Option<u64>,
}

/// The version byte, then `records` as a JSON array.
pub(super) fn encode_json<T: serde::Serialize>(records: &[T]) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(serde_json::to_vec(records).expect("records serialise"));
    out
}

/// Reads [`encode_json`]; `what` names the records in an error.
pub(super) fn decode_json<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    what: &str,
) -> Result<Vec<T>, WireError> {
    let Some((&VERSION, json)) = payload.split_first() else {
        return Err(WireError(format!("{what}: unknown version")));
    };
    serde_json::from_slice(json).map_err(|e| WireError(format!("{what}: {e}")))
}

fn device(id: &str) -> Result<DeviceId, WireError> {
    DeviceId::parse(id).map_err(|e| WireError(format!("device id: {e}")))
}

fn object(doc: serde_json::Value, what: &str) -> Result<serde_json::Value, WireError> {
    if doc.is_object() {
        Ok(doc)
    } else {
        Err(WireError(format!("{what}: not a JSON object")))
    }
}

/// Encodes desired documents for `down/twins`.
pub fn encode_desired(records: &[DesiredRecord]) -> Vec<u8> {
    let json: Vec<DesiredJson> = records
        .iter()
        .map(|r| DesiredJson {
            device: r.device.to_string(),
            version: r.version,
            desired: r.desired.clone(),
        })
        .collect();
    encode_json(&json)
}

/// Decodes [`encode_desired`], checking every device id and document.
pub fn decode_desired(payload: &[u8]) -> Result<Vec<DesiredRecord>, WireError> {
    decode_json::<DesiredJson>(payload, "desired twins")?
        .into_iter()
        .map(|r| {
            Ok(DesiredRecord {
                device: device(&r.device)?,
                version: r.version,
                desired: object(r.desired, "desired")?,
            })
        })
        .collect()
}

/// Encodes reported documents for `up/twins`.
pub fn encode_reported(records: &[ReportedRecord]) -> Vec<u8> {
    let json: Vec<ReportedJson> = records
        .iter()
        .map(|r| ReportedJson {
            device: r.device.to_string(),
            reported: r.reported.clone(),
            reported_ms: r.reported_ms,
            desired_version: r.desired_version,
        })
        .collect();
    encode_json(&json)
}

/// Decodes [`encode_reported`], checking every device id and document.
pub fn decode_reported(payload: &[u8]) -> Result<Vec<ReportedRecord>, WireError> {
    decode_json::<ReportedJson>(payload, "reported twins")?
        .into_iter()
        .map(|r| {
            Ok(ReportedRecord {
                device: device(&r.device)?,
                reported: object(r.reported, "reported")?,
                reported_ms: r.reported_ms,
                desired_version: r.desired_version,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn twins_round_trip_and_bad_ones_are_errors() {
        let down = DesiredRecord {
            device: DeviceId::parse("lamp-1").unwrap(),
            version: 4,
            desired: json!({"level": 3}),
        };
        let bytes = encode_desired(std::slice::from_ref(&down));
        assert_eq!(decode_desired(&bytes).unwrap(), vec![down]);
        let up = ReportedRecord {
            device: DeviceId::parse("lamp-1").unwrap(),
            reported: json!({"level": 3}),
            reported_ms: Some(5),
            desired_version: Some(4),
        };
        let bytes = encode_reported(std::slice::from_ref(&up));
        assert_eq!(decode_reported(&bytes).unwrap(), vec![up]);
        for bad in [
            &b""[..],
            b"\x02[]",
            b"\x01not json",
            b"\x01[{\"device\":\"a/#\",\"version\":1,\"desired\":{}}]",
            b"\x01[{\"device\":\"a\",\"version\":1,\"desired\":[1]}]",
            b"\x01[{\"device\":\"a\",\"version\":1,\"desired\":{},\"x\":1}]",
        ] {
            assert!(decode_desired(bad).is_err(), "{bad:?}");
        }
        assert!(decode_reported(b"\x01[{\"device\":\"a\",\"reported\":3}]").is_err());
    }
}
