//! The events of the live stream (`GET /api/v1/stream`), one JSON text message each.

use sentio_pipeline::Event;
use serde::Serialize;

use super::{AlertDto, CommandDto, TwinDto};

/// One message of the stream, tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent<'a> {
    /// Points that were just stored.
    Telemetry {
        /// Device id.
        device: &'a str,
        /// `[metric, ts_ms, value]` triples.
        points: &'a [(String, i64, f64)],
    },
    /// An alert opened, grew or resolved.
    Alert {
        /// The alert as it is now (boxed: much larger than the other events).
        alert: Box<AlertDto>,
    },
    /// A command was accepted or changed state.
    Command {
        /// The command as it is now.
        command: Box<CommandDto>,
    },
    /// A device's twin changed.
    Twin {
        /// Device id.
        device: &'a str,
        /// The twin as it is now.
        twin: Box<TwinDto>,
    },
    /// A device came online or went offline.
    Presence {
        /// Device id.
        device: &'a str,
        /// Whether it is online now.
        online: bool,
    },
    /// This client was too slow: `missed` events were dropped for it.
    Lagged {
        /// How many.
        missed: u64,
    },
}

impl<'a> From<&'a Event> for StreamEvent<'a> {
    fn from(e: &'a Event) -> Self {
        match e {
            Event::Telemetry { device, points } => Self::Telemetry { device, points },
            Event::Alert { alert } => Self::Alert {
                alert: Box::new(AlertDto::from(&**alert)),
            },
            Event::Command { command } => Self::Command {
                command: Box::new(CommandDto::from(&**command)),
            },
            Event::Twin { device, twin } => Self::Twin {
                device,
                twin: Box::new(TwinDto::from(&**twin)),
            },
            Event::Presence { device, online } => Self::Presence {
                device,
                online: *online,
            },
        }
    }
}

impl StreamEvent<'_> {
    /// The device the event is about (`None` for `lagged`).
    pub fn device(&self) -> Option<&str> {
        match self {
            Self::Telemetry { device, .. }
            | Self::Presence { device, .. }
            | Self::Twin { device, .. } => Some(device),
            Self::Command { command } => Some(&command.device),
            Self::Alert { alert } => Some(&alert.device),
            Self::Lagged { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::alert::tests::open_alert;
    use crate::dto::tests::check;

    #[test]
    fn events() {
        let telemetry = Event::Telemetry {
            device: "pump-1".into(),
            points: vec![("temperature".into(), 1_700_000_000_000, 21.5)],
        };
        check(
            StreamEvent::from(&telemetry),
            r#"{"type":"telemetry","device":"pump-1","points":[["temperature",1700000000000,21.5]]}"#,
        );
        let presence = Event::Presence {
            device: "pump-1".into(),
            online: false,
        };
        check(
            StreamEvent::from(&presence),
            r#"{"type":"presence","device":"pump-1","online":false}"#,
        );
        let alert = Event::Alert {
            alert: Box::new(open_alert()),
        };
        let expect = format!(
            r#"{{"type":"alert","alert":{}}}"#,
            serde_json::to_string(&AlertDto::from(&open_alert())).unwrap()
        );
        check(StreamEvent::from(&alert), &expect);
        check(
            StreamEvent::Lagged { missed: 12 },
            r#"{"type":"lagged","missed":12}"#,
        );
    }

    #[test]
    fn device_filter() {
        let presence = Event::Presence {
            device: "pump-2".into(),
            online: true,
        };
        assert_eq!(StreamEvent::from(&presence).device(), Some("pump-2"));
        let alert = Event::Alert {
            alert: Box::new(open_alert()),
        };
        assert_eq!(StreamEvent::from(&alert).device(), Some("pump-1"));
        assert_eq!(StreamEvent::Lagged { missed: 1 }.device(), None);
    }
}
