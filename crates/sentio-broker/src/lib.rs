//! Sentio's embedded MQTT broker: the `mqtt5` crate's broker (MQTT 3.1.1 and 5 on one port),
//! wrapped so that the rest of Sentio never sees its types.
//!
//! - [`auth::DeviceAuth`] authenticates devices against the registry (username = device id,
//!   password = the device's secret) and confines each device to its own topics: publish under
//!   `devices/<id>/...`, subscribe only to `devices/<id>/commands/...`.
//! - [`tap::TelemetryTap`] sees every accepted publish; `devices/<id>/telemetry` payloads go into
//!   the pipeline, and a QoS 1/2 PUBACK is sent only after the points are committed.
//!   Scoped API tokens (`token:<id>` usernames) are confined to their ACL of topic filters.
//!   Edge nodes (`edge:<id>` usernames, [`sentio_store::EdgeStore`]) are confined to
//!   `edges/<id>/...`; their batches on `edges/<id>/up/points` are applied exactly once
//!   (`uplink.rs`) before the PUBACK.
//! - [`Broker`] binds the listener and runs it until shutdown; its [`BrokerHandle`] lists the
//!   connected clients and [revokes](BrokerHandle::revoke) an identity (a deleted token, a
//!   device whose secret was rotated or which was deleted): its connections are closed.
//! - A client id belongs to one identity: a CONNECT from another identity with a client id
//!   whose session (live, or persistent and not expired) is held by someone else is refused
//!   (CONNACK 0x85; 3.1.1: 0x02) and that session is untouched (`vendor/mqtt5`, SENTIO-PATCH).
//! - Connection quotas ([`Limits`]): per node, per device, per token and per address.
//! - MQTT over WebSocket: the HTTP server upgrades `/mqtt` and hands the stream to
//!   [`BrokerHandle::serve_websocket`] (`ws`); mutual TLS (`mtls`) and anonymous access
//!   (`anonymous`, off unless [`BrokerConfig::allow_anonymous`]) are optional.

mod accept;
#[cfg(test)]
mod ack_order;
mod anonymous;
mod auth;
mod auth_guard;
mod client_table;
mod clients;
mod counters;
mod courier;
#[cfg(test)]
mod delivery_path;
mod edge_actuation;
mod error;
#[cfg(test)]
mod idle_connection_size;
mod limits;
mod mtls;
mod refusals;
mod resync;
mod retained;
mod tap;
mod tls;
mod uplink;
#[cfg(test)]
mod wildcard_index;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::Ordering;

use mqtt5::broker::MqttBroker;
use mqtt5::broker::config::{BrokerConfig as MqttConfig, StorageBackend, StorageConfig};
use mqtt5::broker::storage::StorageBackend as _;
use mqtt5::broker::sys_topics::BrokerStats;
use sentio_pipeline::Ingest;
use sentio_store::{DeviceRegistry, EdgeStore, TokenStore};
use tracing::{info, warn};

pub use anonymous::ANONYMOUS_FILTER;
pub use auth_guard::{DEFAULT_AUTH_BACKOFF_S, DEFAULT_MAX_AUTH_FAILURES};
pub use clients::ClientInfo;
pub use counters::BrokerCounters;
pub use error::BrokerError;
pub use limits::{
    BACKPRESSURE_QUEUE_DEPTH, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    DEFAULT_MAX_CONNECTIONS_PER_DEVICE, DEFAULT_MAX_SUBSCRIPTIONS, Limits,
};
pub use mtls::common_name as certificate_common_name;
pub use retained::{DEFAULT_MAX_RETAINED_BYTES, DEFAULT_MAX_RETAINED_MESSAGES};
pub use tls::{DEFAULT_TLS_LISTEN, TlsSettings, fingerprint as certificate_fingerprint};
pub use uplink::EdgeReport;
pub use ws::WEBSOCKET_SUBPROTOCOL;

use crate::accept::Acceptor;
use crate::clients::{Clients, Quotas};
use crate::counters::Counters;
use crate::limits::LimitState;
use crate::mtls::{CertAuthContext, MtlsListener};

/// Default maximum MQTT packet size: 256 KiB.
pub const DEFAULT_MAX_PACKET: usize = 256 * 1024;

/// The Receive Maximum announced to MQTT 5 clients: QoS 2 PUBLISHes a client may have awaiting
/// PUBREL. mqtt5's default is 65,535, which no client can overrun (packet ids stop there), so
/// its DISCONNECT 0x93 could never apply; a flooder of unreleased QoS 2 messages is bounded here.
pub const SERVER_RECEIVE_MAXIMUM: u16 = 1024;

/// The Topic Alias Maximum announced to MQTT 5 clients. mqtt5's default, 65,535 aliases per
/// connection each holding a topic of up to a packet's size, would let one client pin gigabytes;
/// clients that use aliases use a handful (mosquitto's default is 10).
pub const TOPIC_ALIAS_MAXIMUM: u16 = 64;

/// How to run the broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// TCP listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where sessions, queued and retained messages are kept.
    pub state_dir: PathBuf,
    /// Largest packet accepted.
    pub max_packet_size: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// MQTT over TLS listener, if any.
    pub tls: Option<TlsSettings>,
    /// Admit clients without a username, confined to [`ANONYMOUS_FILTER`] (`public/#`).
    pub allow_anonymous: bool,
    /// Per-client limits: subscriptions, publish rate, queued messages.
    pub limits: Limits,
}

/// The pipeline's desks the broker serves: it delivers their commands and desired twins
/// (through the courier it attaches) and tells them what devices acknowledge, reply and report.
pub struct Desks {
    /// Commands to devices.
    pub commands: sentio_pipeline::actuate::Commands,
    /// Devices' twins.
    pub twins: sentio_pipeline::actuate::Twins,
    /// Where the broker attaches its courier.
    pub courier: sentio_pipeline::actuate::CourierSlot,
}

/// A bound, not yet running broker.
pub struct Broker {
    inner: MqttBroker,
    local_addr: SocketAddr,
    tls: Option<(SocketAddr, String)>,
    handle: BrokerHandle,
    /// The mutual-TLS listener, run by Sentio instead of mqtt5's TLS listener.
    mtls: Option<MtlsListener>,
    max_packet_size: usize,
}

/// What the rest of Sentio may ask of a running broker. Cheap to clone.
#[derive(Clone)]
pub struct BrokerHandle {
    clients: Arc<Clients>,
    counters: Arc<Counters>,
    stats: Arc<BrokerStats>,
    /// Serves the connections Sentio accepts itself (WebSocket, mutual TLS).
    acceptor: Arc<Acceptor>,
    limits: Arc<LimitState>,
    /// What each edge last reported of its outbox.
    reports: Arc<uplink::EdgeReports>,
}

impl BrokerHandle {
    /// What edge `id` last reported of its outbox (since this node started), if anything.
    pub fn edge_report(&self, id: &str) -> Option<EdgeReport> {
        self.reports.get(id, sentio_core::time::now_ms())
    }

    /// Publishes `payload` to edge `edge` on `edges/<id>/down/resync` (QoS 1), as the node:
    /// what [`sentio_store::ResyncRequest`] asks of it. Delivered only if the edge is
    /// connected and subscribed (its link subscribes on connecting).
    pub async fn send_resync(&self, edge: &sentio_core::EdgeId, payload: Vec<u8>) {
        let Some(router) = self.clients.router() else {
            return;
        };
        let packet = mqtt5::packet::publish::PublishPacket::new(
            sentio_core::topic::downlink_resync(edge),
            payload,
            mqtt5::QoS::AtLeastOnce,
        );
        router.route_message(&packet, None).await;
    }

    /// Connected clients, by client id.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut list = self.clients.list();
        for c in &mut list {
            c.dropped = self.limits.dropped(&c.client_id);
        }
        list
    }

    /// Revokes the credential of `identity` (a device id, or a token's `token:<id>` username),
    /// whose secret was rotated or which was deleted: closes every connection authenticated as
    /// it, over every transport, including one whose CONNECT is being authenticated right now.
    /// Its sessions are kept (a device reconnecting with its new secret resumes them). Call
    /// after the credential was changed in the store. Returns how many connections were closed.
    pub async fn revoke(&self, identity: &str) -> usize {
        self.clients.revoke(identity).await
    }

    /// The data directory's live bytes as just measured, and its disk budget (`None`: none).
    /// Broker state never makes the store evict telemetry; instead, at the budget, retained
    /// messages that would grow the broker's state are refused (`retained.rs`). The node
    /// calls it after each maintenance pass.
    pub fn set_disk_usage(&self, used_bytes: u64, budget_bytes: Option<u64>) {
        self.limits
            .retained
            .set_disk_usage(used_bytes, budget_bytes);
    }

    /// The broker's counters now.
    pub fn counters(&self) -> BrokerCounters {
        let c = &self.counters;
        let st = &self.stats;
        let read = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let clients = self.clients.list();
        BrokerCounters {
            clients_connected: clients.len() as u64,
            connections_total: read(&st.clients_total),
            messages_received: c.received.each_ref().map(Counters::get),
            messages_sent: st.publish_sent.load(Ordering::Relaxed),
            messages_acknowledged: c.acknowledged.each_ref().map(Counters::get),
            payload_bytes_received: st.bytes_received.load(Ordering::Relaxed),
            payload_bytes_sent: st.bytes_sent.load(Ordering::Relaxed),
            queued_messages: clients.iter().map(|c| c.queue_depth as u64).sum(),
            auth_failures: Counters::get(&c.auth_failures),
            publish_denied: Counters::get(&c.publish_denied),
            subscribe_denied: Counters::get(&c.subscribe_denied),
            dropped_queue_full: read(&self.limits.counters.dropped_queue_full),
            publishes_throttled: read(&self.limits.counters.throttled),
            publishes_backpressured: read(&self.limits.counters.backpressured),
            connections_refused: read(&self.limits.counters.connections_refused),
            subscriptions_refused: read(&self.limits.counters.subscriptions_refused),
            retained_refused: read(&self.limits.retained.refused_quota),
            retained_refused_disk: read(&self.limits.retained.refused_disk),
            connects_backed_off: read(&self.limits.auth.refused),
            accept_errors: mqtt5::broker::accept_backoff::accept_errors(),
            edge_batches: [
                Counters::get(&c.edge_batches_stored),
                Counters::get(&c.edge_batches_duplicate),
                Counters::get(&c.edge_batches_refused),
            ],
            edge_points: Counters::get(&c.edge_points_stored),
        }
    }
}

impl Broker {
    /// Binds the listener. A port already in use is [`BrokerError::PortInUse`].
    pub async fn bind(
        config: BrokerConfig,
        registry: Arc<dyn DeviceRegistry>,
        tokens: Arc<dyn TokenStore>,
        edges: Arc<dyn EdgeStore>,
        ingest: Ingest,
        desks: Desks,
    ) -> Result<Self, BrokerError> {
        // Probe the ports first: mqtt5's own error for this case is not specific.
        let mut addrs = vec![(config.listen, "the mqtt.listen setting")];
        addrs.extend(
            config
                .tls
                .as_ref()
                .map(|t| (t.listen, "mqtt.tls.listen, or mqtt.tls.enabled = false")),
        );
        for (addr, key) in addrs {
            match std::net::TcpListener::bind(addr) {
                Ok(probe) => drop(probe),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(BrokerError::PortInUse(addr, key));
                }
                Err(e) => return Err(BrokerError::Bind(addr, e)),
            }
        }
        let tls_files = config.tls.as_ref().map(tls::prepare).transpose()?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| BrokerError::Storage(config.state_dir.display().to_string(), e))?;
        // mqtt5 drops the oldest queued message beyond its per-client bound (10,000 messages
        // or 64 MiB by default). Without a configured bound Sentio never lets it drop: the
        // bound is lifted and the tap holds publishers back instead (`limits.rs`). With one,
        // the byte bound is lifted so that the message bound alone decides, as counted.
        let storage = StorageConfig::new()
            .with_backend(StorageBackend::File)
            .with_base_dir(config.state_dir.clone())
            .with_persistence(true)
            .with_max_queued_messages_per_client(
                config.limits.max_queued_messages.unwrap_or(usize::MAX),
            )
            .with_max_queued_bytes_per_client(usize::MAX);
        let clients = Arc::new(Clients::new(Quotas {
            node: config.max_connections,
            per_device: config.limits.max_connections_per_device,
            per_token: config.limits.max_connections_per_token,
            per_address: config.limits.max_connections_per_address,
        }));
        let counters = Arc::new(Counters::default());
        let limits = Arc::new(LimitState::new(config.limits, config.max_connections));
        let reports = Arc::new(uplink::EdgeReports::default());
        let tap = Arc::new(tap::TelemetryTap {
            ingest: ingest.clone(),
            registry: registry.clone(),
            edges: edges.clone(),
            reports: reports.clone(),
            clients: clients.clone(),
            counters: counters.clone(),
            limits: limits.clone(),
            exchange: courier::Exchange {
                commands: desks.commands,
                twins: desks.twins,
                ingest: ingest.clone(),
            },
        });
        let mut mqtt = MqttConfig::new()
            .with_bind_address(config.listen)
            .with_max_packet_size(config.max_packet_size)
            // Sentio refuses connections beyond the limit itself, at CONNECT with a reason
            // code; mqtt5's own check (which closes the socket without a CONNACK) stays as a
            // backstop with some headroom (0 = unlimited).
            .with_max_clients(match config.max_connections {
                0 => usize::MAX,
                n => n.saturating_add(64),
            })
            .with_max_subscriptions_per_client(config.limits.max_subscriptions)
            .with_server_receive_maximum(SERVER_RECEIVE_MAXIMUM)
            .with_storage(storage)
            .with_sys_topics_enabled(false)
            .with_event_handler(tap);
        mqtt.topic_alias_maximum = TOPIC_ALIAS_MAXIMUM;
        mqtt.max_keep_alive = config.limits.max_keep_alive;
        let client_ca = config.tls.as_ref().and_then(|t| t.client_ca.clone());
        let mtls_config = match (&tls_files, &client_ca) {
            (Some(files), Some(ca)) => Some(mtls::server_config(files, ca)?),
            _ => None,
        };
        if let (Some(settings), Some(files), None) = (&config.tls, &tls_files, &mtls_config) {
            mqtt = mqtt.with_tls(
                mqtt5::broker::config::TlsConfig::new(files.cert.clone(), files.key.clone())
                    .with_bind_address(settings.listen),
            );
        }
        // mqtt5 builds a default provider from this flag and refuses to start without a password
        // file when it is false; that provider is replaced right below by `DeviceAuth`, which
        // never admits anonymous clients.
        mqtt.auth_config.allow_anonymous = true;
        let mqtt_config = mqtt.clone();
        let mut auth: Arc<dyn mqtt5::broker::auth::AuthProvider> = Arc::new(auth::DeviceAuth::new(
            auth::Identities {
                registry: registry.clone(),
                tokens,
                edges,
            },
            ingest,
            clients.clone(),
            counters.clone(),
            limits.clone(),
            Arc::new(refusals::RefusalRecorder::start(registry.clone())),
        ));
        if config.allow_anonymous {
            warn!(
                "ANONYMOUS MQTT ACCESS IS ON (mqtt.allow_anonymous): clients without a username are \
                 admitted and may publish and subscribe under {ANONYMOUS_FILTER} without any \
                 credential"
            );
            auth = Arc::new(anonymous::Anonymous::new(
                auth,
                clients.clone(),
                counters.clone(),
                limits.clone(),
            ));
        }
        let inner = MqttBroker::with_config(mqtt)
            .await
            .map_err(|e| BrokerError::Start(e.to_string()))?
            .with_auth_provider(auth.clone());
        // The retained messages already stored are charged before any client connects.
        if let Some(storage) = inner.storage() {
            let stored = storage
                .get_retained_messages("#")
                .await
                .map_err(|e| BrokerError::Start(e.to_string()))?;
            limits
                .retained
                .restore(stored.into_iter().map(|(t, m)| (t, m.payload.len())));
        }
        let acceptor = Arc::new(Acceptor::new(mqtt_config, &inner));
        let mtls = match (&config.tls, mtls_config) {
            (Some(settings), Some(server_config)) => Some(MtlsListener {
                listener: tokio::net::TcpListener::bind(settings.listen)
                    .await
                    .map_err(|e| BrokerError::Bind(settings.listen, e))?,
                config: server_config,
                auth: CertAuthContext {
                    base: auth,
                    registry,
                    clients: clients.clone(),
                    counters: counters.clone(),
                    limits: limits.clone(),
                },
            }),
            _ => None,
        };
        let local_addr = inner
            .local_addr()
            .ok_or_else(|| BrokerError::Start("the listener has no address".into()))?;
        let tls = match tls_files {
            Some(files) => Some((
                match &mtls {
                    Some(m) => m
                        .listener
                        .local_addr()
                        .map_err(|e| BrokerError::Start(e.to_string()))?,
                    None => inner.tls_local_addr().ok_or_else(|| {
                        BrokerError::Start("the TLS listener has no address".into())
                    })?,
                },
                files.fingerprint,
            )),
            None => None,
        };
        clients.set_router(&inner.router());
        desks.courier.attach(Arc::new(courier::BrokerCourier {
            clients: clients.clone(),
        }));
        let handle = BrokerHandle {
            clients,
            counters,
            stats: inner.stats(),
            acceptor,
            limits,
            reports,
        };
        Ok(Self {
            inner,
            local_addr,
            tls,
            handle,
            mtls,
            max_packet_size: config.max_packet_size,
        })
    }

    /// The MQTT over TLS address and the certificate's SHA-256 fingerprint, if TLS is on.
    pub fn tls(&self) -> Option<(SocketAddr, String)> {
        self.tls.clone()
    }

    /// The handle to the broker once it runs.
    pub fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves clients until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        info!(addr = %self.local_addr, "MQTT broker listening");
        let limits = &self.handle.limits;
        let max_connections = match limits.max_connections {
            0 => "unlimited".to_string(),
            n => n.to_string(),
        };
        info!(
            "MQTT limits: connections {max_connections}, packet {} bytes, {}",
            self.max_packet_size, limits.limits
        );
        if let Some((addr, fingerprint)) = &self.tls {
            info!(%addr, sha256 = %fingerprint, mutual_tls = self.mtls.is_some(), "MQTT over TLS listening");
        }
        let acceptor = self.handle.acceptor.clone();
        // Stops accepting when dropped, whichever way this returns.
        let mut mtls = self
            .mtls
            .take()
            .map(|m| mtls::AbortOnDrop(tokio::spawn(m.run(acceptor.clone()))));
        let handle = self.inner.shutdown_handle();
        let run = self.inner.run();
        tokio::pin!(run);
        tokio::select! {
            biased;
            r = &mut run => r.map_err(|e| BrokerError::Start(e.to_string())),
            _ = shutdown => {
                // First the connections accepted by Sentio (WebSocket, mutual TLS): they save
                // their sessions into mqtt5's storage, which closes with the broker.
                mtls.take();
                acceptor.shutdown().await;
                // A signal sent before the broker's loop has subscribed to it is lost (a stop
                // right after start), so signal again until it stops, for at most 5 s; dropping
                // the run future then shuts it down too.
                for _ in 0..50 {
                    handle.shutdown();
                    match tokio::time::timeout(std::time::Duration::from_millis(100), &mut run).await {
                        Ok(Err(e)) => warn!(error = %e, "broker stopped with an error"),
                        Ok(Ok(())) => {}
                        Err(_) => continue,
                    }
                    return Ok(());
                }
                warn!("the broker did not stop within 5 s; dropping it");
                Ok(())
            }
        }
    }
}
