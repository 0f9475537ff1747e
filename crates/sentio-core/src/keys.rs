//! Typed keys: which series ([`SeriesKey`]), which alert ([`AlertKey`], [`AlertId`]), what an
//! alert is about ([`Subject`]) and where a watch's learnt state is saved ([`StateKey`]).
//!
//! The sentinel strings of earlier versions (`*` for a device-wide alert, `a~b` for a pair of
//! metrics, `~device`, `~limit/<metric>` and `~peers` in the saved detector state) live only at
//! the serialization edge, in [`Subject::label`] / [`Subject::parse`] and [`StateKey::to_row`] /
//! [`StateKey::from_row`], so stored data and API output keep their shape. None of them can be a
//! device id or a metric name (`~`, `*` and `/` are refused in both), so they never collide.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Alert, AlertKind, CoreError, DeviceId, Point, RuleId};

/// The metric label of a device-wide alert (silence).
pub const DEVICE_WIDE: &str = "*";
/// Joins the two metrics of a pair in an alert's metric label: `motor_current~vibration_rms`.
pub const PAIR_SEPARATOR: char = '~';
/// Saved-state "metric" of a device's own state (cadence and relations).
const DEVICE_STATE: &str = "~device";
/// Saved-state "metric" prefix of a series' limit watch.
const LIMIT_STATE: &str = "~limit/";
/// Label prefix of a rule's alert subject, and saved-state "metric" prefix of a rule's state
/// for one device: `rule/<id>`, `~rule/<id>`.
const RULE_PREFIX: &str = "rule/";
/// Saved-state "device" of the peer groups (their "metric" is `<kind>/<metric>`).
const PEER_STATE: &str = "~peers";
/// The device column of a rule's label-group state rows (kept for no one device).
pub const RULE_GROUP_STATE: &str = "~rule-groups";

/// An edge node registered in the cloud: the same characters as a [`DeviceId`] (so safe in
/// topics, URLs and file names), in a namespace of its own (MQTT username `edge:<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId(DeviceId);

impl EdgeId {
    /// Validates `s` as an edge id (1-64 characters from `[A-Za-z0-9_.-]`).
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        DeviceId::parse(s).map(Self)
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One series: a metric of a device. Cheap to clone (two reference counts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The device.
    pub device: DeviceId,
    /// The metric.
    pub metric: Arc<str>,
}

impl SeriesKey {
    /// The series of `device` and `metric`.
    pub fn new(device: DeviceId, metric: Arc<str>) -> Self {
        Self { device, metric }
    }

    /// The series a point belongs to.
    pub fn of(point: &Point) -> Self {
        Self::new(point.device.clone(), point.metric.clone())
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.device, self.metric)
    }
}

/// The store's id of an alert. `0` ([`AlertId::UNSAVED`]) until the alert is first saved.
/// Serialized as the bare number.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct AlertId(i64);

impl AlertId {
    /// The id of an alert not saved yet.
    pub const UNSAVED: AlertId = AlertId(0);

    /// The alert id `id`, as the store numbers them.
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    /// The number.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Whether the store gave this id (it is not [`AlertId::UNSAVED`]).
    pub const fn is_saved(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an alert is about within its device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// One metric (anomaly, peer, limit and predictive alerts). Labelled by the metric name.
    Metric(Arc<str>),
    /// Two metrics that normally move together (relation alerts), in the order the device first
    /// reported them. Labelled `a~b`.
    Pair(Arc<str>, Arc<str>),
    /// The whole device (silence alerts). Labelled `*`.
    Device,
    /// A user's rule, about the whole device. Labelled `rule/<id>`.
    Rule(RuleId),
}

impl Subject {
    /// The label stored as the alert's `metric` and shown by the API.
    pub fn label(&self) -> String {
        match self {
            Subject::Metric(m) => m.to_string(),
            Subject::Pair(a, b) => format!("{a}{PAIR_SEPARATOR}{b}"),
            Subject::Device => DEVICE_WIDE.to_string(),
            Subject::Rule(r) => format!("{RULE_PREFIX}{r}"),
        }
    }

    /// Reads a label written by [`Subject::label`].
    pub fn parse(label: &str) -> Self {
        if label == DEVICE_WIDE {
            Subject::Device
        } else if let Some(rule) = label
            .strip_prefix(RULE_PREFIX)
            .and_then(|r| RuleId::parse(r).ok())
        {
            Subject::Rule(rule)
        } else if let Some((a, b)) = label.split_once(PAIR_SEPARATOR) {
            Subject::Pair(a.into(), b.into())
        } else {
            Subject::Metric(label.into())
        }
    }

    /// The metrics the subject is made of: one, two, or none for the whole device.
    pub fn metrics(&self) -> impl Iterator<Item = &Arc<str>> {
        let (a, b) = match self {
            Subject::Metric(m) => (Some(m), None),
            Subject::Pair(a, b) => (Some(a), Some(b)),
            Subject::Device | Subject::Rule(_) => (None, None),
        };
        a.into_iter().chain(b)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Metric(m) => f.write_str(m),
            Subject::Pair(a, b) => write!(f, "{a}{PAIR_SEPARATOR}{b}"),
            Subject::Device => f.write_str(DEVICE_WIDE),
            Subject::Rule(r) => write!(f, "{RULE_PREFIX}{r}"),
        }
    }
}

/// One alert condition: at most one alert per key is open at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    /// The device.
    pub device: DeviceId,
    /// What in the device.
    pub subject: Subject,
    /// Which condition.
    pub kind: AlertKind,
}

impl AlertKey {
    /// The key of `kind` alerts on `subject` of `device`.
    pub fn new(device: DeviceId, subject: Subject, kind: AlertKind) -> Self {
        Self {
            device,
            subject,
            kind,
        }
    }

    /// The key of a series' own alert of `kind`.
    pub fn series(series: &SeriesKey, kind: AlertKind) -> Self {
        Self::new(
            series.device.clone(),
            Subject::Metric(series.metric.clone()),
            kind,
        )
    }

    /// The key of a stored alert (its device id is checked again, as any input from outside).
    pub fn of(alert: &Alert) -> Result<Self, CoreError> {
        Ok(Self::new(
            DeviceId::parse(&alert.device)?,
            Subject::parse(&alert.metric),
            alert.explanation.kind,
        ))
    }
}

/// Where one piece of learnt watch state is saved: a row `(device, metric)` of the store's
/// detector-state table, with the same strings as earlier versions wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StateKey {
    /// A series' own detector: row `(device, metric)`.
    Series(SeriesKey),
    /// A series' limit watch: row `(device, "~limit/<metric>")`.
    Limit(SeriesKey),
    /// A device's own state (reporting cadence, relations between its metrics): row
    /// `(device, "~device")`.
    Device(DeviceId),
    /// The peer group of a device kind for one metric: row `("~peers", "<kind>/<metric>")`.
    Peers {
        /// The device kind.
        kind: Arc<str>,
        /// The metric.
        metric: Arc<str>,
    },
    /// A rule's state for one device (its `for` timer, open flag and windows): row
    /// `(device, "~rule/<id>")`.
    Rule {
        /// The device.
        device: DeviceId,
        /// The rule.
        rule: RuleId,
    },
    /// A rule's state for one label group (its `group_*` windows over the devices whose
    /// `label` is `value`): row `("~rule-groups", "<id>/[\"<label>\",\"<value>\"]")`.
    RuleGroup {
        /// The rule.
        rule: RuleId,
        /// The label the group is by.
        label: Arc<str>,
        /// Its value shared by the group's devices.
        value: Arc<str>,
    },
}

impl StateKey {
    /// The `(device, metric)` strings of the row.
    pub fn to_row(&self) -> (String, String) {
        match self {
            StateKey::Series(s) => (s.device.to_string(), s.metric.to_string()),
            StateKey::Limit(s) => (s.device.to_string(), format!("{LIMIT_STATE}{}", s.metric)),
            StateKey::Device(d) => (d.to_string(), DEVICE_STATE.to_string()),
            StateKey::Peers { kind, metric } => {
                (PEER_STATE.to_string(), format!("{kind}/{metric}"))
            }
            StateKey::Rule { device, rule } => {
                (device.to_string(), format!("~{RULE_PREFIX}{rule}"))
            }
            StateKey::RuleGroup { rule, label, value } => (
                RULE_GROUP_STATE.to_string(),
                format!(
                    "{rule}/{}",
                    serde_json::to_string(&[&**label, &**value]).expect("strings serialise")
                ),
            ),
        }
    }

    /// Reads the `(device, metric)` strings of a row written by [`StateKey::to_row`].
    pub fn from_row(device: &str, metric: &str) -> Result<Self, CoreError> {
        if device == PEER_STATE {
            let (kind, metric) = metric
                .split_once('/')
                .ok_or_else(|| CoreError::InvalidStateKey(format!("{device}/{metric}")))?;
            return Ok(StateKey::Peers {
                kind: kind.into(),
                metric: metric.into(),
            });
        }
        if device == RULE_GROUP_STATE {
            let bad = || CoreError::InvalidStateKey(format!("{device}/{metric}"));
            let (rule, group) = metric.split_once('/').ok_or_else(bad)?;
            let [label, value]: [String; 2] = serde_json::from_str(group).map_err(|_| bad())?;
            return Ok(StateKey::RuleGroup {
                rule: RuleId::parse(rule)?,
                label: label.into(),
                value: value.into(),
            });
        }
        let device = DeviceId::parse(device)?;
        Ok(if metric == DEVICE_STATE {
            StateKey::Device(device)
        } else if let Some(rule) = metric
            .strip_prefix('~')
            .and_then(|m| m.strip_prefix(RULE_PREFIX))
        {
            StateKey::Rule {
                device,
                rule: RuleId::parse(rule)?,
            }
        } else if let Some(m) = metric.strip_prefix(LIMIT_STATE) {
            StateKey::Limit(SeriesKey::new(device, m.into()))
        } else {
            StateKey::Series(SeriesKey::new(device, metric.into()))
        })
    }

    /// The device the state belongs to; `None` for a peer group (shared by a kind).
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            StateKey::Series(s) | StateKey::Limit(s) => Some(&s.device),
            StateKey::Device(d) | StateKey::Rule { device: d, .. } => Some(d),
            StateKey::Peers { .. } | StateKey::RuleGroup { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[test]
    fn subjects_keep_their_stored_labels() {
        for (subject, label) in [
            (Subject::Metric("temp".into()), "temp"),
            (Subject::Pair("a".into(), "b".into()), "a~b"),
            (Subject::Device, "*"),
            (
                Subject::Rule(RuleId::parse("co2-high").unwrap()),
                "rule/co2-high",
            ),
        ] {
            assert_eq!(subject.label(), label);
            assert_eq!(subject.to_string(), label);
            assert_eq!(Subject::parse(label), subject);
        }
        let pair = Subject::Pair("a".into(), "b".into());
        assert_eq!(pair.metrics().map(|m| &**m).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(Subject::Device.metrics().count(), 0);
    }

    #[test]
    fn state_keys_keep_their_stored_rows() {
        let series = SeriesKey::new(dev("pump-1"), "temp".into());
        for (key, row) in [
            (StateKey::Series(series.clone()), ("pump-1", "temp")),
            (StateKey::Limit(series), ("pump-1", "~limit/temp")),
            (StateKey::Device(dev("pump-1")), ("pump-1", "~device")),
            (
                StateKey::Peers {
                    kind: "pump".into(),
                    metric: "temp".into(),
                },
                ("~peers", "pump/temp"),
            ),
            (
                StateKey::Rule {
                    device: dev("room-1"),
                    rule: RuleId::parse("co2-high").unwrap(),
                },
                ("room-1", "~rule/co2-high"),
            ),
            (
                StateKey::RuleGroup {
                    rule: RuleId::parse("site-hot").unwrap(),
                    label: "site".into(),
                    value: "north/2".into(),
                },
                ("~rule-groups", r#"site-hot/["site","north/2"]"#),
            ),
        ] {
            assert_eq!(key.to_row(), (row.0.to_string(), row.1.to_string()));
            assert_eq!(StateKey::from_row(row.0, row.1), Ok(key));
        }
        assert!(StateKey::from_row("~peers", "no-slash").is_err());
        assert!(StateKey::from_row("~rule-groups", "r/[\"site\"]").is_err());
        assert!(StateKey::from_row("bad/id", "temp").is_err());
        assert!(StateKey::from_row("room-1", "~rule/Not OK").is_err());
    }

    #[test]
    fn alert_ids_serialize_as_numbers() {
        assert_eq!(serde_json::to_string(&AlertId::new(42)).unwrap(), "42");
        assert_eq!(
            serde_json::from_str::<AlertId>("7").unwrap(),
            AlertId::new(7)
        );
        assert!(!AlertId::UNSAVED.is_saved());
    }
}
