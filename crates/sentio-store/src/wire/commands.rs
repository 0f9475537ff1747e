//! Commands between a cloud and an edge: the cloud sends a command for a device of the edge
//! on `edges/<id>/down/commands`, the edge sends the state of those commands on
//! `edges/<id>/up/commands`; both as the same record (the version byte, then a JSON array),
//! the command as it is now, under the cloud's id.

use sentio_core::{Command, CommandId, CommandState, DeviceId};

use super::WireError;
use super::twins::{decode_json, encode_json};

/// One command as it crosses the link.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandRecord {
    id: String,
    device: String,
    name: String,
    params: serde_json::Value,
    created_ms: i64,
    expires_ms: i64,
    state: String,
    delivered_ms: Option<i64>,
    replied_ms: Option<i64>,
    reply: Option<serde_json::Value>,
}

/// Encodes `commands` as they are now.
pub fn encode_commands(commands: &[Command]) -> Vec<u8> {
    let records: Vec<CommandRecord> = commands
        .iter()
        .map(|c| CommandRecord {
            id: c.id.to_string(),
            device: c.device.to_string(),
            name: c.name.clone(),
            params: c.params.clone(),
            created_ms: c.created_ms,
            expires_ms: c.expires_ms,
            state: c.state.as_str().to_string(),
            delivered_ms: c.delivered_ms,
            replied_ms: c.replied_ms,
            reply: c.reply.clone(),
        })
        .collect();
    encode_json(&records)
}

/// Decodes [`encode_commands`], checking every id and state.
pub fn decode_commands(payload: &[u8]) -> Result<Vec<Command>, WireError> {
    decode_json::<CommandRecord>(payload, "commands")?
        .into_iter()
        .map(|r| {
            Ok(Command {
                id: CommandId::parse(&r.id).map_err(|e| WireError(format!("command id: {e}")))?,
                device: DeviceId::parse(&r.device)
                    .map_err(|e| WireError(format!("device id: {e}")))?,
                state: CommandState::parse(&r.state)
                    .ok_or_else(|| WireError(format!("command state {:?}", r.state)))?,
                name: r.name,
                params: r.params,
                created_ms: r.created_ms,
                expires_ms: r.expires_ms,
                delivered_ms: r.delivered_ms,
                replied_ms: r.replied_ms,
                reply: r.reply,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_bad_ones_are_errors() {
        let c = Command {
            id: CommandId::parse("c-1").unwrap(),
            device: DeviceId::parse("d1").unwrap(),
            name: "light".into(),
            params: serde_json::json!({"on": true}),
            created_ms: 1,
            expires_ms: 2,
            state: CommandState::Succeeded,
            delivered_ms: Some(1),
            replied_ms: Some(2),
            reply: Some(serde_json::json!({"status": "ok"})),
        };
        let bytes = encode_commands(std::slice::from_ref(&c));
        assert_eq!(decode_commands(&bytes).unwrap(), vec![c]);
        for bad in [
            &b""[..],
            b"\x02[]",
            b"\x01[{\"id\":\"C/#\"}]",
            b"\x01not json",
        ] {
            assert!(decode_commands(bad).is_err(), "{bad:?}");
        }
        let wrong_state = String::from_utf8(bytes)
            .unwrap()
            .replace("succeeded", "done");
        assert!(decode_commands(wrong_state.as_bytes()).is_err());
    }
}
