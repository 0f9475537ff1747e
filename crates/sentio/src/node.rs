//! One Sentio node on the embedded default: SQLite store, in-process bus, embedded broker,
//! HTTP API, and optionally the demo fleet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use sentio_api::AppState;
use sentio_broker::{Broker, BrokerConfig, TlsSettings};
use sentio_notify::{Notifier, NotifyHandle};
use sentio_pipeline::{LocalBus, Pipeline, StageThread, Stores};
use sentio_sim::{FleetSpec, SimConfig};
use sentio_store::{
    DeviceRegistry, Maintenance, NewDevice, OutboxStore, RetentionStore, SqliteStore,
    StorageHealth, StorageStatus, StoreError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Config, RetentionConfig};
use crate::token::{self, TokenSource};

/// A running node.
pub struct Node {
    /// Where MQTT listens.
    pub mqtt_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// Where HTTPS listens, with the certificate file it serves (`http.tls`).
    pub https: Option<(SocketAddr, PathBuf)>,
    /// Where MQTT over TLS listens, with the certificate's SHA-256 fingerprint.
    pub mqtt_tls: Option<(SocketAddr, String)>,
    /// The admin token.
    pub admin_token: String,
    /// Where the admin token is kept, if in a file.
    pub token_source: TokenSource,
    stop: watch::Sender<bool>,
    /// The store's background work, interrupted when the node stops.
    maintenance: Arc<dyn Maintenance>,
    /// The thread the store's background work runs on, stopped after it.
    store_thread: StageThread,
    servers: Vec<JoinHandle<()>>,
    pipeline: Pipeline,
    /// Ends after the pipeline, once it has notified every alert the pipeline opened.
    notifier: JoinHandle<()>,
    /// Held while the node runs: one node per data directory.
    _lock: std::fs::File,
}

/// Opened alerts waiting for the notifier; beyond it the detect stage waits.
const NOTICE_CAPACITY: usize = 4_096;

/// OS priority steps below the node's at which the store's background work runs (sealing,
/// rollups, retention, the disk budget; thread `sentio-store`), so its SQLite work yields the
/// cores to the broker's workers and the pipeline's writer whenever they want them.
const STORE_NICE: i32 = 10;

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
            "the data directory {} is in use by another running sentio (stop it, or choose another with the data setting, or --data DIR)",
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
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.check()?;
        crate::private::restrict_new_files();
        std::fs::create_dir_all(&config.data)
            .with_context(|| format!("creating the data directory {}", config.data.display()))?;
        crate::private::tighten(&config.data)
            .with_context(|| format!("restricting the data directory {}", config.data.display()))?;
        let lock = lock_data_dir(&config.data)?;
        let store = SqliteStore::open(&config.data)
            .with_context(|| format!("opening the store in {}", config.data.display()))?;
        apply_retention(&store, &config.data, &config.store.retention).await?;
        store.set_disk_budget(config.store.disk_budget.map(|b| b.0));
        let (admin_token, token_source) = token::load_or_create(
            &config.data,
            config.http.admin_token.as_deref(),
            config.http.admin_token_file.as_deref(),
        )?;

        let http_listener =
            bind_http(config.http.listen, "HTTP", "http.listen, or --http ADDR").await?;
        let http_addr = http_listener.local_addr()?;
        let https_listener = match config.http.tls.enabled {
            true => Some(
                bind_http(
                    config.http.tls.listen,
                    "HTTPS",
                    "http.tls.listen, or --https ADDR",
                )
                .await?,
            ),
            false => None,
        };

        // An edge's store is its outbox: every commit from now on is a batch for the cloud.
        let uplink = config.edge.uplink()?;
        if let Some(u) = &uplink {
            // Raw: every commit. Aggregates: every rollup transaction (and, from the uplink,
            // the raw points around alerts).
            let aggregates = u.policy == sentio_store::UplinkPolicy::Aggregates;
            if !aggregates {
                store.enable_outbox();
            }
            sentio_store::OutboxStore::record_rollups(&store, aggregates)
                .await
                .context("setting up the outbox")?;
        }
        let store = Arc::new(store);
        // Before the pipeline starts, so it loads them with the others.
        if config.demo.enabled {
            crate::demo_rules::install(store.as_ref())
                .await
                .context("installing the demo rules")?;
        }
        let stores = Stores::of(store.clone());
        let bus = Arc::new(LocalBus::new(4096));
        let (notices, notices_rx) = tokio::sync::mpsc::channel(NOTICE_CAPACITY);
        let edge_notices = notices.clone();
        let budget_notices = notices.clone();
        let pipeline = Pipeline::start(
            config.pipeline_config(),
            stores.clone(),
            bus.clone(),
            Some(notices),
        )
        .await?;
        let notify_handle = NotifyHandle::default();
        let notify_config = config.notify.notify_config();
        let notifier = tokio::spawn(
            Notifier::new(notify_config.clone(), stores.clone(), notify_handle.clone())
                .run(notices_rx),
        );

        let (mqtt, tls) = (&config.mqtt, &config.mqtt.tls);
        let broker = Broker::bind(
            BrokerConfig {
                listen: mqtt.listen,
                state_dir: config.data.join("mqtt"),
                max_packet_size: mqtt.max_packet_size,
                max_connections: mqtt.max_connections,
                tls: tls.enabled.then(|| TlsSettings {
                    listen: tls.listen,
                    cert_and_key: tls.cert.clone().zip(tls.key.clone()),
                    generated_dir: config.data.join(GENERATED_TLS_DIR),
                    client_ca: tls.client_ca.clone(),
                }),
                allow_anonymous: mqtt.allow_anonymous,
                limits: mqtt.limits,
            },
            store.clone(),
            store.clone(),
            store.clone(),
            pipeline.ingest.clone(),
            sentio_broker::Desks {
                commands: pipeline.commands.clone(),
                twins: pipeline.twins.clone(),
                courier: pipeline.courier.clone(),
            },
        )
        .await?;
        let mqtt_addr = broker.local_addr();
        let mqtt_tls = broker.tls();
        let broker_handle = broker.handle();
        // The store is the truth about desired twins; a crash may have left an older
        // retained one in the broker.
        let twins = pipeline.twins.clone();
        tokio::spawn(async move { twins.republish_desired().await });
        // After the broker: it has generated its certificate if none was configured.
        let https = match https_listener {
            Some(listener) => {
                let certificate = https_certificate(&config);
                let loaded = certificate
                    .load()
                    .context("loading the HTTPS certificate (the MQTT over TLS one)")?;
                let fingerprint = sentio_broker::certificate_fingerprint(loaded.leaf());
                if let Some((_, mqtt_fingerprint)) = &mqtt_tls
                    && *mqtt_fingerprint != fingerprint
                {
                    bail!(
                        "the HTTPS certificate {} is not the one MQTT over TLS serves",
                        certificate.cert.display()
                    );
                }
                let addr = listener.local_addr()?;
                info!(https = %addr, cert = %certificate.cert.display(), sha256 = %fingerprint, "HTTPS listening");
                Some((
                    sentio_api::HttpsListener {
                        listener,
                        config: loaded,
                    },
                    addr,
                    certificate.cert,
                ))
            }
            None => None,
        };
        if !http_addr.ip().is_loopback() {
            warn!(
                http = %http_addr,
                "the API and dashboard listen in plaintext on a non-loopback address: the admin \
                 token and device secrets cross the network in clear; use HTTPS (http.tls.enabled, \
                 --https ADDR) or keep http.listen on 127.0.0.1"
            );
        }

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
        let (maint, rx, broker) = (store.clone(), stop_rx.clone(), broker_handle.clone());
        // With a disk budget, the broker keeps its state to it (measured after each pass).
        let measured = config
            .store
            .disk_budget
            .is_some()
            .then_some(move |s: StorageStatus| {
                broker.set_disk_usage(s.bytes.saturating_sub(s.free_bytes), s.budget_bytes);
            });
        // On a thread of its own, below the node's priority: its SQLite transactions (and the
        // checkpoints they trigger) never run on the runtime whose workers run the broker.
        let store_thread = StageThread::start("sentio-store", STORE_NICE)
            .context("starting the store's background thread")?;
        servers.push(store_thread.spawn(async move {
            run_maintenance(&*maint, &*maint, measured, stopped(rx)).await;
        }));
        // Edge mode: the uplink to the cloud, stopped with the servers.
        let uplink = uplink.map(|settings| {
            let handle = sentio_api::UplinkHandle {
                edge_id: settings.edge_id.to_string(),
                upstream: settings.upstream.to_string(),
                outbox: store.clone(),
                state: Arc::new(sentio_edge::UplinkState::default()),
            };
            let (outbox, state, rx) = (store.clone(), handle.state.clone(), stop_rx.clone());
            // One alert while the disk budget degrades or drops undelivered points.
            let sources = crate::budget_alert::Sources {
                outbox: store.clone(),
                storage: store.clone(),
                alerts: store.clone(),
            };
            servers.push(tokio::spawn(crate::budget_alert::run(
                settings.edge_id.clone(),
                sources,
                budget_notices,
                stopped(stop_rx.clone()),
            )));
            // A command or twin changed: its record goes up at once.
            let changed = Arc::new(tokio::sync::Notify::new());
            let (bus, notify, stop) = (pipeline.bus.clone(), changed.clone(), stop_rx.clone());
            servers.push(tokio::spawn(async move {
                tokio::select! {
                    _ = crate::edge_desk::watch_changes(bus, notify) => {}
                    _ = stopped(stop) => {}
                }
            }));
            let sources = sentio_edge::RecordSources {
                registry: store.clone(),
                alerts: store.clone(),
                digests: store.clone(),
                series: store.clone(),
                commands: store.clone(),
                twins: store.clone(),
                desk: Arc::new(crate::edge_desk::EdgeDesk {
                    commands: pipeline.commands.clone(),
                    twins: pipeline.twins.clone(),
                }),
                changed,
            };
            servers.push(tokio::spawn(sentio_edge::run(
                settings,
                outbox,
                sources,
                state,
                stopped(rx),
            )));
            handle
        });
        // In a cloud: one alert per edge whose uplink stays down.
        servers.push(tokio::spawn(crate::edge_watch::run(
            store.clone(),
            store.clone(),
            broker_handle.clone(),
            edge_notices,
            std::time::Duration::from_millis(config.edges.offline_alert_after.0.max(1_000) as u64),
            config.edges.clock_skew_limit.0,
            stopped(stop_rx.clone()),
        )));
        servers.push(tokio::spawn(sentio_notify::deliver::run(
            notify_config,
            stores.notify.clone(),
            notify_handle.clone(),
            pipeline.courier.clone(),
            stop_rx.clone(),
        )));
        let state = AppState {
            registry: store.clone(),
            series: store.clone(),
            alerts: store.clone(),
            events: store.clone(),
            tokens: store.clone(),
            users: store.clone(),
            retention: store.clone(),
            audit: store.clone(),
            rules: store.clone(),
            rule_replay: config.rules.replay_limits(),
            rule_clock: config.rules.clock(),
            edges: store.clone(),
            edge_clock_skew_limit_ms: config.edges.clock_skew_limit.0,
            edge_resync_max_hours: config.edges.resync_max_hours,
            uplink,
            notify: store.clone(),
            notifier: notify_handle,
            broker: Some(broker_handle),
            ingest: pipeline.ingest.clone(),
            commands: pipeline.commands.clone(),
            twins: pipeline.twins.clone(),
            bus: pipeline.bus.clone(),
            presence: pipeline.presence.clone(),
            stats: pipeline.stats.clone(),
            control: pipeline.control.clone(),
            admin_token: AppState::token_digest(&admin_token),
            auth_throttle: Arc::new(sentio_api::AuthThrottle::new(&config.http.limits)),
            login_throttle: Arc::new(sentio_api::LoginThrottle::new(&config.http.limits)),
            session_ttl_ms: config.http.limits.session_ttl_ms,
            node_info: sentio_api::NodeInfo {
                mqtt: Some(mqtt_addr),
                mqtts: mqtt_tls.as_ref().map(|(addr, _)| *addr),
                started_ms: sentio_core::time::now_ms(),
            },
        };
        let rx = stop_rx.clone();
        let http_limits = config.http.limits.clone();
        let (https_server, https) = match https {
            Some((server, addr, cert)) => (Some(server), Some((addr, cert))),
            None => (None, None),
        };
        servers.push(tokio::spawn(async move {
            let served =
                sentio_api::serve(http_listener, https_server, state, http_limits, stopped(rx));
            if let Err(e) = served.await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        }));

        if let Some(spec) = config.demo_fleet() {
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
            https,
            mqtt_tls,
            admin_token,
            token_source,
            stop,
            maintenance: store.clone(),
            store_thread,
            servers,
            pipeline,
            notifier,
            _lock: lock,
        })
    }

    /// Stops the servers (no new data) and interrupts the store's background work at its next
    /// safe point (sealing and rollups resume at the next start), then drains the pipeline
    /// into the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.maintenance.interrupt();
        for s in self.servers {
            let _ = s.await;
        }
        self.store_thread.stop().await;
        self.pipeline.shutdown().await;
        let _ = self.notifier.await;
    }
}

/// Binds an HTTP or HTTPS port, naming the setting to change when it is taken.
async fn bind_http(
    listen: SocketAddr,
    scheme: &str,
    setting: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{scheme} port {} is already in use on {} (choose another with the {setting})",
            listen.port(),
            listen.ip()
        ),
        Err(e) => Err(e).with_context(|| format!("listening for {scheme} on {listen}")),
    }
}

/// Where the broker keeps the certificate it generates when none is configured
/// (`<data>/tls/`, file names as `sentio_broker`'s TLS module writes them).
const GENERATED_TLS_DIR: &str = "tls";
const GENERATED_CERT: &str = "mqtt-cert.pem";
const GENERATED_KEY: &str = "mqtt-key.pem";

/// The certificate HTTPS serves: the MQTT over TLS one, configured or generated.
fn https_certificate(config: &Config) -> sentio_api::HttpsCertificate {
    let tls = &config.mqtt.tls;
    let generated = |file: &str| config.data.join(GENERATED_TLS_DIR).join(file);
    sentio_api::HttpsCertificate {
        cert: tls
            .cert
            .clone()
            .unwrap_or_else(|| generated(GENERATED_CERT)),
        key: tls.key.clone().unwrap_or_else(|| generated(GENERATED_KEY)),
    }
}

/// What `[store.retention]` held when it was last applied, in the data directory.
const APPLIED_RETENTION_FILE: &str = "retention.applied.toml";

/// Puts the configured retention into the store's policy when it differs from what the
/// configuration said last time, so a retention changed through the API since then is not
/// overwritten at every start.
async fn apply_retention(
    store: &dyn RetentionStore,
    data: &std::path::Path,
    retention: &RetentionConfig,
) -> anyhow::Result<()> {
    let marker = data.join(APPLIED_RETENTION_FILE);
    let configured = toml::to_string(retention).expect("retention serializes");
    let applied = match std::fs::read_to_string(&marker) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", marker.display())),
    };
    if applied.as_deref() == Some(configured.as_str())
        || (applied.is_none() && retention.is_empty())
    {
        return Ok(());
    }
    let mut policy = store.retention().await?;
    let ms = |s: Option<crate::config::Span>| s.map(|s| s.0);
    policy.raw_ms = ms(retention.raw).unwrap_or(policy.raw_ms);
    policy.rollup_1m_ms = ms(retention.rollup_1m).unwrap_or(policy.rollup_1m_ms);
    policy.rollup_1h_ms = ms(retention.rollup_1h).unwrap_or(policy.rollup_1h_ms);
    store
        .set_retention(policy)
        .await
        .context("invalid store.retention settings")?;
    std::fs::write(&marker, configured).with_context(|| format!("writing {}", marker.display()))?;
    info!("store.retention applied from the configuration");
    Ok(())
}

/// Every 5 s: seal, roll up, expire, keep to the disk budget; while the disk is full, only
/// probe whether 1 MiB is free again (so MQTT 5 publishers are no longer refused). At start
/// and after each pass, the data directory's size goes to `measured`, if given.
async fn run_maintenance(
    store: &dyn Maintenance,
    health: &dyn StorageHealth,
    measured: Option<impl Fn(StorageStatus)>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    measure(store, measured.as_ref()).await;
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
        measure(store, measured.as_ref()).await;
    }
}

/// Hands the store's size to `measured`, if given.
async fn measure(store: &dyn Maintenance, measured: Option<&impl Fn(StorageStatus)>) {
    let Some(measured) = measured else { return };
    match store.storage().await {
        Ok(status) => measured(status),
        Err(e) => tracing::error!(error = %e, "measuring the data directory failed"),
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
