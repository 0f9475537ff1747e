//! Saved watch state: the rows of the store's detector-state table, `(device, metric, json)`,
//! to and from the watches. A row's key is a [`StateKey`]; most rows belong to one watch, and
//! a device's own row (`"~device"`) is a JSON object shared by the silence watch (`cadence`),
//! the relations watch (`relations`) and the device-model watch (`model`).

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};

use sentio_core::StateKey;

use super::watch::{StatePart, Watch};

/// Hands one saved row to the watches that own (part of) it; `false` if it was unreadable.
pub(super) fn restore_row(
    watches: &mut [Box<dyn Watch>],
    device: &str,
    metric: &str,
    json: &str,
) -> bool {
    let Ok(key) = StateKey::from_row(device, metric) else {
        return false;
    };
    let mut fields: Option<serde_json::Map<String, serde_json::Value>> = None;
    let mut ok = true;
    for w in watches {
        match w.state_part(&key) {
            None => {}
            Some(StatePart::Whole) => ok &= w.restore(&key, json).is_ok(),
            Some(StatePart::Field(name)) => {
                let fields =
                    fields.get_or_insert_with(|| serde_json::from_str(json).unwrap_or_default());
                // A part missing from an older row is state not learnt yet, not an error.
                ok &= fields
                    .get(name)
                    .is_none_or(|part| w.restore(&key, &part.to_string()).is_ok());
            }
        }
    }
    ok
}

/// The whole rows of `keys`: when one part of a shared row changed, every watch's part of it
/// is written again.
fn rows_of(
    watches: &[Box<dyn Watch>],
    keys: impl IntoIterator<Item = StateKey>,
) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for key in keys {
        let mut whole = None;
        let mut fields: Vec<(&str, String)> = Vec::new();
        for w in watches.iter() {
            match w.state_part(&key) {
                None => {}
                Some(StatePart::Whole) => whole = w.save(&key),
                Some(StatePart::Field(name)) => fields.extend(w.save(&key).map(|j| (name, j))),
            }
        }
        let json = whole.or_else(|| (!fields.is_empty()).then(|| join_fields(&fields)));
        if let Some(json) = json {
            let (device, metric) = key.to_row();
            rows.push((device, metric, json));
        }
    }
    rows
}

/// The state save spread over its period: every row (and every series' bands) belongs to one
/// of `slices` slices by a hash of its key, and each save step writes one slice, in turn. A
/// row changed since its last save is written at its slice's next step, so within one period
/// as before; but a step writes a share of the changed rows (at 10,000 devices, 1 Hz: a tenth
/// of 60,000 rows, not all of them every 30 s at once), so neither the serialised rows nor the
/// transaction that writes them are ever the whole state at once.
pub(super) struct SaveSlices {
    /// Changed rows not written yet, by slice.
    pending: Vec<HashSet<StateKey>>,
    /// The slice the next step writes.
    next: usize,
    hasher: std::hash::BuildHasherDefault<std::hash::DefaultHasher>,
}

impl SaveSlices {
    /// `slices` steps per period (at least one).
    pub(super) fn new(slices: usize) -> Self {
        Self {
            pending: (0..slices.max(1)).map(|_| HashSet::new()).collect(),
            next: 0,
            hasher: Default::default(),
        }
    }

    /// How many steps make a period.
    pub(super) fn slices(&self) -> usize {
        self.pending.len()
    }

    /// The slice of `key` (the same in every run: the hasher has fixed keys).
    pub(super) fn slice_of(&self, key: &impl Hash) -> usize {
        (self.hasher.hash_one(key) % self.pending.len() as u64) as usize
    }

    /// Takes the watches' changed rows into the slices.
    fn collect(&mut self, watches: &mut [Box<dyn Watch>]) {
        let mut dirty = HashSet::new();
        for w in watches.iter_mut() {
            w.take_dirty(&mut dirty);
        }
        for key in dirty {
            let slice = self.slice_of(&key);
            self.pending[slice].insert(key);
        }
    }

    /// One step: the slice due and its changed rows (whole); the next step takes the next
    /// slice.
    pub(super) fn step(
        &mut self,
        watches: &mut [Box<dyn Watch>],
    ) -> (usize, Vec<(String, String, String)>) {
        self.collect(watches);
        let slice = self.next;
        self.next = (self.next + 1) % self.pending.len();
        let keys = std::mem::take(&mut self.pending[slice]);
        (slice, rows_of(watches, keys))
    }

    /// Every changed row, whatever its slice (a save asked for at once, or the last one).
    pub(super) fn all(&mut self, watches: &mut [Box<dyn Watch>]) -> Vec<(String, String, String)> {
        self.collect(watches);
        let keys: Vec<StateKey> = self.pending.iter_mut().flat_map(|p| p.drain()).collect();
        rows_of(watches, keys)
    }
}

/// `{"a":<json>,"b":<json>}` from field names (plain identifiers) and their JSON.
fn join_fields(fields: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, json)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        out.push_str(json);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sentio_ai::limits::DEFAULT_HORIZON_MS;
    use sentio_ai::{DetectorConfig, Limit};
    use sentio_core::{DeviceId, Point};

    use super::super::watch::DeviceBatch;
    use super::super::{limits, peers, relations, series, silence};
    use super::*;
    use crate::DeclaredLimit;

    fn watches() -> Vec<Box<dyn Watch>> {
        vec![
            Box::new(silence::SilenceWatch::new(0)),
            Box::new(series::SeriesWatch::new(DetectorConfig::default(), 30)),
            Box::new(limits::LimitsWatch::new(vec![DeclaredLimit {
                kind: "pump".into(),
                metric: "temp".into(),
                limit: Limit {
                    lower: None,
                    upper: Some(90.0),
                    horizon_ms: DEFAULT_HORIZON_MS,
                },
            }])),
            Box::new(peers::PeersWatch::new(30)),
            Box::new(relations::RelationsWatch::new(30)),
        ]
    }

    fn sorted(mut rows: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
        rows.sort();
        rows
    }

    #[test]
    fn state_rows_keep_their_keys_and_survive_a_round_trip() {
        let mut first = watches();
        let device = DeviceId::parse("pump-1").unwrap();
        let kind: Arc<str> = "pump".into();
        let mut verdicts = Vec::new();
        for i in 0..50 {
            let points: Vec<Point> = [("temp", 40.0), ("current", 12.0)]
                .into_iter()
                .map(|(metric, v)| Point {
                    device: device.clone(),
                    metric: metric.into(),
                    ts_ms: i * 1_000,
                    value: v + (i % 5) as f64 * 0.1,
                })
                .collect();
            let batch = DeviceBatch {
                device: &device,
                kind: &kind,
                labels: &Default::default(),
                twin: &cel::Value::Null,
                points: &points,
                arrived: &points,
                now_ms: i * 1_000,
                scores: &Default::default(),
            };
            for w in &mut first {
                w.observe(&batch, &mut verdicts);
            }
        }
        let mut save = SaveSlices::new(1);
        let rows = sorted(save.all(&mut first));
        let keys: Vec<(&str, &str)> = rows
            .iter()
            .map(|(d, m, _)| (d.as_str(), m.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("pump-1", "current"),
                ("pump-1", "temp"),
                ("pump-1", "~device"),
                ("pump-1", "~limit/temp"),
                ("~peers", "pump/current"),
                ("~peers", "pump/temp"),
            ]
        );
        let device_row: serde_json::Value = serde_json::from_str(&rows[2].2).unwrap();
        assert!(device_row["cadence"].is_object() && device_row["relations"].is_object());
        assert!(save.all(&mut first).is_empty(), "nothing changed since");

        // A fresh set of watches reads every row back and writes the same state.
        let mut second = watches();
        for (d, m, json) in &rows {
            assert!(restore_row(&mut second, d, m, json), "{d} {m}");
        }
        let mut again = Vec::new();
        for (d, m, _) in &rows {
            let key = StateKey::from_row(d, m).unwrap();
            let mut fields = Vec::new();
            let mut whole = None;
            for w in &second {
                match w.state_part(&key) {
                    Some(StatePart::Whole) => whole = w.save(&key),
                    Some(StatePart::Field(name)) => fields.extend(w.save(&key).map(|j| (name, j))),
                    None => {}
                }
            }
            again.push((
                d.clone(),
                m.clone(),
                whole.unwrap_or_else(|| join_fields(&fields)),
            ));
        }
        // The cadence resumes from the restart, so only its arrival clock may differ.
        for ((_, m, a), (_, _, b)) in rows.iter().zip(&again) {
            if m != "~device" {
                assert_eq!(a, b, "{m}");
            }
        }
        assert!(!restore_row(&mut second, "~peers", "no-slash", "{}"));
        assert!(!restore_row(&mut second, "pump-1", "temp", "not json"));
    }

    #[test]
    fn a_periodic_save_writes_each_changed_row_once_a_slice_at_a_time() {
        let mut ws = watches();
        let kind: Arc<str> = "pump".into();
        let mut verdicts = Vec::new();
        let devices: Vec<DeviceId> = (0..200)
            .map(|i| DeviceId::parse(&format!("pump-{i}")).unwrap())
            .collect();
        for device in &devices {
            let points = vec![Point {
                device: device.clone(),
                metric: "temp".into(),
                ts_ms: 1_000,
                value: 40.0,
            }];
            let batch = DeviceBatch {
                device,
                kind: &kind,
                labels: &Default::default(),
                twin: &cel::Value::Null,
                points: &points,
                arrived: &points,
                now_ms: 1_000,
                scores: &Default::default(),
            };
            for w in &mut ws {
                w.observe(&batch, &mut verdicts);
            }
        }
        let mut slices = SaveSlices::new(10);
        let mut written = Vec::new();
        let mut largest = 0;
        for step in 0..10 {
            let (slice, rows) = slices.step(&mut ws);
            assert_eq!(slice, step);
            for (d, m, _) in &rows {
                let key = StateKey::from_row(d, m).unwrap();
                assert_eq!(slices.slice_of(&key), slice, "{d} {m} in its own slice");
            }
            largest = largest.max(rows.len());
            written.extend(rows.into_iter().map(|(d, m, _)| (d, m)));
        }
        // 200 series rows, 200 device rows, 200 limit rows and one peer group.
        let total = written.len();
        assert_eq!(total, 601);
        written.sort();
        written.dedup();
        assert_eq!(written.len(), total, "each row written once in a period");
        assert!(
            largest < total / 5,
            "a step writes a share, not the whole state: {largest} of {total}"
        );
        assert!(slices.step(&mut ws).1.is_empty(), "nothing changed since");
        assert!(slices.all(&mut ws).is_empty());
    }

    #[test]
    fn shared_rows_join_their_parts() {
        assert_eq!(
            join_fields(&[("cadence", "{\"a\":1}".into()), ("relations", "[]".into())]),
            r#"{"cadence":{"a":1},"relations":[]}"#
        );
    }
}
