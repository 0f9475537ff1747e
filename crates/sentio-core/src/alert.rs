//! Alerts: an anomaly (or other condition) on one series that opens, may grow, and resolves.

use serde::{Deserialize, Serialize};

/// Whether an alert is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds (or held recently).
    Open,
    /// The series went back to normal.
    Resolved,
}

impl AlertState {
    /// `open` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }

    /// Reads `open` or `resolved`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

/// Why an alert was raised, in terms a person can check: what was expected, what was seen, and
/// which detector said so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Detector(s) that fired.
    pub detector: String,
    /// The value expected at that time.
    pub expected: f64,
    /// Lower bound of the normal range.
    pub lower: f64,
    /// Upper bound of the normal range.
    pub upper: f64,
    /// The value observed.
    pub observed: f64,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// One sentence for people.
    pub message: String,
}

/// An alert on one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Store-assigned id (0 before it is first saved).
    pub id: i64,
    /// Device id.
    pub device: String,
    /// Metric name.
    pub metric: String,
    /// Open or resolved.
    pub state: AlertState,
    /// Time of the first anomalous point (ms).
    pub opened_ms: i64,
    /// Time of the latest anomalous point (ms).
    pub last_anomaly_ms: i64,
    /// When it resolved (ms).
    pub resolved_ms: Option<i64>,
    /// Anomalous points seen while open.
    pub anomalous_points: u64,
    /// The explanation at the moment it opened.
    pub explanation: Explanation,
    /// The most extreme point while open (highest score).
    pub peak: Explanation,
}
