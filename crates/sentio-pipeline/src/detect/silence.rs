//! The silence watch: each device's reporting [`Cadence`], learnt from its arrivals. A device
//! silent for much longer than its usual interval raises a silence alert (checked every second,
//! without points); its next arrival resolves it.

use std::collections::{HashMap, HashSet};

use sentio_ai::Cadence;
use sentio_core::{AlertKey, AlertKind, DeviceId, StateKey, Subject};

use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{PipelineError, explain};

/// Its field in a device's saved-state row (`(device, "~device")`, shared with the relations).
const STATE_FIELD: &str = "cadence";
/// Arrivals needed to resolve a silence alert: one, since any arrival ends a silence.
pub(crate) const SILENCE_RESOLVE_AFTER: u32 = 1;

/// One [`Cadence`] per device.
pub(crate) struct SilenceWatch {
    started_ms: i64,
    cadences: HashMap<DeviceId, Cadence>,
    dirty: HashSet<DeviceId>,
}

impl SilenceWatch {
    /// A watch for a node that started at `started_ms` (wall clock): restored cadences count
    /// silence from then, so devices are not blamed for the node's own downtime.
    pub(crate) fn new(started_ms: i64) -> Self {
        Self {
            started_ms,
            cadences: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    fn key(device: &DeviceId) -> AlertKey {
        AlertKey::new(device.clone(), Subject::Device, AlertKind::Silence)
    }
}

impl Watch for SilenceWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Silence]
    }

    fn resolve_after(&self, _kind: AlertKind) -> u32 {
        SILENCE_RESOLVE_AFTER
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        let Some(first) = batch.arrived.first() else {
            return;
        };
        let cadence = self.cadences.entry(batch.device.clone()).or_default();
        for p in batch.arrived {
            cadence.observe(p.ts_ms, batch.now_ms);
        }
        self.dirty.insert(batch.device.clone());
        // The device spoke: an open silence alert ends at its first arrival.
        verdicts.push(Verdict {
            at: 0,
            key: Self::key(batch.device),
            ts_ms: first.ts_ms,
            finding: Finding::Normal,
        });
    }

    fn tick(&mut self, now_ms: i64, verdicts: &mut Vec<Verdict>) {
        for (device, cadence) in &self.cadences {
            if let Some(silence) = cadence.silence(now_ms) {
                verdicts.push(Verdict {
                    at: 0,
                    key: Self::key(device),
                    ts_ms: now_ms,
                    finding: Finding::Onset(Box::new(explain::silence(&silence))),
                });
            }
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        _device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        let cadence = self
            .cadences
            .get_mut(&key.device)
            .ok_or_else(|| gone(&key.device))?;
        let n = cadence.mark_false_alarm();
        self.dirty.insert(key.device.clone());
        Ok(format!(
            "{} may now stay silent {:.2}x longer before an alert ({n} false alarm(s))",
            key.device,
            cadence.threshold_factor()
        ))
    }

    fn forget(&mut self, device: &DeviceId) {
        self.cadences.remove(device);
        self.dirty.remove(device);
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        matches!(key, StateKey::Device(_)).then_some(StatePart::Field(STATE_FIELD))
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let StateKey::Device(device) = key {
            let mut cadence: Cadence = serde_json::from_str(json)?;
            cadence.resume(self.started_ms);
            self.cadences.insert(device.clone(), cadence);
        }
        Ok(())
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        dirty.extend(self.dirty.drain().map(StateKey::Device));
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        let StateKey::Device(device) = key else {
            return None;
        };
        serde_json::to_string(self.cadences.get(device)?).ok()
    }
}
