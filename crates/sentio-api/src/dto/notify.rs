//! Silences, notification channels and alert groups on the wire.

use std::collections::BTreeMap;

use sentio_core::time::{format_time, parse_duration_ms, parse_time};
use sentio_core::{
    AlertKind, AlertMatcher, Channel, ChannelTarget, DeviceId, Severity, Silence, SmtpSecurity,
};
use sentio_store::{AlertGroup, ChannelStats};
use serde::{Deserialize, Serialize};

/// Which alerts a silence or a channel's route covers.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSelectorDto {
    /// These devices only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Devices of this kind only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Devices with all these labels only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Alerts of these kinds only (`silence`, `rule`, `anomaly`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_kinds: Vec<String>,
    /// A channel's route only: alerts at least this severe (default `info`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
}

impl AlertSelectorDto {
    /// The matcher this selector describes, or what is wrong with it.
    pub fn into_matcher(self) -> Result<AlertMatcher, String> {
        Ok(AlertMatcher {
            devices: self
                .devices
                .iter()
                .map(|d| DeviceId::parse(d).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            device_kind: self.kind,
            labels: self.labels,
            alert_kinds: self
                .alert_kinds
                .iter()
                .map(|k| AlertKind::parse(k).ok_or_else(|| format!("unknown alert kind {k:?}")))
                .collect::<Result<_, _>>()?,
            min_severity: match self.min_severity.as_deref() {
                None => Severity::Info,
                Some(s) => Severity::parse(s)
                    .ok_or_else(|| format!("severity {s:?}: use info, warning or critical"))?,
            },
        })
    }
}

impl From<&AlertMatcher> for AlertSelectorDto {
    fn from(m: &AlertMatcher) -> Self {
        Self {
            devices: m.devices.iter().map(|d| d.to_string()).collect(),
            kind: m.device_kind.clone(),
            labels: m.labels.clone(),
            alert_kinds: m.alert_kinds.iter().map(|k| k.as_str().into()).collect(),
            min_severity: (m.min_severity != Severity::Info)
                .then(|| m.min_severity.as_str().into()),
        }
    }
}

/// `POST /api/v1/silences` body: until a time, or for a duration from now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// What it mutes (an empty selector mutes every alert).
    #[serde(default)]
    pub selector: AlertSelectorDto,
    /// Until when: milliseconds or RFC 3339...
    #[serde(default)]
    pub until: Option<serde_json::Value>,
    /// ...or for how long from now (`"2h"`).
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// Why (required, at most 1,000 bytes).
    pub reason: String,
}

impl SilenceBody {
    /// When the silence ends, given `now_ms`.
    pub fn until_ms(&self, now_ms: i64) -> Result<i64, String> {
        let until = match (&self.until, &self.for_) {
            (Some(_), Some(_)) | (None, None) => return Err("give until or for".into()),
            (None, Some(d)) => {
                now_ms.saturating_add(parse_duration_ms(d).map_err(|e| e.to_string())?)
            }
            (Some(serde_json::Value::Number(n)), None) => {
                n.as_i64().ok_or("until: milliseconds since the epoch")?
            }
            (Some(serde_json::Value::String(s)), None) => {
                parse_time(s).map_err(|e| e.to_string())?
            }
            (Some(_), None) => return Err("until: milliseconds or RFC 3339".into()),
        };
        if until <= now_ms {
            return Err("the silence would already be over".into());
        }
        Ok(until)
    }
}

/// A silence as the API shows it.
#[derive(Debug, Serialize)]
pub struct SilenceView {
    pub id: i64,
    pub selector: AlertSelectorDto,
    pub until_ms: i64,
    pub until: String,
    pub reason: String,
    pub author: String,
    pub created_ms: i64,
    /// Whether it mutes now.
    pub active: bool,
}

impl SilenceView {
    /// `s` as seen at `now_ms`.
    pub fn at(s: &Silence, now_ms: i64) -> Self {
        Self {
            id: s.id,
            selector: (&s.matcher).into(),
            until_ms: s.until_ms,
            until: format_time(s.until_ms),
            reason: s.reason.clone(),
            author: s.author.clone(),
            created_ms: s.created_ms,
            active: s.active(now_ms),
        }
    }
}

/// `GET /api/v1/silences`.
#[derive(Debug, Serialize)]
pub struct SilenceList {
    pub silences: Vec<SilenceView>,
}

/// A webhook channel's settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDto {
    pub url: String,
    /// `whsec_<base64>`; generated when absent, and shown only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// An e-mail channel's settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailDto {
    pub host: String,
    pub port: u16,
    /// `starttls` (the default), `tls` or `none`.
    #[serde(default)]
    pub security: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Never shown.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// An MQTT channel's settings: the topic the node publishes each notification on.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttDto {
    pub topic: String,
}

/// `POST /api/v1/channels` body: one of `webhook`, `email` or `mqtt`, and an optional route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    pub name: String,
    #[serde(default)]
    pub webhook: Option<WebhookDto>,
    #[serde(default)]
    pub email: Option<EmailDto>,
    #[serde(default)]
    pub mqtt: Option<MqttDto>,
    /// The alerts routed to it; absent: only those of rules that name it.
    #[serde(default)]
    pub route: Option<AlertSelectorDto>,
}

impl ChannelBody {
    /// The channel this body describes (a webhook without a secret gets `new_secret`).
    pub fn into_channel(self, new_secret: impl FnOnce() -> String) -> Result<Channel, String> {
        if !Channel::valid_name(&self.name) {
            return Err("name: 1-64 characters from a-z 0-9 _ -".into());
        }
        let target = match (self.webhook, self.email, self.mqtt) {
            (Some(w), None, None) => {
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err("webhook.url: an http:// or https:// URL".into());
                }
                let secret = w.secret.unwrap_or_else(new_secret);
                if sentio_notify::webhook::secret_key(&secret).is_none() {
                    return Err("webhook.secret: whsec_ and the base64 of 16 to 64 bytes".into());
                }
                ChannelTarget::Webhook { url: w.url, secret }
            }
            (None, Some(e), None) => {
                if e.to.is_empty() || !e.from.contains('@') || e.to.iter().any(|t| !t.contains('@'))
                {
                    return Err("email: from and at least one to address".into());
                }
                ChannelTarget::Email {
                    host: e.host,
                    port: e.port,
                    security: match e.security.as_deref() {
                        None => SmtpSecurity::StartTls,
                        Some(s) => {
                            SmtpSecurity::parse(s).ok_or("email.security: starttls, tls or none")?
                        }
                    },
                    username: e.username,
                    password: e.password,
                    from: e.from,
                    to: e.to,
                }
            }
            (None, None, Some(m)) => {
                if let Some(why) = sentio_core::topic::node_publish_refusal(&m.topic) {
                    return Err(format!("mqtt.topic: {why}"));
                }
                ChannelTarget::Mqtt { topic: m.topic }
            }
            _ => return Err("give one of webhook, email or mqtt".into()),
        };
        Ok(Channel {
            name: self.name,
            target,
            route: self.route.map(AlertSelectorDto::into_matcher).transpose()?,
        })
    }
}

/// A channel as the API shows it, with how its deliveries went (never its password; the
/// webhook secret only in the answer that created it).
#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttDto>,
    pub route: Option<AlertSelectorDto>,
    /// Notifications it accepted.
    pub delivered: u64,
    /// Waiting for their first or next attempt.
    pub pending: u64,
    /// Given up after `notify.give_up_after`.
    pub failed: u64,
    /// The latest failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_ms: Option<i64>,
}

impl ChannelView {
    /// `c` with its counters; `show_secret` in the answer that created it.
    pub fn new(c: &Channel, stats: Option<&ChannelStats>, show_secret: bool) -> Self {
        let (mut webhook, mut email, mut mqtt) = (None, None, None);
        match &c.target {
            ChannelTarget::Webhook { url, secret } => {
                webhook = Some(WebhookDto {
                    url: url.clone(),
                    secret: show_secret.then(|| secret.clone()),
                })
            }
            ChannelTarget::Email {
                host,
                port,
                security,
                username,
                from,
                to,
                ..
            } => {
                email = Some(EmailDto {
                    host: host.clone(),
                    port: *port,
                    security: Some(security.as_str().into()),
                    username: username.clone(),
                    password: None,
                    from: from.clone(),
                    to: to.clone(),
                })
            }
            ChannelTarget::Mqtt { topic } => {
                mqtt = Some(MqttDto {
                    topic: topic.clone(),
                })
            }
        }
        let stats = stats.cloned().unwrap_or_default();
        Self {
            name: c.name.clone(),
            kind: c.target.type_name(),
            webhook,
            email,
            mqtt,
            route: c.route.as_ref().map(AlertSelectorDto::from),
            delivered: stats.delivered,
            pending: stats.pending,
            failed: stats.failed,
            last_error_ms: stats.last_error.as_ref().map(|(at, _)| *at),
            last_error: stats.last_error.map(|(_, e)| e),
        }
    }
}

/// `GET /api/v1/channels`.
#[derive(Debug, Serialize)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
}

/// An alert group.
#[derive(Debug, Serialize)]
pub struct GroupView {
    pub id: i64,
    pub alert_kind: &'static str,
    pub device_kind: String,
    pub opened_ms: i64,
    pub count: usize,
    pub members: Vec<GroupMember>,
}

/// One member of a group.
#[derive(Debug, Serialize)]
pub struct GroupMember {
    pub alert: i64,
    pub device: String,
}

impl From<&AlertGroup> for GroupView {
    fn from(g: &AlertGroup) -> Self {
        Self {
            id: g.id,
            alert_kind: g.alert_kind.as_str(),
            device_kind: g.device_kind.clone(),
            opened_ms: g.opened_ms,
            count: g.members.len(),
            members: g
                .members
                .iter()
                .map(|(alert, device)| GroupMember {
                    alert: *alert,
                    device: device.clone(),
                })
                .collect(),
        }
    }
}

/// `GET /api/v1/alert-groups`.
#[derive(Debug, Serialize)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::tests::check;

    #[test]
    fn channels_silences_and_groups_keep_their_wire_form() {
        let body: ChannelBody = serde_json::from_str(
            r#"{"name":"ops","webhook":{"url":"https://example.org/hook"},"route":{"kind":"pump","min_severity":"critical"}}"#,
        )
        .unwrap();
        let c = body
            .into_channel(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
            .unwrap();
        let stats = ChannelStats {
            name: "ops".into(),
            delivered: 3,
            pending: 1,
            failed: 0,
            last_error: Some((5, "HTTP 500".into())),
        };
        check(
            ChannelView::new(&c, Some(&stats), true),
            r#"{"name":"ops","type":"webhook","webhook":{"url":"https://example.org/hook","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},"route":{"kind":"pump","min_severity":"critical"},"delivered":3,"pending":1,"failed":0,"last_error":"HTTP 500","last_error_ms":5}"#,
        );
        let body: ChannelBody = serde_json::from_str(
            r#"{"name":"mail","email":{"host":"smtp","port":25,"security":"none","password":"p","from":"a@b","to":["c@d"]}}"#,
        )
        .unwrap();
        let c = body.into_channel(String::new).unwrap();
        check(
            ChannelView::new(&c, None, false),
            r#"{"name":"mail","type":"email","email":{"host":"smtp","port":25,"security":"none","from":"a@b","to":["c@d"]},"route":null,"delivered":0,"pending":0,"failed":0}"#,
        );
        for bad in [
            r#"{"name":"Bad","webhook":{"url":"https://x"}}"#,
            r#"{"name":"a","webhook":{"url":"ftp://x"}}"#,
            r#"{"name":"a","webhook":{"url":"https://x","secret":"nope"}}"#,
            r#"{"name":"a"}"#,
            r#"{"name":"a","webhook":{"url":"https://x"},"route":{"alert_kinds":["loud"]}}"#,
        ] {
            let body: ChannelBody = serde_json::from_str(bad).unwrap();
            assert!(
                body.into_channel(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
                    .is_err(),
                "{bad}"
            );
        }
        let s: SilenceBody =
            serde_json::from_str(r#"{"selector":{"devices":["room-1"]},"for":"2h","reason":"r"}"#)
                .unwrap();
        assert_eq!(s.until_ms(1_000), Ok(7_201_000));
        let silence = Silence {
            id: 1,
            matcher: s.selector.into_matcher().unwrap(),
            until_ms: 7_201_000,
            reason: "r".into(),
            author: "admin".into(),
            created_ms: 1_000,
        };
        check(
            SilenceView::at(&silence, 2_000),
            r#"{"id":1,"selector":{"devices":["room-1"]},"until_ms":7201000,"until":"1970-01-01T02:00:01Z","reason":"r","author":"admin","created_ms":1000,"active":true}"#,
        );
        let past: SilenceBody = serde_json::from_str(r#"{"until":5,"reason":"r"}"#).unwrap();
        assert!(past.until_ms(10).is_err());
        check(
            GroupView::from(&AlertGroup {
                id: 2,
                alert_kind: AlertKind::Silence,
                device_kind: "room".into(),
                opened_ms: 9,
                members: vec![(4, "room-1".into())],
            }),
            r#"{"id":2,"alert_kind":"silence","device_kind":"room","opened_ms":9,"count":1,"members":[{"alert":4,"device":"room-1"}]}"#,
        );
    }
}
