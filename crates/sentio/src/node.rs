//! One Sentio node on the embedded default: SQLite store, in-process bus, embedded broker,
//! HTTP API, and optionally the demo fleet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use sentio_api::AppState;
use sentio_broker::{
    Broker, BrokerConfig, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PACKET, Limits, TlsSettings,
};
use sentio_pipeline::{DeclaredLimit, LocalBus, Pipeline, PipelineConfig, Stores};
use sentio_sim::{FleetSpec, SimConfig};
use sentio_store::{
    DeviceRegistry, Maintenance, NewDevice, RetentionStore, SqliteStore, StorageHealth, StoreError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::token::{self, TokenSource};

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The data directory (database, broker state, admin token).
    pub data: PathBuf,
    /// MQTT listen address.
    pub mqtt: SocketAddr,
    /// HTTP listen address (API, dashboard, stream).
    pub http: SocketAddr,
    /// The admin token; generated into `<data>/admin.token` when absent.
    pub admin_token: Option<String>,
    /// Run the simulated demo fleet against the embedded broker.
    pub demo: Option<FleetSpec>,
    /// Largest MQTT packet accepted.
    pub max_packet_size: usize,
    /// MQTT over TLS listen address (off when `None`).
    pub mqtt_tls: Option<SocketAddr>,
    /// PEM certificate chain and private key for MQTT over TLS; when absent, a self-signed
    /// certificate is generated into `<data>/tls/` on first start and reused.
    pub tls_cert_key: Option<(PathBuf, PathBuf)>,
    /// Pipeline tuning.
    pub pipeline: PipelineConfig,
    /// Mutual TLS: PEM CA whose client certificates (CN = device id) replace device secrets on
    /// the MQTT over TLS listener.
    pub tls_client_ca: Option<PathBuf>,
    /// Admit MQTT clients without a username, confined to `public/#`.
    pub allow_anonymous: bool,
    /// Retention of raw points for every series without a kind or device setting (ms); when
    /// given, it replaces the stored global setting at start.
    pub retention_raw: Option<i64>,
    /// Retention of the 1-minute and 1-hour rollups (ms); when given, replace the stored ones.
    pub retention_rollups: (Option<i64>, Option<i64>),
    /// Disk budget of the data directory in bytes (none by default).
    pub disk_budget: Option<u64>,
    /// Most simultaneous MQTT connections (0 = unlimited).
    pub max_connections: usize,
    /// Per-client MQTT limits.
    pub broker_limits: Limits,
}

impl NodeConfig {
    /// Defaults for a data directory: MQTT 1883, HTTP 8080, no demo.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            mqtt: "0.0.0.0:1883".parse().expect("valid address"),
            http: "0.0.0.0:8080".parse().expect("valid address"),
            admin_token: None,
            demo: None,
            max_packet_size: DEFAULT_MAX_PACKET,
            mqtt_tls: None,
            tls_cert_key: None,
            pipeline: PipelineConfig::default(),
            tls_client_ca: None,
            allow_anonymous: false,
            retention_raw: None,
            retention_rollups: (None, None),
            disk_budget: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            broker_limits: Limits::default(),
        }
    }
}

/// The limits the demo fleet declares (`sentio_sim::DEMO_LIMITS`), parsed.
pub fn demo_limits() -> Vec<DeclaredLimit> {
    sentio_sim::DEMO_LIMITS
        .iter()
        .map(|l| DeclaredLimit::parse(l).expect("the demo's limits parse"))
        .collect()
}

/// Adds `extra` limits for the kind and metrics that `limits` does not declare already.
pub fn add_limits(limits: &mut Vec<DeclaredLimit>, extra: Vec<DeclaredLimit>) {
    for l in extra {
        if !limits
            .iter()
            .any(|have| have.kind == l.kind && have.metric == l.metric)
        {
            limits.push(l);
        }
    }
}

/// A running node.
pub struct Node {
    /// Where MQTT listens.
    pub mqtt_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// Where MQTT over TLS listens, with the certificate's SHA-256 fingerprint.
    pub mqtt_tls: Option<(SocketAddr, String)>,
    /// The admin token.
    pub admin_token: String,
    /// Where the admin token is kept, if in a file.
    pub token_source: TokenSource,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    pipeline: Pipeline,
    /// Held while the node runs: one node per data directory.
    _lock: std::fs::File,
}

/// File in the data directory locked by the running node.
pub const LOCK_FILE: &str = "sentio.lock";

/// Takes the data directory's lock, so two nodes never share one (they would corrupt each
/// other's broker state). The OS releases it when the process exits, even on `kill -9`.
fn lock_data_dir(data: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = data.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the data directory {} is in use by another running sentio (stop it, or choose another with --data DIR)",
            data.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Node {
    /// Opens the data directory, binds the ports and starts every layer.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data)
            .with_context(|| format!("creating the data directory {}", config.data.display()))?;
        let lock = lock_data_dir(&config.data)?;
        if config.tls_client_ca.is_some() && config.mqtt_tls.is_none() {
            bail!("--tls-client-ca needs the MQTT over TLS listener (drop --no-mqtt-tls)");
        }
        let store = SqliteStore::open(&config.data)
            .with_context(|| format!("opening the store in {}", config.data.display()))?;
        apply_retention(&store, &config).await?;
        store.set_disk_budget(config.disk_budget);
        let (admin_token, token_source) =
            token::load_or_create(&config.data, config.admin_token.as_deref())?;

        let http_listener = match tokio::net::TcpListener::bind(config.http).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
                "HTTP port {} is already in use on {} (choose another with --http ADDR)",
                config.http.port(),
                config.http.ip()
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("listening for HTTP on {}", config.http));
            }
        };
        let http_addr = http_listener.local_addr()?;

        let store = Arc::new(store);
        let stores = Stores {
            registry: store.clone(),
            series: store.clone(),
            alerts: store.clone(),
            events: store.clone(),
            health: store.clone(),
        };
        let bus = Arc::new(LocalBus::new(4096));
        let pipeline =
            Pipeline::start(config.pipeline.clone(), stores.clone(), bus.clone()).await?;

        let broker = Broker::bind(
            BrokerConfig {
                listen: config.mqtt,
                state_dir: config.data.join("mqtt"),
                max_packet_size: config.max_packet_size,
                max_connections: config.max_connections,
                tls: config.mqtt_tls.map(|listen| TlsSettings {
                    listen,
                    cert_and_key: config.tls_cert_key.clone(),
                    generated_dir: config.data.join("tls"),
                    client_ca: config.tls_client_ca.clone(),
                }),
                allow_anonymous: config.allow_anonymous,
                limits: config.broker_limits,
            },
            store.clone(),
            store.clone(),
            pipeline.ingest.clone(),
        )
        .await?;
        let mqtt_addr = broker.local_addr();
        let mqtt_tls = broker.tls();
        let broker_handle = broker.handle();

        let (stop, stop_rx) = watch::channel(false);
        let mut servers = Vec::new();
        let rx = stop_rx.clone();
        servers.push(tokio::spawn(async move {
            if let Err(e) = broker.run(stopped(rx)).await {
                tracing::error!(error = %e, "MQTT broker stopped");
            }
        }));
        // Maintenance in the background: seals old head points into compressed chunks, rolls
        // up, applies retention and the disk budget; probes a full disk until it takes data.
        let (maint, rx) = (store.clone(), stop_rx.clone());
        servers.push(tokio::spawn(async move {
            run_maintenance(&*maint, &*maint, stopped(rx)).await;
        }));
        let state = AppState {
            registry: store.clone(),
            series: store.clone(),
            alerts: store.clone(),
            events: store.clone(),
            tokens: store.clone(),
            retention: store.clone(),
            audit: store.clone(),
            broker: Some(broker_handle),
            ingest: pipeline.ingest.clone(),
            bus: pipeline.bus.clone(),
            presence: pipeline.presence.clone(),
            stats: pipeline.stats.clone(),
            control: pipeline.control.clone(),
            admin_token: AppState::token_digest(&admin_token),
        };
        let rx = stop_rx.clone();
        servers.push(tokio::spawn(async move {
            if let Err(e) = sentio_api::serve(http_listener, state, stopped(rx)).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        }));

        if let Some(spec) = config.demo {
            let sim = demo_config(spec, mqtt_addr, &config.data, store.as_ref()).await?;
            let rx = stop_rx.clone();
            servers.push(tokio::spawn(async move {
                // The simulator logs its own report when it stops.
                if let Err(e) = sentio_sim::run(sim, stopped(rx)).await {
                    warn!(error = %e, "demo fleet failed");
                }
            }));
        }

        Ok(Self {
            mqtt_addr,
            http_addr,
            mqtt_tls,
            admin_token,
            token_source,
            stop,
            servers,
            pipeline,
            _lock: lock,
        })
    }

    /// Stops the servers (no new data), then drains the pipeline into the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for s in self.servers {
            let _ = s.await;
        }
        self.pipeline.shutdown().await;
    }
}

/// Puts the retention settings given on the command line into the store's policy.
async fn apply_retention(store: &dyn RetentionStore, config: &NodeConfig) -> anyhow::Result<()> {
    let (raw, (m1, h1)) = (config.retention_raw, config.retention_rollups);
    if raw.is_none() && m1.is_none() && h1.is_none() {
        return Ok(());
    }
    let mut policy = store.retention().await?;
    policy.raw_ms = raw.unwrap_or(policy.raw_ms);
    policy.rollup_1m_ms = m1.unwrap_or(policy.rollup_1m_ms);
    policy.rollup_1h_ms = h1.unwrap_or(policy.rollup_1h_ms);
    store
        .set_retention(policy)
        .await
        .context("invalid retention settings")?;
    Ok(())
}

/// Every 5 s: seal, roll up, expire, keep to the disk budget; while the disk is full, only
/// probe whether 1 MiB is free again (so MQTT 5 publishers are no longer refused).
async fn run_maintenance(
    store: &dyn Maintenance,
    health: &dyn StorageHealth,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
        // The store clears its full state itself once the probe fits.
        if health.is_full() && !health.probe_free_space(1 << 20).await {
            continue;
        }
        if let Err(e) = store.seal_round().await {
            tracing::error!(error = %e, "sealing head points into chunks failed");
        }
        if let Err(e) = store.maintenance_round().await {
            tracing::error!(error = %e, "retention and rollups pass failed");
        }
    }
}

/// Registers the demo fleet's devices (or gives existing ones a new secret: only digests are
/// stored, so a restarted demo cannot recover the old ones) and returns the simulator's config.
async fn demo_config(
    spec: FleetSpec,
    mqtt: SocketAddr,
    data: &std::path::Path,
    registry: &dyn DeviceRegistry,
) -> anyhow::Result<SimConfig> {
    let mut sim = SimConfig::new("127.0.0.1", mqtt.port(), spec);
    if !mqtt.ip().is_unspecified() {
        sim.host = mqtt.ip().to_string();
    }
    for d in spec.devices() {
        let secret = match registry
            .create_device(NewDevice {
                id: d.id.clone(),
                name: Some(d.name.clone()),
                kind: Some(d.kind.clone()),
                labels: d.labels.clone(),
            })
            .await
        {
            Ok((_, secret)) => secret,
            Err(StoreError::DuplicateDevice(_)) => {
                let id = sentio_core::DeviceId::parse(&d.id)?;
                registry.rotate_secret(&id).await?
            }
            Err(e) => return Err(e.into()),
        };
        sim.credentials.insert(d.id, secret);
    }
    sim.ground_truth = Some(data.join("demo-ground-truth.jsonl"));
    info!(
        devices = sim.credentials.len(),
        ground_truth = %data.join("demo-ground-truth.jsonl").display(),
        "demo fleet registered"
    );
    Ok(sim)
}
