//! The life of an alert on one series: it opens on the first anomalous point, records the most
//! extreme point while open, and resolves after a run of normal points.

use sentio_ai::Score;
use sentio_core::{Alert, AlertState, Explanation};

/// What one scored point did to the series' alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Nothing worth saving.
    None,
    /// A new alert opened.
    Opened(Alert),
    /// The open alert got a new, more extreme point.
    Escalated(Alert),
    /// The open alert resolved.
    Resolved(Alert),
}

/// Alert state of one series.
#[derive(Debug, Clone)]
pub struct AlertTracker {
    open: Option<Alert>,
    normal_run: u32,
    resolve_after: u32,
}

impl AlertTracker {
    /// A tracker that resolves after `resolve_after` consecutive normal points, continuing
    /// `open` if there is one (restored after a restart).
    pub fn new(resolve_after: u32, open: Option<Alert>) -> Self {
        Self {
            open,
            normal_run: 0,
            resolve_after: resolve_after.max(1),
        }
    }

    /// The open alert, if any.
    pub fn open(&self) -> Option<&Alert> {
        self.open.as_ref()
    }

    /// Ends the open alert now (a user marked it as a false alarm), returning it resolved.
    pub fn close(&mut self, ts_ms: i64) -> Option<Alert> {
        let mut a = self.open.take()?;
        a.state = AlertState::Resolved;
        a.resolved_ms = Some(ts_ms.max(a.last_anomaly_ms));
        self.normal_run = 0;
        Some(a)
    }

    /// Stores the id the store gave to the alert opened at `opened_ms`, if it is still the open
    /// one (it may have resolved, and another opened, within the same batch).
    pub fn set_id(&mut self, opened_ms: i64, id: i64) {
        if let Some(a) = &mut self.open
            && a.opened_ms == opened_ms
        {
            a.id = id;
        }
    }

    /// Takes the verdict on one point of `device`/`metric` at `ts_ms`.
    pub fn observe(&mut self, device: &str, metric: &str, ts_ms: i64, score: &Score) -> Transition {
        self.observe_with(device, metric, ts_ms, score.alert, || {
            explain(metric, score)
        })
    }

    /// Takes a verdict made elsewhere (relation, peer, limit and silence watches): `alert`, and
    /// the explanation, built only when it is needed.
    pub fn observe_with(
        &mut self,
        device: &str,
        metric: &str,
        ts_ms: i64,
        alert: bool,
        explanation: impl FnOnce() -> Explanation,
    ) -> Transition {
        if alert {
            self.normal_run = 0;
            let explanation = explanation();
            match &mut self.open {
                Some(a) => {
                    a.last_anomaly_ms = ts_ms;
                    a.anomalous_points += 1;
                    if explanation.score > a.peak.score
                        || (explanation.score >= a.peak.score
                            && (explanation.observed - explanation.expected).abs()
                                > (a.peak.observed - a.peak.expected).abs())
                    {
                        a.peak = explanation;
                        return Transition::Escalated(a.clone());
                    }
                    Transition::None
                }
                None => {
                    let a = Alert {
                        id: 0,
                        device: device.to_string(),
                        metric: metric.to_string(),
                        state: AlertState::Open,
                        opened_ms: ts_ms,
                        last_anomaly_ms: ts_ms,
                        resolved_ms: None,
                        anomalous_points: 1,
                        explanation: explanation.clone(),
                        peak: explanation,
                        feedback: None,
                    };
                    self.open = Some(a.clone());
                    Transition::Opened(a)
                }
            }
        } else {
            if self.open.is_none() {
                return Transition::None;
            }
            self.normal_run += 1;
            if self.normal_run < self.resolve_after {
                return Transition::None;
            }
            let mut a = self.open.take().expect("checked above");
            a.state = AlertState::Resolved;
            a.resolved_ms = Some(ts_ms);
            self.normal_run = 0;
            Transition::Resolved(a)
        }
    }
}

/// The sentence and numbers that explain a verdict.
pub fn explain(metric: &str, s: &Score) -> Explanation {
    let direction = if s.observed > s.upper {
        "above"
    } else if s.observed < s.lower {
        "below"
    } else {
        "unusual within"
    };
    Explanation {
        detector: s.detector.clone(),
        expected: s.expected,
        lower: s.lower,
        upper: s.upper,
        observed: s.observed,
        score: s.score,
        message: format!(
            "{metric} = {} is {direction} the expected range {}..{} (expected about {}); detector: {}",
            round(s.observed),
            round(s.lower),
            round(s.upper),
            round(s.expected),
            s.detector
        ),
        ..Explanation::default()
    }
}

pub(crate) fn round(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(alert: bool, observed: f64, s: f64) -> Score {
        Score {
            score: s,
            alert,
            expected: 10.0,
            lower: 8.0,
            upper: 12.0,
            observed,
            detector: "test".into(),
        }
    }

    #[test]
    fn opens_escalates_and_resolves() {
        let mut t = AlertTracker::new(3, None);
        assert_eq!(
            t.observe("d", "m", 1, &score(false, 10.0, 0.1)),
            Transition::None
        );
        let Transition::Opened(a) = t.observe("d", "m", 2, &score(true, 20.0, 0.9)) else {
            panic!("should open")
        };
        assert!(
            a.explanation.message.contains("above"),
            "{}",
            a.explanation.message
        );
        assert!(matches!(
            t.observe("d", "m", 3, &score(true, 30.0, 0.99)),
            Transition::Escalated(_)
        ));
        assert_eq!(
            t.observe("d", "m", 4, &score(true, 15.0, 0.5)),
            Transition::None
        );
        assert_eq!(
            t.observe("d", "m", 5, &score(false, 10.0, 0.0)),
            Transition::None
        );
        assert_eq!(
            t.observe("d", "m", 6, &score(false, 10.0, 0.0)),
            Transition::None
        );
        let Transition::Resolved(a) = t.observe("d", "m", 7, &score(false, 10.0, 0.0)) else {
            panic!("should resolve")
        };
        assert_eq!(a.state, AlertState::Resolved);
        assert_eq!(a.resolved_ms, Some(7));
        assert_eq!(a.anomalous_points, 3);
        assert_eq!(a.peak.observed, 30.0);
        assert!(t.open().is_none());
    }
}
