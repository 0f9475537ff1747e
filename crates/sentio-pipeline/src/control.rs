//! The API's handle on the detect stage: feedback on alerts, forgetting erased devices, rule
//! changes, and the declared limits.

use std::sync::Arc;

use sentio_ai::Limit;
use sentio_ai::limits::DEFAULT_HORIZON_MS;
use sentio_core::{Alert, AlertId, DeviceId, RuleId};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::PipelineError;
use crate::detect::Command;
use crate::series_limit::SeriesLimit;

/// A limit declared for one metric of every device of a kind, e.g. `pump.bearing_temp<=90`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeclaredLimit {
    /// Device kind.
    pub kind: String,
    /// Metric.
    pub metric: String,
    /// Bounds and forecast horizon.
    #[serde(flatten)]
    pub limit: Limit,
}

impl DeclaredLimit {
    /// Reads `KIND.METRIC<=MAX`, `KIND.METRIC>=MIN`, or both joined by `,`
    /// (`pump.bearing_temp<=90`, `room.temperature>=5,room.temperature<=35`), optionally followed
    /// by `@HORIZON` (`pump.bearing_temp<=90@2h`; default 1 h).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (body, horizon) = match spec.rsplit_once('@') {
            Some((b, h)) => (
                b,
                sentio_core::time::parse_duration_ms(h)
                    .map_err(|e| format!("limit {spec:?}: horizon {h:?}: {e}"))?,
            ),
            None => (spec, DEFAULT_HORIZON_MS),
        };
        let mut out: Option<DeclaredLimit> = None;
        for part in body.split(',') {
            let (target, upper, value) = if let Some((t, v)) = part.split_once("<=") {
                (t, true, v)
            } else if let Some((t, v)) = part.split_once(">=") {
                (t, false, v)
            } else {
                return Err(format!(
                    "limit {spec:?}: expected KIND.METRIC<=MAX or KIND.METRIC>=MIN"
                ));
            };
            let (kind, metric) = target.trim().split_once('.').ok_or_else(|| {
                format!("limit {spec:?}: name the device kind and metric as KIND.METRIC")
            })?;
            if kind.is_empty() || !sentio_core::telemetry::valid_metric(metric) {
                return Err(format!("limit {spec:?}: {target:?} is not KIND.METRIC"));
            }
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("limit {spec:?}: {value:?} is not a number"))?;
            let l = out.get_or_insert_with(|| DeclaredLimit {
                kind: kind.to_string(),
                metric: metric.to_string(),
                limit: Limit {
                    lower: None,
                    upper: None,
                    horizon_ms: horizon,
                },
            });
            if l.kind != kind || l.metric != metric {
                return Err(format!("limit {spec:?}: one KIND.METRIC per limit"));
            }
            if upper {
                l.limit.upper = Some(value);
            } else {
                l.limit.lower = Some(value);
            }
        }
        let l = out.ok_or_else(|| format!("limit {spec:?} is empty"))?;
        if let (Some(lo), Some(hi)) = (l.limit.lower, l.limit.upper)
            && lo >= hi
        {
            return Err(format!(
                "limit {spec:?}: lower {lo} is not below upper {hi}"
            ));
        }
        Ok(l)
    }
}

/// Cloneable handle for the API.
#[derive(Clone)]
pub struct Control {
    tx: mpsc::Sender<Command>,
    limits: Arc<Vec<DeclaredLimit>>,
    series_limit: Arc<SeriesLimit>,
}

impl Control {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        limits: Vec<DeclaredLimit>,
        series_limit: Arc<SeriesLimit>,
    ) -> Self {
        Self {
            tx,
            limits: Arc::new(limits),
            series_limit,
        }
    }

    /// Records a user's verdict on alert `id`. A false alarm makes whatever raised it less
    /// sensitive (the returned alert's feedback says how) and resolves it if open.
    pub async fn feedback(
        &self,
        id: AlertId,
        false_alarm: bool,
        note: Option<String>,
    ) -> Result<Alert, PipelineError> {
        self.ask(|reply| Command::Feedback {
            alert_id: id,
            false_alarm,
            note,
            reply,
        })
        .await?
    }

    /// A user says the state behind alert `id` is normal: the device model learns it as a new
    /// regime and the alert resolves (the returned alert's feedback says so). Only device
    /// alerts can: others answer [`PipelineError::Invalid`].
    pub async fn new_normal(
        &self,
        id: AlertId,
        note: Option<String>,
    ) -> Result<Alert, PipelineError> {
        self.ask(|reply| Command::NewNormal {
            alert_id: id,
            note,
            reply,
        })
        .await?
    }

    /// `by` (as the audit log names people) takes charge of open alert `id`. The first
    /// acknowledgement stays; a resolved alert answers [`PipelineError::Conflict`].
    pub async fn acknowledge(&self, id: AlertId, by: String) -> Result<Alert, PipelineError> {
        self.ask(|reply| Command::Acknowledge {
            alert_id: id,
            by,
            reply,
        })
        .await?
    }

    /// `by` resolves open alert `id` now. A resolved alert answers
    /// [`PipelineError::Conflict`].
    pub async fn resolve(&self, id: AlertId, by: String) -> Result<Alert, PipelineError> {
        self.ask(|reply| Command::Resolve {
            alert_id: id,
            by,
            reply,
        })
        .await?
    }

    /// Sends the detect task a command and waits for its reply.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)
    }

    /// Tells the detect stage the rules changed in the store: it loads them again (and the
    /// device labels they select on) and resolves the open alerts of rules removed, disabled or
    /// changed. Returns once the new rules are in force.
    pub async fn reload_rules(&self) -> Result<(), PipelineError> {
        self.ask(|reply| Command::ReloadRules { reply }).await?
    }

    /// The enabled rules' run-time reports (failing or not, failures counted), with the
    /// latest traces of `rule` when one is named.
    pub async fn rule_reports(
        &self,
        rule: Option<RuleId>,
    ) -> Result<Vec<crate::rules::report::RuleReport>, PipelineError> {
        self.ask(|reply| Command::RuleReports { rule, reply }).await
    }

    /// Makes the pipeline forget `device` (after it was deleted or erased): its detectors and
    /// watches, so nothing learnt from it is saved again, and the metric names counted against
    /// its series limit.
    pub async fn forget(&self, device: &DeviceId) -> Result<(), PipelineError> {
        self.series_limit.forget(device);
        self.ask(|reply| Command::Forget {
            device: device.clone(),
            reply,
        })
        .await
    }

    /// The declared limits.
    pub fn limits(&self) -> &[DeclaredLimit] {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        let l = DeclaredLimit::parse("pump.bearing_temp<=90").unwrap();
        assert_eq!(
            (l.kind.as_str(), l.metric.as_str()),
            ("pump", "bearing_temp")
        );
        assert_eq!((l.limit.lower, l.limit.upper), (None, Some(90.0)));
        assert_eq!(l.limit.horizon_ms, DEFAULT_HORIZON_MS);
        let l = DeclaredLimit::parse("room.temperature>=5,room.temperature<=35@2h").unwrap();
        assert_eq!((l.limit.lower, l.limit.upper), (Some(5.0), Some(35.0)));
        assert_eq!(l.limit.horizon_ms, 7_200_000);
        for bad in [
            "pump.bearing_temp=90",
            "bearing_temp<=90",
            "pump.bearing_temp<=hot",
            "a.b>=5,a.b<=1",
            "a.b<=5,c.d<=6",
        ] {
            assert!(DeclaredLimit::parse(bad).is_err(), "{bad}");
        }
    }
}
