//! The rules watch: users' rules ([`crate::rules`]) judged on every committed point of the
//! devices they select. One [`RuleState`] per (rule, device), saved under
//! [`StateKey::Rule`] like any watch's state; one alert key per (device, rule), of kind
//! [`AlertKind::Rule`], resolved by the first clear verdict (the rule's own clear condition is
//! the hysteresis).
//!
//! Each evaluation that opens or resolves the alert, or decides nothing, is kept as a
//! [`Trace`] in the (rule, device) state, so traces survive a restart. A rule whose evaluation
//! fails (a type error, a twin member missing) is failing on that device until it next
//! evaluates there; its failures are counted (both kept in the state, so across restarts).
//! A failing rule stops nothing else: every rule
//! is judged on its own.
//!
//! The alert tracker gets an explanation only when the alert opens or escalates (a point more
//! extreme than its peak, which the state keeps); a point that only keeps it open is a
//! [`Finding::Held`]. A clear verdict while the alert is closed is given once per state (it
//! resolves an alert that outlived a lost state), not on every point.
//!
//! A device batch visits only the rules whose selector can select it ([`RuleIndex`], built
//! again whenever the rules change), each rule's state of the device is looked up once per
//! batch. The state and its dirty flag share one entry ([`Slot`]): marking a state dirty is a
//! flag, and its ids are cloned into the dirty list only when the flag is first raised after a
//! [`Watch::take_dirty`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use sentio_core::{
    AlertKey, AlertKind, Contributor, DeviceId, Explanation, RuleId, StateKey, Subject,
};
use tracing::debug;

use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch};
use crate::PipelineError;
use crate::rules::group::{GroupValues, Groups, named};
use crate::rules::index::RuleIndex;
use crate::rules::judge::{Eval, RuleState, RuleVars, Step, Trace, device_value};
use crate::rules::replay::{described_actions, described_resolve_actions};
use crate::rules::report::{Failing, Health, RuleReport, TRACES_PER_RULE};
use crate::rules::{CompiledRule, RuleClock};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct RulesWatch {
    /// The enabled rules.
    rules: BTreeMap<RuleId, Arc<CompiledRule>>,
    /// The same rules, found by what their selectors name.
    index: RuleIndex,
    /// The positions in `index` of the rules selecting the batch under way (reused).
    selected: Vec<usize>,
    /// Per rule, its state on each device it has judged.
    states: HashMap<RuleId, HashMap<DeviceId, Slot>>,
    /// The (rule, device) states changed since the last [`Watch::take_dirty`], each once (the
    /// ones whose [`Slot::dirty`] is raised).
    dirty: Vec<(RuleId, DeviceId)>,
    eval: Eval,
    /// Each device's `device` variable, built again when its kind or labels change.
    docs: HashMap<DeviceId, DeviceDoc>,
    /// Each rule's label-group windows.
    groups: Groups,
    /// The group aggregates of the evaluation under way (reused).
    group_values: Vec<GroupValues>,
}

/// One rule's state on one device and whether it changed since the last
/// [`Watch::take_dirty`].
#[derive(Default)]
struct Slot {
    state: RuleState,
    dirty: bool,
}

impl Slot {
    /// Marks the state as changed; the ids are cloned into `dirty` only on the first mark.
    fn mark(&mut self, dirty: &mut Vec<(RuleId, DeviceId)>, rule: &RuleId, device: &DeviceId) {
        if !self.dirty {
            self.dirty = true;
            dirty.push((rule.clone(), device.clone()));
        }
    }
}

/// A device's `device` variable and the kind and labels it was built from.
struct DeviceDoc {
    kind: Arc<str>,
    labels: BTreeMap<String, String>,
    value: cel::Value,
}

/// The `device` variable of the batch's device: the one built before while its kind and
/// labels are the same (so a rule's context sees the same document and keeps it).
fn device_doc(docs: &mut HashMap<DeviceId, DeviceDoc>, batch: &DeviceBatch<'_>) -> cel::Value {
    if let Some(doc) = docs.get(batch.device)
        && doc.kind == *batch.kind
        && doc.labels == *batch.labels
    {
        return doc.value.clone();
    }
    let value = device_value(batch.kind, batch.labels);
    let doc = DeviceDoc {
        kind: batch.kind.clone(),
        labels: batch.labels.clone(),
        value: value.clone(),
    };
    docs.insert(batch.device.clone(), doc);
    value
}

/// The trace of an evaluation of `rule` on `device` that ended in `decision`.
fn trace(
    rule: &CompiledRule,
    state: &RuleState,
    device: &DeviceId,
    ts_ms: i64,
    decision: &str,
    reason: Option<String>,
) -> Trace {
    let actions = match decision {
        "opened" => described_actions(rule, device),
        "resolved" => described_resolve_actions(rule, device),
        _ => Vec::new(),
    };
    Trace {
        ts_ms,
        device: device.to_string(),
        decision: decision.to_string(),
        reason,
        inputs: state.latest().clone(),
        windows: {
            let mut w = state.window_values(rule, ts_ms);
            w.extend(state.ai.named_values(&rule.ai));
            w
        },
        actions,
    }
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
    /// A watch reading the time of day in `clock`'s zone.
    pub(crate) fn new(clock: RuleClock) -> Self {
        Self {
            eval: Eval::new(clock),
            ..Self::default()
        }
    }

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
        for rule in &gone {
            self.groups.reset(rule);
        }
        for (rule, states) in &mut self.states {
            if gone.contains(rule) {
                for (device, slot) in states {
                    slot.state = RuleState::default();
                    slot.mark(&mut self.dirty, rule, device);
                }
            }
        }
        self.index = RuleIndex::new(new.values().cloned().collect());
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
        let Self {
            index,
            selected,
            states,
            dirty,
            eval,
            docs,
            groups,
            group_values,
            ..
        } = self;
        index.selecting(batch.device, batch.kind, batch.labels, selected);
        let mut device = None;
        for &r in selected.iter() {
            let rule = index.get(r);
            let id = &rule.rule.id;
            let Some(first) = batch.points.iter().position(|p| rule.reads(&p.metric)) else {
                continue;
            };
            let states = match states.get_mut(id) {
                Some(s) => s,
                None => states.entry(id.clone()).or_default(),
            };
            let slot = match states.get_mut(batch.device) {
                Some(s) => s,
                None => states.entry(batch.device.clone()).or_default(),
            };
            slot.mark(dirty, id, batch.device);
            let state = &mut slot.state;
            for (at, p) in batch.points.iter().enumerate().skip(first) {
                if at > first && !rule.reads(&p.metric) {
                    continue;
                }
                let device = device.get_or_insert_with(|| RuleVars {
                    device: device_doc(docs, batch),
                    twin: batch.twin.clone(),
                });
                state.add(rule, p);
                if let Some(score) = batch.scores.get(at) {
                    state.ai.scored(&rule.ai, &p.metric, score);
                }
                let mut in_groups: &[GroupValues] = &[];
                if !rule.groups.is_empty() {
                    groups.add(rule, batch.labels, p);
                    groups.values(rule, batch.labels, p.ts_ms, group_values);
                    in_groups = group_values;
                }
                let was_open = state.is_open();
                let step = state.judge_in(rule, eval, device, in_groups, p.ts_ms);
                state.health.evaluated(match &step {
                    Step::Failed(why) => Some(Failing {
                        reason: why.clone(),
                        device: batch.device.to_string(),
                        ts_ms: p.ts_ms,
                    }),
                    _ => None,
                });
                let kept = match &step {
                    Step::Open => Some(("opened", None)),
                    Step::Clear if was_open => Some(("resolved", None)),
                    Step::Undecided(why) => Some(("undecided", Some(why.clone()))),
                    Step::Failed(why) => Some(("failed", Some(why.clone()))),
                    _ => None,
                };
                if let Some((decision, reason)) = kept {
                    let mut t = trace(rule, state, batch.device, p.ts_ms, decision, reason);
                    t.windows.extend(named(&rule.groups, in_groups));
                    state.record(t);
                }
                let finding = match step {
                    Step::Open => {
                        state.set_peak(p.value);
                        explanation(rule, state, p.value, &held_for(rule))
                    }
                    Step::Still if !state.raise_peak(p.value) => {
                        verdicts.push(Verdict {
                            at,
                            key: key(batch.device, id),
                            ts_ms: p.ts_ms,
                            finding: Finding::Held(p.value),
                        });
                        continue;
                    }
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
                    Step::Failed(why) => {
                        debug!(rule = %id, device = %batch.device, "rule failed: {why}");
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

    fn tick(
        &mut self,
        now_ms: i64,
        _open: &dyn Fn(&AlertKey) -> bool,
        verdicts: &mut Vec<Verdict>,
    ) {
        for (id, states) in &mut self.states {
            let Some(rule) = self.rules.get(id) else {
                continue;
            };
            for (device, slot) in states {
                let state = &mut slot.state;
                let Some(at) = state.due(rule, now_ms) else {
                    continue;
                };
                let t = trace(rule, state, device, at, "opened", None);
                state.record(t);
                let observed = state.latest().values().next().copied().unwrap_or(0.0);
                state.set_peak(observed);
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
                slot.mark(&mut self.dirty, id, device);
            }
        }
    }

    fn explain(&self, key: &AlertKey, observed: f64) -> Option<Explanation> {
        let Subject::Rule(id) = &key.subject else {
            return None;
        };
        let rule = self.rules.get(id)?;
        let slot = self.states.get(id)?.get(&key.device)?;
        Some(explanation(rule, &slot.state, observed, "still holds"))
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
        if let Some(slot) = self
            .states
            .get_mut(rule)
            .and_then(|s| s.get_mut(&key.device))
        {
            slot.state.close();
            slot.mark(&mut self.dirty, rule, &key.device);
        }
    }

    fn set_rules(&mut self, rules: &[Arc<CompiledRule>]) -> Vec<RuleId> {
        self.set(rules.to_vec())
    }

    fn rule_reports(&self, only: Option<&RuleId>) -> Vec<RuleReport> {
        self.rules
            .keys()
            .filter(|id| only.is_none_or(|o| o == *id))
            .map(|id| {
                let (failing, failures) = Health::sum(
                    self.states
                        .get(id)
                        .into_iter()
                        .flatten()
                        .map(|(_, s)| &s.state.health),
                );
                let mut traces = Vec::new();
                if only.is_some() {
                    traces = self
                        .states
                        .get(id)
                        .into_iter()
                        .flat_map(|states| states.values())
                        .flat_map(|s| s.state.traces().cloned())
                        .collect();
                    traces.sort_by_key(|t: &Trace| std::cmp::Reverse(t.ts_ms));
                    traces.truncate(TRACES_PER_RULE);
                }
                RuleReport {
                    rule: id.to_string(),
                    failing,
                    failures,
                    traces,
                }
            })
            .collect()
    }

    fn forget(&mut self, device: &DeviceId) {
        for states in self.states.values_mut() {
            states.remove(device);
        }
        self.dirty.retain(|(_, d)| d != device);
        self.docs.remove(device);
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        matches!(key, StateKey::Rule { .. } | StateKey::RuleGroup { .. })
            .then_some(StatePart::Whole)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let StateKey::Rule { device, rule } = key {
            let state: RuleState = serde_json::from_str(json)?;
            let states = self.states.entry(rule.clone()).or_default();
            states.insert(
                device.clone(),
                Slot {
                    state,
                    dirty: false,
                },
            );
        }
        self.groups.restore(key, json)
    }

    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        self.groups.take_dirty(dirty);
        for (rule, device) in self.dirty.drain(..) {
            if let Some(slot) = self.states.get_mut(&rule).and_then(|s| s.get_mut(&device)) {
                slot.dirty = false;
            }
            dirty.insert(StateKey::Rule { device, rule });
        }
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        let StateKey::Rule { device, rule } = key else {
            return self.groups.save(key);
        };
        self.states
            .get(rule)
            .and_then(|s| s.get(device))
            .map(|s| serde_json::to_string(&s.state).expect("rule state serialises"))
    }
}
