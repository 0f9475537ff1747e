//! Reads over both tiers of a series: the head's blobs (`head`) and sealed chunks (`chunks`).
//!
//! Chunk ranges of one series never overlap, so a walk in chunk order, with the head points
//! slotted in between, visits the series in time order. A head point with the same timestamp
//! as a sealed one wins (it is the later write). A chunk that no head point overlaps and that an
//! aggregate can take whole is folded from its stored statistics, without decoding.

use std::collections::HashMap;
use std::ops::ControlFlow;

use rusqlite::{Connection, OptionalExtension, params};

use super::seal::merge_head_wins;
use crate::chunk;
use crate::{Agg, RangeResult, Result};

/// A chunk's row without its data.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkMeta {
    start: i64,
    end: i64,
    count: u32,
    min: f64,
    max: f64,
    sum: f64,
    first: f64,
    last: f64,
}

/// What a walk hands to its visitor, in time order.
enum Piece<'a> {
    /// One point (from the head, or decoded from a chunk).
    Point(i64, f64),
    /// A whole chunk, inside the range, that the visitor accepted to take by its statistics.
    Chunk(usize, &'a ChunkMeta),
}

/// Chunks of series `sid` overlapping `[from, to)`, in time order.
fn chunks_in(conn: &Connection, sid: i64, from: i64, to: i64) -> Result<Vec<ChunkMeta>> {
    // The chunk that starts at or before `from` may reach into the range.
    let straddling: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT start_ts, end_ts FROM chunks WHERE series_id = ?1 AND start_ts <= ?2 \
             ORDER BY start_ts DESC LIMIT 1",
        )?
        .query_row(params![sid, from], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let lo = match straddling {
        Some((start, end)) if end >= from => start,
        _ => from,
    };
    let mut stmt = conn.prepare_cached(
        "SELECT start_ts, end_ts, count, min, max, sum, first, last FROM chunks \
         WHERE series_id = ?1 AND start_ts >= ?2 AND start_ts < ?3 ORDER BY start_ts",
    )?;
    let rows = stmt.query_map(params![sid, lo, to], |r| {
        Ok(ChunkMeta {
            start: r.get(0)?,
            end: r.get(1)?,
            count: r.get(2)?,
            min: r.get(3)?,
            max: r.get(4)?,
            sum: r.get(5)?,
            first: r.get(6)?,
            last: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn chunk_points(conn: &Connection, sid: i64, start: i64) -> Result<Vec<(i64, f64)>> {
    let data: Vec<u8> = conn
        .prepare_cached("SELECT data FROM chunks WHERE series_id = ?1 AND start_ts = ?2")?
        .query_row(params![sid, start], |r| r.get(0))?;
    chunk::decode(&data)
}

/// Walks `[from, to)` of series `sid` in time order. `whole(meta)` says whether a chunk lying
/// inside the range, with no head point in its span, may be handed over whole.
fn walk(
    conn: &Connection,
    sid: i64,
    (from, to): (i64, i64),
    chunks: &[ChunkMeta],
    head: &[(i64, f64)],
    whole: impl Fn(&ChunkMeta) -> bool,
    mut visit: impl FnMut(Piece<'_>) -> ControlFlow<()>,
) -> Result<()> {
    let mut hi = 0;
    for (k, m) in chunks.iter().enumerate() {
        while hi < head.len() && head[hi].0 < m.start {
            if visit(Piece::Point(head[hi].0, head[hi].1)).is_break() {
                return Ok(());
            }
            hi += 1;
        }
        let hj = hi + head[hi..].partition_point(|p| p.0 <= m.end);
        if hi == hj && m.start >= from && m.end < to && whole(m) {
            if visit(Piece::Chunk(k, m)).is_break() {
                return Ok(());
            }
        } else {
            let sealed = chunk_points(conn, sid, m.start)?;
            for (t, v) in merge_head_wins(&sealed, &head[hi..hj]) {
                if t >= from && t < to && visit(Piece::Point(t, v)).is_break() {
                    return Ok(());
                }
            }
        }
        hi = hj;
    }
    for &(t, v) in &head[hi..] {
        if visit(Piece::Point(t, v)).is_break() {
            return Ok(());
        }
    }
    Ok(())
}

/// Every point of `[from, to)`, at most `limit`, with the `from` of the next page.
pub(super) fn raw(
    conn: &Connection,
    sid: i64,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<RangeResult> {
    let chunks = chunks_in(conn, sid, from, to)?;
    // The first `limit + 1` head points are all a page of `limit + 1` points can hold.
    let head = super::head::points_in(conn, sid, from, to, limit + 1)?;
    let mut points = Vec::with_capacity((limit + 1).min(100_000));
    walk(
        conn,
        sid,
        (from, to),
        &chunks,
        &head,
        |_| false,
        |piece| {
            if let Piece::Point(t, v) = piece {
                points.push((t, v));
            }
            if points.len() > limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )?;
    let next = if points.len() > limit {
        points.pop().map(|(t, _)| t)
    } else {
        None
    };
    Ok(RangeResult { points, next })
}

/// Running aggregate of one bucket (also a rollup row's content).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Acc {
    pub(super) count: u64,
    pub(super) sum: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    /// Time and value of the first point.
    pub(super) first: (i64, f64),
    /// Time and value of the last point.
    pub(super) last: (i64, f64),
}

impl Acc {
    pub(super) fn point(t: i64, v: f64) -> Self {
        Self {
            count: 1,
            sum: v,
            min: v,
            max: v,
            first: (t, v),
            last: (t, v),
        }
    }

    fn chunk(m: &ChunkMeta) -> Self {
        Self {
            count: u64::from(m.count),
            sum: m.sum,
            min: m.min,
            max: m.max,
            first: (m.start, m.first),
            last: (m.end, m.last),
        }
    }

    /// Adds a later part of the same bucket.
    pub(super) fn add(&mut self, o: Self) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.last = o.last;
    }

    /// Adds a part of the same bucket that may come before, after or among its points (a late
    /// point): first and last go by time.
    pub(super) fn merge(&mut self, o: Self) {
        let (first, last) = (self.first, self.last);
        self.add(o);
        self.first = if first.0 <= o.first.0 { first } else { o.first };
        self.last = if last.0 > o.last.0 { last } else { o.last };
    }

    /// The bucket's value; `None` for a rate over fewer than two points (no time elapsed).
    pub(super) fn value(&self, agg: Agg) -> Option<f64> {
        Some(match agg {
            Agg::Avg => self.sum / self.count as f64,
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Sum => self.sum,
            Agg::Count => self.count as f64,
            Agg::First => self.first.1,
            Agg::Last => self.last.1,
            Agg::Rate => {
                let seconds = (self.last.0 - self.first.0) as f64 / 1000.0;
                if seconds <= 0.0 {
                    return None;
                }
                (self.last.1 - self.first.1) / seconds
            }
        })
    }
}

/// One aggregate per `step` bucket of `[from, to)` (buckets aligned on multiples of `step`), at
/// most `limit` buckets, with the `from` of the next page. Buckets without a value (a rate over
/// a single point) are left out but count towards the limit.
pub(super) fn aggregate(
    conn: &Connection,
    sid: i64,
    (from, to): (i64, i64),
    (step, agg): (i64, Agg),
    limit: usize,
) -> Result<RangeResult> {
    let (buckets, next) = bucket_accs(conn, sid, (from, to), step, limit)?;
    Ok(RangeResult {
        points: buckets
            .iter()
            .filter_map(|(b, a)| Some((*b, a.value(agg)?)))
            .collect(),
        next,
    })
}

/// Buckets with their running aggregates, and the `from` of the next page.
pub(super) type Buckets = (Vec<(i64, Acc)>, Option<i64>);

/// The running aggregate of every `step` bucket of `[from, to)` that holds points (buckets
/// aligned on multiples of `step`), at most `limit`, with the `from` of the next page.
pub(super) fn bucket_accs(
    conn: &Connection,
    sid: i64,
    (from, to): (i64, i64),
    step: i64,
    limit: usize,
) -> Result<Buckets> {
    let step = step.max(1);
    let bucket = |t: i64| super::rollup::floor(t, step);
    let chunks = chunks_in(conn, sid, from, to)?;
    let head = super::head::points_in(conn, sid, from, to, usize::MAX)?;
    let mut buckets: Vec<(i64, Acc)> = Vec::new();
    let whole = |m: &ChunkMeta| bucket(m.start) == bucket(m.end);
    walk(conn, sid, (from, to), &chunks, &head, whole, |piece| {
        let (b, acc) = match piece {
            Piece::Point(t, v) => (bucket(t), Acc::point(t, v)),
            Piece::Chunk(_, m) => (bucket(m.start), Acc::chunk(m)),
        };
        match buckets.last_mut() {
            Some((last, a)) if *last == b => a.add(acc),
            _ => {
                buckets.push((b, acc));
                if buckets.len() > limit + 1 {
                    buckets.pop();
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    let next = if buckets.len() > limit {
        buckets.pop().map(|(b, _)| b)
    } else {
        None
    };
    Ok((buckets, next))
}

/// Where a bucket's extreme value is: a known point, or somewhere in an undecoded chunk.
#[derive(Debug, Clone, Copy)]
enum At {
    Point(i64),
    Chunk(usize),
}

/// A series drawn at about `n` points: the range cut into `n / 2` equal buckets, each giving its
/// lowest and its highest point in time order (the min/max downsampling that keeps spikes).
/// A chunk lying inside one bucket is judged by its statistics; only the chunks that hold a
/// bucket's extreme are decoded, to learn its timestamp. Every point when there are at most `n`.
pub(super) fn downsample(
    conn: &Connection,
    sid: i64,
    from: i64,
    to: i64,
    n: usize,
) -> Result<RangeResult> {
    let n = n.max(2);
    let chunks = chunks_in(conn, sid, from, to)?;
    let head = super::head::points_in(conn, sid, from, to, usize::MAX)?;
    let upper_bound: u64 =
        chunks.iter().map(|m| u64::from(m.count)).sum::<u64>() + head.len() as u64;
    // The bound counts whole straddling chunks and head duplicates: when it is near `n`, the
    // exact answer may still be "every point".
    if upper_bound <= 4 * n as u64 {
        let all = raw(conn, sid, from, to, n)?;
        if all.next.is_none() {
            return Ok(all);
        }
    }
    let buckets = (n / 2) as i64;
    let width = ((to as i128 - from as i128 + buckets as i128 - 1) / buckets as i128)
        .clamp(1, i64::MAX as i128) as i64;
    // The last bucket may be cut short where the range is wider than i64 can count.
    let last = buckets as usize - 1;
    let index = |t: i64| (((t as i128 - from as i128) / width as i128) as usize).min(last);
    let mut lows: Vec<Option<(f64, At)>> = vec![None; buckets as usize];
    let mut highs: Vec<Option<(f64, At)>> = vec![None; buckets as usize];
    let whole = |m: &ChunkMeta| index(m.start) == index(m.end);
    walk(conn, sid, (from, to), &chunks, &head, whole, |piece| {
        let (i, lo, hi) = match piece {
            Piece::Point(t, v) => (index(t), (v, At::Point(t)), (v, At::Point(t))),
            Piece::Chunk(k, m) => (index(m.start), (m.min, At::Chunk(k)), (m.max, At::Chunk(k))),
        };
        if lows[i].is_none_or(|(v, _)| lo.0 < v) {
            lows[i] = Some(lo);
        }
        if highs[i].is_none_or(|(v, _)| hi.0 > v) {
            highs[i] = Some(hi);
        }
        ControlFlow::Continue(())
    })?;
    // Timestamps of extremes that are still inside undecoded chunks.
    let mut decoded: HashMap<usize, Vec<(i64, f64)>> = HashMap::new();
    let mut locate = |(v, at): (f64, At)| -> Result<(i64, f64)> {
        match at {
            At::Point(t) => Ok((t, v)),
            At::Chunk(k) => {
                let points = match decoded.entry(k) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(chunk_points(conn, sid, chunks[k].start)?)
                    }
                };
                let t = points
                    .iter()
                    .find(|p| p.1 == v)
                    .map_or(chunks[k].start, |p| p.0);
                Ok((t, v))
            }
        }
    };
    let mut points = Vec::with_capacity(n);
    for (lo, hi) in lows.into_iter().zip(highs) {
        let (Some(lo), Some(hi)) = (lo, hi) else {
            continue;
        };
        let (a, b) = (locate(lo)?, locate(hi)?);
        match a.0.cmp(&b.0) {
            std::cmp::Ordering::Less => points.extend([a, b]),
            std::cmp::Ordering::Greater => points.extend([b, a]),
            std::cmp::Ordering::Equal => points.push(a),
        }
    }
    Ok(RangeResult { points, next: None })
}

/// The newest point of series `sid` over both tiers.
pub(super) fn latest(conn: &Connection, sid: i64) -> Result<Option<(i64, f64)>> {
    let head = super::head::latest(conn, sid)?;
    let sealed: Option<(i64, f64)> = conn
        .prepare_cached(
            "SELECT end_ts, last FROM chunks WHERE series_id = ?1 ORDER BY start_ts DESC LIMIT 1",
        )?
        .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match (head, sealed) {
        (Some(h), Some(s)) if s.0 > h.0 => Some(s),
        (Some(h), _) => Some(h),
        (None, s) => s,
    })
}
