//! What the edge's outbox took in per lane and what became of it (`outbox_counts`), changed
//! in the transactions that change the outbox: a batch recorded adds to `accepted`, one
//! acknowledged to `delivered` (`outbox.rs`), and under the disk budget one replaced by its
//! minute rollups to `degraded`, one removed undelivered to `dropped` (`budget_chain.rs`).
//!
//! **Invariant:** per lane, accepted = delivered + degraded + dropped + the points of the rows
//! still in `outbox` (pending), at every commit and so across restarts.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use crate::edge::{Lane, LaneCounts, OutboxCounts};

/// What became of a lane's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Accepted,
    Delivered,
    Degraded,
    Dropped,
}

impl Fate {
    fn column(self) -> &'static str {
        match self {
            Fate::Accepted => "accepted",
            Fate::Delivered => "delivered",
            Fate::Degraded => "degraded",
            Fate::Dropped => "dropped",
        }
    }
}

/// Adds `n` points of `lane` to `fate` (inside the transaction that does it).
pub(super) fn add(conn: &Connection, lane: Lane, fate: Fate, n: u64) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let c = fate.column();
    conn.prepare_cached(&format!(
        "INSERT INTO outbox_counts (lane, {c}) VALUES (?1, ?2) \
         ON CONFLICT (lane) DO UPDATE SET {c} = {c} + excluded.{c}"
    ))?
    .execute(params![lane.as_str(), n as i64])?;
    Ok(())
}

/// At open: an outbox from before the counts starts with its pending points accepted.
pub(super) fn seed(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO outbox_counts (lane, accepted) \
         SELECT lane, SUM(points) FROM outbox \
         WHERE lane NOT IN (SELECT lane FROM outbox_counts) GROUP BY lane",
        [],
    )?;
    Ok(())
}

fn lane_counts(conn: &Connection, lane: Lane) -> Result<LaneCounts> {
    let row: Option<(i64, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT accepted, delivered, degraded, dropped FROM outbox_counts WHERE lane = ?1",
        )?
        .query_row([lane.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let (accepted, delivered, degraded, dropped) = row.unwrap_or_default();
    let pending: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(points), 0) FROM outbox WHERE lane = ?1")?
        .query_row([lane.as_str()], |r| r.get(0))?;
    let n = |v: i64| v.max(0) as u64;
    Ok(LaneCounts {
        accepted: n(accepted),
        delivered: n(delivered),
        degraded: n(degraded),
        dropped: n(dropped),
        pending: n(pending),
    })
}

/// Every lane's counts, read in one snapshot.
pub(super) fn load(conn: &mut Connection) -> Result<OutboxCounts> {
    let tx = conn.transaction()?;
    Ok(OutboxCounts {
        live: lane_counts(&tx, Lane::Points)?,
        backlog: lane_counts(&tx, Lane::Backlog)?,
        rollups: lane_counts(&tx, Lane::Rollups)?,
    })
}
