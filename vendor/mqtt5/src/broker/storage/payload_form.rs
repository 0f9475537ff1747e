//! SENTIO-PATCH: how a stored message's payload is written: one base64 string (4 bytes per 3),
//! instead of serde's default for `Vec<u8>`, a JSON array of numbers (up to 4 bytes per byte,
//! and about 9 once pretty-printed, as the files were). Reading takes both forms, so files
//! written before the patch still load (tested through the broker in Sentio's e2e
//! `mqtt::retained_bounds`: mqtt5 is not a workspace member, so its own tests do not run).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `bytes` as a base64 string.
///
/// # Errors
/// Whatever the serializer returns.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

/// Reads a base64 string (this form) or an array of numbers (the form before the patch).
///
/// # Errors
/// A string that is not base64, or a value that is neither form.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_any(PayloadVisitor)
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a base64 string or an array of bytes")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
        STANDARD.decode(s).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Vec<u8>, E> {
        Ok(b.to_vec())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(out)
    }
}

