//! The series watch: each series' own [`SeriesDetector`], which scores every point against that
//! series' history. Its verdicts are anomaly alerts; they take precedence over the relation and
//! peer alerts of the same metric ([`Finding::AlertUnlessAnomaly`]).

use std::collections::HashSet;
use std::sync::Arc;

use sentio_ai::{DetectorConfig, SeriesDetector};
use sentio_core::{AlertKey, AlertKind, DeviceId, SeriesKey, StateKey, Subject};
use sentio_store::BandRow;

use super::bands::Bands;
use super::per_series::PerSeries;
use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{PipelineError, explain};

/// One [`SeriesDetector`] per series, boxed: the map's table then holds a pointer per slot, not
/// a whole detector (a table is up to half empty after it grows), and all share one config.
pub(crate) struct SeriesWatch {
    config: Arc<DetectorConfig>,
    resolve_after: u32,
    detectors: PerSeries<Box<SeriesDetector>>,
    /// The expected band of each scored point, until the next save.
    bands: Bands,
}

impl SeriesWatch {
    /// Detectors built with `config`; an anomaly alert resolves after `resolve_after` normal
    /// points.
    pub(crate) fn new(config: DetectorConfig, resolve_after: u32) -> Self {
        Self {
            config: Arc::new(config),
            resolve_after,
            detectors: PerSeries::new(StateKey::Series),
            bands: Bands::default(),
        }
    }
}

impl Watch for SeriesWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Anomaly]
    }

    fn resolve_after(&self, _kind: AlertKind) -> u32 {
        self.resolve_after
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        for (at, p) in batch.points.iter().enumerate() {
            let series = SeriesKey::of(p);
            let score = self
                .detectors
                .states
                .entry(series.clone())
                .or_insert_with(|| Box::new(SeriesDetector::shared(Arc::clone(&self.config))))
                .update(p.ts_ms, p.value);
            self.bands.scored(&series, p.ts_ms, &score);
            batch.scores.set(at, score.score);
            let finding = if score.alert {
                Finding::Alert(Box::new(explain::anomaly(&p.metric, &score)))
            } else {
                Finding::Normal
            };
            verdicts.push(Verdict {
                at,
                key: AlertKey::series(&series, AlertKind::Anomaly),
                ts_ms: p.ts_ms,
                finding,
            });
            self.detectors.changed(series);
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        _device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        let Subject::Metric(metric) = &key.subject else {
            return Err(gone(&key.device));
        };
        let series = SeriesKey::new(key.device.clone(), metric.clone());
        let detector = self
            .detectors
            .states
            .get_mut(&series)
            .ok_or_else(|| gone(&key.device))?;
        let c = detector.mark_false_alarm();
        self.detectors.changed(series.clone());
        Ok(format!(
            "{series} is less sensitive after {} false alarm(s): fused score needed {:.3} -> \
             {:.3}, baseline band {:.1} -> {:.1} spreads",
            c.false_alarms,
            c.score_threshold_before,
            c.score_threshold_after,
            c.band_before,
            c.band_after
        ))
    }

    fn forget(&mut self, device: &DeviceId) {
        self.detectors.forget(device);
        self.bands.forget(device);
    }

    fn take_bands(
        &mut self,
        due: &dyn Fn(&SeriesKey) -> bool,
        out: &mut Vec<(SeriesKey, BandRow)>,
    ) {
        self.bands.take(due, out);
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        self.detectors.state_part(key)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        self.detectors.restore(key, json)?;
        if let Some(detector) = self.detectors.restored(key) {
            detector.share_config(&self.config);
        }
        Ok(())
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        self.detectors.take_dirty(dirty);
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        self.detectors.save(key)
    }
}

#[cfg(test)]
mod tests {
    use sentio_core::Point;

    use super::*;

    #[test]
    fn every_series_detector_shares_the_watch_config_even_once_restored() {
        let mut watch = SeriesWatch::new(DetectorConfig::default(), 3);
        let device = DeviceId::parse("pump-1").unwrap();
        let kind: Arc<str> = "pump".into();
        let points: Vec<Point> = ["temp", "current"]
            .into_iter()
            .map(|metric| Point {
                device: device.clone(),
                metric: metric.into(),
                ts_ms: 1_000,
                value: 4.0,
            })
            .collect();
        let batch = DeviceBatch {
            device: &device,
            kind: &kind,
            labels: &Default::default(),
            twin: &cel::Value::Null,
            points: &points,
            arrived: &points,
            now_ms: 1_000,
            scores: &Default::default(),
        };
        watch.observe(&batch, &mut Vec::new());
        let temp = StateKey::Series(SeriesKey::new(device.clone(), "temp".into()));
        let saved = watch.save(&temp).unwrap();
        watch.restore(&temp, &saved).unwrap();
        assert_eq!(watch.save(&temp).unwrap(), saved);
        assert_eq!(watch.detectors.states.len(), 2);
        for detector in watch.detectors.states.values() {
            assert!(std::ptr::eq(detector.config(), &*watch.config));
        }
    }
}
