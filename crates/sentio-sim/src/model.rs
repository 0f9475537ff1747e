//! What every device model provides to the fleet.

use rand_chacha::ChaCha8Rng;

use crate::faults::Effect;

/// How a metric is reported: its sensor resolution and the range the sensor can output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetricSpec {
    pub name: &'static str,
    pub precision: f64,
    pub min: f64,
    pub max: f64,
}

/// A device's physics: the true values plus sensor noise, before sensor-level faults,
/// rounding and clamping (which the fleet applies uniformly).
pub(crate) trait DeviceModel: Send {
    /// The metrics, in the order [`DeviceModel::sample`] returns them.
    fn metrics(&self) -> &'static [MetricSpec];

    /// Advances the model by `dt_s` seconds to `ts_ms` and returns one value per metric.
    /// `effects` holds the fault episodes active on this device at `ts_ms`.
    fn sample(
        &mut self,
        ts_ms: i64,
        dt_s: f64,
        rng: &mut ChaCha8Rng,
        effects: &[Effect],
    ) -> Vec<f64>;
}

/// Progress in `[0, 1]` of the first active effect of `kind`, if any.
pub(crate) fn progress_of(effects: &[Effect], kind: crate::FaultKind) -> Option<f64> {
    effects.iter().find(|e| e.kind == kind).map(|e| e.progress)
}
