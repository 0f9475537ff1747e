//! The node's one configuration: `Config`, read from `sentio.toml` (by default
//! `<data>/sentio.toml`, or the file given with `--config`), then overridden by environment
//! variables and command-line flags (`main.rs`), checked once ([`Config::check`]) and handed to
//! [`crate::node::Node::start`]. Every key has a default, so no file is needed.
//!
//! Values people write by hand are written as people write them: durations as `7d` or `36h`,
//! sizes as `10GB` or `512MiB`, limits as `pump.bearing_temp<=90@2h`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sentio_ai::DeviceModelConfig;
use sentio_api::HttpLimits;
use sentio_broker::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PACKET, Limits};
use sentio_pipeline::actuate::{CommandLimits, DEFAULT_MAX_TWIN_BYTES};
use sentio_pipeline::rules::RuleClock;
use sentio_pipeline::rules::replay::ReplayLimits;
use sentio_pipeline::{DeclaredLimit, PipelineConfig};
use sentio_sim::FleetSpec;
use serde::{Deserialize, Serialize};

/// Fewest characters of an admin token given by the operator (a generated one has 64).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Name of the configuration file looked for in the data directory.
pub const CONFIG_FILE: &str = "sentio.toml";

/// What is wrong with a configuration: always names the key (and the file, when it came from
/// one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, key).
        message: String,
    },
    /// A value is out of range, or two keys contradict each other.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `mqtt.tls.client_ca`.
        key: &'static str,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// The whole configuration of a node. Each table is one layer of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The data directory: database, broker state, admin token, generated TLS certificate.
    pub data: PathBuf,
    /// The HTTP API, WebSocket stream and dashboard.
    pub http: HttpConfig,
    /// The embedded MQTT broker.
    pub mqtt: MqttConfig,
    /// The time-series store: retention and disk budget.
    pub store: StoreConfig,
    /// Ingest: which timestamps are accepted.
    pub pipeline: PipelineSection,
    /// The anomaly engine: declared limits.
    pub ai: AiConfig,
    /// Commands to devices.
    pub commands: CommandsConfig,
    /// Devices' twins.
    pub twins: TwinsConfig,
    /// Users' rules: replay bounds.
    pub rules: RulesConfig,
    /// The simulated demo fleet.
    pub demo: DemoConfig,
    /// Edge mode: the uplink to a cloud Sentio.
    pub edge: EdgeConfig,
    /// In a cloud node: how it watches the edges linked to it.
    pub edges: EdgesConfig,
    /// Notifications: grouping and delivery retries.
    pub notify: NotifySection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data: PathBuf::from("data"),
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            store: StoreConfig::default(),
            pipeline: PipelineSection::default(),
            ai: AiConfig::default(),
            commands: CommandsConfig::default(),
            twins: TwinsConfig::default(),
            rules: RulesConfig::default(),
            demo: DemoConfig::default(),
            edge: EdgeConfig::default(),
            edges: EdgesConfig::default(),
            notify: NotifySection::default(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address (`0.0.0.0:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The admin token (at least [`MIN_ADMIN_TOKEN_LEN`] characters). Better kept out of this
    /// file: `admin_token_file`, the environment (`SENTIO_ADMIN_TOKEN`) or, when absent
    /// everywhere, a random one generated into `<data>/admin.token` (mode 0600) on first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// A file holding the admin token (trailing whitespace ignored), so that it appears on no
    /// command line and in no configuration file; not with `admin_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// Timeouts and connection caps of the HTTP listener (`[http.limits]`), for plain HTTP
    /// and HTTPS together.
    pub limits: HttpLimits,
    /// HTTPS beside plain HTTP (`[http.tls]`).
    pub tls: HttpTlsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_token: None,
            admin_token_file: None,
            limits: HttpLimits::default(),
            tls: HttpTlsConfig::default(),
        }
    }
}

/// `[http.tls]`: the API and the page over HTTPS, with the MQTT over TLS certificate
/// (`mqtt.tls.cert` and `mqtt.tls.key`, or the one generated into `<data>/tls/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// Listen for HTTPS (off by default; plain HTTP on `http.listen` stays).
    pub enabled: bool,
    /// Its address (`0.0.0.0:8443`; port 0 picks a free one).
    pub listen: SocketAddr,
}

impl Default for HttpTlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
        }
    }
}

/// `[mqtt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Listen address for MQTT over TCP (`0.0.0.0:1883`).
    pub listen: SocketAddr,
    /// Largest packet accepted, in bytes.
    pub max_packet_size: usize,
    /// Most simultaneous connections (0 = unlimited); beyond it CONNACK 0x97 (3.1.1: 0x03).
    pub max_connections: usize,
    /// Admit clients that send no username, confined to `public/#` (off by default).
    pub allow_anonymous: bool,
    /// Per-client limits (`[mqtt.limits]`).
    pub limits: Limits,
    /// MQTT over TLS (`[mqtt.tls]`).
    pub tls: MqttTlsConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            max_packet_size: DEFAULT_MAX_PACKET,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_anonymous: false,
            limits: Limits::default(),
            tls: MqttTlsConfig::default(),
        }
    }
}

/// `[mqtt.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttTlsConfig {
    /// Listen for MQTT over TLS (on by default).
    pub enabled: bool,
    /// Its address (`0.0.0.0:8883`).
    pub listen: SocketAddr,
    /// PEM certificate chain (with `key`); without both, a self-signed certificate is
    /// generated into `<data>/tls/` on first start and its SHA-256 fingerprint logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Mutual TLS: PEM CA certificate(s). A client certificate it signed whose CN is a
    /// registered device id authenticates as that device without a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

impl Default for MqttTlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: sentio_broker::DEFAULT_TLS_LISTEN
                .parse()
                .expect("the default TLS address parses"),
            cert: None,
            key: None,
            client_ca: None,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Disk budget of the data directory (e.g. `10GB`): when the database passes 95 % of it
    /// the oldest raw points go (rollups stay) until under 90 % (on an edge: delivered ones
    /// first, then undelivered ones degraded to their minute rollups, only then dropped, every
    /// step counted in the outbox's counts); when the whole directory is at
    /// it, the broker refuses retained messages that would grow its state (broker state is
    /// never a reason to remove telemetry). None by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_budget: Option<ByteSize>,
    /// `[store.retention]`.
    pub retention: RetentionConfig,
}

/// `[store.retention]`: how long data is kept. A key set here is applied when the node
/// starts with a value different from the one applied last time, so a retention changed
/// through the API (`PUT /api/v1/retention`) is kept across restarts until this file changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw points of every series without a kind or device setting (stored default `7d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Span>,
    /// 1-minute rollups (stored default `90d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollup_1m: Option<Span>,
    /// 1-hour rollups (stored default `730d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollup_1h: Option<Span>,
}

impl RetentionConfig {
    /// Whether any key is set.
    pub fn is_empty(&self) -> bool {
        self.raw.is_none() && self.rollup_1m.is_none() && self.rollup_1h.is_none()
    }
}

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSection {
    /// The late-point window: telemetry stamped further back than this (e.g. `1h`, `7d`) is
    /// refused with a reason recorded on the device; `none` accepts any past time.
    pub late_window: SpanOrNone,
    /// Most distinct metrics one device may have (numeric and text); points of new metrics
    /// beyond it are refused with a reason recorded on the device.
    pub max_series_per_device: usize,
}

impl Default for PipelineSection {
    fn default() -> Self {
        let defaults = PipelineConfig::default();
        Self {
            late_window: SpanOrNone(defaults.max_late_ms),
            max_series_per_device: defaults.max_series_per_device,
        }
    }
}

/// `[ai]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// A device with stored points but nothing learnt at start (data from a version without
    /// detector state, a kill before its first save) has its detectors seeded from this much of
    /// its latest history before its first live point is judged; `none` turns it off.
    pub seed_history: SpanOrNone,
    /// Limits declared per device kind and metric: `KIND.METRIC<=MAX`, `KIND.METRIC>=MIN` or
    /// both joined by `,`, optionally `@HORIZON` (default 1h). A reading beyond one raises a
    /// limit alert; a forecast reaching it within the horizon raises a predictive alert first.
    pub limits: Vec<LimitSetting>,
    /// `[ai.device_model]`: one multivariate model per device of two metrics or more.
    pub device_model: DeviceModelSetting,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            seed_history: SpanOrNone(Some(sentio_pipeline::DEFAULT_SEED_HISTORY_MS)),
            limits: Vec::new(),
            device_model: DeviceModelSetting::default(),
        }
    }
}

/// `[notify]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySection {
    /// Silence alerts are held this long per device kind before they are notified...
    pub group_wait: Span,
    /// ...and this many or more held together become one grouped alert (0: no grouping).
    pub group_min: usize,
    /// The first retry of a failed delivery waits this long, each next one twice as long...
    pub retry_first: Span,
    /// ...but never longer than this.
    pub retry_max: Span,
    /// A notification still failing this long after it was queued is given up.
    pub give_up_after: Span,
}

impl Default for NotifySection {
    fn default() -> Self {
        let d = sentio_notify::NotifyConfig::default();
        Self {
            group_wait: Span(d.group_wait_ms),
            group_min: d.group_min,
            retry_first: Span(d.retry_first_ms),
            retry_max: Span(d.retry_max_ms),
            give_up_after: Span(d.give_up_after_ms),
        }
    }
}

impl NotifySection {
    /// The notifier's settings.
    pub fn notify_config(&self) -> sentio_notify::NotifyConfig {
        sentio_notify::NotifyConfig {
            group_wait_ms: self.group_wait.0,
            group_min: self.group_min,
            retry_first_ms: self.retry_first.0.max(1),
            retry_max_ms: self.retry_max.0.max(1),
            give_up_after_ms: self.give_up_after.0,
            ..sentio_notify::NotifyConfig::default()
        }
    }
}

/// `[ai.device_model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceModelSetting {
    /// One model per device over all its metrics, raising `device` alerts.
    pub enabled: bool,
    /// An alert open this long makes the device's current state a new normal regime (said in
    /// the alert); a user can say so sooner (`{"new_normal": true}` feedback).
    pub adopt_after: Span,
    /// A metric whose latest reading is older than this is missing from the device's row.
    pub tolerance: Span,
    /// At most one row judged per this span: a device reporting every second is judged every
    /// 30 s, so the model's 120-row fit spans an hour and its alarm's persistence minutes.
    pub row_every: Span,
    /// Time constant of the slow learning after the fit from rows judged normal (its centre,
    /// spreads and correlations follow normal operation's slow variation; rows while an alert
    /// is open are never learnt); a span of years keeps the fit as it is.
    pub follow: Span,
}

impl Default for DeviceModelSetting {
    fn default() -> Self {
        let d = DeviceModelConfig::default();
        Self {
            enabled: true,
            adopt_after: Span(d.adopt_after_ms),
            tolerance: Span(d.tolerance_ms),
            row_every: Span(30_000),
            follow: Span(d.follow_ms),
        }
    }
}

impl DeviceModelSetting {
    /// The model's settings, `None` when it is off.
    pub fn model_config(&self) -> Option<DeviceModelConfig> {
        self.enabled.then(|| DeviceModelConfig {
            adopt_after_ms: self.adopt_after.0,
            tolerance_ms: self.tolerance.0,
            row_every_ms: self.row_every.0,
            follow_ms: self.follow.0,
            ..DeviceModelConfig::default()
        })
    }
}

/// `[commands]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsConfig {
    /// Open (pending or delivered) commands one device may have; beyond, `POST .../commands`
    /// answers 429.
    pub max_open_per_device: usize,
    /// Time to live of a command sent without `ttl`.
    pub default_ttl: Span,
    /// Longest `ttl` accepted.
    pub max_ttl: Span,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        let d = CommandLimits::default();
        Self {
            max_open_per_device: d.max_open_per_device,
            default_ttl: Span(d.default_ttl_ms),
            max_ttl: Span(d.max_ttl_ms),
        }
    }
}

/// `[twins]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwinsConfig {
    /// Largest desired or reported document, in bytes of JSON; a change beyond it is refused
    /// (HTTP 413).
    pub max_bytes: usize,
}

impl Default for TwinsConfig {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_TWIN_BYTES,
        }
    }
}

/// `[rules]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Most devices one replay (`POST /api/v1/rules/<id>/test`) covers; beyond, 422.
    pub replay_max_devices: usize,
    /// Longest range one replay covers; beyond, 422.
    pub replay_max_range: Span,
    /// The zone in which rules read `hour`, `minute` and `weekday` of each point: an IANA
    /// name (`Europe/Berlin`) or `UTC`.
    pub time_zone: String,
}

impl Default for RulesConfig {
    fn default() -> Self {
        let d = ReplayLimits::default();
        Self {
            replay_max_devices: d.max_devices,
            replay_max_range: Span(d.max_range_ms),
            time_zone: RuleClock::default().name().to_string(),
        }
    }
}

impl RulesConfig {
    /// The zone rules read the time of day in (checked at load: UTC if unreadable here).
    pub fn clock(&self) -> RuleClock {
        RuleClock::parse(&self.time_zone).unwrap_or_default()
    }

    /// The replay bounds.
    pub fn replay_limits(&self) -> ReplayLimits {
        ReplayLimits {
            max_devices: self.replay_max_devices,
            max_range_ms: self.replay_max_range.0,
        }
    }
}

/// `[edge]`: with `upstream` set this node is an edge: it runs everything as usual and
/// forwards every point it commits to a cloud Sentio, never losing one (its store is the
/// outbox; see `sentio_edge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// The cloud's MQTT broker, `mqtts://host:port` (MQTT over TLS, port 8883 by default) or
    /// `mqtt://host:port`; over WebSocket at the cloud's HTTP server `wss://host:443/mqtt`
    /// (in TLS, the same trust as `mqtts://`) or `ws://host:port/mqtt` (`--upstream`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// With `mqtts://` or `wss://`: a PEM file with the cloud's CA or its own certificate (a self-signed
    /// cloud's `tls/mqtt-cert.pem`), the only certificates trusted; the public CAs when left
    /// out (`--upstream-ca`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This edge's id, registered in the cloud with `POST /api/v1/edges` (`--edge-id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    /// The secret the cloud gave this edge. Better kept out of this file: `secret_file`
    /// (`--upstream-secret-file`) or the environment (`SENTIO_UPSTREAM_SECRET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A file holding the secret (trailing whitespace ignored); not with `secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Batch parts sent and not yet acknowledged, at most (a long link stays full).
    pub in_flight: usize,
    /// A part the cloud does not acknowledge within this ends the connection (a silent,
    /// black-holed link is detected this way); the next connection resends it.
    pub ack_timeout: Span,
    /// MQTT keep-alive of the uplink.
    pub keep_alive: Span,
    /// After an outage, most backlog points sent per second beside the live data (0: no
    /// limit).
    pub backlog_rate: u64,
    /// Share of `in_flight` kept for the backlog while it drains (at least one part), so it
    /// progresses however busy the live data is; 0.0 to 1.0.
    pub backlog_floor: f64,
    /// How long a live batch may wait for later ones to share its message (fewer bytes on the
    /// wire a point); the backlog never waits.
    pub coalesce: Span,
    /// Live points ready that go at once, without waiting out `coalesce`.
    pub coalesce_points: usize,
    /// What goes up (`--uplink-policy`): `raw`, every point (the default), or `aggregates`,
    /// each closed minute's rollup per series plus the raw points around each alert.
    pub policy: sentio_store::UplinkPolicy,
    /// With `aggregates`: the raw points this long before and after each alert go up too.
    pub raw_around_alert: Span,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            upstream: None,
            ca_file: None,
            edge_id: None,
            secret: None,
            secret_file: None,
            in_flight: 16,
            ack_timeout: Span(10_000),
            keep_alive: Span(5_000),
            backlog_rate: 20_000,
            backlog_floor: 0.25,
            coalesce: Span(300),
            coalesce_points: 2_000,
            policy: sentio_store::UplinkPolicy::Raw,
            raw_around_alert: Span(300_000),
        }
    }
}

impl EdgeConfig {
    /// The uplink's settings when this node is an edge (`None` otherwise), with the secret
    /// read from its file.
    pub fn uplink(&self) -> Result<Option<sentio_edge::UplinkSettings>, ConfigError> {
        let Some(url) = &self.upstream else {
            return Ok(None);
        };
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let upstream = sentio_edge::Upstream::parse(url)
            .map_err(|e| invalid("edge.upstream", e.to_string()))?;
        let id = self.edge_id.as_deref().ok_or_else(|| {
            invalid(
                "edge.edge_id",
                "an edge needs its id (--edge-id), registered in the cloud with POST /api/v1/edges"
                    .into(),
            )
        })?;
        let edge_id = sentio_core::EdgeId::parse(id)
            .map_err(|e| invalid("edge.edge_id", e.to_string().replace("device", "edge")))?;
        let secret = match (&self.secret, &self.secret_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| invalid("edge.secret_file", format!("{}: {e}", path.display())))?
                .trim_end()
                .to_string(),
            (None, None) => {
                return Err(invalid(
                    "edge.secret",
                    "an edge needs the secret the cloud gave it: --upstream-secret-file FILE or SENTIO_UPSTREAM_SECRET".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "edge.secret_file",
                    "give the secret once: edge.secret (SENTIO_UPSTREAM_SECRET) or edge.secret_file (--upstream-secret-file)".into(),
                ));
            }
        };
        if self.keep_alive.0 < 5_000 {
            return Err(invalid(
                "edge.keep_alive",
                "at least 5s (5s is the default)".into(),
            ));
        }
        if self.in_flight == 0 {
            return Err(invalid(
                "edge.in_flight",
                "at least 1 (16 is the default)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.backlog_floor) {
            return Err(invalid(
                "edge.backlog_floor",
                "a share from 0.0 to 1.0 (0.25 is the default)".into(),
            ));
        }
        let mut s =
            sentio_edge::UplinkSettings::new(upstream, edge_id, secret, self.ca_file.as_deref())
                .map_err(|e| match e {
                    sentio_edge::SettingsError::CaFile(m) => invalid("edge.ca_file", m),
                    other => invalid("edge.upstream", other.to_string()),
                })?;
        s.in_flight = self.in_flight;
        s.ack_timeout = std::time::Duration::from_millis(self.ack_timeout.0.max(100) as u64);
        s.keep_alive = std::time::Duration::from_millis(self.keep_alive.0 as u64);
        s.backlog_rate = self.backlog_rate;
        s.backlog_floor = self.backlog_floor;
        s.coalesce = std::time::Duration::from_millis(self.coalesce.0.max(0) as u64);
        s.coalesce_points = self.coalesce_points.max(1);
        s.policy = self.policy;
        s.raw_around_alert =
            std::time::Duration::from_millis(self.raw_around_alert.0.max(0) as u64);
        Ok(Some(s))
    }
}

/// `[edges]`: in a cloud node, the edges linked to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgesConfig {
    /// An edge whose uplink has been down this long raises one alert (device `edge:<id>`,
    /// kind `silence`), resolved when it is back; not one per device behind it.
    pub offline_alert_after: Span,
    /// An edge whose clock (in its status reports) differs from this node's by more than this
    /// is flagged in `/api/v1/edges` (`clock_ok`) and raises one alert (device `edge:<id>`,
    /// kind `limit`), resolved when it is back within.
    pub clock_skew_limit: Span,
    /// Most (series, hour) pairs one re-sync (`POST /api/v1/edges/<id>/resync`) compares,
    /// and sends again; a wider range is refused (give `from`/`to`).
    pub resync_max_hours: u64,
}

impl Default for EdgesConfig {
    fn default() -> Self {
        Self {
            offline_alert_after: Span(300_000),
            clock_skew_limit: Span(30_000),
            resync_max_hours: 20_000,
        }
    }
}

/// `[demo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Run the simulated demo fleet (4 rooms, 3 pumps, 3 wearables) against the embedded
    /// broker; it injects faults, with ground truth in `<data>/demo-ground-truth.jsonl`.
    pub enabled: bool,
    /// Its seed: the same seed gives the same fleet, values and faults.
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            seed: FleetSpec::demo().seed,
        }
    }
}

impl Config {
    /// Defaults with another data directory.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// Defaults for a node on loopback whose ports the OS chooses (tests and benches): HTTP and
    /// MQTT on `127.0.0.1:0`, MQTT over TLS and HTTPS off (on `127.0.0.1:0` once enabled).
    pub fn loopback(data: impl Into<PathBuf>) -> Self {
        let mut c = Self::new(data);
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        c.http.listen = any_port;
        c.mqtt.listen = any_port;
        c.mqtt.tls.listen = any_port;
        c.mqtt.tls.enabled = false;
        c.http.tls.listen = any_port;
        c
    }

    /// The demo fleet's declared limits (`sentio_sim::DEMO_LIMITS`) as settings.
    pub fn demo_limits() -> Vec<LimitSetting> {
        sentio_sim::DEMO_LIMITS
            .iter()
            .map(|l| l.parse().expect("the demo's limits parse"))
            .collect()
    }

    /// Reads a configuration file; keys it does not set keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses a configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The effective configuration as TOML, with secrets replaced by `"<redacted>"`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.http.admin_token.is_some() {
            shown.http.admin_token = Some("<redacted>".into());
        }
        if shown.edge.secret.is_some() {
            shown.edge.secret = Some("<redacted>".into());
        }
        toml::to_string(&shown).expect("a configuration serializes")
    }

    /// The TLS listeners follow their plain listener's address when theirs was left at the
    /// default: `--mqtt 127.0.0.1:1883` keeps MQTT over TLS on loopback too (port 8883), and
    /// `--http 127.0.0.1:8080` the HTTPS listener. An address given for a TLS listener is kept.
    pub fn tls_follows_plain_listeners(&mut self) {
        let follow = |tls: &mut SocketAddr, default: SocketAddr, plain: SocketAddr| {
            if *tls == default && plain.ip() != default.ip() {
                tls.set_ip(plain.ip());
            }
        };
        follow(
            &mut self.mqtt.tls.listen,
            MqttTlsConfig::default().listen,
            self.mqtt.listen,
        );
        follow(
            &mut self.http.tls.listen,
            HttpTlsConfig::default().listen,
            self.http.listen,
        );
    }

    /// Checks what the types cannot: ranges and keys that need each other.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if let Some(t) = &self.http.admin_token {
            check_admin_token(t).map_err(|message| ConfigError::Invalid {
                key: "http.admin_token",
                message: format!("{message} (--admin-token, SENTIO_ADMIN_TOKEN or the key)"),
            })?;
            if self.http.admin_token_file.is_some() {
                return invalid(
                    "http.admin_token_file",
                    "give the admin token once: http.admin_token (--admin-token, SENTIO_ADMIN_TOKEN) or http.admin_token_file (--admin-token-file, SENTIO_ADMIN_TOKEN_FILE)",
                );
            }
        }
        if self.commands.max_open_per_device == 0 {
            return invalid(
                "commands.max_open_per_device",
                "at least 1, or no command could ever be sent; 100 is the default",
            );
        }
        if self.commands.default_ttl.0 <= 0 || self.commands.default_ttl.0 > self.commands.max_ttl.0
        {
            return invalid(
                "commands.default_ttl",
                "above 0 and at most commands.max_ttl",
            );
        }
        if self.rules.replay_max_devices == 0 || self.rules.replay_max_range.0 <= 0 {
            return invalid(
                "rules.replay_max_devices",
                "rules.replay_max_devices and rules.replay_max_range must be above 0",
            );
        }
        if let Err(why) = RuleClock::parse(&self.rules.time_zone) {
            return invalid("rules.time_zone", &why);
        }
        if self.twins.max_bytes < 2 {
            return invalid("twins.max_bytes", "at least 2 (an empty object, {})");
        }
        if self.http.limits.header_timeout_ms < 100 {
            return invalid(
                "http.limits.header_timeout_ms",
                "below 100 ms no client can send its headers; 10000 (10 s) is the default",
            );
        }
        if self.http.limits.body_timeout_ms < 100 {
            return invalid(
                "http.limits.body_timeout_ms",
                "below 100 ms no client can send a body; 30000 (30 s) is the default",
            );
        }
        if self.pipeline.max_series_per_device == 0 {
            return invalid(
                "pipeline.max_series_per_device",
                "0 would refuse every metric; 1000 is the default",
            );
        }
        let tls = &self.mqtt.tls;
        if tls.cert.is_some() != tls.key.is_some() {
            return invalid(
                "mqtt.tls.cert",
                "mqtt.tls.cert and mqtt.tls.key go together: set both, or neither for a generated certificate",
            );
        }
        if self.http.tls.enabled && !tls.enabled && tls.cert.is_none() {
            return invalid(
                "http.tls.enabled",
                "HTTPS uses the MQTT over TLS certificate: set mqtt.tls.cert and mqtt.tls.key, or keep mqtt.tls.enabled = true for the generated one",
            );
        }
        if tls.client_ca.is_some() && !tls.enabled {
            return invalid(
                "mqtt.tls.client_ca",
                "needs the MQTT over TLS listener (mqtt.tls.enabled = true)",
            );
        }
        if self.mqtt.limits.max_queued_messages == Some(0) {
            return invalid(
                "mqtt.limits.max_queued_messages",
                "a bound of 0 would drop every queued message; leave it out for no drops (back-pressure)",
            );
        }
        if self.mqtt.limits.max_keep_alive == Some(0) {
            return invalid(
                "mqtt.limits.max_keep_alive",
                "must be 1-65535 seconds; leave it out to let clients choose",
            );
        }
        if self.mqtt.max_packet_size == 0 {
            return invalid("mqtt.max_packet_size", "must be at least 1 byte");
        }
        if self.edge.upstream.is_none()
            && (self.edge.edge_id.is_some()
                || self.edge.ca_file.is_some()
                || self.edge.secret.is_some()
                || self.edge.secret_file.is_some())
        {
            return invalid(
                "edge.upstream",
                "edge.edge_id, edge.ca_file and the secret make sense only with the cloud to send to: --upstream mqtts://HOST:PORT",
            );
        }
        if self.edge.upstream.is_some() {
            self.edge.uplink()?;
        }
        if let Some(Span(raw)) = self.store.retention.raw
            && raw < sentio_store::RAW_RETENTION_FLOOR_MS
        {
            return invalid(
                "store.retention.raw",
                &format!(
                    "{} is {}, below the floor of {} for raw points; {}",
                    format_ms(raw),
                    sentio_core::time::spell_duration_ms(raw),
                    format_ms(sentio_store::RAW_RETENTION_FLOOR_MS),
                    sentio_core::time::DURATION_UNITS
                ),
            );
        }
        Ok(())
    }

    /// The pipeline's settings: the late-point window and the declared limits, plus the demo
    /// fleet's limits for the metrics not declared here when the demo runs.
    pub fn pipeline_config(&self) -> PipelineConfig {
        let mut limits: Vec<DeclaredLimit> =
            self.ai.limits.iter().map(|l| l.limit.clone()).collect();
        if self.demo.enabled {
            for l in Self::demo_limits() {
                let declared = |have: &DeclaredLimit| {
                    have.kind == l.limit.kind && have.metric == l.limit.metric
                };
                if !limits.iter().any(declared) {
                    limits.push(l.limit);
                }
            }
        }
        PipelineConfig {
            max_late_ms: self.pipeline.late_window.0,
            max_series_per_device: self.pipeline.max_series_per_device,
            limits,
            device_model: self.ai.device_model.model_config(),
            seed_history_ms: self.ai.seed_history.0.unwrap_or(0),
            commands: CommandLimits {
                max_open_per_device: self.commands.max_open_per_device,
                default_ttl_ms: self.commands.default_ttl.0,
                max_ttl_ms: self.commands.max_ttl.0,
            },
            max_twin_bytes: self.twins.max_bytes,
            rule_clock: self.rules.clock(),
            ..PipelineConfig::default()
        }
    }

    /// The demo fleet, when it runs.
    pub fn demo_fleet(&self) -> Option<FleetSpec> {
        self.demo.enabled.then(|| FleetSpec {
            seed: self.demo.seed,
            ..FleetSpec::demo()
        })
    }
}

/// Whether an admin token given by the operator is long enough: `Err` says why not.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    let n = token.chars().count();
    if n < MIN_ADMIN_TOKEN_LEN {
        return Err(format!(
            "the admin token has {n} characters, it must have at least {MIN_ADMIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

/// A span of time, written `500ms`, `30s`, `10m`, `36h`, `7d`; held in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub i64);

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        sentio_core::time::parse_duration_ms(&s)
            .map(Span)
            .map_err(|e| {
                format!(
                    "{e} (a duration such as 36h or 7d; {})",
                    sentio_core::time::DURATION_UNITS
                )
            })
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        format_ms(s.0)
    }
}

/// `ms` in the largest unit that holds it exactly.
fn format_ms(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    UNITS
        .iter()
        .find(|(n, _)| ms != 0 && ms % n == 0)
        .map_or(format!("{ms}ms"), |(n, u)| format!("{}{u}", ms / n))
}

/// A span, or `none` (the late-point window: any past time; the history seed: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpanOrNone(pub Option<i64>);

impl TryFrom<String> for SpanOrNone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Self(None));
        }
        sentio_core::time::parse_duration_ms(&s)
            .map(|ms| Self(Some(ms)))
            .map_err(|e| format!("{e} (a duration such as 1h or 7d, or `none`)"))
    }
}

impl From<SpanOrNone> for String {
    fn from(w: SpanOrNone) -> String {
        w.0.map_or("none".to_string(), format_ms)
    }
}

/// A size in bytes: `123`, `10GB`, `500MB`, `64KB` (powers of 1000) or `2GiB`, `8MiB`,
/// `64KiB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize(pub u64);

const BYTE_UNITS: [(&str, u64); 10] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
];

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: expected a size such as 10GB or 512MiB"))?;
        let unit = unit.trim();
        let mult = if unit.is_empty() {
            1
        } else {
            BYTE_UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    format!(
                        "{s:?}: unknown unit {unit:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                    )
                })?
        };
        n.checked_mul(mult)
            .filter(|b| *b > 0)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?}: must be a positive size"))
    }
}

impl TryFrom<String> for ByteSize {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ByteSize> for String {
    fn from(b: ByteSize) -> String {
        // The exact unit giving the shortest number.
        BYTE_UNITS
            .iter()
            .filter(|(_, m)| b.0.is_multiple_of(*m))
            .min_by_key(|(_, m)| b.0 / m)
            .map_or(format!("{}B", b.0), |(u, m)| format!("{}{u}", b.0 / m))
    }
}

/// A declared limit as written (`pump.bearing_temp<=90@2h`), parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LimitSetting {
    text: String,
    /// The parsed limit.
    pub limit: DeclaredLimit,
}

impl std::str::FromStr for LimitSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Self {
            text: s.to_string(),
            limit: DeclaredLimit::parse(s)?,
        })
    }
}

impl TryFrom<String> for LimitSetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<LimitSetting> for String {
    fn from(l: LimitSetting) -> String {
        l.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (file text, the error's key or text, or "" for a valid file).
    #[test]
    fn files_are_checked_with_the_key_named() {
        let cases = [
            ("", ""),
            ("[http]\nlisten = \"127.0.0.1:9000\"", ""),
            (
                "[store]\ndisk_budget = \"10GB\"\n[store.retention]\nraw = \"36h\"",
                "",
            ),
            ("[pipeline]\nlate_window = \"none\"", ""),
            ("[ai]\nlimits = [\"pump.bearing_temp<=90@2h\"]", ""),
            ("[mqtt.limits]\nmax_subscriptions = 5", ""),
            ("[htp]\nlisten = \"127.0.0.1:9000\"", "unknown field `htp`"),
            ("[http]\nlisten = \"nowhere\"", "invalid socket address"),
            ("[store]\ndisk_budget = \"10 parsecs\"", "unknown unit"),
            ("[store.retention]\nraw = \"soon\"", "a duration such as"),
            ("[ai]\nlimits = [\"pump\"]", "pump"),
            (
                "[mqtt.limits]\nmax_queued_messages = 0",
                "mqtt.limits.max_queued_messages",
            ),
            ("[mqtt.tls]\ncert = \"c.pem\"", "mqtt.tls.key go together"),
            (
                "[mqtt.tls]\nenabled = false\nclient_ca = \"ca.pem\"",
                "mqtt.tls.client_ca",
            ),
            ("[http]\nadmin_token = \"short\"", "http.admin_token"),
            (
                "[http]\nadmin_token = \"0123456789abcdef0123456789\"",
                "at least 32",
            ),
            (
                "[http]\nadmin_token = \"0123456789abcdef0123456789abcdef\"\nadmin_token_file = \"t\"",
                "http.admin_token_file",
            ),
            ("[http]\nadmin_token_file = \"/etc/sentio/admin.token\"", ""),
            ("[http.tls]\nenabled = true", ""),
            (
                "[edge]\nupstream = \"mqtt://cloud:1883\"\nedge_id = \"site-1\"\nsecret = \"s\"",
                "",
            ),
            (
                "[edge]\nupstream = \"mqtt://cloud\"\nsecret = \"s\"",
                "edge.edge_id",
            ),
            (
                "[edge]\nupstream = \"mqtts://cloud:8883\"\nedge_id = \"a\"\nsecret = \"s\"",
                "",
            ),
            (
                "[edge]\nupstream = \"mqtts://cloud\"\nedge_id = \"a\"\nsecret = \"s\"\nca_file = \"/nonexistent/ca.pem\"",
                "edge.ca_file",
            ),
            (
                "[edge]\nupstream = \"mqtt://cloud\"\nedge_id = \"a\"\nsecret = \"s\"\nca_file = \"ca.pem\"",
                "edge.ca_file",
            ),
            (
                "[edge]\nupstream = \"mqtt://cloud\"\nedge_id = \"a\"",
                "edge.secret",
            ),
            (
                "[edge]\nupstream = \"cloud:1883\"\nedge_id = \"a\"\nsecret = \"s\"",
                "edge.upstream",
            ),
            (
                "[edge]\nupstream = \"wss://cloud:443/mqtt\"\nedge_id = \"a\"\nsecret = \"s\"",
                "",
            ),
            (
                "[edge]\nupstream = \"ws://cloud:8080/mqtt\"\nedge_id = \"a\"\nsecret = \"s\"\nca_file = \"ca.pem\"",
                "edge.ca_file",
            ),
            (
                "[edge]\nupstream = \"https://cloud/mqtt\"\nedge_id = \"a\"\nsecret = \"s\"",
                "edge.upstream",
            ),
            ("[edge]\nedge_id = \"a\"", "edge.upstream"),
            (
                "[edge]\nupstream = \"mqtt://c\"\nedge_id = \"a\"\nsecret = \"s\"\nkeep_alive = \"1s\"",
                "edge.keep_alive",
            ),
            (
                "[edge]\nupstream = \"mqtt://c\"\nedge_id = \"a\"\nsecret = \"s\"\nbacklog_floor = 1.5",
                "edge.backlog_floor",
            ),
            (
                "[edge]\nupstream = \"mqtt://c\"\nedge_id = \"a b\"\nsecret = \"s\"",
                "edge.edge_id",
            ),
            (
                "[http.tls]\nenabled = true\n[mqtt.tls]\nenabled = false",
                "http.tls.enabled",
            ),
            (
                "[http.tls]\nenabled = true\n[mqtt.tls]\nenabled = false\ncert = \"c.pem\"\nkey = \"k.pem\"",
                "",
            ),
        ];
        for (text, want) in cases {
            let got = Config::from_toml(text).and_then(|c| c.check().map_err(|e| e.to_string()));
            match (got, want) {
                (Ok(()), "") => {}
                (Err(e), w) if !w.is_empty() && e.contains(w) => {}
                (got, _) => panic!("{text:?}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn printed_configuration_reads_back_and_hides_the_token() {
        let mut c = Config::from_toml(
            "[store]\ndisk_budget = \"512MiB\"\n[store.retention]\nraw = \"36h\"\n[ai]\nlimits = [\"boiler.temp<=90\"]",
        )
        .unwrap();
        c.http.admin_token = Some("a-secret-admin-token-123".into());
        c.edge.secret = Some("an-edge-secret-456".into());
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("a-secret-admin-token-123"), "{printed}");
        assert!(!printed.contains("an-edge-secret-456"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(printed.contains("disk_budget = \"512MiB\""), "{printed}");
        assert!(printed.contains("raw = \"36h\""), "{printed}");
        let mut back = Config::from_toml(&printed).unwrap();
        back.http.admin_token = c.http.admin_token.clone();
        back.edge.secret = c.edge.secret.clone();
        assert_eq!(back, c);
    }

    #[test]
    fn the_readme_example_is_a_valid_configuration() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("README has a TOML example") + 8;
        let len = readme[start..].find("```").expect("the example ends");
        let c = Config::from_toml(&readme[start..start + len]).expect("the example parses");
        c.check().expect("the example is valid");
        assert_eq!(c.ai.limits.len(), 1);
    }

    #[test]
    fn sizes_and_spans_print_in_their_largest_exact_unit() {
        assert_eq!(String::from("10GB".parse::<ByteSize>().unwrap()), "10GB");
        assert_eq!(String::from(ByteSize(1536)), "1536B");
        assert_eq!(String::from(ByteSize(2 << 30)), "2GiB");
        assert_eq!(String::from(Span(90 * 86_400_000)), "90d");
        assert_eq!(String::from(Span(36 * 3_600_000)), "36h");
        assert_eq!(String::from(Span(1_500)), "1500ms");
        assert_eq!(String::from(SpanOrNone(None)), "none");
    }
    #[test]
    fn tls_listeners_follow_a_loopback_plain_listener_unless_given() {
        let mut c = Config::default();
        c.mqtt.listen = "127.0.0.1:1883".parse().unwrap();
        c.http.listen = "[::1]:8080".parse().unwrap();
        c.tls_follows_plain_listeners();
        assert_eq!(c.mqtt.tls.listen, "127.0.0.1:8883".parse().unwrap());
        assert_eq!(c.http.tls.listen, "[::1]:8443".parse().unwrap());

        let mut c = Config::default();
        c.mqtt.listen = "127.0.0.1:1883".parse().unwrap();
        c.mqtt.tls.listen = "0.0.0.0:9883".parse().unwrap();
        c.tls_follows_plain_listeners();
        assert_eq!(c.mqtt.tls.listen, "0.0.0.0:9883".parse().unwrap());

        let mut c = Config::default();
        c.tls_follows_plain_listeners();
        assert_eq!(c, Config::default());
    }
}
