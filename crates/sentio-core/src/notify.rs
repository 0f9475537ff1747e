//! Who hears about alerts: [`Silence`]s mute the alerts an [`AlertMatcher`] covers until a
//! time; a [`Channel`] (a signed webhook or e-mail over SMTP) receives the alerts its own
//! matcher routes to it. Plain data: no IO, no serde (the store and the API have their forms).

use std::collections::BTreeMap;

use crate::{Alert, AlertKind, DeviceId, Severity};

/// Which alerts a silence or a channel covers: every condition given must hold (an empty one
/// holds for all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertMatcher {
    /// Alerts of these devices only.
    pub devices: Vec<DeviceId>,
    /// Alerts of devices of this kind only.
    pub device_kind: Option<String>,
    /// Alerts of devices whose labels hold every one of these pairs.
    pub labels: BTreeMap<String, String>,
    /// Alerts of these kinds only (`silence`, `rule`, ...).
    pub alert_kinds: Vec<AlertKind>,
    /// Alerts at least this severe only.
    pub min_severity: Severity,
}

impl AlertMatcher {
    /// Whether `alert`, of a device of `device_kind` with `labels`, is covered.
    pub fn matches(
        &self,
        alert: &Alert,
        device_kind: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        (self.devices.is_empty() || self.devices.iter().any(|d| d.as_str() == alert.device))
            && self.device_kind.as_deref().is_none_or(|k| k == device_kind)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && (self.alert_kinds.is_empty() || self.alert_kinds.contains(&alert.explanation.kind))
            && alert.severity() >= self.min_severity
    }
}

/// A silence: the alerts it covers are recorded but notify nobody until `until_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// The store's id.
    pub id: i64,
    /// What it mutes.
    pub matcher: AlertMatcher,
    /// Until when (ms).
    pub until_ms: i64,
    /// Why, for people.
    pub reason: String,
    /// Who made it (as the audit log names people).
    pub author: String,
    /// When it was made (ms).
    pub created_ms: i64,
}

impl Silence {
    /// Whether it still mutes at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        now_ms < self.until_ms
    }
}

/// How an e-mail channel's SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP upgraded with STARTTLS (port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or network.
    None,
}

impl SmtpSecurity {
    /// `starttls`, `tls` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartTls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        }
    }

    /// Reads a name written by [`SmtpSecurity::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::StartTls, Self::Tls, Self::None]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Where a channel's notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelTarget {
    /// A JSON POST signed in the Standard Webhooks scheme.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// `whsec_<base64>`: the HMAC-SHA256 key.
        secret: String,
    },
    /// An e-mail over SMTP.
    Email {
        /// SMTP server host.
        host: String,
        /// SMTP server port.
        port: u16,
        /// How the connection is secured.
        security: SmtpSecurity,
        /// Login, if the server wants one.
        username: Option<String>,
        /// Its password.
        password: Option<String>,
        /// Sender address.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// A QoS 1 message from the node itself through its own broker, for integrations that
    /// subscribe (a topic that [`crate::topic::node_publish_refusal`] accepts).
    Mqtt {
        /// The topic, without wildcards.
        topic: String,
    },
}

impl ChannelTarget {
    /// `webhook`, `email` or `mqtt`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Email { .. } => "email",
            Self::Mqtt { .. } => "mqtt",
        }
    }
}

/// A notification channel: where to send, and which alerts are routed to it (a rule's
/// `notify` action sends its alerts to the channel it names whatever the route says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Its name (`a-z 0-9 _ -`, 1-64 characters), as rules name it.
    pub name: String,
    /// Where to.
    pub target: ChannelTarget,
    /// The alerts routed to it; `None`: only those of rules that name it.
    pub route: Option<AlertMatcher>,
}

impl Channel {
    /// Whether `name` is a valid channel name.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    }
}
