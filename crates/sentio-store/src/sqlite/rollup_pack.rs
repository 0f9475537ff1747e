//! Settled 1-minute rollups packed into one row per series and day (`rollup_1m_days`): the
//! rows as nine pco-compressed columns. A row of `rollup_1m` costs ~74 bytes on its page;
//! packed, a few. The maintenance pass packs each hour that ended an hour before
//! `rolled_until`: the hour's rows join their day's packed row (made, or decoded, extended and
//! written again), so only the last hour or two of a live series stay plain rows, not the whole
//! current day. **Invariant:** a minute is in one place, its day's packed row or `rollup_1m`
//! (a packed row holds its day's settled hours, later minutes are rows); any write to a minute
//! of a packed day (a late point) unpacks the whole day first, and a later pass packs it again.

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress};
use rusqlite::{Connection, OptionalExtension, params};

use super::cached_tx::CachedTx;
use super::read::Acc;
use super::rollup::HOUR;
use crate::{Result, StoreError};

/// Format byte of a packed day.
const FORMAT: u8 = 1;
pub(super) const DAY: i64 = 86_400_000;

fn codec(e: impl std::fmt::Display) -> StoreError {
    StoreError::Codec(e.to_string())
}

/// Encodes a day's rows (non-empty, in bucket order).
pub(super) fn encode(rows: &[(i64, Acc)]) -> Result<Vec<u8>> {
    let config = ChunkConfig::default();
    let ints: [Vec<i64>; 4] = [
        rows.iter().map(|(b, _)| *b).collect(),
        rows.iter().map(|(_, a)| a.count as i64).collect(),
        rows.iter().map(|(b, a)| a.first.0 - b).collect(),
        rows.iter().map(|(b, a)| a.last.0 - b).collect(),
    ];
    let floats: [Vec<f64>; 5] = [
        rows.iter().map(|(_, a)| a.sum).collect(),
        rows.iter().map(|(_, a)| a.min).collect(),
        rows.iter().map(|(_, a)| a.max).collect(),
        rows.iter().map(|(_, a)| a.first.1).collect(),
        rows.iter().map(|(_, a)| a.last.1).collect(),
    ];
    let mut out = vec![FORMAT];
    let mut push = |col: Vec<u8>| {
        out.extend_from_slice(&(col.len() as u32).to_le_bytes());
        out.extend_from_slice(&col);
    };
    for c in &ints {
        push(simple_compress(c, &config).map_err(codec)?);
    }
    for c in &floats {
        push(simple_compress(c, &config).map_err(codec)?);
    }
    Ok(out)
}

/// Decodes a packed day into its rows.
pub(super) fn decode(data: &[u8]) -> Result<Vec<(i64, Acc)>> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("packed rollup day: {what}"));
    let (&format, mut rest) = data.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != FORMAT {
        return Err(corrupt("unknown format"));
    }
    let mut next = || -> Result<&[u8]> {
        let len: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("truncated"))?;
        let len = u32::from_le_bytes(len) as usize;
        let col = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("truncated column"))?;
        rest = &rest[4 + len..];
        Ok(col)
    };
    let mut ints: Vec<Vec<i64>> = Vec::with_capacity(4);
    for _ in 0..4 {
        ints.push(simple_decompress(next()?).map_err(|e| corrupt(&e.to_string()))?);
    }
    let mut floats: Vec<Vec<f64>> = Vec::with_capacity(5);
    for _ in 0..5 {
        floats.push(simple_decompress(next()?).map_err(|e| corrupt(&e.to_string()))?);
    }
    let n = ints[0].len();
    if ints.iter().any(|c| c.len() != n) || floats.iter().any(|c| c.len() != n) {
        return Err(corrupt("columns of different lengths"));
    }
    Ok((0..n)
        .map(|i| {
            let b = ints[0][i];
            (
                b,
                Acc {
                    count: ints[1][i] as u64,
                    sum: floats[0][i],
                    min: floats[1][i],
                    max: floats[2][i],
                    first: (b + ints[2][i], floats[3][i]),
                    last: (b + ints[3][i], floats[4][i]),
                },
            )
        })
        .collect())
}

/// Packed rows of series `sid` with buckets in `[from, to)`, in bucket order.
pub(super) fn rows_in(conn: &Connection, sid: i64, from: i64, to: i64) -> Result<Vec<(i64, Acc)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM rollup_1m_days WHERE series_id = ?1 AND day > ?2 AND day < ?3 \
         ORDER BY day",
    )?;
    let blobs = stmt
        .query_map(params![sid, from.saturating_sub(DAY), to], |r| {
            r.get::<_, Vec<u8>>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for blob in blobs {
        out.extend(
            decode(&blob)?
                .into_iter()
                .filter(|(b, _)| *b >= from && *b < to),
        );
    }
    Ok(out)
}

/// Moves a packed day back into `rollup_1m` rows (before one of them changes).
pub(super) fn unpack(conn: &Connection, sid: i64, day: i64) -> Result<()> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM rollup_1m_days WHERE series_id = ?1 AND day = ?2")?
        .query_row(params![sid, day], |r| r.get(0))
        .optional()?;
    let Some(blob) = blob else { return Ok(()) };
    for (b, a) in decode(&blob)? {
        super::rollup::insert_minute_row(conn, sid, b, &a)?;
    }
    conn.prepare_cached("DELETE FROM rollup_1m_days WHERE series_id = ?1 AND day = ?2")?
        .execute(params![sid, day])?;
    Ok(())
}

/// Packs the oldest settled rows of series `sid` (buckets in hours ending by `settled`) into
/// their day's packed row, in one transaction. Returns whether anything was packed.
pub(super) fn pack_step(conn: &mut Connection, sid: i64, settled: i64) -> Result<bool> {
    let limit = settled.div_euclid(HOUR) * HOUR;
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT MIN(bucket) FROM rollup_1m WHERE series_id = ?1 AND bucket < ?2")?
        .query_row(params![sid, limit], |r| r.get(0))?;
    let Some(oldest) = oldest else {
        return Ok(false);
    };
    let day = oldest.div_euclid(DAY) * DAY;
    let end = (day + DAY).min(limit);
    let tx = CachedTx::begin(conn)?;
    let packed: Option<Vec<u8>> = tx
        .prepare_cached("SELECT data FROM rollup_1m_days WHERE series_id = ?1 AND day = ?2")?
        .query_row(params![sid, day], |r| r.get(0))
        .optional()?;
    let mut rows = match packed {
        Some(blob) => decode(&blob)?,
        None => Vec::new(),
    };
    let fresh = super::rollup::table_rows(&tx, sid, day, end)?;
    // A minute is never in both; were it, the row (the later write) would win.
    rows.retain(|(b, _)| fresh.binary_search_by_key(b, |(f, _)| *f).is_err());
    rows.extend(fresh);
    rows.sort_by_key(|(b, _)| *b);
    let data = encode(&rows)?;
    tx.prepare_cached(
        "INSERT INTO rollup_1m_days (series_id, day, rows, data) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (series_id, day) DO UPDATE SET rows = excluded.rows, data = excluded.data",
    )?
    .execute(params![sid, day, rows.len() as i64, data])?;
    tx.prepare_cached(
        "DELETE FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3",
    )?
    .execute(params![sid, day, end])?;
    tx.commit()?;
    Ok(true)
}
