//! Commands and twins on the wire: `POST /api/v1/devices/<id>/commands` bodies, commands as
//! listed, and twins (`GET|PATCH /api/v1/devices/<id>/twin`).

use sentio_core::time::{format_time, parse_duration_ms};
use sentio_core::{Command, Twin};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// A time to live: seconds (a number) or a duration (`"30s"`, `"10m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    /// Seconds.
    Seconds(u64),
    /// A duration such as `30s`.
    Spelt(String),
}

impl Ttl {
    /// In milliseconds.
    pub fn ms(&self) -> Result<i64, ApiError> {
        match self {
            Self::Seconds(s) => Ok(i64::try_from(*s).unwrap_or(i64::MAX).saturating_mul(1000)),
            Self::Spelt(s) => parse_duration_ms(s).map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_command",
                    format!("ttl: {e}"),
                )
            }),
        }
    }
}

/// `POST /api/v1/devices/<id>/commands` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    pub name: String,
    #[serde(default)]
    pub params: serde_json::Value,
    pub ttl: Option<Ttl>,
}

/// A command as the API shows it.
#[derive(Debug, Serialize)]
pub struct CommandDto {
    pub id: String,
    pub device: String,
    pub name: String,
    pub params: serde_json::Value,
    pub state: &'static str,
    pub created_ms: i64,
    /// `created_ms` as RFC 3339.
    pub created: String,
    pub expires_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replied_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<serde_json::Value>,
    pub topic: String,
}

impl From<&Command> for CommandDto {
    fn from(c: &Command) -> Self {
        Self {
            id: c.id.to_string(),
            device: c.device.to_string(),
            name: c.name.clone(),
            params: c.params.clone(),
            state: c.state.as_str(),
            created_ms: c.created_ms,
            created: format_time(c.created_ms),
            expires_ms: c.expires_ms,
            delivered_ms: c.delivered_ms,
            replied_ms: c.replied_ms,
            reply: c.reply.clone(),
            topic: sentio_core::topic::command(&c.device, &c.id),
        }
    }
}

/// `GET /api/v1/devices/<id>/commands`.
#[derive(Debug, Serialize)]
pub struct CommandList {
    pub commands: Vec<CommandDto>,
}

/// A twin as the API shows it.
#[derive(Debug, Serialize)]
pub struct TwinDto {
    pub desired: serde_json::Value,
    pub reported: serde_json::Value,
    pub delta: serde_json::Value,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_updated: Option<String>,
    /// On an edge: the cloud's version of the desired document (the cloud sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_version: Option<u64>,
}

impl From<&Twin> for TwinDto {
    fn from(t: &Twin) -> Self {
        Self {
            desired: t.desired.clone(),
            reported: t.reported.clone(),
            delta: t.delta(),
            version: t.version,
            desired_updated: t.desired_ms.map(format_time),
            reported_updated: t.reported_ms.map(format_time),
            cloud_version: t.upstream_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use sentio_core::{CommandId, CommandState, DeviceId};
    use serde_json::json;

    use super::*;
    use crate::dto::tests::check;

    pub(crate) fn command() -> Command {
        Command {
            id: CommandId::parse("c-1").unwrap(),
            device: DeviceId::parse("pump-1").unwrap(),
            name: "set_speed".into(),
            params: json!({"rpm": 900}),
            created_ms: 1_700_000_000_000,
            expires_ms: 1_700_000_060_000,
            state: CommandState::Succeeded,
            delivered_ms: Some(1_700_000_000_100),
            replied_ms: Some(1_700_000_000_200),
            reply: Some(json!({"status": "ok"})),
        }
    }

    #[test]
    fn commands_and_twins() {
        check(
            CommandDto::from(&command()),
            r#"{"id":"c-1","device":"pump-1","name":"set_speed","params":{"rpm":900},"state":"succeeded","created_ms":1700000000000,"created":"2023-11-14T22:13:20Z","expires_ms":1700000060000,"delivered_ms":1700000000100,"replied_ms":1700000000200,"reply":{"status":"ok"},"topic":"devices/pump-1/commands/c-1"}"#,
        );
        let twin = Twin {
            desired: json!({"fan": "high", "light": "off"}),
            reported: json!({"fan": "low", "light": "off"}),
            version: 3,
            desired_ms: Some(1_700_000_000_000),
            reported_ms: None,
            upstream_version: None,
        };
        check(
            TwinDto::from(&twin),
            r#"{"desired":{"fan":"high","light":"off"},"reported":{"fan":"low","light":"off"},"delta":{"fan":"high"},"version":3,"desired_updated":"2023-11-14T22:13:20Z"}"#,
        );
    }
}
