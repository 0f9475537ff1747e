//! The per-series detector: several cheap online detectors on one series, fused and turned into
//! an anomaly likelihood, with suppression of repeated detections.
//!
//! Per point, in O(1) time and constant memory:
//! 1. Two predictors of the value: a robust exponentially weighted level, and that level plus a
//!    learnt daily profile (96 bins of the day, linearly interpolated). The one with the smaller
//!    recent absolute error is used for the expected value and normal range.
//! 2. Detector statistics, each a "surprise" in robust-sigma units: `spike`/`dip` (the point's
//!    deviation from the prediction), `level-shift` (a fast average of the residuals against
//!    the slow level), `variance` (fast against slow absolute residual), `stuck` (a run of
//!    identical values much longer than any run seen before) and `season` (deviation from the
//!    same phase of the learnt day).
//! 3. The strongest surprise is the raw score. As in Numenta's anomaly likelihood, a short
//!    average of the raw score is compared with the long-run distribution of that average
//!    (exponentially weighted mean and variance); the Gaussian tail probability of the excess is
//!    the likelihood, mapped to a score in [0, 1] by `-log10(p) / 10`.
//! 4. After a detection, repeated detections of the same episode are damped: a score that does
//!    not exceed the (slowly decaying) recent peak is scaled down.

use serde::{Deserialize, Serialize};

/// Bins of the learnt daily profile.
const DAY_BINS: usize = 96;
const DAY_MS: i64 = 86_400_000;
/// Number of statistics with a learnt distribution (point, shift, variance, density, sustained).
const STATS: usize = 5;

/// Tuning shared by every series. One set of parameters for all series: no per-series tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// Points seen before any score can become non-zero.
    pub warmup: u32,
    /// Half-width of the normal range shown to people, in robust sigmas.
    pub threshold: f64,
    /// Smoothing factor of the slow level (0..1); smaller adapts more slowly.
    pub alpha: f64,
    /// Smoothing factor of the robust scale (mean absolute residual).
    pub scale_alpha: f64,
    /// Smoothing factor of the fast level used for level shifts and variance changes.
    pub fast_alpha: f64,
    /// Residuals are winsorised at this many robust sigmas before being learnt.
    pub clip: f64,
    /// Smoothing factor of each daily-profile bin (per visit).
    pub season_alpha: f64,
    /// The seasonal predictor is used when its error is below this fraction of the level's.
    pub season_gain: f64,
    /// A stuck run counts as anomalous once it exceeds this multiple of the longest run seen.
    pub stuck_ratio: f64,
    /// Surprise (sigmas) given to a stuck run just past `stuck_ratio`.
    pub stuck_surprise: f64,
    /// Robust sigmas beyond which a point counts as a spike for the spike-density detector.
    pub spike_z: f64,
    /// Smoothing factor of the short average of point surprises (the "sustained" detector).
    pub short_alpha: f64,
    /// Smoothing factor of the recent spike rate.
    pub density_alpha: f64,
    /// Smoothing factor of the long-run distribution of each statistic.
    pub long_alpha: f64,
    /// Floor of the long-run standard deviation of ln(1 + statistic).
    pub min_std: f64,
    /// Values of ln(1 + statistic) are winsorised at this many sigmas before being learnt.
    pub tail_clip: f64,
    /// Surprise (decades of tail probability) that maps to score 0.5 (score = s / (s + this)).
    pub score_half: f64,
    /// The exponential tail of each statistic starts this many sigmas above its mean.
    pub tail_sigma: f64,
    /// Smoothing factor of the mean excess over the tail threshold (per exceedance).
    pub excess_alpha: f64,
    /// Floor of the exceedance rate.
    pub min_rate: f64,
    /// Per-point decay of the suppression peak (score units per point).
    pub suppress_decay: f64,
    /// A score must exceed the recent peak by this much to escape suppression.
    pub suppress_margin: f64,
    /// Factor applied to scores that do not exceed the recent peak.
    pub suppress_factor: f64,
    /// Score at or above which the live engine raises an alert.
    pub alert_score: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            warmup: 300,
            threshold: 5.0,
            alpha: 0.01,
            scale_alpha: 0.01,
            fast_alpha: 0.1,
            clip: 5.0,
            season_alpha: 0.1,
            season_gain: 0.8,
            stuck_ratio: 3.0,
            stuck_surprise: 4.0,
            spike_z: 4.0,
            density_alpha: 0.02,
            short_alpha: 0.05,
            long_alpha: 0.001,
            min_std: 0.05,
            tail_clip: 4.0,
            score_half: 2.0,
            tail_sigma: 1.5,
            excess_alpha: 0.05,
            min_rate: 1e-4,
            suppress_decay: 0.002,
            suppress_factor: 0.3,
            suppress_margin: 0.05,
            alert_score: 0.5,
        }
    }
}

/// The verdict on one point, with what is needed to explain it to a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// Whether the live engine raises an alert for this point at its default sensitivity.
    pub alert: bool,
    /// The value the detector expected.
    pub expected: f64,
    /// Lower bound of the range considered normal.
    pub lower: f64,
    /// Upper bound of the range considered normal.
    pub upper: f64,
    /// The observed value.
    pub observed: f64,
    /// Name of the detector(s) that produced the verdict.
    pub detector: String,
}

/// Which detector statistic dominated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Spike,
    Dip,
    LevelUp,
    LevelDown,
    Variance,
    Stuck,
    Season,
    Density,
    Sustained,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Dip => "dip",
            Kind::LevelUp => "level-shift-up",
            Kind::LevelDown => "level-shift-down",
            Kind::Variance => "variance-change",
            Kind::Stuck => "stuck-sensor",
            Kind::Season => "broken-daily-pattern",
            Kind::Density => "spike-density",
            Kind::Sustained => "sustained-deviation",
        }
    }
}

/// Online, causal detector state for one series: constant memory, no look-ahead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesDetector {
    config: DetectorConfig,
    seen: u64,
    last_ts: i64,
    last_value: f64,
    /// Slow robust level and mean absolute residual around it.
    level: f64,
    level_mad: f64,
    /// Fast average of residuals against the slow level, and fast mean absolute residual.
    fast_res: f64,
    fast_mad: f64,
    /// Mean absolute residual of the seasonal predictor.
    season_mad: f64,
    /// Daily profile: offset from the level per bin, and whether the bin has been visited.
    day: Vec<f64>,
    day_seen: Vec<u16>,
    /// Current run of identical values and the longest run seen (slowly forgotten).
    run: u32,
    run_max: f64,
    /// Long-run mean and variance of ln(1 + statistic), per statistic.
    tails: [Tail; STATS],
    /// Fast and slow rate of points beyond `spike_z`.
    density: f64,
    density_long: f64,
    /// Short average of ln(1 + point surprise).
    sustained: f64,
    /// Suppression: the recent peak of emitted scores.
    peak: f64,
}

impl SeriesDetector {
    /// A fresh detector with no history.
    pub fn new(config: &DetectorConfig) -> Self {
        Self {
            config: config.clone(),
            seen: 0,
            last_ts: 0,
            last_value: 0.0,
            level: 0.0,
            level_mad: 0.0,
            fast_res: 0.0,
            fast_mad: 0.0,
            season_mad: 0.0,
            day: vec![0.0; DAY_BINS],
            day_seen: vec![0; DAY_BINS],
            run: 0,
            run_max: 0.0,
            tails: [Tail::default(); STATS],
            density: 0.0,
            density_long: 0.0,
            sustained: 0.0,
            peak: 0.0,
        }
    }

    /// Internal state summary for debugging and tuning (not a stable format).
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        let t: Vec<String> = self
            .tails
            .iter()
            .map(|t| {
                format!(
                    "[m{:.2} sd{:.2} r{:.3} e{:.2}]",
                    t.mean,
                    t.var.sqrt(),
                    t.rate,
                    t.excess
                )
            })
            .collect();
        format!(
            "lvl {:.3} mad {:.3} smad {:.3} fres {:.3} {}",
            self.level,
            self.level_mad,
            self.season_mad,
            self.fast_res,
            t.join("")
        )
    }

    /// The configuration this detector runs with.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Points seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Memory held by this detector: its own size plus its heap allocations, in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.day.capacity() * std::mem::size_of::<f64>()
            + self.day_seen.capacity() * std::mem::size_of::<u16>()
    }

    fn day_pos(ts_ms: i64) -> (usize, usize, f64) {
        let ms = ts_ms.rem_euclid(DAY_MS) as f64;
        let x = ms / DAY_MS as f64 * DAY_BINS as f64 - 0.5;
        let x = if x < 0.0 { x + DAY_BINS as f64 } else { x };
        let i = x.floor() as usize % DAY_BINS;
        (i, (i + 1) % DAY_BINS, x - x.floor())
    }

    /// The seasonal offset at `ts_ms`, when the daily profile has been learnt around it.
    fn season_offset(&self, ts_ms: i64) -> Option<f64> {
        let (i, j, w) = Self::day_pos(ts_ms);
        match (self.day_seen[i] >= 2, self.day_seen[j] >= 2) {
            (true, true) => Some(self.day[i] * (1.0 - w) + self.day[j] * w),
            (true, false) => Some(self.day[i]),
            (false, true) => Some(self.day[j]),
            (false, false) => None,
        }
    }

    fn scale_floor(&self) -> f64 {
        1e-6 * self.level.abs().max(1e-3)
    }

    /// Scores `value` observed at `ts_ms` (milliseconds since the Unix epoch), then learns from it.
    pub fn update(&mut self, ts_ms: i64, value: f64) -> Score {
        let c = self.config.clone();
        self.seen += 1;
        if self.seen == 1 || !value.is_finite() {
            if self.seen == 1 {
                self.level = value;
                self.last_value = value;
                self.last_ts = ts_ms;
            }
            return Score {
                score: 0.0,
                alert: false,
                expected: value,
                lower: value,
                upper: value,
                observed: value,
                detector: "warm-up".into(),
            };
        }
        let warm = self.seen > u64::from(c.warmup);
        // Early on, learn as a running average so the estimates settle quickly.
        let rate = |a: f64| a.max(1.0 / self.seen as f64);
        let floor = self.scale_floor();

        // --- predictors ---------------------------------------------------------------------
        let level_scale = (1.25 * self.level_mad).max(floor);
        let res_level = value - self.level;
        let season = self.season_offset(ts_ms);
        let use_season = season.is_some()
            && self.season_mad < c.season_gain * self.level_mad
            && self.seen > 2 * u64::from(c.warmup);
        let (expected, scale) = match season {
            Some(off) if use_season => (self.level + off, (1.25 * self.season_mad).max(floor)),
            _ => (self.level, level_scale),
        };
        let res = value - expected;

        // --- detector statistics, each compared with its own history -------------------------
        let warm_tail = self.seen > u64::from(c.warmup);
        let mut best = (0.0f64, Kind::Spike);
        let z_point = res.abs() / scale;
        let fast_res = self.fast_res + c.fast_alpha * (res - self.fast_res);
        let fast_sd = scale * (c.fast_alpha / (2.0 - c.fast_alpha)).sqrt();
        let z_shift = fast_res.abs() / fast_sd.max(floor);
        let fast_mad =
            self.fast_mad + c.fast_alpha * ((res.abs()).min(c.clip * scale) - self.fast_mad);
        let base_mad = if use_season {
            self.season_mad
        } else {
            self.level_mad
        };
        let ratio = fast_mad.max(floor) / base_mad.max(floor);
        let z_var = ratio.max(1.0 / ratio).ln();
        let hit = if z_point > c.spike_z { 1.0 } else { 0.0 };
        let density = self.density + c.density_alpha * (hit - self.density);
        let dens_sd =
            (self.density_long.max(1e-3) * c.density_alpha / (2.0 - c.density_alpha)).sqrt();
        let z_density = ((density - self.density_long) / dens_sd).max(0.0);
        let sustained = self.sustained + c.short_alpha * ((1.0 + z_point).ln() - self.sustained);
        let stats = [z_point, z_shift, z_var, z_density, sustained.exp_m1()];
        let kinds = [
            if res >= 0.0 { Kind::Spike } else { Kind::Dip },
            match (use_season, fast_res >= 0.0) {
                (true, _) => Kind::Season,
                (false, true) => Kind::LevelUp,
                (false, false) => Kind::LevelDown,
            },
            Kind::Variance,
            Kind::Density,
            Kind::Sustained,
        ];
        for ((tail, z), kind) in self.tails.iter().zip(stats).zip(kinds) {
            let sur = tail.surprise((1.0 + z).ln(), &c);
            if warm_tail && sur > best.0 {
                best = (sur, kind);
            }
        }
        let same = (value - self.last_value).abs() <= 1e-12 * value.abs().max(1.0);
        let run = if same { self.run + 1 } else { 0 };
        if run > 0 && self.run_max > 0.0 {
            let lim = c.stuck_ratio * (self.run_max + 1.0);
            let r = f64::from(run) / lim;
            if r > 1.0 {
                let sur = c.stuck_surprise * (1.0 + r.ln());
                if sur > best.0 {
                    best = (sur, Kind::Stuck);
                }
            }
        }
        let (surprise, kind) = best;
        let mut score = if warm && surprise > 0.0 {
            surprise / (surprise + c.score_half)
        } else {
            0.0
        };
        // --- suppression of repeated detections ------------------------------------------------
        let peak = self.peak * (1.0 - c.suppress_decay);
        let undamped = score;
        if score <= peak + c.suppress_margin {
            score *= c.suppress_factor;
        }
        self.peak = peak.max(undamped);
        let alert = warm && score >= c.alert_score;

        // --- learn ---------------------------------------------------------------------------
        let a = rate(c.alpha);
        let clipped = res_level.clamp(-c.clip * level_scale, c.clip * level_scale);
        self.level += a * clipped;
        self.level_mad += rate(c.scale_alpha) * (clipped.abs() - self.level_mad);
        let season_res = season.map(|off| value - self.level - off);
        if let Some(r) = season_res {
            let s = (1.25 * self.season_mad).max(floor);
            let r = r.clamp(-c.clip * s, c.clip * s);
            self.season_mad += rate(c.scale_alpha) * (r.abs() - self.season_mad);
        } else {
            self.season_mad = self.level_mad;
        }
        let (i, j, w) = Self::day_pos(ts_ms);
        let offset = value - self.level;
        for (b, wt) in [(i, 1.0 - w), (j, w)] {
            if wt <= 0.0 {
                continue;
            }
            let seen = self.day_seen[b];
            let ab = if seen == 0 {
                1.0
            } else {
                (c.season_alpha * wt).max(wt / f64::from(seen + 1))
            };
            let s = (1.25 * self.season_mad).max(floor);
            let target = if seen == 0 {
                offset
            } else {
                self.day[b] + (offset - self.day[b]).clamp(-c.clip * s, c.clip * s)
            };
            self.day[b] += ab * (target - self.day[b]);
            if wt >= 0.5 || seen == 0 {
                self.day_seen[b] = seen.saturating_add(1);
            }
        }
        self.fast_res = fast_res;
        self.fast_mad = fast_mad;
        if !same && self.run > 0 {
            self.run_max = self.run_max.max(f64::from(self.run));
        }
        self.run = run;
        self.run_max *= 1.0 - 1e-4;
        let la = rate(c.long_alpha);
        for (tail, z) in self.tails.iter_mut().zip(stats) {
            tail.learn((1.0 + z).ln(), la, warm_tail, &c);
        }
        self.density = density;
        self.sustained = sustained;
        self.density_long += rate(c.long_alpha) * (hit - self.density_long);
        self.last_value = value;
        self.last_ts = ts_ms;

        Score {
            score,
            alert,
            expected,
            lower: expected - c.threshold * scale,
            upper: expected + c.threshold * scale,
            observed: value,
            detector: if warm {
                kind.name().to_string()
            } else {
                "warm-up".into()
            },
        }
    }
}

/// The learnt distribution of one statistic u = ln(1 + z): a bulk (mean, variance) and, beyond
/// `mean + tail_sigma * sd`, an exponential tail (peaks over threshold, as in SPOT) with its own
/// exceedance rate and mean excess. `surprise` is -log10 of the tail probability of u.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Tail {
    mean: f64,
    var: f64,
    rate: f64,
    excess: f64,
    exceedances: f64,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            mean: 0.0,
            var: 0.0,
            rate: 0.05,
            excess: 0.3,
            exceedances: 0.0,
        }
    }
}

impl Tail {
    fn threshold(&self, c: &DetectorConfig) -> f64 {
        self.mean + c.tail_sigma * self.var.sqrt().max(c.min_std)
    }

    fn surprise(&self, u: f64, c: &DetectorConfig) -> f64 {
        let t = self.threshold(c);
        let rate = self.rate.max(c.min_rate);
        let at_t = -rate.log10();
        if u >= t {
            let excess = self.excess.max(c.min_std);
            at_t + (u - t) / (excess * std::f64::consts::LN_10)
        } else {
            let x = ((u - self.mean) / (t - self.mean)).max(0.0);
            at_t * x * x
        }
    }

    fn learn(&mut self, u: f64, la: f64, warm: bool, c: &DetectorConfig) {
        let sd = self.var.sqrt().max(c.min_std);
        let t = self.threshold(c);
        let over = u > t;
        self.rate += la * (f64::from(u8::from(over)) - self.rate);
        if over && warm {
            self.exceedances = (self.exceedances + 1.0).min(1e6);
            let a = c.excess_alpha.max(1.0 / (self.exceedances + 4.0));
            self.excess += a * ((u - t) - self.excess);
        }
        let u = u.min(self.mean + c.tail_clip * sd);
        let d = u - self.mean;
        self.mean += la * d;
        self.var = (1.0 - la) * (self.var + la * d * d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: impl IntoIterator<Item = f64>) -> Vec<Score> {
        let mut d = SeriesDetector::new(&DetectorConfig::default());
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| d.update(i as i64 * 1000, v))
            .collect()
    }

    #[test]
    fn noisy_stationary_series_stays_quiet() {
        let vals = (0..2000).map(|i| 10.0 + ((i * 7919) % 13) as f64 * 0.05);
        assert_eq!(run(vals).iter().filter(|s| s.alert).count(), 0);
    }

    #[test]
    fn spike_is_alerted_with_explanation() {
        let mut vals: Vec<f64> = (0..300).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        vals.push(30.0);
        let scores = run(vals);
        let last = scores.last().unwrap();
        assert!(last.alert, "{last:?}");
        assert!(last.expected > 9.5 && last.expected < 10.6, "{last:?}");
        assert!(last.upper < 30.0);
        assert_eq!(last.observed, 30.0);
    }
}
