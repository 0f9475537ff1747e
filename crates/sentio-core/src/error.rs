//! Errors for bad input to the core types.

/// Why a value from outside could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A device id that is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid device id {0:?}: use 1-64 characters from A-Z a-z 0-9 _ . -")]
    InvalidDeviceId(String),
    /// A timestamp that is neither milliseconds since the epoch nor RFC 3339.
    #[error("invalid time {0:?}: give milliseconds since the Unix epoch or RFC 3339")]
    InvalidTime(String),
    /// A duration such as `1m` that could not be read.
    #[error("invalid duration {0:?}: use a number and a unit among ms, s, m, h, d (e.g. 5m)")]
    InvalidDuration(String),
    /// An MQTT topic filter that cannot be used in an ACL.
    #[error("invalid topic filter {0:?}: {1}")]
    InvalidTopicFilter(String, String),
    /// A rule id that is not 1-64 characters from `a-z 0-9 _ -`.
    #[error("invalid rule id {0:?}: use 1-64 characters from a-z 0-9 _ -")]
    InvalidRuleId(String),
    /// A command id that is not 1-64 characters from `a-z 0-9 -`.
    #[error("invalid command id {0:?}: use 1-64 characters from a-z 0-9 -")]
    InvalidCommandId(String),
    /// A saved-state row whose key is not one this version writes.
    #[error("unreadable saved-state key {0:?}")]
    InvalidStateKey(String),
}
