//! JSON wire types of the API: every body the API sends or receives, and the stream's events.
//!
//! Core, pipeline and store types are never serialized to a client directly: each has a copy
//! here with its own field names and a `From` conversion, so that renaming a field inside Sentio
//! changes neither the API nor the dashboard. The tests pin the JSON of each type.

mod alert;
mod command;
mod edge;
mod edge_budget;
mod export;
mod notify;
mod rule;
mod stream;
mod user;

use std::collections::BTreeMap;

use sentio_core::acl::{AclRule, Rights};
use sentio_core::time::format_time;
use sentio_store::{AuditEntry, Device, Scope};
use serde::{Deserialize, Serialize};

pub use alert::{
    AlertDto, AlertList, AlertParams, AlertView, CommentBody, CommentDto, CommentList,
    FeedbackAnswer, FeedbackBody, LimitList, LimitView,
};
pub use command::{CommandBody, CommandDto, CommandList, TwinDto};
pub use edge::{CreateEdge, CreatedEdge, EdgeView, ResyncRange, ResyncView, UplinkView};
pub use edge_budget::OutboxCountsView;
pub use export::ExportLine;
pub use notify::{
    ChannelBody, ChannelList, ChannelView, GroupList, GroupView, SilenceBody, SilenceList,
    SilenceView,
};
pub use rule::{RuleBody, RuleList, RuleView};
pub use stream::StreamEvent;
pub use user::{
    CreateUser, CreateUserToken, CreatedUserToken, Login, LoginAnswer, UpdateUser, UserTokenView,
    UserView,
};

/// `POST /api/v1/devices` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    pub id: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST /api/v1/devices` answer: the only time the secret is shown.
#[derive(Debug, Serialize)]
pub struct CreatedDevice {
    pub id: String,
    pub secret: String,
    pub mqtt_username: String,
    pub telemetry_topic: String,
}

/// A device as the API shows it.
#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub labels: BTreeMap<String, String>,
    pub created: String,
    pub created_ms: i64,
    pub status: &'static str,
    pub last_seen: Option<String>,
    pub last_seen_ms: Option<i64>,
    pub rejected_count: u64,
    pub last_rejection: Option<RejectionView>,
    /// In a cloud node: the edge whose registry brought this device (it talks to that edge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
}

/// `GET /api/v1/devices` query: `?edge=<id>` keeps the devices of that edge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceListParams {
    pub edge: Option<String>,
}

/// The latest refusal of something a device sent.
#[derive(Debug, Serialize)]
pub struct RejectionView {
    pub reason: String,
    pub at: String,
    pub at_ms: i64,
}

impl DeviceView {
    pub fn new(d: Device, online: bool, seen_now: Option<i64>) -> Self {
        let last_seen_ms = match (d.last_seen_ms, seen_now) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Self {
            created: format_time(d.created_ms),
            created_ms: d.created_ms,
            status: if online { "online" } else { "offline" },
            last_seen: last_seen_ms.map(format_time),
            last_seen_ms,
            rejected_count: d.rejected_count,
            last_rejection: match (d.last_rejection, d.last_rejection_ms) {
                (Some(reason), Some(at_ms)) => Some(RejectionView {
                    reason,
                    at: format_time(at_ms),
                    at_ms,
                }),
                _ => None,
            },
            id: d.id,
            name: d.name,
            kind: d.kind,
            labels: d.labels,
            edge: None,
        }
    }
}

/// Query string of a series range.
#[derive(Debug, Deserialize)]
pub struct RangeParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub step: Option<String>,
    pub agg: Option<String>,
    pub limit: Option<usize>,
    /// Draw the range at about this many points (min/max per bucket), for charts.
    pub points: Option<usize>,
}

impl RangeParams {
    /// `from` and `to` in ms; `to` defaults to now, `from` to `default_span_ms` before `to`.
    /// 400 for a time that does not parse or a `to` not after `from`.
    pub fn range(&self, default_span_ms: i64) -> Result<(i64, i64), crate::ApiError> {
        use sentio_core::time::{now_ms, parse_time};
        let bad = |e: sentio_core::CoreError| crate::ApiError::bad_request(e.to_string());
        let to = match &self.to {
            Some(t) => parse_time(t).map_err(bad)?,
            None => now_ms() + 1,
        };
        let from = match &self.from {
            Some(f) => parse_time(f).map_err(bad)?,
            None => to.saturating_sub(default_span_ms),
        };
        if to <= from {
            return Err(crate::ApiError::bad_request("`to` must be after `from`"));
        }
        Ok((from, to))
    }
}

/// Query string of `DELETE /api/v1/devices/<id>`.
#[derive(Debug, Deserialize)]
pub struct DeleteParams {
    #[serde(default)]
    pub erase: bool,
}

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// MQTT rules; may be left out for a token with a scope.
    #[serde(default)]
    pub acl: Vec<AclRuleDto>,
    /// HTTP scopes, e.g. `["metrics"]`.
    #[serde(default)]
    pub scopes: Vec<ScopeDto>,
}

/// What a token may read over HTTP: `metrics` (`GET /metrics`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeDto {
    /// `GET /metrics`.
    Metrics,
}

impl From<ScopeDto> for Scope {
    fn from(s: ScopeDto) -> Self {
        match s {
            ScopeDto::Metrics => Scope::Metrics,
        }
    }
}

impl From<&Scope> for ScopeDto {
    fn from(s: &Scope) -> Self {
        match s {
            Scope::Metrics => ScopeDto::Metrics,
        }
    }
}

/// An API token as the API shows it (never its password).
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub username: String,
    pub acl: Vec<AclRuleDto>,
    pub scopes: Vec<ScopeDto>,
    pub created: String,
    pub created_ms: i64,
}

impl From<sentio_store::ApiToken> for TokenView {
    fn from(t: sentio_store::ApiToken) -> Self {
        Self {
            created: format_time(t.created_ms),
            id: t.id,
            name: t.name,
            username: t.username,
            acl: t.acl.iter().map(AclRuleDto::from).collect(),
            scopes: t.scopes.iter().map(ScopeDto::from).collect(),
            created_ms: t.created_ms,
        }
    }
}

/// One ACL entry of a token: an MQTT topic filter and what it allows, or with `"deny": true`
/// refuses (a deny entry wins over every allow entry).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRuleDto {
    /// An MQTT topic filter (`+` and `#` allowed).
    pub filter: String,
    /// What the filter allows (or refuses).
    pub rights: RightsDto,
    /// A deny entry; absent means allow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deny: bool,
}

/// What an ACL entry allows: `publish`, `subscribe` or `both`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RightsDto {
    /// PUBLISH to matching topics.
    Publish,
    /// SUBSCRIBE to filters inside the rule's filter.
    Subscribe,
    /// Both.
    Both,
}

impl From<&AclRule> for AclRuleDto {
    fn from(r: &AclRule) -> Self {
        Self {
            filter: r.filter.clone(),
            rights: match r.rights {
                Rights::Publish => RightsDto::Publish,
                Rights::Subscribe => RightsDto::Subscribe,
                Rights::Both => RightsDto::Both,
            },
            deny: r.deny,
        }
    }
}

impl From<AclRuleDto> for AclRule {
    fn from(r: AclRuleDto) -> Self {
        Self {
            filter: r.filter,
            rights: match r.rights {
                RightsDto::Publish => Rights::Publish,
                RightsDto::Subscribe => Rights::Subscribe,
                RightsDto::Both => Rights::Both,
            },
            deny: r.deny,
        }
    }
}

/// `POST /api/v1/tokens` answer: the only time the password is shown.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenView,
    pub password: String,
}

/// A connected MQTT client as `GET /api/v1/broker/clients` shows it.
#[derive(Debug, Serialize)]
pub struct BrokerClientView {
    pub client_id: String,
    pub username: Option<String>,
    /// `device` or `token`.
    pub kind: &'static str,
    /// `3.1.1` or `5.0`.
    pub protocol: &'static str,
    pub address: String,
    pub connected: String,
    pub connected_ms: i64,
    pub subscriptions: Vec<String>,
    pub queue_depth: usize,
    /// Messages dropped from this session's queue at the configured bound.
    pub dropped: u64,
}

impl From<sentio_broker::ClientInfo> for BrokerClientView {
    fn from(c: sentio_broker::ClientInfo) -> Self {
        let kind = match &c.username {
            Some(u) if u.starts_with(sentio_store::TOKEN_USERNAME_PREFIX) => "token",
            _ => "device",
        };
        Self {
            connected: format_time(c.connected_ms),
            client_id: c.client_id,
            username: c.username,
            kind,
            protocol: c.protocol,
            address: c.address.to_string(),
            connected_ms: c.connected_ms,
            subscriptions: c.subscriptions,
            queue_depth: c.queue_depth,
            dropped: c.dropped,
        }
    }
}

/// An entry of the audit log as `GET /api/v1/audit` shows it.
#[derive(Debug, Serialize)]
pub struct AuditEntryView {
    /// Its id (increasing).
    pub id: i64,
    /// When (ms).
    pub ts_ms: i64,
    /// Who: `admin` or the component that acted.
    pub actor: String,
    /// What, e.g. `device.create`.
    pub action: String,
    /// What it was done to; `null` once that device was erased.
    pub subject: Option<String>,
    /// For an erased device: a keyed digest of its id.
    pub subject_digest: Option<String>,
    /// Details without personal data.
    pub detail: serde_json::Value,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id,
            ts_ms: e.ts_ms,
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            subject_digest: e.subject_digest.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// `PATCH /api/v1/devices/<id>` body: a new name, and labels to set (a string) or remove
/// (`null`); labels not named are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, Option<String>>,
    /// Read only to refuse it with a reason (the detectors group peers by kind).
    pub kind: Option<serde_json::Value>,
}

/// `POST /api/v1/query` body: several series in one request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// Which devices: by id, or by label selector.
    pub devices: DeviceSelector,
    /// Metrics of each device; every metric each device has when absent.
    pub metrics: Option<Vec<String>>,
    /// Milliseconds or RFC 3339 (default: `to` minus one hour).
    pub from: Option<serde_json::Value>,
    /// Milliseconds or RFC 3339, exclusive (default: now).
    pub to: Option<serde_json::Value>,
    pub step: Option<String>,
    pub agg: Option<String>,
    /// Draw each series at about this many points (for charts).
    pub points: Option<usize>,
    /// Most points (or buckets) per series; the rest is announced with that series' `next`.
    pub limit: Option<usize>,
}

/// The `devices` of a query: exactly one of `ids` and `labels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSelector {
    pub ids: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// Asserts that `value` serializes to exactly `expect`.
    #[track_caller]
    pub(crate) fn check(value: impl Serialize, expect: &str) {
        let got = serde_json::to_string(&value).expect("DTOs serialise");
        assert_eq!(got, expect);
    }

    fn device() -> Device {
        Device {
            id: "pump-1".into(),
            name: "Pump 1".into(),
            kind: "pump".into(),
            labels: BTreeMap::from([("site".to_string(), "plant-1".to_string())]),
            created_ms: 1_700_000_000_000,
            last_seen_ms: Some(1_700_000_060_000),
            rejected_count: 1,
            last_rejection: Some("not JSON".into()),
            last_rejection_ms: Some(1_700_000_030_000),
        }
    }

    #[test]
    fn devices() {
        check(
            DeviceView::new(device(), true, Some(1_700_000_120_000)),
            r#"{"id":"pump-1","name":"Pump 1","kind":"pump","labels":{"site":"plant-1"},"created":"2023-11-14T22:13:20Z","created_ms":1700000000000,"status":"online","last_seen":"2023-11-14T22:15:20Z","last_seen_ms":1700000120000,"rejected_count":1,"last_rejection":{"reason":"not JSON","at":"2023-11-14T22:13:50Z","at_ms":1700000030000}}"#,
        );
        let mut quiet = device();
        quiet.last_seen_ms = None;
        quiet.last_rejection = None;
        check(
            DeviceView::new(quiet, false, None),
            r#"{"id":"pump-1","name":"Pump 1","kind":"pump","labels":{"site":"plant-1"},"created":"2023-11-14T22:13:20Z","created_ms":1700000000000,"status":"offline","last_seen":null,"last_seen_ms":null,"rejected_count":1,"last_rejection":null}"#,
        );
        check(
            CreatedDevice {
                id: "pump-1".into(),
                secret: "s3cret".into(),
                mqtt_username: "pump-1".into(),
                telemetry_topic: "sentio/pump-1/telemetry".into(),
            },
            r#"{"id":"pump-1","secret":"s3cret","mqtt_username":"pump-1","telemetry_topic":"sentio/pump-1/telemetry"}"#,
        );
    }

    #[test]
    fn tokens() {
        let token = sentio_store::ApiToken {
            id: "00ff00ff00ff00ff".into(),
            name: "grafana".into(),
            username: "token:00ff00ff00ff00ff".into(),
            acl: vec![
                AclRule::allow("sentio/+/telemetry", Rights::Subscribe),
                AclRule::allow("cmd/#", Rights::Both),
                AclRule::deny("cmd/admin/#", Rights::Publish),
            ],
            scopes: vec![Scope::Metrics],
            created_ms: 1_700_000_000_000,
        };
        let view = r#"{"id":"00ff00ff00ff00ff","name":"grafana","username":"token:00ff00ff00ff00ff","acl":[{"filter":"sentio/+/telemetry","rights":"subscribe"},{"filter":"cmd/#","rights":"both"},{"filter":"cmd/admin/#","rights":"publish","deny":true}],"scopes":["metrics"],"created":"2023-11-14T22:13:20Z","created_ms":1700000000000"#;
        check(TokenView::from(token.clone()), &format!("{view}}}"));
        check(
            CreatedToken {
                token: token.into(),
                password: "pw".into(),
            },
            &format!(r#"{view},"password":"pw"}}"#),
        );
        let body: CreateToken =
            serde_json::from_str(r#"{"name":"n","acl":[{"filter":"a/#","rights":"publish"},{"filter":"a/s","rights":"both","deny":true}]}"#)
                .unwrap();
        let rules: Vec<AclRule> = body.acl.into_iter().map(AclRule::from).collect();
        assert_eq!(
            rules,
            [
                AclRule::allow("a/#", Rights::Publish),
                AclRule::deny("a/s", Rights::Both)
            ]
        );
        for bad in [
            r#"{"name":"n","acl":[{"filter":"a","rights":"read"}]}"#,
            r#"{"name":"n","acl":[{"filter":"a","rights":"both","x":1}]}"#,
        ] {
            assert!(serde_json::from_str::<CreateToken>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn broker_clients() {
        let client = sentio_broker::ClientInfo {
            client_id: "c1".into(),
            username: Some("token:00ff".into()),
            protocol: "5.0",
            address: "127.0.0.1:5000".parse().unwrap(),
            connected_ms: 1_700_000_000_000,
            subscriptions: vec!["sentio/#".into()],
            queue_depth: 2,
            dropped: 0,
        };
        check(
            BrokerClientView::from(client),
            r#"{"client_id":"c1","username":"token:00ff","kind":"token","protocol":"5.0","address":"127.0.0.1:5000","connected":"2023-11-14T22:13:20Z","connected_ms":1700000000000,"subscriptions":["sentio/#"],"queue_depth":2,"dropped":0}"#,
        );
    }

    #[test]
    fn audit() {
        let entry = AuditEntry {
            id: 3,
            ts_ms: 1_700_000_000_000,
            actor: "admin".into(),
            action: "device.erase".into(),
            subject: None,
            subject_digest: Some("ab12".into()),
            detail: json!({"points": 10}),
        };
        check(
            AuditEntryView::from(&entry),
            r#"{"id":3,"ts_ms":1700000000000,"actor":"admin","action":"device.erase","subject":null,"subject_digest":"ab12","detail":{"points":10}}"#,
        );
    }
}
