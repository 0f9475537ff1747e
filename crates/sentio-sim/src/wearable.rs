//! Wearables: a wearer alternates rest, walking and running (mostly resting at night); heart rate
//! follows activity with a physiological lag, and an irregular-rhythm episode makes it erratic.

use rand_chacha::ChaCha8Rng;

use crate::faults::{Effect, FaultKind};
use crate::model::{DeviceModel, MetricSpec, progress_of};
use crate::noise::{Wander, gauss, hour_of_day, relax, uniform};

pub(crate) const METRICS: &[&str] = &["heart_rate", "activity"];

const SPECS: &[MetricSpec] = &[
    MetricSpec {
        name: "heart_rate",
        precision: 1.0,
        min: 30.0,
        max: 220.0,
    },
    MetricSpec {
        name: "activity",
        precision: 1.0,
        min: 0.0,
        max: 250.0,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Rest,
    Walk,
    Run,
}

pub(crate) struct Wearer {
    resting_hr: f64,
    bpm_per_step: f64,
    activity: Activity,
    activity_until_ms: i64,
    target_cadence: f64,
    cadence: f64,
    heart_rate: f64,
    variability: Wander,
}

impl Wearer {
    pub(crate) fn new(rng: &mut ChaCha8Rng, start_ms: i64) -> Self {
        let mut w = Self {
            resting_hr: uniform(rng, 58.0, 72.0),
            bpm_per_step: uniform(rng, 0.30, 0.40),
            activity: Activity::Rest,
            activity_until_ms: start_ms,
            target_cadence: 0.0,
            cadence: 0.0,
            heart_rate: 0.0,
            variability: Wander::new(rng, 2.0, 20.0),
        };
        w.next_activity(rng, start_ms);
        w.cadence = w.target_cadence;
        w.heart_rate = w.heart_rate_target();
        w
    }

    fn next_activity(&mut self, rng: &mut ChaCha8Rng, ts_ms: i64) {
        let h = hour_of_day(ts_ms);
        let night = !(6.0..23.0).contains(&h);
        let r = uniform(rng, 0.0, 1.0);
        let (activity, duration_s, cadence) = if night {
            if r < 0.92 {
                (Activity::Rest, uniform(rng, 300.0, 1200.0), 0.0)
            } else {
                (
                    Activity::Walk,
                    uniform(rng, 60.0, 180.0),
                    uniform(rng, 85.0, 105.0),
                )
            }
        } else if r < 0.5 {
            (
                Activity::Rest,
                uniform(rng, 60.0, 420.0),
                uniform(rng, 0.0, 8.0),
            )
        } else if r < 0.88 {
            (
                Activity::Walk,
                uniform(rng, 60.0, 300.0),
                uniform(rng, 95.0, 118.0),
            )
        } else {
            (
                Activity::Run,
                uniform(rng, 60.0, 240.0),
                uniform(rng, 150.0, 172.0),
            )
        };
        self.activity = activity;
        self.activity_until_ms = ts_ms + (duration_s * 1000.0) as i64;
        self.target_cadence = cadence;
    }

    fn heart_rate_target(&self) -> f64 {
        self.resting_hr + self.bpm_per_step * self.cadence
    }
}

impl DeviceModel for Wearer {
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
        while ts_ms >= self.activity_until_ms {
            let at = self.activity_until_ms;
            self.next_activity(rng, at);
        }
        self.cadence = relax(self.cadence, self.target_cadence, dt_s, 5.0);
        let target = self.heart_rate_target();
        // Heart rate climbs faster than it recovers.
        let tau = if target > self.heart_rate { 20.0 } else { 45.0 };
        self.heart_rate = relax(self.heart_rate, target, dt_s, tau);

        let steady = self.heart_rate + self.variability.step(rng, dt_s) + 1.0 * gauss(rng);
        let heart_rate = match progress_of(effects, FaultKind::IrregularRhythm) {
            // Irregularly irregular: elevated on average, each beat-to-beat interval independent.
            Some(_) => self.heart_rate + 12.0 + uniform(rng, -28.0, 28.0),
            None => steady,
        };
        let activity = if self.activity == Activity::Rest && self.target_cadence < 1.0 {
            0.0
        } else {
            (self.cadence + 3.0 * gauss(rng)).max(0.0)
        };
        vec![heart_rate, activity]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heart_rate_follows_activity() {
        // Run through a daytime hour and compare heart rate while running vs resting.
        let start = 1_704_103_200_000; // 2024-01-01T10:00Z
        let mut rng = crate::noise::stream(3, 9);
        let mut w = Wearer::new(&mut rng, start);
        let (mut rest, mut run) = (Vec::new(), Vec::new());
        for i in 0..7200 {
            let v = w.sample(start + i * 1000, 1.0, &mut rng, &[]);
            if w.activity == Activity::Rest && w.cadence < 5.0 {
                rest.push(v[0]);
            } else if w.activity == Activity::Run && (w.cadence - w.target_cadence).abs() < 5.0 {
                run.push(v[0]);
            }
        }
        assert!(!rest.is_empty() && !run.is_empty());
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&run) > mean(&rest) + 30.0,
            "{} vs {}",
            mean(&run),
            mean(&rest)
        );
    }
}
