//! The silence watch: each device's reporting [`Cadence`], learnt from its arrivals. A device
//! silent for much longer than its usual interval raises a silence alert (checked every second,
//! without points); its next arrival resolves it.

use std::collections::HashSet;

use sentio_ai::Cadence;
use sentio_core::{AlertKey, AlertKind, DeviceId, StateKey, Subject};

use super::per_device::PerDevice;
use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{PipelineError, explain};

/// Its field in a device's saved-state row (`(device, "~device")`, shared with the relations).
const STATE_FIELD: &str = "cadence";
/// Arrivals needed to resolve a silence alert: one, since any arrival ends a silence.
pub(crate) const SILENCE_RESOLVE_AFTER: u32 = 1;

/// One [`Cadence`] per device.
pub(crate) struct SilenceWatch {
    started_ms: i64,
    cadences: PerDevice<Cadence>,
}

impl SilenceWatch {
    /// A watch for a node that started at `started_ms` (wall clock): restored cadences count
    /// silence from then, so devices are not blamed for the node's own downtime.
    pub(crate) fn new(started_ms: i64) -> Self {
        Self {
            started_ms,
            cadences: PerDevice::new(STATE_FIELD),
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
        let cadence = self
            .cadences
            .states
            .entry(batch.device.clone())
            .or_default();
        for p in batch.arrived {
            cadence.observe(p.ts_ms, batch.now_ms);
        }
        self.cadences.changed(batch.device);
        // The device spoke: an open silence alert ends at its first arrival.
        verdicts.push(Verdict {
            at: 0,
            key: Self::key(batch.device),
            ts_ms: first.ts_ms,
            finding: Finding::Normal,
        });
    }

    fn tick(&mut self, now_ms: i64, open: &dyn Fn(&AlertKey) -> bool, verdicts: &mut Vec<Verdict>) {
        for (device, cadence) in &self.cadences.states {
            if let Some(silence) = cadence.silence(now_ms) {
                // A device silent for a while has its alert open: not explained every second.
                let key = Self::key(device);
                if open(&key) {
                    continue;
                }
                verdicts.push(Verdict {
                    at: 0,
                    key,
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
            .states
            .get_mut(&key.device)
            .ok_or_else(|| gone(&key.device))?;
        let n = cadence.mark_false_alarm();
        let factor = cadence.threshold_factor();
        self.cadences.changed(&key.device);
        Ok(format!(
            "{} may now stay silent {factor:.2}x longer before an alert ({n} false alarm(s))",
            key.device,
        ))
    }

    fn forget(&mut self, device: &DeviceId) {
        self.cadences.forget(device);
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        self.cadences.state_part(key)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let Some(cadence) = self.cadences.restore(key, json)? {
            cadence.resume(self.started_ms);
        }
        Ok(())
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        self.cadences.take_dirty(dirty);
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        self.cadences.save(key)
    }
}
