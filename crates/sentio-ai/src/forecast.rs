//! Forecasting with prediction intervals, and time-to-threshold. Pure functions: the history
//! goes in, the forecast comes out.
//!
//! The history is resampled onto a regular grid of `step_ms` (bucket means, gaps filled by
//! linear interpolation), decomposed with MSTL (daily and weekly seasonality, each only when the
//! history holds at least two full periods of it) and its trend forecast with AutoETS, both from
//! the `augurs` crate. Without seasonality a non-seasonal AutoETS model is used. Intervals are
//! 95 % prediction intervals.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Forecast, Predict};
use serde::{Deserialize, Serialize};

use crate::error::AiError;

const DAY_MS: i64 = 86_400_000;
/// Most grid points a model is fitted on (the most recent ones): bounds the cost.
const MAX_POINTS: usize = 6000;
/// Fewest grid points a forecast is attempted from.
const MIN_POINTS: usize = 10;
/// Prediction-interval level.
pub const INTERVAL_LEVEL: f64 = 0.95;

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// Time of the step, ms since the Unix epoch.
    pub ts_ms: i64,
    /// Point forecast.
    pub value: f64,
    /// Lower bound of the 95 % prediction interval.
    pub lower: f64,
    /// Upper bound of the 95 % prediction interval.
    pub upper: f64,
}

/// Forecasts `horizon_ms` ahead of the last point of `history` (pairs of ms timestamp and value,
/// in any order), one point every `step_ms`. Empty when the history is too short (fewer than
/// 10 steps) or the arguments make no sense; [`try_forecast`] says why.
pub fn forecast(history: &[(i64, f64)], horizon_ms: i64, step_ms: i64) -> Vec<ForecastPoint> {
    try_forecast(history, horizon_ms, step_ms).unwrap_or_default()
}

/// [`forecast`], with the reason when no forecast can be made.
pub fn try_forecast(
    history: &[(i64, f64)],
    horizon_ms: i64,
    step_ms: i64,
) -> Result<Vec<ForecastPoint>, AiError> {
    if step_ms <= 0 || horizon_ms < step_ms {
        return Err(AiError::Forecast(format!(
            "need step_ms > 0 and horizon_ms >= step_ms (got {step_ms}, {horizon_ms})"
        )));
    }
    let (start, y) = resample(history, step_ms)?;
    let horizon = usize::try_from(horizon_ms / step_ms)
        .map_err(|_| AiError::Forecast("horizon too long".into()))?;
    let f = fit_predict(&y, step_ms, horizon)?;
    let last_ts = start + (y.len() as i64 - 1) * step_ms;
    let (lower, upper) = match &f.intervals {
        Some(i) => (i.lower.clone(), i.upper.clone()),
        None => (f.point.clone(), f.point.clone()),
    };
    Ok(f.point
        .iter()
        .zip(lower.iter().zip(&upper))
        .enumerate()
        .map(|(k, (&value, (&lo, &hi)))| ForecastPoint {
            ts_ms: last_ts + (k as i64 + 1) * step_ms,
            value,
            lower: lo.min(value),
            upper: hi.max(value),
        })
        .collect())
}

/// Seasonal periods (in grid steps) that the history supports: a day and a week, each when it
/// is a whole number of at least 2 steps and the history covers two periods.
pub fn seasonal_periods(len: usize, step_ms: i64) -> Vec<usize> {
    [DAY_MS, 7 * DAY_MS]
        .iter()
        .filter(|&&p| p % step_ms == 0)
        .map(|&p| (p / step_ms) as usize)
        .filter(|&p| p >= 2 && len >= 2 * p)
        .collect()
}

/// Fits MSTL + AutoETS (or AutoETS alone without seasonality) on a regular series and
/// predicts `horizon` steps with 95 % intervals.
pub fn fit_predict(y: &[f64], step_ms: i64, horizon: usize) -> Result<Forecast, AiError> {
    let err = |e: &dyn std::fmt::Display| AiError::Forecast(e.to_string());
    if y.len() < MIN_POINTS {
        return Err(AiError::Forecast(format!(
            "history too short: {} steps (at least {MIN_POINTS} needed)",
            y.len()
        )));
    }
    let periods = seasonal_periods(y.len(), step_ms);
    if periods.is_empty() {
        let fit = AutoETS::non_seasonal().fit(y).map_err(|e| err(&e))?;
        fit.predict(horizon, INTERVAL_LEVEL).map_err(|e| err(&e))
    } else {
        let model = MSTLModel::new(periods, AutoETS::non_seasonal().into_trend_model());
        let fit = model.fit(y).map_err(|e| err(&e))?;
        fit.predict(horizon, INTERVAL_LEVEL).map_err(|e| err(&e))
    }
}

/// Resamples onto a grid of `step_ms` aligned on the last `MAX_POINTS` steps: bucket means,
/// empty buckets filled by linear interpolation. Returns the first grid time and the values.
pub fn resample(history: &[(i64, f64)], step_ms: i64) -> Result<(i64, Vec<f64>), AiError> {
    let mut pts: Vec<(i64, f64)> = history
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(AiError::Forecast("empty history".into()));
    }
    pts.sort_by_key(|p| p.0);
    let last = pts[pts.len() - 1].0.div_euclid(step_ms);
    let first = pts[0]
        .0
        .div_euclid(step_ms)
        .max(last - MAX_POINTS as i64 + 1);
    let n = (last - first + 1) as usize;
    let mut sum = vec![0.0; n];
    let mut count = vec![0u32; n];
    for (t, v) in pts {
        let b = t.div_euclid(step_ms) - first;
        if b >= 0 {
            sum[b as usize] += v;
            count[b as usize] += 1;
        }
    }
    let known: Vec<usize> = (0..n).filter(|&i| count[i] > 0).collect();
    let mut y = vec![0.0; n];
    for &i in &known {
        y[i] = sum[i] / f64::from(count[i]);
    }
    for w in known.windows(2) {
        let (a, b) = (w[0], w[1]);
        for i in a + 1..b {
            let f = (i - a) as f64 / (b - a) as f64;
            y[i] = y[a] + f * (y[b] - y[a]);
        }
    }
    // Leading empty buckets (only when the history was cut): start at the first known one.
    let skip = known[0];
    Ok(((first + skip as i64) * step_ms, y[skip..].to_vec()))
}

/// When the series is expected to reach `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdEta {
    /// First forecast step whose point forecast reaches the threshold (ms since the epoch).
    pub expected_ts_ms: Option<i64>,
    /// First step whose 95 % interval reaches it: the earliest plausible crossing.
    pub earliest_ts_ms: Option<i64>,
    /// First step whose whole 95 % interval is past it: the latest plausible crossing within
    /// the horizon (`None` when the interval never gets entirely past it).
    #[serde(default)]
    pub latest_ts_ms: Option<i64>,
    /// Whether the threshold is above the last observed value (a rise is watched for).
    pub rising: bool,
}

/// Time to threshold: forecasts `horizon_ms` ahead and reports when the point forecast, and
/// when the 95 % interval, first reach `threshold` (crossing upwards when the last value is
/// below it, downwards otherwise). `None` fields mean "not within the horizon".
pub fn time_to_threshold(
    history: &[(i64, f64)],
    threshold: f64,
    horizon_ms: i64,
    step_ms: i64,
) -> Result<ThresholdEta, AiError> {
    let last = history
        .iter()
        .filter(|p| p.1.is_finite())
        .max_by_key(|p| p.0)
        .ok_or_else(|| AiError::Forecast("empty history".into()))?;
    let rising = last.1 < threshold;
    let f = try_forecast(history, horizon_ms, step_ms)?;
    let reached = |v: f64| {
        if rising {
            v >= threshold
        } else {
            v <= threshold
        }
    };
    Ok(ThresholdEta {
        expected_ts_ms: f.iter().find(|p| reached(p.value)).map(|p| p.ts_ms),
        earliest_ts_ms: f
            .iter()
            .find(|p| reached(if rising { p.upper } else { p.lower }))
            .map(|p| p.ts_ms),
        latest_ts_ms: f
            .iter()
            .find(|p| reached(if rising { p.lower } else { p.upper }))
            .map(|p| p.ts_ms),
        rising,
    })
}

/// Mean absolute scaled error of `forecast` against `actual`, scaled by the in-sample mean
/// absolute error of the seasonal-naive forecast (lag `season`) on `train` (Hyndman & Koehler
/// 2006). `None` when the scale is zero or undefined.
pub fn mase(train: &[f64], actual: &[f64], forecast: &[f64], season: usize) -> Option<f64> {
    let m = season.max(1);
    if train.len() <= m || actual.is_empty() || actual.len() != forecast.len() {
        return None;
    }
    let scale = train
        .windows(m + 1)
        .map(|w| (w[m] - w[0]).abs())
        .sum::<f64>()
        / (train.len() - m) as f64;
    let mae = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| (a - f).abs())
        .sum::<f64>()
        / actual.len() as f64;
    (scale > 0.0).then(|| mae / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: i64 = 300_000; // 5 min

    fn daily(days: i64, noise: f64) -> Vec<(i64, f64)> {
        let n = days * DAY_MS / STEP;
        let mut x = 0x1234_5678_9abc_def1u64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let phase = (i * STEP % DAY_MS) as f64 / DAY_MS as f64;
                (
                    1_700_006_400_000 + i * STEP,
                    50.0 + 10.0 * (std::f64::consts::TAU * phase).sin() + noise * u,
                )
            })
            .collect()
    }

    #[test]
    fn seasonal_forecast_follows_the_daily_pattern() {
        let h = daily(14, 2.0);
        let last = h.last().unwrap().0;
        let f = try_forecast(&h, DAY_MS, STEP).unwrap();
        assert_eq!(f.len(), 288);
        assert_eq!(f[0].ts_ms, last + STEP);
        for p in &f {
            let phase = (p.ts_ms.rem_euclid(DAY_MS) - 1_700_006_400_000 % DAY_MS).rem_euclid(DAY_MS)
                as f64
                / DAY_MS as f64;
            let truth = 50.0 + 10.0 * (std::f64::consts::TAU * phase).sin();
            assert!((p.value - truth).abs() < 2.0, "{p:?} vs {truth}");
            assert!(p.lower <= p.value && p.value <= p.upper);
            assert!(
                p.lower < truth + 1.0 && truth - 1.0 < p.upper,
                "{p:?} vs {truth}"
            );
        }
        // Better than seasonal naive on fresh data.
        let future = daily(15, 2.0);
        let actual: Vec<f64> = future[h.len()..].iter().map(|p| p.1).collect();
        let train: Vec<f64> = h.iter().map(|p| p.1).collect();
        let ours: Vec<f64> = f.iter().map(|p| p.value).collect();
        let naive: Vec<f64> = train[train.len() - 288..].to_vec();
        let m_ours = mase(&train, &actual, &ours, 288).unwrap();
        let m_naive = mase(&train, &actual, &naive, 288).unwrap();
        assert!(m_ours < m_naive, "{m_ours} vs {m_naive}");
    }

    #[test]
    fn trend_reaches_threshold() {
        // A disk filling up: +1 per step, with a little noise.
        let h: Vec<(i64, f64)> = (0..200)
            .map(|i| {
                (
                    i * 60_000,
                    10.0 + i as f64 + if i % 2 == 0 { 0.3 } else { -0.3 },
                )
            })
            .collect();
        let eta = time_to_threshold(&h, 300.0, 200 * 60_000, 60_000).unwrap();
        assert!(eta.rising);
        let t = eta.expected_ts_ms.expect("reached within the horizon");
        // 300 is reached about 91 steps after the last point (value ~209 at step 199).
        let steps = (t - 199 * 60_000) / 60_000;
        assert!((80..=100).contains(&steps), "{steps}");
        let e = eta.earliest_ts_ms.unwrap();
        assert!(e <= t);
        let never = time_to_threshold(&h, 1e6, 60 * 60_000, 60_000).unwrap();
        assert_eq!(never.expected_ts_ms, None);
    }

    #[test]
    fn resampling_fills_gaps_and_rejects_bad_input() {
        let h = [(0, 1.0), (1000, 3.0), (4000, 9.0), (4500, 11.0)];
        let (start, y) = resample(&h, 1000).unwrap();
        assert_eq!(start, 0);
        let expected = [1.0, 3.0, 3.0 + 7.0 / 3.0, 3.0 + 14.0 / 3.0, 10.0];
        assert_eq!(y.len(), expected.len());
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{y:?}");
        }
        assert!(try_forecast(&[], DAY_MS, STEP).is_err());
        assert!(try_forecast(&h, 10, 1000).is_err());
        assert!(try_forecast(&h, 10_000, 1000).is_err()); // 5 steps: too short
        assert!(forecast(&h, 10_000, 1000).is_empty());
    }

    #[test]
    fn mase_checks() {
        let train = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(mase(&train, &[5.0, 6.0], &[5.0, 6.0], 1), Some(0.0));
        assert_eq!(mase(&train, &[5.0, 6.0], &[4.0, 4.0], 1), Some(1.5));
        assert_eq!(mase(&[1.0, 1.0, 1.0], &[1.0], &[2.0], 1), None);
        assert_eq!(mase(&train, &[1.0], &[1.0, 2.0], 1), None);
    }
}
