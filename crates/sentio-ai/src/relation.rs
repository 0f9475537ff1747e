//! The multivariate view of one device: metrics that normally move together (a pump's motor
//! current and vibration follow its load) are watched as pairs, and an alert is raised when one
//! departs from what the other predicts, even if each stays inside its own usual range.
//!
//! Per pair, exponentially weighted means, variances and covariance (time constant `HORIZON`
//! readings) give a linear prediction of each metric from the other. A pair is armed once
//! `WARMUP` joint readings have shown a strong relation (|correlation| ≥ `MIN_CORR`). The
//! residual of the prediction is scaled by its own learnt spread; `PERSIST` consecutive
//! readings beyond `K` spreads (in both directions of prediction) alert; a reading with either
//! metric outside what the fit was learnt on (beyond `KNOWN_SD` of its learnt spread) is not
//! judged: the relation is not known there, so it is not broken there. While a pair is out of
//! its relation it stops learning, so a slow break is not absorbed; after `REBASE_AFTER`
//! consecutive broken readings the new relation is relearnt from scratch (a regime change
//! alerts once). Constant memory: at most `MAX_METRICS` metrics per device, so at most 28 pairs.

use serde::{Deserialize, Serialize};

/// Joint readings before a pair may alert.
pub const WARMUP: u32 = 200;
/// Time constant of the running statistics, in readings.
pub const HORIZON: f64 = 300.0;
/// Smallest |correlation| for which a pair is watched.
pub const MIN_CORR: f64 = 0.7;
/// Residual, in learnt spreads, beyond which a reading breaks the relation.
pub const K: f64 = 6.0;
/// Consecutive breaking readings needed for an alert.
pub const PERSIST: u32 = 5;
/// Consecutive breaking readings after which the relation is relearnt.
pub const REBASE_AFTER: u32 = 600;
/// Metrics per device that are paired (the first ones seen).
pub const MAX_METRICS: usize = 8;
/// Each false alarm marked on a pair widens its band by this factor.
pub const FALSE_ALARM_FACTOR: f64 = 1.5;
/// A reading with either metric further than this many of its learnt standard deviations from
/// its learnt mean lies outside what the relation was learnt on: the linear fit would be an
/// extrapolation there (a wearer's first run after a long rest), so the reading is "not known",
/// neither kept nor broken; it is learnt, so a new range becomes known as the fit's memory
/// (`HORIZON`) takes it in.
pub const KNOWN_SD: f64 = 4.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pair {
    a: usize,
    b: usize,
    n: u32,
    ma: f64,
    mb: f64,
    va: f64,
    vb: f64,
    cab: f64,
    /// Mean squared standardised residual of b given a, and of a given b.
    rb: f64,
    ra: f64,
    out_run: u32,
    false_alarms: u32,
}

/// A pair's verdict on one joint reading.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationVerdict {
    /// Whether the reading alerts.
    pub alert: bool,
    /// The two metrics, in the order they were first seen.
    pub metrics: (String, String),
    /// Observed values of the two metrics.
    pub observed: (f64, f64),
    /// Each metric's value predicted from the other.
    pub expected: (f64, f64),
    /// Band of the second metric given the first (lower edge).
    pub lower: f64,
    /// Band of the second metric given the first (upper edge).
    pub upper: f64,
    /// Learnt correlation.
    pub correlation: f64,
    /// Size of the break, in learnt spreads (the smaller of the two directions).
    pub z: f64,
}

/// Relations between the metrics of one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceRelations {
    metrics: Vec<String>,
    pairs: Vec<Pair>,
}

impl DeviceRelations {
    /// Takes one reading of the device (metrics sharing a timestamp) and returns the verdict of
    /// every armed pair whose two metrics are in it.
    pub fn observe(&mut self, reading: &[(&str, f64)]) -> Vec<RelationVerdict> {
        let mut values: Vec<Option<f64>> = vec![None; self.metrics.len()];
        for &(metric, value) in reading {
            if !value.is_finite() {
                continue;
            }
            let idx = match self.metrics.iter().position(|m| m == metric) {
                Some(i) => i,
                None if self.metrics.len() < MAX_METRICS => {
                    let i = self.metrics.len();
                    for a in 0..i {
                        self.pairs.push(Pair {
                            a,
                            b: i,
                            ..Pair::default()
                        });
                    }
                    self.metrics.push(metric.to_string());
                    values.push(None);
                    i
                }
                None => continue,
            };
            values[idx] = Some(value);
        }
        let mut out = Vec::new();
        for pair in &mut self.pairs {
            let (Some(x), Some(y)) = (values[pair.a], values[pair.b]) else {
                continue;
            };
            if let Some(v) = pair.observe(x, y) {
                out.push(RelationVerdict {
                    alert: v.alert,
                    metrics: (self.metrics[pair.a].clone(), self.metrics[pair.b].clone()),
                    observed: v.observed,
                    expected: v.expected,
                    lower: v.lower,
                    upper: v.upper,
                    correlation: v.corr,
                    z: v.z,
                });
            }
        }
        out
    }

    /// A relation alert between `a` and `b` was marked as a false alarm: widens the pair's
    /// band. Returns the pair's false-alarm count and its band before and after (in spreads).
    pub fn mark_false_alarm(&mut self, a: &str, b: &str) -> Option<(u32, f64, f64)> {
        let ia = self.metrics.iter().position(|m| m == a)?;
        let ib = self.metrics.iter().position(|m| m == b)?;
        let pair = self
            .pairs
            .iter_mut()
            .find(|p| (p.a == ia && p.b == ib) || (p.a == ib && p.b == ia))?;
        let before = pair.k();
        pair.false_alarms = pair.false_alarms.saturating_add(1);
        Some((pair.false_alarms, before, pair.k()))
    }

    /// Approximate heap size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.pairs.len() * std::mem::size_of::<Pair>()
            + self.metrics.iter().map(|m| m.len() + 24).sum::<usize>()
    }
}

struct PairVerdict {
    alert: bool,
    observed: (f64, f64),
    expected: (f64, f64),
    lower: f64,
    upper: f64,
    corr: f64,
    z: f64,
}

impl Pair {
    fn k(&self) -> f64 {
        K * FALSE_ALARM_FACTOR.powi(self.false_alarms as i32)
    }

    fn observe(&mut self, x: f64, y: f64) -> Option<PairVerdict> {
        let mut verdict = None;
        let mut breaking = false;
        let sa = self.va.sqrt();
        let sb = self.vb.sqrt();
        if self.n >= 2 && sa > 0.0 && sb > 0.0 {
            let corr = (self.cab / (sa * sb)).clamp(-1.0, 1.0);
            // Predictions of each metric from the other.
            let pred_b = self.mb + self.cab / self.va * (x - self.ma);
            let pred_a = self.ma + self.cab / self.vb * (y - self.mb);
            // Residual spreads: learnt, never below the theoretical residual of the fit nor a
            // small fraction of the metric's own spread.
            let floor = (1.0 - corr * corr).max(0.01).sqrt();
            let spread_b = (self.rb.sqrt()).max(0.1 * floor) * sb;
            let spread_a = (self.ra.sqrt()).max(0.1 * floor) * sa;
            let zb = (y - pred_b) / spread_b;
            let za = (x - pred_a) / spread_a;
            let z = zb.abs().min(za.abs());
            let known =
                (x - self.ma).abs() <= KNOWN_SD * sa && (y - self.mb).abs() <= KNOWN_SD * sb;
            let armed = self.n >= WARMUP && corr.abs() >= MIN_CORR;
            if armed && !known {
                // Outside the learnt range: the run of breaking readings is interrupted.
                self.out_run = 0;
            } else if armed {
                breaking = z > self.k();
                self.out_run = if breaking { self.out_run + 1 } else { 0 };
                let band = self.k() * spread_b;
                verdict = Some(PairVerdict {
                    alert: self.out_run >= PERSIST,
                    observed: (x, y),
                    expected: (pred_a, pred_b),
                    lower: pred_b - band,
                    upper: pred_b + band,
                    corr,
                    z,
                });
                if self.out_run >= REBASE_AFTER {
                    *self = Pair {
                        a: self.a,
                        b: self.b,
                        false_alarms: self.false_alarms,
                        ..Pair::default()
                    };
                    return verdict;
                }
            }
            if !breaking {
                let r = (1.0 / f64::from(self.n.max(1))).max(1.0 / HORIZON);
                let nb = (y - pred_b) / sb;
                let na = (x - pred_a) / sa;
                self.rb += r * (nb * nb - self.rb);
                self.ra += r * (na * na - self.ra);
            }
        }
        if !breaking {
            self.n = self.n.saturating_add(1);
            let r = (1.0 / f64::from(self.n)).max(1.0 / HORIZON);
            let dx = x - self.ma;
            let dy = y - self.mb;
            self.ma += r * dx;
            self.mb += r * dy;
            // West's weighted update of the (co)variances.
            self.va = (1.0 - r) * (self.va + r * dx * dx);
            self.vb = (1.0 - r) * (self.vb + r * dy * dy);
            self.cab = (1.0 - r) * (self.cab + r * dx * dy);
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    #[test]
    fn current_rising_without_vibration_breaks_the_relation() {
        let mut d = DeviceRelations::default();
        let mut seed = 7;
        let mut alerts = 0;
        // Load wanders; current and vibration follow it; temperature is unrelated noise.
        let mut load = 1.0;
        for _ in 0..2_000 {
            load = (load + 0.05 * lcg(&mut seed)).clamp(0.6, 1.4);
            let current = 12.0 * load + 0.05 * lcg(&mut seed);
            let vib = 2.0 * load + 0.02 * lcg(&mut seed);
            let temp = 40.0 + lcg(&mut seed);
            for v in d.observe(&[
                ("motor_current", current),
                ("vibration_rms", vib),
                ("bearing_temp", temp),
            ]) {
                alerts += usize::from(v.alert);
            }
        }
        assert_eq!(alerts, 0, "no alert while the relation holds");
        // Current rises by 10 % (within its usual range) while vibration stays put.
        let mut fired = None;
        for i in 0..50 {
            let current = 12.0 * 1.0 * 1.1 + 0.05 * lcg(&mut seed);
            let vib = 2.0 * 0.9 + 0.02 * lcg(&mut seed);
            let temp = 40.0 + lcg(&mut seed);
            if let Some(v) = d
                .observe(&[
                    ("motor_current", current),
                    ("vibration_rms", vib),
                    ("bearing_temp", temp),
                ])
                .into_iter()
                .find(|v| v.alert)
            {
                fired = Some((i, v));
                break;
            }
        }
        let (i, v) = fired.expect("relation alert");
        assert!(i < 10, "alerted after {i} readings");
        let names = [v.metrics.0.as_str(), v.metrics.1.as_str()];
        assert!(names.contains(&"motor_current") && names.contains(&"vibration_rms"));
        assert!(v.correlation > 0.9);
        let before = d
            .mark_false_alarm("vibration_rms", "motor_current")
            .unwrap();
        assert_eq!(before.0, 1);
        assert!(before.2 > before.1);
    }

    /// A wearer: heart rate follows activity with a lag (up in ~20 s, down in ~45 s). After a
    /// long rest the fit's memory holds only rest; the first minute of a walk, with heart rate
    /// still catching up, is outside what the relation was learnt on: not a break.
    #[test]
    fn a_walk_after_a_long_rest_is_not_known_rather_than_broken() {
        let mut d = DeviceRelations::default();
        let mut seed = 11;
        let (mut cadence, mut hr) = (0.0f64, 65.0f64);
        let mut step = |d: &mut DeviceRelations, target: f64| {
            cadence += (target - cadence) / 5.0;
            let hr_target = 65.0 + 0.35 * cadence;
            let tau = if hr_target > hr { 20.0 } else { 45.0 };
            hr += (hr_target - hr) / tau;
            let act = (cadence + 3.0 * lcg(&mut seed)).max(0.0);
            let v = d.observe(&[("activity", act), ("heart_rate", hr + lcg(&mut seed))]);
            v.iter().any(|v| v.alert)
        };
        // Rest and walks alternating, each long enough for heart rate to settle.
        for i in 0..3_000 {
            step(&mut d, if (i / 300) % 2 == 1 { 110.0 } else { 0.0 });
        }
        // A long rest (fidgeting: a few steps a minute now and then), then a walk.
        for i in 0..1_200 {
            step(&mut d, if (i / 60) % 2 == 1 { 8.0 } else { 0.0 });
        }
        let alerts = (0..200).filter(|_| step(&mut d, 110.0)).count();
        assert_eq!(alerts, 0, "the walk after a long rest broke the relation");
        // Within the learnt range a break still alerts: once rest and walks alternate again,
        // a heart rate far below its resting level during a walk breaks the relation.
        for i in 0..3_000 {
            step(&mut d, if (i / 300) % 2 == 0 { 110.0 } else { 0.0 });
        }
        let broken = (0..30).any(|_| {
            let act = 110.0 + 3.0 * lcg(&mut seed);
            let v = d.observe(&[("activity", act), ("heart_rate", 45.0 + lcg(&mut seed))]);
            v.iter().any(|v| v.alert)
        });
        assert!(broken, "a break inside the learnt range must alert");
    }

    #[test]
    fn unrelated_metrics_never_alert() {
        let mut d = DeviceRelations::default();
        let mut seed = 3;
        for i in 0..3_000 {
            let a = lcg(&mut seed);
            let b = if i > 2_000 {
                10.0 * lcg(&mut seed)
            } else {
                lcg(&mut seed)
            };
            assert!(d.observe(&[("a", a), ("b", b)]).iter().all(|v| !v.alert));
        }
    }
}
