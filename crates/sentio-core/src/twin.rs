//! A device's twin: the state people want it in (`desired`), the state it says it is in
//! (`reported`), and what is asked but not yet confirmed ([`delta`]). Both documents are JSON
//! objects; `desired` changes by JSON merge patch (RFC 7386, [`merge_patch`]) and each change
//! bumps `version`, which an API client names in `If-Match` so that of two writers working
//! from the same version only the first wins.

use serde_json::{Map, Value};

/// A device's twin.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Twin {
    /// What the device is asked to be (a JSON object).
    pub desired: Value,
    /// What the device last reported (a JSON object).
    pub reported: Value,
    /// Bumped by every change of `desired`; 0 before the first.
    pub version: u64,
    /// When `desired` last changed (ms), if ever.
    pub desired_ms: Option<i64>,
    /// When the device last reported (ms), if ever.
    pub reported_ms: Option<i64>,
    /// On an edge, for a device whose desired state the cloud sets: the cloud's version of the
    /// desired document applied last (`None` elsewhere). Such a twin takes desired changes
    /// only from the cloud.
    pub upstream_version: Option<u64>,
}

impl Twin {
    /// The twin of a device that has none yet: two empty objects, version 0.
    pub fn empty() -> Self {
        Self {
            desired: Value::Object(Map::new()),
            reported: Value::Object(Map::new()),
            ..Self::default()
        }
    }

    /// What `desired` asks and `reported` has not confirmed.
    pub fn delta(&self) -> Value {
        delta(&self.desired, &self.reported)
    }

    /// What the device receives on `devices/<id>/twin/desired`: `{"version", "desired"}`.
    pub fn desired_payload(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": self.version,
            "desired": self.desired,
        }))
        .expect("a twin serialises")
    }
}

/// Applies a JSON merge patch (RFC 7386): an object patch sets its members, a `null` member
/// removes one, anything else replaces the whole target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The members of `desired` that `reported` does not hold with the same value, recursing into
/// objects present in both; an empty object when everything asked is confirmed.
pub fn delta(desired: &Value, reported: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(desired) = desired {
        for (key, want) in desired {
            let have = reported.get(key);
            match (want, have) {
                (Value::Object(_), Some(have @ Value::Object(_))) => {
                    let inner = delta(want, have);
                    if inner.as_object().is_some_and(|m| !m.is_empty()) {
                        out.insert(key.clone(), inner);
                    }
                }
                _ if have == Some(want) => {}
                _ => {
                    out.insert(key.clone(), want.clone());
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // RFC 7386 appendix A, a few rows of it.
        let check = |target: Value, patch: Value, want: Value| {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, want, "{target} + {patch}");
        };
        check(json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"}));
        check(
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        );
        check(json!({"a": "b"}), json!({"a": null}), json!({}));
        check(
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        );
        check(
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        );
        check(json!(["a"]), json!({"a": "c"}), json!({"a": "c"}));
        check(
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        );
    }

    #[test]
    fn the_delta_is_what_is_asked_and_not_confirmed() {
        let check = |desired: Value, reported: Value, want: Value| {
            assert_eq!(delta(&desired, &reported), want, "{desired} vs {reported}");
        };
        check(json!({"fan": "high"}), json!({"fan": "high"}), json!({}));
        check(
            json!({"fan": "high"}),
            json!({"fan": "low"}),
            json!({"fan": "high"}),
        );
        check(json!({"fan": "high"}), json!({}), json!({"fan": "high"}));
        check(json!({}), json!({"fan": "low"}), json!({}));
        check(
            json!({"heat": {"set": 21, "mode": "eco"}}),
            json!({"heat": {"set": 19, "mode": "eco"}, "temp": 20}),
            json!({"heat": {"set": 21}}),
        );
        check(
            json!({"heat": {"set": 21}}),
            json!({"heat": 5}),
            json!({"heat": {"set": 21}}),
        );
    }
}
