//! Device secrets: generated with at least 128 random bits (we use 256) and stored only as a
//! keyed BLAKE3 digest. A keyed digest is the right tool for machine-generated secrets: checking
//! one costs well under a microsecond, so a reconnect storm of 10,000 devices costs milliseconds,
//! where argon2 (meant for low-entropy human passwords) costs ~40 ms per check. Digests are
//! compared in constant time (`blake3::Hash`'s `PartialEq`).

/// A fresh random secret: 32 random bytes, hex-encoded (64 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator only fails on platforms without one, where nothing secure can be done.
    getrandom::fill(&mut bytes).expect("the operating system's random generator is unavailable");
    hex::encode(bytes)
}

/// The digest stored for `secret` of device `id` under the node's key. The id is part of the
/// input so that one device's digest cannot be replayed for another.
pub fn digest(key: &[u8; 32], id: &str, secret: &str) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(id.as_bytes());
    h.update(&[0]);
    h.update(secret.as_bytes());
    h.finalize()
}

/// Constant-time check of `secret` against a stored digest.
pub fn verify(key: &[u8; 32], id: &str, secret: &str, stored: &blake3::Hash) -> bool {
    digest(key, id, secret) == *stored
}
