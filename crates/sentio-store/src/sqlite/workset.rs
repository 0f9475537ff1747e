//! Which series the background work must look at, so its cost follows the work there is and
//! not the number of series: the sealer visits the series appended to since it last finished
//! them; the maintenance pass visits those, plus the series whose next due time (the earliest
//! moment a rollup, a packing or an expiry could have something to do) has come. An idle
//! series costs nothing between its due times.
//!
//! Both decide "nothing to do yet" from bounds kept here, without reading the database: the
//! sealer from a series' [`SealWait`] (what its last look found), maintenance from a series'
//! [`Due`] (its roll time and `rolled_until`) and the oldest point appended since.
//!
//! Held in memory and rebuilt at open (every series starts due), so a restart only means one
//! full pass.

use std::collections::{BTreeSet, HashMap};

use super::rollup::{HOUR, MINUTE, ROLL_BATCH_MS, SETTLE_MS, floor};
use super::seal::SealPolicy;

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
    /// Its rollups' `rolled_until` when it was maintained (only ever moves forward).
    pub(super) rolled_until: Option<i64>,
}

impl Due {
    /// The due time after points from `oldest` on were appended, when deciding it needs no
    /// look at the database: nothing appended lands in a minute already rolled up (that marks
    /// it late) and its data is not expiring yet. A series rolled up before comes due for its
    /// roll `ROLL_BATCH_MS + SETTLE_MS` after `rolled_until` (as `rollup::roll_step` decides);
    /// one never rolled up (a new series), once its oldest minute has settled: no later than
    /// its due time before, nor than the appended points' first minute would make it. A late
    /// point may bring its expiry forward. `None`: look.
    pub(super) fn after_append(&self, oldest: i64, now: i64) -> Option<Due> {
        if oldest == i64::MAX || self.expiry <= now {
            return None;
        }
        let roll = match self.rolled_until {
            Some(r) if oldest < r => return None,
            Some(r) => r + ROLL_BATCH_MS + SETTLE_MS,
            None => self.at.min(floor(oldest, MINUTE) + MINUTE + SETTLE_MS),
        };
        let expiry = self.expiry.min(floor(oldest, HOUR) + HOUR + self.raw_ms);
        Some(Due {
            at: expiry.min(roll),
            expiry,
            ..*self
        })
    }
}

/// What the sealer's last look at a series found when nothing was ready, in the terms of its
/// rule (`seal.rs`): with `cutoff` = newest point − seal age, a series has something to seal
/// only once `cutoff` passes its first head point and a chunk's worth of points (or the next
/// chunk, or the first point has waited `max_wait_ms`). Appends move these bounds only one
/// way (a point can lower the first and the chunk's end, raise the newest), removals only make
/// a series less ready; so "not ready" is decided from them and the appended range alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SealWait {
    /// Newest point of the series (head or chunks) at the look.
    pub(super) newest: i64,
    /// First head point (`i64::MAX`: none).
    pub(super) first: i64,
    /// Something is ready once `cutoff` passes this: the first head point when none was
    /// older than the cutoff, else the last point of the first chunk's worth (`i64::MAX`:
    /// fewer points than a chunk).
    pub(super) ready_after: i64,
    /// Start of the next chunk after the first head point (`i64::MAX`: none).
    pub(super) next_chunk: i64,
}

impl SealWait {
    /// Whether points in `[lo, hi]` appended since the look may have made something ready.
    fn must_look(&self, (lo, hi): (i64, i64), policy: &SealPolicy) -> bool {
        let cutoff = self.newest.max(hi).saturating_sub(policy.seal_age_ms);
        cutoff > self.ready_after.min(lo)
            || cutoff.saturating_sub(policy.max_wait_ms) > self.first.min(lo)
            || self.next_chunk <= cutoff
    }

    /// The same look with points in `[lo, hi]` appended since.
    fn with(self, (lo, hi): (i64, i64)) -> Self {
        Self {
            newest: self.newest.max(hi),
            first: self.first.min(lo),
            ready_after: self.ready_after.min(lo),
            next_chunk: self.next_chunk,
        }
    }
}

/// An appended range that makes the sealer look whatever its last look found.
const LOOK: (i64, i64) = (i64::MIN, i64::MAX);

/// The sets, behind the store's mutex.
#[derive(Debug, Default)]
pub(super) struct Workset {
    /// Appended to since the sealer last finished them, with the oldest and newest timestamp
    /// appended meanwhile.
    unsealed: HashMap<SeriesId, (i64, i64)>,
    /// Series the sealer found nothing ready in at its last look.
    seal_waits: HashMap<SeriesId, SealWait>,
    /// Appended to since the maintenance pass last finished them, with the oldest timestamp
    /// appended meanwhile (a late point may move an expiry earlier).
    appended: HashMap<SeriesId, i64>,
    /// When each series next needs maintenance although nothing is appended to it; absent:
    /// due now.
    due: HashMap<SeriesId, Due>,
    /// The same due times ordered by (time, series), kept between passes: a pass takes the
    /// ones that have come from its front instead of scanning every series.
    due_order: BTreeSet<(i64, SeriesId)>,
    /// Every series is due now (start, a new retention policy, a device's kind changed).
    all_due: bool,
}

impl Workset {
    /// A workset where every series needs a look from both the sealer and maintenance.
    pub(super) fn all(series: impl IntoIterator<Item = SeriesId>) -> Self {
        Self {
            unsealed: series.into_iter().map(|sid| (sid, LOOK)).collect(),
            all_due: true,
            ..Self::default()
        }
    }

    /// Points were appended to `sid`, from `oldest_ts` to `newest_ts`.
    pub(super) fn appended(&mut self, sid: SeriesId, oldest_ts: i64, newest_ts: i64) {
        self.unsealed
            .entry(sid)
            .and_modify(|(lo, hi)| (*lo, *hi) = ((*lo).min(oldest_ts), (*hi).max(newest_ts)))
            .or_insert((oldest_ts, newest_ts));
        self.written_around_the_head(sid, oldest_ts);
    }

    /// Rows were written to `sid` from `oldest_ts` on without points in its head (an edge's
    /// minute rollups): maintenance must look at it (their retention), the sealer need not.
    pub(super) fn written_around_the_head(&mut self, sid: SeriesId, oldest_ts: i64) {
        self.appended
            .entry(sid)
            .and_modify(|t| *t = (*t).min(oldest_ts))
            .or_insert(oldest_ts);
    }

    /// Every series is due for maintenance at the next pass.
    pub(super) fn make_all_due(&mut self) {
        self.all_due = true;
    }

    /// Takes the series the sealer must look at, in id order: those appended to, except
    /// those whose appends leave them not ready by their [`SealWait`] (kept waiting).
    pub(super) fn take_unsealed(&mut self, policy: &SealPolicy) -> Vec<SeriesId> {
        let mut ids = Vec::with_capacity(self.unsealed.len());
        for (sid, range) in self.unsealed.drain() {
            match self.seal_waits.get_mut(&sid) {
                Some(w) if !w.must_look(range, policy) => *w = w.with(range),
                _ => {
                    self.seal_waits.remove(&sid);
                    ids.push(sid);
                }
            }
        }
        ids.sort_unstable();
        ids
    }

    /// Gives back series the sealer did not finish (it was stopped or its budget spent).
    pub(super) fn still_unsealed(&mut self, ids: &[SeriesId]) {
        for &sid in ids {
            self.seal_waits.remove(&sid);
            self.unsealed.entry(sid).or_insert(LOOK);
        }
    }

    /// The sealer looked at `sid` and found nothing ready.
    pub(super) fn seal_wait(&mut self, sid: SeriesId, wait: SealWait) {
        self.seal_waits.insert(sid, wait);
    }

    /// The series maintenance must look at `now`, in id order: every series when all are due
    /// (`all` lists them), else those whose due time has come (from the front of the due
    /// order), and those appended to unless their [`Due::after_append`] says they are not due
    /// yet (then only their due time moves). Costs what is appended and due, not the number
    /// of series.
    pub(super) fn due(&mut self, now: i64, all: impl FnOnce() -> Vec<SeriesId>) -> Vec<SeriesId> {
        let mut ids: Vec<SeriesId> = if std::mem::take(&mut self.all_due) {
            self.due.clear();
            self.due_order.clear();
            all()
        } else {
            let mut moved = Vec::new();
            let due = &self.due;
            self.appended.retain(|sid, oldest| {
                match due.get(sid).and_then(|d| d.after_append(*oldest, now)) {
                    Some(d) if d.at > now => {
                        moved.push((*sid, d));
                        false
                    }
                    _ => true,
                }
            });
            for (sid, d) in moved {
                self.set_due(sid, d);
            }
            self.appended
                .keys()
                .copied()
                .chain(
                    self.due_order
                        .range(..=(now, SeriesId::MAX))
                        .map(|&(_, sid)| sid),
                )
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Records `sid`'s due time, in both the map and the order. The order is touched only
    /// when the time moves: at 1 Hz an append usually leaves it where it was (its roll).
    fn set_due(&mut self, sid: SeriesId, d: Due) {
        match self.due.insert(sid, d) {
            Some(old) if old.at == d.at => return,
            Some(old) => {
                self.due_order.remove(&(old.at, sid));
            }
            None => {}
        }
        self.due_order.insert((d.at, sid));
    }

    /// Forgets `sid`'s due time (it is due now); returns it.
    fn clear_due(&mut self, sid: SeriesId) -> Option<Due> {
        let old = self.due.remove(&sid)?;
        self.due_order.remove(&(old.at, sid));
        Some(old)
    }

    /// Maintenance starts on `sid`: returns the oldest timestamp appended since its last
    /// visit, and when it was due (`None`: its state is unknown, look at everything).
    pub(super) fn visiting(&mut self, sid: SeriesId) -> (Option<i64>, Option<Due>) {
        (self.appended.remove(&sid), self.clear_due(sid))
    }

    /// Maintenance finished `sid`.
    pub(super) fn finished(&mut self, sid: SeriesId, due: Due) {
        self.set_due(sid, due);
    }

    /// Maintenance stopped before finishing these: they are looked at in full next pass.
    pub(super) fn unfinished(&mut self, ids: &[SeriesId]) {
        for &sid in ids {
            self.clear_due(sid);
            self.appended.entry(sid).or_insert(i64::MAX);
        }
    }

    /// The series is gone (its device erased).
    pub(super) fn remove(&mut self, sid: SeriesId) {
        self.unsealed.remove(&sid);
        self.seal_waits.remove(&sid);
        self.appended.remove(&sid);
        self.clear_due(sid);
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
            rolled_until: None,
        };
        let policy = SealPolicy::default();
        let mut w = Workset::all([3, 1, 2]);
        assert_eq!(w.take_unsealed(&policy), [1, 2, 3]);
        assert!(w.take_unsealed(&policy).is_empty());
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
        w.appended(2, 10, 10);
        w.appended(2, 5, 5);
        assert_eq!(w.take_unsealed(&policy), [2]);
        // Never rolled up: back once the first minute appended has settled, not before.
        assert_eq!(w.due(101, Vec::new), [1]);
        let settled = MINUTE + SETTLE_MS;
        assert_eq!(w.due(settled, Vec::new), [1, 2, 3]);
        let moved = Due {
            at: settled,
            expiry: HOUR + 1,
            raw_ms: 1,
            rolled_until: None,
        };
        assert_eq!(w.visiting(2), (None, Some(moved)));
        w.make_all_due();
        assert_eq!(w.due(0, || vec![1, 2, 3]), [1, 2, 3]);
        assert_eq!(w.visiting(1), (None, None));
    }

    #[test]
    fn a_due_time_that_moves_or_goes_leaves_nothing_behind_in_the_order() {
        let due = |at| Due {
            at,
            expiry: i64::MAX,
            raw_ms: 1_000 * HOUR,
            rolled_until: Some(0),
        };
        let roll = ROLL_BATCH_MS + SETTLE_MS;
        let mut w = Workset::default();
        // Due early; an append after what is rolled up moves it to its roll, later.
        w.finished(1, due(10));
        w.appended(1, 5, 5);
        assert!(w.due(roll - 1, Vec::new).is_empty(), "not at its old time");
        assert_eq!(w.due(roll, Vec::new), [1]);
        // Visited: due now until finished again, then only at its new time.
        assert_eq!(w.visiting(1).1.map(|d| d.at), Some(roll));
        w.finished(1, due(500));
        assert!(w.due(499, Vec::new).is_empty());
        // Erased, or given back unfinished: its due time goes with it.
        w.finished(2, due(100));
        w.remove(2);
        w.unfinished(&[1]);
        assert_eq!(
            w.due(1_000, Vec::new),
            [1],
            "unfinished: looked at again, once"
        );
        w.visiting(1);
        assert!(w.due(1_000, Vec::new).is_empty());
        // Many series: only those due come out, in id order.
        for sid in (10..1_000).rev() {
            w.finished(sid, due(sid * 10));
        }
        assert_eq!(w.due(120, Vec::new), [10, 11, 12]);
    }

    const MIN: i64 = 60_000;

    #[test]
    fn the_sealer_skips_a_series_until_its_appends_may_have_made_something_ready() {
        let policy = SealPolicy {
            seal_age_ms: 10 * MIN,
            chunk_points: 1000,
            max_wait_ms: 60 * MIN,
        };
        let mut w = Workset::default();
        // Looked at: head from minute 0 to 20, the cutoff at minute 10 has not passed the
        // chunk's worth ending at minute 16.
        let wait = SealWait {
            newest: 20 * MIN,
            first: 0,
            ready_after: 16 * MIN,
            next_chunk: i64::MAX,
        };
        w.seal_wait(7, wait);
        w.appended(7, 20 * MIN + 1000, 24 * MIN);
        assert!(
            w.take_unsealed(&policy).is_empty(),
            "cutoff 14 min < 16 min"
        );
        // The appends are folded in: the next ones are judged with them.
        w.appended(7, 24 * MIN + 1000, 26 * MIN);
        assert!(
            w.take_unsealed(&policy).is_empty(),
            "cutoff 16 min, not past it"
        );
        w.appended(7, 26 * MIN + 1000, 26 * MIN + 1001);
        assert_eq!(w.take_unsealed(&policy), [7], "cutoff past the chunk's end");
        // A late point before the first one may belong in a chunk: looked at at once; one
        // before the chunk's end may end the chunk sooner.
        w.seal_wait(7, wait);
        w.appended(7, -5 * MIN, -5 * MIN);
        assert_eq!(w.take_unsealed(&policy), [7]);
        w.seal_wait(7, wait);
        w.appended(7, 9 * MIN, 9 * MIN);
        assert_eq!(w.take_unsealed(&policy), [7]);
        // The first point waited long enough (cutoff − max wait passes it).
        w.seal_wait(
            7,
            SealWait {
                ready_after: i64::MAX,
                ..wait
            },
        );
        w.appended(7, 69 * MIN, 70 * MIN);
        assert!(
            w.take_unsealed(&policy).is_empty(),
            "waited exactly max wait"
        );
        w.appended(7, 70 * MIN + 1, 70 * MIN + 1);
        assert_eq!(w.take_unsealed(&policy), [7]);
        // The next chunk closes the gap once the cutoff reaches it.
        w.seal_wait(
            7,
            SealWait {
                ready_after: i64::MAX,
                next_chunk: 15 * MIN,
                ..wait
            },
        );
        w.appended(7, 24 * MIN, 25 * MIN);
        assert_eq!(w.take_unsealed(&policy), [7]);
        // A series given back unfinished is looked at whatever it waited for.
        w.seal_wait(7, wait);
        w.still_unsealed(&[7]);
        assert_eq!(w.take_unsealed(&policy), [7]);
    }

    #[test]
    fn an_append_after_what_is_rolled_up_moves_the_due_time_without_a_look() {
        let prev = Due {
            at: 40 * MIN,
            expiry: 1000 * MIN,
            raw_ms: 600 * MIN,
            rolled_until: Some(20 * MIN),
        };
        let roll = 20 * MIN + ROLL_BATCH_MS + SETTLE_MS;
        // A point may expire before what was the oldest: the hour after it, plus raw_ms.
        let d = prev.after_append(25 * MIN, 26 * MIN).unwrap();
        assert_eq!(d.expiry, 60 * MIN + 600 * MIN);
        assert!(
            prev.after_append(19 * MIN, 26 * MIN).is_none(),
            "late: marked dirty"
        );
        assert!(
            prev.after_append(i64::MAX, 26 * MIN).is_none(),
            "unknown oldest"
        );
        let expiring = Due {
            expiry: 26 * MIN,
            ..prev
        };
        assert!(expiring.after_append(25 * MIN, 26 * MIN).is_none());
        // Never rolled up: due once the first minute appended has settled (or sooner, as
        // before), without a look.
        let unrolled = Due {
            rolled_until: None,
            ..prev
        };
        let d = unrolled.after_append(25 * MIN, 26 * MIN).unwrap();
        assert_eq!(d.at, 26 * MIN + SETTLE_MS);
        let soon = Due {
            at: 30 * MIN,
            ..unrolled
        };
        assert_eq!(soon.after_append(25 * MIN, 26 * MIN).unwrap().at, 30 * MIN);

        let mut w = Workset::default();
        w.finished(4, prev);
        w.appended(4, 25 * MIN, 26 * MIN);
        assert!(
            w.due(roll - 1, Vec::new).is_empty(),
            "not due until its roll"
        );
        assert_eq!(w.due(roll, Vec::new), [4]);
        w.finished(4, prev);
        w.appended(4, 19 * MIN, 26 * MIN);
        assert_eq!(w.due(26 * MIN, Vec::new), [4], "a late point is looked at");
    }
}
