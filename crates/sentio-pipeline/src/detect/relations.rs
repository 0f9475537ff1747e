//! The relations watch: the multivariate view of one device. Its [`DeviceRelations`] learns which
//! pairs of its metrics move together; a joint reading (the points of one device sharing a
//! timestamp in a batch) that breaks a learnt relation raises a relation alert on the pair,
//! unless either metric's own detectors already alert. A reading that keeps a learnt relation
//! marks both metrics' points in the batch's [`RelationSheet`]: a level change of either is
//! explained by the other moving with it, so the series watch does not alert on it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

use sentio_ai::DeviceRelations;
use sentio_core::{AlertKey, AlertKind, DeviceId, StateKey, Subject};

use super::per_device::PerDevice;
use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{PipelineError, explain};

/// Its field in a device's saved-state row (`(device, "~device")`, shared with the cadence).
const STATE_FIELD: &str = "relations";

/// One [`DeviceRelations`] per device.
pub(crate) struct RelationsWatch {
    resolve_after: u32,
    devices: PerDevice<DeviceRelations>,
}

impl RelationsWatch {
    /// A relation alert resolves after `resolve_after` joint readings that keep the relation.
    pub(crate) fn new(resolve_after: u32) -> Self {
        Self {
            resolve_after,
            devices: PerDevice::new(STATE_FIELD),
        }
    }
}

/// Which points of a device batch (by position) keep a learnt relation with another metric.
#[derive(Default)]
pub(crate) struct RelationSheet(RefCell<Vec<bool>>);

impl RelationSheet {
    /// Empties it for a batch of `points` points.
    pub(crate) fn reset(&self, points: usize) {
        let mut s = self.0.borrow_mut();
        s.clear();
        s.resize(points, false);
    }

    /// The point at `at` keeps a learnt relation.
    fn mark(&self, at: usize) {
        if let Some(slot) = self.0.borrow_mut().get_mut(at) {
            *slot = true;
        }
    }

    /// Whether the point at `at` keeps a learnt relation.
    pub(crate) fn holds(&self, at: usize) -> bool {
        self.0.borrow().get(at).copied().unwrap_or(false)
    }
}

/// One joint reading: the position of each of the device's points in the batch, its metric
/// (shared with the point) and value, at one time.
type Reading<'a> = Vec<(usize, &'a Arc<str>, f64)>;

/// The metric of `reading` named `name`, shared rather than copied.
fn shared(reading: &[(usize, &Arc<str>, f64)], name: &str) -> Arc<str> {
    reading
        .iter()
        .find(|(_, m, _)| ***m == *name)
        .map_or_else(|| Arc::from(name), |(_, m, _)| Arc::clone(m))
}

impl Watch for RelationsWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Relation]
    }

    fn resolve_after(&self, _kind: AlertKind) -> u32 {
        self.resolve_after
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        self.devices.changed(batch.device);
        let relations = self.devices.states.entry(batch.device.clone()).or_default();
        // Joint readings: the batch's points of the device grouped by timestamp.
        let mut readings: Vec<(i64, Reading<'_>)> = Vec::new();
        for (at, p) in batch.points.iter().enumerate() {
            let point = (at, &p.metric, p.value);
            match readings.iter_mut().rev().find(|(ts, _)| *ts == p.ts_ms) {
                Some((_, r)) => r.push(point),
                None => readings.push((p.ts_ms, vec![point])),
            }
        }
        for (ts, reading) in readings {
            if reading.len() < 2 {
                continue;
            }
            let pairs: Vec<(&str, f64)> = reading.iter().map(|(_, m, v)| (&***m, *v)).collect();
            for v in relations.observe(&pairs) {
                if v.holds {
                    for (at, m, _) in &reading {
                        if ***m == *v.metrics.0 || ***m == *v.metrics.1 {
                            batch.related.mark(*at);
                        }
                    }
                }
                let subject = Subject::Pair(
                    shared(&reading, &v.metrics.0),
                    shared(&reading, &v.metrics.1),
                );
                let finding = if v.alert {
                    Finding::AlertUnlessAnomaly(Box::new(explain::relation(&v)))
                } else {
                    Finding::Normal
                };
                verdicts.push(Verdict {
                    // Judged on the whole batch: after every point's own verdicts.
                    at: batch.points.len(),
                    key: AlertKey::new(batch.device.clone(), subject, AlertKind::Relation),
                    ts_ms: ts,
                    finding,
                });
            }
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        _device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        let Subject::Pair(a, b) = &key.subject else {
            return Err(gone(&key.device));
        };
        let relations = self
            .devices
            .states
            .get_mut(&key.device)
            .ok_or_else(|| gone(&key.device))?;
        let (n, before, after) = relations
            .mark_false_alarm(a, b)
            .ok_or_else(|| gone(&key.device))?;
        self.devices.changed(&key.device);
        Ok(format!(
            "relation {a}~{b} of {} is less sensitive after {n} false alarm(s): band \
             {before:.1} -> {after:.1} spreads",
            key.device
        ))
    }

    fn forget(&mut self, device: &DeviceId) {
        self.devices.forget(device);
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        self.devices.state_part(key)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        self.devices.restore(key, json).map(|_| ())
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        self.devices.take_dirty(dirty);
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        self.devices.save(key)
    }
}

#[cfg(test)]
mod tests {
    use sentio_ai::DetectorConfig;
    use sentio_core::Point;

    use super::super::series::SeriesWatch;
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    /// A wearer walks for five minutes, runs for three, then rests (`explained`), or keeps
    /// running while the heart rate falls as if at rest (a level change nothing explains).
    /// Returns the seconds at which a heart-rate anomaly verdict alerted after the run.
    fn heart_rate_alerts_after_the_run(explained: bool) -> Vec<i64> {
        let device = DeviceId::parse("wearable-1").unwrap();
        let kind: Arc<str> = "wearable".into();
        let config = DetectorConfig {
            warmup: 40,
            ..DetectorConfig::default()
        };
        // As the detect stage orders them: the relations first.
        let mut watches: Vec<Box<dyn Watch>> = vec![
            Box::new(RelationsWatch::new(30)),
            Box::new(SeriesWatch::new(config, 30)),
        ];
        let scores = crate::rules::ai_inputs::ScoreSheet::default();
        let related = RelationSheet::default();
        let mut seed = 5;
        let (mut cadence, mut hr) = (105.0f64, 103.0f64);
        let mut alerts = Vec::new();
        for t in 0..900i64 {
            let target = match t {
                0..300 => 105.0,
                300..480 => 158.0,
                _ => 0.0,
            };
            cadence += (target - cadence) / 5.0;
            let hr_target = 66.0 + 0.35 * cadence;
            hr += (hr_target - hr) / if hr_target > hr { 20.0 } else { 45.0 };
            let shown = if explained || t < 480 { cadence } else { 158.0 };
            let activity = if shown < 1.0 {
                0.0
            } else {
                (shown + 6.0 * lcg(&mut seed)).round()
            };
            let heart_rate = (hr + 2.0 * lcg(&mut seed)).round();
            let points: Vec<Point> = [("heart_rate", heart_rate), ("activity", activity)]
                .into_iter()
                .map(|(metric, value)| Point {
                    device: device.clone(),
                    metric: metric.into(),
                    ts_ms: t * 1_000,
                    value,
                })
                .collect();
            scores.reset(points.len());
            related.reset(points.len());
            let batch = DeviceBatch {
                device: &device,
                kind: &kind,
                labels: &Default::default(),
                twin: &cel::Value::Null,
                points: &points,
                arrived: &points,
                now_ms: t * 1_000,
                scores: &scores,
                related: &related,
            };
            let mut verdicts = Vec::new();
            for w in &mut watches {
                w.observe(&batch, &mut verdicts);
            }
            for v in verdicts {
                let heart = matches!(&v.key.subject, Subject::Metric(m) if &**m == "heart_rate");
                if t >= 480 && heart && matches!(v.finding, Finding::Alert(_)) {
                    alerts.push(t);
                }
            }
        }
        alerts
    }

    #[test]
    fn a_heart_rate_falling_as_its_wearer_stops_is_not_an_anomaly_of_the_heart_rate() {
        let explained = heart_rate_alerts_after_the_run(true);
        assert!(explained.is_empty(), "alerts at {explained:?}");
        // The same fall while the wearer keeps running: the relation does not hold, so the
        // heart rate's own level change alerts.
        let unexplained = heart_rate_alerts_after_the_run(false);
        assert!(!unexplained.is_empty(), "no alert on the unexplained fall");
    }
}
