//! Device identity.

use std::fmt;
use std::sync::Arc;

use crate::CoreError;

/// A validated device id: 1-64 characters from `[A-Za-z0-9_.-]`, so it is safe in MQTT topics,
/// URLs and file names. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    /// Validates `s` as a device id.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && s != "."
            && s != "..";
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(CoreError::InvalidDeviceId(s.chars().take(80).collect()))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids() {
        for (id, ok) in [
            ("pump-1", true),
            ("a.b_c", true),
            ("", false),
            ("..", false),
            ("a/b", false),
            ("a+b", false),
            ("é", false),
            (&"x".repeat(65), false),
        ] {
            assert_eq!(DeviceId::parse(id).is_ok(), ok, "{id}");
        }
    }
}
