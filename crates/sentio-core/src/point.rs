//! The one telemetry type.

use std::sync::Arc;

use crate::DeviceId;

/// One observation of one metric of one device. Booleans are stored as 0.0 / 1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The device that sent it.
    pub device: DeviceId,
    /// Metric name, e.g. `temperature`.
    pub metric: Arc<str>,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
}

/// A text reading (`"state": "running"`): not a series, kept as an event of its metric (the
/// latest value and a bounded history).
#[derive(Debug, Clone, PartialEq)]
pub struct TextEvent {
    /// The device that sent it.
    pub device: DeviceId,
    /// Metric name, e.g. `state`.
    pub metric: Arc<str>,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The text.
    pub text: String,
}
