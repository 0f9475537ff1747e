//! Label-group aggregates: `group_avg("temp", "10m", "site")` (and `group_min`, `group_max`,
//! `group_count`) is the aggregate over the window of the points of every device the rule
//! selects whose label `site` has the judged device's value. Running state per (rule, label,
//! value), a [`GroupState`] of sliding [`Window`]s fed by each point as it is judged, never a
//! scan; saved under [`StateKey::RuleGroup`] like the per-device windows.
//!
//! A device without the label belongs to no group: its group aggregates have no points (the
//! evaluation is undecided).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cel::objects::Value;
use cel::{Context, ExecutionError};
use sentio_core::{Point, RuleId, StateKey};
use serde::{Deserialize, Serialize};

use super::compile::{CompiledRule, MAX_WINDOW_MS};
use super::scope::NO_POINTS;
use super::window::{self, Agg};

/// The group functions, in the order of each aggregate's values.
pub(crate) const FUNCTIONS: [&str; 4] = ["group_avg", "group_min", "group_max", "group_count"];
/// Their signature, for the 422 messages.
pub(crate) const SIGNATURE: &str =
    r#"group_avg, group_min, group_max or group_count("metric", "10m", "label")"#;

/// A label-group aggregate a rule reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupAggregate {
    /// The metric.
    pub metric: Arc<str>,
    /// The window as written (`"10m"`).
    pub window: Arc<str>,
    /// The window (ms).
    pub window_ms: i64,
    /// The label the devices are grouped by.
    pub label: Arc<str>,
}

/// Each group aggregate's `[avg, min, max, count]` for the judged device, in the order of the
/// rule's group aggregates.
pub type GroupValues = [Option<f64>; 4];

/// Checks a call of a group function with `args` (each its string literal, if it is one) on
/// a rule reading `metrics`. The error names the argument it is about (`None`: the call).
pub(crate) fn parse(
    name: &str,
    args: &[Option<String>],
    metrics: &[String],
) -> Result<GroupAggregate, (Option<usize>, String)> {
    let [Some(metric), Some(window), Some(label)] = args else {
        return Err((
            None,
            format!("{name} takes three string literals: {name}(\"metric\", \"10m\", \"label\")"),
        ));
    };
    if !metrics.contains(metric) {
        return Err((
            Some(0),
            format!("unknown metric {metric:?}: list it in selector.metrics"),
        ));
    }
    let window_ms = sentio_core::time::parse_duration_ms(window)
        .ok()
        .filter(|w| (1_000..=MAX_WINDOW_MS).contains(w))
        .ok_or_else(|| {
            (
                Some(1),
                format!("window {window:?}: give a duration from 1s to 24h, e.g. \"10m\""),
            )
        })?;
    if label.is_empty() || label.len() > 64 {
        return Err((Some(2), "give the label's name (1-64 characters)".into()));
    }
    Ok(GroupAggregate {
        metric: metric.as_str().into(),
        window: window.as_str().into(),
        window_ms,
        label: label.as_str().into(),
    })
}

/// A rule's windows over one label group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// One window per (metric, window length).
    windows: window::Keyed,
}

impl GroupState {
    fn add(&mut self, aggregates: &[&GroupAggregate], p: &Point) {
        for a in aggregates.iter().filter(|a| *a.metric == *p.metric) {
            window::add_to(&mut self.windows, &a.metric, a.window_ms, p.ts_ms, p.value);
        }
    }

    fn get(&self, a: &GroupAggregate, ts_ms: i64) -> GroupValues {
        let w = window::find(&self.windows, &a.metric, a.window_ms);
        [Agg::Avg, Agg::Min, Agg::Max, Agg::Count].map(|agg| w.and_then(|w| w.get(agg, ts_ms)))
    }
}

/// The group aggregates with a value, named as a trace shows them
/// (`group_avg(temp, 10m, site)`).
pub fn named<'a>(
    groups: &'a [GroupAggregate],
    values: &'a [GroupValues],
) -> impl Iterator<Item = (String, f64)> + 'a {
    groups.iter().zip(values).flat_map(|(a, v)| {
        FUNCTIONS.iter().zip(v).filter_map(move |(f, x)| {
            Some((
                format!("{f}({}, {}, {})", a.metric, a.window, a.label),
                (*x)?,
            ))
        })
    })
}

/// A group: the label and the value its devices share.
type Group = (Arc<str>, Arc<str>);

/// Every rule's group states, and those changed since the last save.
#[derive(Default)]
pub(crate) struct Groups {
    states: HashMap<RuleId, HashMap<Group, GroupState>>,
    dirty: HashSet<(RuleId, Group)>,
}

impl Groups {
    /// Takes a point of a device with `labels` into the rule's groups it belongs to.
    pub(crate) fn add(
        &mut self,
        rule: &CompiledRule,
        labels: &BTreeMap<String, String>,
        p: &Point,
    ) {
        let id = &rule.rule.id;
        for (k, a) in rule.groups.iter().enumerate() {
            // Once per label: the first aggregate over it feeds all of them.
            if *a.metric != *p.metric || rule.groups[..k].iter().any(|b| b.label == a.label) {
                continue;
            }
            let Some(value) = labels.get(&*a.label) else {
                continue;
            };
            let same: Vec<&GroupAggregate> =
                rule.groups.iter().filter(|b| b.label == a.label).collect();
            let group: Group = (a.label.clone(), value.as_str().into());
            let states = match self.states.get_mut(id) {
                Some(s) => s,
                None => self.states.entry(id.clone()).or_default(),
            };
            states.entry(group.clone()).or_default().add(&same, p);
            self.dirty.insert((id.clone(), group));
        }
    }

    /// The rule's group aggregates for a device with `labels` at `ts_ms`, in order.
    pub(crate) fn values(
        &self,
        rule: &CompiledRule,
        labels: &BTreeMap<String, String>,
        ts_ms: i64,
        out: &mut Vec<GroupValues>,
    ) {
        out.clear();
        let states = self.states.get(&rule.rule.id);
        out.extend(rule.groups.iter().map(|a| {
            let state = labels.get(&*a.label).and_then(|value| {
                states.and_then(|s| s.get(&(a.label.clone(), Arc::from(value.as_str()))))
            });
            match state {
                Some(s) => s.get(a, ts_ms),
                None => [None; 4],
            }
        }));
    }

    /// The rule starts afresh: its groups are emptied (and saved so).
    pub(crate) fn reset(&mut self, rule: &RuleId) {
        if let Some(states) = self.states.get_mut(rule) {
            for (group, state) in states {
                *state = GroupState::default();
                self.dirty.insert((rule.clone(), group.clone()));
            }
        }
    }

    pub(crate) fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let StateKey::RuleGroup { rule, label, value } = key {
            let state: GroupState = serde_json::from_str(json)?;
            self.states
                .entry(rule.clone())
                .or_default()
                .insert((label.clone(), value.clone()), state);
        }
        Ok(())
    }

    pub(crate) fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>) {
        dirty.extend(
            self.dirty
                .drain()
                .map(|(rule, (label, value))| StateKey::RuleGroup { rule, label, value }),
        );
    }

    pub(crate) fn save(&self, key: &StateKey) -> Option<String> {
        let StateKey::RuleGroup { rule, label, value } = key else {
            return None;
        };
        self.states
            .get(rule)?
            .get(&(label.clone(), value.clone()))
            .map(|s| serde_json::to_string(s).expect("group state serialises"))
    }
}

/// The group values of the evaluation under way, in the order of the rule's group aggregates.
pub(crate) type GroupCell = Arc<Mutex<Vec<GroupValues>>>;

/// Registers the group functions on `ctx`, reading the values written into the cell it
/// returns.
pub(crate) fn register(
    ctx: &mut Context<'static, 'static>,
    groups: &[GroupAggregate],
) -> Result<GroupCell, String> {
    let values: GroupCell = Arc::new(Mutex::new(Vec::new()));
    if groups.is_empty() {
        return Ok(values);
    }
    let keys: Arc<Vec<GroupAggregate>> = Arc::new(groups.to_vec());
    for (i, name) in FUNCTIONS.into_iter().enumerate() {
        let (values, keys) = (values.clone(), keys.clone());
        ctx.add_function(
            name,
            move |metric: Arc<String>, window: Arc<String>, label: Arc<String>| {
                let values = values.lock().unwrap_or_else(|e| e.into_inner());
                keys.iter()
                    .position(|a| *a.metric == **metric && *a.window == **window && *a.label == **label)
                    .and_then(|k| values.get(k).and_then(|v| v[i]))
                    .map(Value::Float)
                    .ok_or_else(|| {
                        ExecutionError::function_error(
                            name,
                            format!(
                                "{NO_POINTS}{metric} in the last {window} in the device's {label} group (a device without that label is in none)"
                            ),
                        )
                    })
            },
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use sentio_core::DeviceId;

    use super::*;
    use crate::rules::compile::test_rule;
    use crate::rules::judge::{Eval, RuleState, RuleVars, Step, device_value};

    fn point(device: &str, ts_ms: i64, value: f64) -> Point {
        Point {
            device: DeviceId::parse(device).unwrap(),
            metric: "temp".into(),
            ts_ms,
            value,
        }
    }

    #[test]
    fn calls_are_checked() {
        let metrics = vec!["temp".to_string()];
        let s = |x: &str| Some(x.to_string());
        assert!(parse("group_avg", &[s("temp"), s("10m"), s("site")], &metrics).is_ok());
        assert_eq!(
            parse("group_avg", &[s("co2"), s("10m"), s("site")], &metrics)
                .unwrap_err()
                .0,
            Some(0)
        );
        assert_eq!(
            parse("group_max", &[s("temp"), s("2d"), s("site")], &metrics)
                .unwrap_err()
                .0,
            Some(1)
        );
        assert_eq!(
            parse("group_min", &[s("temp"), s("10m")], &metrics)
                .unwrap_err()
                .0,
            None
        );
    }

    #[test]
    fn a_groups_window_spans_the_devices_with_the_same_label_value_and_survives_a_save() {
        let rule = crate::rules::compile(test_rule(
            r#"temp > group_avg("temp", "1m", "site") + 5.0 && group_count("temp", "1m", "site") >= 3.0"#,
            None,
            0,
        ))
        .unwrap();
        let site = |v: &str| BTreeMap::from([("site".to_string(), v.to_string())]);
        let mut groups = Groups::default();
        let eval = Eval::default();
        let mut values = Vec::new();
        let mut judge = |groups: &mut Groups, device: &str, at: &str, ts: i64, v: f64| {
            let labels = site(at);
            let p = point(device, ts, v);
            groups.add(&rule, &labels, &p);
            groups.values(&rule, &labels, ts, &mut values);
            let mut state = RuleState::default();
            state.add(&rule, &p);
            let vars = RuleVars {
                device: device_value("room", &labels),
                twin: Value::Null,
            };
            state.judge_in(&rule, &eval, &vars, &values, ts)
        };
        assert!(matches!(
            judge(&mut groups, "a-1", "north", 0, 20.0),
            Step::Clear
        ));
        judge(&mut groups, "a-2", "north", 1_000, 21.0);
        judge(&mut groups, "b-1", "south", 1_000, 40.0);
        // North's average with a-3's 30: 23.7; a-3 is 6.3 above it. South's 40 is not counted.
        assert_eq!(judge(&mut groups, "a-3", "north", 2_000, 30.0), Step::Open);
        let mut dirty = HashSet::new();
        groups.take_dirty(&mut dirty);
        assert_eq!(dirty.len(), 2, "north and south: {dirty:?}");
        let mut restored = Groups::default();
        for key in &dirty {
            restored.restore(key, &groups.save(key).unwrap()).unwrap();
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        groups.values(&rule, &site("north"), 2_000, &mut a);
        restored.values(&rule, &site("north"), 2_000, &mut b);
        assert_eq!(a, b, "restored whole");
        assert_eq!(a[0][3], Some(3.0), "three points in north");
        let names: Vec<String> = named(&rule.groups, &a).map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "group_avg(temp, 1m, site)",
                "group_min(temp, 1m, site)",
                "group_max(temp, 1m, site)",
                "group_count(temp, 1m, site)"
            ]
        );
        // No label, no group: undecided.
        let mut state = RuleState::default();
        let p = point("c-1", 3_000, 50.0);
        state.add(&rule, &p);
        groups.values(&rule, &BTreeMap::new(), 3_000, &mut values);
        let vars = RuleVars {
            device: device_value("room", &BTreeMap::new()),
            twin: Value::Null,
        };
        assert!(matches!(
            state.judge_in(&rule, &eval, &vars, &values, 3_000),
            Step::Undecided(_)
        ));
        groups.reset(&rule.rule.id);
        groups.values(&rule, &site("north"), 2_000, &mut a);
        assert_eq!(a[0][3], None, "a reset forgets the points");
    }
}
