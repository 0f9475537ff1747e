//! Learnt vectors and matrices saved as little-endian `f32` in base64: a 50-metric precision
//! matrix (1,275 numbers in its upper triangle) is about 6.8 KB of text instead of ~25 KB of
//! decimal JSON. Single precision is ample for a statistic compared with a limit.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A vector of numbers stored as base64 `f32` (NaN survives, for a missing reading).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packed(pub Vec<f64>);

impl Serialize for Packed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.len() * 4);
        for v in &self.0 {
            bytes.extend_from_slice(&(*v as f32).to_le_bytes());
        }
        s.serialize_str(&STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "packed floats: length not a multiple of 4",
            ));
        }
        Ok(Packed(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
        ))
    }
}

/// Index of (i, j), i ≤ j, in the row-major upper triangle of a p×p symmetric matrix.
pub fn upper_index(p: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i <= j { (i, j) } else { (j, i) };
    i * p - i * (i + 1) / 2 + j
}

/// The full p×p row-major matrix from its packed upper triangle.
pub fn unpack_symmetric(p: usize, upper: &[f64]) -> Option<Vec<f64>> {
    if upper.len() != p * (p + 1) / 2 {
        return None;
    }
    let mut full = vec![0.0; p * p];
    for i in 0..p {
        for j in i..p {
            let v = upper[upper_index(p, i, j)];
            full[i * p + j] = v;
            full[j * p + i] = v;
        }
    }
    Some(full)
}

/// The packed upper triangle of a p×p row-major symmetric matrix.
pub fn pack_symmetric(p: usize, full: &[f64]) -> Vec<f64> {
    let mut upper = Vec::with_capacity(p * (p + 1) / 2);
    for i in 0..p {
        for j in i..p {
            upper.push(full[i * p + j]);
        }
    }
    upper
}
