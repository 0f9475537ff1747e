//! What the uplink shows: counters and the link's condition, read by the API and `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The uplink's live state. Shared between the link task and readers.
#[derive(Debug, Default)]
pub struct UplinkState {
    pub(crate) connected: AtomicBool,
    pub(crate) connects: AtomicU64,
    pub(crate) link_losses: AtomicU64,
    pub(crate) ack_timeouts: AtomicU64,
    pub(crate) parts_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) points_sent: AtomicU64,
    pub(crate) batches_acked: AtomicU64,
    pub(crate) points_acked: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) backlog_points_acked: AtomicU64,
    pub(crate) backlog_drain_rate: AtomicU64,
    pub(crate) backlog_rate_limit: AtomicU64,
    pub(crate) records_acked: AtomicU64,
    pub(crate) rollup_rows_acked: AtomicU64,
    pub(crate) rollup_packet_bytes: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

/// A copy of [`UplinkState`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSnapshot {
    /// Whether the link to the cloud is up now.
    pub connected: bool,
    /// Connections established since start.
    pub connects: u64,
    /// Connections lost or dropped since start (including ack timeouts).
    pub link_losses: u64,
    /// Connections dropped because an acknowledgement did not come in time (a black hole).
    pub ack_timeouts: u64,
    /// Batch parts published (again after a reconnect too).
    pub parts_sent: u64,
    /// Their payload bytes.
    pub bytes_sent: u64,
    /// Their points.
    pub points_sent: u64,
    /// Batches acknowledged by the cloud.
    pub batches_acked: u64,
    /// Points in them.
    pub points_acked: u64,
    /// Parts published and not acknowledged now.
    pub in_flight: u64,
    /// Backlog points acknowledged by the cloud (part of `points_acked`).
    pub backlog_points_acked: u64,
    /// Backlog points acknowledged per second, over the last few seconds (0 while the link
    /// is down).
    pub backlog_drain_rate: u64,
    /// The configured most backlog points per second (0: no limit).
    pub backlog_rate_limit: u64,
    /// Registry and alert records acknowledged by the cloud since start.
    pub records_acked: u64,
    /// 1-minute rollup rows acknowledged by the cloud since start (aggregates policy).
    pub rollup_rows_acked: u64,
    /// Bytes of the rollups' PUBLISH packets (MQTT framing included, before TLS).
    pub rollup_packet_bytes: u64,
    /// Why the link was last lost or refused.
    pub last_error: Option<String>,
}

impl UplinkState {
    /// The state now.
    pub fn snapshot(&self) -> LinkSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connects: r(&self.connects),
            link_losses: r(&self.link_losses),
            ack_timeouts: r(&self.ack_timeouts),
            parts_sent: r(&self.parts_sent),
            bytes_sent: r(&self.bytes_sent),
            points_sent: r(&self.points_sent),
            batches_acked: r(&self.batches_acked),
            points_acked: r(&self.points_acked),
            in_flight: r(&self.in_flight),
            backlog_points_acked: r(&self.backlog_points_acked),
            backlog_drain_rate: r(&self.backlog_drain_rate),
            backlog_rate_limit: r(&self.backlog_rate_limit),
            records_acked: r(&self.records_acked),
            rollup_rows_acked: r(&self.rollup_rows_acked),
            rollup_packet_bytes: r(&self.rollup_packet_bytes),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn lost(&self, why: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.in_flight.store(0, Ordering::Relaxed);
        self.backlog_drain_rate.store(0, Ordering::Relaxed);
        Self::add(&self.link_losses, 1);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }
}
