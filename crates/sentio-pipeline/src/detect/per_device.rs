//! [`PerDevice`]: learnt state kept per device as one field of the device's own saved row
//! (`(device, "~device")`), the half of a per-device watch (`silence`, `relations`,
//! `device_model`) that is the same in each: which part of which rows is its, what changed since
//! the last save, forgetting a device.

use std::collections::HashSet as StdHashSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use sentio_core::{DeviceId, StateKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::watch::StatePart;

/// One `T` per device, saved as the field `field` of the device's row.
pub(crate) struct PerDevice<T> {
    /// The state of each device.
    pub(crate) states: HashMap<DeviceId, T>,
    dirty: HashSet<DeviceId>,
    field: &'static str,
}

impl<T: Serialize + DeserializeOwned> PerDevice<T> {
    /// Empty; each device's state is saved as `field` of its row.
    pub(crate) fn new(field: &'static str) -> Self {
        Self {
            states: HashMap::new(),
            dirty: HashSet::new(),
            field,
        }
    }

    /// Marks a device's state as changed since the last save.
    pub(crate) fn changed(&mut self, device: &DeviceId) {
        if !self.dirty.contains(device) {
            self.dirty.insert(device.clone());
        }
    }

    /// [`super::watch::Watch::forget`].
    pub(crate) fn forget(&mut self, device: &DeviceId) {
        self.states.remove(device);
        self.dirty.remove(device);
    }

    /// [`super::watch::Watch::state_part`]: its field of a device's row.
    pub(crate) fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        matches!(key, StateKey::Device(_)).then_some(StatePart::Field(self.field))
    }

    /// [`super::watch::Watch::restore`]; answers the restored state, for a watch to adjust.
    pub(crate) fn restore(
        &mut self,
        key: &StateKey,
        json: &str,
    ) -> Result<Option<&mut T>, serde_json::Error> {
        let StateKey::Device(device) = key else {
            return Ok(None);
        };
        let state: T = serde_json::from_str(json)?;
        self.states.insert(device.clone(), state);
        Ok(self.states.get_mut(device))
    }

    /// [`super::watch::Watch::take_dirty`].
    pub(crate) fn take_dirty(&mut self, dirty: &mut StdHashSet<StateKey>) {
        dirty.extend(self.dirty.drain().map(StateKey::Device));
    }

    /// [`super::watch::Watch::save`].
    pub(crate) fn save(&self, key: &StateKey) -> Option<String> {
        let StateKey::Device(device) = key else {
            return None;
        };
        serde_json::to_string(self.states.get(device)?).ok()
    }
}
