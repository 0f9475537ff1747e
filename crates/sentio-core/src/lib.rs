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
pub mod command;
mod device;
mod error;
pub mod keys;
pub mod metric_names;
pub mod notify;
mod point;
pub mod rule;
pub mod telemetry;
pub mod time;
pub mod twin;

pub use alert::{
    Ack, Alert, AlertKind, AlertState, Comment, Contributor, Explanation, Feedback, Prediction,
};
pub use command::{Command, CommandId, CommandState};
pub use device::DeviceId;
pub use error::CoreError;
pub use keys::{AlertId, AlertKey, EdgeId, SeriesKey, StateKey, Subject};
pub use notify::{AlertMatcher, Channel, ChannelTarget, Silence, SmtpSecurity};
pub use point::{Point, TextEvent};
pub use rule::{Rule, RuleAction, RuleId, Selector, Severity};
pub use twin::Twin;

/// MQTT topic helpers: the topic layout is a public contract with devices.
pub mod topic {
    /// Prefix under which a device may publish (`devices/<id>/...`).
    pub const DEVICES: &str = "devices";
    /// Suffix of the telemetry topic: `devices/<id>/telemetry`.
    pub const TELEMETRY: &str = "telemetry";
    /// Suffix of the command topic tree a device may subscribe to: `devices/<id>/commands/#`.
    pub const COMMANDS: &str = "commands";

    /// Under a device's tree: its twin (`twin/desired`, published retained by the node;
    /// `twin/reported`, published by the device).
    pub const TWIN: &str = "twin";
    /// Last level of a command's reply topic: `devices/<id>/commands/<cid>/reply`.
    pub const REPLY: &str = "reply";

    /// `devices/<id>/commands/<cid>`: where the node delivers a command.
    pub fn command(device: &crate::DeviceId, id: &crate::CommandId) -> String {
        format!("{DEVICES}/{device}/{COMMANDS}/{id}")
    }

    /// `devices/<id>/twin/desired`: the desired document and its version, retained.
    pub fn twin_desired(device: &crate::DeviceId) -> String {
        format!("{DEVICES}/{device}/{TWIN}/desired")
    }

    /// What a topic under `devices/<id>/` is to the command and twin exchange.
    pub fn exchange(topic: &str) -> Option<(&str, Exchange<'_>)> {
        let (id, tail) = split_device(topic)?;
        let mut levels = tail.split('/');
        let kind = match (levels.next()?, levels.next(), levels.next(), levels.next()) {
            (COMMANDS, Some(cid), None, None) if !cid.is_empty() => Exchange::Command(cid),
            (COMMANDS, Some(cid), Some(REPLY), None) if !cid.is_empty() => Exchange::Reply(cid),
            (TWIN, Some("desired"), None, None) => Exchange::Desired,
            (TWIN, Some("reported"), None, None) => Exchange::Reported,
            _ => return None,
        };
        Some((id, kind))
    }

    /// Why the node must not publish a message of its own (a rule's `publish` action, an MQTT
    /// notification channel) on `topic`, if it must not: empty or over 1,024 bytes, a
    /// wildcard or NUL, a `$` topic, or a command or desired twin (those go through their own
    /// desks, which keep their state).
    pub fn node_publish_refusal(topic: &str) -> Option<&'static str> {
        if topic.is_empty() || topic.len() > 1024 {
            Some("give 1-1024 bytes")
        } else if topic.contains(['+', '#', '\0']) {
            Some("a topic name, without + or #")
        } else if topic.starts_with('$') {
            Some("not a $ topic")
        } else if matches!(
            exchange(topic),
            Some((_, Exchange::Command(_) | Exchange::Desired))
        ) {
            Some("commands and desired twins are sent by the command and set_desired actions")
        } else {
            None
        }
    }

    /// A topic of the command and twin exchange (see [`exchange`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Exchange<'a> {
        /// `commands/<cid>`: node → device.
        Command(&'a str),
        /// `commands/<cid>/reply`: device → node.
        Reply(&'a str),
        /// `twin/desired`: node → device, retained.
        Desired,
        /// `twin/reported`: device → node.
        Reported,
    }

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

    /// Prefix under which an edge node may publish and subscribe (`edges/<id>/...`).
    pub const EDGES: &str = "edges";
    /// The uplink lane of points: an edge publishes its batches to `edges/<id>/up/points`.
    pub const UPLINK_POINTS: &str = "up/points";

    /// An edge publishes its backlog lane (points committed while its uplink was down) on
    /// `edges/<id>/up/backlog`.
    pub const UPLINK_BACKLOG: &str = "up/backlog";

    /// `edges/<id>/up/backlog`.
    pub fn uplink_backlog(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_BACKLOG}")
    }

    /// An edge with the aggregates policy publishes its 1-minute rollups on
    /// `edges/<id>/up/rollups`.
    pub const UPLINK_ROLLUPS: &str = "up/rollups";

    /// `edges/<id>/up/rollups`.
    pub fn uplink_rollups(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_ROLLUPS}")
    }

    /// An edge publishes its device registry (records of its devices) on
    /// `edges/<id>/up/registry`.
    pub const UPLINK_REGISTRY: &str = "up/registry";

    /// `edges/<id>/up/registry`.
    pub fn uplink_registry(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_REGISTRY}")
    }

    /// An edge publishes its alerts (as they are now) on `edges/<id>/up/alerts`.
    pub const UPLINK_ALERTS: &str = "up/alerts";

    /// `edges/<id>/up/alerts`.
    pub fn uplink_alerts(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_ALERTS}")
    }

    /// An edge reports the state of its outbox on `edges/<id>/up/status`.
    pub const UPLINK_STATUS: &str = "up/status";

    /// `edges/<id>/up/points`.
    pub fn uplink_points(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_POINTS}")
    }

    /// `edges/<id>/up/status`.
    pub fn uplink_status(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_STATUS}")
    }

    /// An edge sends the raw points of the hours a re-sync found differing on
    /// `edges/<id>/up/resync`.
    pub const UPLINK_RESYNC: &str = "up/resync";

    /// `edges/<id>/up/resync`.
    pub fn uplink_resync(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_RESYNC}")
    }

    /// The cloud asks an edge to re-sync on `edges/<id>/down/resync` (the one topic an edge
    /// subscribes to).
    pub const DOWNLINK_RESYNC: &str = "down/resync";

    /// `edges/<id>/down/resync`.
    pub fn downlink_resync(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{DOWNLINK_RESYNC}")
    }

    /// The cloud sends an edge the commands for its devices on `edges/<id>/down/commands`.
    pub const DOWNLINK_COMMANDS: &str = "down/commands";

    /// `edges/<id>/down/commands`.
    pub fn downlink_commands(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{DOWNLINK_COMMANDS}")
    }

    /// An edge sends the state of the commands it got from the cloud on
    /// `edges/<id>/up/commands`.
    pub const UPLINK_COMMANDS: &str = "up/commands";

    /// `edges/<id>/up/commands`.
    pub fn uplink_commands(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_COMMANDS}")
    }

    /// The cloud sends an edge the desired twins of its devices on `edges/<id>/down/twins`.
    pub const DOWNLINK_TWINS: &str = "down/twins";

    /// `edges/<id>/down/twins`.
    pub fn downlink_twins(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{DOWNLINK_TWINS}")
    }

    /// An edge sends its devices' reported twins on `edges/<id>/up/twins`.
    pub const UPLINK_TWINS: &str = "up/twins";

    /// `edges/<id>/up/twins`.
    pub fn uplink_twins(edge: &crate::EdgeId) -> String {
        format!("{EDGES}/{edge}/{UPLINK_TWINS}")
    }

    /// `edges/<id>/<tail>` → (`<id>`, `<tail>`), both non-empty.
    pub fn split_edge(topic: &str) -> Option<(&str, &str)> {
        let rest = topic.strip_prefix(EDGES)?.strip_prefix('/')?;
        rest.split_once('/')
            .filter(|(id, tail)| !id.is_empty() && !tail.is_empty())
    }

    /// `devices/<id>/<tail>` → (`<id>`, `<tail>`), both non-empty.
    fn split_device(topic: &str) -> Option<(&str, &str)> {
        let rest = topic.strip_prefix(DEVICES)?.strip_prefix('/')?;
        rest.split_once('/')
            .filter(|(id, tail)| !id.is_empty() && !tail.is_empty())
    }
}
