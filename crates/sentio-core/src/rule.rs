//! A rule as users write it: which devices it watches ([`Selector`]), the condition that opens
//! its alert (a CEL expression, compiled by `sentio-pipeline`'s rules engine), how long the
//! condition must hold (`for_ms`), what clears it, and the alert's [`Severity`]. Plain data: no
//! IO, no serde (the store and the API each have their own forms of it).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::{CoreError, DeviceId};

/// The id of a rule: 1-64 characters from `a-z 0-9 _ -`, chosen by its author.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(Arc<str>);

impl RuleId {
    /// Checks and wraps a rule id.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(CoreError::InvalidRuleId(s.chars().take(80).collect()))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How serious a rule's alert is. It sets the alert's score: info 0.3, warning 0.6,
/// critical 1.0. Ordered: info < warning < critical.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Worth acting on.
    #[default]
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// Reads a name written by [`Severity::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// The severity a rule's alert score stands for (the inverse of [`Severity::score`]).
    pub fn of_score(score: f64) -> Self {
        if score >= Self::Critical.score() {
            Self::Critical
        } else if score >= Self::Warning.score() {
            Self::Warning
        } else {
            Self::Info
        }
    }

    /// The alert score it stands for.
    pub fn score(self) -> f64 {
        match self {
            Self::Info => 0.3,
            Self::Warning => 0.6,
            Self::Critical => 1.0,
        }
    }
}

/// Which devices a rule watches: every condition given must hold (an empty one holds for all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// These devices only.
    pub devices: Vec<DeviceId>,
    /// Devices of this kind only.
    pub kind: Option<String>,
    /// Devices whose labels hold every one of these pairs.
    pub labels: BTreeMap<String, String>,
    /// The metrics the condition reads: their latest values are the expression's variables, and
    /// the rule is judged when one of them arrives.
    pub metrics: Vec<String>,
}

impl Selector {
    /// Whether a device of `kind` with `labels` is selected.
    pub fn selects(
        &self,
        device: &DeviceId,
        kind: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        (self.devices.is_empty() || self.devices.contains(device))
            && self.kind.as_deref().is_none_or(|k| k == kind)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A rule. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its id.
    pub id: RuleId,
    /// A name for people.
    pub name: String,
    /// Whether it is judged at all.
    pub enabled: bool,
    /// The devices and metrics it watches.
    pub selector: Selector,
    /// The CEL condition that opens the alert.
    pub condition: String,
    /// The CEL condition that resolves it (hysteresis); without one, the alert resolves when
    /// `condition` no longer holds.
    pub clear: Option<String>,
    /// How long `condition` must hold before the alert opens (ms, 0 = at once).
    pub for_ms: i64,
    /// How long the clear condition must hold, without a break, before the open alert
    /// resolves (ms): the hysteresis in time ([`Rule::DEFAULT_CLEAR_FOR_MS`] when not given).
    pub clear_for_ms: i64,
    /// After the alert resolves, how long the rule cannot open it again (ms;
    /// [`Rule::DEFAULT_COOL_DOWN_MS`] when not given).
    pub cool_down_ms: i64,
    /// The alert's severity.
    pub severity: Severity,
    /// What it does when its alert opens, besides the alert (empty: the alert only).
    pub actions: Vec<RuleAction>,
    /// What it does when its alert resolves by its clear condition (and `clear_for`): never
    /// when a person resolves the alert by hand, nor when the rule is changed or removed.
    /// Commands, desired twin changes and MQTT messages (the resolution itself is notified to
    /// the channels of `actions`).
    pub on_resolve: Vec<RuleAction>,
}

impl Rule {
    /// The default `clear_for`: a condition must have stopped for a minute before its alert
    /// resolves, so a signal wavering around a threshold keeps one alert open.
    pub const DEFAULT_CLEAR_FOR_MS: i64 = 60_000;
    /// The default `cool_down`: five minutes between a resolution and the next alert.
    pub const DEFAULT_COOL_DOWN_MS: i64 = 300_000;
}

/// What a rule does when it fires (its alert opens), for the device it fired on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Open its alert (always done; listed for clarity).
    Alert,
    /// Send a command, to the device the rule fired on or to every device `to` selects.
    Command {
        /// The command's name.
        name: String,
        /// Its arguments (JSON text of any value).
        params: String,
        /// Its time to live (ms); `None`: the node's default.
        ttl_ms: Option<i64>,
        /// Other devices to send it to instead (its `metrics` unused).
        to: Option<Selector>,
    },
    /// Merge a patch (JSON text of an object) into the desired twin of the device.
    SetDesired {
        /// The merge patch.
        patch: String,
    },
    /// Notify the named channel (whatever the channel's own routing says).
    Notify {
        /// The channel's name.
        channel: String,
    },
    /// Publish an MQTT message as the node; `{device}` and `{rule}` in the topic and payload
    /// are replaced by the device's and the rule's ids.
    Publish {
        /// Topic template.
        topic: String,
        /// Payload template.
        payload: String,
    },
}

impl RuleAction {
    /// Replaces `{device}` and `{rule}` in a template.
    pub fn fill(template: &str, device: &DeviceId, rule: &RuleId) -> String {
        template
            .replace("{device}", device.as_str())
            .replace("{rule}", rule.as_str())
    }
}
