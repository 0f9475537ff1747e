//! Broker counters kept by Sentio's own hooks (auth, ACL, tap), next to `mqtt5`'s statistics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters Sentio's hooks bump.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// CONNECTs refused (no username, unknown identity, wrong secret or password).
    pub auth_failures: AtomicU64,
    /// PUBLISHes refused by an ACL.
    pub publish_denied: AtomicU64,
    /// SUBSCRIBE filters refused by an ACL.
    pub subscribe_denied: AtomicU64,
    /// Accepted PUBLISHes from clients, by QoS.
    pub received: [AtomicU64; 3],
    /// Outgoing QoS 1/2 messages the subscriber acknowledged, by QoS (index 0 unused).
    pub acknowledged: [AtomicU64; 3],
    /// Edge batches applied (points and progress committed).
    pub edge_batches_stored: AtomicU64,
    /// Edge batches received again and acknowledged without being applied.
    pub edge_batches_duplicate: AtomicU64,
    /// Points applied from edge batches.
    pub edge_points_stored: AtomicU64,
    /// Edge payloads that could not be decoded (the edge is disconnected, nothing acknowledged).
    pub edge_batches_refused: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A snapshot of the broker's counters, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerCounters {
    /// Clients connected now.
    pub clients_connected: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// PUBLISHes accepted from clients, by QoS 0, 1, 2.
    pub messages_received: [u64; 3],
    /// PUBLISHes written to subscribers (all QoS).
    pub messages_sent: u64,
    /// Outgoing messages acknowledged by subscribers, by QoS 0 (always 0), 1, 2.
    pub messages_acknowledged: [u64; 3],
    /// Payload bytes received in PUBLISHes.
    pub payload_bytes_received: u64,
    /// Payload bytes sent in PUBLISHes.
    pub payload_bytes_sent: u64,
    /// Messages waiting in the queues of connected clients now.
    pub queued_messages: u64,
    /// CONNECTs refused (no username, unknown identity, wrong secret or password).
    pub auth_failures: u64,
    /// PUBLISHes refused by an ACL.
    pub publish_denied: u64,
    /// SUBSCRIBE filters refused by an ACL.
    pub subscribe_denied: u64,
    /// Queued messages dropped because a session's queue was at its configured bound.
    pub dropped_queue_full: u64,
    /// PUBLISHes delayed by the per-client rate limit.
    pub publishes_throttled: u64,
    /// PUBLISHes held back while a subscriber's queue was full (no queue bound configured).
    pub publishes_backpressured: u64,
    /// CONNECTs refused at the connection limit (CONNACK 0x97).
    pub connections_refused: u64,
    /// SUBSCRIBE filters refused at the subscription limit (SUBACK 0x97).
    pub subscriptions_refused: u64,
    /// Retained PUBLISHes refused at an identity's retained bound (PUBACK 0x97).
    pub retained_refused: u64,
    /// Retained PUBLISHes refused because the data directory was at its disk budget.
    pub retained_refused_disk: u64,
    /// CONNECTs refused unchecked because their address failed too many logins.
    pub connects_backed_off: u64,
    /// Failed accepts on the MQTT listeners (such as too many open files), each followed by
    /// a pause.
    pub accept_errors: u64,
    /// Edge batches applied, received again (acknowledged, not applied), and refused as
    /// undecodable.
    pub edge_batches: [u64; 3],
    /// Points applied from edge batches.
    pub edge_points: u64,
}
