//! The disk budget on an edge (outbox on): it degrades rather than loses. Each step is one
//! transaction, taken in this order while the database is over the budget:
//!
//! 1. [`drop_delivered`]: raw points the cloud already holds (no pending batch names them),
//!    oldest chunks first, never past what is rolled up (as on any node);
//! 2. [`degrade`]: undelivered raw points whose minutes are rolled up: their batches' spans
//!    leave the outbox (counted `degraded`), the minutes' rollup rows are recorded as a
//!    [`Lane::Rollups`] batch in the same transaction (they go up instead), and the raw
//!    points go (the series' `raw_before` moves, so reads answer from the rollups);
//! 3. [`drop_oldest`]: only then the oldest pending raw batch is removed with its points
//!    (counted `dropped`).
//!
//! **Invariant:** every undelivered point that leaves is counted, in the transaction that
//! removes it (`outbox_counts.rs`); a batch is degraded by whole spans only, and a cut never
//! splits a span, so the counts stay exact.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::outbox::{self, spans_blob, spans_of};
use super::outbox_counts::{self, Fate};
use super::retention::{expire_raw_step, remove_raw_range};
use super::rollup::{self, MINUTE, floor};
use super::series::{Span, Spans};
use crate::edge::Lane;
use crate::{Resolution, Result, StoreError};

/// Chunks of a series degraded at most per step (so the oldest go first across series).
const DEGRADE_CHUNKS_PER_STEP: i64 = 4;
/// Chunks looked at per step for a series to work on (oldest first).
const CANDIDATE_CHUNKS: i64 = 4_096;

/// Spans with their series.
type SeriesSpans = Vec<(i64, Span)>;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Removed this many delivered raw points.
    Removed(u64),
    /// Replaced this many undelivered raw points by their minutes' rollups.
    Degraded(u64),
    /// Removed this many undelivered raw points.
    Dropped(u64),
    /// Nothing left to do.
    Nothing,
}

/// The pending raw spans (live and backlog lanes) per series, as far as read: a batch
/// acknowledged since stays listed, which only makes the chain more careful.
#[derive(Debug, Default)]
pub(super) struct Pending {
    by_series: HashMap<i64, Vec<(i64, Span)>>,
    /// Rows up to this seq are read.
    seen: i64,
}

impl Pending {
    /// Reads the raw lanes' rows recorded since the last call.
    fn refresh(&mut self, conn: &Connection) -> Result<()> {
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT seq, spans FROM outbox WHERE seq > ?1 AND lane IN (?2, ?3) ORDER BY seq",
            )?
            .query_map(
                params![self.seen, Lane::Points.as_str(), Lane::Backlog.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        for (seq, blob) in rows {
            for (sid, span) in spans_of(&blob)? {
                self.by_series.entry(sid).or_default().push((seq, span));
            }
            self.seen = self.seen.max(seq);
        }
        Ok(())
    }

    /// Where the series' undelivered points start, to the minute (`i64::MAX`: none).
    fn start_of(&self, sid: i64) -> i64 {
        self.by_series
            .get(&sid)
            .and_then(|v| v.iter().map(|(_, s)| floor(s.first, MINUTE)).min())
            .unwrap_or(i64::MAX)
    }

    fn spans(&self, sid: i64) -> &[(i64, Span)] {
        self.by_series.get(&sid).map_or(&[], Vec::as_slice)
    }

    /// Forgets the series' spans that `gone` says left the outbox.
    fn forget(&mut self, sid: i64, gone: impl Fn(i64, &Span) -> bool) {
        if let Some(v) = self.by_series.get_mut(&sid) {
            v.retain(|(seq, s)| !gone(*seq, s));
        }
    }
}

/// One step of the chain (the caller holds the connection and checks the budget).
pub(super) fn step(conn: &mut Connection, pending: &mut Pending) -> Result<Outcome> {
    // Under the connection's lock: no append can commit between this read and the step.
    pending.refresh(conn)?;
    let n = drop_delivered(conn, pending)?;
    if n > 0 {
        return Ok(Outcome::Removed(n));
    }
    if let Some(n) = degrade(conn, pending)? {
        return Ok(Outcome::Degraded(n));
    }
    Ok(match drop_oldest(conn, pending)? {
        Some(n) => Outcome::Dropped(n),
        None => Outcome::Nothing,
    })
}

/// Series with raw points rolled up and not yet removed, by their oldest chunk: (series,
/// chunk end).
fn candidates(conn: &Connection) -> Result<Vec<(i64, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.series_id, c.end_ts FROM chunks c \
             JOIN series_marks m ON m.series_id = c.series_id \
             WHERE c.end_ts < m.rolled_until AND c.end_ts >= m.raw_before \
             ORDER BY c.start_ts LIMIT ?1",
        )?
        .query_map([CANDIDATE_CHUNKS], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Step 1: the oldest chunk wholly before its series' undelivered points goes, with a few
/// after it up to them. Returns points removed.
fn drop_delivered(conn: &mut Connection, pending: &Pending) -> Result<u64> {
    for (sid, end) in candidates(conn)? {
        let cut = pending.start_of(sid);
        if end < cut {
            let (n, _) = expire_raw_step(conn, sid, cut, super::retention::BUDGET_CHUNKS_PER_STEP)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
    Ok(0)
}

/// Where series `sid` can be cut (a minute boundary at most `rolled`) so that no pending span
/// straddles the cut: moved back before each span it would split.
fn clean_cut(spans: &[(i64, Span)], rolled: i64) -> i64 {
    let mut cut = rolled;
    while let Some(back) = spans
        .iter()
        .filter(|(_, s)| s.first < cut && s.last >= cut)
        .map(|(_, s)| floor(s.first, MINUTE))
        .min()
    {
        cut = back;
    }
    cut
}

/// Step 2: the undelivered raw points of the series with the oldest rolled-up chunk, up to a
/// clean cut, are replaced by their minutes' rollups. Returns points degraded, or `None` when
/// no series has any to degrade.
fn degrade(conn: &mut Connection, pending: &mut Pending) -> Result<Option<u64>> {
    let mut tried = std::collections::HashSet::new();
    for (sid, _) in candidates(conn)? {
        if !tried.insert(sid) {
            continue;
        }
        let m = rollup::marks(conn, sid)?;
        let Some(rolled) = m.rolled_until else {
            continue;
        };
        // At most a few chunks at a time, oldest first.
        let nth: Option<i64> = conn
            .prepare_cached(
                "SELECT start_ts FROM chunks WHERE series_id = ?1 AND end_ts >= ?2 \
                 ORDER BY start_ts LIMIT 1 OFFSET ?3",
            )?
            .query_row(params![sid, m.raw_before, DEGRADE_CHUNKS_PER_STEP], |r| {
                r.get(0)
            })
            .optional()?;
        let limit = nth
            .map(|s| floor(s, MINUTE))
            .filter(|s| *s > m.raw_before)
            .map_or(rolled, |s| s.min(rolled));
        let cut = clean_cut(pending.spans(sid), floor(limit, MINUTE));
        if cut <= m.raw_before {
            continue;
        }
        let doomed: Vec<i64> = pending
            .spans(sid)
            .iter()
            .filter(|(_, s)| s.last < cut)
            .map(|(seq, _)| *seq)
            .collect();
        if doomed.is_empty() {
            continue;
        }
        let tx = conn.transaction()?;
        let mut degraded = 0u64;
        let mut minutes: Option<(i64, i64)> = None;
        for seq in doomed {
            let Some((lane, blob)) = row(&tx, seq)? else {
                continue; // acknowledged meanwhile: delivered, not degraded
            };
            let (gone, kept): (SeriesSpans, SeriesSpans) = spans_of(&blob)?
                .into_iter()
                .partition(|(s, span)| *s == sid && span.last < cut);
            for (_, span) in &gone {
                let (lo, hi) = (floor(span.first, MINUTE), floor(span.last, MINUTE));
                minutes = Some(minutes.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
            let n: u64 = gone.iter().map(|(_, s)| u64::from(s.count)).sum();
            rewrite(&tx, seq, &kept)?;
            outbox_counts::add(&tx, lane, Fate::Degraded, n)?;
            degraded += n;
        }
        // The minutes' rows go up instead (as they are stored when sent).
        if let Some((lo, hi)) = minutes {
            let rows = rollup::rows(&tx, Resolution::Minute, sid, lo, hi + MINUTE)?.len();
            let spans = Spans::from([(
                sid,
                Span {
                    first: lo,
                    last: hi,
                    count: u32::try_from(rows).unwrap_or(u32::MAX),
                },
            )]);
            outbox::record(&tx, &spans, Lane::Rollups)?;
        }
        remove_raw_range(&tx, sid, i64::MIN, cut)?;
        let mut m = rollup::marks(&tx, sid)?;
        m.raw_before = m.raw_before.max(cut);
        rollup::save_marks(&tx, sid, &m)?;
        tx.commit()?;
        pending.forget(sid, |_, s| s.last < cut);
        tracing::debug!(
            series = sid,
            degraded,
            cut,
            "undelivered raw points degraded to their minute rollups"
        );
        return Ok(Some(degraded));
    }
    Ok(None)
}

/// Step 3: the oldest pending raw batch goes, with its points. Returns points dropped, or
/// `None` when no raw batch is pending.
fn drop_oldest(conn: &mut Connection, pending: &mut Pending) -> Result<Option<u64>> {
    let tx = conn.transaction()?;
    let oldest: Option<i64> = tx
        .prepare_cached("SELECT MIN(seq) FROM outbox WHERE lane IN (?1, ?2)")?
        .query_row(
            params![Lane::Points.as_str(), Lane::Backlog.as_str()],
            |r| r.get(0),
        )?;
    let Some(seq) = oldest else {
        return Ok(None);
    };
    let (lane, blob) = row(&tx, seq)?.ok_or_else(|| StoreError::Corrupt("outbox row".into()))?;
    let spans = spans_of(&blob)?;
    for (sid, span) in &spans {
        remove_raw_range(&tx, *sid, span.first, span.last.saturating_add(1))?;
    }
    let n: u64 = spans.iter().map(|(_, s)| u64::from(s.count)).sum();
    rewrite(&tx, seq, &[])?;
    outbox_counts::add(&tx, lane, Fate::Dropped, n)?;
    tx.commit()?;
    for (sid, _) in &spans {
        pending.forget(*sid, |s, _| s == seq);
    }
    tracing::debug!(
        seq,
        dropped = n,
        "an undelivered batch dropped: over the disk budget with nothing left to degrade"
    );
    Ok(Some(n))
}

/// A pending row's lane and spans.
fn row(conn: &Connection, seq: i64) -> Result<Option<(Lane, Vec<u8>)>> {
    let r: Option<(String, Vec<u8>)> = conn
        .prepare_cached("SELECT lane, spans FROM outbox WHERE seq = ?1")?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    r.map(|(lane, blob)| {
        Lane::parse(&lane)
            .map(|l| (l, blob))
            .ok_or_else(|| StoreError::Corrupt(format!("outbox lane {lane}")))
    })
    .transpose()
}

/// Leaves row `seq` with the spans `kept` (removed when none is left; its seq is never
/// reused, and a lane's seqs only need to increase).
fn rewrite(conn: &Connection, seq: i64, kept: &[(i64, Span)]) -> Result<()> {
    if kept.is_empty() {
        conn.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?
            .execute([seq])?;
        return Ok(());
    }
    let (blob, points) = spans_blob(kept.iter().map(|(sid, s)| (sid, s)));
    conn.prepare_cached("UPDATE outbox SET spans = ?2, points = ?3 WHERE seq = ?1")?
        .execute(params![seq, blob, points as i64])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: i64, last: i64) -> Span {
        Span {
            first,
            last,
            count: 1,
        }
    }

    #[test]
    fn a_cut_moves_back_before_every_span_it_would_split() {
        let m = MINUTE;
        // Spans [1m10s, 3m5s] and [2m50s, 4m] straddle 4m and 3m: the cut ends at 1m.
        let spans = [
            (1, span(m + 10_000, 3 * m + 5_000)),
            (2, span(3 * m - 10_000, 4 * m)),
            (3, span(4 * m + 1, 5 * m)),
        ];
        assert_eq!(clean_cut(&spans, 4 * m), m);
        assert_eq!(clean_cut(&spans, 10 * m), 10 * m);
        assert_eq!(clean_cut(&[], 7 * m), 7 * m);
    }
}
