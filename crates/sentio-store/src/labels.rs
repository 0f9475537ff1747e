//! What a device's labels (`site=plant-a`), kind and name may look like, and selecting devices
//! by labels.

use std::collections::BTreeMap;

use crate::{Result, StoreError};

/// Most labels on one device.
pub const MAX_LABELS: usize = 32;
/// Longest label key.
pub const MAX_KEY_LEN: usize = 63;
/// Longest label value.
pub const MAX_VALUE_LEN: usize = 200;

/// Whether `key` may be a label key: 1-63 characters from `[A-Za-z0-9_.-/]`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// Longest device kind.
pub const MAX_KIND_LEN: usize = 64;
/// Longest device name.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a device kind: 1-64 characters from `[A-Za-z0-9_-]`. A kind names a peer group and
/// the first part of a declared limit (`KIND.METRIC<=MAX`), so it holds no dot.
pub fn validate_kind(kind: &str) -> Result<()> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_LEN
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        return Ok(());
    }
    Err(StoreError::InvalidQuery(format!(
        "kind {:?} is invalid: use 1-{MAX_KIND_LEN} characters from A-Z a-z 0-9 _ -",
        kind.chars().take(80).collect::<String>()
    )))
}

/// Checks a device name: 1-200 bytes, no control characters (it is shown on pages and in logs).
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(StoreError::InvalidQuery(format!(
            "name must be 1-{MAX_NAME_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks one label, with a reason naming it when it is refused.
pub fn validate_pair(key: &str, value: &str) -> Result<()> {
    if !valid_key(key) {
        return Err(StoreError::InvalidQuery(format!(
            "label key {:?} is invalid: use 1-{MAX_KEY_LEN} characters from A-Z a-z 0-9 _ . - /",
            key.chars().take(80).collect::<String>()
        )));
    }
    if value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
        return Err(StoreError::InvalidQuery(format!(
            "label {key:?}: the value must be at most {MAX_VALUE_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks a device's whole label set.
pub fn validate(labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(StoreError::InvalidQuery(format!(
            "{} labels: a device has at most {MAX_LABELS}",
            labels.len()
        )));
    }
    labels.iter().try_for_each(|(k, v)| validate_pair(k, v))
}

/// Applies a change to a label set: a value sets the label, `None` removes it.
pub fn apply(labels: &mut BTreeMap<String, String>, change: &BTreeMap<String, Option<String>>) {
    for (k, v) in change {
        match v {
            Some(v) => {
                labels.insert(k.clone(), v.clone());
            }
            None => {
                labels.remove(k);
            }
        }
    }
}

/// Whether `labels` holds every pair of `selector` (an empty selector matches every device).
pub fn matches(labels: &BTreeMap<String, String>, selector: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A label map from pairs.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_values_and_selection() {
        assert!(validate(&map(&[("site", "plant-a"), ("k8s.io/zone", "eu 1")])).is_ok());
        for bad in ["", "a b", "a\"b", &"k".repeat(64)] {
            assert!(validate(&map(&[(bad, "x")])).is_err(), "{bad:?}");
        }
        assert!(validate(&map(&[("site", "a\nb")])).is_err());
        assert!(validate(&map(&[("site", &"v".repeat(201))])).is_err());
        let many: BTreeMap<String, String> =
            (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate(&many).is_err());

        let mut l = map(&[("site", "a"), ("line", "2")]);
        let change = [
            ("site".to_string(), Some("b".to_string())),
            ("line".to_string(), None),
            ("floor".to_string(), Some("1".to_string())),
        ]
        .into_iter()
        .collect();
        apply(&mut l, &change);
        assert_eq!(l, map(&[("site", "b"), ("floor", "1")]));
        assert!(matches(&l, &map(&[("site", "b")])));
        assert!(!matches(&l, &map(&[("site", "b"), ("line", "2")])));
        assert!(matches(&l, &BTreeMap::new()));
    }
}
