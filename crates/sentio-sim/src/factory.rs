//! Factory pumps running around the clock: vibration, motor current and bearing temperature follow
//! the pump's load; a bearing fault makes vibration and bearing temperature climb exponentially
//! over its window, and motor current rise slightly.
//!
//! A pump obeys `speed` (percent of its rated speed, 0-100; commands `stop` and `start` set 0
//! and 100). By the affinity laws its motor current (torque) goes with the square of the
//! speed, so its `power_w` (400 V three-phase at a power factor of 0.85, from the motor
//! current) with the cube; vibration with the speed; the bearing's heating, and a failing
//! bearing's, with its square. At full speed the pump behaves as it always did.

use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::control::{Property, Setting, Values};
use crate::faults::{Effect, FaultKind};
use crate::model::{DeviceModel, MetricSpec, progress_of};
use crate::noise::{Wander, gauss, hour_of_day, relax, uniform};

pub(crate) const METRICS: &[&str] = &["vibration_rms", "motor_current", "bearing_temp", "power_w"];

const PROPERTIES: &[Property] = &[Property {
    name: "speed",
    values: Values::Range {
        min: 0.0,
        max: 100.0,
    },
}];

const ALIASES: &[(&str, &str, f64)] = &[("stop", "speed", 0.0), ("start", "speed", 100.0)];

/// Watts per ampere of motor current: √3 × 400 V × 0.85.
const W_PER_AMPERE: f64 = 1.732_050_8 * 400.0 * 0.85;
/// The bearing of a stopped pump settles here, °C (before the day's ambient swing).
const BEARING_AMBIENT: f64 = 25.0;

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
    MetricSpec {
        name: "power_w",
        precision: 1.0,
        min: 0.0,
        max: 200_000.0,
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
    /// Share of the rated speed, 0-1.
    speed: f64,
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
            speed: 1.0,
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
        if self.speed == 1.0 {
            return self.base_bearing_temp + ambient + 25.0 * (load - 1.0);
        }
        let s = self.speed;
        BEARING_AMBIENT
            + (self.base_bearing_temp - BEARING_AMBIENT) * s * s
            + ambient
            + 25.0 * (load - 1.0) * s
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

        let s = self.speed;
        let vibration = (self.base_vibration * (1.0 + 0.5 * (load - 1.0))
            + self.vibration_wander.step(rng, dt_s)
            + self.base_vibration * FAULT_VIBRATION_FACTOR * severity)
            * s
            + 0.06 * (1.0 + 2.0 * severity) * gauss(rng);

        let current = self.base_current * (load + FAULT_CURRENT_FRACTION * severity) * s * s
            + 0.08 * gauss(rng);

        let target = self.bearing_temp_target(ts_ms, load);
        self.bearing_temp = relax(self.bearing_temp, target, dt_s, 300.0);
        let bearing_temp =
            self.bearing_temp + FAULT_BEARING_TEMP * severity * s * s + 0.08 * gauss(rng);
        // The meter measures the motor current the model drew (sensor faults come later).
        let power = (current * W_PER_AMPERE).max(0.0);

        vec![vibration.max(0.05), current, bearing_temp, power]
    }

    fn properties(&self) -> &'static [Property] {
        PROPERTIES
    }

    fn aliases(&self) -> &'static [(&'static str, &'static str, f64)] {
        ALIASES
    }

    fn set(&mut self, property: &Property, setting: Setting) {
        if property.name == "speed" {
            self.speed = setting.number() / 100.0;
        }
    }

    fn state(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("speed".into(), crate::control::number(self.speed * 100.0));
        m
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
