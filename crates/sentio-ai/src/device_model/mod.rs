//! The device model: one per device, over all its numeric metrics, learnt online from the
//! device's own history with no configuration. Method (figures in ARCHITECTURE.md and
//! BENCHMARKS.md):
//!
//! - **Rows.** Readings arrive together or in separate payloads; a row is formed once every
//!   metric that reported within `tolerance_ms` has a new reading (or one repeats). A metric
//!   that stops reporting is replaced by its value expected from the others.
//! - **Learning.** The first `fit_rows` rows are buffered and a [`Regime`] is fitted: each metric
//!   centred and scaled by its mean and spread (floored at its resolution and 1e-4 of its level,
//!   so a constant metric cannot blow up), the correlation matrix shrunk towards the identity
//!   (Ledoit-Wolf, at least 5 %) and inverted.
//! - **Statistics.** Per row the Mahalanobis distance z'Pz (a sudden departure) and the same of
//!   the exponentially weighted mean of z (MEWMA, λ = `smoothing`: a small persistent shift).
//!   Their limits are calibrated on the buffer itself, out of fold (4 contiguous folds), as the
//!   `quantile` of a scaled χ² matched to those scores: no distributional constant to tune.
//! - **Alarm.** `open_k` of the last `open_n` rows over a limit open one alarm; `close_m`
//!   consecutive rows under close it. Nothing is absorbed while it is open.
//! - **Regimes.** Up to `max_regimes` regimes; a row is judged by the regime it fits best, so
//!   switching between known regimes raises nothing. A new regime is learnt only when a user
//!   declares the current state normal ([`DeviceModel::adopt_new_normal`]) or an alarm has
//!   stayed open `adopt_after_ms`, and each is announced by a [`DeviceEvent`].
//! - **Explanation.** Each metric's departure from the value the others predict (its
//!   conditional expectation), in its own spreads, and its share of the statistic.

mod alarm;
mod fit;
mod follow;
mod packed;
mod regime;

use serde::{Deserialize, Serialize};

use alarm::{Alarm, Step};
use fit::{Rows, fit_change, fit_regime, repeat_odds, spike_cap};
use packed::Packed;
pub use regime::{Contribution, Regime};

/// The device model's settings: one set for every device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceModelConfig {
    /// Rows of normal operation buffered before a regime is fitted.
    pub fit_rows: usize,
    /// A metric whose latest reading is older than this (ms) is missing from a row.
    pub tolerance_ms: i64,
    /// An alarm open this long (ms) makes the current state a new normal regime.
    pub adopt_after_ms: i64,
    /// Quantile of the out-of-fold statistics at which the limits are set.
    pub quantile: f64,
    /// Weight of the newest row in the smoothed statistic (MEWMA λ).
    pub smoothing: f64,
    /// Rows over the limit, among the last `open_n`, that open an alarm.
    pub open_k: u32,
    /// Window of the opening rule, in rows (≤ 32).
    pub open_n: u32,
    /// Consecutive rows under the limit that close an alarm.
    pub close_m: u32,
    /// Metrics modelled per device (the first seen).
    pub max_metrics: usize,
    /// Normal regimes kept per device (the least recently seen goes).
    pub max_regimes: usize,
    /// Payloads closer than this (ms) to the last judged row update the latest readings without
    /// making a row: a device reporting every second is judged every `row_every_ms`, so its
    /// fit, its smoothing and its alarm's persistence span minutes, not seconds. 0: every row.
    pub row_every_ms: i64,
    /// Time constant (ms of device time) of the slow learning after the fit from rows judged
    /// normal (see `follow.rs`); 0: the fit is kept as it is.
    pub follow_ms: i64,
}

impl DeviceModelConfig {
    /// The quantiles of the three limits, all with the false-alarm rate of the opening rule:
    /// a row over its limit (`quantile`); one row alone as unlikely as `open_k` independent rows
    /// over; the smoothed statistic, whose exceedances come in runs of about (2 − λ)/λ rows so
    /// that the opening rule gives it no protection, with the rule's rate of false openings
    /// (about C(open_n, open_k)·(1 − quantile)^open_k per row) per run.
    pub fn quantiles(&self) -> (f64, f64, f64) {
        let tail = 1.0 - self.quantile;
        let k = self.open_k.max(1);
        let certain = tail.powi(k as i32);
        let choose = (0..k).fold(1.0, |c, i| {
            c * f64::from(self.open_n.max(k) - i) / f64::from(i + 1)
        });
        let run = (2.0 - self.smoothing) / self.smoothing;
        let smooth = (choose * certain * run).min(tail);
        (self.quantile, 1.0 - certain, 1.0 - smooth)
    }
}

impl Default for DeviceModelConfig {
    fn default() -> Self {
        Self {
            fit_rows: 120,
            tolerance_ms: 300_000,
            adopt_after_ms: 72 * 3_600_000,
            quantile: 0.999,
            smoothing: 0.2,
            open_k: 3,
            open_n: 5,
            close_m: 10,
            max_metrics: 100,
            max_regimes: 4,
            row_every_ms: 0,
            follow_ms: 168 * 3_600_000,
        }
    }
}

/// Why a new normal regime is being learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adoption {
    /// A user said the current state is normal.
    User,
    /// The alarm stayed open `adopt_after_ms`.
    Timeout,
}

/// What the model is learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnReason {
    /// Its first regime.
    Start,
    /// A new normal regime.
    NewNormal(Adoption),
    /// Its metrics changed (one appeared after the fit): the model is refitted over all.
    NewMetrics,
}

/// Something the device model says beside a row's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// An alarm opened: the device left every learnt regime.
    Opened,
    /// The alarm closed: the device is back in a learnt regime.
    Resolved,
    /// The current state is being learnt as a new normal regime (the alarm, if any, closed).
    NewNormal(Adoption),
    /// A regime was fitted; `regimes` are now known.
    Learnt { reason: LearnReason, regimes: usize },
    /// A new normal regime was not seen long enough to be learnt within `adopt_after_ms` (the
    /// device went back to its known regimes): learning stops and rows over the limit alarm
    /// again.
    Dropped,
}

/// The model's answer to one row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceVerdict {
    /// The row's time.
    pub ts_ms: i64,
    /// The row's statistic over its limit, in the best-fitting regime (> 1: over); 0 while
    /// the first regime is learnt.
    pub score: f64,
    /// Whether the row is over the limit.
    pub over: bool,
    /// Whether an alarm is open after this row.
    pub alert: bool,
    /// Whether the first regime is still being learnt.
    pub learning: bool,
    /// What changed with this row.
    pub events: Vec<DeviceEvent>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Reading {
    value: f64,
    ts_ms: i64,
    /// Updated since the last row.
    fresh: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Learning {
    reason: LearnReason,
    width: usize,
    rows: Packed,
    /// Time of the first row judged while learning.
    #[serde(default)]
    since_ms: Option<i64>,
    /// Time of the first row learnt.
    #[serde(default)]
    first_ms: Option<i64>,
}

impl Learning {
    fn new(reason: LearnReason, width: usize) -> Self {
        Self {
            reason,
            width,
            rows: Packed::default(),
            since_ms: None,
            first_ms: None,
        }
    }

    fn len(&self) -> usize {
        self.rows.0.len() / self.width.max(1)
    }

    fn push(&mut self, ts_ms: i64, row: &[f64]) {
        self.first_ms.get_or_insert(ts_ms);
        if row.len() > self.width {
            // A metric appeared: earlier rows lack it.
            let old = std::mem::take(&mut self.rows.0);
            for r in old.chunks(self.width.max(1)) {
                self.rows.0.extend_from_slice(r);
                self.rows
                    .0
                    .resize(self.rows.0.len() + row.len() - self.width, f64::NAN);
            }
            self.width = row.len();
        }
        self.rows.0.extend_from_slice(row);
        self.rows
            .0
            .resize(self.rows.0.len() + self.width - row.len(), f64::NAN);
    }

    fn fit(&self, cfg: &DeviceModelConfig, now_ms: i64) -> Option<Regime> {
        let rows = Rows {
            data: &self.rows.0,
            width: self.width,
        };
        let n = rows.len();
        // Metrics seen in at least half of the rows.
        let dims: Vec<usize> = (0..self.width)
            .filter(|&s| (0..n).filter(|&t| rows.row(t)[s].is_finite()).count() * 2 >= n)
            .collect();
        let (row, certain, smooth) = cfg.quantiles();
        // The rows' span of device time, counting the last row's own interval.
        let span = self.first_ms.map_or(0.0, |first| {
            (now_ms - first) as f64 * n as f64 / n.saturating_sub(1).max(1) as f64
        });
        let mut regime = fit_regime(
            &rows,
            &dims,
            [row, certain, smooth],
            cfg.smoothing,
            (now_ms, span as i64, cfg.follow_ms),
        )?;
        (regime.repeat_odds, regime.held) = repeat_odds(&rows, &dims);
        regime.limit_metric_dispersion.clear();
        regime.change =
            fit_change(&rows, &dims, [row, certain, smooth], cfg.smoothing, now_ms).map(Box::new);
        Some(regime)
    }
}

/// One device's multivariate model (see the module docs). Serialisable: saved with the data,
/// restored at start, no relearning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceModel {
    metrics: Vec<String>,
    latest: Vec<Reading>,
    regimes: Vec<Regime>,
    /// Index of the regime the device is in.
    current: Option<usize>,
    /// Smoothed standardised row in the current regime.
    ewma: Packed,
    /// Each metric's dispersion statistic of the change from the previous row, in the current
    /// regime's order.
    #[serde(default)]
    metric_dispersion: Packed,
    /// By slot: consecutive fresh readings equal to the one before (a frozen reading).
    #[serde(default)]
    repeats: Vec<u32>,
    learning: Option<Learning>,
    alarm: Alarm,
    rows: u64,
    /// Time of the last judged row.
    #[serde(default)]
    last_row_ms: Option<i64>,
    /// The latest row (the change to the next one is judged).
    #[serde(default)]
    last_row: Packed,
    #[serde(skip)]
    last_smooth: bool,
    /// The metric (index in the current regime) whose own statistic, a frozen reading or its
    /// changes' dispersion, judged the latest row: it alone explains it.
    #[serde(skip)]
    last_single: Option<usize>,
    /// The latest row standardised in the regime it fits best.
    #[serde(skip)]
    last_z: Vec<f64>,
    #[serde(skip)]
    scratch: Scratch,
}

/// Buffers a row's judgement reuses instead of allocating its vectors again each row: their
/// contents never outlive the row, so they are no part of the model's state (not saved, equal
/// in any two models).
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// The next row's readings (the buffer of the row before the latest).
    row: Vec<f64>,
    /// A row standardised in one regime.
    z: Vec<f64>,
    /// The row standardised in the regime it fits best so far.
    best: Vec<f64>,
    /// The change from the previous row, raw and standardised.
    diff: Vec<f64>,
    diff_z: Vec<f64>,
}

impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl DeviceModel {
    /// A model that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The metrics modelled, in the order first seen.
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Regimes learnt so far.
    pub fn regimes(&self) -> usize {
        self.regimes.len()
    }

    /// Rows judged or learnt so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether an alarm is open.
    pub fn alert_open(&self) -> bool {
        self.alarm.is_open()
    }

    /// What is being learnt, if anything.
    pub fn learning(&self) -> Option<LearnReason> {
        self.learning.as_ref().map(|l| l.reason)
    }

    /// Feeds readings taken at `ts_ms` (one payload). Answers when they complete a row: every
    /// metric heard within `tolerance_ms` has a new reading (once the metrics have cycled
    /// once), or a metric repeats, which closes the previous row before the new reading.
    pub fn update<'a>(
        &mut self,
        cfg: &DeviceModelConfig,
        ts_ms: i64,
        readings: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Option<DeviceVerdict> {
        let due = self
            .last_row_ms
            .is_none_or(|last| ts_ms - last >= cfg.row_every_ms);
        let mut verdict = None;
        let mut hint = 0;
        for (name, value) in readings {
            let Some(slot) = self.slot(cfg, name, hint).filter(|_| value.is_finite()) else {
                continue;
            };
            hint = slot + 1;
            if self.latest[slot].fresh && verdict.is_none() {
                verdict = self.row_if_due(cfg, ts_ms, due);
            }
            self.latest[slot] = Reading {
                value,
                ts_ms,
                fresh: true,
            };
        }
        let complete = self.rows > 0
            && self.latest.iter().any(|r| r.fresh)
            && self
                .latest
                .iter()
                .all(|r| r.fresh || ts_ms - r.ts_ms > cfg.tolerance_ms);
        if verdict.is_none() && complete {
            verdict = self.row_if_due(cfg, ts_ms, due);
        }
        verdict
    }

    /// Closes the row: judged when due, otherwise only consumed.
    fn row_if_due(
        &mut self,
        cfg: &DeviceModelConfig,
        ts_ms: i64,
        due: bool,
    ) -> Option<DeviceVerdict> {
        if due {
            Some(self.judge_latest(cfg, ts_ms))
        } else {
            for r in &mut self.latest {
                r.fresh = false;
            }
            None
        }
    }

    /// Feeds one whole row (a CSV line) and judges it: metrics absent from it count with their
    /// latest reading within `tolerance_ms`.
    pub fn update_row<'a>(
        &mut self,
        cfg: &DeviceModelConfig,
        ts_ms: i64,
        readings: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> DeviceVerdict {
        self.apply(cfg, ts_ms, readings);
        self.judge_latest(cfg, ts_ms)
    }

    /// Records the readings.
    fn apply<'a>(
        &mut self,
        cfg: &DeviceModelConfig,
        ts_ms: i64,
        readings: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        let mut hint = 0;
        for (name, value) in readings {
            if let Some(slot) = self.slot(cfg, name, hint).filter(|_| value.is_finite()) {
                hint = slot + 1;
                self.latest[slot] = Reading {
                    value,
                    ts_ms,
                    fresh: true,
                };
            }
        }
    }

    /// The metric's slot, made for a new metric (up to `max_metrics`). A metric appearing after
    /// the fit starts a refit over all metrics.
    fn slot(&mut self, cfg: &DeviceModelConfig, name: &str, hint: usize) -> Option<usize> {
        // Readings usually come in the same order every time: try the slot after the last one.
        if self.metrics.get(hint).is_some_and(|m| m == name) {
            return Some(hint);
        }
        if let Some(s) = self.metrics.iter().position(|m| m == name) {
            return Some(s);
        }
        if self.metrics.len() >= cfg.max_metrics {
            return None;
        }
        self.metrics.push(name.to_string());
        self.latest.push(Reading::default());
        if !self.regimes.is_empty() && self.learning.is_none() {
            self.learning = Some(Learning::new(LearnReason::NewMetrics, self.metrics.len()));
        }
        Some(self.metrics.len() - 1)
    }

    fn judge_latest(&mut self, cfg: &DeviceModelConfig, ts_ms: i64) -> DeviceVerdict {
        let tolerance = cfg.tolerance_ms;
        self.repeats.resize(self.latest.len(), 0);
        let before = self
            .last_row
            .0
            .iter()
            .copied()
            .chain(std::iter::repeat(f64::NAN));
        for ((count, r), last) in self.repeats.iter_mut().zip(&self.latest).zip(before) {
            if r.fresh {
                *count = if r.value == last { *count + 1 } else { 0 };
            }
        }
        let mut row = std::mem::take(&mut self.scratch.row);
        row.clear();
        row.extend(self.latest.iter_mut().map(|r| {
            r.fresh = false;
            if r.ts_ms != 0 && (ts_ms - r.ts_ms).abs() <= tolerance {
                r.value
            } else {
                f64::NAN
            }
        }));
        self.judge(cfg, ts_ms, row)
    }

    /// The user (or the timer) says the current state is normal: the alarm closes and the rows
    /// that fit no known regime are learnt as a new one.
    pub fn adopt_new_normal(&mut self, by: Adoption) -> DeviceEvent {
        self.alarm.close();
        self.learning = Some(Learning::new(
            if self.regimes.is_empty() {
                LearnReason::Start
            } else {
                LearnReason::NewNormal(by)
            },
            self.metrics.len(),
        ));
        DeviceEvent::NewNormal(by)
    }

    fn judge(&mut self, cfg: &DeviceModelConfig, ts_ms: i64, row: Vec<f64>) -> DeviceVerdict {
        self.rows += 1;
        self.last_row_ms = Some(ts_ms);
        let mut events = Vec::new();
        if self.regimes.is_empty() {
            let learning = self
                .learning
                .get_or_insert_with(|| Learning::new(LearnReason::Start, row.len()));
            learning.push(ts_ms, &row);
            if learning.len() >= cfg.fit_rows {
                self.finish_learning(cfg, ts_ms, &mut events);
            }
            self.keep_last_row(row);
            return DeviceVerdict {
                ts_ms,
                score: 0.0,
                over: false,
                alert: false,
                learning: self.regimes.is_empty(),
                events,
            };
        }
        let (score, mut over, mut certain) = self.score_row(cfg, ts_ms, &row);
        let over_limit = over;
        if let Some(learning) = &self.learning
            && matches!(learning.reason, LearnReason::NewNormal(_))
            && learning
                .since_ms
                .is_some_and(|since| ts_ms - since >= cfg.adopt_after_ms)
        {
            // A new regime is what the device does for a while, not a licence for ever.
            self.learning = None;
            events.push(DeviceEvent::Dropped);
        }
        if let Some(learning) = &mut self.learning {
            learning.since_ms.get_or_insert(ts_ms);
            let take = match learning.reason {
                LearnReason::NewNormal(_) | LearnReason::Start => {
                    // The user's word: what fits no regime is the new one, and raises nothing.
                    let take = over;
                    over = false;
                    certain = false;
                    take
                }
                LearnReason::NewMetrics => !over && !self.alarm.is_open(),
            };
            if take {
                learning.push(ts_ms, &row);
                if learning.len() >= cfg.fit_rows {
                    self.finish_learning(cfg, ts_ms, &mut events);
                }
            }
        }
        match self
            .alarm
            .step(ts_ms, over, certain, (cfg.open_k, cfg.open_n, cfg.close_m))
        {
            Step::Opened => events.push(DeviceEvent::Opened),
            Step::Closed => events.push(DeviceEvent::Resolved),
            Step::Quiet | Step::Holding => {}
        }
        if let Some(since) = self.alarm.open_since
            && ts_ms - since >= cfg.adopt_after_ms
        {
            events.push(self.adopt_new_normal(Adoption::Timeout));
        }
        // Slow learning from rows judged normal (see `follow.rs`).
        if cfg.follow_ms > 0
            && self.learning.is_none()
            && !self.alarm.is_open()
            && !over_limit
            && let Some(regime) = self.current.and_then(|i| self.regimes.get_mut(i))
        {
            regime.follow(&self.last_z, ts_ms, cfg.follow_ms);
        }
        self.keep_last_row(row);
        DeviceVerdict {
            ts_ms,
            score,
            over,
            alert: self.alarm.is_open(),
            learning: false,
            events,
        }
    }

    /// Keeps `row` as the latest one; the one before lends its buffer to the next row.
    fn keep_last_row(&mut self, row: Vec<f64>) {
        self.scratch.row = std::mem::replace(&mut self.last_row.0, row);
    }

    /// The row's statistic over its limit in the best-fitting regime, whether it is over, and
    /// whether it alone is enough to open an alarm.
    fn score_row(&mut self, cfg: &DeviceModelConfig, ts_ms: i64, row: &[f64]) -> (f64, bool, bool) {
        let mut z = std::mem::take(&mut self.scratch.z);
        let mut best: Option<(usize, f64, f64)> = None;
        let mut best_z = std::mem::take(&mut self.scratch.best);
        for (i, regime) in self.regimes.iter().enumerate() {
            regime.standardise(row, &mut z);
            let d = regime.distance(&z);
            let ratio = d / regime.limit_row;
            if best.is_none_or(|(_, b, _)| ratio < b) {
                best = Some((i, ratio, d / regime.limit_certain));
                std::mem::swap(&mut best_z, &mut z);
            }
        }
        self.scratch.z = z;
        let Some((chosen, row_ratio, certain_ratio)) = best else {
            self.scratch.best = best_z;
            return (0.0, false, false);
        };
        let regime = &mut self.regimes[chosen];
        regime.last_used_ms = ts_ms;
        let stayed = self.current == Some(chosen) && self.ewma.0.len() == regime.p();
        if !stayed {
            // The smoothed statistics restart in the regime the device moved to.
            self.current = Some(chosen);
            self.ewma.0 = vec![0.0; regime.p()];
            self.metric_dispersion.0 = vec![0.0; regime.p()];
        }
        // A row beyond the limit enters the smoothed mean shrunk to the limit (a Huber step):
        // the row statistic already judges it, and one spike must not linger for many rows.
        let d = row_ratio * regime.limit_row;
        let weight = if d > regime.limit_row {
            (regime.limit_row / d).sqrt()
        } else {
            1.0
        };
        let lambda = cfg.smoothing;
        for (e, zk) in self.ewma.0.iter_mut().zip(&best_z) {
            *e = (1.0 - lambda) * *e + lambda * weight * zk;
        }
        let smooth_ratio = regime.distance(&self.ewma.0) / regime.limit_smooth;
        self.last_smooth = smooth_ratio > row_ratio;
        // A reading frozen for longer than it could be by chance.
        let joint = row_ratio.max(smooth_ratio);
        let (stuck_ratio, stuck) = regime.stuck_ratio(&self.repeats, row, 1.0 - cfg.quantile);
        let mut score = joint.max(stuck_ratio);
        self.last_single = (stuck_ratio > joint).then_some(stuck);
        // Each metric's change from the previous row, in the same regime: a variation added
        // to a few metrics of many (the mean unchanged) raises its own dispersion.
        if let Some(change) = regime.change.as_deref().filter(|_| stayed)
            && self.last_row.0.len() == row.len()
            && change.limit_metric_dispersion.len() == change.p()
            && self.metric_dispersion.0.len() == change.p()
        {
            let diff = &mut self.scratch.diff;
            diff.clear();
            diff.extend(row.iter().zip(&self.last_row.0).map(|(a, b)| a - b));
            let dz = &mut self.scratch.diff_z;
            change.standardise(diff, dz);
            let cap = spike_cap(cfg.quantile);
            for (k, ((w, zk), limit)) in self
                .metric_dispersion
                .0
                .iter_mut()
                .zip(dz.iter())
                .zip(&change.limit_metric_dispersion)
                .enumerate()
            {
                *w = (1.0 - lambda) * *w + lambda * (zk * zk).min(cap);
                if *w / limit > score {
                    score = *w / limit;
                    self.last_single = Some(k);
                }
            }
        }
        self.scratch.best = std::mem::replace(&mut self.last_z, best_z);
        (score, score > 1.0, certain_ratio > 1.0)
    }

    fn finish_learning(
        &mut self,
        cfg: &DeviceModelConfig,
        ts_ms: i64,
        events: &mut Vec<DeviceEvent>,
    ) {
        let Some(learning) = self.learning.take() else {
            return;
        };
        let Some(regime) = learning.fit(cfg, ts_ms) else {
            // Degenerate rows (too few, no usable metric): learn again from scratch.
            self.learning = Some(Learning::new(learning.reason, self.metrics.len()));
            return;
        };
        match learning.reason {
            LearnReason::Start | LearnReason::NewMetrics => self.regimes = vec![regime],
            LearnReason::NewNormal(_) => {
                if self.regimes.len() >= cfg.max_regimes.max(1) {
                    let oldest = (0..self.regimes.len())
                        .min_by_key(|&i| self.regimes[i].last_used_ms)
                        .unwrap_or(0);
                    self.regimes.remove(oldest);
                }
                self.regimes.push(regime);
            }
        }
        self.current = None;
        events.push(DeviceEvent::Learnt {
            reason: learning.reason,
            regimes: self.regimes.len(),
        });
    }

    /// Each metric's part in the latest row's departure from its regime, largest first (empty
    /// before the first row after a start, or while nothing is learnt).
    pub fn explain(&self) -> Vec<Contribution> {
        let Some(regime) = self.current.and_then(|i| self.regimes.get(i)) else {
            return Vec::new();
        };
        if self.last_row.0.is_empty() {
            return Vec::new();
        }
        let mut z = Vec::new();
        regime.standardise(&self.last_row.0, &mut z);
        if let Some(single) = self.last_single {
            // One metric's own statistic: it carries all of it, where the others expect it.
            let mut all = regime.contributions(&self.metrics, &self.last_row.0, &z);
            let name = regime.dims.get(single).and_then(|&s| self.metrics.get(s));
            if let Some(i) = all.iter().position(|c| Some(&c.metric) == name) {
                let mut first = all.remove(i);
                first.share = 1.0;
                for c in &mut all {
                    c.share = 0.0;
                }
                all.insert(0, first);
            }
            return all;
        }
        if self.last_smooth && self.ewma.0.len() == regime.p() {
            regime.contributions(&self.metrics, &self.last_row.0, &self.ewma.0)
        } else {
            regime.contributions(&self.metrics, &self.last_row.0, &z)
        }
    }
}

/// A sentence naming the metrics that carry most of a departure: "flow −4.1 σ (62 %), pressure
/// +2.3 σ (31 %)", at most `top` of them and only those with at least 5 % of it.
pub fn describe(contributions: &[Contribution], top: usize) -> String {
    let parts: Vec<String> = contributions
        .iter()
        .filter(|c| c.share >= 0.05)
        .take(top.max(1))
        .map(|c| {
            format!(
                "{} {:+.1} σ ({:.0} %, expected {})",
                c.metric,
                c.sigma,
                100.0 * c.share,
                round_sig(c.expected)
            )
        })
        .collect();
    if parts.is_empty() {
        "the metrics left their learnt joint range".to_string()
    } else {
        format!("left its learnt joint range: {}", parts.join(", "))
    }
}

fn round_sig(v: f64) -> String {
    if !v.is_finite() {
        return "?".into();
    }
    let digits = (3 - v.abs().max(1e-12).log10().floor() as i32 - 1).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests;
