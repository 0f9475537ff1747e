//! The limits watch: for a metric with a declared limit (per device kind), a [`LimitWatch`] per
//! series raises a limit alert on a value beyond it and a predictive alert when the forecast
//! reaches it within the horizon.

use std::collections::HashSet;

use sentio_ai::LimitWatch;
use sentio_core::{AlertKey, AlertKind, DeviceId, SeriesKey, StateKey, Subject};

use super::per_series::PerSeries;
use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{DeclaredLimit, PipelineError, explain};

/// Consecutive readings back within the limit before a limit alert resolves: enough that a
/// value hovering at the limit makes one alert, not one per crossing.
pub(crate) const LIMIT_RESOLVE_AFTER: u32 = 10;
/// Consecutive forecasts without a crossing before a predictive alert resolves. A forecast is
/// made each time a bucket closes (10 s for the default one-hour horizon), so six is about a
/// minute of forecasts that no longer reach the limit.
pub(crate) const PREDICTIVE_RESOLVE_AFTER: u32 = 6;

/// One [`LimitWatch`] per series whose device kind and metric have a declared limit.
pub(crate) struct LimitsWatch {
    limits: Vec<DeclaredLimit>,
    watches: PerSeries<LimitWatch>,
}

impl LimitsWatch {
    /// Watches the series `limits` are declared for.
    pub(crate) fn new(limits: Vec<DeclaredLimit>) -> Self {
        Self {
            limits,
            watches: PerSeries::new(StateKey::Limit),
        }
    }
}

impl Watch for LimitsWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Limit, AlertKind::Predictive]
    }

    fn resolve_after(&self, kind: AlertKind) -> u32 {
        match kind {
            AlertKind::Predictive => PREDICTIVE_RESOLVE_AFTER,
            _ => LIMIT_RESOLVE_AFTER,
        }
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        let kind: &str = batch.kind;
        for (at, p) in batch.points.iter().enumerate() {
            let Some(limit) = self
                .limits
                .iter()
                .find(|l| l.kind == kind && *l.metric == *p.metric)
                .map(|l| l.limit)
            else {
                continue;
            };
            let series = SeriesKey::of(p);
            let obs = self
                .watches
                .states
                .entry(series.clone())
                .or_default()
                .observe(&limit, p.ts_ms, p.value);
            verdicts.push(Verdict {
                at,
                key: AlertKey::series(&series, AlertKind::Limit),
                ts_ms: p.ts_ms,
                finding: match obs.breach {
                    Some(b) => Finding::Alert(Box::new(explain::limit(&p.metric, p.value, b))),
                    None => Finding::Normal,
                },
            });
            if let Some(forecast) = obs.forecast {
                verdicts.push(Verdict {
                    at,
                    key: AlertKey::series(&series, AlertKind::Predictive),
                    ts_ms: p.ts_ms,
                    finding: match forecast {
                        Some(f) => Finding::Alert(Box::new(explain::predictive(&p.metric, &f))),
                        None => Finding::Normal,
                    },
                });
            }
            self.watches.changed(series);
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        _device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        if key.kind == AlertKind::Limit {
            return Err(PipelineError::Invalid(
                "a declared limit does not learn: change the limit (the ai.limits setting) instead of \
                 marking its alert as a false alarm"
                    .into(),
            ));
        }
        let Subject::Metric(metric) = &key.subject else {
            return Err(gone(&key.device));
        };
        let series = SeriesKey::new(key.device.clone(), metric.clone());
        let watch = self
            .watches
            .states
            .get_mut(&series)
            .ok_or_else(|| gone(&key.device))?;
        let (n, before, after) = watch.mark_false_alarm();
        self.watches.changed(series.clone());
        Ok(format!(
            "predictive alerts on {series} now need a crossing within {:.0} % of the horizon \
             (was {:.0} %) after {n} false alarm(s)",
            after * 100.0,
            before * 100.0
        ))
    }

    fn forget(&mut self, device: &DeviceId) {
        self.watches.forget(device);
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        self.watches.state_part(key)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        self.watches.restore(key, json)
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        self.watches.take_dirty(dirty);
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        self.watches.save(key)
    }
}
