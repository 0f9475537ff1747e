//! The lines of a device export (`GET /api/v1/devices/<id>/export`, JSON lines), tagged by
//! `type`.

use std::collections::BTreeMap;

use sentio_store::{Device, Resolution, RollupRow};
use serde::Serialize;

use super::AlertDto;

/// One line of a JSON lines export.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine<'a> {
    /// The device's record (first line).
    Device(DeviceRecord),
    /// One raw point.
    Point {
        /// Metric.
        metric: &'a str,
        /// Time (ms).
        ts_ms: i64,
        /// Value.
        value: f64,
    },
    /// One rollup bucket.
    Rollup {
        /// The bucket's statistics.
        #[serde(flatten)]
        row: RollupDto,
        /// Metric.
        metric: &'a str,
        /// `1m` or `1h`.
        resolution: &'static str,
    },
    /// One text event.
    Event {
        /// Metric.
        metric: &'a str,
        /// Time (ms).
        ts_ms: i64,
        /// The text.
        text: &'a str,
    },
    /// One alert, with its explanations and feedback (boxed: much larger than the other lines).
    Alert(Box<AlertDto>),
}

impl ExportLine<'_> {
    /// The line, with its newline.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("export lines serialise");
        s.push('\n');
        s
    }
}

/// A device's record as the export shows it (the registry's fields, without the secret).
#[derive(Debug, Serialize)]
pub struct DeviceRecord {
    /// Device id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Registration time (ms).
    pub created_ms: i64,
    /// Time of the last accepted point or connection (ms).
    pub last_seen_ms: Option<i64>,
    /// How many payloads or parts of payloads were refused.
    pub rejected_count: u64,
    /// The latest refusal, with its reason.
    pub last_rejection: Option<String>,
    /// When the latest refusal happened (ms).
    pub last_rejection_ms: Option<i64>,
}

impl From<&Device> for DeviceRecord {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            kind: d.kind.clone(),
            labels: d.labels.clone(),
            created_ms: d.created_ms,
            last_seen_ms: d.last_seen_ms,
            rejected_count: d.rejected_count,
            last_rejection: d.last_rejection.clone(),
            last_rejection_ms: d.last_rejection_ms,
        }
    }
}

/// The statistics of a series over one rollup bucket.
#[derive(Debug, Serialize)]
pub struct RollupDto {
    /// Start of the bucket (ms).
    pub bucket_ms: i64,
    /// Points in the bucket.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// `[ts_ms, value]` of the first point.
    pub first: (i64, f64),
    /// `[ts_ms, value]` of the last point.
    pub last: (i64, f64),
}

impl From<&RollupRow> for RollupDto {
    fn from(r: &RollupRow) -> Self {
        Self {
            bucket_ms: r.bucket_ms,
            count: r.count,
            sum: r.sum,
            min: r.min,
            max: r.max,
            first: r.first,
            last: r.last,
        }
    }
}

impl<'a> ExportLine<'a> {
    /// A rollup line of `metric` at `resolution`.
    pub fn rollup(metric: &'a str, resolution: Resolution, row: &RollupRow) -> Self {
        Self::Rollup {
            row: row.into(),
            metric,
            resolution: resolution.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::alert::tests::open_alert;
    use crate::dto::tests::check;

    #[test]
    fn lines() {
        let device = Device {
            id: "pump-1".into(),
            name: "Pump 1".into(),
            kind: "pump".into(),
            labels: BTreeMap::from([("site".to_string(), "plant-1".to_string())]),
            created_ms: 1_700_000_000_000,
            last_seen_ms: Some(1_700_000_100_000),
            rejected_count: 2,
            last_rejection: Some("bad JSON".into()),
            last_rejection_ms: None,
        };
        check(
            ExportLine::Device((&device).into()),
            r#"{"type":"device","id":"pump-1","name":"Pump 1","kind":"pump","labels":{"site":"plant-1"},"created_ms":1700000000000,"last_seen_ms":1700000100000,"rejected_count":2,"last_rejection":"bad JSON","last_rejection_ms":null}"#,
        );
        check(
            ExportLine::Point {
                metric: "temperature",
                ts_ms: 5,
                value: 21.5,
            },
            r#"{"type":"point","metric":"temperature","ts_ms":5,"value":21.5}"#,
        );
        let row = RollupRow {
            bucket_ms: 60_000,
            count: 2,
            sum: 3.0,
            min: 1.0,
            max: 2.0,
            first: (60_001, 1.0),
            last: (60_002, 2.0),
        };
        check(
            ExportLine::rollup("temperature", Resolution::Minute, &row),
            r#"{"type":"rollup","bucket_ms":60000,"count":2,"sum":3.0,"min":1.0,"max":2.0,"first":[60001,1.0],"last":[60002,2.0],"metric":"temperature","resolution":"1m"}"#,
        );
        check(
            ExportLine::Event {
                metric: "status",
                ts_ms: 7,
                text: "door open",
            },
            r#"{"type":"event","metric":"status","ts_ms":7,"text":"door open"}"#,
        );
        let alert = serde_json::to_string(&AlertDto::from(&open_alert())).unwrap();
        check(
            ExportLine::Alert(Box::new(AlertDto::from(&open_alert()))),
            &format!(r#"{{"type":"alert",{}"#, &alert[1..]),
        );
        assert_eq!(
            ExportLine::Point {
                metric: "m",
                ts_ms: 1,
                value: 2.0
            }
            .to_line(),
            "{\"type\":\"point\",\"metric\":\"m\",\"ts_ms\":1,\"value\":2.0}\n"
        );
    }
}
