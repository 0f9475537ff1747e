//! Who is connected: what the API lists (`GET /api/v1/broker/clients`), what the connection
//! quotas count and what revoking an identity (a token, a device's secret) disconnects. `mqtt5`
//! keeps its client table private, so this is built from what the broker tells us: the CONNECT
//! admitted by the auth providers (username, protocol version, address) and the connect,
//! subscribe, unsubscribe and disconnect events of the tap.
//!
//! Revocation: each identity has a revocation count. A CONNECT reads it *before* its credential
//! is checked and carries it to the moment its connection is up; if the identity was revoked in
//! between (the sweep of live connections could not see it yet), the connection is closed then.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use mqtt5::broker::router::MessageRouter;
use sentio_core::time;

use crate::client_table::{ClientTable, Entry, Pending, is_token};

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

/// How many connections one node, identity or address may hold (0 = no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Quotas {
    /// The whole node.
    pub node: usize,
    /// One device (username = device id, or a certificate's CN).
    pub per_device: usize,
    /// One API token (`token:<id>`).
    pub per_token: usize,
    /// One IP address, counting device and anonymous connections (a token's are bounded by
    /// `per_token`: an operator issues one to fan out, e.g. a load generator or a gateway).
    pub per_address: usize,
}

impl Quotas {
    /// Whether one more connection of `user` fits, given how many the node, that identity and
    /// its address already hold (the connection it takes over, if any, not counted).
    fn admits(
        self,
        user: Option<&str>,
        node: usize,
        identity: usize,
        at_address: usize,
    ) -> Result<(), Refusal> {
        let per_identity = match user {
            Some(u) if is_token(u) => self.per_token,
            Some(_) => self.per_device,
            None => 0,
        };
        if self.node != 0 && node >= self.node {
            return Err(Refusal::Node(self.node));
        }
        if per_identity != 0 && identity >= per_identity {
            return Err(Refusal::Identity(per_identity));
        }
        let counts_for_address = !user.is_some_and(is_token);
        if self.per_address != 0 && counts_for_address && at_address >= self.per_address {
            return Err(Refusal::Address(self.per_address));
        }
        Ok(())
    }
}

/// Why a CONNECT was not admitted: which quota was full, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The node holds its maximum of connections.
    Node(usize),
    /// The identity holds its maximum.
    Identity(usize),
    /// The address holds its maximum.
    Address(usize),
}

/// A CONNECT on its way through authentication: who it claims to be, and that identity's
/// revocation count read before its credential was checked.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    username: Option<String>,
    revocations: u64,
}

/// The table of connected clients.
#[derive(Default)]
pub(crate) struct Clients {
    quotas: Quotas,
    table: Mutex<ClientTable>,
    /// Identity → how many times it was revoked (secret rotated, device or token deleted).
    revocations: Mutex<HashMap<String, u64>>,
    /// Weak: the router owns the event handler, which owns this table; a strong reference
    /// would be a cycle that keeps the broker's storage (and its directory lock) alive.
    router: OnceLock<Weak<MessageRouter>>,
}

fn protocol_name(version: u8) -> &'static str {
    match version {
        5 => "5.0",
        4 => "3.1.1",
        3 => "3.1",
        _ => "unknown",
    }
}

impl Clients {
    pub(crate) fn new(quotas: Quotas) -> Self {
        Self {
            quotas,
            ..Self::default()
        }
    }

    /// Starts the admission of a CONNECT claiming `username`: call before its credential is
    /// checked, so that a revocation racing with the check is seen.
    pub(crate) fn ticket(&self, username: Option<&str>) -> Ticket {
        Ticket {
            username: username.map(str::to_string),
            revocations: username.map_or(0, |u| self.revocations_of(u)),
        }
    }

    fn table(&self) -> MutexGuard<'_, ClientTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn revocations_of(&self, identity: &str) -> u64 {
        self.revocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(identity)
            .copied()
            .unwrap_or(0)
    }

    /// Admits an authenticated CONNECT unless a connection quota is full: the node's, its
    /// identity's or its address's. A CONNECT that takes over a connected client id of the
    /// same identity does not add a connection. Checked and recorded under one lock, so
    /// simultaneous CONNECTs cannot all slip under a quota.
    pub(crate) fn admit(
        &self,
        ticket: Ticket,
        client_id: &str,
        version: u8,
        address: SocketAddr,
    ) -> Result<(), Refusal> {
        let mut table = self.table();
        let now = Instant::now();
        table.expire_pending(now);
        let takeover = table
            .maps()
            .live
            .get(client_id)
            .is_some_and(|e| e.username == ticket.username);
        if !takeover {
            self.check_quotas(&table, &ticket, client_id, address)?;
        }
        table.insert_pending(
            client_id,
            Pending {
                username: ticket.username,
                protocol: protocol_name(version),
                address,
                at: now,
                revocations: ticket.revocations,
            },
        );
        Ok(())
    }

    /// Whether one more connection of `ticket`'s identity from `address` fits every quota.
    /// `client_id`'s own connection, if it has one, is not counted: this CONNECT takes it over
    /// (refused later if another identity holds it) rather than adding one. O(1): the table
    /// keeps the counts.
    fn check_quotas(
        &self,
        table: &ClientTable,
        ticket: &Ticket,
        client_id: &str,
        address: SocketAddr,
    ) -> Result<(), Refusal> {
        let q = self.quotas;
        let user = ticket.username.as_deref();
        let counts = table.counts();
        let (mut node, mut identity, mut at_address) = (
            counts.node,
            user.map_or(0, |u| counts.identity(u)),
            counts.address(address.ip()),
        );
        if let Some(own) = table.maps().holder(client_id) {
            node -= 1;
            if user.is_some() && own.username() == user {
                identity -= 1;
            }
            if own.counts_for_address() && own.ip() == address.ip() {
                at_address -= 1;
            }
        }
        q.admits(user, node, identity, at_address)
    }

    /// Set once the broker exists.
    pub(crate) fn set_router(&self, router: &Arc<MessageRouter>) {
        let _ = self.router.set(Arc::downgrade(router));
    }

    /// The protocol version of a client ("5.0", "3.1.1", "3.1"), once its CONNECT was accepted.
    pub(crate) fn protocol(&self, client_id: &str) -> Option<&'static str> {
        let table = self.table();
        let maps = table.maps();
        match maps.live.get(client_id) {
            Some(e) => Some(e.protocol),
            None => maps.pending.get(client_id).map(|p| p.protocol),
        }
    }

    /// The connection is up. Returns `true` if its identity was revoked since its credential
    /// was checked: the caller closes it.
    pub(crate) fn connected(&self, client_id: &str, user: Option<&str>) -> bool {
        let mut table = self.table();
        let p = match table.change(client_id, |m| m.pending.remove(client_id)) {
            Some(p) => Some(p),
            // A v5 client with an empty id gets one assigned after authentication.
            None if table
                .maps()
                .pending
                .get("")
                .is_some_and(|p| p.username.as_deref() == user) =>
            {
                table.change("", |m| m.pending.remove(""))
            }
            None => None,
        };
        let checked_at = p.as_ref().map(|p| p.revocations);
        table.change(client_id, |m| {
            let entry = m
                .live
                .entry(client_id.to_string())
                .or_insert_with(|| Entry {
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
        });
        drop(table);
        // Read after the entry is live: a revocation either counted before this read, or its
        // sweep of the live table sees this connection.
        match (user, checked_at) {
            (Some(u), Some(then)) => self.revocations_of(u) != then,
            _ => false,
        }
    }

    /// A connection under this client id ended.
    pub(crate) fn disconnected(&self, client_id: &str) {
        self.table().change(client_id, |m| {
            if let Some(e) = m.live.get_mut(client_id) {
                e.connections = e.connections.saturating_sub(1);
                if e.connections == 0 {
                    m.live.remove(client_id);
                }
            }
        });
    }

    /// Whether `identity` (a device id or a token's username) has a live connection.
    pub(crate) fn identity_connected(&self, identity: &str) -> bool {
        self.table()
            .maps()
            .live
            .values()
            .any(|e| e.connections > 0 && e.username.as_deref() == Some(identity))
    }

    /// The identity of a connected client.
    pub(crate) fn username(&self, client_id: &str) -> Option<String> {
        let table = self.table();
        table
            .maps()
            .live
            .get(client_id)
            .and_then(|e| e.username.clone())
    }

    /// Filters granted to a client.
    pub(crate) fn subscribed(&self, client_id: &str, filters: impl IntoIterator<Item = String>) {
        if let Some(e) = self.table().live_mut(client_id) {
            e.subscriptions.extend(filters);
        }
    }

    /// Filters a client dropped.
    pub(crate) fn unsubscribed(&self, client_id: &str, filters: &[Arc<str>]) {
        if let Some(e) = self.table().live_mut(client_id) {
            for f in filters {
                e.subscriptions.remove(&**f);
            }
        }
    }

    /// The router, once the broker exists and while it runs.
    pub(crate) fn router(&self) -> Option<Arc<MessageRouter>> {
        self.router.get().and_then(Weak::upgrade)
    }

    /// Every connected client, by client id.
    pub(crate) fn list(&self) -> Vec<ClientInfo> {
        let router = self.router.get().and_then(Weak::upgrade);
        let table = self.table();
        let mut out: Vec<ClientInfo> = table
            .maps()
            .live
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

    /// Revokes an identity: its connections are closed, and so are those whose CONNECT was
    /// being authenticated meanwhile (see the module doc). Returns how many were closed now.
    pub(crate) async fn revoke(&self, username: &str) -> usize {
        *self
            .revocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(username.to_string())
            .or_default() += 1;
        let ids: Vec<String> = self
            .table()
            .maps()
            .live
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    fn admit(c: &Clients, id: &str, user: Option<&str>, a: SocketAddr) -> Result<(), Refusal> {
        c.admit(c.ticket(user), id, 5, a)
    }

    #[test]
    fn a_revocation_during_authentication_closes_the_connection_when_it_comes_up() {
        let c = Clients::default();
        // Ticket taken (credential about to be checked), then the identity is revoked.
        let ticket = c.ticket(Some("d1"));
        *c.revocations
            .lock()
            .unwrap()
            .entry("d1".into())
            .or_default() += 1;
        c.admit(ticket, "c1", 5, addr(1, 1)).unwrap();
        assert!(
            c.connected("c1", Some("d1")),
            "revoked while authenticating"
        );
        // A CONNECT authenticated after the revocation is not affected.
        admit(&c, "c2", Some("d1"), addr(1, 2)).unwrap();
        assert!(!c.connected("c2", Some("d1")));
        // Nor is another identity.
        let other = c.ticket(Some("d2"));
        *c.revocations
            .lock()
            .unwrap()
            .entry("d1".into())
            .or_default() += 1;
        c.admit(other, "c3", 5, addr(1, 3)).unwrap();
        assert!(!c.connected("c3", Some("d2")));
    }

    #[test]
    fn quotas_per_node_identity_and_address() {
        let c = Clients::new(Quotas {
            node: 6,
            per_device: 2,
            per_token: 1,
            per_address: 3,
        });
        admit(&c, "a1", Some("d1"), addr(1, 1)).unwrap();
        c.connected("a1", Some("d1"));
        admit(&c, "a2", Some("d1"), addr(2, 1)).unwrap(); // pending counts too
        assert_eq!(
            admit(&c, "a3", Some("d1"), addr(3, 1)),
            Err(Refusal::Identity(2))
        );
        // Taking over its own client id is not another connection.
        admit(&c, "a1", Some("d1"), addr(1, 2)).unwrap();
        // Per address: d2 and anonymous from 10.0.0.1 (d1 has one there already).
        admit(&c, "b1", Some("d2"), addr(1, 3)).unwrap();
        admit(&c, "n1", None, addr(1, 4)).unwrap();
        assert_eq!(
            admit(&c, "b2", Some("d2"), addr(1, 5)),
            Err(Refusal::Address(3))
        );
        // A token's connections count against the token, not the address.
        admit(&c, "t1", Some("token:x"), addr(1, 6)).unwrap();
        assert_eq!(
            admit(&c, "t2", Some("token:x"), addr(4, 1)),
            Err(Refusal::Identity(1))
        );
        // The node: a1, a2, b1, n1, t1 = 5 of 6.
        admit(&c, "e1", Some("d3"), addr(5, 1)).unwrap();
        assert_eq!(
            admit(&c, "e2", Some("d4"), addr(6, 1)),
            Err(Refusal::Node(6))
        );
    }

    /// The quota check as a scan of every connection (what `check_quotas` did before the
    /// table kept counts): the oracle for the running totals.
    fn scanned_refusal(
        c: &Clients,
        user: Option<&str>,
        client_id: &str,
        address: SocketAddr,
    ) -> Result<(), Refusal> {
        let table = c.table();
        let maps = table.maps();
        if maps
            .live
            .get(client_id)
            .is_some_and(|e| e.username.as_deref() == user)
        {
            return Ok(());
        }
        let q = c.quotas;
        let counts_for_address = |u: Option<&str>| !u.is_some_and(is_token);
        let (mut node, mut identity, mut at_address) = (0, 0, 0);
        let connections = maps
            .live
            .iter()
            .map(|(id, e)| (id, e.username.as_deref(), e.address))
            .chain(
                maps.pending
                    .iter()
                    .filter(|(id, _)| !maps.live.contains_key(*id))
                    .map(|(id, p)| (id, p.username.as_deref(), p.address)),
            );
        for (id, u, a) in connections {
            if id == client_id {
                continue;
            }
            node += 1;
            if user.is_some() && u == user {
                identity += 1;
            }
            if counts_for_address(u) && a.ip() == address.ip() {
                at_address += 1;
            }
        }
        q.admits(user, node, identity, at_address)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit { id: u8, user: u8, ip: u8 },
        Connected { id: u8, user: u8 },
        Disconnected { id: u8 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, 0..4u8, 0..3u8).prop_map(|(id, user, ip)| Op::Admit { id, user, ip }),
            (0..6u8, 0..4u8).prop_map(|(id, user)| Op::Connected { id, user }),
            (0..6u8).prop_map(|id| Op::Disconnected { id }),
        ]
    }

    fn client_id(i: u8) -> String {
        // Id 0 is the empty id a v5 client may send (the broker assigns one once it is up).
        if i == 0 {
            String::new()
        } else {
            format!("c{i}")
        }
    }

    fn user(i: u8) -> Option<&'static str> {
        [None, Some("d1"), Some("d2"), Some("token:t")][usize::from(i)]
    }

    proptest::proptest! {
        /// Whatever order CONNECTs, connection-ups and disconnects come in, the running
        /// counts equal a recount of the table, and every admission decides as a full scan
        /// of the connections would.
        #[test]
        fn connection_counts_stay_equal_to_a_scan_of_the_table(
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let c = Clients::new(Quotas { node: 5, per_device: 2, per_token: 2, per_address: 3 });
            for op in ops {
                match op {
                    Op::Admit { id, user: u, ip } => {
                        let (id, u, a) = (client_id(id), user(u), addr(ip, 1));
                        let expected = scanned_refusal(&c, u, &id, a);
                        proptest::prop_assert_eq!(admit(&c, &id, u, a), expected);
                    }
                    Op::Connected { id, user: u } => {
                        c.connected(&client_id(id), user(u));
                    }
                    Op::Disconnected { id } => c.disconnected(&client_id(id)),
                }
                let table = c.table();
                proptest::prop_assert_eq!(
                    table.counts(),
                    &crate::client_table::Counts::recount(table.maps())
                );
            }
        }
    }

    #[test]
    fn a_connect_that_never_comes_up_stops_counting_after_the_pending_time_to_live() {
        use crate::client_table::PENDING_TTL;
        let c = Clients::new(Quotas {
            per_device: 1,
            ..Quotas::default()
        });
        let start = Instant::now();
        let mut table = c.table();
        table.insert_pending(
            "a",
            Pending {
                username: Some("d1".into()),
                protocol: "5.0",
                address: addr(1, 1),
                at: start,
                revocations: 0,
            },
        );
        table.expire_pending(start + PENDING_TTL / 2);
        assert_eq!(table.counts().identity("d1"), 1);
        // Admitted again later: the first admission's expiry must not drop the second.
        table.insert_pending(
            "a",
            Pending {
                username: Some("d1".into()),
                protocol: "5.0",
                address: addr(1, 1),
                at: start + PENDING_TTL / 2,
                revocations: 0,
            },
        );
        table.expire_pending(start + PENDING_TTL);
        assert_eq!(table.counts().identity("d1"), 1);
        table.expire_pending(start + PENDING_TTL * 2);
        assert_eq!(table.counts().identity("d1"), 0);
        assert_eq!(table.counts().node, 0);
        assert!(table.maps().pending.is_empty());
    }
}
#[cfg(test)]
mod scratch_timing {
    use super::*;
    #[test]
    fn time_20k() {
        let c = Clients::new(Quotas {
            node: 100_000,
            per_device: 5,
            per_token: 0,
            per_address: 100_000,
        });
        let t = std::time::Instant::now();
        for i in 0..20_000u32 {
            let id = format!("c{i}");
            let u = format!("d{i}");
            c.admit(
                c.ticket(Some(&u)),
                &id,
                5,
                SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1)),
            )
            .unwrap();
            c.connected(&id, Some(&u));
        }
        eprintln!("20k connects: {:?}", t.elapsed());
    }
}
