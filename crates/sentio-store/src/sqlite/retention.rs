//! Retention and the disk budget: the maintenance pass ([`RetentionStore::maintain`]).
//!
//! Per series, in short transactions (the connection is released between them, so ingest
//! interleaves): roll up what arrived (`rollup.rs`), remove rollup rows past their retention,
//! then remove raw points past the series' retention (device, else kind, else global) but never
//! points not yet rolled up. Raw points are removed up to an hour boundary (`raw_before`; under
//! the budget, a minute boundary), a straddling chunk re-encoded without them. A series with
//! nothing to do costs a few reads, no write transaction; maintenance transactions skip their
//! own fsync (as sealing does). While the data directory is over 95 % of the disk
//! budget, the oldest raw points of any series go first (rollups stay) until it is under 90 %.

use std::path::Path;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::DeviceId;

use super::cached_tx::CachedTx;
use super::rollup::{self, HOUR, MINUTE, SETTLE_MS, floor};
use super::rollup_pack;

/// A day in ms.
const DAY: i64 = 86_400_000;
use super::workset::{Due, SeriesId};
use super::{Inner, SqliteStore, database_bytes};
use crate::chunk;
use crate::{
    Maintenance, MaintenanceReport, Result, RetentionPolicy, RetentionStore, StorageStatus,
    StoreError,
};

/// Key of the retention policy (JSON) in `meta`.
const POLICY_KEY: &str = "retention_policy";
/// Chunks removed per retention transaction of one series.
const CHUNKS_PER_STEP: usize = 32;
/// Oldest chunks removed per transaction while over the disk budget.
pub(super) const BUDGET_CHUNKS_PER_STEP: usize = 16;
/// Rollup rows removed per transaction of one series and table.
const ROLLUP_ROWS_PER_STEP: i64 = 5_000;
/// Write steps per maintenance call, over every series (in batches of many series each,
/// `Batch`). Each call ends with `vacuum::reclaim` (an incremental vacuum and a checkpoint,
/// holding the connection in one go): at 5,000 steps the free pages of ten times the work
/// were reclaimed at once, a stall of seconds for the appends waiting behind it.
const STEPS_PER_PASS: usize = 500;
/// Over this share of the budget, the oldest raw points are removed ...
const BUDGET_HIGH: f64 = 0.95;
/// ... until the database is under this share.
const BUDGET_LOW: f64 = 0.90;

fn load_policy(conn: &Connection) -> Result<RetentionPolicy> {
    // Read at every maintenance pass: a cached statement.
    let json: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([POLICY_KEY], |r| r.get(0))
        .optional()?;
    match json {
        None => Ok(RetentionPolicy::default()),
        Some(j) => serde_json::from_slice(&j)
            .map_err(|e| StoreError::Corrupt(format!("retention policy: {e}"))),
    }
}

/// Removes the raw points of `[from, to)` from both tiers: head points are removed, chunks inside
/// the range deleted, a chunk straddling a bound re-encoded with the points outside. Returns
/// the number of points removed.
pub(super) fn remove_raw_range(conn: &Connection, sid: i64, from: i64, to: i64) -> Result<u64> {
    let overlapping: Vec<(i64, i64, i64, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, start_ts, end_ts, count FROM chunks \
             WHERE series_id = ?1 AND start_ts < ?3 AND end_ts >= ?2 ORDER BY start_ts",
        )?;
        stmt.query_map(params![sid, from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut removed = 0u64;
    for (id, start, end, count) in overlapping {
        if start >= from && end < to {
            conn.prepare_cached("DELETE FROM chunks WHERE id = ?1")?
                .execute([id])?;
            removed += count as u64;
            continue;
        }
        let data: Vec<u8> = conn
            .prepare_cached("SELECT data FROM chunks WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let points = chunk::decode(&data)?;
        let kept: Vec<(i64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.0 < from || p.0 >= to)
            .collect();
        removed += (points.len() - kept.len()) as u64;
        conn.prepare_cached("DELETE FROM chunks WHERE id = ?1")?
            .execute([id])?;
        // The points on either side of the hole stay in one chunk: ranges still never overlap.
        if !kept.is_empty() {
            let c = chunk::encode(&kept)?;
            let s = &c.stats;
            conn.prepare_cached(
                "INSERT INTO chunks (series_id, start_ts, end_ts, count, min, max, sum, first, \
                 last, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                sid, s.start_ts, s.end_ts, s.count, s.min, s.max, s.sum, s.first, s.last, c.data
            ])?;
        }
    }
    removed += super::head::remove(conn, sid, from, to)?;
    Ok(removed)
}

/// One transaction removing raw points of series `sid` before `target` (a minute boundary),
/// never past what is rolled up and at most about [`CHUNKS_PER_STEP`] chunks. Returns points
/// removed and whether more is left before `target`.
pub(super) fn expire_raw_step(
    conn: &mut Connection,
    sid: i64,
    target: i64,
    max_chunks: usize,
) -> Result<(u64, bool)> {
    let m = rollup::marks(conn, sid)?;
    let Some(rolled) = m.rolled_until else {
        return Ok((0, false));
    };
    let cap = target.min(rolled);
    if cap <= m.raw_before {
        return Ok((0, false));
    }
    let tx = CachedTx::begin(conn)?;
    let mut m = rollup::marks(&tx, sid)?;
    let starts: Vec<i64> = {
        let mut stmt = tx.prepare_cached(
            "SELECT start_ts FROM chunks WHERE series_id = ?1 AND start_ts < ?2 \
             ORDER BY start_ts LIMIT ?3",
        )?;
        stmt.query_map(params![sid, cap, max_chunks as i64 + 1], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let cut = match starts.get(max_chunks) {
        Some(&s) if floor(s, MINUTE) > m.raw_before => floor(s, MINUTE),
        _ => cap,
    };
    let removed = remove_raw_range(&tx, sid, i64::MIN, cut)?;
    m.raw_before = cut;
    rollup::save_marks(&tx, sid, &m)?;
    tx.commit()?;
    Ok((removed, cut < cap))
}

/// Bytes of every file under `dir`.
/// The broker's folder in the data directory (its sessions and queues).
const BROKER_DIR: &str = "mqtt";

/// The data directory's bytes: in all, and of them the database file, its write-ahead log and
/// the broker's folder.
fn data_parts(dir: &Path) -> (u64, u64, u64, u64) {
    let (mut all, mut db, mut log, mut broker) = (0, 0, 0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        let bytes = if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            allocated_bytes(&m)
        };
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == super::DB_FILE {
            db += bytes;
        } else if name == format!("{}-wal", super::DB_FILE) {
            log += bytes;
        } else if name == BROKER_DIR {
            broker += bytes;
        }
        all += bytes;
    }
    (all, db, log, broker)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => allocated_bytes(&m),
            Err(_) => 0,
        })
        .sum()
}

/// The disk space a file takes, as `du` counts it: a preallocated, sparse file (the broker's
/// queue-store journal reserves 64 MiB it has not written) counts only what is written.
#[cfg(unix)]
fn allocated_bytes(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::blocks(m) * 512
}

#[cfg(not(unix))]
fn allocated_bytes(m: &std::fs::Metadata) -> u64 {
    m.len()
}

fn free_bytes(conn: &Connection) -> Result<u64> {
    let pragma = |name: &str| -> Result<u64> {
        Ok(conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))? as u64)
    };
    Ok(pragma("freelist_count")? * pragma("page_size")?)
}

/// The device and kind a series' retention depends on.
struct SeriesRow {
    device: String,
    kind: Option<String>,
}

impl Inner {
    pub(super) fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn budget(&self) -> Option<u64> {
        Some(self.budget.load(Ordering::Relaxed)).filter(|b| *b > 0)
    }

    /// Live bytes of the database: its file and log minus its free pages. What the budget
    /// evicts raw points for: the data directory's other files (the broker's state, above
    /// all) are never a reason to remove telemetry; the broker keeps to the budget by
    /// refusing new retained data instead.
    fn live_bytes(&self, conn: &Connection) -> Result<u64> {
        Ok(database_bytes(&self.path).saturating_sub(free_bytes(conn)?))
    }

    /// The connection for background work: taken only once no foreground call waits for it
    /// (or after [`LET_IN_MAX`]). A std mutex lets the thread that just released it take it
    /// again before a woken waiter runs, so a pass taking it back between its steps would
    /// otherwise keep appends and queries out for as long as it has work.
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.let_foreground_in();
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a foreground call (an append, a query) waits for the connection.
    fn foreground_waits(&self) -> bool {
        self.conn_waiters.load(Ordering::SeqCst) > 0
    }

    /// Sleeps while a foreground call waits for the connection, at most [`LET_IN_MAX`]: woken
    /// by the last of them taking it ([`Inner::foreground_in`]), not polling. The count is
    /// read under `let_in`'s lock, which the waker takes to notify, so no wake-up is lost
    /// between the read and the sleep.
    fn let_foreground_in(&self) {
        if !self.foreground_waits() {
            return;
        }
        let deadline = Instant::now() + LET_IN_MAX;
        let (lock, woken) = &self.let_in;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.foreground_waits() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = woken
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The last waiting foreground call has the connection: wakes background work waiting to
    /// let it in.
    pub(super) fn foreground_in(&self) {
        let (lock, woken) = &self.let_in;
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        woken.notify_all();
    }
}

/// The longest background work waits for foreground calls to take the connection before it
/// takes it anyway (they keep coming at a flat-out load: the pass still progresses).
const LET_IN_MAX: Duration = Duration::from_millis(50);

/// The longest a batch of maintenance steps holds the store's connection before it commits
/// and gives it back, when no append or query waits for it (one that waits ends the batch at
/// the next step).
const HOLD: Duration = Duration::from_millis(4);

/// Maintenance steps of many series in ONE transaction: the connection is taken at the first
/// step and given back (committed) once it has been held [`HOLD`], so a transaction's fixed
/// cost (locks, the log's frame header, the commit) is paid per batch, not per series and
/// step, while an append waits at most about one step: a batch commits at the first step
/// boundary where a foreground call waits for the connection, and the next batch takes it
/// only after that call has (`Inner::lock`). Each step is a savepoint inside
/// it (`CachedTx`): a failed step undoes itself, a failed batch all of its steps.
///
/// Like sealing, it only derives or removes data that its marks describe atomically, so it
/// needs no fsync of its own (`NORMAL`): a power cut loses at most the batch, redone by the
/// next pass. The series finished in a batch are told to the workset only once it commits:
/// a batch rolled back leaves them due.
struct Batch<'a> {
    inner: &'a Inner,
    hold: Duration,
    /// The connection, with the batch's transaction open.
    open: Option<(MutexGuard<'a, Connection>, Instant)>,
    /// Series finished in the open transaction, in order, with their next due time.
    finished: Vec<(SeriesId, Due)>,
    /// Series finished in committed batches so far.
    committed: usize,
    /// Batches committed, and the longest one held the connection.
    commits: usize,
    longest_hold: Duration,
    /// Batches committed early because a foreground call waited.
    yields: usize,
}

impl<'a> Batch<'a> {
    fn new(inner: &'a Inner, hold: Duration) -> Self {
        Self {
            inner,
            hold,
            open: None,
            finished: Vec::new(),
            committed: 0,
            commits: 0,
            longest_hold: Duration::ZERO,
            yields: 0,
        }
    }

    /// The connection inside the batch's transaction (begun now if none is open).
    fn conn(&mut self) -> Result<&mut Connection> {
        if self.open.is_none() {
            let conn = self.inner.lock();
            let start = Instant::now();
            // Not inside a transaction: SQLite refuses to change it there.
            conn.prepare_cached("PRAGMA synchronous = NORMAL")?
                .execute([])?;
            if let Err(e) = conn
                .prepare_cached("BEGIN DEFERRED")
                .and_then(|mut s| s.execute([]))
            {
                conn.prepare_cached("PRAGMA synchronous = FULL")?
                    .execute([])?;
                return Err(e.into());
            }
            self.open = Some((conn, start));
        }
        Ok(&mut self.open.as_mut().expect("opened above").0)
    }

    /// Series `sid` is finished (in the open transaction, if any).
    fn finish(&mut self, sid: SeriesId, due: Due) {
        if self.open.is_some() {
            self.finished.push((sid, due));
        } else {
            // Nothing written for it since the last commit: nothing to wait for.
            self.tell(&[(sid, due)]);
            self.committed += 1;
        }
    }

    /// Commits when the connection has been held long enough, or an append or query waits
    /// for it (between steps).
    fn pause_point(&mut self) -> Result<()> {
        match &self.open {
            Some((_, since)) if since.elapsed() >= self.hold => self.commit(),
            Some(_) if self.inner.foreground_waits() => {
                self.yields += 1;
                self.commit()
            }
            _ => Ok(()),
        }
    }

    /// Commits the open transaction (if any) and gives the connection back.
    fn commit(&mut self) -> Result<()> {
        let Some((conn, since)) = self.open.take() else {
            return Ok(());
        };
        let committed = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(StoreError::from);
        if committed.is_err() {
            // Put it back for `Drop` to roll back.
            self.open = Some((conn, since));
            return committed.map(drop);
        }
        conn.prepare_cached("PRAGMA synchronous = FULL")?
            .execute([])?;
        self.longest_hold = self.longest_hold.max(since.elapsed());
        self.commits += 1;
        drop(conn);
        let finished = std::mem::take(&mut self.finished);
        self.tell(&finished);
        self.committed += finished.len();
        Ok(())
    }

    /// The workset learns when these series are next due; the pass resumes after the last.
    fn tell(&self, finished: &[(SeriesId, Due)]) {
        let mut work = self.inner.workset();
        for &(sid, due) in finished {
            work.finished(sid, due);
        }
        drop(work);
        if let Some(&(last, _)) = finished.last() {
            *self
                .inner
                .maint_cursor
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = last;
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Not committed (an error on the way): undo the batch; its series stay due.
        if let Some((conn, _)) = self.open.take() {
            let undone = conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]))
                .and_then(|_| conn.prepare_cached("PRAGMA synchronous = FULL"))
                .and_then(|mut s| s.execute([]));
            if let Err(e) = undone {
                tracing::warn!(error = %e, "rolling back a maintenance batch failed");
            }
        }
    }
}

/// What a pass did besides its report (for tests and the benchmark's figures).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PassStats {
    /// Series visited and finished.
    pub(super) finished: usize,
    /// Of them, the ones looked at in full (retention, packing, next due time read back).
    pub(super) full_looks: usize,
    /// Write steps, and the transactions (batches) that committed them.
    pub(super) steps: usize,
    pub(super) commits: usize,
    /// Of the transactions, the ones committed early for a waiting append or query.
    pub(super) yields: usize,
}

fn maintain_blocking(inner: &Inner, now: i64) -> Result<MaintenanceReport> {
    let (report, stats) = maintain_pass(inner, now, HOLD)?;
    tracing::debug!(
        series = stats.finished,
        full_looks = stats.full_looks,
        steps = stats.steps,
        transactions = stats.commits,
        yielded = stats.yields,
        longest_hold_us = report.longest_step_us,
        "maintenance pass"
    );
    Ok(report)
}

/// One maintenance pass as of `now`, its batches each holding the connection about `hold`.
pub(super) fn maintain_pass(
    inner: &Inner,
    now: i64,
    hold: Duration,
) -> Result<(MaintenanceReport, PassStats)> {
    let policy = load_policy(&inner.lock())?;
    // Only the series with something to do: appended to, or due (`workset.rs`).
    let mut ids = inner.workset().due(now, || {
        let known = inner.series_ids.lock().unwrap_or_else(|p| p.into_inner());
        known.values().flat_map(|m| m.values().copied()).collect()
    });
    // Resume after the series handled last, then wrap around.
    let cursor = *inner.maint_cursor.lock().unwrap_or_else(|p| p.into_inner());
    let split = ids.partition_point(|&id| id <= cursor);
    ids.rotate_left(split);

    let mut pass = Pass {
        inner,
        now,
        policy: &policy,
        target: floor(now - SETTLE_MS, MINUTE),
        // Expiry moves by whole hours (1-hour rollups: days): one step per series each
        // time, not one per pass.
        rollup_cuts: (
            floor(now - policy.rollup_1m_ms, HOUR),
            floor(now - policy.rollup_1h_ms, DAY),
        ),
        steps: 0,
        full_looks: 0,
        report: MaintenanceReport::default(),
        batch: Batch::new(inner, hold),
    };
    let visited = (|| -> Result<()> {
        for &sid in &ids {
            if inner.interrupted() || pass.steps >= STEPS_PER_PASS {
                // Stopping, or this pass's share is spent: the rest is due next time.
                return Ok(());
            }
            match pass.series(sid)? {
                Some(due) => pass.batch.finish(sid, due),
                None => return Ok(()),
            }
            pass.batch.pause_point()?;
        }
        Ok(())
    })()
    .and_then(|()| pass.batch.commit());
    let finished = pass.batch.committed;
    // Whatever was not finished and committed (stopped, out of steps, or failed: its batch
    // rolled back) is due at the next pass.
    let stats = PassStats {
        finished,
        full_looks: pass.full_looks,
        steps: pass.steps,
        commits: pass.batch.commits,
        yields: pass.batch.yields,
    };
    let longest_hold = pass.batch.longest_hold;
    let Pass {
        mut steps,
        mut report,
        batch,
        ..
    } = pass;
    drop(batch);
    inner.workset().unfinished(&ids[finished..]);
    visited?;
    report.longest_step_us = report.longest_step_us.max(longest_hold.as_micros() as u64);
    report.evicted_points = enforce_budget(inner, &mut steps)?;
    // Pages freed by sealing, expiry and erasure go back to the file system.
    super::vacuum::reclaim(&inner.lock())?;
    report.more |= steps >= STEPS_PER_PASS;
    Ok((report, stats))
}

/// One maintenance pass over the series that have work.
struct Pass<'a> {
    inner: &'a Inner,
    now: i64,
    policy: &'a RetentionPolicy,
    /// Rollups go up to here (a minute boundary, [`SETTLE_MS`] ago).
    target: i64,
    /// Where 1-minute and 1-hour rollups expire.
    rollup_cuts: (i64, i64),
    /// Write steps so far.
    steps: usize,
    /// Series looked at in full so far.
    full_looks: usize,
    report: MaintenanceReport,
    batch: Batch<'a>,
}

impl Pass<'_> {
    /// Rolls up, expires and packs one series, doing only what is due. Returns when it is
    /// next due, or `None` when the pass stopped before finishing it.
    fn series(&mut self, sid: i64) -> Result<Option<Due>> {
        let inner = self.inner;
        let (appended, prev) = inner.workset().visiting(sid);
        let steps_before = self.steps;
        let mut rolled_until;
        let target = self.target;
        loop {
            if inner.interrupted() || self.steps >= STEPS_PER_PASS {
                self.report.more = !inner.interrupted();
                return Ok(None);
            }
            let r = rollup::roll_step(self.batch.conn()?, sid, target)?;
            self.steps += usize::from(r.wrote);
            self.report.rolled_buckets += r.buckets;
            rolled_until = r.rolled_until;
            if let Some(ru) = r.rolled_until {
                // Before the batch commits, while appends still wait: a point appended after
                // it into a rolled minute is marked late.
                inner.rolled_max.fetch_max(ru, Ordering::Relaxed);
            }
            if !r.more {
                break;
            }
            self.batch.pause_point()?;
        }
        let rolled = self.steps > steps_before;
        // A series seen in full before, appended to, whose data is not yet due to expire, only
        // needed its rollup: most visits of a series that is written to end here, after the
        // rollup's two reads.
        if let (Some(prev), Some(oldest), false) = (prev, appended, rolled)
            && oldest != i64::MAX
            && prev.expiry > self.now
        {
            // A late point may expire before what was the oldest.
            let expiry = prev.expiry.min(floor(oldest, HOUR) + HOUR + prev.raw_ms);
            // Never rolled up: the earliest its oldest minute (before what was appended since,
            // or in it) settles; `prev.at` is never after the former.
            let roll = match rolled_until {
                Some(r) => r + rollup::ROLL_BATCH_MS + SETTLE_MS,
                None => prev.at.min(floor(oldest, MINUTE) + MINUTE + SETTLE_MS),
            };
            return Ok(Some(Due {
                at: expiry.min(roll),
                expiry,
                raw_ms: prev.raw_ms,
                rolled_until,
            }));
        }
        self.full_looks += 1;
        let Some(s) = series_row(self.batch.conn()?, sid)? else {
            return Ok(Some(Due {
                at: i64::MAX,
                expiry: i64::MAX,
                raw_ms: 0,
                rolled_until: None,
            })); // erased meanwhile
        };
        let raw_ms = self.policy.raw_for(&s.device, s.kind.as_deref());
        let raw_cut = floor(self.now.saturating_sub(raw_ms), HOUR);
        let cuts = self.rollup_cuts;
        loop {
            let (n, more) =
                rollup::expire_rollups(self.batch.conn()?, sid, cuts, ROLLUP_ROWS_PER_STEP)?;
            self.steps += usize::from(more || n > 0);
            self.report.expired_rollups += n;
            if !more {
                break;
            }
            if self.steps >= STEPS_PER_PASS {
                self.report.more = true;
                return Ok(None);
            }
            self.batch.pause_point()?;
        }
        loop {
            let (n, more) = expire_raw_step(self.batch.conn()?, sid, raw_cut, CHUNKS_PER_STEP)?;
            self.steps += usize::from(more || n > 0);
            self.report.expired_points += n;
            if !more {
                break;
            }
            if self.steps >= STEPS_PER_PASS {
                self.report.more = true;
                return Ok(None);
            }
            self.batch.pause_point()?;
        }
        // Settled hours of 1-minute rows join their day's packed row (an hour after they are
        // rolled up).
        loop {
            let conn = self.batch.conn()?;
            let settled = rollup::marks(conn, sid)?.rolled_until;
            let Some(settled) = settled else { break };
            if !rollup_pack::pack_step(conn, sid, settled - HOUR)? {
                break;
            }
            self.steps += 1;
            if self.steps >= STEPS_PER_PASS {
                self.report.more = true;
                return Ok(None);
            }
            self.batch.pause_point()?;
        }
        Ok(Some(next_due(
            self.batch.conn()?,
            sid,
            self.policy,
            raw_ms,
        )?))
    }
}

/// The device and kind of a series (its retention depends on them).
fn series_row(conn: &Connection, sid: i64) -> Result<Option<SeriesRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.device, d.kind FROM series s LEFT JOIN devices d ON d.id = s.device \
             WHERE s.id = ?1",
        )?
        .query_row([sid], |r| {
            Ok(SeriesRow {
                device: r.get(0)?,
                kind: r.get(1)?,
            })
        })
        .optional()?)
}

/// When series `sid`, just maintained, next has something to do if nothing is appended to it
/// (appends bring it back sooner): the earliest of its next rollup (raw points after what is
/// rolled up, once a batch of them has settled), and the moments its oldest raw point, oldest
/// 1-minute row and oldest 1-hour row pass their retention.
fn next_due(conn: &Connection, sid: i64, policy: &RetentionPolicy, raw_ms: i64) -> Result<Due> {
    let m = rollup::marks(conn, sid)?;
    let roll = match m.rolled_until {
        Some(r) => rollup::next_raw(conn, sid, r)?
            .map(|t| (r + rollup::ROLL_BATCH_MS).max(floor(t, MINUTE) + MINUTE) + SETTLE_MS),
        None => rollup::oldest_raw(conn, sid)?.map(|t| floor(t, MINUTE) + MINUTE + SETTLE_MS),
    };
    let min_of = |sql: &str| -> Result<Option<i64>> {
        Ok(conn.prepare_cached(sql)?.query_row([sid], |r| r.get(0))?)
    };
    // Oldest kept data is at or after its tier's expiry mark (a packed day starts before it).
    let raw =
        rollup::oldest_raw(conn, sid)?.map(|t| floor(t.max(m.raw_before), HOUR) + HOUR + raw_ms);
    let m1 = [
        min_of("SELECT MIN(bucket) FROM rollup_1m WHERE series_id = ?1")?,
        min_of("SELECT MIN(day) FROM rollup_1m_days WHERE series_id = ?1")?,
    ]
    .into_iter()
    .flatten()
    .min()
    .map(|b| floor(b.max(m.m1_before), HOUR) + HOUR + policy.rollup_1m_ms);
    let h1 = min_of("SELECT MIN(bucket) FROM rollup_1h WHERE series_id = ?1")?
        .map(|b| floor(b.max(m.h1_before), DAY) + DAY + policy.rollup_1h_ms);
    let expiry = [raw, m1, h1]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(i64::MAX);
    Ok(Due {
        at: roll.unwrap_or(i64::MAX).min(expiry),
        expiry,
        raw_ms,
        rolled_until: m.rolled_until,
    })
}

/// While over the budget's high mark, removes the oldest raw points (of the series holding the
/// oldest chunk, up to what is rolled up) until under the low mark. Returns points removed.
fn enforce_budget(inner: &Inner, steps: &mut usize) -> Result<u64> {
    let Some(budget) = inner.budget() else {
        inner.over_budget.store(false, Ordering::Relaxed);
        return Ok(0);
    };
    let live = {
        let conn = inner.lock();
        let live = inner.live_bytes(&conn)?;
        if live as f64 > budget as f64 * BUDGET_HIGH {
            // First empty the log into the database: it may be what is over.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            inner.live_bytes(&conn)?
        } else {
            live
        }
    };
    if live as f64 <= budget as f64 * BUDGET_HIGH {
        inner.over_budget.store(false, Ordering::Relaxed);
        return Ok(0);
    }
    let edge = inner.outbox_on();
    if !inner.over_budget.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            live_bytes = live,
            budget_bytes = budget,
            "the data directory is near its disk budget: removing the oldest raw points (rollups stay){}",
            if edge {
                "; delivered ones first, then undelivered ones degraded to their minute rollups"
            } else {
                ""
            }
        );
    }
    let mut evicted = 0;
    let mut pending = super::budget_chain::Pending::default();
    while *steps < STEPS_PER_PASS && !inner.interrupted() {
        *steps += 1;
        let mut conn = inner.lock();
        if inner.live_bytes(&conn)? as f64 <= budget as f64 * BUDGET_LOW {
            break;
        }
        if edge {
            let done = super::budget_chain::step(&mut conn, &mut pending)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            match done {
                super::budget_chain::Outcome::Nothing => break,
                super::budget_chain::Outcome::Removed(n) => evicted += n,
                super::budget_chain::Outcome::Degraded(_)
                | super::budget_chain::Outcome::Dropped(_) => {}
            }
            continue;
        }
        // The oldest chunks, and the first of them whose series has rolled past it.
        let oldest: Option<i64> = conn
            .prepare_cached(
                "SELECT c.series_id FROM chunks c \
                 JOIN series_marks m ON m.series_id = c.series_id \
                 WHERE c.end_ts < m.rolled_until AND c.end_ts >= m.raw_before \
                 ORDER BY c.start_ts LIMIT 1",
            )?
            .query_row([], |r| r.get(0))
            .optional()?;
        let Some(sid) = oldest else {
            // Nothing left to remove but rollups and the newest minutes (the budget is too
            // small for them): said once per episode, by the warning above and the gauge.
            tracing::debug!("over the disk budget, but no raw point is rolled up yet to remove");
            break;
        };
        // A few of that series' oldest chunks, never past its rollups; then the log is
        // emptied into the database, or the deletions themselves would grow the directory.
        let (n, _) = expire_raw_step(&mut conn, sid, i64::MAX, BUDGET_CHUNKS_PER_STEP)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(conn);
        if n == 0 {
            break;
        }
        evicted += n;
    }
    inner.evicted.fetch_add(evicted, Ordering::Relaxed);
    Ok(evicted)
}

/// How the rollups are stored (for benchmarks and operators).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupStats {
    /// 1-minute rows kept as table rows (recent days).
    pub minute_rows: u64,
    /// 1-minute rows packed by day.
    pub packed_rows: u64,
    /// Bytes of the packed days' compressed columns.
    pub packed_bytes: u64,
    /// 1-hour rows.
    pub hour_rows: u64,
}

impl SqliteStore {
    /// How the rollups are stored.
    pub async fn rollup_stats(&self) -> Result<RollupStats> {
        self.with_conn(|_, conn| {
            let count = |sql: &str| -> Result<u64> {
                Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
            };
            Ok(RollupStats {
                minute_rows: count("SELECT COUNT(*) FROM rollup_1m")?,
                packed_rows: count("SELECT COALESCE(SUM(rows), 0) FROM rollup_1m_days")?,
                packed_bytes: count("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM rollup_1m_days")?,
                hour_rows: count("SELECT COUNT(*) FROM rollup_1h")?,
            })
        })
        .await
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    fn set_disk_budget(&self, bytes: Option<u64>) {
        self.inner
            .budget
            .store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    fn interrupt(&self) {
        self.inner.interrupted.store(true, Ordering::Relaxed);
    }

    async fn seal_round(&self) -> Result<()> {
        self.seal_ready().await
    }

    async fn unsealed_points(
        &self,
        device: &DeviceId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<u64> {
        let Some(sid) = self.inner.known_series(device.as_str(), metric) else {
            return Ok(0);
        };
        self.with_conn(move |_, conn| super::head::count(conn, sid, from_ms, to_ms))
            .await
    }
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn retention(&self) -> Result<RetentionPolicy> {
        self.with_conn(|_, conn| load_policy(conn)).await
    }

    async fn set_retention(&self, policy: RetentionPolicy) -> Result<()> {
        policy.validate().map_err(StoreError::InvalidQuery)?;
        let json = serde_json::to_vec(&policy).expect("policy serialises");
        self.with_conn(move |inner, conn| {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![POLICY_KEY, json],
            )?;
            // Every series' due times depend on the policy.
            inner.workset().make_all_due();
            Ok(())
        })
        .await
    }

    async fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || maintain_blocking(&inner, now_ms))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn storage(&self) -> Result<StorageStatus> {
        self.with_conn(|inner, conn| {
            let (bytes, database_bytes, log_bytes, broker_bytes) = data_parts(inner.data_dir());
            Ok(StorageStatus {
                bytes,
                database_bytes,
                log_bytes,
                broker_bytes,
                free_bytes: free_bytes(conn)?,
                budget_bytes: inner.budget(),
                over_budget: inner.over_budget.load(Ordering::Relaxed),
                budget_evicted_points: inner.evicted.load(Ordering::Relaxed),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sentio_core::{DeviceId, Point};

    use super::*;
    use crate::SeriesStore;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % DAY;

    fn points(devices: usize, ts: i64) -> Vec<Point> {
        (0..devices)
            .map(|d| Point {
                device: DeviceId::parse(&format!("dev-{d:03}")).unwrap(),
                metric: Arc::from("t"),
                ts_ms: ts,
                value: (d as f64) + (ts / MINUTE) as f64,
            })
            .collect()
    }

    /// `devices` series with a point a minute over `minutes` minutes from `T0`.
    async fn store_with(devices: usize, minutes: i64) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for m in 0..minutes {
            store
                .append(&points(devices, T0 + m * MINUTE))
                .await
                .unwrap();
        }
        (dir, store)
    }

    /// Every rollup row and mark, in a comparable form.
    fn rolled(store: &SqliteStore) -> Vec<(i64, i64, i64, f64, Option<i64>)> {
        let conn = store.inner.lock();
        let mut stmt = conn
            .prepare(
                "SELECT r.series_id, r.bucket, r.count, r.sum, m.rolled_until FROM rollup_1m r \
                 JOIN series_marks m ON m.series_id = r.series_id ORDER BY 1, 2",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    #[tokio::test]
    async fn many_series_roll_up_in_one_transaction_as_they_would_one_by_one() {
        let now = T0 + 40 * MINUTE;
        let (_a, batched) = store_with(40, 30).await;
        let (_b, single) = store_with(40, 30).await;
        let (report, stats) =
            maintain_pass(&batched.inner, now, Duration::from_secs(3600)).unwrap();
        assert!(!report.more);
        assert_eq!(stats.finished, 40);
        assert_eq!(
            stats.commits, 1,
            "the whole pass in one transaction: {stats:?}"
        );
        assert!(stats.steps >= 40, "a roll per series: {stats:?}");
        // A zero hold commits after every series (and step): the old way.
        let (_, one_by_one) = maintain_pass(&single.inner, now, Duration::ZERO).unwrap();
        assert!(one_by_one.commits >= 40, "{one_by_one:?}");
        let rows = rolled(&batched);
        assert_eq!(
            rows.len(),
            40 * 30,
            "every minute of every series rolled up"
        );
        assert_eq!(rows, rolled(&single));
        // Nothing left due: the next pass writes nothing.
        let (_, again) = maintain_pass(&batched.inner, now, HOLD).unwrap();
        assert_eq!((again.finished, again.steps, again.commits), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_new_series_written_to_costs_no_write_and_no_full_look_until_its_first_rollup() {
        // Points of the last two minutes only: nothing settled to roll up yet.
        let now = T0 + 2 * MINUTE;
        let (_d, store) = store_with(10, 2).await;
        let (_, first) = maintain_pass(&store.inner, now, HOLD).unwrap();
        assert_eq!((first.finished, first.full_looks), (10, 10), "{first:?}");
        assert_eq!(first.steps, 0, "nothing to roll up: no write step");
        for s in 0..5 {
            store.append(&points(10, now + s * 1000)).await.unwrap();
            let (_, pass) = maintain_pass(&store.inner, now + 5_000, HOLD).unwrap();
            assert_eq!(pass.finished, 0, "round {s}: not even visited: {pass:?}");
            assert_eq!(
                pass.steps, 0,
                "round {s}: no write for a series not due: {pass:?}"
            );
            assert_eq!(
                pass.full_looks, 0,
                "round {s}: decided from the workset: {pass:?}"
            );
        }
        // Once its first minute has settled, it is rolled up as before.
        let later = T0 + MINUTE + SETTLE_MS + MINUTE;
        let (_, pass) = maintain_pass(&store.inner, later, HOLD).unwrap();
        assert_eq!(pass.finished, 10);
        assert!(pass.steps >= 10, "{pass:?}");
        assert!(rolled(&store).iter().all(|r| r.4 == Some(T0 + 2 * MINUTE)));
    }

    #[tokio::test]
    async fn a_query_waiting_for_the_connection_gets_it_between_the_steps_of_a_long_pass() {
        let (series, minutes) = (300, 60);
        let now = T0 + (minutes + 20) * MINUTE;
        let (_d, store) = store_with(series, minutes).await;
        let rows = |s: RollupStats| s.minute_rows + s.packed_rows;
        let before = store.inner.rolled_max.load(Ordering::Relaxed);
        let inner = store.inner.clone();
        // A hold longer than the whole pass: only a waiting foreground call ends a batch early.
        let pass = std::thread::spawn(move || {
            maintain_pass(&inner, now, Duration::from_secs(3600)).unwrap()
        });
        // The pass has rolled its first series, inside its first batch.
        while store.inner.rolled_max.load(Ordering::Relaxed) == before && !pass.is_finished() {
            std::thread::yield_now();
        }
        let seen = rows(store.rollup_stats().await.unwrap());
        let (report, stats) = pass.join().unwrap();
        let all = rows(store.rollup_stats().await.unwrap());
        assert!(!report.more, "{report:?}");
        assert_eq!(
            all,
            series as u64 * minutes as u64,
            "every minute rolled up"
        );
        assert!(
            seen < all,
            "the query ran in the middle of the pass, not after it: saw {seen} of {all} rows"
        );
        assert!(stats.yields >= 1 && stats.commits >= 2, "{stats:?}");
    }
}
