//! The AI engine's expected band per series and 1-minute bucket (`band_1m`).
//!
//! **Invariant:** no band row is older than its series' 1-minute expiry mark (`m1_before`):
//! a row for an expired minute is never written, and rows expire in the transaction that
//! expires the 1-minute rollups (`rollup::expire_rollups`); erasing a device deletes its rows
//! with its rollups.

use rusqlite::{Connection, params};
use sentio_core::SeriesKey;

use super::Inner;
use crate::{BandRow, Result};

const MINUTE: i64 = 60_000;

/// Adds `bands` to the kept rows in one transaction, each merged with its bucket's earlier
/// part ([`BandRow::merge`], done in SQL). A series the store does not hold is skipped.
pub(super) fn save(
    inner: &Inner,
    conn: &mut Connection,
    bands: &[(SeriesKey, BandRow)],
) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO band_1m (series_id, bucket, count, expected, lower, upper) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE ?2 >= COALESCE( \
                 (SELECT m1_before FROM series_marks WHERE series_id = ?1), ?2) \
             ON CONFLICT (series_id, bucket) DO UPDATE SET \
                 expected = (expected * count + excluded.expected * excluded.count) \
                            / (count + excluded.count), \
                 count = count + excluded.count, \
                 lower = MIN(lower, excluded.lower), \
                 upper = MAX(upper, excluded.upper)",
        )?;
        for (series, b) in bands {
            let Some(sid) = inner.known_series(series.device.as_str(), &series.metric) else {
                continue;
            };
            stmt.execute(params![
                sid,
                b.bucket_ms,
                b.count as i64,
                b.expected,
                b.lower,
                b.upper
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The rows of series `sid` over `[from, to)`, merged into buckets of whole minutes, at most
/// `buckets` of them (aligned to `from`'s minute).
pub(super) fn read(
    conn: &Connection,
    sid: i64,
    (from, to): (i64, i64),
    buckets: usize,
) -> Result<Vec<BandRow>> {
    let start = from.div_euclid(MINUTE) * MINUTE;
    // `to` is after `from` (checked), so both are positive.
    let minutes = ((to - start) as u64).div_ceil(MINUTE as u64).max(1);
    let width = minutes.div_ceil(buckets.max(1) as u64) as i64 * MINUTE;
    let mut stmt = conn.prepare_cached(
        "SELECT MIN(bucket), SUM(count), SUM(expected * count) / SUM(count), MIN(lower), \
                MAX(upper) \
         FROM band_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 \
         GROUP BY (bucket - ?4) / ?5 ORDER BY 1",
    )?;
    let rows = stmt.query_map(params![sid, start, to, start, width], |r| {
        let first: i64 = r.get(0)?;
        Ok(BandRow {
            bucket_ms: start + (first - start) / width * width,
            count: r.get::<_, i64>(1)? as u64,
            expected: r.get(2)?,
            lower: r.get(3)?,
            upper: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Deletes series `sid`'s oldest rows before `cut`, at most `max_rows` (in the caller's
/// transaction); how many.
pub(super) fn expire(conn: &Connection, sid: i64, cut: i64, max_rows: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM band_1m WHERE series_id = ?1 AND bucket IN \
             (SELECT bucket FROM band_1m WHERE series_id = ?1 AND bucket < ?2 \
              ORDER BY bucket LIMIT ?3)",
        )?
        .execute(params![sid, cut, max_rows])? as i64)
}
