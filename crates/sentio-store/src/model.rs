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
    /// Only alerts someone acknowledged (`true`) or nobody did (`false`).
    pub acknowledged: Option<bool>,
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
    /// What the token may read over HTTP (`Authorization: Bearer token:<id>:<password>`).
    pub scopes: Vec<Scope>,
    /// Creation time (ms).
    pub created_ms: i64,
}

/// What an API token may do over HTTP besides MQTT. Scopes only read; nothing that changes
/// state is ever in a scope (that stays with the admin token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `GET /metrics`.
    Metrics,
}

/// What is needed to create an API token (validated by the store).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Unique name, 1-100 characters.
    pub name: String,
    /// Its MQTT rules; may be empty only for a token with a scope.
    pub acl: Vec<sentio_core::acl::AclRule>,
    /// Its HTTP scopes (none: an MQTT identity only).
    pub scopes: Vec<Scope>,
}

/// How long data is kept: raw points globally, per device kind and per device (the most specific
/// wins), and the 1-minute and 1-hour rollups. Durations in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Raw points of every series without a more specific setting.
    pub raw_ms: i64,
    /// Raw points of the devices of a kind.
    pub kinds: BTreeMap<String, i64>,
    /// Raw points of one device (wins over its kind).
    pub devices: BTreeMap<String, i64>,
    /// 1-minute rollups.
    pub rollup_1m_ms: i64,
    /// 1-hour rollups.
    pub rollup_1h_ms: i64,
}

/// A day in ms.
const DAY_MS: i64 = 86_400_000;

/// The shortest raw retention an operator sets without saying it is meant (`"force": true` in
/// the API): one hour. Below it, a slip such as `1m` (a minute, meant as a month) would delete
/// nearly every raw point at the next maintenance pass. The store itself takes any positive
/// retention ([`RetentionPolicy::validate`]); the API and the configuration keep to the floor.
pub const RAW_RETENTION_FLOOR_MS: i64 = 3_600_000;

impl Default for RetentionPolicy {
    /// Raw points 7 days, 1-minute rollups 90 days, 1-hour rollups 2 years (730 days).
    fn default() -> Self {
        Self {
            raw_ms: 7 * DAY_MS,
            kinds: BTreeMap::new(),
            devices: BTreeMap::new(),
            rollup_1m_ms: 90 * DAY_MS,
            rollup_1h_ms: 730 * DAY_MS,
        }
    }
}

impl RetentionPolicy {
    /// How long raw points of `device` (of `kind`) are kept.
    pub fn raw_for(&self, device: &str, kind: Option<&str>) -> i64 {
        self.devices
            .get(device)
            .or_else(|| kind.and_then(|k| self.kinds.get(k)))
            .copied()
            .unwrap_or(self.raw_ms)
    }

    /// Checks that every duration is positive and that rollups are kept at least as long as
    /// the raw points they summarise (1-hour ones at least as long as 1-minute ones).
    pub fn validate(&self) -> Result<(), String> {
        let all = std::iter::once(("global", self.raw_ms))
            .chain(self.kinds.values().map(|v| ("a kind's", *v)))
            .chain(self.devices.values().map(|v| ("a device's", *v)));
        let mut longest_raw = 0;
        for (what, ms) in all {
            if ms <= 0 {
                return Err(format!("{what} raw retention must be positive"));
            }
            longest_raw = longest_raw.max(ms);
        }
        if self.rollup_1m_ms <= 0 || self.rollup_1h_ms < self.rollup_1m_ms {
            return Err("rollups: 1m must be positive and 1h at least as long as 1m".into());
        }
        if self.rollup_1h_ms < longest_raw {
            return Err(format!(
                "1h rollups ({} ms) must be kept at least as long as the longest raw retention ({longest_raw} ms)",
                self.rollup_1h_ms
            ));
        }
        Ok(())
    }
}

/// Which data answered a query: raw points or a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// Every stored point.
    #[serde(rename = "raw")]
    Raw,
    /// 1-minute rollups (raw points expired in the range), then raw points after them.
    #[serde(rename = "1m")]
    Minute,
    /// 1-hour rollups, then raw points after them.
    #[serde(rename = "1h")]
    Hour,
}

impl Resolution {
    /// `raw`, `1m` or `1h`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Minute => "1m",
            Self::Hour => "1h",
        }
    }

    /// Bucket width (ms); 1 for raw.
    pub fn width_ms(self) -> i64 {
        match self {
            Self::Raw => 1,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
        }
    }
}

/// Size of the store on disk against its budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// Bytes of every file in the data directory (database, its log, broker state).
    pub bytes: u64,
    /// Bytes inside the database file free for reuse (deleted data); counted in `bytes`.
    pub free_bytes: u64,
    /// The disk budget, if one is set.
    pub budget_bytes: Option<u64>,
    /// Whether the budget is under pressure: the oldest raw points are being removed.
    pub over_budget: bool,
    /// Raw points removed to stay within the budget since start.
    pub budget_evicted_points: u64,
    /// Of `bytes`: the database file.
    #[serde(default)]
    pub database_bytes: u64,
    /// Of `bytes`: the database's write-ahead log.
    #[serde(default)]
    pub log_bytes: u64,
    /// Of `bytes`: the broker's sessions and queues.
    #[serde(default)]
    pub broker_bytes: u64,
}

/// What one maintenance pass (rollups, retention, disk budget) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceReport {
    /// 1-minute buckets written (new, or recomputed after late points).
    pub rolled_buckets: u64,
    /// Raw points removed because their retention expired.
    pub expired_points: u64,
    /// Rollup rows removed because their retention expired.
    pub expired_rollups: u64,
    /// Raw points removed to stay within the disk budget.
    pub evicted_points: u64,
    /// Whether the pass stopped before finishing (call again soon).
    pub more: bool,
    /// The longest the pass held the database in one step (µs): how long ingest could wait.
    pub longest_step_us: u64,
}

/// One rollup row: the statistics of a series over one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RollupRow {
    /// Start of the bucket (ms).
    pub bucket_ms: i64,
    /// Points in the bucket.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// Time (ms) and value of the first point.
    pub first: (i64, f64),
    /// Time (ms) and value of the last point.
    pub last: (i64, f64),
}

/// The AI engine's expected value and normal range of a series over one time bucket (1 minute
/// as kept; wider when a range is drawn at fewer buckets), from the points it scored there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandRow {
    /// Start of the bucket (ms).
    pub bucket_ms: i64,
    /// Scored points in the bucket.
    pub count: u64,
    /// Mean of the values the engine expected.
    pub expected: f64,
    /// Lowest lower bound of the normal range.
    pub lower: f64,
    /// Highest upper bound of the normal range.
    pub upper: f64,
}

impl BandRow {
    /// The band of one scored point in the 1-minute bucket holding `ts_ms`.
    pub fn scored(ts_ms: i64, expected: f64, lower: f64, upper: f64) -> Self {
        Self {
            bucket_ms: ts_ms.div_euclid(60_000) * 60_000,
            count: 1,
            expected,
            lower,
            upper,
        }
    }

    /// Adds `other` (of the same bucket): the count-weighted mean of `expected`, the lowest
    /// `lower` and the highest `upper`, so merging parts in any order gives the same row.
    pub fn merge(&mut self, other: &BandRow) {
        let n = (self.count + other.count) as f64;
        self.expected =
            (self.expected * self.count as f64 + other.expected * other.count as f64) / n;
        self.count += other.count;
        self.lower = self.lower.min(other.lower);
        self.upper = self.upper.max(other.upper);
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its id (increasing).
    pub id: i64,
    /// When (ms).
    pub ts_ms: i64,
    /// Who: `admin` (the admin token) or the component that acted, e.g. `retention`.
    pub actor: String,
    /// What, e.g. `device.create`, `device.erase`, `token.revoke`.
    pub action: String,
    /// What it was done to (a device or token id); `None` once that device was erased.
    pub subject: Option<String>,
    /// For an erased device: a keyed digest of its id instead of the id, so that
    /// `GET /api/v1/audit?device=<id>` still finds the erasure.
    pub subject_digest: Option<String>,
    /// Details without personal data (counts, names of settings).
    pub detail: serde_json::Value,
}

/// A new audit entry.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// What it was done to.
    pub subject: Option<String>,
    /// Details without personal data.
    pub detail: serde_json::Value,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this action.
    pub action: Option<String>,
    /// Only entries about this device or token id (also an erased device's, by digest).
    pub subject: Option<String>,
    /// Only entries older than this id (the next page after the last entry seen).
    pub before: Option<i64>,
    /// Most entries, newest first.
    pub limit: usize,
}

/// A silence to create (the store gives it its id).
#[derive(Debug, Clone)]
pub struct NewSilence {
    /// What it mutes.
    pub matcher: sentio_core::AlertMatcher,
    /// Until when (ms).
    pub until_ms: i64,
    /// Why.
    pub reason: String,
    /// Who made it.
    pub author: String,
    /// When (ms).
    pub created_ms: i64,
}

/// A notification to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The channel's name.
    pub channel: String,
    /// Its id, the same at every attempt (the webhook's `webhook-id`).
    pub msg_id: String,
    /// The JSON body.
    pub body: String,
    /// When it was queued (ms): it is given up `give_up_after` later.
    pub created_ms: i64,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// The outbox row.
    pub id: i64,
    /// The message.
    pub message: NewMessage,
    /// Attempts that failed so far.
    pub attempts: u32,
}

/// How a channel's deliveries went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelStats {
    /// The channel.
    pub name: String,
    /// Notifications it accepted.
    pub delivered: u64,
    /// Waiting for their first or next attempt.
    pub pending: u64,
    /// Given up (still failing after `give_up_after`).
    pub failed: u64,
    /// The latest failure, with its time (ms).
    pub last_error: Option<(i64, String)>,
}

/// Alerts of one kind on devices of one kind that opened together, notified as one.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertGroup {
    /// The store's id (0 before it is saved).
    pub id: i64,
    /// The members' alert kind.
    pub alert_kind: sentio_core::AlertKind,
    /// The members' device kind.
    pub device_kind: String,
    /// When the first member opened (ms).
    pub opened_ms: i64,
    /// The members: (alert id, device).
    pub members: Vec<(i64, String)>,
}
