//! The per-device series limit: a device may name at most `limit` distinct metrics (numeric
//! series and text metrics alike). Past it, points and events of new metrics are refused with a
//! reason, so one device cannot grow the node's memory and database without bound by inventing
//! names. Metrics it already has keep being accepted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sentio_core::{DeviceId, Point, TextEvent};
use sentio_store::SeriesStore;

use crate::PipelineError;

/// Default most metrics per device (`pipeline.max_series_per_device`).
pub const DEFAULT_MAX_SERIES_PER_DEVICE: usize = 1_000;

/// The metric names admitted per device: those the store holds (loaded on the device's first
/// payload since start) plus those admitted since. Bounded by `limit` names per device; a
/// device's entry is dropped when it is deleted or erased.
pub(crate) struct SeriesLimit {
    limit: usize,
    store: Arc<dyn SeriesStore>,
    devices: Mutex<HashMap<DeviceId, HashSet<Arc<str>>>>,
}

/// What a payload lost to the limit.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Refused {
    /// Distinct new metric names refused.
    pub metrics: Vec<Arc<str>>,
}

impl Refused {
    /// The reason recorded on the device, naming the setting and the first refused names.
    pub fn reason(&self, limit: usize) -> Option<String> {
        const SHOWN: usize = 5;
        if self.metrics.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = self.metrics.iter().take(SHOWN).map(|m| &**m).collect();
        if self.metrics.len() > SHOWN {
            names.push("...");
        }
        Some(format!(
            "series limit: the device already has {limit} metrics \
             (pipeline.max_series_per_device); {} new metric(s) refused: {}",
            self.metrics.len(),
            names.join(", ")
        ))
    }
}

impl SeriesLimit {
    pub(crate) fn new(limit: usize, store: Arc<dyn SeriesStore>) -> Self {
        Self {
            limit,
            store,
            devices: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Keeps the points and events whose metric the device may have, admitting new metrics
    /// while there is room; returns what was refused.
    pub(crate) async fn admit(
        &self,
        device: &DeviceId,
        points: &mut Vec<Point>,
        events: &mut Vec<TextEvent>,
    ) -> Result<Refused, PipelineError> {
        if !self.lock().contains_key(device) {
            let held: HashSet<Arc<str>> = self
                .store
                .metric_names(device)
                .await?
                .into_iter()
                .map(Arc::from)
                .collect();
            self.lock().entry(device.clone()).or_insert(held);
        }
        let mut devices = self.lock();
        let Some(known) = devices.get_mut(device) else {
            // Forgotten meanwhile (deleted): the registry refuses it upstream; admit nothing new.
            return Ok(Refused::default());
        };
        let mut refused: HashSet<Arc<str>> = HashSet::new();
        let mut admit = |metric: &Arc<str>| {
            if known.contains(metric) {
                return true;
            }
            if known.len() < self.limit {
                known.insert(metric.clone());
                return true;
            }
            refused.insert(metric.clone());
            false
        };
        points.retain(|p| admit(&p.metric));
        events.retain(|e| admit(&e.metric));
        let mut metrics: Vec<Arc<str>> = refused.into_iter().collect();
        metrics.sort_unstable();
        Ok(Refused { metrics })
    }

    /// Drops what is known of a device (deleted or erased).
    pub(crate) fn forget(&self, device: &DeviceId) {
        let mut devices = self.lock();
        devices.remove(device);
        crate::detect::shrink_if_sparse(&mut devices);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, HashSet<Arc<str>>>> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }
}
