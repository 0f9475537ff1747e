//! `OutboxStore` on SQLite: the edge's outbox is the `outbox` table, one row per committed
//! append written in the append's own transaction (`series::write_points`), naming its points
//! by series and time span; the points stay where every point is (head, then chunks) and are
//! read back when the batch is sent. Each row has its lane (live or backlog), chosen at commit
//! and never changed. Acknowledged rows are removed; `outbox_acked` keeps the acknowledged seq
//! per lane.
//!
//! **Invariant:** a batch is recorded if and only if its points were committed, and its seq is
//! never reused in this database (`AUTOINCREMENT`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::{AlertId, DeviceId, Point};

use super::outbox_counts::{self, Fate};
use super::series::{Span, Spans};
use super::{Inner, SqliteStore, read, rollup};
use crate::edge::{
    BatchSeq, Incarnation, Lane, LaneStatus, OutboxBatch, OutboxStatus, PART_POINTS, RollupBatch,
    SeriesRollups, WindowRecorded,
};
use crate::{OutboxStore, Result, StoreError};

/// Bytes of one span in `outbox.spans`: series id, first and last timestamp, count.
const SPAN_BYTES: usize = 8 + 8 + 8 + 4;

/// The meta key of this data directory's incarnation.
pub(crate) const INCARNATION_KEY: &str = "incarnation";

/// `outbox.spans` of `spans`, and their points.
pub(super) fn spans_blob<'a>(
    spans: impl IntoIterator<Item = (&'a i64, &'a Span)>,
) -> (Vec<u8>, u64) {
    let mut blob = Vec::new();
    let mut points: u64 = 0;
    for (sid, s) in spans {
        blob.extend_from_slice(&sid.to_le_bytes());
        blob.extend_from_slice(&s.first.to_le_bytes());
        blob.extend_from_slice(&s.last.to_le_bytes());
        blob.extend_from_slice(&s.count.to_le_bytes());
        points += u64::from(s.count);
    }
    (blob, points)
}

/// Records the batch of `spans` in `lane` (inside the append's transaction), counted as
/// accepted.
pub(super) fn record(tx: &Connection, spans: &Spans, lane: Lane) -> Result<()> {
    let (blob, points) = spans_blob(spans);
    outbox_counts::add(tx, lane, Fate::Accepted, points)?;
    tx.prepare_cached(
        "INSERT INTO outbox (committed_ms, points, spans, lane) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        sentio_core::time::now_ms(),
        points as i64,
        blob,
        lane.as_str()
    ])?;
    Ok(())
}

/// The meta key set while rollup transactions record their minutes ([`Lane::Rollups`]).
const ROLLUPS_KEY: &str = "outbox_rollups";

/// Records the minutes `[first, last]` of series `sid` rolled up (`rows` rows) as a batch of
/// [`Lane::Rollups`], inside the rollup's transaction, when the aggregates policy is on.
pub(super) fn record_rollups(
    tx: &Connection,
    sid: i64,
    (first, last): (i64, i64),
    rows: u32,
) -> Result<()> {
    let on: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM meta WHERE key = ?1")?
        .query_row([ROLLUPS_KEY], |r| r.get(0))
        .optional()?;
    if on.is_none() {
        return Ok(());
    }
    let spans = Spans::from([(
        sid,
        Span {
            first,
            last,
            count: rows,
        },
    )]);
    record(tx, &spans, Lane::Rollups)
}

/// The meta key of the last alert whose raw points went in the outbox.
const WINDOWS_KEY: &str = "outbox_windows_done";

fn windows_done(conn: &Connection) -> Result<i64> {
    let v: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([WINDOWS_KEY], |r| r.get(0))
        .optional()?;
    match v {
        None => Ok(0),
        Some(b) => b
            .try_into()
            .map(i64::from_le_bytes)
            .map_err(|_| StoreError::Corrupt("outbox_windows_done in meta".into())),
    }
}

/// Adds the `lane` column (and its index) to an outbox made before lanes: its batches are
/// live ones.
pub(super) fn add_lane_column(conn: &Connection) -> Result<()> {
    super::add_column_if_missing(conn, "outbox", "lane", "TEXT NOT NULL DEFAULT 'points'")?;
    conn.execute(
        "CREATE INDEX IF NOT EXISTS outbox_lane ON outbox (lane, seq)",
        [],
    )?;
    Ok(())
}

pub(super) fn spans_of(blob: &[u8]) -> Result<Vec<(i64, Span)>> {
    if !blob.len().is_multiple_of(SPAN_BYTES) {
        return Err(StoreError::Corrupt("outbox spans".into()));
    }
    Ok(blob
        .chunks_exact(SPAN_BYTES)
        .map(|c| {
            let i64_at = |o: usize| i64::from_le_bytes(c[o..o + 8].try_into().expect("8 bytes"));
            let count = u32::from_le_bytes(c[24..28].try_into().expect("4 bytes"));
            (
                i64_at(0),
                Span {
                    first: i64_at(8),
                    last: i64_at(16),
                    count,
                },
            )
        })
        .collect())
}

/// The incarnation in `meta`, created with a new data directory (or after a restore, which
/// removes it).
pub(super) fn load_or_create_incarnation(conn: &Connection) -> Result<Incarnation> {
    let existing: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [INCARNATION_KEY],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(bytes) = existing {
        return bytes
            .try_into()
            .map(Incarnation)
            .map_err(|_| StoreError::Corrupt("incarnation in meta".into()));
    }
    let new = Incarnation::generate();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        params![INCARNATION_KEY, new.0.as_slice()],
    )?;
    Ok(new)
}

fn acked(conn: &Connection, lane: Lane) -> Result<(BatchSeq, Option<i64>)> {
    let row: Option<(i64, i64)> = conn
        .query_row(
            "SELECT acked_seq, acked_ms FROM outbox_acked WHERE lane = ?1",
            [lane.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((seq, ms)) => (BatchSeq(seq), Some(ms)),
        None => (BatchSeq(0), None),
    })
}

/// What is pending in `lane`.
fn lane_status(conn: &Connection, lane: Lane) -> Result<(LaneStatus, Option<i64>)> {
    let (acked, acked_ms) = acked(conn, lane)?;
    let (batches, points, oldest): (i64, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), SUM(points), MIN(committed_ms) FROM outbox WHERE lane = ?1 AND seq > ?2",
        params![lane.as_str(), acked.0],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok((
        LaneStatus {
            acked,
            pending_batches: batches as u64,
            pending_points: points.unwrap_or(0) as u64,
            oldest_pending_ms: oldest,
        },
        acked_ms,
    ))
}

/// Up to `max` rows of `lane` after `after` in seq order: (seq, committed_ms, spans).
fn pending_rows(
    conn: &Connection,
    lane: Lane,
    after: BatchSeq,
    max: usize,
) -> Result<Vec<(i64, i64, Vec<u8>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, committed_ms, spans FROM outbox WHERE lane = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![lane.as_str(), after.0, max as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Series names by id, loaded as needed.
fn series_name(
    conn: &Connection,
    names: &mut HashMap<i64, (DeviceId, std::sync::Arc<str>)>,
    sid: i64,
) -> Result<(DeviceId, std::sync::Arc<str>)> {
    if let Some(n) = names.get(&sid) {
        return Ok(n.clone());
    }
    let (device, metric): (String, String) = conn.query_row(
        "SELECT device, metric FROM series WHERE id = ?1",
        [sid],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let device =
        DeviceId::parse(&device).map_err(|e| StoreError::Corrupt(format!("series {sid}: {e}")))?;
    let name = (device, std::sync::Arc::<str>::from(metric));
    names.insert(sid, name.clone());
    Ok(name)
}

impl Inner {
    /// Whether appends record their batch in the outbox.
    pub(super) fn outbox_on(&self) -> bool {
        self.outbox.load(Ordering::Relaxed)
    }

    /// The lane appends record their batch in.
    pub(super) fn outbox_lane(&self) -> Lane {
        if self.outbox_backlog.load(Ordering::Relaxed) {
            Lane::Backlog
        } else {
            Lane::Points
        }
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    fn enable_outbox(&self) {
        self.inner.outbox.store(true, Ordering::Relaxed);
    }

    fn set_outbox_lane(&self, lane: Lane) {
        self.inner
            .outbox_backlog
            .store(lane == Lane::Backlog, Ordering::Relaxed);
    }

    async fn outbox_batches(
        &self,
        lane: Lane,
        after: BatchSeq,
        max_batches: usize,
        max_points: usize,
    ) -> Result<Vec<OutboxBatch>> {
        self.with_conn(move |_, conn| {
            let rows = pending_rows(conn, lane, after, max_batches)?;
            let mut names = HashMap::new();
            let mut out = Vec::with_capacity(rows.len());
            let mut total = 0usize;
            for (seq, committed_ms, blob) in rows {
                let mut parts: Vec<Vec<Point>> = vec![Vec::new()];
                let mut recorded: u32 = 0;
                for (sid, span) in spans_of(&blob)? {
                    // Parts of whole series, split on what was recorded at commit only.
                    if recorded > 0 && recorded.saturating_add(span.count) > PART_POINTS {
                        parts.push(Vec::new());
                        recorded = 0;
                    }
                    recorded = recorded.saturating_add(span.count);
                    let (device, metric) = series_name(conn, &mut names, sid)?;
                    // Every point of the span as stored now (a later write to the same
                    // timestamp goes with its newer value; the cloud keeps the last too).
                    let limit = (span.count as usize).saturating_mul(4).saturating_add(4096);
                    let stored =
                        read::raw(conn, sid, span.first, span.last.saturating_add(1), limit)?;
                    let part = parts.last_mut().expect("at least one part");
                    part.extend(stored.points.into_iter().map(|(ts_ms, value)| Point {
                        device: device.clone(),
                        metric: metric.clone(),
                        ts_ms,
                        value,
                    }));
                }
                let points: usize = parts.iter().map(Vec::len).sum();
                total += points;
                out.push(OutboxBatch {
                    seq: BatchSeq(seq),
                    committed_ms,
                    parts,
                });
                if total >= max_points {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn record_rollups(&self, on: bool) -> Result<()> {
        self.with_conn(move |_, conn| {
            if on {
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, X'01')",
                    [ROLLUPS_KEY],
                )?;
            } else {
                conn.execute("DELETE FROM meta WHERE key = ?1", [ROLLUPS_KEY])?;
            }
            Ok(())
        })
        .await
    }

    async fn record_window(
        &self,
        alert: AlertId,
        device: &DeviceId,
        (from, to): (i64, i64),
        settled: bool,
    ) -> Result<WindowRecorded> {
        let device = device.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            if alert.get() <= windows_done(&tx)? {
                return Ok(WindowRecorded::Done);
            }
            let mut spans = Spans::new();
            let sids: Vec<i64> = tx
                .prepare_cached("SELECT id FROM series WHERE device = ?1")?
                .query_map([&device], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut passed = settled;
            for &sid in &sids {
                passed = passed || !read::raw(&tx, sid, to, i64::MAX, 1)?.points.is_empty();
            }
            if !passed {
                return Ok(WindowRecorded::Waiting);
            }
            for sid in sids {
                let stored = read::raw(&tx, sid, from, to, usize::MAX >> 1)?;
                let (Some(first), Some(last)) = (stored.points.first(), stored.points.last())
                else {
                    continue;
                };
                let count = u32::try_from(stored.points.len()).unwrap_or(u32::MAX);
                spans.insert(
                    sid,
                    Span {
                        first: first.0,
                        last: last.0,
                        count,
                    },
                );
            }
            if !spans.is_empty() {
                record(&tx, &spans, Lane::Points)?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![WINDOWS_KEY, alert.get().to_le_bytes().as_slice()],
            )?;
            tx.commit()?;
            Ok(WindowRecorded::Recorded)
        })
        .await
    }

    async fn windows_done(&self) -> Result<i64> {
        self.with_conn(move |_, conn| windows_done(conn)).await
    }

    async fn outbox_rollups(
        &self,
        after: BatchSeq,
        max_batches: usize,
    ) -> Result<Vec<RollupBatch>> {
        self.with_conn(move |_, conn| {
            let rows = pending_rows(conn, Lane::Rollups, after, max_batches)?;
            // Each batch's rows per series, as stored now.
            let mut read = Vec::with_capacity(rows.len());
            for (seq, committed_ms, blob) in rows {
                let mut series = Vec::new();
                for (sid, span) in spans_of(&blob)? {
                    let rows = rollup::rows(
                        conn,
                        crate::Resolution::Minute,
                        sid,
                        span.first,
                        span.last.saturating_add(1),
                    )?;
                    series.push((sid, rows));
                }
                read.push((seq, committed_ms, series));
            }
            // A minute rolled again is in a later batch too, as it is now: only the last
            // batch read carries it (the earlier would send the same row).
            let mut seen = std::collections::HashSet::new();
            for (_, _, series) in read.iter_mut().rev() {
                for (sid, rows) in series.iter_mut() {
                    rows.retain(|(b, _)| seen.insert((*sid, *b)));
                }
            }
            let mut names = HashMap::new();
            let mut out = Vec::with_capacity(read.len());
            for (seq, committed_ms, series) in read {
                let mut up = Vec::new();
                for (sid, rows) in series.into_iter().filter(|s| !s.1.is_empty()) {
                    let (device, metric) = series_name(conn, &mut names, sid)?;
                    up.push(SeriesRollups {
                        device,
                        metric,
                        rows: rows.into_iter().map(|(b, a)| a.row(b)).collect(),
                    });
                }
                out.push(RollupBatch {
                    seq: BatchSeq(seq),
                    committed_ms,
                    series: up,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn outbox_acked(&self, lane: Lane, seq: BatchSeq) -> Result<()> {
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let (before, _) = acked(&tx, lane)?;
            if seq <= before {
                return Ok(());
            }
            let delivered: i64 = tx.query_row(
                "SELECT COALESCE(SUM(points), 0) FROM outbox WHERE lane = ?1 AND seq <= ?2",
                params![lane.as_str(), seq.0],
                |r| r.get(0),
            )?;
            outbox_counts::add(&tx, lane, Fate::Delivered, delivered.max(0) as u64)?;
            tx.execute(
                "INSERT INTO outbox_acked (lane, acked_seq, acked_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (lane) DO UPDATE SET acked_seq = excluded.acked_seq, acked_ms = excluded.acked_ms",
                params![lane.as_str(), seq.0, sentio_core::time::now_ms()],
            )?;
            tx.execute(
                "DELETE FROM outbox WHERE lane = ?1 AND seq <= ?2",
                params![lane.as_str(), seq.0],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn outbox_counts(&self) -> Result<crate::OutboxCounts> {
        self.with_conn(|_, conn| outbox_counts::load(conn)).await
    }

    async fn outbox_status(&self) -> Result<OutboxStatus> {
        self.with_conn(move |inner, conn| {
            let (live, live_ms) = lane_status(conn, Lane::Points)?;
            let (backlog, backlog_ms) = lane_status(conn, Lane::Backlog)?;
            let (rollups, rollups_ms) = lane_status(conn, Lane::Rollups)?;
            // The last seq handed out, kept by AUTOINCREMENT even when its row is gone.
            let last: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let last = BatchSeq(last.unwrap_or(0).max(live.acked.0).max(backlog.acked.0));
            // Acknowledged rows are gone: what is left is pending, and everything before the
            // oldest of it is held by the cloud.
            let first_pending: Option<i64> =
                conn.query_row("SELECT MIN(seq) FROM outbox", [], |r| r.get(0))?;
            Ok(OutboxStatus {
                incarnation: inner.incarnation,
                acked: first_pending.map_or(last, |s| BatchSeq(s - 1)),
                last,
                pending_batches: live.pending_batches + backlog.pending_batches,
                pending_points: live.pending_points + backlog.pending_points,
                oldest_pending_ms: match (live.oldest_pending_ms, backlog.oldest_pending_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                last_ack_ms: live_ms.max(backlog_ms).max(rollups_ms),
                live,
                backlog,
                rollups,
            })
        })
        .await
    }
}
