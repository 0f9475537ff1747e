//! The uplink message of an edge with the aggregates policy (`edges/<id>/up/rollups`): batches
//! of 1-minute rollups as the edge's store keeps them (count, sum, min, max, first, last),
//! about ten bytes per series and minute for sensor data, so a 1 Hz series costs well under
//! 0.2 bytes a point on the wire.
//!
//! Layout: the version byte ([`VERSION`]); the incarnation (16 bytes); the series table as in
//! version 1; the batches (a varint count, the first seq as a varint, then per batch its seq
//! delta and its number of runs as varints); per run the series' index and its number of rows
//! (varints), then per row: one header byte (low four bits: the decimal digits `d` of the
//! row's values, [`RAW`] when they are not all decimals of at most [`MAX_DIGITS`] digits;
//! [`SAME_COUNT`], [`SAME_OFFSETS`], [`EXACT_SUM`] and [`NEXT_MINUTE`] as flags); unless
//! [`NEXT_MINUTE`], the bucket as a zigzag varint of minutes from the previous row's; the
//! count and the offsets of the first and last point in the minute unless the flags say they
//! are the previous row's (varints). The previous row is the series' in the message, or for
//! its first row the message's last row of any series (whose values do not count); then, with `d` digits, the values as integers `k` (`v = k / 10^d`, bit for bit):
//! the first as a zigzag varint from the previous row's last, the last from the first, the
//! lowest below `min(first, last)`, the highest above `max(first, last)`, the sum's `k` from
//! `count × (first + last) / 2`, and unless [`EXACT_SUM`] the sum's IEEE bits less those of
//! its `k / 10^d` (zigzag varint: a rounding error of a few units in the last place). With
//! [`RAW`] each value is XORed with the previous row's same value as in version 1.

use std::collections::HashMap;
use std::sync::Arc;

use sentio_core::DeviceId;

use super::{Reader, WireError, put_header, put_varint, put_xor, unzigzag, zigzag};
use crate::RollupRow;
use crate::edge::{BatchSeq, Incarnation, SeriesRollups};

/// The layout version of a rollups message, first byte of the payload.
pub const VERSION: u8 = 3;

/// A minute in ms.
const MINUTE: i64 = 60_000;

/// Most decimal digits tried for a row's values.
const MAX_DIGITS: u8 = 9;
/// Header: the values are not all short decimals; XOR coding.
const RAW: u8 = 0x0f;
/// Header flag: the count is the previous row's.
const SAME_COUNT: u8 = 0x10;
/// Header flag: the first and last offsets are the previous row's.
const SAME_OFFSETS: u8 = 0x20;
/// Header flag: the sum is exactly `k / 10^d`.
const EXACT_SUM: u8 = 0x40;
/// Header flag: the bucket is the minute after the previous row's.
const NEXT_MINUTE: u8 = 0x80;

/// Powers of ten, exact in an f64.
const POW10: [f64; MAX_DIGITS as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Largest integer magnitude coded: every integer below it is exact in an f64.
const MAX_K: f64 = 9_007_199_254_740_992.0;

/// `v` as `k` with `v == k / 10^d` bit for bit, if there is such a `k` in range.
fn as_decimal(v: f64, d: u8) -> Option<i64> {
    let s = POW10[d as usize];
    let k = (v * s).round();
    // Decoded from the integer, so that -0.0 (k = 0) does not pass for 0.
    (k.abs() < MAX_K && from_decimal(k as i64, d).to_bits() == v.to_bits()).then_some(k as i64)
}

/// The value of `k` at `d` digits.
fn from_decimal(k: i64, d: u8) -> f64 {
    k as f64 / POW10[d as usize]
}

/// `v` at `d` digits, rounded (a prediction: both ends compute it alike).
fn rounded(v: f64, d: u8) -> i64 {
    let k = (v * POW10[d as usize]).round();
    if k.is_finite() && k.abs() < MAX_K {
        k as i64
    } else {
        0
    }
}

/// The fewest digits that code all four values of a row exactly.
fn digits(r: &RollupRow) -> Option<u8> {
    (0..=MAX_DIGITS).find(|&d| {
        [r.first.1, r.last.1, r.min, r.max]
            .iter()
            .all(|&v| as_decimal(v, d).is_some())
    })
}

/// The sum's prediction: `count × (first + last) / 2`, in integers.
fn predict_sum(count: u64, first: i64, last: i64) -> i64 {
    let p = i128::from(count) * (i128::from(first) + i128::from(last)) / 2;
    p.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// What both ends remember of a series within one message.
#[derive(Clone, Copy)]
struct Prev {
    bucket: i64,
    count: u64,
    offsets: (i64, i64),
    row: RollupRow,
}

impl Default for Prev {
    fn default() -> Self {
        Self {
            bucket: 0,
            count: 0,
            offsets: (-1, -1),
            row: RollupRow {
                bucket_ms: 0,
                count: 0,
                sum: 0.0,
                min: 0.0,
                max: 0.0,
                first: (0, 0.0),
                last: (0, 0.0),
            },
        }
    }
}

/// A decoded rollups message.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupsMessage {
    /// The sender's incarnation.
    pub incarnation: Incarnation,
    /// Its batches, in order: each one's seq and rows per series.
    pub batches: Vec<(BatchSeq, Vec<SeriesRollups>)>,
}

/// Encodes batches of rollups (in seq order) into one message. Each row must be a whole
/// minute's (`bucket_ms` on a minute, both points within it, a count of at least one).
pub fn encode(incarnation: Incarnation, batches: &[(BatchSeq, &[SeriesRollups])]) -> Vec<u8> {
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut table: Vec<(&str, &str)> = Vec::new();
    for (_, series) in batches {
        for s in series.iter() {
            let key = (s.device.as_str(), &*s.metric);
            index.entry(key).or_insert_with(|| {
                table.push(key);
                table.len() - 1
            });
        }
    }
    let rows: usize = batches
        .iter()
        .flat_map(|b| b.1.iter())
        .map(|s| s.rows.len())
        .sum();
    let mut out = Vec::with_capacity(32 + table.len() * 16 + rows * 12);
    put_header(&mut out, VERSION, incarnation, &table);
    put_varint(&mut out, batches.len() as u64);
    let mut last_seq = batches.first().map_or(0, |b| b.0.0);
    put_varint(&mut out, last_seq as u64);
    let mut prev = vec![Prev::default(); table.len()];
    let mut started = vec![false; table.len()];
    let mut shape = Prev::default();
    for (seq, series) in batches {
        put_varint(&mut out, zigzag(seq.0.wrapping_sub(last_seq)));
        last_seq = seq.0;
        put_varint(&mut out, series.len() as u64);
        for s in series.iter() {
            let i = index[&(s.device.as_str(), &*s.metric)];
            put_varint(&mut out, i as u64);
            put_varint(&mut out, s.rows.len() as u64);
            for r in &s.rows {
                let p = &mut prev[i];
                if !std::mem::replace(&mut started[i], true) {
                    (p.bucket, p.count, p.offsets) = (shape.bucket, shape.count, shape.offsets);
                }
                put_row(&mut out, p, r);
                shape = *p;
            }
        }
    }
    out
}

fn put_row(out: &mut Vec<u8>, p: &mut Prev, r: &RollupRow) {
    let minutes = r.bucket_ms.wrapping_sub(p.bucket).div_euclid(MINUTE);
    let offsets = (r.first.0 - r.bucket_ms, r.last.0 - r.bucket_ms);
    let d = digits(r);
    let ks = d.map(|d| {
        let exact = as_decimal(r.sum, d);
        (
            d,
            exact.unwrap_or_else(|| rounded(r.sum, d)),
            exact.is_some(),
        )
    });
    let mut head = d.unwrap_or(RAW);
    if r.count == p.count {
        head |= SAME_COUNT;
    }
    if offsets == p.offsets {
        head |= SAME_OFFSETS;
    }
    if ks.is_some_and(|k| k.2) {
        head |= EXACT_SUM;
    }
    if minutes == 1 {
        head |= NEXT_MINUTE;
    }
    out.push(head);
    if minutes != 1 {
        put_varint(out, zigzag(minutes));
    }
    if r.count != p.count {
        put_varint(out, r.count);
    }
    if offsets != p.offsets {
        put_varint(out, offsets.0 as u64);
        put_varint(out, offsets.1 as u64);
    }
    match ks {
        Some((d, sk, exact)) => {
            let k = |v: f64| as_decimal(v, d).expect("checked by digits");
            let (fk, lk) = (k(r.first.1), k(r.last.1));
            put_varint(out, zigzag(fk.wrapping_sub(rounded(p.row.last.1, d))));
            put_varint(out, zigzag(lk.wrapping_sub(fk)));
            put_varint(out, zigzag(fk.min(lk).wrapping_sub(k(r.min))));
            put_varint(out, zigzag(k(r.max).wrapping_sub(fk.max(lk))));
            put_varint(out, zigzag(sk.wrapping_sub(predict_sum(r.count, fk, lk))));
            if !exact {
                let off = r.sum.to_bits().wrapping_sub(from_decimal(sk, d).to_bits());
                put_varint(out, zigzag(off as i64));
            }
        }
        None => {
            for (v, was) in [
                (r.first.1, p.row.first.1),
                (r.last.1, p.row.last.1),
                (r.min, p.row.min),
                (r.max, p.row.max),
                (r.sum, p.row.sum),
            ] {
                put_xor(out, v.to_bits() ^ was.to_bits());
            }
        }
    }
    (p.bucket, p.count, p.offsets, p.row) = (r.bucket_ms, r.count, offsets, *r);
}

fn get_row(r: &mut Reader<'_>, p: &mut Prev) -> Result<RollupRow, WireError> {
    let bad = |what: &str| Err(WireError(format!("a rollup row: {what}")));
    let head = r.byte()?;
    let minutes = if head & NEXT_MINUTE != 0 {
        1
    } else {
        unzigzag(r.varint()?)
    };
    let Some(bucket) = minutes
        .checked_mul(MINUTE)
        .and_then(|m| m.checked_add(p.bucket))
    else {
        return bad("bucket out of range");
    };
    let count = if head & SAME_COUNT != 0 {
        p.count
    } else {
        r.varint()?
    };
    let offsets = if head & SAME_OFFSETS != 0 {
        p.offsets
    } else {
        (r.varint()? as i64, r.varint()? as i64)
    };
    if count == 0 || !(0 <= offsets.0 && offsets.0 <= offsets.1 && offsets.1 < MINUTE) {
        return bad("count or offsets");
    }
    let d = head & 0x0f;
    let (first, last, min, max, sum) = if d == RAW {
        let mut v = [p.row.first.1, p.row.last.1, p.row.min, p.row.max, p.row.sum];
        for x in &mut v {
            *x = f64::from_bits(x.to_bits() ^ r.xor()?);
        }
        (v[0], v[1], v[2], v[3], v[4])
    } else if d <= MAX_DIGITS {
        let mut z = || -> Result<i64, WireError> { Ok(unzigzag(r.varint()?)) };
        let fk = rounded(p.row.last.1, d).wrapping_add(z()?);
        let lk = fk.wrapping_add(z()?);
        let mink = fk.min(lk).wrapping_sub(z()?);
        let maxk = fk.max(lk).wrapping_add(z()?);
        let sk = predict_sum(count, fk, lk).wrapping_add(z()?);
        let mut sum = from_decimal(sk, d);
        if head & EXACT_SUM == 0 {
            sum = f64::from_bits(sum.to_bits().wrapping_add(z()? as u64));
        }
        let v = |k: i64| from_decimal(k, d);
        (v(fk), v(lk), v(mink), v(maxk), sum)
    } else {
        return bad("digits");
    };
    let row = RollupRow {
        bucket_ms: bucket,
        count,
        sum,
        min,
        max,
        first: (bucket + offsets.0, first),
        last: (bucket + offsets.1, last),
    };
    (p.bucket, p.count, p.offsets, p.row) = (bucket, count, offsets, row);
    Ok(row)
}

/// Decodes the rest of a rollups message (after its version byte).
pub(super) fn decode(mut r: Reader<'_>) -> Result<RollupsMessage, WireError> {
    let incarnation = Incarnation(r.take(16)?.try_into().expect("16 bytes"));
    let table = r.series_table()?;
    let n_batches = r.count(2)?;
    let mut seq = i64::try_from(r.varint()?).map_err(|_| WireError("seq out of range".into()))?;
    let mut prev = vec![Prev::default(); table.len()];
    let mut started = vec![false; table.len()];
    let mut shape = Prev::default();
    let mut batches = Vec::with_capacity(n_batches);
    for _ in 0..n_batches {
        seq = seq.wrapping_add(unzigzag(r.varint()?));
        let n_runs = r.count(2)?;
        let mut series = Vec::with_capacity(n_runs);
        for _ in 0..n_runs {
            let i = r.varint()?;
            let Some((device, metric)) = usize::try_from(i).ok().and_then(|i| table.get(i)) else {
                return Reader::err("a series index out of the table");
            };
            let n_rows = r.count(2)?;
            let mut rows = Vec::with_capacity(n_rows);
            for _ in 0..n_rows {
                let p = &mut prev[i as usize];
                if !std::mem::replace(&mut started[i as usize], true) {
                    (p.bucket, p.count, p.offsets) = (shape.bucket, shape.count, shape.offsets);
                }
                rows.push(get_row(&mut r, p)?);
                shape = *p;
            }
            series.push(SeriesRollups {
                device: DeviceId::clone(device),
                metric: Arc::clone(metric),
                rows,
            });
        }
        batches.push((BatchSeq(seq), series));
    }
    if !r.bytes.is_empty() {
        return Reader::err("bytes after the last batch");
    }
    Ok(RollupsMessage {
        incarnation,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket_ms: i64, values: &[f64], step_ms: i64) -> RollupRow {
        let mut sum = 0.0;
        for v in values {
            sum += v;
        }
        let n = values.len();
        RollupRow {
            bucket_ms,
            count: n as u64,
            sum,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            first: (bucket_ms + 250, values[0]),
            last: (bucket_ms + 250 + (n as i64 - 1) * step_ms, values[n - 1]),
        }
    }

    /// An hour of 1 Hz sensor data (two decimals, a slow wave and noise) per series.
    fn hour_of(devices: usize, start: i64) -> Vec<SeriesRollups> {
        (0..devices)
            .map(|d| {
                let rows = (0..60)
                    .map(|m| {
                        let values: Vec<f64> = (0..60)
                            .map(|s| {
                                let t = (m * 60 + s) as f64;
                                let v = 21.0
                                    + 2.0 * (t / 900.0 + d as f64).sin()
                                    + ((t * 7.3).sin() * 0.05);
                                (v * 100.0).round() / 100.0
                            })
                            .collect();
                        row(start + m * MINUTE, &values, 1000)
                    })
                    .collect();
                SeriesRollups {
                    device: DeviceId::parse(&format!("room-{d:03}")).unwrap(),
                    metric: Arc::from("temperature"),
                    rows,
                }
            })
            .collect()
    }

    #[test]
    fn rollups_round_trip_bit_for_bit_under_a_fifth_of_a_byte_a_point() {
        let inc = Incarnation([4; 16]);
        let start = 29_000_000 * MINUTE;
        let first = hour_of(20, start);
        let second = hour_of(20, start + 60 * MINUTE);
        let bytes = encode(inc, &[(BatchSeq(7), &first), (BatchSeq(9), &second)]);
        let back = decode_rollups_bytes(&bytes);
        assert_eq!(back.incarnation, inc);
        assert_eq!(back.batches.len(), 2);
        assert_eq!(back.batches[0].0, BatchSeq(7));
        assert_eq!(back.batches[1].0, BatchSeq(9));
        assert_eq!(back.batches[0].1, first);
        assert_eq!(back.batches[1].1, second);
        let points = 2 * 20 * 60 * 60;
        let per_point = bytes.len() as f64 / points as f64;
        println!(
            "rollups: {} bytes for {points} points of 1 Hz series: {per_point:.3} B/point",
            bytes.len()
        );
        assert!(per_point <= 0.2, "{per_point:.3} B/point");
    }

    #[test]
    fn any_values_round_trip_bit_for_bit() {
        let odd = [
            f64::NAN,
            -0.0,
            f64::INFINITY,
            1e300,
            std::f64::consts::PI,
            -7.25,
            0.1 + 0.2,
        ];
        let rows: Vec<RollupRow> = (0..odd.len() as i64)
            .map(|i| {
                let v = odd[i as usize];
                let mut r = row(i * 3 * MINUTE, &[v, 1.5, v], 10_000);
                r.sum = odd[(i as usize + 3) % odd.len()];
                r
            })
            .collect();
        let series = vec![SeriesRollups {
            device: DeviceId::parse("d").unwrap(),
            metric: Arc::from("m"),
            rows,
        }];
        let bytes = encode(Incarnation([1; 16]), &[(BatchSeq(1), &series)]);
        let back = decode_rollups_bytes(&bytes);
        let bits = |s: &[SeriesRollups]| -> Vec<[u64; 5]> {
            s[0].rows
                .iter()
                .map(|r| [r.sum, r.min, r.max, r.first.1, r.last.1].map(f64::to_bits))
                .collect()
        };
        assert_eq!(bits(&back.batches[0].1), bits(&series));
        for n in 0..bytes.len() {
            assert!(
                super::super::decode_rollups(&bytes[..n]).is_err(),
                "cut at {n}"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0xff;
            let _ = super::super::decode_rollups(&bad);
        }
    }

    fn decode_rollups_bytes(bytes: &[u8]) -> RollupsMessage {
        super::super::decode_rollups(bytes).unwrap()
    }
}
