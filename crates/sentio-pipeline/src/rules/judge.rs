//! One rule on one device: the running state ([`RuleState`], saved and restored with the other
//! watches' state) and the state machine that turns each evaluation into a [`Step`].
//!
//! - closed: while `condition` holds, the `for` timer runs from the first point it held at
//!   (`pending_since`, data time); when it has held `for_ms`, the alert opens, on a point or,
//!   with no new point, on the detect stage's tick. A point where it does not hold stops the
//!   timer.
//! - open: the alert resolves when `clear` (or, without `clear`, the negation of `condition`)
//!   has held without a break for `clear_for` (data time). Between the two conditions, or
//!   while `clear_for` runs, nothing changes: hysteresis in value and in time.
//! - cooling: for `cool_down` after the alert resolved, the condition starts no `for` timer.
//!
//! With the defaults (`clear_for` 1 min, `cool_down` 5 min), a signal wavering around its
//! threshold (±0.1 at 1 Hz for an hour) keeps one alert open rather than raising 1,800.
//!
//! The timers, the open flag, the latest values and the windows are all in [`RuleState`], so a
//! restart continues where it stopped: a `for` of 10 minutes interrupted at minute 7 fires at
//! minute 10, and a cool-down ends at its time.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::objects::Value;
use cel::{Context, Env, ExecutionError, Program};

use super::ai_inputs::AiState;
use super::clock::RuleClock;
use super::scope::{NO_POINTS, Reads, Scope, ScopeCell};
use sentio_core::Point;
use serde::{Deserialize, Serialize};

use super::compile::CompiledRule;
use super::fast::{Fast, Inputs, Windows};
use super::window::{Agg, Window};

/// What one evaluation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to report (the `for` timer may be running).
    Nothing,
    /// The condition has held for `for`: the alert opens.
    Open,
    /// The alert is open and the condition still holds.
    Still,
    /// The clear condition holds: an open alert resolves.
    Clear,
    /// The expression cannot be evaluated yet (a metric not reported yet, an empty window): no
    /// decision, and nothing wrong with the rule.
    Undecided(String),
    /// The expression failed (a type error, a twin member missing, a result not true or
    /// false): no decision, and the rule is failing until it next evaluates.
    Failed(String),
}

/// One evaluation kept for `GET /api/v1/rules/<id>/traces`: one that changed something (the
/// alert opened or resolved) or decided nothing (undecided or failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Data time of the evaluation (ms).
    pub ts_ms: i64,
    /// The device.
    pub device: String,
    /// `opened`, `resolved`, `undecided` or `failed`.
    pub decision: String,
    /// Why, for `undecided` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The latest value of each metric the rule reads.
    pub inputs: BTreeMap<String, f64>,
    /// Each aggregate the rule reads (`avg(co2, 10m)`), where its window has points.
    #[serde(default)]
    pub windows: BTreeMap<String, f64>,
    /// What the rule's actions did (described) when its alert opened, or its `on_resolve`
    /// actions when it resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

/// Traces kept per (rule, device), newest last, saved with the state.
pub const TRACES_PER_DEVICE: usize = 20;

/// The running state of one rule on one device. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// The latest value of each metric the rule reads.
    latest: BTreeMap<String, f64>,
    /// One window per (metric, window length) the rule aggregates over.
    windows: Vec<(String, i64, Window)>,
    /// Data time from which the condition has held, while the alert is not open.
    pending_since: Option<i64>,
    /// Whether the rule's alert is open.
    open: bool,
    /// Data time from which the clear condition has held, while the alert is open.
    #[serde(default)]
    clear_since: Option<i64>,
    /// Data time until which the rule cannot open its alert again.
    #[serde(default)]
    cool_until: Option<i64>,
    /// The latest traces, oldest first, at most [`TRACES_PER_DEVICE`].
    #[serde(default, skip_serializing_if = "std::collections::VecDeque::is_empty")]
    traces: std::collections::VecDeque<Trace>,
    /// The largest absolute value a point of the open alert was explained with (the alert's
    /// peak as the rules watch last told it), while the alert is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peak: Option<f64>,
    /// The rule's failures on the device.
    #[serde(default, skip_serializing_if = "super::report::Health::is_clear")]
    pub(crate) health: super::report::Health,
    /// What the rule's AI inputs keep (scores, forecasts).
    #[serde(default, skip_serializing_if = "AiState::is_empty")]
    pub(crate) ai: AiState,
    /// Whether the tracker has been told the alert is closed (a [`Step::Clear`], or a close)
    /// since this state was built or restored, or the alert last opened: one is enough to
    /// resolve an alert that outlived a lost state, so the next ones are [`Step::Nothing`].
    #[serde(skip)]
    clear_told: bool,
    /// The CEL context of its evaluations, reused from one to the next.
    #[serde(skip)]
    scope: ScopeCell,
}

impl RuleState {
    /// Closes the alert and stops the timer (a user closed the alert).
    pub fn close(&mut self) {
        self.open = false;
        self.pending_since = None;
        self.clear_since = None;
        self.peak = None;
        // The tracker's alert closed with it: nothing left to tell.
        self.clear_told = true;
    }

    fn opens(&mut self) {
        self.open = true;
        self.pending_since = None;
        self.clear_told = false;
    }

    /// The open alert's peak becomes `observed` (it opened with it).
    pub fn set_peak(&mut self, observed: f64) {
        self.peak = Some(observed.abs());
    }

    /// Whether `observed` is more extreme than the open alert's peak (so the alert escalates
    /// and needs its explanation); if so it becomes the peak.
    pub fn raise_peak(&mut self, observed: f64) -> bool {
        let above = self.peak.is_none_or(|p| observed.abs() > p);
        if above {
            self.peak = Some(observed.abs());
        }
        above
    }

    /// The latest values, for the explanation.
    pub fn latest(&self) -> &BTreeMap<String, f64> {
        &self.latest
    }

    /// Whether the rule's alert is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Keeps a trace, dropping the oldest beyond [`TRACES_PER_DEVICE`].
    pub fn record(&mut self, trace: Trace) {
        if self.traces.len() == TRACES_PER_DEVICE {
            self.traces.pop_front();
        }
        self.traces.push_back(trace);
    }

    /// The kept traces, oldest first.
    pub fn traces(&self) -> impl Iterator<Item = &Trace> {
        self.traces.iter()
    }

    /// The rule's aggregates at `ts_ms` (those with points), named as written.
    pub fn window_values(&self, rule: &CompiledRule, ts_ms: i64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for a in &rule.aggregates {
            let Some((_, _, w)) = self
                .windows
                .iter()
                .find(|(m, ms, _)| *ms == a.window_ms && *m == *a.metric)
            else {
                continue;
            };
            for (agg, name) in [
                (Agg::Avg, "avg"),
                (Agg::Min, "min"),
                (Agg::Max, "max"),
                (Agg::Count, "count"),
            ] {
                if let Some(v) = w.get(agg, ts_ms) {
                    out.insert(format!("{name}({}, {})", a.metric, a.window), v);
                }
            }
        }
        out
    }

    /// Takes one point of a metric the rule reads into the latest values and windows.
    pub fn add(&mut self, rule: &CompiledRule, p: &Point) {
        match self.latest.get_mut(&*p.metric) {
            Some(v) => *v = p.value,
            None => {
                self.latest.insert(p.metric.to_string(), p.value);
            }
        }
        for a in rule.aggregates.iter().filter(|a| *a.metric == *p.metric) {
            super::window::add_to(&mut self.windows, &a.metric, a.window_ms, p.ts_ms, p.value);
        }
        if !rule.ai.is_empty() {
            self.ai.add(&rule.ai, p);
        }
    }

    /// Evaluates the rule at data time `ts_ms` and moves its state machine.
    /// `vars` are the device's [`RuleVars`].
    pub fn judge(&mut self, rule: &CompiledRule, env: &Eval, vars: &RuleVars, ts_ms: i64) -> Step {
        self.judge_in(rule, env, vars, &[], ts_ms)
    }

    /// [`RuleState::judge`] with the values of the rule's label-group aggregates for the
    /// device (in the order of its group aggregates; [`super::group`]).
    pub fn judge_in(
        &mut self,
        rule: &CompiledRule,
        env: &Eval,
        vars: &RuleVars,
        groups: &[super::group::GroupValues],
        ts_ms: i64,
    ) -> Step {
        // The fast trees answer from the state itself; CEL's context is refreshed only when an
        // expression has no fast tree or the tree leaves the answer to CEL.
        let inputs = Inputs {
            latest: &self.latest,
            windows: &self.windows,
            device: &vars.device,
            ts_ms,
        };
        let (latest, windows, ai) = (&self.latest, &self.windows, &self.ai);
        let mut scope = Some(&mut self.scope);
        let mut ctx = None;
        let mut truth_of = |fast: Option<&Fast>, program: &Program| -> Result<bool, Step> {
            if let Some(answer) = fast.and_then(|f| f.eval(&inputs)) {
                return Ok(answer);
            }
            if let Some(cell) = scope.take() {
                let state = StateReads {
                    latest,
                    windows,
                    ai,
                    groups,
                };
                ctx = Some(cel_context(cell, rule, env, vars, state, ts_ms));
            }
            match ctx.as_ref().expect("refreshed above") {
                Ok(ctx) => truth(program, ctx),
                Err(e) => Err(Step::Failed(e.clone())),
            }
        };
        let holds = match truth_of(rule.fast_condition.as_ref(), &rule.condition) {
            Ok(h) => h,
            Err(step) => return step,
        };
        let mut cleared = || match &rule.clear {
            None => Ok(!holds),
            Some(clear) => truth_of(rule.fast_clear.as_ref(), clear),
        };
        if self.open {
            return match cleared() {
                Ok(true) => {
                    let since = *self.clear_since.get_or_insert(ts_ms);
                    if ts_ms.saturating_sub(since) < rule.rule.clear_for_ms {
                        return Step::Nothing;
                    }
                    self.close();
                    self.cool_until = Some(ts_ms.saturating_add(rule.rule.cool_down_ms));
                    Step::Clear
                }
                Ok(false) => {
                    self.clear_since = None;
                    if holds { Step::Still } else { Step::Nothing }
                }
                Err(step) => step,
            };
        }
        if self.cool_until.is_some_and(|until| ts_ms < until) {
            self.pending_since = None;
            return Step::Nothing;
        }
        if holds {
            let since = *self.pending_since.get_or_insert(ts_ms);
            if ts_ms.saturating_sub(since) >= rule.rule.for_ms {
                self.opens();
                return Step::Open;
            }
            return Step::Nothing;
        }
        self.pending_since = None;
        // Cleared while closed: tells a tracker whose alert outlived a lost state to resolve,
        // once.
        match cleared() {
            Ok(true) if self.clear_told => Step::Nothing,
            Ok(true) => {
                self.clear_told = true;
                Step::Clear
            }
            Ok(false) => Step::Nothing,
            Err(step) => step,
        }
    }

    /// With no new point: whether the condition, holding since `pending_since`, has now held
    /// for `for` (wall time `now_ms`); if so the alert opens, at the data time returned.
    pub fn due(&mut self, rule: &CompiledRule, now_ms: i64) -> Option<i64> {
        let since = self.pending_since.filter(|_| !self.open)?;
        let at = since.saturating_add(rule.rule.for_ms);
        if now_ms < at {
            return None;
        }
        self.opens();
        Some(at)
    }
}

/// What a CEL evaluation reads from the rule's state on the device.
struct StateReads<'a> {
    latest: &'a BTreeMap<String, f64>,
    windows: &'a Windows,
    ai: &'a AiState,
    groups: &'a [super::group::GroupValues],
}

/// The rule's CEL context for an evaluation at `ts_ms`, refreshed from the state's latest
/// values, windows, AI inputs and the device's label-group values.
fn cel_context<'a>(
    cell: &'a mut ScopeCell,
    rule: &CompiledRule,
    env: &Eval,
    vars: &RuleVars,
    state: StateReads<'a>,
    ts_ms: i64,
) -> Result<&'a Context<'static, 'static>, String> {
    let windows = state.windows;
    let values = rule.aggregates.iter().map(|a| {
        let w = windows
            .iter()
            .find(|(m, ms, _)| *ms == a.window_ms && *m == *a.metric)
            .map(|(_, _, w)| w);
        [Agg::Avg, Agg::Min, Agg::Max, Agg::Count].map(|agg| match w {
            Some(w) => w.get(agg, ts_ms),
            None => (agg == Agg::Count).then_some(0.0),
        })
    });
    let time = (!rule.clock.is_empty()).then(|| env.clock.at(ts_ms));
    Scope::refresh(
        cell,
        &env.env,
        &rule.aggregates,
        state.latest.iter().map(|(m, v)| (m, *v)),
        values,
        Reads {
            device: &vars.device,
            twin: &vars.twin,
            clock: &rule.clock,
            time,
            ai: (&rule.ai, state.ai),
            groups: (&rule.groups, state.groups),
        },
    )
}

/// Runs one expression to a boolean; otherwise the step it makes: undecided while a metric
/// has no value or a window no points, failed on any other error.
fn truth(program: &Program, ctx: &Context<'_, '_>) -> Result<bool, Step> {
    match program.execute(ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(Step::Failed(format!(
            "the expression gave {other:?}, not true or false"
        ))),
        Err(e @ ExecutionError::UndeclaredReference(_)) => Err(Step::Undecided(e.to_string())),
        Err(ExecutionError::FunctionError { function, message })
            if message.starts_with(NO_POINTS) =>
        {
            Err(Step::Undecided(format!("{function}: {message}")))
        }
        Err(e) => Err(Step::Failed(e.to_string())),
    }
}

/// What every evaluation shares: CEL's standard environment, built once, and the zone of the
/// time of day.
pub struct Eval {
    env: Arc<Env>,
    clock: RuleClock,
}

impl Default for Eval {
    fn default() -> Self {
        Self::new(RuleClock::default())
    }
}

impl Eval {
    /// Evaluations reading the time of day in `clock`'s zone.
    pub fn new(clock: RuleClock) -> Self {
        Self {
            env: Arc::new(Env::stdlib()),
            clock,
        }
    }
}

/// What a rule reads of a device besides its metrics.
pub struct RuleVars {
    /// `device.kind`, `device.labels` ([`device_value`]).
    pub device: Value,
    /// `twin.desired`, `twin.reported` ([`twin_value`]).
    pub twin: Value,
}

/// The `twin` variable: `twin.desired` and `twin.reported` as JSON values (objects).
pub fn twin_value(twin: &sentio_core::Twin) -> Value {
    let mut map = std::collections::HashMap::new();
    for (name, doc) in [("desired", &twin.desired), ("reported", &twin.reported)] {
        let v = cel::to_value(doc).unwrap_or(Value::Null);
        map.insert(name.to_string(), v);
    }
    Value::from(map)
}

/// The `device` variable of a device of `kind` with `labels`: `device.kind`, `device.labels`.
pub fn device_value(kind: &str, labels: &BTreeMap<String, String>) -> Value {
    let labels: std::collections::HashMap<String, String> =
        labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut device = std::collections::HashMap::new();
    device.insert("kind".to_string(), Value::from(kind));
    device.insert("labels".to_string(), Value::from(labels));
    Value::from(device)
}

#[cfg(test)]
mod tests {
    use sentio_core::DeviceId;

    use super::*;
    use crate::rules::compile;
    use crate::rules::compile::test_rule;

    fn rule(condition: &str, clear: Option<&str>, for_ms: i64) -> CompiledRule {
        compile(test_rule(condition, clear, for_ms)).unwrap()
    }

    fn point(metric: &str, ts_ms: i64, value: f64) -> Point {
        Point {
            device: DeviceId::parse("room-1").unwrap(),
            metric: metric.into(),
            ts_ms,
            value,
        }
    }

    /// Feeds `points` (ts, metric, value) to a fresh state of `rule`; checks the steps.
    fn check(rule: &CompiledRule, points: &[(i64, &str, f64)], expected: &[Step]) -> RuleState {
        let eval = Eval::default();
        let device = device_value("room", &BTreeMap::from([("floor".into(), "2".into())]));
        let mut state = RuleState::default();
        let mut got = Vec::new();
        for &(ts, metric, value) in points {
            state.add(rule, &point(metric, ts, value));
            let vars = RuleVars {
                device: device.clone(),
                twin: twin_value(&sentio_core::Twin::empty()),
            };
            got.push(match state.judge(rule, &eval, &vars, ts) {
                Step::Undecided(_) => Step::Undecided(String::new()),
                Step::Failed(_) => Step::Failed(String::new()),
                s => s,
            });
        }
        assert_eq!(got, expected, "{}", rule.rule.condition);
        state
    }

    use Step::{Clear, Nothing, Open, Still};

    #[test]
    fn the_for_timer_runs_while_the_condition_holds_and_stops_when_it_does_not() {
        let r = rule("co2 > 1000", None, 10_000);
        check(
            &r,
            &[
                (0, "co2", 1200.0),
                (5_000, "co2", 1200.0),
                (6_000, "co2", 900.0), // stops the timer
                (7_000, "co2", 1200.0),
                (16_000, "co2", 1200.0),
                (17_000, "co2", 1300.0),
                (17_500, "co2", 1300.0),
                (18_000, "co2", 900.0),
            ],
            &[
                Nothing, Nothing, Clear, Nothing, Nothing, Open, Still, Clear,
            ],
        );
    }

    #[test]
    fn a_clear_condition_is_hysteresis() {
        let r = rule("co2 > 1000", Some("co2 < 800"), 0);
        check(
            &r,
            &[
                (0, "co2", 1001.0),
                (1, "co2", 999.0), // between the two: stays open
                (2, "co2", 1001.0),
                (3, "co2", 799.0),
                (4, "co2", 999.0), // closed, not holding, not clear
            ],
            &[Open, Nothing, Still, Clear, Nothing],
        );
    }

    #[test]
    fn aggregates_labels_and_missing_values() {
        let r = rule(
            r#"avg("co2", "10s") > 1000 && device.labels.floor == "2" && temp < 30"#,
            None,
            0,
        );
        check(
            &r,
            &[
                (0, "co2", 1500.0), // temp not reported yet
                (1_000, "temp", 20.0),
                (2_000, "co2", 600.0), // the average of 1500 and 600
                (3_000, "co2", 400.0),
                (14_000, "co2", 1200.0), // the old points have left the window
            ],
            &[Step::Undecided(String::new()), Open, Still, Clear, Open],
        );
        let wrong_label = rule(r#"device.labels.floor == "3" && co2 > 0"#, None, 0);
        check(&wrong_label, &[(0, "co2", 1.0)], &[Clear]);
        let not_bool = rule("co2 + 1.0", None, 0);
        check(
            &not_bool,
            &[(0, "co2", 1.0)],
            &[Step::Failed(String::new())],
        );
        let type_error = rule(r#"co2 > 1.0 && device.kind > 2"#, None, 0);
        check(
            &type_error,
            &[(0, "co2", 2.0)],
            &[Step::Failed(String::new())],
        );
    }

    /// A device of kind `room` with no labels and an empty twin.
    fn bare_vars() -> RuleVars {
        RuleVars {
            device: device_value("room", &BTreeMap::new()),
            twin: twin_value(&sentio_core::Twin::empty()),
        }
    }

    /// A rule with the API's defaults for `clear_for` and `cool_down`.
    fn with_defaults(condition: &str) -> CompiledRule {
        let mut r = test_rule(condition, None, 0);
        r.clear_for_ms = sentio_core::Rule::DEFAULT_CLEAR_FOR_MS;
        r.cool_down_ms = sentio_core::Rule::DEFAULT_COOL_DOWN_MS;
        compile(r).unwrap()
    }

    #[test]
    fn a_signal_wavering_around_its_threshold_for_an_hour_raises_one_alert() {
        let r = with_defaults("co2 > 1000.0");
        let (eval, device) = (Eval::default(), bare_vars());
        let mut state = RuleState::default();
        let mut opened = 0;
        for i in 0..3_600 {
            let value = if i % 2 == 0 { 1_000.1 } else { 999.9 };
            let ts = i * 1_000;
            state.add(&r, &point("co2", ts, value));
            opened += usize::from(state.judge(&r, &eval, &device, ts) == Open);
            assert_eq!(state.due(&r, ts), None);
        }
        assert_eq!(opened, 1, "±0.1 around the threshold at 1 Hz for an hour");
        // Without the defaults the same signal flaps: every other second.
        let bare = rule("co2 > 1000.0", None, 0);
        let mut state = RuleState::default();
        let flaps = (0..3_600)
            .filter(|&i| {
                let value = if i % 2 == 0 { 1_000.1 } else { 999.9 };
                state.add(&bare, &point("co2", i * 1_000, value));
                state.judge(&bare, &eval, &device, i * 1_000) == Open
            })
            .count();
        assert_eq!(flaps, 1_800);
    }

    #[test]
    fn the_clear_condition_must_hold_for_clear_for_and_a_cool_down_follows_across_a_restart() {
        let mut r = test_rule("co2 > 1000", None, 0);
        r.clear_for_ms = 10_000;
        r.cool_down_ms = 60_000;
        let r = compile(r).unwrap();
        let state = check(
            &r,
            &[
                (0, "co2", 1200.0),
                (5_000, "co2", 900.0),  // clear starts holding
                (9_000, "co2", 1100.0), // and breaks: stays open
                (10_000, "co2", 900.0),
                (19_999, "co2", 900.0),
                (20_000, "co2", 900.0), // held 10 s: resolves, cools until 80 s
                (30_000, "co2", 1200.0),
            ],
            &[Open, Nothing, Still, Nothing, Nothing, Clear, Nothing],
        );
        let json = serde_json::to_string(&state).unwrap();
        let mut restored: RuleState = serde_json::from_str(&json).unwrap();
        let (eval, device) = (Eval::default(), bare_vars());
        let mut step = |ts: i64| {
            restored.add(&r, &point("co2", ts, 1200.0));
            restored.judge(&r, &eval, &device, ts)
        };
        assert_eq!(step(79_999), Nothing, "still cooling after the restart");
        assert_eq!(step(80_000), Open, "the cool-down is over");
    }

    #[test]
    fn a_reused_context_sees_each_evaluations_twin_values_and_rule() {
        let r = rule(
            r#"twin.reported.fan == "low" && avg("co2", "10s") > 1000.0"#,
            None,
            0,
        );
        let eval = Eval::default();
        let vars = |fan: &str| {
            let mut twin = sentio_core::Twin::empty();
            twin.reported = serde_json::json!({ "fan": fan });
            RuleVars {
                device: device_value("room", &BTreeMap::new()),
                twin: twin_value(&twin),
            }
        };
        let mut state = RuleState::default();
        let mut step = |ts: i64, co2: f64, fan: &str| {
            state.add(&r, &point("co2", ts, co2));
            state.judge(&r, &eval, &vars(fan), ts)
        };
        assert_eq!(step(0, 1200.0, "high"), Clear);
        assert_eq!(step(1_000, 1200.0, "low"), Open, "the new twin is read");
        assert_eq!(step(2_000, 1200.0, "high"), Clear);
        assert_eq!(step(3_000, 1200.0, "low"), Open);
        assert_eq!(step(20_000, 100.0, "low"), Clear, "the new average: 100");
        // Judged for a rule with other aggregates, the state builds a context for it.
        let other = rule(r#"max("co2", "20s") > 1000.0"#, None, 0);
        state.add(&other, &point("co2", 21_000, 1500.0));
        assert_eq!(state.judge(&other, &eval, &vars("low"), 21_000), Open);
    }

    #[test]
    fn a_clear_while_closed_is_told_once_per_state_and_again_after_a_restart() {
        let r = rule("co2 > 1000", None, 0);
        let state = check(
            &r,
            &[
                (0, "co2", 900.0),
                (1, "co2", 900.0),
                (2, "co2", 1200.0),
                (3, "co2", 900.0),
                (4, "co2", 900.0),
            ],
            &[Clear, Nothing, Open, Clear, Nothing],
        );
        let mut restored: RuleState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        restored.add(&r, &point("co2", 5, 900.0));
        assert_eq!(
            restored.judge(&r, &Eval::default(), &bare_vars(), 5),
            Clear,
            "a restored state tells it again: an alert may have outlived it"
        );
    }

    #[test]
    fn the_peak_is_raised_only_by_a_more_extreme_value() {
        let mut state = RuleState::default();
        assert!(state.raise_peak(-3.0), "no peak yet");
        assert!(!state.raise_peak(2.0));
        assert!(state.raise_peak(3.5));
        state.set_peak(1.0);
        assert!(!state.raise_peak(-1.0));
        state.close();
        assert!(state.raise_peak(0.5), "closing forgets the peak");
    }

    #[test]
    fn a_pending_timer_fires_without_new_points_and_survives_a_restart() {
        let r = rule("co2 > 1000", None, 10_000);
        let state = check(&r, &[(1_000, "co2", 1200.0)], &[Nothing]);
        // Saved and restored (a restart) at 7 s: fires at 11 s, not 10 s after the restart.
        let json = serde_json::to_string(&state).unwrap();
        let mut restored: RuleState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, state);
        assert_eq!(restored.due(&r, 7_000), None);
        assert_eq!(restored.due(&r, 10_999), None);
        assert_eq!(restored.due(&r, 11_000), Some(11_000));
        assert_eq!(restored.due(&r, 12_000), None, "fires once");
        assert!(restored.open);
    }
}
