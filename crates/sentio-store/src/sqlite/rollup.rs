//! Rollups: per series, the statistics of every 1-minute and 1-hour bucket (`rollup_1m`,
//! `rollup_1h`), kept longer than raw points.
//!
//! The maintenance pass computes 1-minute rows from the raw points (both tiers) up to a few
//! minutes before `now`, and each 1-hour row from its 1-minute rows; `series_marks.rolled_until`
//! says how far it got. A point appended into a bucket already rolled up (a late point) marks the
//! bucket in `rollup_dirty` in the append's own transaction; the next pass recomputes that
//! bucket from the raw points, or, where the raw points of the bucket have expired, folds the
//! late points into the stored row and removes them from the raw tiers.
//!
//! Reads: a step aggregate or chart over a range whose raw points have expired is answered from
//! the rollups up to `rolled_until` and from the raw points after it.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::cached_tx::CachedTx;
use super::read::{self, Acc};
use super::retention::remove_raw_range;
use super::rollup_pack::{self, DAY};
use crate::{Agg, RangeResult, Resolution, Result};

/// A minute and an hour in ms.
pub(super) const MINUTE: i64 = 60_000;
pub(super) const HOUR: i64 = 3_600_000;
/// Buckets younger than this (behind `now`) are not rolled up yet: most late points of a live
/// series land in the raw head before their minute is rolled up.
pub(super) const SETTLE_MS: i64 = 5 * MINUTE;
/// New buckets are rolled up once this much time is ready (one transaction per series every
/// 15 minutes, not every pass); late buckets are handled at the next pass.
pub(super) const ROLL_BATCH_MS: i64 = 15 * MINUTE;
/// Most raw time covered by one rollup transaction of one series.
const STEP_SPAN_MS: i64 = 2 * HOUR;
/// Most late buckets handled by one rollup transaction of one series.
const DIRTY_PER_STEP: i64 = 256;

/// The start of the `width` bucket holding `t` (buckets aligned on multiples of `width`); for
/// a `t` so low that its bucket starts below `i64::MIN`, the first bucket that does not.
pub(super) fn floor(t: i64, width: i64) -> i64 {
    let q = t.div_euclid(width);
    q.checked_mul(width).unwrap_or((q + 1) * width)
}

/// Where a series stands (see `series_marks` in schema.sql).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Marks {
    pub(super) rolled_until: Option<i64>,
    pub(super) raw_before: i64,
    pub(super) m1_before: i64,
    pub(super) h1_before: i64,
}

pub(super) fn marks(conn: &Connection, sid: i64) -> Result<Marks> {
    Ok(conn
        .prepare_cached(
            "SELECT rolled_until, raw_before, m1_before, h1_before FROM series_marks \
             WHERE series_id = ?1",
        )?
        .query_row([sid], |r| {
            Ok(Marks {
                rolled_until: r.get(0)?,
                raw_before: r.get(1)?,
                m1_before: r.get(2)?,
                h1_before: r.get(3)?,
            })
        })
        .optional()?
        .unwrap_or(Marks {
            rolled_until: None,
            raw_before: i64::MIN,
            m1_before: i64::MIN,
            h1_before: i64::MIN,
        }))
}

pub(super) fn save_marks(conn: &Connection, sid: i64, m: &Marks) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO series_marks \
         (series_id, rolled_until, raw_before, m1_before, h1_before) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        sid,
        m.rolled_until,
        m.raw_before,
        m.m1_before,
        m.h1_before
    ])?;
    Ok(())
}

/// Marks the 1-minute bucket of `ts` for recomputation: a point arrived after it was rolled
/// up (or may have; a mark on a bucket not rolled up yet is dropped by the next pass).
pub(super) fn mark_late(
    conn: &Connection,
    sid: i64,
    ts: i64,
    last: &mut Option<(i64, i64)>,
) -> Result<()> {
    let key = (sid, floor(ts, MINUTE));
    if *last == Some(key) {
        return Ok(()); // a backfill marks each minute once, not once a point
    }
    conn.prepare_cached("INSERT OR IGNORE INTO rollup_dirty (series_id, bucket) VALUES (?1, ?2)")?
        .execute(params![key.0, key.1])?;
    *last = Some(key);
    Ok(())
}

/// The rollup table of a resolution.
fn table(res: Resolution) -> &'static str {
    match res {
        Resolution::Hour => "rollup_1h",
        _ => "rollup_1m",
    }
}

/// Rollup rows of `[from, to)` in bucket order (1-minute ones from packed days too).
pub(super) fn rows(
    conn: &Connection,
    res: Resolution,
    sid: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Acc)>> {
    let mut out = table_rows_of(conn, res, sid, from, to)?;
    if res != Resolution::Hour {
        let packed = rollup_pack::rows_in(conn, sid, from, to)?;
        if !packed.is_empty() {
            out.extend(packed);
            out.sort_by_key(|(b, _)| *b);
        }
    }
    Ok(out)
}

/// `rollup_1m` rows (not packed) of `[from, to)` in bucket order.
pub(super) fn table_rows(
    conn: &Connection,
    sid: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Acc)>> {
    table_rows_of(conn, Resolution::Minute, sid, from, to)
}

fn table_rows_of(
    conn: &Connection,
    res: Resolution,
    sid: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Acc)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT bucket, count, sum, min, max, first, last, first_off, last_off FROM {} \
         WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket",
        table(res)
    ))?;
    let rows = stmt.query_map(params![sid, from, to], |r| {
        let b: i64 = r.get(0)?;
        Ok((
            b,
            Acc {
                count: r.get::<_, i64>(1)? as u64,
                sum: r.get(2)?,
                min: r.get(3)?,
                max: r.get(4)?,
                first: (b + r.get::<_, i64>(7)?, r.get(5)?),
                last: (b + r.get::<_, i64>(8)?, r.get(6)?),
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Rollup rows of a series from `from` on, at most `limit` (export), read a window at a time
/// and jumping over empty stretches.
pub(super) fn export_rows(
    conn: &Connection,
    res: Resolution,
    sid: i64,
    from: i64,
    limit: usize,
) -> Result<Vec<crate::RollupRow>> {
    let window = if res == Resolution::Hour {
        30 * DAY
    } else {
        DAY
    };
    let mut out = Vec::new();
    let mut cursor = from;
    while out.len() < limit {
        // The first bucket at or after the cursor, in the table or in a packed day.
        let in_table: Option<i64> = conn
            .prepare_cached(&format!(
                "SELECT MIN(bucket) FROM {} WHERE series_id = ?1 AND bucket >= ?2",
                table(res)
            ))?
            .query_row(params![sid, cursor], |r| r.get(0))?;
        let in_days: Option<i64> = if res == Resolution::Hour {
            None
        } else {
            conn.prepare_cached(
                "SELECT MIN(day) FROM rollup_1m_days WHERE series_id = ?1 AND day + 86400000 > ?2",
            )?
            .query_row(params![sid, cursor], |r| r.get(0))?
        };
        let Some(start) = [in_table, in_days.map(|d| d.max(cursor))]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        let end = start.saturating_add(window);
        for (b, a) in rows(conn, res, sid, start, end)? {
            if out.len() == limit {
                break;
            }
            out.push(a.row(b));
        }
        cursor = end;
    }
    Ok(out)
}

impl Acc {
    /// The rollup row of bucket `b` holding this.
    pub(super) fn row(&self, b: i64) -> crate::RollupRow {
        crate::RollupRow {
            bucket_ms: b,
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            first: self.first,
            last: self.last,
        }
    }

    fn of_row(r: &crate::RollupRow) -> Self {
        Self {
            count: r.count,
            sum: r.sum,
            min: r.min,
            max: r.max,
            first: r.first,
            last: r.last,
        }
    }
}

/// Writes 1-minute rows that an edge rolled up (each replacing the minute's row), refreshes
/// their hours, and raises the series' edge cover (`edge_rollup_cover`) past the last.
pub(super) fn write_edge_minutes(
    conn: &Connection,
    sid: i64,
    rows: &[crate::RollupRow],
) -> Result<()> {
    let mut hours = BTreeSet::new();
    let mut until = i64::MIN;
    for r in rows {
        write_row(conn, Resolution::Minute, sid, r.bucket_ms, &Acc::of_row(r))?;
        hours.insert(floor(r.bucket_ms, HOUR));
        until = until.max(r.bucket_ms.saturating_add(MINUTE));
    }
    refresh_hours(conn, sid, &marks(conn, sid)?, &hours)?;
    conn.prepare_cached(
        "INSERT INTO edge_rollup_cover (series_id, until) VALUES (?1, ?2) \
         ON CONFLICT (series_id) DO UPDATE SET until = MAX(until, excluded.until)",
    )?
    .execute(params![sid, until])?;
    Ok(())
}

/// Writes 1-minute rows an edge re-sent (a re-sync of hours that differ): every minute held of
/// the hours they touch is removed first, so those hours hold the edge's minutes and no other;
/// then as [`write_edge_minutes`].
pub(super) fn replace_edge_hours(
    conn: &Connection,
    sid: i64,
    rows: &[crate::RollupRow],
) -> Result<()> {
    let hours: BTreeSet<i64> = rows.iter().map(|r| floor(r.bucket_ms, HOUR)).collect();
    for &h in &hours {
        rollup_pack::unpack(conn, sid, floor(h, DAY))?;
        conn.prepare_cached(
            "DELETE FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3",
        )?
        .execute(params![sid, h, h + HOUR])?;
    }
    write_edge_minutes(conn, sid, rows)
}

/// Where an edge's rollups of the series end (`edge_rollup_cover`), if it has any.
fn edge_cover(conn: &Connection, sid: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT until FROM edge_rollup_cover WHERE series_id = ?1")?
        .query_row([sid], |r| r.get(0))
        .optional()?)
}

/// The marks as reads see them: where an edge's rollups cover a series, its raw points count
/// as gone before the cover (the raw points it sent around alerts are read as raw only).
pub(super) fn read_marks(conn: &Connection, sid: i64) -> Result<Marks> {
    let mut m = marks(conn, sid)?;
    if let Some(until) = edge_cover(conn, sid)? {
        m.raw_before = m.raw_before.max(until);
        m.rolled_until = Some(m.rolled_until.map_or(until, |r| r.max(until)));
    }
    Ok(m)
}

/// The last point the rollups know of a series (when its raw points have all expired).
pub(super) fn latest(conn: &Connection, sid: i64) -> Result<Option<(i64, f64)>> {
    let newest_day: Option<i64> = conn
        .prepare_cached("SELECT MAX(day) FROM rollup_1m_days WHERE series_id = ?1")?
        .query_row([sid], |r| r.get(0))?;
    let packed = match newest_day {
        Some(day) => rollup_pack::rows_in(conn, sid, day, day + DAY)?
            .last()
            .map(|(_, a)| a.last),
        None => None,
    };
    for res in [Resolution::Minute, Resolution::Hour] {
        let last: Option<(i64, i64, f64)> = conn
            .prepare_cached(&format!(
                "SELECT bucket, last_off, last FROM {} WHERE series_id = ?1 \
                 ORDER BY bucket DESC LIMIT 1",
                table(res)
            ))?
            .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((b, off, v)) = last {
            let table = (b + off, v);
            return Ok(Some(match packed {
                Some(p) if p.0 > table.0 => p,
                _ => table,
            }));
        }
        if packed.is_some() {
            return Ok(packed);
        }
    }
    Ok(None)
}

/// Writes a `rollup_1m` row as it is (its day is not packed).
pub(super) fn insert_minute_row(conn: &Connection, sid: i64, b: i64, a: &Acc) -> Result<()> {
    insert_row(conn, Resolution::Minute, sid, b, a)
}

fn write_row(conn: &Connection, res: Resolution, sid: i64, b: i64, a: &Acc) -> Result<()> {
    if res != Resolution::Hour {
        rollup_pack::unpack(conn, sid, floor(b, DAY))?;
    }
    insert_row(conn, res, sid, b, a)
}

fn insert_row(conn: &Connection, res: Resolution, sid: i64, b: i64, a: &Acc) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {} \
         (series_id, bucket, count, sum, min, max, first, last, first_off, last_off) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        table(res)
    ))?
    .execute(params![
        sid,
        b,
        a.count as i64,
        a.sum,
        a.min,
        a.max,
        a.first.1,
        a.last.1,
        a.first.0 - b,
        a.last.0 - b
    ])?;
    Ok(())
}

fn delete_row(conn: &Connection, res: Resolution, sid: i64, b: i64) -> Result<()> {
    if res != Resolution::Hour {
        rollup_pack::unpack(conn, sid, floor(b, DAY))?;
    }
    conn.prepare_cached(&format!(
        "DELETE FROM {} WHERE series_id = ?1 AND bucket = ?2",
        table(res)
    ))?
    .execute(params![sid, b])?;
    Ok(())
}

/// Recomputes the 1-hour rows of `hours` from their 1-minute rows; an hour whose 1-minute rows
/// have partly expired is left as it is (it was complete when they were).
fn refresh_hours(conn: &Connection, sid: i64, m: &Marks, hours: &BTreeSet<i64>) -> Result<()> {
    for &h in hours {
        if h < m.m1_before {
            continue;
        }
        let minutes = rows(conn, Resolution::Minute, sid, h, h + HOUR)?;
        let mut it = minutes.into_iter();
        match it.next() {
            None => delete_row(conn, Resolution::Hour, sid, h)?,
            Some((_, mut acc)) => {
                for (_, a) in it {
                    acc.add(a);
                }
                write_row(conn, Resolution::Hour, sid, h, &acc)?;
            }
        }
    }
    Ok(())
}

/// Adds late points to a stored row (1-minute or 1-hour), creating it if needed.
fn fold_into(conn: &Connection, res: Resolution, sid: i64, b: i64, late: Acc) -> Result<()> {
    let mut acc = match rows(conn, res, sid, b, b + 1)?.pop() {
        Some((_, a)) => a,
        None => return write_row(conn, res, sid, b, &late),
    };
    acc.merge(late);
    write_row(conn, res, sid, b, &acc)
}

/// The oldest raw timestamp of a series over both tiers.
pub(super) fn oldest_raw(conn: &Connection, sid: i64) -> Result<Option<i64>> {
    let head = super::head::oldest(conn, sid)?;
    let sealed: Option<i64> = conn
        .prepare_cached("SELECT MIN(start_ts) FROM chunks WHERE series_id = ?1")?
        .query_row([sid], |r| r.get(0))?;
    Ok(match (head, sealed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The first raw timestamp at or after `t` over both tiers.
pub(super) fn next_raw(conn: &Connection, sid: i64, t: i64) -> Result<Option<i64>> {
    let head = super::head::first_at_or_after(conn, sid, t)?;
    let sealed: Option<i64> = conn
        .prepare_cached("SELECT MIN(start_ts) FROM chunks WHERE series_id = ?1 AND start_ts >= ?2")?
        .query_row(params![sid, t], |r| r.get(0))?;
    Ok(match (head, sealed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// What one rollup transaction of a series did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RollStep {
    /// 1-minute rows written or recomputed.
    pub(super) buckets: u64,
    /// Whether the series has more to roll up before `target`.
    pub(super) more: bool,
    /// The series' `rolled_until` after the step.
    pub(super) rolled_until: Option<i64>,
    /// Whether it wrote (a transaction), or found nothing to do.
    pub(super) wrote: bool,
}

/// One rollup transaction of series `sid`: late buckets first, then new buckets up to `target`
/// (a minute boundary), at most [`STEP_SPAN_MS`] of raw time.
pub(super) fn roll_step(conn: &mut Connection, sid: i64, target: i64) -> Result<RollStep> {
    // Most calls have nothing to do: answered by two reads, without a write transaction.
    let m = marks(conn, sid)?;
    let dirty_waiting: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM rollup_dirty WHERE series_id = ?1)")?
        .query_row([sid], |r| r.get(0))?;
    // Never rolled up: idle until its oldest minute is before the target (a new series'
    // first minutes, visited at every pass, write nothing).
    let idle = !dirty_waiting
        && match m.rolled_until {
            Some(r) => target - r < ROLL_BATCH_MS,
            None => oldest_raw(conn, sid)?.is_none_or(|t| floor(t, MINUTE) >= target),
        };
    if idle {
        return Ok(RollStep {
            rolled_until: m.rolled_until,
            ..RollStep::default()
        });
    }
    let tx = CachedTx::begin(conn)?;
    let mut m = marks(&tx, sid)?;
    // Minutes an edge rolled up keep its rows (complete where this node may hold only the
    // raw points it sent around an alert).
    let cover = edge_cover(&tx, sid)?.unwrap_or(i64::MIN);
    let mut step = RollStep {
        wrote: true,
        ..RollStep::default()
    };
    let mut hours = BTreeSet::new();
    // The minutes written (first, last, rows): an edge's outbox batch of them.
    let mut rolled: Option<(i64, i64, u32)> = None;
    let mut note = |b: i64| {
        rolled = Some(rolled.map_or((b, b, 1), |(lo, hi, n)| (lo.min(b), hi.max(b), n + 1)));
    };

    let dirty: Vec<i64> = {
        let mut stmt = tx.prepare_cached(
            "SELECT bucket FROM rollup_dirty WHERE series_id = ?1 ORDER BY bucket LIMIT ?2",
        )?;
        stmt.query_map(params![sid, DIRTY_PER_STEP + 1], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    step.more = dirty.len() as i64 > DIRTY_PER_STEP;
    for &b in dirty.iter().take(DIRTY_PER_STEP as usize) {
        tx.prepare_cached("DELETE FROM rollup_dirty WHERE series_id = ?1 AND bucket = ?2")?
            .execute(params![sid, b])?;
        if m.rolled_until.is_none_or(|r| b >= r) || b < cover {
            continue; // not rolled up yet (the advance below takes it), or the edge's
        }
        if b >= m.raw_before {
            // The bucket's raw points are all there: recompute it from them.
            let (accs, _) = read::bucket_accs(&tx, sid, (b, b + MINUTE), MINUTE, 1)?;
            match accs.first() {
                Some((_, a)) => {
                    write_row(&tx, Resolution::Minute, sid, b, a)?;
                    note(b);
                }
                None => delete_row(&tx, Resolution::Minute, sid, b)?,
            }
            hours.insert(floor(b, HOUR));
        } else {
            // Late points where raw has expired: fold them into the rows, then drop them
            // from the raw tiers like the rest of that time.
            let (accs, _) = read::bucket_accs(&tx, sid, (b, b + MINUTE), MINUTE, 1)?;
            if let Some(&(_, late)) = accs.first() {
                let h = floor(b, HOUR);
                if b >= m.m1_before {
                    fold_into(&tx, Resolution::Minute, sid, b, late)?;
                }
                if h >= m.m1_before {
                    hours.insert(h);
                } else if h >= m.h1_before {
                    fold_into(&tx, Resolution::Hour, sid, h, late)?;
                }
            }
            remove_raw_range(&tx, sid, b, b + MINUTE)?;
        }
        step.buckets += 1;
    }

    let start = match m.rolled_until {
        Some(r) => Some(r),
        None => oldest_raw(&tx, sid)?.map(|t| floor(t, MINUTE)),
    };
    if let Some(start) = start.filter(|s| *s < target) {
        let mut end = target.min(start.saturating_add(STEP_SPAN_MS));
        let (accs, _) = read::bucket_accs(&tx, sid, (start, end), MINUTE, usize::MAX >> 1)?;
        if accs.is_empty() {
            // Nothing in this span: jump to the next raw point (or the target).
            end = match next_raw(&tx, sid, end)? {
                Some(t) => target.min(floor(t, MINUTE)).max(end),
                None => target,
            };
        }
        let mut day = None;
        for (b, a) in accs.iter().filter(|(b, _)| *b >= cover) {
            if day != Some(floor(*b, DAY)) {
                // A packed day (late data after a gap) goes back to rows first, once.
                day = Some(floor(*b, DAY));
                rollup_pack::unpack(&tx, sid, floor(*b, DAY))?;
            }
            insert_row(&tx, Resolution::Minute, sid, *b, a)?;
            hours.insert(floor(*b, HOUR));
            note(*b);
        }
        step.buckets += accs.len() as u64;
        m.rolled_until = Some(end);
        step.more |= end < target;
    }
    refresh_hours(&tx, sid, &m, &hours)?;
    if let Some((lo, hi, n)) = rolled {
        super::outbox::record_rollups(&tx, sid, (lo, hi), n)?;
    }
    save_marks(&tx, sid, &m)?;
    tx.commit()?;
    step.rolled_until = m.rolled_until;
    Ok(step)
}

/// Removes rollup rows older than their retention, at most `max_rows` per table; returns rows
/// removed and whether some are left.
pub(super) fn expire_rollups(
    conn: &mut Connection,
    sid: i64,
    (m1_cut, h1_cut): (i64, i64),
    max_rows: i64,
) -> Result<(u64, bool)> {
    let m = marks(conn, sid)?;
    if m1_cut <= m.m1_before && h1_cut <= m.h1_before {
        return Ok((0, false));
    }
    let tx = CachedTx::begin(conn)?;
    let mut m = marks(&tx, sid)?;
    let mut removed = 0;
    let mut more = false;
    for (res, cut, mark) in [
        (Resolution::Minute, m1_cut, &mut m.m1_before),
        (Resolution::Hour, h1_cut, &mut m.h1_before),
    ] {
        if cut <= *mark {
            continue;
        }
        let t = table(res);
        if res == Resolution::Minute {
            // Whole packed days before the cut go at once; the day holding it is unpacked.
            rollup_pack::unpack(&tx, sid, floor(cut, DAY))?;
            let days: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(SUM(rows), 0) FROM rollup_1m_days \
                     WHERE series_id = ?1 AND day + 86400000 <= ?2",
                )?
                .query_row(params![sid, cut], |r| r.get(0))?;
            tx.prepare_cached(
                "DELETE FROM rollup_1m_days WHERE series_id = ?1 AND day + 86400000 <= ?2",
            )?
            .execute(params![sid, cut])?;
            removed += days as u64;
        }
        let n = tx
            .prepare_cached(&format!(
                "DELETE FROM {t} WHERE series_id = ?1 AND bucket IN \
                 (SELECT bucket FROM {t} WHERE series_id = ?1 AND bucket < ?2 \
                  ORDER BY bucket LIMIT ?3)"
            ))?
            .execute(params![sid, cut, max_rows])?;
        removed += n as u64;
        // The engine's bands go with the minutes they describe (not counted as rollups).
        let bands = if res == Resolution::Minute {
            super::band::expire(&tx, sid, cut, max_rows)?
        } else {
            0
        };
        if (n as i64) < max_rows && bands < max_rows {
            *mark = cut;
        } else {
            more = true;
        }
    }
    save_marks(&tx, sid, &m)?;
    tx.commit()?;
    Ok((removed, more))
}

/// Which rollup answers a step aggregate of `step` starting at `from`.
fn resolution_for(m: &Marks, from: i64, width: i64) -> Resolution {
    if from < m.m1_before || (width >= HOUR && width % HOUR == 0) {
        Resolution::Hour
    } else {
        Resolution::Minute
    }
}

/// A step aggregate: from the raw points when they are all there, else from the rollups up to
/// `rolled_until` and the raw points after it.
pub(super) fn aggregate(
    conn: &Connection,
    sid: i64,
    (from, to): (i64, i64),
    (step, agg): (i64, Agg),
    limit: usize,
) -> Result<(RangeResult, Resolution)> {
    let m = read_marks(conn, sid)?;
    if from >= m.raw_before {
        let r = read::aggregate(conn, sid, (from, to), (step, agg), limit)?;
        return Ok((r, Resolution::Raw));
    }
    let step = step.max(1);
    let res = resolution_for(&m, from, step);
    let split = m.rolled_until.unwrap_or(from).clamp(from, to);
    let mut buckets: Vec<(i64, Acc)> = Vec::new();
    let mut push = |b: i64, a: Acc| match buckets.last_mut() {
        Some((last, acc)) if *last == b => acc.add(a),
        _ => buckets.push((b, a)),
    };
    // Rows overlapping the range: the first may start before `from` (the answer is at the
    // rollup's resolution, which the caller is told).
    for (b, a) in rows(conn, res, sid, floor(from, res.width_ms()), split)? {
        push(floor(b, step), a);
    }
    if split < to {
        let (raw, _) = read::bucket_accs(conn, sid, (split, to), step, limit + 1)?;
        for (b, a) in raw {
            push(b, a);
        }
    }
    let next = if buckets.len() > limit {
        let n = buckets[limit].0;
        buckets.truncate(limit);
        Some(n)
    } else {
        None
    };
    let points = buckets
        .iter()
        .filter_map(|(b, a)| Some((*b, a.value(agg)?)))
        .collect();
    Ok((RangeResult { points, next }, res))
}

/// A chart of about `n` points, each part of the range from the finest tier that still holds
/// it: the raw points from `raw_before` on, the 1-minute rollups before that down to
/// `m1_before`, the 1-hour rollups before that (each row's lowest and highest value, at the
/// row's bucket start; hourly rows only when a chart bucket spans an hour or more). Per chart
/// bucket, its lowest and highest. The resolution said is the coarsest tier used.
pub(super) fn downsample(
    conn: &Connection,
    sid: i64,
    (from, to): (i64, i64),
    n: usize,
) -> Result<(RangeResult, Resolution)> {
    let m = read_marks(conn, sid)?;
    if from >= m.raw_before {
        return Ok((read::downsample(conn, sid, from, to, n)?, Resolution::Raw));
    }
    let n = n.max(2);
    let buckets = (n / 2) as i64;
    let width = ((to as i128 - from as i128 + buckets as i128 - 1) / buckets as i128)
        .clamp(1, i64::MAX as i128) as i64;
    // Raw points are all there from `raw_before` on (expiry never passes `rolled_until`).
    let split = m.raw_before.clamp(from, to);
    let hourly_until = if width >= HOUR {
        split
    } else {
        m.m1_before.clamp(from, split)
    };
    let mut res = Resolution::Minute;
    // (ts, low, high) in time order.
    let mut items: Vec<(i64, f64, f64)> = Vec::new();
    if from < hourly_until {
        res = Resolution::Hour;
        items.extend(
            rows(conn, res, sid, floor(from, HOUR), hourly_until)?
                .into_iter()
                .map(|(b, a)| (b, a.min, a.max)),
        );
    }
    if hourly_until < split {
        items.extend(
            rows(
                conn,
                Resolution::Minute,
                sid,
                floor(hourly_until, MINUTE),
                split,
            )?
            .into_iter()
            .map(|(b, a)| (b, a.min, a.max)),
        );
    }
    if split < to {
        let raw = read::raw(conn, sid, split, to, usize::MAX >> 1)?;
        items.extend(raw.points.into_iter().map(|(t, v)| (t, v, v)));
    }
    let index = |t: i64| ((t as i128 - from as i128).max(0) / width as i128) as usize;
    let mut lows: Vec<Option<(i64, f64)>> = vec![None; buckets as usize];
    let mut highs: Vec<Option<(i64, f64)>> = vec![None; buckets as usize];
    for (t, lo, hi) in items {
        let i = index(t).min(buckets as usize - 1);
        if lows[i].is_none_or(|(_, v)| lo < v) {
            lows[i] = Some((t, lo));
        }
        if highs[i].is_none_or(|(_, v)| hi > v) {
            highs[i] = Some((t, hi));
        }
    }
    let mut points = Vec::with_capacity(n);
    for (lo, hi) in lows.into_iter().zip(highs) {
        let (Some(a), Some(b)) = (lo, hi) else {
            continue;
        };
        if a == b {
            points.push(a);
        } else if a.0 <= b.0 {
            points.extend([a, b]);
        } else {
            points.extend([b, a]);
        }
    }
    Ok((RangeResult { points, next: None }, res))
}
