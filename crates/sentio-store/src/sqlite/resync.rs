//! Re-sync on SQLite (see [`crate::resync`]): hourly digests read from `rollup_1h` and
//! `series_marks`, and `edge_resyncs`, the runs, whose progress is written in the same
//! transaction as each part's points (`series::write_points`), so a part is applied once
//! whatever crashes between the commit and the acknowledgement.

use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::EdgeId;

use super::{Inner, rollup, series};
use crate::resync::{HourSum, ResyncPart, ResyncRun, ResyncState, SeriesHours};
use crate::{Applied, Resolution, Result, StoreError};

/// Hourly digests of the series in `[from, to)`: of `edge`'s devices, or of every series.
pub(super) fn hour_digests(
    conn: &Connection,
    edge: Option<&EdgeId>,
    from: i64,
    to: i64,
) -> Result<Vec<SeriesHours>> {
    let series: Vec<(i64, String, String)> = match edge {
        Some(e) => conn
            .prepare_cached(
                "SELECT s.id, s.device, s.metric FROM series s \
                 JOIN edge_devices d ON d.device = s.device WHERE d.edge = ?1 ORDER BY s.id",
            )?
            .query_map([e.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached("SELECT id, device, metric FROM series ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?,
    };
    let mut out = Vec::with_capacity(series.len());
    for (sid, device, metric) in series {
        let hours: Vec<HourSum> = rollup::rows(conn, Resolution::Hour, sid, from, to)?
            .into_iter()
            .map(|(hour, acc)| HourSum {
                hour,
                count: acc.count,
                sum: acc.sum,
            })
            .collect();
        // Every series, rolled up or not: the edge compares nothing of one the cloud holds
        // and has not rolled up yet. Minutes an edge rolled up count as rolled up here.
        out.push(SeriesHours {
            device,
            metric,
            rolled_until: rollup::read_marks(conn, sid)?.rolled_until,
            hours,
        });
    }
    Ok(out)
}

const RUN_COLUMNS: &str = "id, edge, state, from_ms, to_ms, hours_compared, hours_differing, \
                           points, parts, started_ms, finished_ms, error, rollup_rows";

/// Adds `rollup_rows` to the runs of a database made before aggregates re-syncs.
pub(super) fn add_rollup_rows_column(conn: &Connection) -> Result<()> {
    super::add_column_if_missing(
        conn,
        "edge_resyncs",
        "rollup_rows",
        "INTEGER NOT NULL DEFAULT 0",
    )
}

fn run_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResyncRun> {
    let bad = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let edge = EdgeId::parse(&r.get::<_, String>(1)?).map_err(|e| bad(1, Box::new(e)))?;
    let state = ResyncState::parse(&r.get::<_, String>(2)?)
        .ok_or_else(|| bad(2, "not a re-sync state".into()))?;
    Ok(ResyncRun {
        id: r.get(0)?,
        edge,
        state,
        from: r.get(3)?,
        to: r.get(4)?,
        hours_compared: r.get::<_, i64>(5)? as u64,
        hours_differing: r.get::<_, i64>(6)? as u64,
        points_resent: r.get::<_, i64>(7)? as u64,
        parts: r.get::<_, i64>(8)? as u64,
        started_ms: r.get(9)?,
        finished_ms: r.get(10)?,
        error: r.get(11)?,
        rollup_rows_resent: r.get::<_, i64>(12)? as u64,
    })
}

/// The edge's latest run.
pub(super) fn last(conn: &Connection, edge: &EdgeId) -> Result<Option<ResyncRun>> {
    conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM edge_resyncs WHERE edge = ?1 ORDER BY id DESC LIMIT 1"
    ))?
    .query_row([edge.as_str()], run_of)
    .optional()
    .map_err(Into::into)
}

/// Starts a run (the edge's running one, if any, is marked failed: replaced).
pub(super) fn start(conn: &mut Connection, edge: &EdgeId, from: i64, to: i64) -> Result<ResyncRun> {
    let tx = conn.transaction()?;
    let known: Option<i64> = tx
        .query_row("SELECT 1 FROM edges WHERE id = ?1", [edge.as_str()], |r| {
            r.get(0)
        })
        .optional()?;
    if known.is_none() {
        return Err(StoreError::UnknownEdge(edge.to_string()));
    }
    let now = sentio_core::time::now_ms();
    tx.execute(
        "UPDATE edge_resyncs SET state = 'failed', finished_ms = ?2, \
         error = 'replaced by a later re-sync' WHERE edge = ?1 AND state = 'running'",
        params![edge.as_str(), now],
    )?;
    tx.execute(
        "INSERT INTO edge_resyncs (edge, state, from_ms, to_ms, started_ms) \
         VALUES (?1, 'running', ?2, ?3, ?4)",
        params![edge.as_str(), from, to, now],
    )?;
    let run = last(&tx, edge)?.ok_or_else(|| StoreError::Corrupt("re-sync run".into()))?;
    tx.commit()?;
    Ok(run)
}

/// Applies a part once, with the run's progress, in one transaction: its points (the same
/// timestamp replaces the held point) and its minute rollups (replacing every minute the
/// cloud held in the hours they touch).
pub(super) fn apply(
    inner: &Inner,
    conn: &mut Connection,
    edge: &EdgeId,
    part: &ResyncPart,
) -> Result<Applied> {
    // The connection is held for the whole check and write: no other writer can apply the
    // same part between them.
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT state, parts FROM edge_resyncs WHERE id = ?1 AND edge = ?2",
            params![part.id, edge.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((state, parts)) = row else {
        return Ok(Applied::Duplicate);
    };
    if state != ResyncState::Running.as_str() || i64::from(part.part) < parts {
        return Ok(Applied::Duplicate);
    }
    if i64::from(part.part) > parts {
        return Err(StoreError::InvalidQuery(format!(
            "re-sync run {}: part {} after {parts} parts",
            part.id, part.part
        )));
    }
    let (id, n, last, f) = (part.id, part.points.len() as i64, part.last, part.figures);
    let rows: usize = part.rollups.iter().map(|s| s.rows.len()).sum();
    let mut touched = Vec::new();
    series::write_points(inner, conn, &part.points, |tx, _| {
        for s in &part.rollups {
            let sid = series::series_id(inner, tx, s.device.as_str(), &s.metric)?;
            rollup::replace_edge_hours(tx, sid, &s.rows)?;
            touched.push((sid, s.rows.first().map_or(i64::MAX, |r| r.bucket_ms)));
        }
        tx.execute(
            "UPDATE edge_resyncs SET parts = parts + 1, points = points + ?2, \
             hours_compared = ?3, hours_differing = ?4, \
             state = CASE WHEN ?5 THEN 'done' ELSE state END, \
             finished_ms = CASE WHEN ?5 THEN ?6 ELSE finished_ms END, \
             rollup_rows = rollup_rows + ?7 WHERE id = ?1",
            params![
                id,
                n,
                f.compared as i64,
                f.differing as i64,
                last,
                sentio_core::time::now_ms(),
                rows as i64
            ],
        )?;
        Ok(())
    })?;
    super::edges::rollups_written(inner, &touched);
    Ok(Applied::Stored)
}
