//! What every device model provides to the fleet.

use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::control::{Property, Setting};
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

    /// The properties it obeys (through its desired twin or a command of the same name).
    fn properties(&self) -> &'static [Property] {
        &[]
    }

    /// Commands that set a property to a fixed value: `(command, property, value)`.
    fn aliases(&self) -> &'static [(&'static str, &'static str, f64)] {
        &[]
    }

    /// Sets `property` (one of [`DeviceModel::properties`], already checked).
    fn set(&mut self, _property: &Property, _setting: Setting) {}

    /// Every property's current value (the twin's `reported` document).
    fn state(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// Progress in `[0, 1]` of the first active effect of `kind`, if any.
pub(crate) fn progress_of(effects: &[Effect], kind: crate::FaultKind) -> Option<f64> {
    effects.iter().find(|e| e.kind == kind).map(|e| e.progress)
}
