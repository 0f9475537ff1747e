//! Declared limits and predictive maintenance for one series.
//!
//! A limit is declared by the user per device kind and metric (a pump's bearing temperature must
//! stay below 90 °C). Two things are watched:
//! - **the limit itself**: a reading beyond it alerts at once (no learning involved);
//! - **time to threshold**: readings are averaged into buckets (`horizon / HISTORY_BUCKETS`
//!   wide, 10 s for the default one-hour horizon) and, each time a bucket closes while the
//!   series is heading towards the limit, the bucket history is forecast (augurs MSTL/AutoETS,
//!   [`crate::forecast::time_to_threshold`]) over the horizon. When the point forecast reaches
//!   the limit a predictive alert says when, with the interval from the 95 % bounds.
//!
//! The heading-towards gate (the mean of the last three buckets beyond that of the three before,
//! towards the limit) keeps forecasting cost to the series and moments that matter.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::forecast::time_to_threshold;

/// Buckets kept (and the horizon is this many buckets long).
pub const HISTORY_BUCKETS: usize = 360;
/// Buckets needed before a forecast is attempted.
pub const MIN_BUCKETS: usize = 18;
/// Default forecast horizon (ms).
pub const DEFAULT_HORIZON_MS: i64 = 3_600_000;
/// Each false alarm on a predictive alert halves the horizon it alerts within.
pub const FALSE_ALARM_FACTOR: f64 = 0.5;

/// A declared limit on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// Values below this are beyond the limit.
    pub lower: Option<f64>,
    /// Values above this are beyond the limit.
    pub upper: Option<f64>,
    /// How far ahead crossings are predicted (ms).
    pub horizon_ms: i64,
}

/// A reading beyond the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breach {
    /// The limit crossed.
    pub limit: f64,
    /// Whether it is the upper limit.
    pub upper: bool,
}

/// A predicted crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The limit that will be crossed.
    pub limit: f64,
    /// When the point forecast reaches it (ms).
    pub expected_ms: i64,
    /// When the 95 % band first reaches it (ms).
    pub earliest_ms: Option<i64>,
    /// When the whole band is past it (ms), if within the horizon.
    pub latest_ms: Option<i64>,
    /// Data time of the forecast (ms).
    pub made_ms: i64,
    /// The last bucket mean.
    pub current: f64,
}

/// What one reading told the watch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LimitObservation {
    /// The reading is beyond a limit.
    pub breach: Option<Breach>,
    /// A forecast was made on this reading (a bucket closed and the series heads to a limit):
    /// `Some(Some(_))` predicts a crossing, `Some(None)` predicts none within the horizon.
    pub forecast: Option<Option<Forecast>>,
}

/// Watch state of one series with a declared limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LimitWatch {
    buckets: VecDeque<(i64, f64)>,
    cur_start: i64,
    cur_sum: f64,
    cur_n: u32,
    #[serde(default)]
    false_alarms: u32,
}

impl LimitWatch {
    /// Takes a reading; returns a breach and, when a bucket closed, a forecast.
    pub fn observe(&mut self, limit: &Limit, ts_ms: i64, value: f64) -> LimitObservation {
        let mut obs = LimitObservation::default();
        if !value.is_finite() {
            return obs;
        }
        if let Some(u) = limit.upper
            && value > u
        {
            obs.breach = Some(Breach {
                limit: u,
                upper: true,
            });
        } else if let Some(l) = limit.lower
            && value < l
        {
            obs.breach = Some(Breach {
                limit: l,
                upper: false,
            });
        }
        let width = (limit.horizon_ms / HISTORY_BUCKETS as i64).max(1_000);
        let start = ts_ms - ts_ms.rem_euclid(width);
        if self.cur_n == 0 {
            self.cur_start = start;
        }
        if start < self.cur_start {
            // Late reading: the bucket is closed; it only counts for the breach.
            return obs;
        }
        if start > self.cur_start {
            let mean = self.cur_sum / f64::from(self.cur_n);
            self.buckets.push_back((self.cur_start, mean));
            while self.buckets.len() > HISTORY_BUCKETS {
                self.buckets.pop_front();
            }
            self.cur_start = start;
            self.cur_sum = 0.0;
            self.cur_n = 0;
            obs.forecast = self.predict(limit, width);
        }
        self.cur_sum += value;
        self.cur_n += 1;
        obs
    }

    fn heading(&self, limit: &Limit) -> Option<f64> {
        let n = self.buckets.len();
        if n < MIN_BUCKETS {
            return None;
        }
        let mean = |r: std::ops::Range<usize>| {
            let len = r.len() as f64;
            r.map(|i| self.buckets[i].1).sum::<f64>() / len
        };
        let recent = mean(n - 3..n);
        let before = mean(n - 6..n - 3);
        match (limit.upper, limit.lower) {
            (Some(u), _) if recent > before && recent < u => Some(u),
            (_, Some(l)) if recent < before && recent > l => Some(l),
            _ => None,
        }
    }

    fn predict(&self, limit: &Limit, width: i64) -> Option<Option<Forecast>> {
        let target = self.heading(limit)?;
        let horizon =
            (limit.horizon_ms as f64 * FALSE_ALARM_FACTOR.powi(self.false_alarms as i32)) as i64;
        let horizon = horizon.max(width);
        let history: Vec<(i64, f64)> = self.buckets.iter().copied().collect();
        let made_ms = self.buckets.back()?.0 + width;
        let eta = time_to_threshold(&history, target, horizon, width).ok()?;
        Some(eta.expected_ts_ms.map(|expected_ms| Forecast {
            limit: target,
            expected_ms,
            earliest_ms: eta.earliest_ts_ms,
            latest_ms: eta.latest_ts_ms,
            made_ms,
            current: history.last().map_or(f64::NAN, |b| b.1),
        }))
    }

    /// A predictive alert was marked as a false alarm: only nearer crossings alert from now on.
    /// Returns the count and the horizon factor before and after.
    pub fn mark_false_alarm(&mut self) -> (u32, f64, f64) {
        let before = FALSE_ALARM_FACTOR.powi(self.false_alarms as i32);
        self.false_alarms = self.false_alarms.saturating_add(1);
        (
            self.false_alarms,
            before,
            FALSE_ALARM_FACTOR.powi(self.false_alarms as i32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breach_is_immediate_and_a_rising_series_is_predicted_before_the_limit() {
        let limit = Limit {
            lower: None,
            upper: Some(90.0),
            horizon_ms: DEFAULT_HORIZON_MS,
        };
        let mut w = LimitWatch::default();
        let mut predicted_at = None;
        let mut crossed_at = None;
        let mut t = 0i64;
        // 20 minutes flat around 45, then a rise of 0.05 degrees per second.
        for i in 0..6_000i64 {
            t = i * 1_000;
            let wobble = ((i * 7919) % 13) as f64 * 0.02;
            let v = if i < 1_200 {
                45.0 + wobble
            } else {
                45.0 + 0.05 * (i - 1_200) as f64 + wobble
            };
            let obs = w.observe(&limit, t, v);
            if let Some(Some(f)) = obs.forecast
                && predicted_at.is_none()
            {
                assert!(f.expected_ms > t);
                predicted_at = Some(t);
            }
            if obs.breach.is_some() {
                crossed_at = Some(t);
                break;
            }
        }
        let (p, c) = (
            predicted_at.expect("predicted"),
            crossed_at.expect("crossed"),
        );
        assert!(
            p < c,
            "predicted at {p} before the crossing at {c} (last {t})"
        );
        assert!(c - p >= 300_000, "lead time only {} s", (c - p) / 1_000);
    }

    #[test]
    fn flat_series_never_forecasts() {
        let limit = Limit {
            lower: Some(0.0),
            upper: Some(90.0),
            horizon_ms: DEFAULT_HORIZON_MS,
        };
        let mut w = LimitWatch::default();
        for i in 0..3_000i64 {
            let obs = w.observe(&limit, i * 1_000, 45.0 + ((i * 31) % 5) as f64 * 0.01);
            assert!(obs.breach.is_none());
            assert!(!matches!(obs.forecast, Some(Some(_))), "at {i}");
        }
    }
}
