//! A rule's CEL context on one device, built once and refreshed before each evaluation
//! instead of built afresh for every point: the metric variables are set only when their value
//! changed, the aggregate functions (registered once) read the values the evaluation wrote
//! into a shared cell, and the `device` and `twin` documents (deep-converted by CEL) are set
//! again only when they changed. Kept beside the [`RuleState`](super::RuleState) it serves,
//! never saved: after a restart, or for another rule, it is built again.

use std::sync::{Arc, Mutex};

use cel::objects::Value;
use cel::{Context, Env, ExecutionError};

use super::ai_inputs::{self, AiInput, AiState, AiValues};
use super::clock::{ClockField, TimeOfDay};
use super::compile::Aggregate;
use super::group::{self, GroupAggregate, GroupCell, GroupValues};

/// How an aggregate over an empty window says so (waiting, not failing).
pub(crate) const NO_POINTS: &str = "no points of ";

/// The aggregate functions, in the order of each aggregate's values.
const FUNCTIONS: [&str; 4] = ["avg", "min", "max", "count"];

/// Each aggregate's `[avg, min, max, count]` at the evaluation under way.
type Values = Arc<Mutex<Vec<[Option<f64>; 4]>>>;

/// See the module documentation.
pub(crate) struct Scope {
    ctx: Context<'static, 'static>,
    /// The aggregates it was built for, in the order of `values`.
    built_for: Vec<Aggregate>,
    values: Values,
    /// The AI inputs it was built for, and their values in that order.
    ai_for: Vec<AiInput>,
    ai_values: AiValues,
    /// The label-group aggregates it was built for, and their values in that order.
    groups_for: Vec<GroupAggregate>,
    group_values: GroupCell,
    /// The metric variables as last set, in the order of the state's latest values: one
    /// that did not change is not set again.
    metrics: Vec<(String, f64)>,
    device: Option<Value>,
    twin: Option<Value>,
    /// The time of day as last set.
    time: Option<TimeOfDay>,
}

/// What an evaluation reads besides metrics and aggregates.
pub(crate) struct Reads<'v> {
    /// `device`.
    pub device: &'v Value,
    /// `twin`.
    pub twin: &'v Value,
    /// The time-of-day variables the rule reads...
    pub clock: &'v [ClockField],
    /// ...and the judged point's local time, when it reads any.
    pub time: Option<TimeOfDay>,
    /// The AI inputs the rule reads and their state on the device.
    pub ai: (&'v [AiInput], &'v AiState),
    /// The label-group aggregates the rule reads and their values for the device.
    pub groups: (&'v [GroupAggregate], &'v [GroupValues]),
}

impl Scope {
    fn new(
        env: Arc<Env>,
        aggregates: &[Aggregate],
        ai: &[AiInput],
        groups: &[GroupAggregate],
    ) -> Result<Self, String> {
        let mut ctx = Context::with_env(env);
        let values: Values = Arc::new(Mutex::new(vec![[None; 4]; aggregates.len()]));
        let keys: Arc<Vec<(Arc<str>, Arc<str>)>> = Arc::new(
            aggregates
                .iter()
                .map(|a| (a.metric.clone(), a.window.clone()))
                .collect(),
        );
        for (i, name) in FUNCTIONS.into_iter().enumerate() {
            let (values, keys) = (values.clone(), keys.clone());
            ctx.add_function(name, move |metric: Arc<String>, window: Arc<String>| {
                let values = values.lock().unwrap_or_else(|e| e.into_inner());
                keys.iter()
                    .position(|(m, w)| **m == **metric && **w == **window)
                    .and_then(|k| values[k][i])
                    .map(Value::Float)
                    .ok_or_else(|| {
                        ExecutionError::function_error(
                            name,
                            format!("{NO_POINTS}{metric} in the last {window}"),
                        )
                    })
            })
            .map_err(|e| e.to_string())?;
        }
        let ai_values = ai_inputs::register(&mut ctx, ai)?;
        let group_values = group::register(&mut ctx, groups)?;
        Ok(Self {
            ctx,
            built_for: aggregates.to_vec(),
            values,
            ai_for: ai.to_vec(),
            ai_values,
            groups_for: groups.to_vec(),
            group_values,
            metrics: Vec::new(),
            device: None,
            twin: None,
            time: None,
        })
    }

    /// The context for an evaluation: `latest` metric values, each aggregate's values (in the
    /// order of `aggregates`), the `device`, the `twin` and the time of day.
    pub(crate) fn refresh<'a>(
        cell: &'a mut ScopeCell,
        env: &Arc<Env>,
        aggregates: &[Aggregate],
        latest: impl Iterator<Item = (&'a String, f64)>,
        values: impl Iterator<Item = [Option<f64>; 4]>,
        reads: Reads<'_>,
    ) -> Result<&'a Context<'static, 'static>, String> {
        let Reads {
            device,
            twin,
            clock,
            time,
            ai: (ai, ai_state),
            groups: (groups, group_values),
        } = reads;
        let stale = cell
            .0
            .as_ref()
            .is_none_or(|s| s.built_for != aggregates || s.ai_for != ai || s.groups_for != groups);
        if stale {
            cell.0 = Some(Box::new(Scope::new(env.clone(), aggregates, ai, groups)?));
        }
        let scope = cell.0.as_mut().expect("built above");
        for (i, (metric, value)) in latest.enumerate() {
            match scope.metrics.get_mut(i) {
                Some((m, v)) if m == metric && v.to_bits() == value.to_bits() => continue,
                Some((m, v)) if m == metric => *v = value,
                Some(slot) => *slot = (metric.clone(), value),
                None => scope.metrics.push((metric.clone(), value)),
            }
            scope.ctx.add_variable_from_value(metric.as_str(), value);
        }
        {
            let mut written = scope.values.lock().unwrap_or_else(|e| e.into_inner());
            written.clear();
            written.extend(values);
        }
        if !ai.is_empty() {
            let mut written = scope.ai_values.lock().unwrap_or_else(|e| e.into_inner());
            written.clear();
            written.extend(ai_state.values(ai));
        }
        if !groups.is_empty() {
            let mut written = scope.group_values.lock().unwrap_or_else(|e| e.into_inner());
            written.clear();
            written.extend_from_slice(group_values);
        }
        if !scope.device.as_ref().is_some_and(|d| same(d, device)) {
            scope.ctx.add_variable_from_value("device", device.clone());
            scope.device = Some(device.clone());
        }
        if !scope.twin.as_ref().is_some_and(|t| same(t, twin)) {
            scope.ctx.add_variable_from_value("twin", twin.clone());
            scope.twin = Some(twin.clone());
        }
        if let Some(time) = time
            && scope.time != Some(time)
        {
            for &field in clock {
                scope
                    .ctx
                    .add_variable_from_value(field.name(), time.get(field));
            }
            scope.time = Some(time);
        }
        Ok(&scope.ctx)
    }
}

/// Whether two values are equal, at once when they share their map (a device's or twin's
/// document reused from one evaluation to the next).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) if Arc::ptr_eq(&x.map, &y.map) => true,
        _ => a == b,
    }
}

/// Where a [`RuleState`](super::RuleState) keeps its [`Scope`]: not saved, not cloned, not
/// compared (a copy or a restored state builds its own).
#[derive(Default)]
pub struct ScopeCell(Option<Box<Scope>>);

impl Clone for ScopeCell {
    fn clone(&self) -> Self {
        Self(None)
    }
}

impl PartialEq for ScopeCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ScopeCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Scope" } else { "-" })
    }
}
