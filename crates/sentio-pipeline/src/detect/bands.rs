//! [`Bands`]: the series detectors' expected band per series and 1-minute bucket, gathered as
//! points are scored and handed to the store with the detector state (off the hot path, one
//! transaction per save; the store merges a minute's parts, see `SeriesStore::save_bands`).
//!
//! A bucket keeps the count-weighted mean of the expected values and the envelope (lowest
//! lower, highest upper bound) of the normal ranges scored in it, rather than the last score:
//! the chart draws each bucket's lowest and highest point, so an envelope is what covers them,
//! and it merges exactly across saves and when a range is drawn at fewer buckets. Scores made
//! while a detector warms up (no alert is possible yet) and of non-finite values are left out.

use std::collections::HashMap;

use sentio_ai::Score;
use sentio_core::{DeviceId, SeriesKey};
use sentio_store::BandRow;

use super::per_series::shrink_if_sparse;

/// Bands scored since the last save, per series in bucket order.
#[derive(Default)]
pub(crate) struct Bands {
    pending: HashMap<SeriesKey, Vec<BandRow>>,
}

impl Bands {
    /// Adds the band of a point of `series` at `ts_ms` scored as `score`.
    pub(crate) fn scored(&mut self, series: &SeriesKey, ts_ms: i64, score: &Score) {
        let finite = [score.observed, score.expected, score.lower, score.upper]
            .iter()
            .all(|v| v.is_finite());
        if score.detector.warming_up() || !finite {
            return;
        }
        let row = BandRow::scored(ts_ms, score.expected, score.lower, score.upper);
        let rows = match self.pending.get_mut(series) {
            Some(rows) => rows,
            None => self.pending.entry(series.clone()).or_default(),
        };
        // Points reach a detector in time order, so a bucket is the last one or a new one.
        match rows.last_mut() {
            Some(last) if last.bucket_ms == row.bucket_ms => last.merge(&row),
            _ => rows.push(row),
        }
    }

    /// What was gathered since the last call for the series that are `due`, into `out` (to
    /// save).
    pub(crate) fn take(
        &mut self,
        due: &dyn Fn(&SeriesKey) -> bool,
        out: &mut Vec<(SeriesKey, BandRow)>,
    ) {
        self.pending.retain(|series, rows| {
            if !due(series) {
                return true;
            }
            out.extend(rows.drain(..).map(|r| (series.clone(), r)));
            false
        });
        shrink_if_sparse(&mut self.pending);
    }

    /// Drops what was gathered for a device (deleted or erased).
    pub(crate) fn forget(&mut self, device: &DeviceId) {
        self.pending.retain(|s, _| s.device != *device);
    }
}

#[cfg(test)]
mod tests {
    use sentio_ai::{DetectorConfig, SeriesDetector};

    use super::*;

    #[test]
    fn a_minute_keeps_the_mean_expected_and_the_widest_range_after_warm_up() {
        let series = SeriesKey::new(DeviceId::parse("pump-1").unwrap(), "t".into());
        let mut detector = SeriesDetector::new(&DetectorConfig::default());
        let mut bands = Bands::default();
        let mut scores = Vec::new();
        for i in 0..600 {
            let ts = i * 1_000;
            let score = detector.update(ts, 20.0 + (i % 7) as f64 * 0.1);
            bands.scored(&series, ts, &score);
            scores.push((ts, score));
        }
        bands.scored(&series, 601_000, &detector.update(601_000, f64::NAN));
        let mut taken = Vec::new();
        bands.take(&|_| true, &mut taken);
        let mut rows: Vec<BandRow> = taken.into_iter().map(|(_, r)| r).collect();
        rows.sort_by_key(|r| r.bucket_ms);
        let warm: Vec<&(i64, Score)> = scores
            .iter()
            .filter(|(_, s)| !s.detector.warming_up())
            .collect();
        assert!(
            !warm.is_empty() && warm.len() < scores.len(),
            "warm-up is left out"
        );
        assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), warm.len() as u64);
        for row in &rows {
            let inside: Vec<&Score> = warm
                .iter()
                .filter(|(ts, _)| ts / 60_000 * 60_000 == row.bucket_ms)
                .map(|(_, s)| s)
                .collect();
            let mean = inside.iter().map(|s| s.expected).sum::<f64>() / inside.len() as f64;
            assert!((row.expected - mean).abs() < 1e-9);
            assert_eq!(
                row.lower,
                inside.iter().map(|s| s.lower).fold(f64::INFINITY, f64::min)
            );
            assert_eq!(
                row.upper,
                inside
                    .iter()
                    .map(|s| s.upper)
                    .fold(f64::NEG_INFINITY, f64::max)
            );
        }
        taken = Vec::new();
        bands.take(&|_| true, &mut taken);
        assert!(taken.is_empty(), "taken once");
    }
}
