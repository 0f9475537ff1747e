//! The life of one alert condition ([`AlertKey`]): it opens on the first alerting verdict,
//! records the most extreme one while open, and resolves after a run of normal verdicts.

use sentio_core::{Ack, Alert, AlertId, AlertKey, AlertState, Explanation};

/// What one verdict did to its key's alert.
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

/// Alert state of one alert key.
#[derive(Debug, Clone)]
pub struct AlertTracker {
    open: Option<Alert>,
    normal_run: u32,
    resolve_after: u32,
}

impl AlertTracker {
    /// A tracker that resolves after `resolve_after` consecutive normal verdicts, continuing
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
    pub fn set_id(&mut self, opened_ms: i64, id: AlertId) {
        if let Some(a) = &mut self.open
            && a.opened_ms == opened_ms
        {
            a.id = id;
        }
    }

    /// Records who acknowledged alert `id`, if it is the open one, so that its later saves and
    /// live events carry it.
    pub fn set_ack(&mut self, id: AlertId, ack: Ack) {
        if let Some(a) = &mut self.open
            && a.id == id
        {
            a.ack = Some(ack);
        }
    }

    /// The condition still holds at `ts_ms`, at a point no more extreme than the open alert's
    /// peak: the point adds to the open alert as an alerting verdict that does not escalate
    /// would. `false` (nothing changed) when no alert is open.
    pub fn held(&mut self, ts_ms: i64) -> bool {
        let Some(a) = &mut self.open else {
            return false;
        };
        self.normal_run = 0;
        a.last_anomaly_ms = ts_ms;
        a.anomalous_points += 1;
        true
    }

    /// Takes the verdict on `key` at `ts_ms`: `Some(explanation)` when the condition holds,
    /// `None` when it does not.
    pub fn observe(
        &mut self,
        key: &AlertKey,
        ts_ms: i64,
        alerting: Option<Explanation>,
    ) -> Transition {
        let Some(explanation) = alerting else {
            if self.open.is_none() {
                return Transition::None;
            }
            self.normal_run += 1;
            if self.normal_run < self.resolve_after {
                return Transition::None;
            }
            let Some(mut a) = self.open.take() else {
                return Transition::None;
            };
            a.state = AlertState::Resolved;
            a.resolved_ms = Some(ts_ms);
            self.normal_run = 0;
            return Transition::Resolved(a);
        };
        self.normal_run = 0;
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
                    id: AlertId::UNSAVED,
                    device: key.device.to_string(),
                    metric: key.subject.label(),
                    state: AlertState::Open,
                    opened_ms: ts_ms,
                    last_anomaly_ms: ts_ms,
                    resolved_ms: None,
                    anomalous_points: 1,
                    explanation: explanation.clone(),
                    peak: explanation,
                    feedback: None,
                    ack: None,
                    resolved_by: None,
                    silenced_by: None,
                };
                self.open = Some(a.clone());
                Transition::Opened(a)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sentio_ai::{DetectorConfig, SeriesDetector};
    use sentio_core::{AlertKind, DeviceId, Subject};

    use super::*;
    use crate::explain;

    #[test]
    fn opens_escalates_and_resolves() {
        let key = AlertKey::new(
            DeviceId::parse("d").unwrap(),
            Subject::Metric("m".into()),
            AlertKind::Anomaly,
        );
        let alerting = |observed: f64, score: f64| {
            Some(Explanation {
                expected: 10.0,
                observed,
                score,
                ..Explanation::default()
            })
        };
        let mut t = AlertTracker::new(3, None);
        assert_eq!(t.observe(&key, 1, None), Transition::None);
        let Transition::Opened(a) = t.observe(&key, 2, alerting(20.0, 0.9)) else {
            panic!("should open")
        };
        assert_eq!((a.device.as_str(), a.metric.as_str()), ("d", "m"));
        assert!(matches!(
            t.observe(&key, 3, alerting(30.0, 0.99)),
            Transition::Escalated(_)
        ));
        assert_eq!(t.observe(&key, 4, alerting(15.0, 0.5)), Transition::None);
        assert!(
            t.held(4),
            "held: counted like a verdict that does not escalate"
        );
        assert_eq!(t.observe(&key, 5, None), Transition::None);
        assert_eq!(t.observe(&key, 6, None), Transition::None);
        let Transition::Resolved(a) = t.observe(&key, 7, None) else {
            panic!("should resolve")
        };
        assert_eq!(a.state, AlertState::Resolved);
        assert_eq!(a.resolved_ms, Some(7));
        assert_eq!(a.anomalous_points, 4);
        assert!(!t.held(8), "no open alert: nothing to add to");
        assert_eq!(a.peak.observed, 30.0);
        assert!(t.open().is_none());
    }

    #[test]
    fn an_anomaly_is_explained_in_numbers_and_words() {
        let mut d = SeriesDetector::new(&DetectorConfig::default());
        for i in 0..400 {
            d.update(i * 1000, 20.0 + (i % 7) as f64 * 0.1);
        }
        let s = d.update(400_000, 80.0);
        assert!(s.alert);
        let e = explain::anomaly("temp", &s);
        assert_eq!(e.kind, AlertKind::Anomaly);
        assert_eq!(e.detector, s.detector.to_string());
        assert!(e.message.contains("above"), "{}", e.message);
        assert!(
            e.message.ends_with(&format!("detector: {}", s.detector)),
            "{}",
            e.message
        );
    }
}
