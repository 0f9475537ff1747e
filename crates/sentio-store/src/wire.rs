//! The uplink's batch encoding: how an edge's batch of points crosses the wire to the cloud
//! (the payload of `edges/<id>/up/points`). Compact and binary; decoding treats every byte as
//! hostile (bounds checked, counts capped by the bytes left, names validated), so a bad
//! payload is an error value, never a panic or an allocation larger than the payload allows.
//!
//! Layout (version 1): the version byte; the incarnation (16 bytes); the seq and the part
//! (varints; [`crate::edge::PART_POINTS`]); the number of series (varint); per series the device id and the metric (each a varint length
//! and UTF-8 bytes), the number of points (varint) and one codec byte: `0` plain (first
//! timestamp zigzag varint, then each following one as a varint delta, then the values as
//! little-endian `f64`), `1` a pco chunk ([`crate::chunk`], varint length then bytes), used
//! from [`PCO_FROM`] points on, where it pays for its header.

use std::collections::BTreeMap;
use std::sync::Arc;

use sentio_core::telemetry::valid_metric;
use sentio_core::{DeviceId, Point};

use crate::chunk;
use crate::edge::{BatchSeq, Incarnation};

/// The layout version, first byte of every payload.
pub const VERSION: u8 = 1;

/// Series of at least this many points in a batch are sent as a pco chunk.
pub const PCO_FROM: usize = 16;

/// A decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub struct WireBatch {
    /// The sender's incarnation.
    pub incarnation: Incarnation,
    /// The batch's seq.
    pub seq: BatchSeq,
    /// Which part of the batch.
    pub part: u32,
    /// Its points, by series then time.
    pub points: Vec<Point>,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("uplink batch: {0}")]
pub struct WireError(String);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a batch. Points of one series and timestamp appear once (the last given wins).
pub fn encode(incarnation: Incarnation, seq: BatchSeq, part: u32, points: &[Point]) -> Vec<u8> {
    let mut series: BTreeMap<(&str, &str), BTreeMap<i64, f64>> = BTreeMap::new();
    for p in points {
        series
            .entry((p.device.as_str(), &p.metric))
            .or_default()
            .insert(p.ts_ms, p.value);
    }
    let mut out = Vec::with_capacity(32 + points.len() * 4);
    out.push(VERSION);
    out.extend_from_slice(&incarnation.0);
    put_varint(&mut out, seq.0 as u64);
    put_varint(&mut out, u64::from(part));
    put_varint(&mut out, series.len() as u64);
    for ((device, metric), run) in series {
        put_str(&mut out, device);
        put_str(&mut out, metric);
        put_varint(&mut out, run.len() as u64);
        let run: Vec<(i64, f64)> = run.into_iter().collect();
        // Timestamps are strictly increasing (map keys), so the chunk codec takes them.
        if run.len() >= PCO_FROM
            && let Ok(encoded) = chunk::encode(&run)
        {
            out.push(1);
            put_varint(&mut out, encoded.data.len() as u64);
            out.extend_from_slice(&encoded.data);
            continue;
        }
        out.push(0);
        let mut prev = None;
        for &(ts, _) in &run {
            match prev {
                None => put_varint(&mut out, zigzag(ts)),
                Some(p) => put_varint(&mut out, ts.wrapping_sub(p) as u64),
            }
            prev = Some(ts);
        }
        for &(_, v) in &run {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// A cursor over a payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn err<T>(what: &str) -> Result<T, WireError> {
        Err(WireError(what.to_string()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Self::err("truncated");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Self::err("varint too long")
    }

    /// A count of items each taking at least `min_bytes`: never more than the bytes left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > (self.bytes.len() / min_bytes.max(1)) as u64 {
            return Self::err("a count larger than the payload");
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.count(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError("a name is not UTF-8".into()))
    }
}

/// Decodes a payload.
pub fn decode(payload: &[u8]) -> Result<WireBatch, WireError> {
    let mut r = Reader { bytes: payload };
    if r.byte()? != VERSION {
        return Reader::err("unknown version");
    }
    let incarnation = Incarnation(r.take(16)?.try_into().expect("16 bytes"));
    let seq = r.varint()?;
    if seq > i64::MAX as u64 {
        return Reader::err("seq out of range");
    }
    let part = u32::try_from(r.varint()?).map_err(|_| WireError("part out of range".into()))?;
    let n_series = r.count(4)?;
    let mut points = Vec::new();
    for _ in 0..n_series {
        let device = DeviceId::parse(r.str()?).map_err(|e| WireError(format!("device id: {e}")))?;
        let metric = r.str()?;
        if !valid_metric(metric) {
            return Reader::err("invalid metric name");
        }
        let metric: Arc<str> = Arc::from(metric);
        let count = r.count(1)?;
        let run: Vec<(i64, f64)> = match r.byte()? {
            0 => {
                let mut ts: Vec<i64> = Vec::with_capacity(count);
                for i in 0..count {
                    let v = r.varint()?;
                    let t = match i {
                        0 => unzigzag(v),
                        _ => i64::try_from(v)
                            .ok()
                            .and_then(|d| ts[i - 1].checked_add(d))
                            .ok_or_else(|| WireError("a timestamp delta out of range".into()))?,
                    };
                    ts.push(t);
                }
                let values = r.take(count.checked_mul(8).ok_or(WireError("count".into()))?)?;
                ts.into_iter()
                    .zip(values.chunks_exact(8))
                    .map(|(t, v)| (t, f64::from_le_bytes(v.try_into().expect("8 bytes"))))
                    .collect()
            }
            1 => {
                let n = r.count(1)?;
                let run = chunk::decode(r.take(n)?).map_err(|e| WireError(e.to_string()))?;
                if run.len() != count {
                    return Reader::err("a chunk with another count");
                }
                run
            }
            _ => return Reader::err("unknown series codec"),
        };
        points.extend(run.into_iter().map(|(ts_ms, value)| Point {
            device: device.clone(),
            metric: metric.clone(),
            ts_ms,
            value,
        }));
    }
    if !r.bytes.is_empty() {
        return Reader::err("bytes after the last series");
    }
    Ok(WireBatch {
        incarnation,
        seq: BatchSeq(seq as i64),
        part,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(device: &str, metric: &str, ts_ms: i64, value: f64) -> Point {
        Point {
            device: DeviceId::parse(device).unwrap(),
            metric: Arc::from(metric),
            ts_ms,
            value,
        }
    }

    #[test]
    fn round_trips_plain_and_chunked_series() {
        let inc = Incarnation([7; 16]);
        let mut points = vec![p("a", "x", -5, 1.5), p("a", "x", 3, f64::MIN_POSITIVE)];
        points.extend((0..100).map(|i| {
            p(
                "b",
                "y",
                1_700_000_000_000 + i * 1000,
                20.0 + i as f64 / 10.0,
            )
        }));
        let bytes = encode(inc, BatchSeq(42), 3, &points);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.incarnation, inc);
        assert_eq!((back.seq, back.part), (BatchSeq(42), 3));
        assert_eq!(back.points, points);
        // The chunked series costs far less than 8 bytes per point.
        assert!(bytes.len() < 2 * 16 + 60 + 100 * 4, "{} bytes", bytes.len());
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let points: Vec<Point> = (0..40).map(|i| p("dev", "m", i * 10, i as f64)).collect();
        let bytes = encode(Incarnation([1; 16]), BatchSeq(1), 0, &points);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0xff;
            let _ = decode(&bad);
        }
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0; 16]);
        huge.extend_from_slice(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode(&huge).is_err());
    }
}
