//! What the API shows of a rule at run time: whether it is failing and why, how many of its
//! evaluations failed, and its latest traces ([`Trace`]). Kept by the rules watch, asked for
//! through [`crate::Control::rule_reports`].

use serde::{Deserialize, Serialize};

pub use super::judge::{TRACES_PER_DEVICE, Trace};

/// Traces answered for one rule (the newest, over all its devices).
pub const TRACES_PER_RULE: usize = 50;

/// Why a rule is failing: its latest failed evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failing {
    /// What went wrong.
    pub reason: String,
    /// On which device.
    pub device: String,
    /// Data time of the evaluation (ms).
    pub ts_ms: i64,
}

/// A rule's failures on one device, saved with its state there, so a restart keeps the count
/// and the reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Evaluations on the device that failed.
    #[serde(default)]
    pub failures: u64,
    /// Set while the latest evaluation on the device failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
}

impl Health {
    /// Whether nothing ever failed here (nothing to save).
    pub fn is_clear(&self) -> bool {
        self.failures == 0 && self.failing.is_none()
    }

    /// An evaluation failed (`Some`) or did not (`None`).
    pub fn evaluated(&mut self, failed: Option<Failing>) {
        if failed.is_some() {
            self.failures += 1;
        }
        self.failing = failed;
    }

    /// The report's `failing` and `failures` over the healths of a rule's devices.
    pub fn sum<'a>(all: impl Iterator<Item = &'a Health>) -> (Option<Failing>, u64) {
        all.fold((None, 0), |(failing, n), h| {
            let newer = match (&failing, &h.failing) {
                (Some(f), Some(g)) if g.ts_ms > f.ts_ms => h.failing.clone(),
                (None, Some(_)) => h.failing.clone(),
                _ => failing,
            };
            (newer, n + h.failures)
        })
    }
}

/// One rule's run-time report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    /// The rule.
    pub rule: String,
    /// Set while the latest evaluation on some device failed.
    pub failing: Option<Failing>,
    /// Evaluations that failed since the rule was created or last changed (across restarts).
    pub failures: u64,
    /// The newest traces first, at most [`TRACES_PER_RULE`] (only when one rule was asked for).
    pub traces: Vec<Trace>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(device: &str, ts_ms: i64) -> Option<Failing> {
        Some(Failing {
            reason: "no such key: fan".into(),
            device: device.into(),
            ts_ms,
        })
    }

    #[test]
    fn a_rules_health_sums_its_devices_and_is_saved_whole() {
        let (mut a, mut b) = (Health::default(), Health::default());
        assert!(a.is_clear());
        a.evaluated(failed("a", 5));
        a.evaluated(None);
        b.evaluated(failed("b", 3));
        b.evaluated(failed("b", 4));
        assert_eq!(Health::sum([&a, &b].into_iter()), (failed("b", 4), 3));
        a.evaluated(failed("a", 9));
        assert_eq!(Health::sum([&a, &b].into_iter()), (failed("a", 9), 4));
        let restored: Health = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(restored, a);
    }
}
