//! The rules watch: users' rules ([`crate::rules`]) judged on every committed point of the
//! devices they select. One [`RuleState`] per (rule, device), saved under
//! [`StateKey::Rule`] like any watch's state; one alert key per (device, rule), of kind
//! [`AlertKind::Rule`], resolved by the first clear verdict (the rule's own clear condition is
//! the hysteresis).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sentio_core::{
    AlertKey, AlertKind, Contributor, DeviceId, Explanation, RuleId, StateKey, Subject,
};
use tracing::debug;

use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch};
use crate::PipelineError;
use crate::rules::CompiledRule;
use crate::rules::judge::{Eval, RuleState, RuleVars, Step, device_value};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct RulesWatch {
    /// The enabled rules.
    rules: BTreeMap<RuleId, Arc<CompiledRule>>,
    states: HashMap<(RuleId, DeviceId), RuleState>,
    dirty: HashSet<StateKey>,
    eval: Eval,
}

fn key(device: &DeviceId, rule: &RuleId) -> AlertKey {
    AlertKey::new(device.clone(), Subject::Rule(rule.clone()), AlertKind::Rule)
}

/// The explanation of a rule's alert at a decision.
fn explanation(rule: &CompiledRule, state: &RuleState, observed: f64, why: &str) -> Explanation {
    let r = &rule.rule;
    Explanation {
        kind: AlertKind::Rule,
        detector: format!("rule {}", r.id),
        expected: 0.0,
        lower: 0.0,
        upper: 0.0,
        observed,
        score: r.severity.score(),
        message: format!(
            "{} ({}): {} {why}",
            r.name,
            r.severity.as_str(),
            r.condition
        ),
        contributors: state
            .latest()
            .iter()
            .map(|(metric, v)| Contributor {
                metric: metric.clone(),
                observed: *v,
                expected: 0.0,
            })
            .collect(),
        prediction: None,
    }
}

fn held_for(rule: &CompiledRule) -> String {
    match rule.rule.for_ms {
        0 => "holds".to_string(),
        ms => format!("held for {} s", ms / 1_000),
    }
}

impl RulesWatch {
    /// Replaces the rule set; returns the ids of the rules removed, disabled or changed: their
    /// state starts afresh and their open alerts are to be resolved.
    pub(crate) fn set(&mut self, rules: Vec<Arc<CompiledRule>>) -> Vec<RuleId> {
        let new: BTreeMap<RuleId, Arc<CompiledRule>> = rules
            .into_iter()
            .filter(|r| r.rule.enabled)
            .map(|r| (r.rule.id.clone(), r))
            .collect();
        let gone: Vec<RuleId> = self
            .rules
            .iter()
            .filter(|(id, old)| new.get(*id).is_none_or(|n| n.rule != old.rule))
            .map(|(id, _)| id.clone())
            .collect();
        for ((rule, device), state) in &mut self.states {
            if gone.contains(rule) {
                *state = RuleState::default();
                self.dirty.insert(StateKey::Rule {
                    device: device.clone(),
                    rule: rule.clone(),
                });
            }
        }
        self.rules = new;
        gone
    }
}

impl Watch for RulesWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Rule]
    }

    fn resolve_after(&self, _kind: AlertKind) -> u32 {
        1
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        let mut device = None;
        for rule in self.rules.values() {
            let s = &rule.rule.selector;
            if !s.selects(batch.device, batch.kind, batch.labels) {
                continue;
            }
            let id = &rule.rule.id;
            for (at, p) in batch.points.iter().enumerate() {
                if !rule.reads(&p.metric) {
                    continue;
                }
                let device = device.get_or_insert_with(|| RuleVars {
                    device: device_value(batch.kind, batch.labels),
                    twin: batch.twin.clone(),
                });
                let state = self
                    .states
                    .entry((id.clone(), batch.device.clone()))
                    .or_default();
                state.add(rule, p);
                self.dirty.insert(StateKey::Rule {
                    device: batch.device.clone(),
                    rule: id.clone(),
                });
                let finding = match state.judge(rule, &self.eval, device, p.ts_ms) {
                    Step::Open => explanation(rule, state, p.value, &held_for(rule)),
                    Step::Still => explanation(rule, state, p.value, "still holds"),
                    Step::Clear => {
                        verdicts.push(Verdict {
                            at,
                            key: key(batch.device, id),
                            ts_ms: p.ts_ms,
                            finding: Finding::Normal,
                        });
                        continue;
                    }
                    Step::Nothing => continue,
                    Step::Undecided(why) => {
                        debug!(rule = %id, device = %batch.device, "rule undecided: {why}");
                        continue;
                    }
                };
                verdicts.push(Verdict {
                    at,
                    key: key(batch.device, id),
                    ts_ms: p.ts_ms,
                    finding: Finding::Alert(Box::new(finding)),
                });
            }
        }
    }

    fn tick(&mut self, now_ms: i64, verdicts: &mut Vec<Verdict>) {
        for ((id, device), state) in &mut self.states {
            let Some(rule) = self.rules.get(id) else {
                continue;
            };
            if let Some(at) = state.due(rule, now_ms) {
                let observed = state.latest().values().next().copied().unwrap_or(0.0);
                verdicts.push(Verdict {
                    at: 0,
                    key: key(device, id),
                    ts_ms: at,
                    finding: Finding::Alert(Box::new(explanation(
                        rule,
                        state,
                        observed,
                        &held_for(rule),
                    ))),
                });
                self.dirty.insert(StateKey::Rule {
                    device: device.clone(),
                    rule: id.clone(),
                });
            }
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        _device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        let Subject::Rule(rule) = &key.subject else {
            return Err(PipelineError::Invalid("not a rule alert".into()));
        };
        self.closed(key);
        Ok(format!(
            "alert closed; rule {rule} is unchanged (edit or disable it to stop it firing)"
        ))
    }

    fn closed(&mut self, key: &AlertKey) {
        let Subject::Rule(rule) = &key.subject else {
            return;
        };
        if let Some(state) = self.states.get_mut(&(rule.clone(), key.device.clone())) {
            state.close();
            self.dirty.insert(StateKey::Rule {
                device: key.device.clone(),
                rule: rule.clone(),
            });
        }
    }

    fn set_rules(&mut self, rules: &[Arc<CompiledRule>]) -> Vec<RuleId> {
        self.set(rules.to_vec())
    }

    fn forget(&mut self, device: &DeviceId) {
        self.states.retain(|(_, d), _| d != device);
        self.dirty.retain(|k| k.device() != Some(device));
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        matches!(key, StateKey::Rule { .. }).then_some(StatePart::Whole)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let StateKey::Rule { device, rule } = key {
            let state: RuleState = serde_json::from_str(json)?;
            self.states.insert((rule.clone(), device.clone()), state);
        }
        Ok(())
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        dirty.extend(self.dirty.drain());
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        let StateKey::Rule { device, rule } = key else {
            return None;
        };
        self.states
            .get(&(rule.clone(), device.clone()))
            .map(|s| serde_json::to_string(s).expect("rule state serialises"))
    }
}
