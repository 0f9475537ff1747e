//! Counters of the pipeline, read by `/metrics` and the API.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Points committed to the store.
    pub points_stored: AtomicU64,
    /// Payloads (or parts) refused, with a reason recorded on the device.
    pub rejections: AtomicU64,
    /// Commits that failed (the points were not acknowledged).
    pub store_failures: AtomicU64,
    /// Points scored by the detectors.
    pub points_scored: AtomicU64,
    /// Alerts opened.
    pub alerts_opened: AtomicU64,
    /// Alerts resolved.
    pub alerts_resolved: AtomicU64,
    /// Live events a slow subscriber missed.
    pub bus_lagged: AtomicU64,
    /// Payloads refused up front because the store was full (the store itself says whether
    /// it is: `sentio_store::StorageHealth`).
    pub storage_full_refusals: AtomicU64,
    /// New metrics refused because their device had reached `max_series_per_device`.
    pub series_limit_refusals: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
