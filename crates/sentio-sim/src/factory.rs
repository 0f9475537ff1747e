//! Factory pumps running around the clock: vibration, motor current and bearing temperature follow
//! the pump's load; a bearing fault makes vibration and bearing temperature climb exponentially
//! over its window, and motor current rise slightly.

use rand_chacha::ChaCha8Rng;

use crate::faults::{Effect, FaultKind};
use crate::model::{DeviceModel, MetricSpec, progress_of};
use crate::noise::{Wander, gauss, hour_of_day, relax, uniform};

pub(crate) const METRICS: &[&str] = &["vibration_rms", "motor_current", "bearing_temp"];

const SPECS: &[MetricSpec] = &[
    MetricSpec {
        name: "vibration_rms",
        precision: 0.01,
        min: 0.0,
        max: 50.0,
    },
    MetricSpec {
        name: "motor_current",
        precision: 0.01,
        min: 0.0,
        max: 100.0,
    },
    MetricSpec {
        name: "bearing_temp",
        precision: 0.1,
        min: -20.0,
        max: 150.0,
    },
];

/// Severity in `[0, 1]` of a bearing fault at `progress` through its window: slow at first,
/// then accelerating (exponential), as a spalling bearing does.
pub(crate) fn bearing_severity(progress: f64) -> f64 {
    const K: f64 = 3.0;
    ((K * progress.clamp(0.0, 1.0)).exp() - 1.0) / (K.exp() - 1.0)
}

/// Bearing-fault increments at full severity.
const FAULT_VIBRATION_FACTOR: f64 = 3.5;
/// A failing bearing overheats past the 90 °C alarm limit of the demo (`DEMO_LIMITS`) towards
/// the end of its fault window, so time-to-threshold has a crossing to predict.
const FAULT_BEARING_TEMP: f64 = 55.0;
const FAULT_CURRENT_FRACTION: f64 = 0.10;

pub(crate) struct Pump {
    base_vibration: f64,
    base_current: f64,
    base_bearing_temp: f64,
    cycle_phase: f64,
    load: Wander,
    vibration_wander: Wander,
    bearing_temp: f64,
}

impl Pump {
    pub(crate) fn new(rng: &mut ChaCha8Rng, start_ms: i64) -> Self {
        let mut pump = Self {
            base_vibration: uniform(rng, 1.8, 2.8),
            base_current: uniform(rng, 10.0, 14.0),
            base_bearing_temp: uniform(rng, 40.0, 48.0),
            cycle_phase: uniform(rng, 0.0, std::f64::consts::TAU),
            load: Wander::new(rng, 0.015, 300.0),
            vibration_wander: Wander::new(rng, 0.06, 60.0),
            bearing_temp: 0.0,
        };
        pump.bearing_temp = pump.bearing_temp_target(start_ms, 1.0);
        pump
    }

    /// Load factor around 1: a 10-minute process cycle plus slow random variation.
    fn load_factor(&mut self, ts_ms: i64, dt_s: f64, rng: &mut ChaCha8Rng) -> f64 {
        let cycle = (std::f64::consts::TAU * (ts_ms as f64 / 600_000.0) + self.cycle_phase).sin();
        1.0 + 0.015 * cycle + self.load.step(rng, dt_s)
    }

    fn bearing_temp_target(&self, ts_ms: i64, load: f64) -> f64 {
        // Ambient follows the day (warmest mid-afternoon UTC), the bearing follows load.
        let ambient = 1.5 * (std::f64::consts::TAU * (hour_of_day(ts_ms) - 9.0) / 24.0).sin();
        self.base_bearing_temp + ambient + 25.0 * (load - 1.0)
    }
}

impl DeviceModel for Pump {
    fn metrics(&self) -> &'static [MetricSpec] {
        SPECS
    }

    fn sample(
        &mut self,
        ts_ms: i64,
        dt_s: f64,
        rng: &mut ChaCha8Rng,
        effects: &[Effect],
    ) -> Vec<f64> {
        let load = self.load_factor(ts_ms, dt_s, rng);
        let severity = progress_of(effects, FaultKind::BearingFault)
            .map(bearing_severity)
            .unwrap_or(0.0);

        let vibration = self.base_vibration * (1.0 + 0.5 * (load - 1.0))
            + self.vibration_wander.step(rng, dt_s)
            + self.base_vibration * FAULT_VIBRATION_FACTOR * severity
            + 0.06 * (1.0 + 2.0 * severity) * gauss(rng);

        let current =
            self.base_current * (load + FAULT_CURRENT_FRACTION * severity) + 0.08 * gauss(rng);

        let target = self.bearing_temp_target(ts_ms, load);
        self.bearing_temp = relax(self.bearing_temp, target, dt_s, 300.0);
        let bearing_temp = self.bearing_temp + FAULT_BEARING_TEMP * severity + 0.08 * gauss(rng);

        vec![vibration.max(0.05), current, bearing_temp]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_accelerates() {
        assert_eq!(bearing_severity(0.0), 0.0);
        assert!((bearing_severity(1.0) - 1.0).abs() < 1e-12);
        let first_half = bearing_severity(0.5);
        assert!(first_half < 0.25, "slow start: {first_half}");
        assert!(bearing_severity(0.75) - bearing_severity(0.5) < 1.0 - bearing_severity(0.75));
    }
}
