//! Sentio's HTTP face: the REST API (`/api/v1/...`), the live WebSocket stream, HTTP telemetry
//! ingest, `/metrics`, MQTT over WebSocket (`/mqtt`, handed to the embedded broker), and the
//! dashboard page, served from the binary itself.
//!
//! This is the only crate that defines JSON wire types (DTOs); errors from every layer become
//! `{"error": ..., "detail": ...}` with a fitting status in one place ([`ApiError`]).
//!
//! Endpoints need `Authorization: Bearer <admin token>` or a user's session cookie (login at
//! `POST /api/v1/session`; roles viewer, operator, admin; a change of state by cookie passes a
//! CSRF check, [`session`]); the WebSocket stream also takes
//! `?token=` because browsers cannot set headers on WebSocket requests (elsewhere it is refused,
//! as a token in a URL ends up in logs and histories). Devices posting telemetry use HTTP Basic
//! with their own id and secret.
//!
//! The listener ([`serve`]) bounds what a client without credentials can hold: header and body
//! timeouts, a connection cap in all and per address, and a pause on accept errors
//! ([`HttpLimits`]). It serves HTTPS beside plain HTTP when given a certificate
//! ([`HttpsListener`]): the TLS handshake has the header timeout and counts under the same caps.

#![deny(missing_docs)]

mod auth;
mod auth_throttle;
mod dto;
mod error;
mod headers;
mod https;
mod limits;
mod listener;
mod page;
mod routes;
mod scope;
mod session;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use sentio_broker::BrokerHandle;
use sentio_pipeline::{Bus, Control, Ingest, Presence, Stats};
use sentio_store::{
    AlertStore, AuditStore, DeviceRegistry, EventStore, NotifyStore, RetentionStore, RuleStore,
    SeriesStore, TokenStore, UserStore,
};
use tokio::net::TcpListener;

pub use auth_throttle::{AuthThrottle, LoginThrottle, Throttle};
pub use error::ApiError;
pub use https::{HttpsCertificate, HttpsConfig, HttpsError};
pub use limits::HttpLimits;
pub use listener::ListenerCounters;

/// Largest HTTP request body accepted (telemetry and JSON): 256 KiB.
pub const MAX_BODY: usize = 256 * 1024;

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    /// Devices.
    pub registry: Arc<dyn DeviceRegistry>,
    /// Series.
    pub series: Arc<dyn SeriesStore>,
    /// Alerts.
    pub alerts: Arc<dyn AlertStore>,
    /// Text events.
    pub events: Arc<dyn EventStore>,
    /// Scoped API tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// User accounts and their sessions.
    pub users: Arc<dyn UserStore>,
    /// Retention, rollups and the disk budget.
    pub retention: Arc<dyn RetentionStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Users' rules.
    pub rules: Arc<dyn RuleStore>,
    /// How much one rule replay (`POST /api/v1/rules/<id>/test`) may read.
    pub rule_replay: sentio_pipeline::rules::replay::ReplayLimits,
    /// The zone rules read the time of day in (replays read each point's).
    pub rule_clock: sentio_pipeline::rules::RuleClock,
    /// Edge nodes registered here (cloud side).
    pub edges: Arc<dyn sentio_store::EdgeStore>,
    /// An edge whose clock differs from this node's by more than this (ms) is flagged
    /// (`edges.clock_skew_limit`).
    pub edge_clock_skew_limit_ms: i64,
    /// Most (series, hour) pairs one re-sync compares and sends again
    /// (`edges.resync_max_hours`).
    pub edge_resync_max_hours: u64,
    /// This node's uplink, when it is an edge.
    pub uplink: Option<UplinkHandle>,
    /// Silences, notification channels and their outbox.
    pub notify: Arc<dyn NotifyStore>,
    /// Tells the notifier that silences, channels or rules changed.
    pub notifier: sentio_notify::NotifyHandle,
    /// The embedded broker (connected clients, counters, closing the connections of a revoked
    /// token or device); `None` when the node runs without one.
    pub broker: Option<BrokerHandle>,
    /// The way into the pipeline.
    pub ingest: Ingest,
    /// Commands to devices.
    pub commands: sentio_pipeline::actuate::Commands,
    /// Devices' twins.
    pub twins: sentio_pipeline::actuate::Twins,
    /// Live events.
    pub bus: Arc<dyn Bus>,
    /// Who is online.
    pub presence: Arc<Presence>,
    /// Pipeline counters.
    pub stats: Arc<Stats>,
    /// Feedback on alerts, forgetting devices, declared limits.
    pub control: Control,
    /// Digest of the admin token (compared in constant time).
    pub admin_token: blake3::Hash,
    /// Wrong tokens counted per address, and the addresses that must wait.
    pub auth_throttle: Arc<AuthThrottle>,
    /// Wrong passwords at login, per address and per user name.
    pub login_throttle: Arc<LoginThrottle>,
    /// How long a session lasts after login (ms).
    pub session_ttl_ms: u64,
    /// Where devices reach this node over MQTT, and since when it runs.
    pub node_info: NodeInfo,
}

/// What `GET /api/v1/system` tells of the node: its MQTT listeners (for the devices'
/// connection examples) and when it started.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The plain MQTT listener.
    pub mqtt: Option<std::net::SocketAddr>,
    /// The MQTT over TLS listener.
    pub mqtts: Option<std::net::SocketAddr>,
    /// When the node started (ms since the epoch).
    pub started_ms: i64,
}

/// What the API shows of an edge's uplink: its outbox and its link.
#[derive(Clone)]
pub struct UplinkHandle {
    /// The edge's id in the cloud.
    pub edge_id: String,
    /// The cloud's broker.
    pub upstream: String,
    /// The outbox (this node's store).
    pub outbox: Arc<dyn sentio_store::OutboxStore>,
    /// The link task's state.
    pub state: Arc<sentio_edge::UplinkState>,
}

impl AppState {
    /// Digest of an admin token, as stored in [`AppState::admin_token`].
    pub fn token_digest(token: &str) -> blake3::Hash {
        blake3::hash(token.as_bytes())
    }

    /// Records an admin action in the audit log. The action has already happened, so a failure
    /// to record it is logged as an error rather than undoing it.
    pub(crate) async fn audit(
        &self,
        action: &str,
        subject: Option<&str>,
        detail: serde_json::Value,
    ) {
        self.audit_by(&auth::Actor::admin(), action, subject, detail)
            .await
    }

    /// Records an action of `actor` in the audit log (as [`AppState::audit`]).
    pub(crate) async fn audit_by(
        &self,
        actor: &auth::Actor,
        action: &str,
        subject: Option<&str>,
        detail: serde_json::Value,
    ) {
        let entry = sentio_store::NewAudit {
            actor: actor.name.clone(),
            action: action.into(),
            subject: subject.map(str::to_string),
            detail,
        };
        if let Err(e) = self.audit.record(entry).await {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
    }
}

/// The whole HTTP application, with its security headers and WebSocket origin check.
pub fn router(state: AppState) -> Router {
    routes::router(state).layer(axum::middleware::from_fn(headers::protect))
}

/// The HTTPS side of the server: its bound socket and TLS settings.
pub struct HttpsListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// The certificate, loaded ([`HttpsCertificate::load`]).
    pub config: HttpsConfig,
}

/// Serves the application on an already bound plain HTTP listener, and on `https` when given,
/// under `limits` (one connection cap for both) until `shutdown` completes, then lets open
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    https: Option<HttpsListener>,
    state: AppState,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counters = Arc::new(ListenerCounters::default());
    // The peer address (what MQTT over WebSocket reports for its clients) is added to each
    // request by the listener; the counters are read by `/metrics`.
    let app = router(state).layer(axum::Extension(counters.clone()));
    let mut endpoints = vec![listener::Endpoint {
        listener,
        tls: None,
    }];
    if let Some(h) = https {
        endpoints.push(listener::Endpoint {
            listener: h.listener,
            tls: Some(tokio_rustls::TlsAcceptor::from(h.config.server)),
        });
    }
    listener::serve(endpoints, app, &limits, counters, shutdown).await
}
