//! The per-series detector. First version: an exponentially weighted robust location/scale
//! estimate (EW mean and EW mean absolute deviation of winsorised values), so one spike does not
//! inflate the scale, and a level shift is learnt after it persists.

use serde::{Deserialize, Serialize};

/// Tuning shared by every series. One set of parameters for all series: no per-series tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// Points seen before any score can become an alert.
    pub warmup: u32,
    /// Deviation, in robust scale units, at which a point is alerted.
    pub threshold: f64,
    /// Smoothing factor of the running estimates (0..1); smaller adapts more slowly.
    pub alpha: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            warmup: 30,
            threshold: 6.0,
            alpha: 0.02,
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

/// Online, causal detector state for one series: constant memory, no look-ahead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesDetector {
    config: DetectorConfig,
    seen: u64,
    mean: f64,
    abs_dev: f64,
}

impl SeriesDetector {
    /// A fresh detector with no history.
    pub fn new(config: &DetectorConfig) -> Self {
        Self {
            config: config.clone(),
            seen: 0,
            mean: 0.0,
            abs_dev: 0.0,
        }
    }

    /// Scores `value` observed at `ts_ms` (milliseconds since the Unix epoch), then learns from it.
    pub fn update(&mut self, _ts_ms: i64, value: f64) -> Score {
        self.seen += 1;
        if self.seen == 1 {
            self.mean = value;
            self.abs_dev = 0.0;
            return self.score_for(value, 0.0, false);
        }
        // During warm-up, learn quickly (running average); afterwards, exponentially.
        let alpha = if self.seen <= u64::from(self.config.warmup) {
            1.0 / self.seen as f64
        } else {
            self.config.alpha
        };
        let scale = self.scale();
        let deviation = (value - self.mean).abs() / scale;
        let warm = self.seen > u64::from(self.config.warmup);
        let alert = warm && deviation > self.config.threshold;
        // Winsorise before learning so one outlier moves the estimates only a little.
        let limit = self.config.threshold * scale;
        let clipped = value.clamp(self.mean - limit, self.mean + limit);
        let learn = if warm { clipped } else { value };
        let delta = learn - self.mean;
        self.mean += alpha * delta;
        self.abs_dev += alpha * (delta.abs() - self.abs_dev);
        let score = if warm {
            1.0 - (-(deviation / self.config.threshold).powi(2) * 0.7).exp()
        } else {
            0.0
        };
        let mut s = self.score_for(value, score, alert);
        // Report the range as it stood when the point was judged.
        s.expected = self.mean - alpha * delta;
        s.lower = s.expected - self.config.threshold * scale;
        s.upper = s.expected + self.config.threshold * scale;
        s
    }

    /// Robust scale with a floor relative to the level, so a perfectly flat series does not
    /// alert on the smallest change.
    fn scale(&self) -> f64 {
        // Mean absolute deviation of a normal variable is ~0.8 sigma.
        let floor = 1e-3 * self.mean.abs().max(1.0);
        (self.abs_dev * 1.25).max(floor)
    }

    fn score_for(&self, observed: f64, score: f64, alert: bool) -> Score {
        let band = self.config.threshold * self.scale();
        Score {
            score,
            alert,
            expected: self.mean,
            lower: self.mean - band,
            upper: self.mean + band,
            observed,
            detector: "robust-ewma".to_string(),
        }
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
        assert!(last.alert);
        assert!(last.expected > 9.5 && last.expected < 10.6, "{last:?}");
        assert!(last.upper < 30.0);
        assert_eq!(last.observed, 30.0);
    }
}
