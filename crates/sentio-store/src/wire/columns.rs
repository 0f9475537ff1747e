//! The uplink message layout version 2: columns per series, so that a message carrying many
//! small batches (one device's publish each) costs about a byte per batch and a byte or two
//! per point.
//!
//! Layout: the version byte (2); the incarnation (16 bytes); the series table as in version 1;
//! the shapes table (a varint count, then per shape its number of runs and per run the series'
//! index and its number of points, as varints); the batches (a varint count, the first seq as
//! a varint, then per batch one varint `(seq delta × shapes + shape) × 2 + has part`, followed
//! by the part as a varint when that flag is set); the message's first timestamp (zigzag
//! varint); then per series of the table, its points of every batch in batch order: one byte
//! naming the value coding (with [`SAME_TIMES`]: the timestamps are those of the earlier
//! series whose index follows as a varint), its first timestamp unless shared (zigzag varint
//! from the message's first) and its first value (XORed with 0, as in version 1), then for the
//! other points a bit stream padded to a byte: the timestamps' deltas of deltas unless shared
//! ([`BitWriter::put_dod`]: one bit for a steady cadence) and, with coding 0, the values'
//! IEEE bits less their prediction from the two before ([`predict`]; one bit for a repeated
//! or linear series); with coding 1 (a
//! noisy series) the values XORed with the previous one follow as bytes, as in version 1. The
//! encoder picks the shorter coding.

use std::collections::HashMap;
use std::sync::Arc;

use sentio_core::Point;

use super::{
    Reader, WireBatch, WireError, WireMessage, put_header, put_varint, put_xor, series_table,
};
use super::{unzigzag, zigzag};
use crate::edge::{BatchSeq, Incarnation};

/// The layout version this module writes, first byte of the payload.
pub const VERSION: u8 = 2;

/// Value coding: the differences from [`predict`], in the bit stream.
const PREDICTED: u8 = 0;
/// Value coding: XOR with the previous value, as bytes.
const XOR: u8 = 1;

/// The widths of a nonzero delta of deltas, by prefix: `10` and 4 bits, `110` and 9, `1110`
/// and 20, `1111` and 64 (a clock's jitter costs 6 bits, a step 12).
const DOD_CLASSES: [u32; 4] = [4, 9, 20, 64];

/// Flag in a column's coding byte: its timestamps are those of an earlier series (a
/// device's metrics published together), whose index follows.
const SAME_TIMES: u8 = 0x80;

/// A batch's runs: (series index, points), by series.
type Shape = Vec<(usize, usize)>;

/// The IEEE bits predicted for a series' next value from its last two: the linear step in
/// floating point when that is exact arithmetic on finite numbers (a ramp stays one bit across
/// powers of two), else the same step on the bits. Both ends compute it alike.
fn predict(prev2: u64, prev: u64) -> u64 {
    let (a, b) = (f64::from_bits(prev2), f64::from_bits(prev));
    let p = b + (b - a);
    if a.is_finite() && b.is_finite() && p.is_finite() {
        p.to_bits()
    } else {
        prev.wrapping_add(prev.wrapping_sub(prev2))
    }
}

/// Writes bits, most significant first, into bytes.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0: start a new one).
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, bits: u32) {
        for i in (0..bits).rev() {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            *self.bytes.last_mut().expect("pushed") |= bit << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }

    /// A delta of deltas: `0` for none, else a prefix of [`DOD_CLASSES`] and the value in
    /// that many bits (two's complement).
    fn put_dod(&mut self, v: i64) {
        if v == 0 {
            self.put(0, 1);
            return;
        }
        for (k, &bits) in DOD_CLASSES.iter().enumerate() {
            let half = 1i128 << (bits - 1);
            if bits == 64 || (-half..half).contains(&i128::from(v)) {
                // k + 1 ones, then a zero unless it is the last class.
                let last = k + 1 == DOD_CLASSES.len();
                self.put(u64::MAX, k as u32 + 1);
                if !last {
                    self.put(0, 1);
                }
                self.put(v as u64 & (u64::MAX >> (64 - bits)), bits);
                return;
            }
        }
    }

    /// The deltas of deltas of `values` after the first (whose delta counts as 0).
    fn put_series(&mut self, values: impl Iterator<Item = i64>) {
        let mut last: Option<(i64, i64)> = None;
        for v in values {
            if let Some((prev, delta)) = last {
                let d = v.wrapping_sub(prev);
                self.put_dod(d.wrapping_sub(delta));
                last = Some((v, d));
            } else {
                last = Some((v, 0));
            }
        }
    }
}

impl BitWriter {
    /// Values after the first: each one's difference from [`predict`] (the second's from the
    /// first) as a [`BitWriter::put_dod`].
    fn put_values(&mut self, values: impl Iterator<Item = u64>) {
        let mut last: Option<(u64, u64)> = None;
        for v in values {
            if let Some((prev2, prev)) = last {
                self.put_dod(v.wrapping_sub(predict(prev2, prev)) as i64);
            }
            last = Some((last.map_or(v, |l| l.1), v));
        }
    }
}

/// Reads what [`BitWriter`] wrote, from a [`Reader`], a byte at a time.
struct BitReader<'r, 'a> {
    r: &'r mut Reader<'a>,
    byte: u8,
    left: u32,
}

impl<'r, 'a> BitReader<'r, 'a> {
    fn new(r: &'r mut Reader<'a>) -> Self {
        Self {
            r,
            byte: 0,
            left: 0,
        }
    }

    fn get(&mut self, bits: u32) -> Result<u64, WireError> {
        let mut v = 0u64;
        for _ in 0..bits {
            if self.left == 0 {
                self.byte = self.r.byte()?;
                self.left = 8;
            }
            self.left -= 1;
            v = (v << 1) | u64::from((self.byte >> self.left) & 1);
        }
        Ok(v)
    }

    fn dod(&mut self) -> Result<i64, WireError> {
        if self.get(1)? == 0 {
            return Ok(0);
        }
        for (k, &bits) in DOD_CLASSES.iter().enumerate() {
            if k + 1 == DOD_CLASSES.len() || self.get(1)? == 0 {
                let v = self.get(bits)?;
                let shift = 64 - bits;
                return Ok(((v << shift) as i64) >> shift);
            }
        }
        unreachable!("the last class ends the loop")
    }

    /// `n` values after `first`, from [`BitWriter::put_values`].
    fn values(&mut self, first: u64, n: usize, out: &mut Vec<i64>) -> Result<(), WireError> {
        let (mut prev2, mut prev) = (first, first);
        for _ in 0..n {
            let v = predict(prev2, prev).wrapping_add(self.dod()? as u64);
            (prev2, prev) = (prev, v);
            out.push(v as i64);
        }
        Ok(())
    }

    /// `n` values after `first`, from their deltas of deltas.
    fn series(&mut self, first: i64, n: usize, out: &mut Vec<i64>) -> Result<(), WireError> {
        let (mut prev, mut delta) = (first, 0i64);
        for _ in 0..n {
            delta = delta.wrapping_add(self.dod()?);
            prev = prev.wrapping_add(delta);
            out.push(prev);
        }
        Ok(())
    }
}

/// Encodes batches whose seqs never decrease; `None` otherwise (the caller then writes
/// version 1).
pub(super) fn encode(
    incarnation: Incarnation,
    batches: &[(BatchSeq, u32, &[Point])],
) -> Option<Vec<u8>> {
    if batches.windows(2).any(|w| w[1].0 < w[0].0) || batches.first().is_some_and(|b| b.0.0 < 0) {
        return None;
    }
    let (table, runs) = series_table(batches);
    // Each series' column: its points in batch order.
    let mut columns: Vec<Vec<(i64, f64)>> = vec![Vec::new(); table.len()];
    let mut shapes: Vec<Shape> = Vec::new();
    let mut shape_index: HashMap<Shape, usize> = HashMap::new();
    let mut batch_shapes = Vec::with_capacity(batches.len());
    for by_series in &runs {
        let shape: Shape = by_series.iter().map(|(&i, run)| (i, run.len())).collect();
        for (&i, run) in by_series {
            columns[i].extend(run.iter().map(|(&t, &v)| (t, v)));
        }
        let next = shapes.len();
        let s = *shape_index.entry(shape.clone()).or_insert_with(|| {
            shapes.push(shape);
            next
        });
        batch_shapes.push(s);
    }
    let n: usize = batches.iter().map(|b| b.2.len()).sum();
    let mut out = Vec::with_capacity(64 + table.len() * 16 + n * 2);
    put_header(&mut out, VERSION, incarnation, &table);
    put_varint(&mut out, shapes.len() as u64);
    for shape in &shapes {
        put_varint(&mut out, shape.len() as u64);
        for &(i, count) in shape {
            put_varint(&mut out, i as u64);
            put_varint(&mut out, count as u64);
        }
    }
    put_varint(&mut out, batches.len() as u64);
    let first = batches.first().map_or(0, |b| b.0.0);
    put_varint(&mut out, first as u64);
    let mut prev = first;
    for ((seq, part, _), &shape) in batches.iter().zip(&batch_shapes) {
        let head = ((seq.0 - prev) as u128 * shapes.len() as u128 + shape as u128) * 2
            + u128::from(*part > 0);
        put_varint(&mut out, u64::try_from(head).ok()?);
        if *part > 0 {
            put_varint(&mut out, u64::from(*part));
        }
        prev = seq.0;
    }
    let base = columns.first().and_then(|c| c.first()).map_or(0, |p| p.0);
    put_varint(&mut out, zigzag(base));
    for (i, column) in columns.iter().enumerate() {
        let Some(&(ts0, v0)) = column.first() else {
            // Every series of the table has a point.
            return None;
        };
        let same_times = columns[..i]
            .iter()
            .position(|c| c.len() == column.len() && c.iter().zip(column).all(|(a, b)| a.0 == b.0));
        let mut deltas = BitWriter::default();
        let mut xors = BitWriter::default();
        if same_times.is_none() {
            deltas.put_series(column.iter().map(|p| p.0));
            xors.put_series(column.iter().map(|p| p.0));
        }
        let mut xors = xors.bytes;
        deltas.put_values(column.iter().map(|p| p.1.to_bits()));
        let mut last = v0.to_bits();
        for &(_, v) in &column[1..] {
            put_xor(&mut xors, v.to_bits() ^ last);
            last = v.to_bits();
        }
        let (coding, rest) = if deltas.bytes.len() <= xors.len() {
            (PREDICTED, deltas.bytes)
        } else {
            (XOR, xors)
        };
        match same_times {
            Some(j) => {
                out.push(coding | SAME_TIMES);
                put_varint(&mut out, j as u64);
            }
            None => {
                out.push(coding);
                put_varint(&mut out, zigzag(ts0.wrapping_sub(base)));
            }
        }
        put_xor(&mut out, v0.to_bits());
        out.extend_from_slice(&rest);
    }
    Some(out)
}

/// Decodes the rest of a version 2 message (after its version byte).
pub(super) fn decode(mut r: Reader<'_>) -> Result<WireMessage, WireError> {
    let incarnation = Incarnation(r.take(16)?.try_into().expect("16 bytes"));
    let table = r.series_table()?;
    let n_shapes = r.count(1)?;
    let mut shapes: Vec<Shape> = Vec::with_capacity(n_shapes);
    for _ in 0..n_shapes {
        let n_runs = r.count(2)?;
        let mut shape = Vec::with_capacity(n_runs);
        for _ in 0..n_runs {
            let i = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
            if i >= table.len() {
                return Reader::err("a series index out of the table");
            }
            shape.push((i, usize::try_from(r.varint()?).unwrap_or(usize::MAX)));
        }
        shapes.push(shape);
    }
    let n_batches = r.count(1)?;
    let mut seq = i64::try_from(r.varint()?).map_err(|_| WireError("seq out of range".into()))?;
    let mut heads = Vec::with_capacity(n_batches);
    let mut totals = vec![0usize; table.len()];
    let mut all = 0usize;
    for _ in 0..n_batches {
        let head = r.varint()?;
        let has_part = head & 1 == 1;
        let rest = head >> 1;
        let n = shapes.len() as u64;
        if n == 0 {
            return Reader::err("a batch without a shape");
        }
        let shape = (rest % n) as usize;
        seq = i64::try_from(rest / n)
            .ok()
            .and_then(|d| seq.checked_add(d))
            .ok_or_else(|| WireError("seq out of range".into()))?;
        let part = if has_part {
            u32::try_from(r.varint()?).map_err(|_| WireError("part out of range".into()))?
        } else {
            0
        };
        for &(i, count) in &shapes[shape] {
            // Every point takes at least one bit (its value; its timestamp may be shared).
            all = all.saturating_add(count);
            if all > r.bytes.len().saturating_mul(8) {
                return Reader::err("more points than the payload holds");
            }
            totals[i] += count;
        }
        heads.push((BatchSeq(seq), part, shape));
    }
    let base = unzigzag(r.varint()?);
    let mut times: Vec<Vec<i64>> = Vec::with_capacity(table.len());
    let mut values: Vec<Vec<i64>> = Vec::with_capacity(table.len());
    for &n in &totals {
        let head = r.byte()?;
        let (coding, same) = (head & !SAME_TIMES, head & SAME_TIMES != 0);
        let earlier = if same {
            let j = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
            match times.get(j) {
                Some(t) if t.len() == n => Some(t.clone()),
                _ => return Reader::err("timestamps of another series that do not fit"),
            }
        } else {
            None
        };
        let ts0 = if same {
            0
        } else {
            base.wrapping_add(unzigzag(r.varint()?))
        };
        let v0 = r.xor()?;
        if n == 0 {
            return Reader::err("a series without points");
        }
        let mut bits = Vec::with_capacity(n);
        bits.push(v0 as i64);
        let mut stream = BitReader::new(&mut r);
        let ts = match earlier {
            Some(ts) => ts,
            None => {
                let mut ts = Vec::with_capacity(n);
                ts.push(ts0);
                stream.series(ts0, n - 1, &mut ts)?;
                ts
            }
        };
        match coding {
            PREDICTED => stream.values(v0, n - 1, &mut bits)?,
            XOR => {
                let mut last = v0;
                for _ in 1..n {
                    last ^= r.xor()?;
                    bits.push(last as i64);
                }
            }
            _ => return Reader::err("an unknown value coding"),
        }
        times.push(ts);
        values.push(bits);
    }
    let mut columns: Vec<_> = times
        .iter()
        .zip(values)
        .map(|(ts, bits)| {
            ts.iter()
                .copied()
                .zip(bits)
                .map(|(t, b)| (t, f64::from_bits(b as u64)))
        })
        .collect();
    if !r.bytes.is_empty() {
        return Reader::err("bytes after the last column");
    }
    let batches = heads
        .into_iter()
        .map(|(seq, part, shape)| {
            let mut points = Vec::new();
            for &(i, count) in &shapes[shape] {
                let (device, metric) = &table[i];
                points.extend(columns[i].by_ref().take(count).map(|(ts_ms, value)| Point {
                    device: device.clone(),
                    metric: Arc::clone(metric),
                    ts_ms,
                    value,
                }));
            }
            WireBatch { seq, part, points }
        })
        .collect();
    Ok(WireMessage {
        incarnation,
        batches,
    })
}
