//! The chunk codec: a sorted run of `(ts, value)` points of one series, compressed column by
//! column with pcodec (`pco`), plus the statistics that let aggregates skip decoding.
//!
//! Layout of an encoded chunk: one format byte ([`FORMAT`]), the length of the timestamp column
//! as a little-endian `u32`, the timestamp column (`i64`, pco standalone), the value column
//! (`f64`, pco standalone). pco is lossless: every `f64` comes back bit for bit (negative zero
//! included); it finds the regular cadence of timestamps (delta encoding) and the decimal
//! quantum of rounded sensor values ("float mult" mode), which is why a realistic series costs
//! about one byte per point.

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress};

use crate::{Result, StoreError};

/// Version of the encoded layout, first byte of every chunk.
pub const FORMAT: u8 = 1;

/// What is known of a chunk without decoding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkStats {
    /// Timestamp of the first point (ms).
    pub start_ts: i64,
    /// Timestamp of the last point (ms).
    pub end_ts: i64,
    /// Number of points.
    pub count: u32,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Value of the first point.
    pub first: f64,
    /// Value of the last point.
    pub last: f64,
}

impl ChunkStats {
    /// Statistics of a non-empty run of points.
    fn of(points: &[(i64, f64)]) -> Self {
        let (start_ts, first) = points[0];
        let (end_ts, last) = points[points.len() - 1];
        let mut s = Self {
            start_ts,
            end_ts,
            count: points.len() as u32,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            first,
            last,
        };
        for &(_, v) in points {
            s.min = s.min.min(v);
            s.max = s.max.max(v);
            s.sum += v;
        }
        s
    }
}

/// An encoded chunk with its statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedChunk {
    /// Statistics (stored as columns beside the data).
    pub stats: ChunkStats,
    /// The compressed columns.
    pub data: Vec<u8>,
}

/// Encodes a non-empty run of points with strictly increasing timestamps.
pub fn encode(points: &[(i64, f64)]) -> Result<EncodedChunk> {
    if points.is_empty() {
        return Err(StoreError::Codec("an empty chunk".into()));
    }
    if points.len() > u32::MAX as usize {
        return Err(StoreError::Codec("a chunk over u32::MAX points".into()));
    }
    if let Some(w) = points.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(StoreError::Codec(format!(
            "timestamps not strictly increasing ({} then {})",
            w[0].0, w[1].0
        )));
    }
    let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let config = ChunkConfig::default();
    let ts_bytes = simple_compress(&ts, &config).map_err(|e| StoreError::Codec(e.to_string()))?;
    let value_bytes =
        simple_compress(&values, &config).map_err(|e| StoreError::Codec(e.to_string()))?;
    let mut data = Vec::with_capacity(5 + ts_bytes.len() + value_bytes.len());
    data.push(FORMAT);
    data.extend_from_slice(&(ts_bytes.len() as u32).to_le_bytes());
    data.extend_from_slice(&ts_bytes);
    data.extend_from_slice(&value_bytes);
    Ok(EncodedChunk {
        stats: ChunkStats::of(points),
        data,
    })
}

/// Splits an encoded chunk into its two compressed columns.
fn columns(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("chunk: {what}"));
    let (&format, rest) = data.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != FORMAT {
        return Err(corrupt(&format!("unknown format {format}")));
    }
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("truncated header"))?;
    let ts_len = u32::from_le_bytes(len_bytes) as usize;
    let rest = &rest[4..];
    if rest.len() < ts_len {
        return Err(corrupt("truncated timestamp column"));
    }
    Ok(rest.split_at(ts_len))
}

/// Decodes only the values of a chunk.
pub fn decode_values(data: &[u8]) -> Result<Vec<f64>> {
    let (_, values) = columns(data)?;
    simple_decompress(values).map_err(|e| StoreError::Corrupt(format!("chunk values: {e}")))
}

/// Decodes only the timestamps of a chunk.
pub fn decode_timestamps(data: &[u8]) -> Result<Vec<i64>> {
    let (ts, _) = columns(data)?;
    simple_decompress(ts).map_err(|e| StoreError::Corrupt(format!("chunk timestamps: {e}")))
}

/// Decodes a chunk into its points, in time order.
pub fn decode(data: &[u8]) -> Result<Vec<(i64, f64)>> {
    let ts = decode_timestamps(data)?;
    let values = decode_values(data)?;
    if ts.len() != values.len() {
        return Err(StoreError::Corrupt(format!(
            "chunk: {} timestamps but {} values",
            ts.len(),
            values.len()
        )));
    }
    Ok(ts.into_iter().zip(values).collect())
}

#[cfg(test)]
mod tests {
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    use super::*;

    /// Finite values, with negative zero and exact duplicates of each other well represented.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            (-1_000_000i64..1_000_000).prop_map(|c| c as f64 / 100.0),
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
        ]
    }

    /// Sorted runs of 1..2000 points with distinct timestamps anywhere in the i64 range.
    fn run() -> impl Strategy<Value = Vec<(i64, f64)>> {
        btree_map(any::<i64>(), value(), 1..2000).prop_map(|m| m.into_iter().collect())
    }

    /// Regular runs, as a sensor would send: the common case the codec is tuned for.
    fn regular_run() -> impl Strategy<Value = Vec<(i64, f64)>> {
        (
            -1_000_000_000_000i64..4_000_000_000_000,
            1i64..600_000,
            vec(value(), 1..2000),
        )
            .prop_map(|(start, step, values)| {
                values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (start + i as i64 * step, v))
                    .collect()
            })
    }

    fn check_round_trip(points: &[(i64, f64)]) -> std::result::Result<(), TestCaseError> {
        let chunk = encode(points).unwrap();
        let back = decode(&chunk.data).unwrap();
        prop_assert_eq!(back.len(), points.len());
        for (a, b) in points.iter().zip(&back) {
            prop_assert_eq!(a.0, b.0);
            prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
        let s = chunk.stats;
        prop_assert_eq!(s.count as usize, points.len());
        prop_assert_eq!(
            (s.start_ts, s.end_ts),
            (points[0].0, points[points.len() - 1].0)
        );
        prop_assert_eq!(s.first.to_bits(), points[0].1.to_bits());
        prop_assert_eq!(s.last.to_bits(), points[points.len() - 1].1.to_bits());
        let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let max = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        prop_assert_eq!(s.min, min);
        prop_assert_eq!(s.max, max);
        let sum: f64 = points.iter().map(|p| p.1).sum();
        prop_assert!(s.sum == sum || (s.sum - sum).abs() <= 1e-9 * sum.abs());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_runs_round_trip_bit_for_bit(points in run()) {
            check_round_trip(&points)?;
        }

        #[test]
        fn regular_runs_round_trip_bit_for_bit(points in regular_run()) {
            check_round_trip(&points)?;
        }

        #[test]
        fn runs_with_repeated_timestamps_are_refused(points in run(), i in any::<prop::sample::Index>()) {
            prop_assume!(points.len() >= 2);
            let mut points = points;
            let i = i.index(points.len() - 1);
            points[i + 1].0 = points[i].0;
            prop_assert!(encode(&points).is_err());
        }
    }

    #[test]
    fn empty_runs_and_corrupt_chunks_are_errors() {
        assert!(encode(&[]).is_err());
        let chunk = encode(&[(1, 1.0), (2, 2.0)]).unwrap();
        assert!(decode(&chunk.data[..3]).is_err());
        let mut other = chunk.data.clone();
        other[0] = FORMAT + 1;
        assert!(decode(&other).is_err());
        assert!(decode(&[]).is_err());
    }

    /// A realistic sensor: one point per second, a slow daily wave plus noise, rounded to 0.01
    /// as sensors report. The budget is 1.5 bytes per point.
    #[test]
    fn realistic_sensor_data_costs_under_one_and_a_half_bytes_per_point() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            // xorshift64*: deterministic noise in [-0.5, 0.5).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let start = 1_790_000_000_000i64;
        let mut total_bytes = 0usize;
        let mut total_points = 0usize;
        for c in 0..20 {
            let points: Vec<(i64, f64)> = (0..1000)
                .map(|i| {
                    let t = c * 1000 + i;
                    let day = (t as f64 / 86_400.0) * std::f64::consts::TAU;
                    let v = 21.0 + 3.0 * day.sin() + 0.1 * noise();
                    (start + t * 1000, (v * 100.0).round() / 100.0)
                })
                .collect();
            total_bytes += encode(&points).unwrap().data.len();
            total_points += points.len();
        }
        let per_point = total_bytes as f64 / total_points as f64;
        assert!(per_point <= 1.5, "{per_point:.3} bytes per point");
    }
}
