//! The baseline guard: a second opinion for the live `alert` decision (not the NAB score).
//!
//! The fused detector's score is calibrated against each statistic's own long history, which is
//! right for a scoring benchmark but slow to trust on a young series: a bearing temperature that
//! climbs 20 °C over three minutes, a few minutes after a sensor was installed, scores low because
//! every statistic is still new, and its normal band widens with the fault. The guard asks the
//! plainer question operators ask: is the value far outside the level and spread this series has
//! shown, and does it stay there? It keeps a slow, winsorised level and spread (outliers move
//! them only a little, so a developing fault is not learnt as normal within minutes), and alerts
//! when `persist` consecutive points lie beyond `k` spreads, or one point beyond `2k`, or one
//! step between two readings lies beyond `2k` noise spreads away from the level (a jump: the
//! band allows for the series' wander, a single step only for its noise), or a continuous
//! series repeats one value far longer than it ever did (stuck).
//! A level shift that persists is learnt after a few hundred points and the alert resolves.
//!
//! A young series alerts only on a jump or a freeze: until it has shown `KNOWN_AFTER`
//! independent readings' worth of its own variation (readings divided by its correlation time,
//! from its variance and its successive differences), how far it wanders is not known, so a
//! reading far outside the band seen so far may be its first walk or its first night. A jump
//! is measured in noise spreads, which a few readings teach.

use serde::{Deserialize, Serialize};

/// Points before the guard may alert (enough for a first estimate of the spread).
pub const WARMUP: u64 = 30;
/// Independent readings' worth of a series' variation after which its spread is known (to
/// about ±13 %, 1/sqrt(2 * 30)); before that only a jump or a freeze alerts.
pub const KNOWN_AFTER: f64 = 30.0;
/// Deviation, in robust spreads, beyond which a point is out of band.
pub const K: f64 = 8.0;
/// Consecutive out-of-band points needed for an alert (one point beyond `2 * K` suffices).
pub const PERSIST: u32 = 3;
/// Learning rate of level and spread once warm (time constant ~200 points).
pub const ALPHA: f64 = 0.005;
/// Updates are winsorised at this many spreads.
pub const CLIP: f64 = 3.0;
/// A run of identical values alerts as a stuck sensor once it is this many times longer than the
/// longest run seen before (and at least `STUCK_MIN` points).
pub const STUCK_RATIO: u32 = 4;
/// Shortest run that can be a stuck sensor.
pub const STUCK_MIN: u32 = 30;
/// Stuck detection applies to series whose readings change at least this often.
pub const MIN_CHANGE_RATE: f64 = 0.5;
/// After this many consecutive out-of-band points the new level is accepted (re-baselined), and
/// the wander widened so that a jump of the same size is tolerated for a while: regime changes
/// (a walk, a machine switching load) alert once, not for as long as the regime lasts.
pub const REBASE_AFTER: u32 = 60;

/// State of the guard for one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Guard {
    seen: u64,
    level: f64,
    /// Noise spread, from successive differences.
    spread: f64,
    /// Spread of deviations from the level, learnt five times slower: how far this series
    /// normally wanders (regime changes, activity), without inflating within a few minutes.
    #[serde(default)]
    wander: f64,
    /// Smallest non-zero change between consecutive values: the sensor's resolution.
    resolution: f64,
    last: f64,
    out_run: u32,
    /// Current run of identical values, and the longest run seen while healthy.
    #[serde(default)]
    same_run: u32,
    #[serde(default)]
    longest_run: u32,
    /// How many times the value has changed: a series that never moved cannot be "stuck".
    #[serde(default)]
    changes: u32,
    /// Share of readings that differ from the previous one (slowly learnt, frozen while stuck).
    #[serde(default)]
    change_rate: f64,
    /// The current run of identical values has been alerted as stuck.
    #[serde(default)]
    stuck_alerted: bool,
    /// Alerts marked as false alarms: each widens the band by `FALSE_ALARM_FACTOR`.
    #[serde(default)]
    false_alarms: u32,
    /// Mean, summed squared deviation (Welford) and mean squared successive difference of every
    /// reading so far: how many independent readings' worth of variation the series has shown.
    /// Older saved states lack them; such a series is taken as known.
    #[serde(default)]
    all_mean: f64,
    #[serde(default)]
    all_m2: f64,
    #[serde(default)]
    all_diff2: f64,
    #[serde(default = "known")]
    known: bool,
}

fn known() -> bool {
    true
}

/// Each false alarm marked on a series widens the guard's band by this factor.
pub const FALSE_ALARM_FACTOR: f64 = 1.5;

/// The guard's verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Whether the point should alert.
    pub alert: bool,
    /// The level the guard expected.
    pub expected: f64,
    /// Lower edge of the band.
    pub lower: f64,
    /// Upper edge of the band.
    pub upper: f64,
    /// The series is still young (its spread not known): only a jump or a freeze alerted.
    pub young: bool,
}

impl Guard {
    /// Judges `value`, then learns from it.
    pub fn update(&mut self, value: f64) -> Verdict {
        self.seen += 1;
        if self.seen == 1 {
            self.level = value;
            self.last = value;
            self.all_mean = value;
            self.known = false;
            return self.verdict(false);
        }
        let step = (value - self.last).abs();
        // Judged on what was known before this reading; then the reading is counted.
        let young = !self.known;
        let n = self.seen as f64;
        let d = value - self.all_mean;
        self.all_mean += d / n;
        self.all_m2 += d * (value - self.all_mean);
        self.all_diff2 += (step * step - self.all_diff2) / (n - 1.0);
        self.known = self.known || self.effective_readings() >= KNOWN_AFTER;
        if step == 0.0 {
            self.same_run += 1;
        } else {
            // A run just ended: it teaches the natural run length unless it was alerted as
            // stuck (a frozen sensor must not make the next freeze look natural), or a user has
            // marked an alert on this series false (its long flat stretches are natural then).
            if !self.stuck_alerted || self.false_alarms > 0 {
                self.longest_run = self.longest_run.max(self.same_run);
            }
            self.stuck_alerted = false;
            self.same_run = 0;
            self.changes = self.changes.saturating_add(1);
        }
        let stuck_after = STUCK_RATIO.saturating_mul(self.longest_run).max(STUCK_MIN);
        // Only sensors whose readings normally change (continuous noise) can be "stuck"; counts
        // and idle states (occupancy, activity at rest, switches) legitimately hold a value.
        let continuous = self.change_rate >= MIN_CHANGE_RATE;
        // A run of exact zeros is an idle state (no activity, no flow), not a frozen reading.
        let stuck = self.seen > WARMUP
            && continuous
            && value != 0.0
            && self.changes >= STUCK_MIN
            && self.same_run >= stuck_after;
        self.stuck_alerted |= stuck;
        // A jump: one step of twice the band in noise spreads, away from the level. The band
        // allows for how far the series wanders (activity, load, the time of day), which it
        // does over several readings; between two readings only noise moves it. A step back
        // towards the level is a return, not a fault. Continuous series only (a count or a
        // switch steps by design), and not out of or into an exact zero (an idle state ending
        // or starting).
        let noise = self.spread.max(self.floor());
        let jump = self.seen > WARMUP
            && continuous
            && value != 0.0
            && self.last != 0.0
            && step > 2.0 * self.k() * noise
            && (value - self.level).abs() > (self.last - self.level).abs();
        if !stuck {
            let changed = if step > 0.0 { 1.0 } else { 0.0 };
            let r = if self.seen > WARMUP {
                ALPHA
            } else {
                1.0 / self.seen as f64
            };
            self.change_rate += r * (changed - self.change_rate);
        }
        if step > 0.0 && (self.resolution == 0.0 || step < self.resolution) {
            self.resolution = step;
        }
        self.last = value;
        let spread = self.band_spread();
        let dev = (value - self.level).abs() / spread;
        let warm = self.seen > WARMUP;
        let k = self.k();
        let out = warm && dev > k;
        self.out_run = if out { self.out_run + 1 } else { 0 };
        let band = self.out_run >= PERSIST || dev > 2.0 * k;
        let alert = warm && ((band && !young) || stuck || jump);
        let mut verdict = self.verdict(alert);
        verdict.young = young;
        if self.out_run >= REBASE_AFTER {
            let jump = (value - self.level).abs();
            self.level = value;
            self.wander = self.wander.max(jump / (0.5 * K * 1.25));
            self.out_run = 0;
            return verdict;
        }
        // Learn: a running average while young, then slowly, from winsorised values.
        let a = if warm { ALPHA } else { 1.0 / self.seen as f64 };
        let limit = CLIP * spread;
        let learn = if warm {
            value.clamp(self.level - limit, self.level + limit)
        } else {
            value
        };
        let delta = learn - self.level;
        self.level += a * delta;
        let slow = if warm { ALPHA / 5.0 } else { a };
        self.wander += slow * (delta.abs() - self.wander);
        // The spread comes from successive differences, which stay at noise level during a
        // drift or after a single jump (deviations from the level would inflate it with the
        // very fault it should expose). For white noise E|x_t - x_(t-1)| = 1.128 sigma.
        let diff = step.min(CLIP * 1.128 * spread);
        self.spread += a * (diff / 1.128 - self.spread);
        verdict
    }

    /// The spread used for the band (~1 sigma of the noise), never below the sensor's resolution
    /// nor a small fraction of the level.
    fn band_spread(&self) -> f64 {
        self.spread.max(1.25 * self.wander).max(self.floor())
    }

    /// The smallest spread the guard believes: the sensor's resolution, a small fraction of
    /// the level.
    fn floor(&self) -> f64 {
        self.resolution
            .max(1e-3 * self.level.abs())
            .max(f64::MIN_POSITIVE)
    }

    /// How many independent readings' worth of variation the series has shown: readings divided
    /// by the correlation time, (1 + rho) / (1 - rho), with the lag-one autocorrelation rho =
    /// 1 - E[diff^2] / (2 var), and never more than the readings that differed from the one
    /// before (a reading equal to the last shows no variation: a series of zeros that stepped
    /// once has shown one). A series that never varied has shown none.
    pub fn effective_readings(&self) -> f64 {
        let n = self.seen as f64;
        if n < 2.0 || self.all_m2 <= 0.0 {
            return 0.0;
        }
        let q = (self.all_diff2 / (2.0 * self.all_m2 / n)).min(1.0);
        (n * q / (2.0 - q)).min(f64::from(self.changes))
    }

    /// The smallest non-zero change seen between consecutive readings (0 until one changed):
    /// the sensor's resolution.
    pub fn resolution(&self) -> f64 {
        self.resolution
    }

    /// The band's half-width in spreads: `K`, widened by false-alarm marks.
    pub fn k(&self) -> f64 {
        K * FALSE_ALARM_FACTOR.powi(self.false_alarms as i32)
    }

    /// Records a false alarm: the band widens.
    pub fn mark_false_alarm(&mut self) {
        self.false_alarms = self.false_alarms.saturating_add(1);
    }

    fn verdict(&self, alert: bool) -> Verdict {
        let band = self.k() * self.band_spread();
        Verdict {
            alert,
            expected: self.level,
            lower: self.level - band,
            upper: self.level + band,
            young: !self.known,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(values: impl IntoIterator<Item = f64>) -> Vec<usize> {
        let mut g = Guard::default();
        values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| g.update(v).alert.then_some(i))
            .collect()
    }

    fn noise(i: usize) -> f64 {
        (((i * 7919) % 101) as f64 / 101.0 - 0.5) * 0.4
    }

    #[test]
    fn quiet_on_noise_and_loud_on_faults() {
        // Healthy noise: nothing.
        assert!(alerts((0..5000).map(|i| 40.0 + noise(i))).is_empty());
        // A developing fault (exponential rise) after 100 healthy points: alerted while it grows.
        let fault = (0..400).map(|i| {
            let rise = if i > 100 {
                ((i - 100) as f64 / 40.0).exp() - 1.0
            } else {
                0.0
            };
            40.0 + noise(i) + rise.min(30.0)
        });
        let a = alerts(fault);
        assert!(!a.is_empty() && a[0] > 100 && a[0] < 220, "{a:?}");
        // One gross spike alerts at once; a single moderate blip does not.
        let mut v: Vec<f64> = (0..200).map(|i| 40.0 + noise(i)).collect();
        v[150] = 40.0 + 1.2; // ~10 spreads: out of band, but alone
        v[180] = 40.0 + 10.0;
        assert_eq!(alerts(v), vec![180]);
    }

    #[test]
    fn a_stuck_sensor_is_alerted() {
        // Quantised noise has short natural runs; then the value freezes.
        let v = (0..600).map(|i| {
            if i < 300 {
                20.0 + (noise(i) * 5.0).round() / 10.0
            } else {
                20.3
            }
        });
        let a = alerts(v);
        assert!(!a.is_empty() && a[0] >= 300 && a[0] < 360, "{a:?}");
        assert!(alerts((0..3000).map(|i| 20.0 + (noise(i) * 5.0).round() / 10.0)).is_empty());
    }

    /// A series that wanders widely with what it measures (a heart rate with activity): a
    /// spike of 45 is well inside its band, but no step between two readings was ever that big.
    fn wandering(i: usize) -> f64 {
        100.0 + 40.0 * (i as f64 / 300.0).sin() + 5.0 * noise(i)
    }

    #[test]
    fn a_spike_on_a_wandering_series_alerts_at_its_onset() {
        assert!(alerts((0..5000).map(wandering)).is_empty());
        let spiked =
            (0..5000).map(|i| wandering(i) + if (3000..3020).contains(&i) { 45.0 } else { 0.0 });
        let a = alerts(spiked);
        assert!(
            a.first() == Some(&3000) && a.iter().all(|i| (3000..=3020).contains(i)),
            "{a:?}"
        );
    }

    #[test]
    fn a_sensor_that_freezes_twice_is_alerted_twice_until_a_user_says_it_is_natural() {
        let frozen = |i: usize| (400..500).contains(&i) || (800..900).contains(&i);
        let v: Vec<f64> = (0..1000)
            .map(|i| 20.0 + (noise(if frozen(i) { 0 } else { i }) * 5.0).round() / 10.0)
            .collect();
        let mut g = Guard::default();
        let a: Vec<usize> = (0..v.len()).filter(|&i| g.update(v[i]).alert).collect();
        assert!(a.iter().any(|i| (400..460).contains(i)), "{a:?}");
        assert!(a.iter().any(|i| (800..860).contains(i)), "{a:?}");
        // Marked false: its flat stretches are natural, the next one teaches the run length.
        g.mark_false_alarm();
        let mut after = Vec::new();
        for i in 0..1000 {
            let x = 20.0 + (noise(if frozen(i) { 0 } else { i + 1000 }) * 5.0).round() / 10.0;
            if g.update(x).alert {
                after.push(i);
            }
        }
        assert!(after.iter().any(|&i| (400..500).contains(&i)), "{after:?}");
        assert!(!after.iter().any(|&i| (800..900).contains(&i)), "{after:?}");
    }

    /// A resting heart rate: a slow wander (correlation time ~40 readings) plus beat noise.
    fn resting(n: usize) -> Vec<f64> {
        let mut seed = 17u64;
        let mut u = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let mut wander = 0.0;
        (0..n)
            .map(|_| {
                wander = 0.95 * wander + 2.0 * u();
                (65.0 + wander + 2.0 * u()).round()
            })
            .collect()
    }

    #[test]
    fn a_young_series_alerts_on_a_jump_but_not_on_its_first_walk() {
        // Two minutes of rest have shown too little of a slowly wandering series to know how
        // far it wanders: the first walk (heart rate climbing 35 bpm over a minute) is new,
        // not a fault.
        let mut walk = resting(120);
        let mut hr = 65.0f64;
        for _ in 0..300 {
            hr += (100.0 - hr) / 20.0;
            walk.push(hr.round());
        }
        let mut g = Guard::default();
        let mut alerts = Vec::new();
        for (i, &v) in walk.iter().enumerate() {
            let verdict = g.update(v);
            if verdict.alert {
                alerts.push(i);
            }
            if i == 119 {
                assert!(verdict.young, "{}", g.effective_readings());
            }
        }
        assert!(alerts.is_empty(), "{alerts:?}");
        // The same rest, then an irregular rhythm's first beat jumps 30 bpm: alerted at once,
        // young or not (a jump is measured in noise spreads, which a few readings teach).
        let mut rhythm = resting(120);
        rhythm.push(95.0);
        let mut g = Guard::default();
        let last = rhythm.iter().map(|&v| g.update(v)).last().unwrap();
        assert!(last.alert && last.young, "{last:?}");
    }

    #[test]
    fn a_persistent_level_shift_is_learnt() {
        let v = (0..3000).map(|i| if i < 200 { 10.0 } else { 14.0 } + noise(i));
        let a = alerts(v);
        assert_eq!(a.first(), Some(&200), "{a:?}");
        assert!(
            *a.last().unwrap() < 200 + REBASE_AFTER as usize + 5,
            "still alerting at {:?}",
            a.last()
        );
    }
}
