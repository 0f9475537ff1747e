//! The device-model watch: one [`DeviceModel`] per device over all its numeric metrics (those
//! of one payload, or of payloads arriving at slightly different times, aligned on their latest
//! values). A device with at least two metrics that leaves every normal regime it learnt raises
//! one device alert, held while it stays away and resolved when it is back; a user may declare
//! the current state a new normal ([`Watch::new_normal`]), and an alert open for
//! `adopt_after_ms` becomes one by itself, saying so.

use std::collections::HashSet;

use sentio_ai::{Adoption, DeviceVerdict};
use sentio_ai::{DeviceEvent, DeviceModel, DeviceModelConfig};
use sentio_core::{AlertKey, AlertKind, DeviceId, StateKey, Subject};
use tracing::info;

use super::per_device::PerDevice;
use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{PipelineError, explain};

/// Its field in a device's saved-state row (`(device, "~device")`, shared with the cadence and
/// the relations).
const STATE_FIELD: &str = "model";
/// The model holds and closes its own alarm: one normal verdict resolves the alert.
const DEVICE_RESOLVE_AFTER: u32 = 1;

/// One [`DeviceModel`] per device.
pub(crate) struct DeviceModelWatch {
    config: DeviceModelConfig,
    devices: PerDevice<DeviceModel>,
}

impl DeviceModelWatch {
    pub(crate) fn new(config: DeviceModelConfig) -> Self {
        Self {
            config,
            devices: PerDevice::new(STATE_FIELD),
        }
    }

    fn key(device: &DeviceId) -> AlertKey {
        AlertKey::new(device.clone(), Subject::Device, AlertKind::Device)
    }
}

impl Watch for DeviceModelWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Device]
    }

    fn resolve_after(&self, _kind: AlertKind) -> u32 {
        DEVICE_RESOLVE_AFTER
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        if batch.points.is_empty() {
            return;
        }
        self.devices.changed(batch.device);
        let model = self.devices.states.entry(batch.device.clone()).or_default();
        // One payload: the points sharing a timestamp, in commit order.
        let mut start = 0;
        while start < batch.points.len() {
            let ts = batch.points[start].ts_ms;
            let end = batch.points[start..]
                .iter()
                .position(|p| p.ts_ms != ts)
                .map_or(batch.points.len(), |n| start + n);
            let readings = batch.points[start..end]
                .iter()
                .map(|p| (&*p.metric, p.value));
            if let Some(v) = model.update(&self.config, ts, readings) {
                judge(batch.device, model, &v, batch.points.len(), verdicts);
            }
            start = end;
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        _device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        // A false alarm of the device model is a state it should know as normal.
        self.new_normal(key)
    }

    fn new_normal(&mut self, key: &AlertKey) -> Result<String, PipelineError> {
        let model = self
            .devices
            .states
            .get_mut(&key.device)
            .ok_or_else(|| gone(&key.device))?;
        model.adopt_new_normal(Adoption::User);
        let regimes = model.regimes();
        self.devices.changed(&key.device);
        info!(device = %key.device, "device model: the current state is learnt as a new normal regime (user)");
        Ok(format!(
            "{} is learning its current state as a new normal regime ({} regime(s) known so far); \
             it raises nothing while it learns",
            key.device, regimes
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

/// The verdicts of one row: the device alert while the model holds its alarm, normal otherwise;
/// a new normal adopted by time is said in the alert's last explanation before it resolves.
fn judge(
    device: &DeviceId,
    model: &DeviceModel,
    v: &DeviceVerdict,
    at: usize,
    verdicts: &mut Vec<Verdict>,
) {
    if model.metrics().len() < 2 {
        return;
    }
    for e in &v.events {
        match e {
            DeviceEvent::NewNormal(Adoption::Timeout) => {
                info!(device = %device, "device model: an alarm open too long; its state is learnt as a new normal regime");
                verdicts.push(Verdict {
                    at,
                    key: DeviceModelWatch::key(device),
                    ts_ms: v.ts_ms,
                    finding: Finding::Alert(Box::new(explain::device_new_normal(
                        device,
                        &model.explain(),
                    ))),
                });
            }
            DeviceEvent::Dropped => {
                info!(device = %device, "device model: the new normal was not seen long enough to be learnt; departures alarm again");
            }
            DeviceEvent::Learnt { reason, regimes } => {
                info!(device = %device, ?reason, regimes, metrics = model.metrics().len(), "device model: regime learnt");
            }
            _ => {}
        }
    }
    let finding = if v.alert {
        Finding::Alert(Box::new(explain::device(device, v.score, &model.explain())))
    } else {
        Finding::Normal
    };
    verdicts.push(Verdict {
        at,
        key: DeviceModelWatch::key(device),
        ts_ms: v.ts_ms,
        finding,
    });
}
