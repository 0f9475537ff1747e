//! The per-series detector: several cheap online detectors on one series, each judged against
//! its own learnt history, fused, and post-processed so that one episode gives one detection.
//!
//! Per point, in O(1) time and constant memory (no look-ahead, no labels):
//! 1. Prediction. A robust exponentially weighted level (winsorised updates) and, once two days
//!    have been seen, that level plus a learnt daily profile (96 bins, linearly interpolated).
//!    The seasonal predictor is used when its mean absolute error is clearly below the level's.
//!    It gives `expected` and the normal range `expected ± threshold · 1.25 · MAE`.
//! 2. Statistics, in robust-sigma units: `spike`/`dip` (the point's residual), `level-shift`
//!    (fast average of the residuals; `broken-daily-pattern` when the seasonal predictor is in
//!    use), `variance-change` (fast against slow absolute residual, both directions),
//!    `spike-density` (recent rate of > 4 sigma points against the long-run rate),
//!    `sustained-deviation` (short average of the point residuals) and `drift` (the level
//!    against a 10x slower baseline).
//! 3. Each statistic z is compared with its own history, in the spirit of Numenta's anomaly
//!    likelihood but with an explicit tail: on the scale u = z^0.25 the bulk is an
//!    exponentially weighted mean and variance, and beyond mean + 1.5 sd the tail is
//!    exponential (peaks over threshold, as in SPOT), with a learnt exceedance rate and mean
//!    excess. The surprise is -log10 of the tail probability, so it is calibrated per series:
//!    a spike on a spiky series surprises less than the same spike on a smooth one.
//! 4. Rule-based detectors, with fixed surprises: `new-maximum`/`new-minimum` (the value leaves
//!    the range of everything seen so far by more than 1 % of that range — the "spatial
//!    anomaly" of NAB's HTM detector), the same for a smoothed value (`level-shift-*`), and
//!    `stuck-sensor` (a run of identical values 3x longer than any seen on a moving series).
//! 5. Fusion: the largest surprise s wins; score = s / (s + 2) in [0, 1].
//! 6. Suppression: a score that does not beat the slowly decaying recent peak by 0.05 is
//!    multiplied by 0.3, so an episode yields one high score (NAB rewards only the first
//!    detection in a window and charges every later one outside it).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Bins of the learnt daily profile.
const DAY_BINS: usize = 96;
const DAY_MS: i64 = 86_400_000;
/// Width of one bin of the daily profile, ms.
const BIN_MS: f64 = DAY_MS as f64 / DAY_BINS as f64;
/// Number of statistics with a learnt distribution (point, shift, variance, density, sustained,
/// drift).
const STATS: usize = 6;

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
    /// Smoothing factor of the slow baseline of the drift detector.
    pub slow_alpha: f64,
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
    /// Surprise (decades) given to a stuck run just past `stuck_ratio`.
    pub stuck_surprise: f64,
    /// Robust sigmas beyond which a point counts as a spike for the spike-density detector.
    pub spike_z: f64,
    /// Smoothing factor of the short average of point surprises (the "sustained" detector).
    pub short_alpha: f64,
    /// Floor of the long-run spike rate used to scale the spike-density statistic.
    pub density_floor: f64,
    /// Smoothing factor of the recent spike rate.
    pub density_alpha: f64,
    /// Smoothing factor of the long-run distribution of each statistic.
    pub long_alpha: f64,
    /// Floor of the long-run standard deviation of a (transformed) statistic.
    pub min_std: f64,
    /// Transformed statistics are winsorised at this many sigmas before the bulk learns them.
    pub tail_clip: f64,
    /// Surprise (decades of tail probability) that maps to score 0.5 (score = s / (s + this)).
    pub score_half: f64,
    /// The exponential tail of each statistic starts this many sigmas above its mean.
    pub tail_sigma: f64,
    /// Smoothing factor of the mean excess over the tail threshold (per exceedance).
    pub excess_alpha: f64,
    /// Excesses are clipped at this multiple of the mean excess before being learnt.
    pub excess_clip: f64,
    /// Floor of the exceedance rate.
    pub min_rate: f64,
    /// Per-point relative decay of the suppression peak.
    pub suppress_decay: f64,
    /// A score must exceed the recent peak by this much to escape suppression.
    pub suppress_margin: f64,
    /// Factor applied to scores that do not exceed the recent peak.
    pub suppress_factor: f64,
    /// Tolerance, as a fraction of the range seen so far, beyond which a value is a new extreme.
    pub range_tol: f64,
    /// Surprise (decades) of a value just beyond the tolerated range.
    pub range_surprise: f64,
    /// Smoothing factor of the smoothed series whose range is also watched.
    pub smooth_alpha: f64,
    /// Surprise (decades) of a smoothed value just beyond its tolerated range (0: off).
    pub smooth_surprise: f64,
    /// Per-point contraction of the seen range towards the level (forgets old extremes).
    pub range_decay: f64,
    /// Detectors below this surprise (decades) are not named in the explanation.
    pub explain_min: f64,
    /// Statistics are learnt on the scale z^power (0: ln(1 + z)).
    pub power: f64,
    /// Score at or above which the live engine raises an alert.
    pub alert_score: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            warmup: 150,
            threshold: 5.0,
            alpha: 0.01,
            slow_alpha: 0.001,
            scale_alpha: 0.01,
            fast_alpha: 0.1,
            clip: 5.0,
            season_alpha: 0.3,
            season_gain: 0.8,
            stuck_ratio: 3.0,
            stuck_surprise: 4.0,
            spike_z: 4.0,
            density_alpha: 0.02,
            density_floor: 0.01,
            short_alpha: 0.05,
            long_alpha: 0.001,
            min_std: 0.05,
            tail_clip: 4.0,
            score_half: 2.0,
            tail_sigma: 1.5,
            excess_alpha: 0.05,
            excess_clip: 5.0,
            min_rate: 1e-4,
            suppress_decay: 0.002,
            suppress_factor: 0.3,
            suppress_margin: 0.05,
            power: 0.25,
            explain_min: 2.0,
            range_tol: 0.01,
            range_surprise: 4.0,
            smooth_alpha: 0.1,
            smooth_surprise: 4.0,
            range_decay: 1e-5,
            alert_score: 0.72,
        }
    }
}

impl DetectorConfig {
    /// The scale on which each statistic's distribution is learnt: `z^power` (with `power`
    /// 0 meaning ln(1 + z)).
    fn transform(&self, z: f64) -> f64 {
        if self.power <= 0.0 {
            z.ln_1p()
        } else if self.power == 0.25 {
            z.max(0.0).sqrt().sqrt()
        } else {
            z.max(0.0).powf(self.power)
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
    /// The detector(s) that produced the verdict (printed as their names, e.g.
    /// `baseline-deviation+level-shift-up`). `Copy`: scoring a point allocates nothing.
    pub detector: Detectors,
}

/// Which detector statistic dominated a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DetectorKind {
    /// A single point far above what was expected.
    Spike,
    /// A single point far below what was expected.
    Dip,
    /// The smoothed level rose.
    LevelUp,
    /// The smoothed level fell.
    LevelDown,
    /// The noise around the level changed.
    Variance,
    /// The same value repeated for far longer than usual.
    Stuck,
    /// The value departs from the learnt daily pattern.
    Season,
    /// Spikes come more often than usual.
    Density,
    /// A moderate deviation that lasts.
    Sustained,
    /// Beyond the largest value seen.
    NewMax,
    /// Beyond the smallest value seen.
    NewMin,
    /// A slow rise of the baseline.
    DriftUp,
    /// A slow fall of the baseline.
    DriftDown,
}

/// Most statistics named in one verdict: the strongest and those nearly as surprised.
const MAX_NAMED: usize = 3;

/// What the fused detector made of a point, before the baseline guard is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Base {
    /// Not a finite number: nothing learnt, nothing alerted.
    InvalidValue,
    /// The detector is still learning.
    WarmUp,
    /// No statistic is surprised enough to name.
    Quiet,
    /// The statistics that were surprised, strongest first.
    Fired([Option<DetectorKind>; MAX_NAMED]),
}

/// The detectors behind a [`Score`]: the fused detector's statistics (or its state: warm-up,
/// none, invalid value) and whether the baseline guard fired. `Copy`; [`fmt::Display`] gives the
/// names shown to people and stored in explanations (`spike`, `warm-up`, `none`,
/// `invalid-value`, `baseline-deviation+level-shift-up`), and serde uses the same string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Detectors {
    baseline: bool,
    base: Base,
}

/// Name of the baseline guard in a verdict.
const BASELINE: &str = "baseline-deviation";

impl Detectors {
    const fn of(base: Base) -> Self {
        Self {
            baseline: false,
            base,
        }
    }

    /// The statistics named (strongest first).
    pub fn kinds(&self) -> impl Iterator<Item = DetectorKind> + '_ {
        let named: &[Option<DetectorKind>] = match &self.base {
            Base::Fired(k) => k,
            _ => &[],
        };
        named.iter().flatten().copied()
    }

    /// Whether the baseline guard fired.
    pub fn baseline(&self) -> bool {
        self.baseline
    }

    /// Whether the fused detector is still learning.
    pub fn warming_up(&self) -> bool {
        self.base == Base::WarmUp
    }

    /// The same verdict with the baseline guard fired too.
    fn with_baseline(self) -> Self {
        Self {
            baseline: true,
            ..self
        }
    }

    /// Reads the names written by [`fmt::Display`].
    pub fn parse(s: &str) -> Option<Self> {
        let (baseline, rest) = match s.strip_prefix(BASELINE) {
            Some(rest) => (true, rest.strip_prefix('+').unwrap_or(rest)),
            None => (false, s),
        };
        let base = match rest {
            "invalid-value" => Base::InvalidValue,
            "warm-up" => Base::WarmUp,
            "none" => Base::Quiet,
            _ => {
                let mut named = [None; MAX_NAMED];
                for (n, name) in rest.split('+').filter(|n| !n.is_empty()).enumerate() {
                    *named.get_mut(n)? = Some(DetectorKind::parse(name)?);
                }
                Base::Fired(named)
            }
        };
        Some(Self { baseline, base })
    }
}

impl fmt::Display for Detectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut name = |f: &mut fmt::Formatter<'_>, n: &str| {
            if !first {
                f.write_str("+")?;
            }
            first = false;
            f.write_str(n)
        };
        if self.baseline {
            name(f, BASELINE)?;
        }
        match self.base {
            Base::InvalidValue => name(f, "invalid-value"),
            Base::WarmUp => name(f, "warm-up"),
            // The guard's own verdict replaces "none".
            Base::Quiet if self.baseline => Ok(()),
            Base::Quiet => name(f, "none"),
            Base::Fired(named) => named.iter().flatten().try_for_each(|k| name(f, k.name())),
        }
    }
}

impl Serialize for Detectors {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Detectors {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Detectors::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown detector names {s:?}")))
    }
}

impl DetectorKind {
    /// The name shown to people.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Spike => "spike",
            DetectorKind::Dip => "dip",
            DetectorKind::LevelUp => "level-shift-up",
            DetectorKind::LevelDown => "level-shift-down",
            DetectorKind::Variance => "variance-change",
            DetectorKind::Stuck => "stuck-sensor",
            DetectorKind::Season => "broken-daily-pattern",
            DetectorKind::Density => "spike-density",
            DetectorKind::Sustained => "sustained-deviation",
            DetectorKind::NewMax => "new-maximum",
            DetectorKind::DriftUp => "drift-up",
            DetectorKind::DriftDown => "drift-down",
            DetectorKind::NewMin => "new-minimum",
        }
    }

    const ALL: [DetectorKind; 13] = [
        DetectorKind::Spike,
        DetectorKind::Dip,
        DetectorKind::LevelUp,
        DetectorKind::LevelDown,
        DetectorKind::Variance,
        DetectorKind::Stuck,
        DetectorKind::Season,
        DetectorKind::Density,
        DetectorKind::Sustained,
        DetectorKind::NewMax,
        DetectorKind::NewMin,
        DetectorKind::DriftUp,
        DetectorKind::DriftDown,
    ];

    /// Reads a name written by [`DetectorKind::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Online, causal detector state for one series: constant memory, no look-ahead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesDetector {
    /// Shared by the detectors built from one config (a node's 50,000 series hold one copy,
    /// not 50,000); saved inline in each state as before.
    #[serde(with = "shared_config")]
    config: Arc<DetectorConfig>,
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
    /// Time of the first point, and the typical sampling interval (ms).
    first_ts: i64,
    dt_ms: f64,
    /// A much slower level, the baseline of the drift detector.
    slow_level: f64,
    slow_mad: f64,
    /// Ranges seen of the raw value and of a smoothed value (slowly contracting towards the
    /// level).
    ranges: [Range; 2],
    /// Short average of ln(1 + point surprise).
    sustained: f64,
    /// Suppression: the recent peak of emitted scores.
    peak: f64,
    /// Second opinion for the live alert decision (see `guard.rs`); absent in older saved states.
    #[serde(default)]
    guard: crate::guard::Guard,
    /// Alerts on this series marked as false alarms by users.
    #[serde(default)]
    false_alarms: u32,
}

/// How a series' sensitivity changed when an alert was marked as a false alarm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SensitivityChange {
    /// False alarms marked on the series so far.
    pub false_alarms: u32,
    /// Fused score needed for an alert, before and after.
    pub score_threshold_before: f64,
    /// Fused score needed for an alert, before and after.
    pub score_threshold_after: f64,
    /// Baseline band half-width in spreads, before and after.
    pub band_before: f64,
    /// Baseline band half-width in spreads, before and after.
    pub band_after: f64,
}

impl SeriesDetector {
    /// A fresh detector with no history.
    pub fn new(config: &DetectorConfig) -> Self {
        Self::shared(Arc::new(config.clone()))
    }

    /// A fresh detector with no history that shares `config` with the other detectors built
    /// from it (one copy of the tuning for many series).
    pub fn shared(config: Arc<DetectorConfig>) -> Self {
        Self {
            config,
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
            slow_level: 0.0,
            slow_mad: 0.0,
            ranges: [Range::default(); 2],
            first_ts: 0,
            dt_ms: 0.0,
            peak: 0.0,
            guard: crate::guard::Guard::default(),
            false_alarms: 0,
        }
    }

    /// The fused score an alert needs: the configured `alert_score`, moved towards 1 (the tail
    /// probability halved) by each false alarm marked on the series.
    pub fn score_threshold(&self) -> f64 {
        1.0 - (1.0 - self.config.alert_score) * 0.5f64.powi(self.false_alarms as i32)
    }

    /// A user marked an alert of this series as a false alarm: both the fused threshold and the
    /// baseline band become less sensitive, and the change is reported.
    pub fn mark_false_alarm(&mut self) -> SensitivityChange {
        let score_threshold_before = self.score_threshold();
        let band_before = self.guard.k();
        self.false_alarms = self.false_alarms.saturating_add(1);
        self.guard.mark_false_alarm();
        SensitivityChange {
            false_alarms: self.false_alarms,
            score_threshold_before,
            score_threshold_after: self.score_threshold(),
            band_before,
            band_after: self.guard.k(),
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

    /// Shares `config` instead of this detector's own copy when the two are equal (a state
    /// restored from its saved row holds a copy of its own); a different config is kept, so
    /// the detector runs exactly as before.
    pub fn share_config(&mut self, config: &Arc<DetectorConfig>) {
        if !Arc::ptr_eq(&self.config, config) && *self.config == **config {
            self.config = Arc::clone(config);
        }
    }

    /// Points seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Memory held by this detector: its own size plus its heap allocations, in bytes (the
    /// config, shared with other detectors, not counted).
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
        if ts_ms - self.first_ts < 2 * DAY_MS {
            return None;
        }
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
        let mut score = self.score_point(ts_ms, value);
        if !value.is_finite() {
            return score;
        }
        if self.false_alarms > 0 && score.score < self.score_threshold() {
            score.alert = false;
        }
        // The live alert also fires when the baseline guard does; the NAB score is unchanged.
        let seen_resolution = self.guard.resolution();
        let g = self.guard.update(value);
        // A series that started flat has learnt no spread, so 0 lux then 1 lux is "10^7 sigma".
        // A reading within two steps of the sensor's resolution (its decimals, or the smallest
        // change seen before it) of what was expected, from a band narrower than that, cannot
        // be told from rounding: the fused alert needs the guard's agreement then. The score,
        // and so NAB, is unchanged.
        let step = decimal_quantum(value).max(seen_resolution);
        if score.alert
            && !g.alert
            && score.upper - score.lower < 2.0 * step
            && (value - score.expected).abs() <= 2.0 * step
        {
            score.alert = false;
        }
        // A young series (its spread not known yet, see `guard.rs`) alerts only on a jump or a
        // freeze, which the guard judges from its noise alone. The score is unchanged.
        if g.young && !g.alert {
            score.alert = false;
        }
        if g.alert && !score.alert {
            score.alert = true;
            score.expected = g.expected;
            score.lower = g.lower;
            score.upper = g.upper;
            score.detector = score.detector.with_baseline();
        }
        score
    }

    fn score_point(&mut self, ts_ms: i64, value: f64) -> Score {
        let c = Arc::clone(&self.config);
        if !value.is_finite() {
            // Not a measurement: nothing is learnt, nothing is alerted.
            let expected = if self.seen == 0 { value } else { self.level };
            return Score {
                score: 0.0,
                alert: false,
                expected,
                lower: expected,
                upper: expected,
                observed: value,
                detector: Detectors::of(Base::InvalidValue),
            };
        }
        self.seen += 1;
        if self.seen == 1 {
            self.level = value;
            self.slow_level = value;
            self.ranges = [Range::new(value); 2];
            self.first_ts = ts_ms;
            self.last_value = value;
            self.last_ts = ts_ms;
            return Score {
                score: 0.0,
                alert: false,
                expected: value,
                lower: value,
                upper: value,
                observed: value,
                detector: Detectors::of(Base::WarmUp),
            };
        }
        let warm = self.seen > u64::from(c.warmup);
        let gap = (ts_ms - self.last_ts).max(0) as f64;
        self.dt_ms = if self.seen == 2 {
            gap
        } else {
            self.dt_ms + 0.05 * (gap.min(4.0 * self.dt_ms) - self.dt_ms)
        };
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
        // Every detector's surprise (decades of tail probability), for the verdict and its
        // explanation.
        let mut fired = Fired::default();
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
        let dens_sd = (self.density_long.max(c.density_floor) * c.density_alpha
            / (2.0 - c.density_alpha))
            .sqrt();
        let z_density = ((density - self.density_long - c.density_alpha) / dens_sd).max(0.0);
        let sustained = self.sustained + c.short_alpha * ((1.0 + z_point).ln() - self.sustained);
        let z_drift = (self.level - self.slow_level).abs()
            / (1.25 * self.slow_mad * (c.alpha / (2.0 - c.alpha)).sqrt()).max(floor);
        let stats = [
            z_point,
            z_shift,
            z_var,
            z_density,
            sustained.exp_m1(),
            z_drift,
        ];
        let stats = stats.map(|z| c.transform(z));
        let kinds = [
            if res >= 0.0 {
                DetectorKind::Spike
            } else {
                DetectorKind::Dip
            },
            match (use_season, fast_res >= 0.0) {
                (true, _) => DetectorKind::Season,
                (false, true) => DetectorKind::LevelUp,
                (false, false) => DetectorKind::LevelDown,
            },
            DetectorKind::Variance,
            DetectorKind::Density,
            DetectorKind::Sustained,
            if self.level >= self.slow_level {
                DetectorKind::DriftUp
            } else {
                DetectorKind::DriftDown
            },
        ];
        for ((tail, z), kind) in self.tails.iter().zip(stats).zip(kinds) {
            let sur = tail.surprise(z, &c);
            if warm_tail {
                fired.push((sur, kind));
            }
        }
        let same = (value - self.last_value).abs() <= 1e-12 * value.abs().max(1.0);
        let run = if same { self.run + 1 } else { 0 };
        // Only a series that has been moving can get stuck (a constant series is just constant).
        if warm && run > 0 && self.seen > u64::from(run) + u64::from(c.warmup) {
            let lim = c.stuck_ratio * (self.run_max + 1.0);
            let r = f64::from(run) / lim;
            if r > 1.0 {
                let sur = c.stuck_surprise * (1.0 + r.ln());
                fired.push((sur, DetectorKind::Stuck));
            }
        }
        // A value beyond everything seen so far (plus a tolerance of the seen range) is a new
        // extreme, as in NAB's HTM detector's "spatial anomaly".
        let alphas = [1.0, c.smooth_alpha];
        let range_surprises = [c.range_surprise, c.smooth_surprise];
        let mut smoothed = [value; 2];
        for (k, r) in self.ranges.iter().enumerate() {
            smoothed[k] = r.value + alphas[k] * (value - r.value);
            if !warm || range_surprises[k] <= 0.0 {
                continue;
            }
            if let Some((beyond, up)) = r.beyond(smoothed[k], c.range_tol) {
                let kind = match (k, up) {
                    (0, true) => DetectorKind::NewMax,
                    (0, false) => DetectorKind::NewMin,
                    (_, true) => DetectorKind::LevelUp,
                    (_, false) => DetectorKind::LevelDown,
                };
                fired.push((range_surprises[k] + beyond.ln_1p(), kind));
            }
        }
        let fired = fired.sorted();
        let surprise = fired.first().map_or(0.0, |f| f.0);
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
        self.slow_level += rate(c.slow_alpha) * (self.level - self.slow_level);
        self.slow_mad += rate(c.slow_alpha) * (clipped.abs() - self.slow_mad);
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
            // Per point, scaled so that one day's visit of a bin moves it by about
            // `season_alpha`, whatever the sampling interval.
            let per_visit = (self.dt_ms / BIN_MS).min(1.0);
            let ab = if seen == 0 {
                1.0
            } else {
                (c.season_alpha * per_visit * wt).max(wt / f64::from(seen + 1))
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
            tail.learn(z, la, warm_tail, &c);
        }
        self.density = density;
        self.sustained = sustained;
        self.density_long += rate(c.long_alpha) * (hit - self.density_long);
        self.last_value = value;
        self.last_ts = ts_ms;
        for (r, x) in self.ranges.iter_mut().zip(smoothed) {
            r.learn(x, c.range_decay, self.level);
        }

        Score {
            score,
            alert,
            expected,
            lower: expected - c.threshold * scale,
            upper: expected + c.threshold * scale,
            observed: value,
            detector: Detectors::of(if !warm {
                Base::WarmUp
            } else if surprise < c.explain_min {
                Base::Quiet
            } else {
                // The strongest detector, plus those nearly as surprised.
                let mut named = [None; MAX_NAMED];
                let strong = fired
                    .iter()
                    .take_while(|f| f.0 >= c.explain_min.max(0.5 * surprise));
                for (slot, f) in named.iter_mut().zip(strong) {
                    *slot = Some(f.1);
                }
                Base::Fired(named)
            }),
        }
    }
}

/// Serde for the shared config: written and read as the config itself (the saved state's form
/// is unchanged); a restored detector holds its own copy until [`SeriesDetector::share_config`].
mod shared_config {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::DetectorConfig;

    pub(super) fn serialize<S: Serializer>(
        c: &Arc<DetectorConfig>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        DetectorConfig::serialize(c, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<DetectorConfig>, D::Error> {
        DetectorConfig::deserialize(d).map(Arc::new)
    }
}

/// The range of values seen (of the raw or a smoothed series), slowly contracting towards the
/// level so that old excursions are eventually forgotten.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Range {
    value: f64,
    min: f64,
    max: f64,
}

impl Range {
    fn new(x: f64) -> Self {
        Self {
            value: x,
            min: x,
            max: x,
        }
    }

    /// How far `x` lies beyond the range widened by `tol` of its span (in spans), and whether
    /// above it.
    fn beyond(&self, x: f64, tol: f64) -> Option<(f64, bool)> {
        let span = self.max - self.min;
        if span <= 0.0 {
            return None;
        }
        let up = x - self.max - tol * span;
        let down = self.min - tol * span - x;
        (up.max(down) > 0.0).then(|| (up.max(down) / span, up > 0.0))
    }

    fn learn(&mut self, x: f64, decay: f64, level: f64) {
        self.value = x;
        self.max = self.max.max(x);
        self.min = self.min.min(x);
        self.max -= decay * (self.max - level);
        self.min -= decay * (self.min - level);
    }
}

/// The surprises of one point, without allocating.
struct Fired {
    items: [(f64, DetectorKind); STATS + 4],
    len: usize,
}

impl Default for Fired {
    fn default() -> Self {
        Self {
            items: [(0.0, DetectorKind::Spike); STATS + 4],
            len: 0,
        }
    }
}

impl Fired {
    fn push(&mut self, item: (f64, DetectorKind)) {
        if self.len < self.items.len() {
            self.items[self.len] = item;
            self.len += 1;
        }
    }

    /// The surprises, strongest first.
    fn sorted(&mut self) -> &[(f64, DetectorKind)] {
        let items = &mut self.items[..self.len];
        items.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        items
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
            self.excess += a * ((u - t).min(c.excess_clip * self.excess) - self.excess);
        }
        let u = u.min(self.mean + c.tail_clip * sd);
        let d = u - self.mean;
        self.mean += la * d;
        self.var = (1.0 - la) * (self.var + la * d * d);
    }
}

/// The resolution a reading's decimals show: 1 for `3.0`, 0.01 for `21.37`; 0 beyond six
/// decimals (no visible quantum).
fn decimal_quantum(value: f64) -> f64 {
    let mut q = 1.0;
    for _ in 0..=6 {
        let scaled = value / q;
        if (scaled - scaled.round()).abs() <= 1e-9 * scaled.abs().max(1.0) {
            return q;
        }
        q /= 10.0;
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_noise::Noise;

    /// Runs a 1 Hz series through a fresh detector.
    fn run(values: &[f64]) -> Vec<Score> {
        run_with(values, &DetectorConfig::default())
    }

    fn run_with(values: &[f64], config: &DetectorConfig) -> Vec<Score> {
        let mut d = SeriesDetector::new(config);
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| d.update(1_700_000_000_000 + i as i64 * 1000, v))
            .collect()
    }

    /// Healthy sensor: a level, a slow daily-like wave, Gaussian noise.
    fn healthy(n: usize, seed: u64, level: f64, noise: f64) -> Vec<f64> {
        let mut rng = Noise(seed);
        (0..n)
            .map(|i| level + noise * 2.0 * (i as f64 / 3000.0).sin() + noise * rng.normal())
            .collect()
    }

    enum Fault {
        None,
        Spike(usize, f64),
        Shift(usize, f64),
        Drift(usize, f64),
        Stuck(usize),
        Noisier(usize, f64),
    }

    /// `check(input, expected)`: the first alert at or after the fault start, within `within`
    /// points (or no alert at all for `Fault::None`).
    fn check(name: &str, fault: Fault, within: usize) {
        let n = 6000;
        let mut v = healthy(n, 0x9E37_79B9_7F4A_7C15 ^ name.len() as u64, 20.0, 0.5);
        let start = match fault {
            Fault::None => n,
            Fault::Spike(at, size) => {
                v[at] += size;
                at
            }
            Fault::Shift(at, size) => {
                v[at..].iter_mut().for_each(|x| *x += size);
                at
            }
            Fault::Drift(at, per_point) => {
                for (k, x) in v[at..].iter_mut().enumerate() {
                    *x += per_point * k as f64;
                }
                at
            }
            Fault::Stuck(at) => {
                let stuck = v[at];
                v[at..].iter_mut().for_each(|x| *x = stuck);
                at
            }
            Fault::Noisier(at, factor) => {
                let mut rng = Noise(7);
                v[at..]
                    .iter_mut()
                    .for_each(|x| *x += 0.5 * (factor - 1.0) * rng.normal());
                at
            }
        };
        let scores = run(&v);
        let before: Vec<usize> = (0..start.min(n)).filter(|&i| scores[i].alert).collect();
        assert!(before.is_empty(), "{name}: false alerts at {before:?}");
        if start < n {
            let first = (start..n).find(|&i| scores[i].alert);
            let Some(first) = first else {
                panic!("{name}: no alert after {start}");
            };
            assert!(
                first - start <= within,
                "{name}: first alert {} points after the fault (limit {within})",
                first - start
            );
            let s = &scores[first];
            assert!(
                s.lower <= s.expected && s.expected <= s.upper,
                "{name}: {s:?}"
            );
            assert!(!s.detector.warming_up(), "{name}: {s:?}");
        }
    }

    #[test]
    fn faults_are_alerted_and_healthy_data_is_quiet() {
        check("healthy", Fault::None, 0);
        check("spike up", Fault::Spike(4000, 6.0), 0);
        check("spike down", Fault::Spike(4000, -6.0), 0);
        check("level shift", Fault::Shift(4000, 2.0), 30);
        check("drift", Fault::Drift(4000, 0.25), 300);
        check("stuck sensor", Fault::Stuck(4000), 600);
        check("variance change", Fault::Noisier(4000, 4.0), 60);
    }

    #[test]
    fn many_healthy_series_stay_quiet() {
        for seed in 1..=20u64 {
            let v = healthy(20_000, seed * 7919, 100.0 * seed as f64, seed as f64 * 0.3);
            let alerts: Vec<(usize, Score)> = run(&v)
                .into_iter()
                .enumerate()
                .filter(|(_, s)| s.alert)
                .collect();
            assert!(alerts.is_empty(), "seed {seed}: {alerts:?}");
        }
    }

    /// The live pipeline may shorten the warm-up (it uses 40 points): still quiet, still alert.
    #[test]
    fn short_warmup_stays_quiet_and_alerts_on_spikes() {
        let config = DetectorConfig {
            warmup: 40,
            ..DetectorConfig::default()
        };
        for seed in 1..=10u64 {
            let mut v = healthy(20_000, seed * 104_729, 50.0, 0.4);
            let quiet = run_with(&v, &config).iter().filter(|s| s.alert).count();
            assert_eq!(quiet, 0, "seed {seed}");
            v[15_000] += 8.0;
            let scores = run_with(&v, &config);
            assert!(scores[15_000].alert, "seed {seed}: {:?}", scores[15_000]);
        }
    }

    /// The demo's night-time light: five readings of 0 lux, then integer noise clamped at 0
    /// (mostly 0, now and then 1-4). The detector learnt no spread from the flat start; a step
    /// of one lux is rounding, not an anomaly. Lights switched on (300 lux) alert at once once
    /// the series has shown its spread.
    #[test]
    fn a_flat_start_then_integer_noise_stays_quiet_and_a_real_jump_alerts() {
        let config = DetectorConfig {
            warmup: 40,
            ..DetectorConfig::default()
        };
        for seed in 1..=10u64 {
            let noise = healthy(600, seed * 7_919, 0.0, 1.2);
            let mut v: Vec<f64> = noise.iter().map(|x| x.round().clamp(0.0, 4.0)).collect();
            v[..5].fill(0.0);
            let alerts: Vec<usize> = run_with(&v, &config)
                .iter()
                .enumerate()
                .filter(|(_, s)| s.alert)
                .map(|(i, _)| i)
                .collect();
            assert!(alerts.is_empty(), "seed {seed}: alerts at {alerts:?}");
        }
        // A series that never varied has shown no spread: lights switched on for the first
        // time after 100 dark readings are not judged. Once it has shown its noise they are.
        let mut v = vec![0.0; 100];
        v.push(300.0);
        let last = run_with(&v, &config).pop().unwrap();
        assert!(!last.alert, "{last:?}");
        // A wearer's night of 0 steps, then a first few steps and a walk: one step has not
        // shown the series' spread either.
        let mut v = vec![0.0; 1_400];
        v.extend([17.0, 12.0, 30.0, 52.0, 74.0, 91.0, 102.0, 109.0]);
        let alerts: Vec<usize> = run_with(&v, &config)
            .iter()
            .enumerate()
            .filter(|(_, s)| s.alert)
            .map(|(i, _)| i)
            .collect();
        assert!(alerts.is_empty(), "alerts at {alerts:?}");
        let mut v: Vec<f64> = healthy(600, 7_919, 0.0, 1.2)
            .iter()
            .map(|x| x.round().clamp(0.0, 4.0))
            .collect();
        v.push(300.0);
        let last = run_with(&v, &config).pop().unwrap();
        assert!(last.alert, "{last:?}");
    }

    #[test]
    fn decimal_quanta() {
        for (v, q) in [
            (3.0, 1.0),
            (300.0, 1.0),
            (21.37, 0.01),
            (0.5, 0.1),
            (-2.25, 0.01),
        ] {
            assert!(
                (decimal_quantum(v) - q).abs() < 1e-12,
                "{v}: {}",
                decimal_quantum(v)
            );
        }
        assert_eq!(decimal_quantum(std::f64::consts::PI), 0.0);
    }

    #[test]
    fn quantised_and_flat_series_stay_quiet() {
        let flat = vec![45.0; 5000];
        assert!(run(&flat).iter().all(|s| !s.alert));
        let steps: Vec<f64> = (0..5000)
            .map(|i| 10.0 + ((i * 7919) % 13) as f64 * 0.05)
            .collect();
        assert!(run(&steps).iter().all(|s| !s.alert));
    }

    #[test]
    fn spike_is_alerted_with_explanation() {
        let mut vals: Vec<f64> = (0..600).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        vals.push(30.0);
        let scores = run(&vals);
        let last = scores.last().unwrap();
        assert!(last.alert, "{last:?}");
        assert!(last.expected > 9.5 && last.expected < 10.6, "{last:?}");
        assert!(last.upper < 30.0);
        assert_eq!(last.observed, 30.0);
        assert!(
            last.detector.kinds().any(|k| k == DetectorKind::Spike),
            "{last:?}"
        );
    }

    /// Realistic 1 Hz sensors over two days: a daily cycle, a slow random walk, noise, and
    /// (for CO2-like series) occupancy bumps. None of it is a fault.
    #[test]
    fn diurnal_1hz_sensors_stay_quiet() {
        for (seed, amp, noise, walk) in [
            (11u64, 3.0, 0.05, 0.001),
            (12, 3.0, 0.2, 0.003),
            (13, 150.0, 8.0, 0.05),
            (14, 0.5, 0.02, 0.0),
        ] {
            let mut rng = Noise(seed);
            let mut drift = 0.0;
            let v: Vec<f64> = (0..2 * 86_400)
                .map(|i| {
                    drift += walk * rng.normal();
                    let phase = std::f64::consts::TAU * i as f64 / 86_400.0;
                    20.0 + amp * phase.sin() + drift + noise * rng.normal()
                })
                .collect();
            let alerts: Vec<(usize, Score)> = run(&v)
                .into_iter()
                .enumerate()
                .filter(|(_, s)| s.alert)
                .collect();
            assert!(
                alerts.is_empty(),
                "seed {seed}: {} alerts, first {:?}",
                alerts.len(),
                alerts.first()
            );
        }
    }

    #[test]
    fn detector_names_print_as_before() {
        let fired = |k: &[DetectorKind]| {
            let mut named = [None; MAX_NAMED];
            for (slot, k) in named.iter_mut().zip(k) {
                *slot = Some(*k);
            }
            Detectors::of(Base::Fired(named))
        };
        for (d, printed) in [
            (Detectors::of(Base::InvalidValue), "invalid-value"),
            (Detectors::of(Base::WarmUp), "warm-up"),
            (Detectors::of(Base::Quiet), "none"),
            (
                Detectors::of(Base::Quiet).with_baseline(),
                "baseline-deviation",
            ),
            (
                Detectors::of(Base::WarmUp).with_baseline(),
                "baseline-deviation+warm-up",
            ),
            (fired(&[DetectorKind::Spike]), "spike"),
            (
                fired(&[
                    DetectorKind::LevelUp,
                    DetectorKind::NewMax,
                    DetectorKind::Stuck,
                ])
                .with_baseline(),
                "baseline-deviation+level-shift-up+new-maximum+stuck-sensor",
            ),
        ] {
            assert_eq!(d.to_string(), printed);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("{printed:?}"));
            let back = Detectors::parse(printed).unwrap();
            assert_eq!(back.to_string(), printed);
        }
        assert!(Detectors::parse("spike+nonsense").is_none());
    }

    #[test]
    fn invalid_values_are_ignored() {
        let mut d = SeriesDetector::new(&DetectorConfig::default());
        let s = d.update(0, f64::NAN);
        assert_eq!(
            (s.score, s.alert, s.detector.to_string().as_str()),
            (0.0, false, "invalid-value")
        );
        assert_eq!(d.seen(), 0);
        for i in 1..500 {
            let v = if i % 50 == 0 {
                f64::INFINITY
            } else {
                3.0 + (i % 7) as f64 * 0.01
            };
            let s = d.update(i * 1000, v);
            assert!(!s.alert, "{i}: {s:?}");
            assert!(s.expected.is_finite() || i == 0, "{i}: {s:?}");
        }
        assert_eq!(d.seen(), 490);
    }

    #[test]
    fn state_survives_a_restart() {
        let v = healthy(3000, 42, 5.0, 0.2);
        let mut a = SeriesDetector::new(&DetectorConfig::default());
        for (i, &x) in v[..2000].iter().enumerate() {
            a.update(i as i64 * 1000, x);
        }
        let saved = serde_json::to_string(&a).unwrap();
        let mut b: SeriesDetector = serde_json::from_str(&saved).unwrap();
        for (i, &x) in v[2000..].iter().enumerate() {
            let t = (2000 + i) as i64 * 1000;
            assert_eq!(a.update(t, x), b.update(t, x));
        }
        assert!(a.memory_bytes() < 4096, "{}", a.memory_bytes());
        assert!(saved.len() < 8192, "{}", saved.len());
    }

    #[test]
    fn detectors_of_one_config_share_it_and_save_it_whole() {
        let config = Arc::new(DetectorConfig::default());
        let mut a = SeriesDetector::shared(Arc::clone(&config));
        let b = SeriesDetector::shared(Arc::clone(&config));
        assert!(std::ptr::eq(a.config(), b.config()));
        for (i, &x) in healthy(300, 7, 5.0, 0.2).iter().enumerate() {
            a.update(i as i64 * 1000, x);
        }
        // Saved with the config inline, as a detector with its own copy was.
        let saved = serde_json::to_value(&a).unwrap();
        let own = serde_json::to_value(DetectorConfig::default()).unwrap();
        assert_eq!(saved["config"], own);

        // Restored, it holds a copy until it is told to share an equal config...
        let mut restored: SeriesDetector = serde_json::from_value(saved.clone()).unwrap();
        assert!(!std::ptr::eq(restored.config(), a.config()));
        restored.share_config(&config);
        assert!(std::ptr::eq(restored.config(), a.config()));
        // ...and keeps a different one, so it runs as it was saved.
        let mut tuned = saved;
        tuned["config"]["threshold"] = serde_json::json!(7.0);
        let mut kept: SeriesDetector = serde_json::from_value(tuned).unwrap();
        kept.share_config(&config);
        assert!(!std::ptr::eq(kept.config(), a.config()));
        assert_eq!(kept.config().threshold, 7.0);
    }
}
