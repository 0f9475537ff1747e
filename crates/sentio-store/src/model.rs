//! Plain data the store hands out and takes in.

use std::collections::BTreeMap;

use sentio_core::{AlertState, DeviceId};
use serde::{Deserialize, Serialize};

/// A registered device, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Device id (also its MQTT username).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind, e.g. `pump`; used to group peers.
    pub kind: String,
    /// Free labels, e.g. `site=plant-1`.
    pub labels: BTreeMap<String, String>,
    /// Registration time (ms).
    pub created_ms: i64,
    /// Time of the last accepted point or connection (ms).
    pub last_seen_ms: Option<i64>,
    /// How many payloads or parts of payloads were refused.
    pub rejected_count: u64,
    /// The latest refusal, with its reason.
    pub last_rejection: Option<String>,
    /// When the latest refusal happened (ms).
    pub last_rejection_ms: Option<i64>,
}

/// What is needed to register a device.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Id (validated).
    pub id: String,
    /// Display name (defaults to the id).
    pub name: Option<String>,
    /// Kind (defaults to `device`).
    pub kind: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl NewDevice {
    /// A device with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            kind: None,
            labels: BTreeMap::new(),
        }
    }
}

/// A change to a registered device (`PATCH /api/v1/devices/<id>`).
#[derive(Debug, Clone, Default)]
pub struct DeviceUpdate {
    /// New display name.
    pub name: Option<String>,
    /// Labels to set (`Some`) or remove (`None`); labels not named are kept.
    pub labels: BTreeMap<String, Option<String>>,
}

/// One metric of a device with its latest value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// Metric name.
    pub metric: String,
    /// Time of the latest point (ms).
    pub latest_ts_ms: i64,
    /// Latest value.
    pub latest_value: f64,
}

/// Aggregation over a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Mean.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sum.
    Sum,
    /// Number of points.
    Count,
    /// First point of the bucket.
    First,
    /// Last point of the bucket.
    Last,
    /// Per-second rate of change within the bucket, as a derivative: (last value - first
    /// value) / (seconds between the bucket's first and last points). May be negative (a
    /// counter reset shows as a drop); a bucket with fewer than two points has no rate and is
    /// left out of the answer.
    Rate,
}

impl Agg {
    /// The names [`Agg::parse`] reads, for error messages.
    pub const NAMES: &str = "avg, min, max, sum, count, first, last or rate";

    /// Reads `avg|min|max|sum|count|first|last|rate`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "avg" | "mean" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "sum" => Self::Sum,
            "count" => Self::Count,
            "first" => Self::First,
            "last" => Self::Last,
            "rate" => Self::Rate,
            _ => return None,
        })
    }
}

/// A range query on one series: raw points, or one aggregate per `step`.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    /// Device.
    pub device: DeviceId,
    /// Metric.
    pub metric: String,
    /// Inclusive start (ms).
    pub from_ms: i64,
    /// Exclusive end (ms).
    pub to_ms: i64,
    /// Bucket width (ms) with the aggregation; raw points when `None`.
    pub step: Option<(i64, Agg)>,
    /// Most points returned; the rest is announced with `next`.
    pub limit: usize,
}

/// Points of a range query, and where to continue when the limit cut it short.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeResult {
    /// `(ts_ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
    /// The `from` of the following page, when there is more.
    pub next: Option<i64>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only this state.
    pub state: Option<AlertState>,
    /// Only this device.
    pub device: Option<String>,
    /// Most alerts returned, newest first.
    pub limit: usize,
}

/// Prefix of an API token's MQTT username (`token:<id>`); device ids cannot contain `:`, so a
/// token and a device never share a username.
pub const TOKEN_USERNAME_PREFIX: &str = "token:";

/// A scoped API token: an MQTT identity for an integration, confined to its ACL. Its password
/// is shown once at creation and stored only as a keyed digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Token id (16 hex characters).
    pub id: String,
    /// Unique name given by the user.
    pub name: String,
    /// MQTT username: `token:<id>` (device ids cannot contain `:`).
    pub username: String,
    /// Topic filters with their rights.
    pub acl: Vec<sentio_core::acl::AclRule>,
    /// Creation time (ms).
    pub created_ms: i64,
}

/// What is needed to create an API token (validated by the store).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Unique name, 1-100 characters.
    pub name: String,
    /// At least one rule.
    pub acl: Vec<sentio_core::acl::AclRule>,
}
