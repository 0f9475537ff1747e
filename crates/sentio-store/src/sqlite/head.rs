//! The durable head, packed and in commit order: table `head_log` holds, per committed append
//! and series, that append's points of the series as one blob (`encode`), keyed (commit seq,
//! series), so an append writes its rows at the end of the b-tree: a few pages, not one per
//! series. The per-series index, `temp.head_index` (series, first ts, seq, last ts, count), is
//! a table of the connection's in-memory temp database: never written to the log or fsynced,
//! changed in the same transactions as `head_log` (so it rolls back with them), and rebuilt
//! from `head_log` at open (`open_index`). Range reads pick the overlapping blobs through it.
//!
//! **Invariant:** within a blob, timestamps are strictly increasing (a batch's duplicates are
//! resolved when it is packed: the later point wins). Across blobs of a series, the one with
//! the higher `seq` is the later write and wins on an equal timestamp. A blob that loses some
//! of its points (sealing, retention) is rewritten with the rest under the same `seq`.
//!
//! An older data directory with the row-per-point table `points` (`migrate_rows`) or the
//! series-keyed table `head` (`migrate_series_keyed`) is migrated at open, in one transaction.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Result, StoreError};

/// Points per blob when the rows of an older data directory are packed.
const MIGRATED_BLOB_POINTS: usize = 10_000;

/// Packs sorted, distinct points: per point, the timestamp's difference to the previous one
/// (the first: to 0) as a zigzag varint, then the value's 8 bytes (little-endian).
pub(super) fn encode(points: &[(i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * 11);
    encode_into(points, &mut out);
    out
}

/// [`encode`], appended to `out`.
fn encode_into(points: &[(i64, f64)], out: &mut Vec<u8>) {
    out.reserve(points.len() * 11);
    let mut prev = 0i64;
    for &(t, v) in points {
        let d = t.wrapping_sub(prev);
        let mut z = ((d << 1) ^ (d >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        out.extend_from_slice(&v.to_le_bytes());
        prev = t;
    }
}

/// The points of a blob written by [`encode`].
pub(super) fn decode(data: &[u8]) -> Result<Vec<(i64, f64)>> {
    let corrupt = || StoreError::Corrupt("head blob".into());
    let mut out = Vec::with_capacity(data.len() / 9);
    let (mut i, mut prev) = (0usize, 0i64);
    while i < data.len() {
        let (mut z, mut shift) = (0u64, 0u32);
        loop {
            let b = *data.get(i).ok_or_else(corrupt)?;
            i += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(corrupt());
            }
        }
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let t = prev.wrapping_add(d);
        let bytes: [u8; 8] = data
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        i += 8;
        out.push((t, f64::from_le_bytes(bytes)));
        prev = t;
    }
    Ok(out)
}

/// Sorts a batch's points of one series by time; of equal timestamps the later one stays.
pub(super) fn settle(run: &mut Vec<(i64, f64)>) {
    if !run.is_sorted_by(|a, b| a.0 < b.0) {
        run.sort_by_key(|p| p.0); // stable: equal timestamps keep their batch order
        let mut out: Vec<(i64, f64)> = Vec::with_capacity(run.len());
        for &p in run.iter() {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        *run = out;
    }
}

/// Writes one blob of series `sid` (points sorted and distinct, not empty) under `seq`.
pub(super) fn insert(conn: &Connection, sid: i64, seq: i64, points: &[(i64, f64)]) -> Result<()> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(());
    };
    let count = points.len() as i64;
    conn.prepare_cached(
        "INSERT INTO head_log (seq, series_id, first_ts, last_ts, count, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![seq, sid, first.0, last.0, count, encode(points)])?;
    conn.prepare_cached(
        "INSERT INTO temp.head_index (series_id, first_ts, seq, last_ts, count) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![sid, first.0, seq, last.0, count])?;
    Ok(())
}

/// Writes a commit's blobs: the two statements prepared once per commit, one buffer for
/// every blob's bytes.
pub(super) struct Appender<'c> {
    log: rusqlite::CachedStatement<'c>,
    index: rusqlite::CachedStatement<'c>,
    buf: Vec<u8>,
}

impl<'c> Appender<'c> {
    pub(super) fn new(conn: &'c Connection) -> Result<Self> {
        Ok(Self {
            log: conn.prepare_cached(
                "INSERT INTO head_log (seq, series_id, first_ts, last_ts, count, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            index: conn.prepare_cached(
                "INSERT INTO temp.head_index (series_id, first_ts, seq, last_ts, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            buf: Vec::new(),
        })
    }

    /// As [`insert`]: one blob of series `sid` (points sorted and distinct) under `seq`.
    pub(super) fn insert(&mut self, sid: i64, seq: i64, points: &[(i64, f64)]) -> Result<()> {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Ok(());
        };
        let count = points.len() as i64;
        self.buf.clear();
        encode_into(points, &mut self.buf);
        self.log
            .execute(params![seq, sid, first.0, last.0, count, &self.buf[..]])?;
        self.index
            .execute(params![sid, first.0, seq, last.0, count])?;
        Ok(())
    }
}

/// Removes one blob (its log row and its index entry).
fn delete(conn: &Connection, sid: i64, first: i64, seq: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM head_log WHERE seq = ?1 AND series_id = ?2")?
        .execute(params![seq, sid])?;
    conn.prepare_cached(
        "DELETE FROM temp.head_index WHERE series_id = ?1 AND first_ts = ?2 AND seq = ?3",
    )?
    .execute(params![sid, first, seq])?;
    Ok(())
}

/// The highest commit seq in the head (0 when empty): appends continue after it (one seek:
/// the log's key starts with it).
pub(super) fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM head_log", [], |r| {
            r.get(0)
        })?,
    )
}

/// At open: creates the connection's in-memory index, moves an older directory's head into
/// `head_log`, then indexes every blob of `head_log` (the replay). Returns the blobs indexed.
pub(super) fn open_index(conn: &mut Connection) -> Result<u64> {
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS head_index (
             series_id INTEGER NOT NULL,
             first_ts  INTEGER NOT NULL,
             seq       INTEGER NOT NULL,
             last_ts   INTEGER NOT NULL,
             count     INTEGER NOT NULL,
             PRIMARY KEY (series_id, first_ts, seq)
         ) WITHOUT ROWID;",
    )?;
    migrate_rows(conn)?;
    migrate_series_keyed(conn)?;
    conn.execute("DELETE FROM temp.head_index", [])?;
    Ok(conn.execute(
        "INSERT INTO temp.head_index (series_id, first_ts, seq, last_ts, count) \
         SELECT series_id, first_ts, seq, last_ts, count FROM head_log",
        [],
    )? as u64)
}

/// Moves the series-keyed head of an older data directory (table `head`) into `head_log` and
/// drops it, in one transaction. Nothing when there is no such table.
fn migrate_series_keyed(conn: &mut Connection) -> Result<()> {
    if !table_exists(conn, "head")? {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let moved = tx.execute(
        "INSERT INTO head_log (seq, series_id, first_ts, last_ts, count, data) \
         SELECT seq, series_id, first_ts, last_ts, count, data FROM head",
        [],
    )?;
    tx.execute("DROP TABLE head", [])?;
    tx.commit()?;
    tracing::info!(blobs = moved, "moved the head's blobs into commit order");
    Ok(())
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// One blob's points inside an inclusive range, with its seq.
struct Piece {
    seq: i64,
    points: Vec<(i64, f64)>,
}

/// Merges blobs (each sorted and distinct) into one sorted run; on an equal timestamp the
/// blob with the higher seq wins.
fn merge(pieces: &[Piece]) -> Vec<(i64, f64)> {
    let mut order: Vec<&Piece> = pieces.iter().filter(|p| !p.points.is_empty()).collect();
    order.sort_by_key(|p| (p.points[0].0, p.seq));
    // The usual head: blobs one after the other in time.
    if order
        .windows(2)
        .all(|w| w[0].points[w[0].points.len() - 1].0 < w[1].points[0].0)
    {
        return order
            .iter()
            .flat_map(|p| p.points.iter().copied())
            .collect();
    }
    let mut all: Vec<(i64, i64, f64)> = order
        .iter()
        .flat_map(|p| p.points.iter().map(|&(t, v)| (t, p.seq, v)))
        .collect();
    all.sort_unstable_by_key(|p| (p.0, p.1));
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(all.len());
    for (t, _, v) in all {
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = v,
            _ => out.push((t, v)),
        }
    }
    out
}

/// The points of `sid` in `[lo, hi]`, the later write winning, at most the first `limit`.
fn read_inclusive(
    conn: &Connection,
    sid: i64,
    (lo, hi): (i64, i64),
    limit: usize,
) -> Result<Vec<(i64, f64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.first_ts, i.seq, l.data FROM temp.head_index i CROSS JOIN head_log l \
         ON l.seq = i.seq AND l.series_id = i.series_id \
         WHERE i.series_id = ?1 AND i.first_ts <= ?3 AND i.last_ts >= ?2 ORDER BY i.first_ts",
    )?;
    let mut rows = stmt.query(params![sid, lo, hi])?;
    let mut pieces = Vec::new();
    let (mut taken, mut check_at) = (0usize, limit);
    // Once `limit` points are known, blobs starting after the limit-th cannot change the answer.
    let mut bound: Option<i64> = None;
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        if bound.is_some_and(|b| first > b) {
            break;
        }
        let mut points = decode(row.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?)?;
        let a = points.partition_point(|p| p.0 < lo);
        let b = points.partition_point(|p| p.0 <= hi);
        points.truncate(b);
        points.drain(..a);
        taken += points.len();
        pieces.push(Piece {
            seq: row.get(1)?,
            points,
        });
        if bound.is_none() && taken >= check_at {
            let merged = merge(&pieces);
            if merged.len() >= limit {
                bound = Some(merged[limit - 1].0);
            } else {
                check_at = taken + (limit - merged.len());
            }
        }
    }
    let mut out = merge(&pieces);
    out.truncate(limit);
    Ok(out)
}

/// Head points of `sid` in `[from, to)`, at most the first `limit` (reads and the sealer).
pub(super) fn points_in(
    conn: &Connection,
    sid: i64,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<(i64, f64)>> {
    if to <= from || limit == 0 {
        return Ok(Vec::new());
    }
    read_inclusive(conn, sid, (from, to - 1), limit)
}

/// Every head point of `sid`.
fn all_points(conn: &Connection, sid: i64) -> Result<Vec<(i64, f64)>> {
    read_inclusive(conn, sid, (i64::MIN, i64::MAX), usize::MAX)
}

/// Removes the head points of `sid` in `[from, to)`: blobs inside are deleted, a blob
/// reaching past the range is rewritten with its other points (same seq). Returns the points
/// removed (a timestamp written twice counts once).
pub(super) fn remove(conn: &Connection, sid: i64, from: i64, to: i64) -> Result<u64> {
    if to <= from {
        return Ok(0);
    }
    let hi = to - 1;
    let blobs: Vec<(i64, i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT i.first_ts, i.seq, i.last_ts, l.data FROM temp.head_index i \
             CROSS JOIN head_log l ON l.seq = i.seq AND l.series_id = i.series_id \
             WHERE i.series_id = ?1 AND i.first_ts <= ?3 AND i.last_ts >= ?2",
        )?
        .query_map(params![sid, from, hi], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut gone: Vec<i64> = Vec::new();
    for (first, seq, last, data) in blobs {
        let mut points = decode(&data)?;
        if first >= from && last <= hi {
            gone.extend(points.iter().map(|p| p.0));
        } else {
            let a = points.partition_point(|p| p.0 < from);
            let b = points.partition_point(|p| p.0 <= hi);
            gone.extend(points.drain(a..b).map(|p| p.0));
        }
        delete(conn, sid, first, seq)?;
        if first < from || last > hi {
            insert(conn, sid, seq, &points)?;
        }
    }
    gone.sort_unstable();
    gone.dedup();
    Ok(gone.len() as u64)
}

/// Removes every head point of the series of `device`; returns how many there were.
pub(super) fn erase_device(conn: &Connection, device: &str) -> Result<u64> {
    let sids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM series WHERE device = ?1")?
        .query_map([device], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for sid in sids {
        n += all_points(conn, sid)?.len() as u64;
        conn.prepare_cached(
            "DELETE FROM head_log WHERE series_id = ?1 \
             AND seq IN (SELECT seq FROM temp.head_index WHERE series_id = ?1)",
        )?
        .execute([sid])?;
        conn.prepare_cached("DELETE FROM temp.head_index WHERE series_id = ?1")?
            .execute([sid])?;
    }
    Ok(n)
}

/// The oldest and the newest head timestamp of `sid`.
pub(super) fn bounds(conn: &Connection, sid: i64) -> Result<Option<(i64, i64)>> {
    let (lo, hi): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT MIN(first_ts), \
             (SELECT MAX(last_ts) FROM temp.head_index WHERE series_id = ?1) \
             FROM temp.head_index WHERE series_id = ?1",
        )?
        .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(lo.zip(hi))
}

/// The oldest head timestamp of `sid` (one seek: the key starts with it).
pub(super) fn oldest(conn: &Connection, sid: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(first_ts) FROM temp.head_index WHERE series_id = ?1")?
        .query_row([sid], |r| r.get(0))?)
}

/// The oldest head timestamp of `sid` at or after `t`.
pub(super) fn first_at_or_after(conn: &Connection, sid: i64, t: i64) -> Result<Option<i64>> {
    // A blob starting at or after `t` offers its first point; one starting before it and
    // reaching past it is looked into.
    let starting: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(first_ts) FROM temp.head_index WHERE series_id = ?1 AND first_ts >= ?2",
        )?
        .query_row(params![sid, t], |r| r.get(0))?;
    let hi = starting.unwrap_or(i64::MAX);
    Ok(read_inclusive(conn, sid, (t, hi), 1)?
        .first()
        .map(|p| p.0)
        .or(starting))
}

/// The newest head point of `sid`.
pub(super) fn latest(conn: &Connection, sid: i64) -> Result<Option<(i64, f64)>> {
    let newest: Option<i64> = conn
        .prepare_cached("SELECT MAX(last_ts) FROM temp.head_index WHERE series_id = ?1")?
        .query_row([sid], |r| r.get(0))?;
    let Some(t) = newest else {
        return Ok(None);
    };
    Ok(read_inclusive(conn, sid, (t, t), 1)?.pop())
}

/// Head points of `sid` in `[from, to)`.
pub(super) fn count(conn: &Connection, sid: i64, from: i64, to: i64) -> Result<u64> {
    Ok(points_in(conn, sid, from, to, usize::MAX)?.len() as u64)
}

/// Head points of every series.
pub(super) fn count_all(conn: &Connection) -> Result<u64> {
    let sids: Vec<i64> = conn
        .prepare_cached("SELECT DISTINCT series_id FROM temp.head_index")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for sid in sids {
        n += all_points(conn, sid)?.len() as u64;
    }
    Ok(n)
}

/// Packs the row-per-point head of an older data directory (table `points`) into blobs and
/// drops the table, in one transaction. Nothing when there is no such table.
fn migrate_rows(conn: &mut Connection) -> Result<()> {
    if !table_exists(conn, "points")? {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut stmt =
            tx.prepare("SELECT series_id, ts, value FROM points ORDER BY series_id, ts")?;
        let mut rows = stmt.query([])?;
        let mut run: (i64, Vec<(i64, f64)>) = (0, Vec::new());
        let mut moved = 0u64;
        // Rows of a series are distinct timestamps, so the blobs' order does not matter: each
        // takes the next seq (the log's key), before any append.
        let mut seq = 0i64;
        while let Some(row) = rows.next()? {
            let sid: i64 = row.get(0)?;
            if sid != run.0 || run.1.len() >= MIGRATED_BLOB_POINTS {
                if !run.1.is_empty() {
                    seq += 1;
                    insert(&tx, run.0, seq, &run.1)?;
                }
                run = (sid, Vec::new());
            }
            run.1.push((row.get(1)?, row.get(2)?));
            moved += 1;
        }
        insert(&tx, run.0, seq + 1, &run.1)?;
        tracing::info!(points = moved, "packed the head's rows into blobs");
    }
    tx.execute("DROP TABLE points", [])?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_any_timestamps_and_values() {
        let points = vec![
            (i64::MIN, f64::MIN),
            (-5, -0.0),
            (0, f64::NAN),
            (1, 1.5),
            (1_767_225_600_000, 21.37),
            (i64::MAX, f64::INFINITY),
        ];
        let back = decode(&encode(&points)).unwrap();
        assert_eq!(back.len(), points.len());
        for (a, b) in points.iter().zip(&back) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
        assert!(decode(&[0x80]).is_err(), "a cut varint");
        assert!(decode(&[0x02, 1, 2]).is_err(), "a cut value");
    }

    #[test]
    fn a_batch_settles_sorted_with_the_later_duplicate() {
        let mut run = vec![(3, 1.0), (1, 2.0), (3, 3.0), (2, 4.0), (1, 5.0)];
        settle(&mut run);
        assert_eq!(run, vec![(1, 5.0), (2, 4.0), (3, 3.0)]);
    }

    #[test]
    fn merging_blobs_lets_the_higher_seq_win() {
        let pieces = vec![
            Piece {
                seq: 2,
                points: vec![(2, 20.0), (5, 50.0)],
            },
            Piece {
                seq: 1,
                points: vec![(1, 1.0), (2, 2.0), (3, 3.0)],
            },
        ];
        assert_eq!(
            merge(&pieces),
            vec![(1, 1.0), (2, 20.0), (3, 3.0), (5, 50.0)]
        );
    }
}
