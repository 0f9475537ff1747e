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
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::DeviceId;

use super::rollup::{self, HOUR, MINUTE, SETTLE_MS, floor};
use super::rollup_pack;

/// A day in ms.
const DAY: i64 = 86_400_000;
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
const BUDGET_CHUNKS_PER_STEP: usize = 16;
/// Rollup rows removed per transaction of one series and table.
const ROLLUP_ROWS_PER_STEP: i64 = 5_000;
/// Transactions per maintenance call, over every series.
const STEPS_PER_PASS: usize = 500;
/// Over this share of the budget, the oldest raw points are removed ...
const BUDGET_HIGH: f64 = 0.95;
/// ... until the database is under this share.
const BUDGET_LOW: f64 = 0.90;

fn load_policy(conn: &Connection) -> Result<RetentionPolicy> {
    let json: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [POLICY_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    match json {
        None => Ok(RetentionPolicy::default()),
        Some(j) => serde_json::from_slice(&j)
            .map_err(|e| StoreError::Corrupt(format!("retention policy: {e}"))),
    }
}

/// Removes the raw points of `[from, to)` from both tiers: head rows are deleted, chunks inside
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
    removed += conn
        .prepare_cached("DELETE FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3")?
        .execute(params![sid, from, to])? as u64;
    Ok(removed)
}

/// One transaction removing raw points of series `sid` before `target` (a minute boundary),
/// never past what is rolled up and at most about [`CHUNKS_PER_STEP`] chunks. Returns points
/// removed and whether more is left before `target`.
fn expire_raw_step(
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
    let tx = conn.transaction()?;
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
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn free_bytes(conn: &Connection) -> Result<u64> {
    let pragma = |name: &str| -> Result<u64> {
        Ok(conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))? as u64)
    };
    Ok(pragma("freelist_count")? * pragma("page_size")?)
}

/// A series with the device and kind its retention depends on.
struct SeriesRow {
    id: i64,
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one maintenance transaction on the connection. Like sealing, it only derives or
    /// removes data that its marks describe atomically, so it needs no fsync of its own
    /// (`NORMAL`): a power cut loses at most the step, redone by the next pass.
    fn maintenance_tx<R>(
        &self,
        report: &mut MaintenanceReport,
        f: impl FnOnce(&mut Connection) -> Result<R>,
    ) -> Result<R> {
        let mut conn = self.lock();
        let start = std::time::Instant::now();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let r = f(&mut conn);
        conn.pragma_update(None, "synchronous", "FULL")?;
        let us = start.elapsed().as_micros() as u64;
        report.longest_step_us = report.longest_step_us.max(us);
        r
    }
}

fn maintain_blocking(inner: &Inner, now: i64) -> Result<MaintenanceReport> {
    let (policy, series) = {
        let conn = inner.lock();
        let policy = load_policy(&conn)?;
        let mut stmt = conn.prepare_cached(
            "SELECT s.id, s.device, d.kind FROM series s LEFT JOIN devices d ON d.id = s.device \
             ORDER BY s.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SeriesRow {
                id: r.get(0)?,
                device: r.get(1)?,
                kind: r.get(2)?,
            })
        })?;
        (policy, rows.collect::<rusqlite::Result<Vec<_>>>()?)
    };
    let mut report = MaintenanceReport::default();
    let mut steps = 0;
    let target = floor(now - SETTLE_MS, MINUTE);
    // Expiry moves by whole hours (1-hour rollups: days): one transaction per series each
    // time, not one per pass.
    let rollup_cuts = (
        floor(now - policy.rollup_1m_ms, HOUR),
        floor(now - policy.rollup_1h_ms, DAY),
    );
    // Resume after the series handled last, then wrap around.
    let cursor = *inner.maint_cursor.lock().unwrap_or_else(|p| p.into_inner());
    let split = series.partition_point(|s| s.id <= cursor);
    for s in series[split..].iter().chain(&series[..split]) {
        if inner.interrupted() {
            // Stopping: the rest waits for the next start (the cursor resumes here).
            return Ok(report);
        }
        let raw_cut = floor(
            now.saturating_sub(policy.raw_for(&s.device, s.kind.as_deref())),
            HOUR,
        );
        loop {
            if inner.interrupted() {
                return Ok(report);
            }
            if steps >= STEPS_PER_PASS {
                report.more = true;
                return Ok(report);
            }
            let r =
                inner.maintenance_tx(&mut report, |conn| rollup::roll_step(conn, s.id, target))?;
            steps += usize::from(r.wrote);
            report.rolled_buckets += r.buckets;
            if let Some(ru) = r.rolled_until {
                inner.rolled_max.fetch_max(ru, Ordering::Relaxed);
            }
            if !r.more {
                break;
            }
        }
        // Settled days of 1-minute rows are packed (an hour after they are rolled up).
        while steps < STEPS_PER_PASS {
            let settled = inner.maintenance_tx(&mut report, |conn| {
                Ok(rollup::marks(conn, s.id)?.rolled_until)
            })?;
            let Some(settled) = settled else { break };
            let packed = inner.maintenance_tx(&mut report, |conn| {
                rollup_pack::pack_step(conn, s.id, settled - HOUR)
            })?;
            if !packed {
                break;
            }
            steps += 1;
        }
        loop {
            let (n, more) = inner.maintenance_tx(&mut report, |conn| {
                rollup::expire_rollups(conn, s.id, rollup_cuts, ROLLUP_ROWS_PER_STEP)
            })?;
            steps += usize::from(more || n > 0);
            report.expired_rollups += n;
            if !more || steps >= STEPS_PER_PASS {
                break;
            }
        }
        loop {
            let (n, more) = inner.maintenance_tx(&mut report, |conn| {
                expire_raw_step(conn, s.id, raw_cut, CHUNKS_PER_STEP)
            })?;
            steps += usize::from(more || n > 0);
            report.expired_points += n;
            if !more || steps >= STEPS_PER_PASS {
                break;
            }
        }
        *inner.maint_cursor.lock().unwrap_or_else(|p| p.into_inner()) = s.id;
    }
    report.evicted_points = enforce_budget(inner, &mut steps)?;
    report.more |= steps >= STEPS_PER_PASS;
    Ok(report)
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
    if !inner.over_budget.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            live_bytes = live,
            budget_bytes = budget,
            "the data directory is near its disk budget: removing the oldest raw points (rollups stay)"
        );
    }
    let mut evicted = 0;
    while *steps < STEPS_PER_PASS && !inner.interrupted() {
        *steps += 1;
        let mut conn = inner.lock();
        if inner.live_bytes(&conn)? as f64 <= budget as f64 * BUDGET_LOW {
            break;
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
        self.with_conn(move |_, conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3",
                params![sid, from_ms, to_ms],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
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
        self.with_conn(move |_, conn| {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![POLICY_KEY, json],
            )?;
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
            Ok(StorageStatus {
                bytes: dir_bytes(inner.data_dir()),
                free_bytes: free_bytes(conn)?,
                budget_bytes: inner.budget(),
                over_budget: inner.over_budget.load(Ordering::Relaxed),
                budget_evicted_points: inner.evicted.load(Ordering::Relaxed),
            })
        })
        .await
    }
}
