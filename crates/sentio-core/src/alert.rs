//! Alerts: an anomaly (or other condition) on one series that opens, may grow, and resolves.
//! People handle it: open → acknowledged (someone is on it, [`Ack`]) → resolved (by the
//! condition clearing or by a person, `resolved_by`), with [`Comment`]s along the way.

use crate::{AlertId, Severity};

/// Whether an alert is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// The condition holds (or held recently).
    Open,
    /// The series went back to normal, or a person resolved it.
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

/// What kind of condition an alert reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A series behaves unlike its own history (the univariate detectors).
    #[default]
    Anomaly,
    /// Metrics of one device that normally move together no longer do.
    Relation,
    /// A device's series departs from its peers (same kind) more than it usually does.
    Peer,
    /// A device fell silent relative to its own learned reporting cadence.
    Silence,
    /// A value crossed a declared limit.
    Limit,
    /// The forecast crosses a declared limit: predictive maintenance.
    Predictive,
    /// The device as a whole left every normal regime its device model learnt.
    Device,
    /// A user's rule held for its `for` duration.
    Rule,
}

impl AlertKind {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anomaly => "anomaly",
            Self::Relation => "relation",
            Self::Peer => "peer",
            Self::Silence => "silence",
            Self::Limit => "limit",
            Self::Predictive => "predictive",
            Self::Device => "device",
            Self::Rule => "rule",
        }
    }

    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::Anomaly,
        Self::Relation,
        Self::Peer,
        Self::Silence,
        Self::Limit,
        Self::Predictive,
        Self::Device,
        Self::Rule,
    ];

    /// Reads a name written by [`AlertKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One metric's part in a multivariate or fleet alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributor {
    /// The metric (or, for a peer alert, `peers`).
    pub metric: String,
    /// Its value at the time.
    pub observed: f64,
    /// What it was expected to be.
    pub expected: f64,
}

/// When a forecast reaches a declared limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The declared limit.
    pub limit: f64,
    /// When the point forecast reaches it (ms).
    pub expected_ms: Option<i64>,
    /// Earliest plausible crossing: the 95 % interval reaches it (ms).
    pub earliest_ms: Option<i64>,
    /// Latest plausible crossing within the horizon: the other side of the interval reaches it
    /// (ms); `None` when that side does not reach it within the horizon.
    pub latest_ms: Option<i64>,
    /// When the forecast was made (ms, data time).
    pub made_ms: i64,
}

/// Why an alert was raised, in terms a person can check: what was expected, what was seen, and
/// which detector said so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    /// What kind of condition this is (`anomaly` in alerts saved before kinds existed).
    pub kind: AlertKind,
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
    /// For relation and peer alerts: the metrics (or peers) that contributed.
    pub contributors: Vec<Contributor>,
    /// For predictive alerts: when the limit is expected to be reached.
    pub prediction: Option<Prediction>,
}

/// An alert on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Store-assigned id ([`AlertId::UNSAVED`] before it is first saved).
    pub id: AlertId,
    /// Device id.
    pub device: String,
    /// What in the device: a metric name, `a~b` for a pair of metrics, `*` for the whole device
    /// ([`crate::Subject::label`]).
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
    /// What a user said about the alert, if anything.
    pub feedback: Option<Feedback>,
    /// Who acknowledged it and when, if anyone did.
    pub ack: Option<Ack>,
    /// Who resolved it by hand (`None` when its condition cleared by itself, or still open).
    pub resolved_by: Option<String>,
    /// The silence that kept it from being notified, if one did.
    pub silenced_by: Option<i64>,
}

impl Alert {
    /// Where the alert is in its life: `open`, `acknowledged` (open, and someone is on it) or
    /// `resolved`.
    pub fn lifecycle(&self) -> &'static str {
        match (self.state, &self.ack) {
            (AlertState::Resolved, _) => "resolved",
            (AlertState::Open, Some(_)) => "acknowledged",
            (AlertState::Open, None) => "open",
        }
    }

    /// How serious it is ([`Explanation::severity`] of the explanation it opened with).
    pub fn severity(&self) -> Severity {
        self.explanation.severity()
    }
}

impl Explanation {
    /// How serious an alert with this explanation is: a rule's alert has its rule's severity
    /// (carried as its score, [`Severity::score`]), a crossed declared limit is critical, and
    /// everything the AI engine infers (anomalies, relations, peers, silence, forecasts, device
    /// regimes) is a warning: it asks a person to look.
    pub fn severity(&self) -> Severity {
        match self.kind {
            AlertKind::Limit => Severity::Critical,
            AlertKind::Rule => Severity::of_score(self.score),
            _ => Severity::Warning,
        }
    }
}

/// Someone took charge of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// Who: `user:<name>`, `admin` (the admin token), as the audit log names people.
    pub by: String,
    /// When (ms).
    pub at_ms: i64,
}

/// A note on an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// Who wrote it (as [`Ack::by`]).
    pub author: String,
    /// When (ms).
    pub at_ms: i64,
    /// The text (at most [`Comment::MAX_BYTES`]).
    pub text: String,
}

impl Comment {
    /// The longest comment kept.
    pub const MAX_BYTES: usize = 4_096;
}

/// A user's verdict on an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The alert was not a real problem.
    pub false_alarm: bool,
    /// Free text from the user.
    pub note: Option<String>,
    /// When it was given (ms).
    pub at_ms: i64,
    /// What the engine changed in response, in one sentence.
    pub effect: String,
}
