//! The sealer: moves head points (`head`) into compressed chunks (`chunks`).
//!
//! Per series, points older than [`SealPolicy::seal_age_ms`] behind that series' newest point
//! are sealed. A step ([`SqliteStore::seal_some`]) reads what to seal under the connection's
//! lock (a plan per series), compresses the chunks WITHOUT the lock (appends go on meanwhile),
//! then, under the lock again, writes them in ONE transaction that inserts the chunks and
//! removes the head points they hold (a head blob reaching past them is rewritten with the
//! rest). Before writing, each plan is checked against the head blobs and chunks it read: one
//! that changed in between (a late point, retention, an erasure) is dropped and its series
//! looked at again. So a crash at any moment loses nothing and duplicates nothing, and a head
//! page shared by neighbouring series is written once per step. Work is bounded per step.
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

    // 1. What to seal, read under the lock (no write).
    let planned = {
        let conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        plan_step(&conn, inner, &ids, max_points)
    };
    // 2. The chunks, compressed without the lock: appends go on meanwhile.
    // 3. Written under the lock in ONE transaction, each plan checked against the head and
    //    the chunks as they are now.
    let done = planned.and_then(|step| {
        let encoded = step
            .plans
            .iter()
            .map(Plan::encode)
            .collect::<Result<Vec<_>>>()?;
        let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        // A sealing transaction only moves points inside the database, atomically: if a power
        // cut loses it, the points are still in the head. So it needs atomicity, not its own
        // fsync; the next acknowledged append syncs the log up to and including it, in order.
        let report = super::without_fsync(&mut conn, |conn| apply_step(conn, &step, encoded))?;
        Ok((step, report))
    });
    let (step, report) = match done {
        Ok(d) => d,
        Err(e) => {
            // Rolled back: every series is looked at again next time, not forgotten until
            // the next append.
            inner.workset().still_unsealed(&ids);
            return Err(e);
        }
    };
    // The rest stays in the head, readable, and is looked at next time; so is a series
    // sealed in this step (it may have more ready) or whose plan went stale.
    let mut work = inner.workset();
    work.still_unsealed(&ids[step.looked..]);
    let sealed: Vec<i64> = step.plans.iter().map(|p| p.sid).collect();
    work.still_unsealed(&sealed);
    for (sid, wait) in step.waits {
        work.seal_wait(sid, wait);
    }
    drop(work);
    if let Some(&last) = step.looked.checked_sub(1).and_then(|i| ids.get(i)) {
        *inner.seal_cursor.lock().unwrap_or_else(|p| p.into_inner()) = last;
    }
    Ok(report)
}

/// What one step of the sealer decided under the lock, before compressing anything.
struct StepPlan {
    /// At most one plan per series.
    plans: Vec<Plan>,
    /// Series looked at, from the first of the step's list.
    looked: usize,
    /// What the series with nothing ready wait for.
    waits: Vec<(i64, SealWait)>,
    /// Whether the budget ran out before every series was looked at.
    cut_short: bool,
}

/// Looks at the series `ids` in order until plans for about `max_points` head points are made
/// or the store is stopping: per series, one plan ([`CHUNKS_PER_SEAL`] chunks at most) or what
/// it waits for. Reads only.
fn plan_step(conn: &Connection, inner: &Inner, ids: &[i64], max_points: usize) -> Result<StepPlan> {
    let mut step = StepPlan {
        plans: Vec::new(),
        looked: 0,
        waits: Vec::new(),
        cut_short: false,
    };
    let mut points = 0usize;
    for &sid in ids {
        if inner.interrupted() || points >= max_points {
            step.cut_short = !inner.interrupted();
            break;
        }
        match look(conn, sid, &inner.seal)? {
            Look::Plan(plan) => {
                points += plan.head_points as usize;
                step.plans.push(plan);
            }
            Look::Wait(wait) => step.waits.push((sid, wait)),
        }
        step.looked += 1;
    }
    Ok(step)
}

/// Writes the step's chunks and removes their head points, in ONE transaction: consecutive
/// series share the head's pages (one append's blobs are neighbours in `head_log`), so a page
/// that several series' seals change is written once per step, not once per series. A plan
/// whose head blobs or chunks changed since it was made (an append, retention, an erasure or
/// another sealer in between) is left out: its series is looked at again.
fn apply_step(
    conn: &mut Connection,
    step: &StepPlan,
    encoded: Vec<Vec<EncodedChunk>>,
) -> Result<SealReport> {
    let tx = CachedTx::begin(conn)?;
    let mut report = SealReport {
        more: step.cut_short || !step.plans.is_empty(),
        ..SealReport::default()
    };
    for (plan, chunks) in step.plans.iter().zip(encoded) {
        if !plan.still_holds(&tx)? {
            continue;
        }
        if let Kind::Merge { start, .. } = plan.kind {
            tx.prepare_cached("DELETE FROM chunks WHERE series_id = ?1 AND start_ts = ?2")?
                .execute(params![plan.sid, start])?;
        }
        for c in &chunks {
            insert_chunk(&tx, plan.sid, c)?;
        }
        let removed = super::head::remove(&tx, plan.sid, plan.from, plan.to.saturating_add(1))?;
        debug_assert_eq!(removed, plan.head_points);
        report.points += plan.head_points;
        report.chunks += chunks.len() as u64;
    }
    tx.commit()?;
    Ok(report)
}

/// What one look at a series found.
enum Look {
    /// Something to seal.
    Plan(Plan),
    /// Nothing was ready; what it waits for.
    Wait(SealWait),
}

/// Head points of one series to seal, as read: the chunks they make (not yet compressed), the
/// head range they leave, and what the head and the chunks looked like, to check before
/// writing.
struct Plan {
    sid: i64,
    kind: Kind,
    /// The new chunks' points, one run per chunk.
    pieces: Vec<Vec<(i64, f64)>>,
    /// The head range removed, inclusive.
    from: i64,
    to: i64,
    /// Head points in it.
    head_points: u64,
    /// The head blobs overlapping it when read (`head::blobs_in`).
    blobs: Vec<super::head::BlobKey>,
}

/// Where the new chunks go.
enum Kind {
    /// Into a gap between chunks (or after the last one): no chunk overlaps the range.
    Gap,
    /// Replacing the chunk starting at `start` (its end and count as read).
    Merge { start: i64, end: i64, count: i64 },
}

impl Plan {
    fn encode(&self) -> Result<Vec<EncodedChunk>> {
        self.pieces.iter().map(|p| chunk::encode(p)).collect()
    }

    /// Whether the head and the chunks are still as read: the same blobs over the range, and
    /// no chunk in it (a gap) or the same chunk (a merge).
    fn still_holds(&self, conn: &Connection) -> Result<bool> {
        if super::head::blobs_in(conn, self.sid, self.from, self.to)? != self.blobs {
            return Ok(false);
        }
        match self.kind {
            Kind::Gap => {
                Ok(chunk_at_or_before(conn, self.sid, self.to)?.is_none_or(|c| c.end < self.from))
            }
            Kind::Merge { start, end, count } => {
                let now: Option<(i64, i64)> = conn
                    .prepare_cached(
                        "SELECT end_ts, count FROM chunks WHERE series_id = ?1 AND start_ts = ?2",
                    )?
                    .query_row(params![self.sid, start], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                Ok(now == Some((end, count)))
            }
        }
    }
}

/// Looks at series `sid`: one plan of up to [`CHUNKS_PER_SEAL`] chunks, or what it waits for
/// when nothing is ready. Reads only.
fn look(conn: &Connection, sid: i64, policy: &SealPolicy) -> Result<Look> {
    let chunk_newest: Option<i64> = conn
        .prepare_cached(
            "SELECT end_ts FROM chunks WHERE series_id = ?1 ORDER BY start_ts DESC LIMIT 1",
        )?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    let Some((first, head_newest)) = super::head::bounds(conn, sid)? else {
        return Ok(Look::Wait(SealWait {
            newest: chunk_newest.unwrap_or(i64::MIN),
            first: i64::MAX,
            ready_after: i64::MAX,
            next_chunk: i64::MAX,
        }));
    };
    let newest = head_newest.max(chunk_newest.unwrap_or(i64::MIN));
    let cutoff = newest.saturating_sub(policy.seal_age_ms);
    if first >= cutoff {
        return Ok(Look::Wait(SealWait {
            newest,
            first,
            ready_after: first,
            next_chunk: i64::MAX,
        }));
    }
    let before = chunk_at_or_before(conn, sid, first)?;
    match before {
        Some(c) if first <= c.end => plan_merge(conn, sid, c, policy),
        _ => {
            let next: Option<i64> = conn
                .prepare_cached(
                    "SELECT start_ts FROM chunks WHERE series_id = ?1 AND start_ts > ?2 \
                     ORDER BY start_ts LIMIT 1",
                )?
                .query_row(params![sid, first], |r| r.get(0))
                .optional()?;
            plan_gap(conn, sid, (first, newest), cutoff, next, policy)
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

/// Head points in a gap between chunks (or after the last one) become new chunks: each full
/// one, and a last shorter one when the gap is closed by the next chunk or its points have
/// waited long enough. Up to [`CHUNKS_PER_SEAL`] chunks in one look, so a head blob holding
/// many chunks' worth is rewritten once, not once per chunk. When none is ready, the wait ends
/// once the cutoff passes the first chunk's worth of points (read past the cutoff for it).
fn plan_gap(
    conn: &Connection,
    sid: i64,
    (first, newest): (i64, i64),
    cutoff: i64,
    next_chunk: Option<i64>,
    policy: &SealPolicy,
) -> Result<Look> {
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
    let mut pieces = Vec::new();
    let mut sealed = 0usize;
    for piece in run.chunks(per_chunk) {
        let full = piece.len() == per_chunk;
        let waited = piece[0].0 < cutoff.saturating_sub(policy.max_wait_ms);
        if !(full || bounded_by_next || waited) {
            break;
        }
        pieces.push(piece.to_vec());
        sealed += piece.len();
    }
    if sealed == 0 {
        return Ok(Look::Wait(SealWait {
            newest,
            first,
            ready_after: chunk_end,
            next_chunk: next_chunk.unwrap_or(i64::MAX),
        }));
    }
    let to = run[sealed - 1].0;
    Ok(Look::Plan(Plan {
        sid,
        kind: Kind::Gap,
        pieces,
        from: first,
        to,
        head_points: sealed as u64,
        blobs: super::head::blobs_in(conn, sid, first, to)?,
    }))
}

/// Head points inside chunk `c`'s range are merged into it (the head value wins on equal
/// timestamps); the result replaces the chunk, split when it grew past 1.5 chunks.
fn plan_merge(conn: &Connection, sid: i64, c: ChunkRange, policy: &SealPolicy) -> Result<Look> {
    let head =
        super::head::points_in(conn, sid, c.start, c.end.saturating_add(1), usize::MAX >> 1)?;
    let (data, count): (Vec<u8>, i64) = conn
        .prepare_cached("SELECT data, count FROM chunks WHERE series_id = ?1 AND start_ts = ?2")?
        .query_row(params![sid, c.start], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let sealed = chunk::decode(&data)?;
    let merged = merge_head_wins(&sealed, &head);
    let pieces = if merged.len() * 2 > policy.chunk_points * 3 {
        merged.len().div_ceil(policy.chunk_points)
    } else {
        1
    };
    let per_piece = merged.len().div_ceil(pieces);
    Ok(Look::Plan(Plan {
        sid,
        kind: Kind::Merge {
            start: c.start,
            end: c.end,
            count,
        },
        pieces: merged.chunks(per_piece).map(<[_]>::to_vec).collect(),
        from: c.start,
        to: c.end,
        head_points: head.len() as u64,
        blobs: super::head::blobs_in(conn, sid, c.start, c.end)?,
    }))
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
