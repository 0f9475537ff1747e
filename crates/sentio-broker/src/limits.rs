//! Per-client limits that `mqtt5` does not enforce the way Sentio needs: the publish rate (a
//! token bucket that throttles), the queue bound of offline or slow sessions (back-pressure by
//! default; with a configured bound, drops counted per session), and the connection count
//! per node, per identity and per address (refused with a CONNACK reason code instead of a
//! silently closed socket; counted in `clients.rs`).
//!
//! The subscription limit and the packet size limit are `mqtt5`'s own (SUBACK 0x97 and
//! DISCONNECT 0x95); they are configured in `lib.rs`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Looked up by client id and topic prefix for every PUBLISH: foldhash (seeded per process), not
// SipHash.
use foldhash::{HashMap, HashMapExt, HashSet};
use sentio_core::acl;
use tracing::warn;

use crate::auth_guard::{AuthGuard, DEFAULT_AUTH_BACKOFF_S, DEFAULT_MAX_AUTH_FAILURES};
use crate::clients::Clients;
use crate::retained::{DEFAULT_MAX_RETAINED_BYTES, DEFAULT_MAX_RETAINED_MESSAGES, RetainedLedger};

/// Default most simultaneous connections per node.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default most simultaneous connections of one device: a device needs one or two (telemetry,
/// commands); a few more leave room for a reconnect racing the old connection's end.
pub const DEFAULT_MAX_CONNECTIONS_PER_DEVICE: usize = 8;
/// Default most simultaneous device and anonymous connections from one IP address: room for a
/// site of devices behind one NAT router, a tenth of the default node limit.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1_000;
/// Default most subscriptions per client.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1_000;
/// Queue depth of a session at which, when no bound is configured, publishers to its topics
/// wait (back-pressure) until it drains below (the depth at which mqtt5 would start dropping).
pub const BACKPRESSURE_QUEUE_DEPTH: usize = 10_000;
/// At most one drop warning per session in this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How often a publisher held back by a full queue looks again.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(10);

/// The limits a broker applies; `Default` gives the documented defaults. Read from the `[mqtt.limits]`
/// table of the node's configuration file (each field is a key of that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most subscriptions per client (0 = unlimited); beyond: SUBACK 0x97 (quota exceeded).
    pub max_subscriptions: usize,
    /// Most PUBLISHes per second per client (0 = unlimited). A token bucket holding one
    /// second's worth: beyond it the broker stops reading that client's socket until its next
    /// token (throttling; nothing refused or lost).
    pub max_publish_rate: u32,
    /// Most messages queued for one session. `None` (default): nothing is dropped; publishers
    /// to a session whose queue holds [`BACKPRESSURE_QUEUE_DEPTH`] messages wait for it to
    /// drain (their PUBACK is withheld and their socket not read). `Some(n)`: beyond `n` the
    /// oldest queued message is dropped, counted per session, in `/metrics` and in the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_messages: Option<usize>,
    /// Longest keep-alive a client may use, in seconds (`None`: the client's own, even 0).
    /// A client asking for more, or for 0, is accepted and held to this: disconnected after
    /// 1.5 times it without a packet. MQTT 5 clients are told (Server Keep Alive in the
    /// CONNACK); MQTT 3.1.1 clients cannot be, and reconnect after the close (3.1.1 lets a
    /// server close an inactive connection whatever its keep-alive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keep_alive: Option<u16>,
    /// Without a queue bound: the queue depth at which publishers wait
    /// ([`BACKPRESSURE_QUEUE_DEPTH`] by default; tests lower it).
    pub backpressure_queue_depth: usize,
    /// Most simultaneous connections of one device (0 = unlimited;
    /// [`DEFAULT_MAX_CONNECTIONS_PER_DEVICE`]). Beyond: CONNACK 0x97 (3.1.1: 0x03), so one
    /// device cannot take the connections the node has for others.
    pub max_connections_per_device: usize,
    /// Most simultaneous connections of one API token (0, the default: only the node's limit).
    /// A token is issued by the operator, often to fan out (a load generator, a gateway).
    pub max_connections_per_token: usize,
    /// Most simultaneous device and anonymous connections from one IP address (0 = unlimited;
    /// [`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`]); token connections count against their token.
    pub max_connections_per_address: usize,
    /// Most retained messages one identity may hold (0 = unlimited;
    /// [`DEFAULT_MAX_RETAINED_MESSAGES`]); a topic under `devices/<id>/` counts for device
    /// `<id>`. Beyond: PUBACK/PUBREC 0x97 (quota exceeded), not retained (`retained.rs`).
    pub max_retained_messages: usize,
    /// Most retained payload bytes one identity may hold (0 = unlimited;
    /// [`DEFAULT_MAX_RETAINED_BYTES`], 1 MiB).
    pub max_retained_bytes: usize,
    /// Failed CONNECTs from one address (an IPv6 /64) within `auth_backoff_s` after which
    /// that address is refused for `auth_backoff_s` (0 = never refused; failures are still
    /// counted and logged). [`DEFAULT_MAX_AUTH_FAILURES`].
    pub max_auth_failures: u32,
    /// The back-off interval for failed CONNECTs, in seconds ([`DEFAULT_AUTH_BACKOFF_S`]).
    pub auth_backoff_s: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_publish_rate: 0,
            max_queued_messages: None,
            max_keep_alive: None,
            backpressure_queue_depth: BACKPRESSURE_QUEUE_DEPTH,
            max_connections_per_device: DEFAULT_MAX_CONNECTIONS_PER_DEVICE,
            max_connections_per_token: 0,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_retained_messages: DEFAULT_MAX_RETAINED_MESSAGES,
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
            max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
            auth_backoff_s: DEFAULT_AUTH_BACKOFF_S,
        }
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unlimited = |n: usize| {
            if n == 0 {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        write!(
            f,
            "connections/device {}, connections/token {}, connections/address {}, ",
            unlimited(self.max_connections_per_device),
            unlimited(self.max_connections_per_token),
            unlimited(self.max_connections_per_address),
        )?;
        write!(
            f,
            "retained/identity {} messages and {} bytes, connect failures/address {} per {} s, ",
            unlimited(self.max_retained_messages),
            unlimited(self.max_retained_bytes),
            unlimited(self.max_auth_failures as usize),
            self.auth_backoff_s,
        )?;
        write!(
            f,
            "subscriptions/client {}, publishes/s/client {}, keep-alive {}, ",
            unlimited(self.max_subscriptions),
            unlimited(self.max_publish_rate as usize),
            match self.max_keep_alive {
                Some(s) => format!("at most {s} s"),
                None => "the client's".to_string(),
            }
        )?;
        match self.max_queued_messages {
            Some(n) => write!(
                f,
                "queued messages/session {n} (oldest dropped and counted)"
            ),
            None => write!(
                f,
                "queued messages/session not dropped: publishers wait while a queue holds {}",
                self.backpressure_queue_depth
            ),
        }
    }
}

/// A token bucket holding one second's worth of tokens. A publish takes a token; without one
/// it is delayed until the bucket has refilled enough (the debt is at most one token, since a
/// connection's packets are handled one at a time).
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes a token at `now`; returns how long the caller must wait for it (zero if one was
    /// available).
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// What Sentio knows of a session: its filters (from SUBSCRIBEs seen on its connections), its
/// drops, and when it expires once offline.
#[derive(Debug, Default)]
struct Session {
    filters: BTreeSet<String>,
    online: bool,
    /// Connections under this client id not yet ended (a takeover briefly has two).
    connections: u32,
    /// Session expiry granted at the last CONNECT (seconds; 0 = ends with the connection).
    expiry_s: u32,
    /// Set while offline: when the broker forgets it.
    expires: Option<Instant>,
    dropped: u64,
    /// Drops not yet reported in a warning, and when the last warning was.
    unwarned: u64,
    warned_at: Option<Instant>,
}

impl Session {
    fn alive(&self, now: Instant) -> bool {
        self.online || self.expires.is_some_and(|e| now < e)
    }
}

/// The literal levels of a filter before its first wildcard (`devices/d1/commands/#` →
/// `devices/d1/commands`): the key under which [`Table`] indexes it.
fn literal_prefix(filter: &str) -> String {
    let levels: Vec<&str> = filter
        .split('/')
        .take_while(|l| *l != "+" && *l != "#")
        .collect();
    levels.join("/")
}

/// Messages queued for `client_id` now. The router is looked up on every call, never held
/// across a wait: a stopped broker must be able to drop it (and release its storage).
fn queue_depth(clients: &Clients, client_id: &str) -> Option<usize> {
    clients.router().map(|r| r.queue_handle(client_id).count())
}

/// The sessions, and their filters indexed by literal prefix so that a PUBLISH looks only at
/// the filters that can match its topic (not at every session of every device).
#[derive(Default)]
struct Table {
    map: HashMap<String, Session>,
    /// Literal prefix → client id → how many of its filters have that prefix. The ids are
    /// shared (`Arc<str>`): a PUBLISH lists its candidate sessions without copying their ids.
    index: HashMap<String, HashMap<Arc<str>, u32>>,
}

impl Table {
    fn index_add(&mut self, client_id: &str, filter: &str) {
        *self
            .index
            .entry(literal_prefix(filter))
            .or_default()
            .entry(Arc::from(client_id))
            .or_default() += 1;
    }

    fn index_remove(&mut self, client_id: &str, filter: &str) {
        let key = literal_prefix(filter);
        if let Some(clients) = self.index.get_mut(&key) {
            if let Some(n) = clients.get_mut(client_id) {
                *n -= 1;
                if *n == 0 {
                    clients.remove(client_id);
                }
            }
            if clients.is_empty() {
                self.index.remove(&key);
            }
        }
    }

    /// Forgets a session's filters.
    fn clear_filters(&mut self, client_id: &str) {
        let filters = match self.map.get_mut(client_id) {
            Some(s) => std::mem::take(&mut s.filters),
            None => return,
        };
        for f in &filters {
            self.index_remove(client_id, f);
        }
    }

    /// Drops the sessions that expired.
    fn expire(&mut self, now: Instant) {
        let gone: Vec<String> = self
            .map
            .iter()
            .filter(|(_, s)| !s.alive(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.clear_filters(&id);
            self.map.remove(&id);
        }
    }
}

/// Counters of the limits, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct LimitCounters {
    /// Queued messages dropped because a session's queue was at its bound.
    pub dropped_queue_full: AtomicU64,
    /// PUBLISHes delayed by the rate limit.
    pub throttled: AtomicU64,
    /// PUBLISHes held back while a subscriber's queue was full (no bound configured).
    pub backpressured: AtomicU64,
    /// CONNECTs refused because the node, their identity or their address held its maximum
    /// of connections.
    pub connections_refused: AtomicU64,
    /// SUBSCRIBE filters refused because the client held its maximum of subscriptions.
    pub subscriptions_refused: AtomicU64,
}

/// The limits' state: token buckets per connected client and the sessions' filters and drops.
pub(crate) struct LimitState {
    pub limits: Limits,
    /// Most simultaneous connections (the node's, enforced at CONNECT by `Clients::admit`).
    pub max_connections: usize,
    pub counters: LimitCounters,
    /// Retained messages per identity and against the disk budget.
    pub retained: RetainedLedger,
    /// Failed CONNECTs per address, and the back-off.
    pub auth: AuthGuard,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    sessions: Mutex<Table>,
}

impl LimitState {
    pub(crate) fn new(limits: Limits, max_connections: usize) -> Self {
        Self {
            limits,
            max_connections,
            counters: LimitCounters::default(),
            retained: RetainedLedger::new(limits.max_retained_messages, limits.max_retained_bytes),
            auth: AuthGuard::new(limits.max_auth_failures, limits.auth_backoff_s),
            buckets: Mutex::new(HashMap::new()),
            sessions: Mutex::new(Table::default()),
        }
    }

    /// The rate limit: waits until `client_id` may publish again.
    pub(crate) async fn throttle(&self, client_id: &str) {
        let rate = self.limits.max_publish_rate;
        if rate == 0 {
            return;
        }
        let now = Instant::now();
        let wait = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            // The id is copied only for a client's first PUBLISH, not for every one.
            match buckets.get_mut(client_id) {
                Some(bucket) => bucket.take(now),
                None => buckets
                    .entry(client_id.to_string())
                    .or_insert_with(|| TokenBucket::new(rate, now))
                    .take(now),
            }
        };
        if !wait.is_zero() {
            LimitState::bump(&self.counters.throttled);
            tokio::time::sleep(wait).await;
        }
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection under `client_id` is up, its session expiring `expiry_s` seconds after
    /// it ends. A clean start discards the old session's filters.
    pub(crate) fn connected(&self, client_id: &str, clean_start: bool, expiry_s: u32) {
        let mut table = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if clean_start {
            table.clear_filters(client_id);
        }
        let s = table.map.entry(client_id.to_string()).or_default();
        s.online = true;
        s.connections += 1;
        s.expiry_s = expiry_s;
        s.expires = None;
    }

    /// A connection of `client_id` ended; its session lives on for its expiry interval.
    pub(crate) fn disconnected(&self, client_id: &str) {
        let mut table = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let last = match table.map.get_mut(client_id) {
            Some(s) => {
                s.connections = s.connections.saturating_sub(1);
                if s.connections == 0 {
                    s.online = false;
                    s.expires =
                        Instant::now().checked_add(Duration::from_secs(u64::from(s.expiry_s)));
                }
                s.connections == 0
            }
            None => true,
        };
        if last {
            self.buckets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(client_id);
        }
        table.expire(Instant::now());
    }

    /// Filters granted to `client_id`.
    pub(crate) fn subscribed(&self, client_id: &str, filters: impl IntoIterator<Item = String>) {
        let mut table = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for f in filters {
            // Shared subscriptions are skipped: a message goes to one member of the group.
            if f.starts_with("$share/") {
                continue;
            }
            let s = table.map.entry(client_id.to_string()).or_default();
            if s.filters.insert(f.clone()) {
                table.index_add(client_id, &f);
            }
        }
    }

    /// Filters `client_id` dropped.
    pub(crate) fn unsubscribed(&self, client_id: &str, filters: &[std::sync::Arc<str>]) {
        let mut table = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for f in filters {
            let removed = table
                .map
                .get_mut(client_id)
                .is_some_and(|s| s.filters.remove(&**f));
            if removed {
                table.index_remove(client_id, f);
            }
        }
    }

    /// Messages dropped from this session's queue since start.
    pub(crate) fn dropped(&self, client_id: &str) -> u64 {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(client_id)
            .map_or(0, |s| s.dropped)
    }

    /// Sessions other than the publisher's whose (non-shared) filters match `topic`.
    fn matching(&self, publisher: &str, topic: &str) -> Vec<Arc<str>> {
        let table = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if table.index.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut out: Vec<Arc<str>> = Vec::new();
        // Ids already taken from an earlier prefix: a session is listed under each literal
        // prefix of its filters, and ids are unique within one prefix. Built only when a
        // second prefix has sessions (a `Vec::contains` per candidate was quadratic in the
        // number of subscribers: a third of the broker's instructions at 1→100 QoS 1).
        let mut seen: Option<HashSet<Arc<str>>> = None;
        let mut hit_prefixes = 0;
        // Every literal prefix of the topic: "", "a", "a/b", ...
        let ends = std::iter::once(0)
            .chain(topic.match_indices('/').map(|(i, _)| i))
            .chain(std::iter::once(topic.len()));
        for (i, end) in ends.enumerate() {
            // "" and then each prefix ending before a '/' or at the end (not "a/" itself).
            if i > 0 && end == 0 {
                continue;
            }
            let Some(clients) = table.index.get(&topic[..end]) else {
                continue;
            };
            hit_prefixes += 1;
            if hit_prefixes == 2 {
                seen = Some(out.iter().cloned().collect());
            }
            for id in clients.keys() {
                if **id == *publisher || seen.as_ref().is_some_and(|s| s.contains(id)) {
                    continue;
                }
                let hit = table.map.get(&**id).is_some_and(|s| {
                    s.alive(now) && s.filters.iter().any(|f| acl::matches(f, topic))
                });
                if hit {
                    out.push(id.clone());
                    if let Some(seen) = seen.as_mut() {
                        seen.insert(id.clone());
                    }
                }
            }
        }
        out
    }

    /// Called before a client's PUBLISH to `topic` is routed. With a queue bound, counts the
    /// drop each full subscriber queue is about to make (the broker drops its oldest message);
    /// without one, waits while a subscriber's queue holds `backpressure_queue_depth` messages. The publisher's own session is skipped: waiting for it would wait for itself.
    pub(crate) async fn before_route(&self, clients: &Clients, publisher: &str, topic: &str) {
        let Some(waiting) = self.admit(clients, publisher, topic) else {
            return;
        };
        let mut counted = false;
        for id in &waiting {
            while self.queue_is_deep(clients, id) && self.is_alive(id) {
                if !counted {
                    LimitState::bump(&self.counters.backpressured);
                    counted = true;
                }
                tokio::time::sleep(BACKPRESSURE_POLL).await;
            }
        }
    }

    /// The part of [`Self::before_route`] that never waits. With a queue bound, counts the
    /// drops and returns `None`. Without one, returns the subscribers to wait for, from the
    /// first whose queue is deep on (`None` when none is: the PUBLISH goes on at once).
    pub(crate) fn admit(
        &self,
        clients: &Clients,
        publisher: &str,
        topic: &str,
    ) -> Option<Vec<Arc<str>>> {
        // No queue holds more than all queues together: below the bound (or the depth) in
        // total, no subscriber's queue can be at it, and the subscribers need not be listed
        // (a walk over every matching session per PUBLISH, a tenth of the broker's time at a
        // 1→100 fan-out).
        let depth = self
            .limits
            .max_queued_messages
            .unwrap_or(self.limits.backpressure_queue_depth);
        if clients
            .router()
            .is_some_and(|router| router.queued_total() < depth)
        {
            return None;
        }
        let mut targets = self.matching(publisher, topic);
        if targets.is_empty() {
            return None;
        }
        match self.limits.max_queued_messages {
            Some(bound) => {
                let full: Vec<&str> = targets
                    .iter()
                    .map(|id| &**id)
                    .filter(|id| queue_depth(clients, id).is_some_and(|d| d >= bound))
                    .collect();
                if !full.is_empty() {
                    self.record_drops(&full);
                }
                None
            }
            None => {
                let first = targets
                    .iter()
                    .position(|id| self.queue_is_deep(clients, id))?;
                Some(targets.split_off(first))
            }
        }
    }

    /// Whether `client_id`'s queue holds `backpressure_queue_depth` messages or more.
    fn queue_is_deep(&self, clients: &Clients, client_id: &str) -> bool {
        queue_depth(clients, client_id).is_some_and(|d| d >= self.limits.backpressure_queue_depth)
    }

    fn is_alive(&self, client_id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(client_id)
            .is_some_and(|s| s.alive(Instant::now()))
    }

    /// One message dropped from each of these sessions' queues; warns at most once per
    /// session every [`WARN_INTERVAL`].
    fn record_drops(&self, full: &[&str]) {
        let now = Instant::now();
        let mut table = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for id in full {
            LimitState::bump(&self.counters.dropped_queue_full);
            let Some(s) = table.map.get_mut(*id) else {
                continue;
            };
            s.dropped += 1;
            s.unwarned += 1;
            if s.warned_at
                .is_none_or(|t| now.duration_since(t) >= WARN_INTERVAL)
            {
                warn!(
                    client_id = %id,
                    dropped = s.unwarned,
                    dropped_total = s.dropped,
                    bound = self.limits.max_queued_messages.unwrap_or(0),
                    online = s.online,
                    "MQTT session queue full: oldest queued messages dropped (mqtt.limits.max_queued_messages)"
                );
                s.unwarned = 0;
                s.warned_at = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_a_second_then_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        let wait = b.take(t0);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // After waiting, the next token is 0.1 s later again.
        let t1 = t0 + wait;
        let wait = b.take(t1);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // A long pause refills at most one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(b.take(t2), Duration::ZERO);
        }
        assert!(b.take(t2) > Duration::ZERO);
    }

    #[test]
    fn sessions_match_by_filter_and_expire() {
        let s = LimitState::new(Limits::default(), 10);
        s.connected("sub", false, 3600);
        s.subscribed("sub", ["a/+/c".to_string(), "$share/g/x/#".to_string()]);
        s.connected("pub", true, 0);
        s.subscribed("pub", ["a/#".to_string()]);
        assert_eq!(s.matching("pub", "a/b/c"), [Arc::from("sub")]);
        assert!(
            s.matching("pub", "x/y").is_empty(),
            "shared filters are skipped"
        );
        s.disconnected("sub");
        assert_eq!(s.matching("pub", "a/b/c"), [Arc::from("sub")]);
        s.connected("sub", true, 0);
        assert!(s.matching("pub", "a/b/c").is_empty(), "clean start forgets");
        s.subscribed("sub", ["a/+/c".to_string()]);
        s.disconnected("sub");
        assert!(
            s.matching("pub", "a/b/c").is_empty(),
            "expiry 0 ends with the connection"
        );
    }

    #[test]
    fn a_session_under_several_prefixes_is_matched_once() {
        let s = LimitState::new(Limits::default(), 10);
        for id in ["s1", "s2", "s3"] {
            s.connected(id, false, 3600);
        }
        s.subscribed(
            "s1",
            ["#".to_string(), "a/#".to_string(), "a/b".to_string()],
        );
        s.subscribed("s2", ["a/+".to_string()]);
        s.subscribed("s3", ["a/b".to_string(), "c/#".to_string()]);
        let mut hit = s.matching("pub", "a/b");
        hit.sort();
        assert_eq!(hit, ["s1", "s2", "s3"].map(Arc::from));
        assert_eq!(s.matching("pub", "d"), [Arc::from("s1")]);
        assert_eq!(s.matching("s1", "/x"), Vec::<Arc<str>>::new());
        assert_eq!(s.matching("pub", "/x"), [Arc::from("s1")]);
    }
}
