//! The relations watch: the multivariate view of one device. Its [`DeviceRelations`] learns which
//! pairs of its metrics move together; a joint reading (the points of one device sharing a
//! timestamp in a batch) that breaks a learnt relation raises a relation alert on the pair,
//! unless either metric's own detectors already alert.

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

/// One joint reading: the device's metrics (shared with their points) and values at one time.
type Reading<'a> = Vec<(&'a Arc<str>, f64)>;

/// The metric of `reading` named `name`, shared rather than copied.
fn shared(reading: &[(&Arc<str>, f64)], name: &str) -> Arc<str> {
    reading
        .iter()
        .find(|(m, _)| ***m == *name)
        .map_or_else(|| Arc::from(name), |(m, _)| Arc::clone(m))
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
        for p in batch.points {
            match readings.iter_mut().rev().find(|(ts, _)| *ts == p.ts_ms) {
                Some((_, r)) => r.push((&p.metric, p.value)),
                None => readings.push((p.ts_ms, vec![(&p.metric, p.value)])),
            }
        }
        for (ts, reading) in readings {
            if reading.len() < 2 {
                continue;
            }
            let pairs: Vec<(&str, f64)> = reading.iter().map(|(m, v)| (&***m, *v)).collect();
            for v in relations.observe(&pairs) {
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
