//! Which series the background work must look at, so its cost follows the work there is and
//! not the number of series: the sealer visits the series appended to since it last finished
//! them; the maintenance pass visits those, plus the series whose next due time (the earliest
//! moment a rollup, a packing or an expiry could have something to do) has come. An idle
//! series costs nothing between its due times.
//!
//! Held in memory and rebuilt at open (every series starts due), so a restart only means one
//! full pass.

use std::collections::{HashMap, HashSet};

/// A series id (`series.id`).
pub(super) type SeriesId = i64;

/// When a series next needs maintenance if nothing is appended to it (ms since the epoch;
/// `i64::MAX`: never by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Due {
    /// The earliest of the two below: when the pass looks at it.
    pub(super) at: i64,
    /// When its oldest raw point, 1-minute or 1-hour row passes its retention.
    pub(super) expiry: i64,
    /// Its raw retention when `expiry` was computed (a late point may bring expiry forward).
    pub(super) raw_ms: i64,
}

/// The sets, behind the store's mutex.
#[derive(Debug, Default)]
pub(super) struct Workset {
    /// Appended to since the sealer last finished them.
    unsealed: HashSet<SeriesId>,
    /// Appended to since the maintenance pass last finished them, with the oldest timestamp
    /// appended meanwhile (a late point may move an expiry earlier).
    appended: HashMap<SeriesId, i64>,
    /// When each series next needs maintenance although nothing is appended to it; absent:
    /// due now.
    due: HashMap<SeriesId, Due>,
    /// Every series is due now (start, a new retention policy, a device's kind changed).
    all_due: bool,
}

impl Workset {
    /// A workset where every series needs a look from both the sealer and maintenance.
    pub(super) fn all(series: impl IntoIterator<Item = SeriesId>) -> Self {
        Self {
            unsealed: series.into_iter().collect(),
            all_due: true,
            ..Self::default()
        }
    }

    /// Points were appended to `sid`, the oldest at `oldest_ts`.
    pub(super) fn appended(&mut self, sid: SeriesId, oldest_ts: i64) {
        self.unsealed.insert(sid);
        self.appended
            .entry(sid)
            .and_modify(|t| *t = (*t).min(oldest_ts))
            .or_insert(oldest_ts);
    }

    /// Every series is due for maintenance at the next pass.
    pub(super) fn make_all_due(&mut self) {
        self.all_due = true;
    }

    /// Takes the series the sealer must look at, in id order.
    pub(super) fn take_unsealed(&mut self) -> Vec<SeriesId> {
        let mut ids: Vec<SeriesId> = self.unsealed.drain().collect();
        ids.sort_unstable();
        ids
    }

    /// Gives back series the sealer did not finish (it was stopped or its budget spent).
    pub(super) fn still_unsealed(&mut self, ids: &[SeriesId]) {
        self.unsealed.extend(ids.iter().copied());
    }

    /// The series maintenance must look at `now`, in id order: every series when all are due
    /// (`all` lists them), else those appended to and those whose due time has come.
    pub(super) fn due(&mut self, now: i64, all: impl FnOnce() -> Vec<SeriesId>) -> Vec<SeriesId> {
        let mut ids: Vec<SeriesId> = if std::mem::take(&mut self.all_due) {
            self.due.clear();
            all()
        } else {
            self.appended
                .keys()
                .copied()
                .chain(
                    self.due
                        .iter()
                        .filter(|(_, d)| d.at <= now)
                        .map(|(sid, _)| *sid),
                )
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Maintenance starts on `sid`: returns the oldest timestamp appended since its last
    /// visit, and when it was due (`None`: its state is unknown, look at everything).
    pub(super) fn visiting(&mut self, sid: SeriesId) -> (Option<i64>, Option<Due>) {
        (self.appended.remove(&sid), self.due.remove(&sid))
    }

    /// Maintenance finished `sid`.
    pub(super) fn finished(&mut self, sid: SeriesId, due: Due) {
        self.due.insert(sid, due);
    }

    /// Maintenance stopped before finishing these: they are looked at in full next pass.
    pub(super) fn unfinished(&mut self, ids: &[SeriesId]) {
        for sid in ids {
            self.due.remove(sid);
            self.appended.entry(*sid).or_insert(i64::MAX);
        }
    }

    /// The series is gone (its device erased).
    pub(super) fn remove(&mut self, sid: SeriesId) {
        self.unsealed.remove(&sid);
        self.appended.remove(&sid);
        self.due.remove(&sid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_series_are_visited_only_when_due_and_appends_bring_them_back() {
        let due = |at| Due {
            at,
            expiry: at,
            raw_ms: 1,
        };
        let mut w = Workset::all([3, 1, 2]);
        assert_eq!(w.take_unsealed(), [1, 2, 3]);
        assert!(w.take_unsealed().is_empty());
        assert_eq!(w.due(0, || vec![1, 2, 3]), [1, 2, 3]);
        assert_eq!(w.visiting(1), (None, None));
        w.finished(1, due(100));
        w.finished(2, due(i64::MAX));
        w.unfinished(&[3]);
        assert_eq!(w.due(50, Vec::new), [3]);
        assert_eq!(w.visiting(3), (Some(i64::MAX), None));
        w.finished(3, due(200));
        assert!(w.due(99, Vec::new).is_empty());
        assert_eq!(w.due(100, Vec::new), [1]);
        w.appended(2, 10);
        w.appended(2, 5);
        assert_eq!(w.take_unsealed(), [2]);
        assert_eq!(w.due(101, Vec::new), [1, 2]);
        assert_eq!(w.visiting(2), (Some(5), Some(due(i64::MAX))));
        w.make_all_due();
        assert_eq!(w.due(0, || vec![1, 2, 3]), [1, 2, 3]);
        assert_eq!(w.visiting(1), (None, None));
    }
}
