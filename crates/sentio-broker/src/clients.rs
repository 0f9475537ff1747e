//! Who is connected: what the API lists (`GET /api/v1/broker/clients`) and what revoking a
//! token disconnects. `mqtt5` keeps its client table private, so this is built from what the
//! broker tells us: the CONNECT seen by [`crate::auth::DeviceAuth`] (username, protocol version,
//! address) and the connect, subscribe, unsubscribe and disconnect events of the tap.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use mqtt5::broker::router::MessageRouter;
use sentio_core::time;

/// A connected client as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// MQTT client id.
    pub client_id: String,
    /// Username it authenticated with (device id or `token:<id>`).
    pub username: Option<String>,
    /// `3.1.1` or `5.0`.
    pub protocol: &'static str,
    /// Remote address.
    pub address: SocketAddr,
    /// When it connected (ms).
    pub connected_ms: i64,
    /// Filters it subscribed to on this connection.
    pub subscriptions: Vec<String>,
    /// Messages waiting in its session queue (not yet handed to the socket).
    pub queue_depth: usize,
    /// Messages dropped from its session's queue at the configured bound, since start.
    pub dropped: u64,
}

/// An accepted CONNECT whose connection is not yet up.
struct Pending {
    username: Option<String>,
    protocol: &'static str,
    address: SocketAddr,
    at: Instant,
}

struct Entry {
    username: Option<String>,
    protocol: &'static str,
    address: SocketAddr,
    connected_ms: i64,
    subscriptions: BTreeSet<String>,
    /// Connections under this client id that have not reported their disconnect yet (a
    /// takeover briefly has two).
    connections: u32,
}

/// The table of connected clients.
#[derive(Default)]
pub(crate) struct Clients {
    pending: Mutex<HashMap<String, Pending>>,
    live: Mutex<HashMap<String, Entry>>,
    /// Weak: the router owns the event handler, which owns this table; a strong reference
    /// would be a cycle that keeps the broker's storage (and its directory lock) alive.
    router: OnceLock<Weak<MessageRouter>>,
}

/// Pending entries older than this belong to connections that never came up.
const PENDING_TTL: Duration = Duration::from_secs(30);

fn protocol_name(version: u8) -> &'static str {
    match version {
        5 => "5.0",
        4 => "3.1.1",
        3 => "3.1",
        _ => "unknown",
    }
}

impl Clients {
    /// Set once the broker exists.
    pub(crate) fn set_router(&self, router: &Arc<MessageRouter>) {
        let _ = self.router.set(Arc::downgrade(router));
    }

    /// The protocol version of a client ("5.0", "3.1.1", "3.1"), once its CONNECT was accepted.
    pub(crate) fn protocol(&self, client_id: &str) -> Option<&'static str> {
        if let Some(e) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
        {
            return Some(e.protocol);
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
            .map(|p| p.protocol)
    }

    /// A CONNECT was accepted by the auth provider.
    pub(crate) fn authenticated(
        &self,
        client_id: &str,
        username: Option<&str>,
        version: u8,
        address: SocketAddr,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        pending.retain(|_, p| now.duration_since(p.at) < PENDING_TTL);
        pending.insert(
            client_id.to_string(),
            Pending {
                username: username.map(str::to_string),
                protocol: protocol_name(version),
                address,
                at: now,
            },
        );
    }

    /// The connection is up.
    pub(crate) fn connected(&self, client_id: &str, user: Option<&str>) {
        let p = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            // A v5 client with an empty id gets one assigned after authentication.
            match pending.remove(client_id) {
                Some(p) => Some(p),
                None => pending.remove("").filter(|p| p.username.as_deref() == user),
            }
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let entry = live.entry(client_id.to_string()).or_insert_with(|| Entry {
            username: user.map(str::to_string),
            protocol: "unknown",
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            connected_ms: time::now_ms(),
            subscriptions: BTreeSet::new(),
            connections: 0,
        });
        entry.connections += 1;
        entry.connected_ms = time::now_ms();
        entry.username = user.map(str::to_string);
        if let Some(p) = p {
            entry.protocol = p.protocol;
            entry.address = p.address;
        }
    }

    /// A connection under this client id ended.
    pub(crate) fn disconnected(&self, client_id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = live.get_mut(client_id) {
            e.connections = e.connections.saturating_sub(1);
            if e.connections == 0 {
                live.remove(client_id);
            }
        }
    }

    /// Filters granted to a client.
    pub(crate) fn subscribed(&self, client_id: &str, filters: impl IntoIterator<Item = String>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = live.get_mut(client_id) {
            e.subscriptions.extend(filters);
        }
    }

    /// Filters a client dropped.
    pub(crate) fn unsubscribed(&self, client_id: &str, filters: &[Arc<str>]) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = live.get_mut(client_id) {
            for f in filters {
                e.subscriptions.remove(&**f);
            }
        }
    }

    /// The router, once the broker exists and while it runs.
    pub(crate) fn router(&self) -> Option<Arc<MessageRouter>> {
        self.router.get().and_then(Weak::upgrade)
    }

    /// Connections up now plus CONNECTs accepted whose connection is not yet up.
    pub(crate) fn connection_count(&self) -> usize {
        let now = Instant::now();
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|p| now.duration_since(p.at) < PENDING_TTL)
            .count();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).len();
        live + pending
    }

    /// Whether a connection under `client_id` is up (a new CONNECT would take it over).
    pub(crate) fn is_live(&self, client_id: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(client_id)
    }

    /// Every connected client, by client id.
    pub(crate) fn list(&self) -> Vec<ClientInfo> {
        let router = self.router.get().and_then(Weak::upgrade);
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ClientInfo> = live
            .iter()
            .map(|(id, e)| ClientInfo {
                client_id: id.clone(),
                username: e.username.clone(),
                protocol: e.protocol,
                address: e.address,
                connected_ms: e.connected_ms,
                subscriptions: e.subscriptions.iter().cloned().collect(),
                queue_depth: router.as_ref().map_or(0, |r| r.queue_handle(id).count()),
                dropped: 0,
            })
            .collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }

    /// Closes every connection of `username`; returns how many client ids were closed.
    pub(crate) async fn disconnect_user(&self, username: &str) -> usize {
        let ids: Vec<String> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, e)| e.username.as_deref() == Some(username))
            .map(|(id, _)| id.clone())
            .collect();
        self.disconnect(&ids).await;
        ids.len()
    }

    /// Closes these client ids' connections (their sessions are kept as after a network drop).
    pub(crate) async fn disconnect(&self, client_ids: &[String]) {
        let Some(router) = self.router.get().and_then(Weak::upgrade) else {
            return;
        };
        for id in client_ids {
            router.disconnect_client(id).await;
        }
    }
}
