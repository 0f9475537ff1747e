//! The vocabulary every Sentio crate shares: [`Point`] (the one telemetry type), [`DeviceId`],
//! the typed keys of series, alerts and saved watch state ([`SeriesKey`], [`AlertKey`],
//! [`AlertId`], [`Subject`], [`StateKey`]), time helpers, and the telemetry payload format
//! ([`telemetry::parse`]).
//!
//! This crate does no IO, so it cannot fail except on bad input, which is always an error value.
//!
//! ```
//! use sentio_core::{DeviceId, telemetry};
//! let dev = DeviceId::parse("pump-1").unwrap();
//! let parsed = telemetry::parse(&dev, br#"{"temperature": 21.5, "door_open": false}"#, 1_000, 60_000);
//! assert_eq!(parsed.points.len(), 2);
//! assert!(parsed.rejected.is_empty());
//! ```

pub mod acl;
pub mod alert;
mod device;
mod error;
pub mod keys;
pub mod notify;
mod point;
pub mod rule;
pub mod telemetry;
pub mod time;

pub use alert::{
    Ack, Alert, AlertKind, AlertState, Comment, Contributor, Explanation, Feedback, Prediction,
};
pub use device::DeviceId;
pub use error::CoreError;
pub use keys::{AlertId, AlertKey, SeriesKey, StateKey, Subject};
pub use notify::{AlertMatcher, Channel, ChannelTarget, Silence, SmtpSecurity};
pub use point::{Point, TextEvent};
pub use rule::{Rule, RuleAction, RuleId, Selector, Severity};

/// MQTT topic helpers: the topic layout is a public contract with devices.
pub mod topic {
    /// Prefix under which a device may publish (`devices/<id>/...`).
    pub const DEVICES: &str = "devices";
    /// Suffix of the telemetry topic: `devices/<id>/telemetry`.
    pub const TELEMETRY: &str = "telemetry";
    /// Suffix of the command topic tree a device may subscribe to: `devices/<id>/commands/#`.
    pub const COMMANDS: &str = "commands";

    /// `devices/<id>/telemetry`.
    pub fn telemetry(device: &crate::DeviceId) -> String {
        format!("{DEVICES}/{device}/{TELEMETRY}")
    }

    /// If `topic` is `devices/<id>/telemetry`, the `<id>`.
    pub fn telemetry_device(topic: &str) -> Option<&str> {
        let (id, tail) = split_device(topic)?;
        (tail == TELEMETRY).then_some(id)
    }

    /// If `topic` is under `devices/<id>/` (a device's own tree), the `<id>`.
    pub fn device_of(topic: &str) -> Option<&str> {
        split_device(topic).map(|(id, _)| id)
    }

    /// `devices/<id>/<tail>` → (`<id>`, `<tail>`), both non-empty.
    fn split_device(topic: &str) -> Option<(&str, &str)> {
        let rest = topic.strip_prefix(DEVICES)?.strip_prefix('/')?;
        rest.split_once('/')
            .filter(|(id, tail)| !id.is_empty() && !tail.is_empty())
    }
}
