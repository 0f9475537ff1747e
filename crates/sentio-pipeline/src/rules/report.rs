//! What the API shows of a rule at run time: whether it is failing and why, how many of its
//! evaluations failed, and its latest traces ([`Trace`]). Kept by the rules watch, asked for
//! through [`crate::Control::rule_reports`].

use serde::Serialize;

pub use super::judge::{TRACES_PER_DEVICE, Trace};

/// Traces answered for one rule (the newest, over all its devices).
pub const TRACES_PER_RULE: usize = 50;

/// Why a rule is failing: its latest failed evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failing {
    /// What went wrong.
    pub reason: String,
    /// On which device.
    pub device: String,
    /// Data time of the evaluation (ms).
    pub ts_ms: i64,
}

/// One rule's run-time report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    /// The rule.
    pub rule: String,
    /// Set while the latest evaluation on some device failed.
    pub failing: Option<Failing>,
    /// Evaluations that failed since the node started.
    pub failures: u64,
    /// The newest traces first, at most [`TRACES_PER_RULE`] (only when one rule was asked for).
    pub traces: Vec<Trace>,
}
