//! The sealer: moves head points (`head`) into compressed chunks (`chunks`).
//!
//! Per series, points older than [`SealPolicy::seal_age_ms`] behind that series' newest point
//! are sealed. A step ([`SqliteStore::seal_some`]) seals series after series in ONE transaction
//! that inserts the chunks and removes the head points they hold (a head blob reaching past
//! them is rewritten with the rest), so a crash at any moment loses nothing and duplicates
//! nothing, and a head page shared by neighbouring series is written once per step. Work is
//! bounded per step and the connection is released between steps, so ingest interleaves.
//!
//! Where a head point falls inside an existing chunk's range (a late point or a duplicate), the
//! chunk is decoded, merged (the head value wins) and re-encoded; chunk ranges never overlap.

use rusqlite::{Connection, OptionalExtension, params};

use super::cached_tx::CachedTx;
use super::workset::SealWait;
use super::{Inner, SqliteStore};
use crate::chunk::{self, EncodedChunk};
use crate::{Result, StoreError};

/// Head points sealed per step of the background sealer.
const SEAL_STEP_POINTS: usize = 20_000;

/// Chunks written at most by one look at a series (`seal_gap`).
const CHUNKS_PER_SEAL: usize = 16;

/// When head points become chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    /// Points this far behind their series' newest point are sealed (ms).
    pub seal_age_ms: i64,
    /// Points per chunk (a merged chunk may be split to stay near it).
    pub chunk_points: usize,
    /// A run shorter than `chunk_points` is sealed anyway once its first point is this much
    /// older than the seal age (ms): slow series get chunks of about this span.
    pub max_wait_ms: i64,
}

impl Default for SealPolicy {
    fn default() -> Self {
        Self {
            seal_age_ms: 10 * 60_000,
            chunk_points: 1000,
            max_wait_ms: 60 * 60_000,
        }
    }
}

/// What one call of the sealer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Head points moved into chunks.
    pub points: u64,
    /// Chunks written (new or re-encoded).
    pub chunks: u64,
    /// Whether the budget ran out before every series was looked at (call again soon).
    pub more: bool,
}

/// How the series data is split between the tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Rows in the head.
    pub head_points: u64,
    /// Sealed chunks.
    pub chunks: u64,
    /// Points in the sealed chunks.
    pub sealed_points: u64,
    /// Bytes of compressed chunk data.
    pub chunk_bytes: u64,
}

/// A chunk row without its data.
#[derive(Debug, Clone, Copy)]
struct ChunkRange {
    start: i64,
    end: i64,
}

impl SqliteStore {
    /// Seals up to about `max_points` head points into chunks, going round the series, in one
    /// transaction (holding the connection for it). Call it periodically (the node does, from a task);
    /// tests call it directly.
    pub async fn seal_some(&self, max_points: usize) -> Result<SealReport> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || seal_some_blocking(&inner, max_points))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs the sealer until `stop` completes: every `every`, seals what is ready, in bounded
    /// steps (the connection is released and the task yields between steps).
    pub async fn run_sealer(&self, every: std::time::Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.seal_ready().await {
                tracing::error!(error = %e, "sealing head points into chunks failed");
            }
        }
    }

    /// Seals what is ready, in bounded steps (yielding between them): the embedded store's
    /// [`crate::Maintenance::seal_round`].
    pub(super) async fn seal_ready(&self) -> Result<()> {
        loop {
            if !self.seal_some(SEAL_STEP_POINTS).await?.more {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
    }

    /// How many points are in each tier (for tests, benchmarks and operators).
    pub async fn tier_stats(&self) -> Result<TierStats> {
        self.with_conn(|_, conn| {
            let head_points = super::head::count_all(conn)?;
            let (chunks, sealed, bytes): (i64, i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(count), 0), COALESCE(SUM(LENGTH(data)), 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            Ok(TierStats {
                head_points,
                chunks: chunks as u64,
                sealed_points: sealed as u64,
                chunk_bytes: bytes as u64,
            })
        })
        .await
    }

    /// Seals until nothing is left to seal under the policy (tests, benchmarks, shutdown).
    pub async fn seal_all(&self) -> Result<SealReport> {
        let mut total = SealReport::default();
        loop {
            let r = self.seal_some(100_000).await?;
            total.points += r.points;
            total.chunks += r.chunks;
            if !r.more {
                return Ok(total);
            }
        }
    }
}

fn seal_some_blocking(inner: &Inner, max_points: usize) -> Result<SealReport> {
    // Only the series appended to since they were last sealed: sealing depends on a series'
    // newest point, so a series nobody writes to has nothing new to seal.
    let mut ids = inner.workset().take_unsealed(&inner.seal);
    let cursor = *inner.seal_cursor.lock().unwrap_or_else(|p| p.into_inner());
    // Resume after the series looked at last, then wrap around (fair when the budget runs out).
    let split = ids.partition_point(|&id| id <= cursor);
    ids.rotate_left(split);

    let batch = {
        // Background work: the connection once no append or query waits for it.
        let mut conn = inner.lock();
        let held = std::time::Instant::now();
        // A sealing transaction only moves points inside the database, atomically: if a power
        // cut loses it, the points are still in the head. So it needs atomicity, not its own
        // fsync; the next acknowledged append syncs the log up to and including it, in order.
        let batch =
            super::without_fsync(&mut conn, |conn| seal_batch(conn, inner, &ids, max_points));
        super::note_hold::<Batch>(held);
        batch
    };
    let Batch {
        report,
        finished,
        waits,
    } = match batch {
        Ok(b) => b,
        Err(e) => {
            // Rolled back: every series is looked at again next time, not forgotten until
            // the next append.
            inner.workset().still_unsealed(&ids);
            return Err(e);
        }
    };
    // The rest stays in the head, readable, and is looked at next time.
    let mut work = inner.workset();
    work.still_unsealed(&ids[finished..]);
    for (sid, wait) in waits {
        work.seal_wait(sid, wait);
    }
    drop(work);
    if let Some(&last) = finished.checked_sub(1).and_then(|i| ids.get(i)) {
        *inner.seal_cursor.lock().unwrap_or_else(|p| p.into_inner()) = last;
    }
    Ok(report)
}

/// Seals the series `ids` in order, in ONE transaction, until about `max_points` are moved or
/// the store is stopping: consecutive series share the head's pages (one append's blobs are
/// neighbours in `head_log`), so a page that several series' seals change is written once per
/// batch, not once per series. Returns what was sealed, how many series were finished
/// (nothing left to seal; a series the budget cut short is not) and what the finished ones wait
/// for.
fn seal_batch(
    conn: &mut Connection,
    inner: &Inner,
    ids: &[i64],
    max_points: usize,
) -> Result<Batch> {
    let tx = CachedTx::begin(conn)?;
    let mut report = SealReport::default();
    let mut finished = 0;
    let mut waits = Vec::new();
    'series: for &sid in ids {
        // Seal this series until it has nothing ready or the budget is spent.
        loop {
            if inner.interrupted() || report.points as usize >= max_points {
                report.more = !inner.interrupted();
                break 'series;
            }
            match seal_one(&tx, sid, &inner.seal)? {
                Step::Sealed(points, chunks) => {
                    report.points += points;
                    report.chunks += chunks;
                }
                Step::Wait(wait) => {
                    waits.push((sid, wait));
                    break;
                }
            }
        }
        finished += 1;
    }
    tx.commit()?;
    Ok(Batch {
        report,
        finished,
        waits,
    })
}

/// What one sealing step did (`seal_batch`).
struct Batch {
    report: SealReport,
    /// Series finished, from the first of the step's list.
    finished: usize,
    /// What the finished series with nothing ready wait for.
    waits: Vec<(i64, SealWait)>,
}

/// What one look at a series did.
enum Step {
    /// Points moved and chunks written.
    Sealed(u64, u64),
    /// Nothing was ready; what it waits for.
    Wait(SealWait),
}

/// Seals one chunk's worth of series `sid` inside the caller's transaction, or says what it
/// waits for when nothing is ready (nothing written then).
fn seal_one(tx: &Connection, sid: i64, policy: &SealPolicy) -> Result<Step> {
    let chunk_newest: Option<i64> = tx
        .prepare_cached(
            "SELECT end_ts FROM chunks WHERE series_id = ?1 ORDER BY start_ts DESC LIMIT 1",
        )?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    let Some((first, head_newest)) = super::head::bounds(tx, sid)? else {
        return Ok(Step::Wait(SealWait {
            newest: chunk_newest.unwrap_or(i64::MIN),
            first: i64::MAX,
            ready_after: i64::MAX,
            next_chunk: i64::MAX,
        }));
    };
    let newest = head_newest.max(chunk_newest.unwrap_or(i64::MIN));
    let cutoff = newest.saturating_sub(policy.seal_age_ms);
    if first >= cutoff {
        return Ok(Step::Wait(SealWait {
            newest,
            first,
            ready_after: first,
            next_chunk: i64::MAX,
        }));
    }
    let before = chunk_at_or_before(tx, sid, first)?;
    match before {
        Some(c) if first <= c.end => merge_into(tx, sid, c, policy),
        _ => {
            let next: Option<i64> = tx
                .prepare_cached(
                    "SELECT start_ts FROM chunks WHERE series_id = ?1 AND start_ts > ?2 \
                     ORDER BY start_ts LIMIT 1",
                )?
                .query_row(params![sid, first], |r| r.get(0))
                .optional()?;
            seal_gap(tx, sid, (first, newest), cutoff, next, policy)
        }
    }
}

fn chunk_at_or_before(conn: &Connection, sid: i64, ts: i64) -> Result<Option<ChunkRange>> {
    Ok(conn
        .prepare_cached(
            "SELECT start_ts, end_ts FROM chunks WHERE series_id = ?1 AND start_ts <= ?2 \
             ORDER BY start_ts DESC LIMIT 1",
        )?
        .query_row(params![sid, ts], |r| {
            Ok(ChunkRange {
                start: r.get(0)?,
                end: r.get(1)?,
            })
        })
        .optional()?)
}

fn insert_chunk(conn: &Connection, sid: i64, c: &EncodedChunk) -> Result<()> {
    let s = &c.stats;
    conn.prepare_cached(
        "INSERT INTO chunks (series_id, start_ts, end_ts, count, min, max, sum, first, last, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        sid, s.start_ts, s.end_ts, s.count, s.min, s.max, s.sum, s.first, s.last, c.data
    ])?;
    Ok(())
}

fn delete_head(conn: &Connection, sid: i64, from: i64, to_inclusive: i64) -> Result<usize> {
    Ok(super::head::remove(conn, sid, from, to_inclusive.saturating_add(1))? as usize)
}

/// Head points in a gap between chunks (or after the last one) become new chunks: each full
/// one, and a last shorter one when the gap is closed by the next chunk or its points have
/// waited long enough. Up to [`CHUNKS_PER_SEAL`] chunks in one look, so a head blob holding
/// many chunks' worth is rewritten once, not once per chunk. When none is ready, the wait ends
/// once the cutoff passes the first chunk's worth of points (read past the cutoff for it).
fn seal_gap(
    conn: &Connection,
    sid: i64,
    (first, newest): (i64, i64),
    cutoff: i64,
    next_chunk: Option<i64>,
    policy: &SealPolicy,
) -> Result<Step> {
    let bounded_by_next = next_chunk.is_some_and(|n| n <= cutoff);
    let limit_ts = next_chunk.map_or(cutoff, |n| n.min(cutoff));
    let per_chunk = policy.chunk_points.max(1);
    let mut run = super::head::points_in(
        conn,
        sid,
        first,
        next_chunk.unwrap_or(i64::MAX),
        per_chunk.saturating_mul(CHUNKS_PER_SEAL),
    )?;
    let chunk_end = run.get(per_chunk - 1).map_or(i64::MAX, |p| p.0);
    run.truncate(run.partition_point(|p| p.0 < limit_ts));
    let mut sealed = 0usize;
    let mut chunks = 0u64;
    for piece in run.chunks(per_chunk) {
        let full = piece.len() == per_chunk;
        let waited = piece[0].0 < cutoff.saturating_sub(policy.max_wait_ms);
        if !(full || bounded_by_next || waited) {
            break;
        }
        insert_chunk(conn, sid, &chunk::encode(piece)?)?;
        sealed += piece.len();
        chunks += 1;
    }
    if sealed == 0 {
        return Ok(Step::Wait(SealWait {
            newest,
            first,
            ready_after: chunk_end,
            next_chunk: next_chunk.unwrap_or(i64::MAX),
        }));
    }
    let deleted = delete_head(conn, sid, first, run[sealed - 1].0)?;
    debug_assert_eq!(deleted, sealed);
    Ok(Step::Sealed(sealed as u64, chunks))
}

/// Head points inside chunk `c`'s range are merged into it (the head value wins on equal
/// timestamps); the result replaces the chunk, split when it grew past 1.5 chunks.
fn merge_into(conn: &Connection, sid: i64, c: ChunkRange, policy: &SealPolicy) -> Result<Step> {
    let head =
        super::head::points_in(conn, sid, c.start, c.end.saturating_add(1), usize::MAX >> 1)?;
    let data: Vec<u8> = conn
        .prepare_cached("SELECT data FROM chunks WHERE series_id = ?1 AND start_ts = ?2")?
        .query_row(params![sid, c.start], |r| r.get(0))?;
    let sealed = chunk::decode(&data)?;
    let merged = merge_head_wins(&sealed, &head);
    conn.prepare_cached("DELETE FROM chunks WHERE series_id = ?1 AND start_ts = ?2")?
        .execute(params![sid, c.start])?;
    let pieces = if merged.len() * 2 > policy.chunk_points * 3 {
        merged.len().div_ceil(policy.chunk_points)
    } else {
        1
    };
    let per_piece = merged.len().div_ceil(pieces);
    for piece in merged.chunks(per_piece) {
        insert_chunk(conn, sid, &chunk::encode(piece)?)?;
    }
    delete_head(conn, sid, c.start, c.end)?;
    Ok(Step::Sealed(head.len() as u64, pieces as u64))
}

/// Merges two sorted runs; on equal timestamps the head's value is kept.
pub(super) fn merge_head_wins(sealed: &[(i64, f64)], head: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(sealed.len() + head.len());
    let (mut i, mut j) = (0, 0);
    while i < sealed.len() && j < head.len() {
        let (a, b) = (sealed[i], head[j]);
        if a.0 < b.0 {
            out.push(a);
            i += 1;
        } else {
            if a.0 == b.0 {
                i += 1;
            }
            out.push(b);
            j += 1;
        }
    }
    out.extend_from_slice(&sealed[i..]);
    out.extend_from_slice(&head[j..]);
    out
}
