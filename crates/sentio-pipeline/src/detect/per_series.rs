//! [`PerSeries`]: learnt state kept per series and saved as one row each, the half of a
//! per-series watch (`series`, `limits`) that is the same in both: which rows are its, what
//! changed since the last save, forgetting a device.

use std::collections::HashSet as StdHashSet;
use std::hash::{BuildHasher, Hash};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use sentio_core::{DeviceId, SeriesKey, StateKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::watch::StatePart;

/// One `T` per series, saved under the rows that `row` makes (e.g. `StateKey::Series`).
pub(crate) struct PerSeries<T> {
    /// The state of each series.
    pub(crate) states: HashMap<SeriesKey, T>,
    dirty: HashSet<SeriesKey>,
    row: fn(SeriesKey) -> StateKey,
}

impl<T: Serialize + DeserializeOwned> PerSeries<T> {
    /// Empty; each series' state is saved under `row(series)`.
    pub(crate) fn new(row: fn(SeriesKey) -> StateKey) -> Self {
        Self {
            states: HashMap::new(),
            dirty: HashSet::new(),
            row,
        }
    }

    /// Marks a series' state as changed since the last save.
    pub(crate) fn changed(&mut self, series: SeriesKey) {
        self.dirty.insert(series);
    }

    /// The series of `key`, when `key` is one of this state's rows.
    fn series_of<'k>(&self, key: &'k StateKey) -> Option<&'k SeriesKey> {
        match key {
            StateKey::Series(s) | StateKey::Limit(s) if (self.row)(s.clone()) == *key => Some(s),
            _ => None,
        }
    }

    /// [`super::watch::Watch::forget`].
    pub(crate) fn forget(&mut self, device: &DeviceId) {
        self.states.retain(|s, _| s.device != *device);
        self.dirty.retain(|s| s.device != *device);
        shrink_if_sparse(&mut self.states);
    }

    /// [`super::watch::Watch::state_part`]: the whole row, if it is one of these.
    pub(crate) fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        self.series_of(key).map(|_| StatePart::Whole)
    }

    /// [`super::watch::Watch::restore`].
    pub(crate) fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let Some(series) = self.series_of(key) {
            self.states
                .insert(series.clone(), serde_json::from_str(json)?);
        }
        Ok(())
    }

    /// The state restored under `key`, for a watch to adjust.
    pub(crate) fn restored(&mut self, key: &StateKey) -> Option<&mut T> {
        let series = self.series_of(key)?;
        self.states.get_mut(series)
    }

    /// [`super::watch::Watch::take_dirty`].
    pub(crate) fn take_dirty(&mut self, dirty: &mut StdHashSet<StateKey>) {
        dirty.extend(self.dirty.drain().map(self.row));
    }

    /// [`super::watch::Watch::save`].
    pub(crate) fn save(&self, key: &StateKey) -> Option<String> {
        serde_json::to_string(self.states.get(self.series_of(key)?)?).ok()
    }
}

/// Gives a map's spare room back once most of it is unused (after a device with many series
/// was forgotten), so erasing a device frees its memory and not only its entries.
pub(crate) fn shrink_if_sparse<K: Hash + Eq, V, S: BuildHasher>(
    map: &mut std::collections::HashMap<K, V, S>,
) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}
