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
    /// CONNECTs refused (no username, unknown identity, wrong secret or password).
    pub auth_failures: u64,
    /// PUBLISHes refused by an ACL.
    pub publish_denied: u64,
    /// SUBSCRIBE filters refused by an ACL.
    pub subscribe_denied: u64,
}
