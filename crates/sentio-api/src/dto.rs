//! JSON wire types of the API.

use std::collections::BTreeMap;

use sentio_core::time::format_time;
use sentio_store::Device;
use serde::{Deserialize, Serialize};

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

/// Query string of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize)]
pub struct AlertParams {
    pub state: Option<String>,
    pub device: Option<String>,
    pub limit: Option<usize>,
}

/// Query string of `DELETE /api/v1/devices/<id>`.
#[derive(Debug, Deserialize)]
pub struct DeleteParams {
    #[serde(default)]
    pub erase: bool,
}

/// Body of `POST /api/v1/alerts/{id}/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// `true`: not a real problem (the detector becomes less sensitive); `false`: confirmed.
    pub false_alarm: bool,
    /// Optional free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub acl: Vec<sentio_core::acl::AclRule>,
}

/// An API token as the API shows it (never its password).
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub username: String,
    pub acl: Vec<sentio_core::acl::AclRule>,
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
            acl: t.acl,
            created_ms: t.created_ms,
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
