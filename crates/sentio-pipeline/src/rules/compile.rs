//! From a [`Rule`] to a [`CompiledRule`]: both CEL expressions parsed once, every name checked
//! against what the rule may read, and the windowed aggregates it asks for listed, so the
//! engine keeps exactly those windows. A rule that fails here is refused when it is created
//! (422 with the line and column), never found wrong on the hot path.
//!
//! The names an expression may use:
//! - the metrics listed in `selector.metrics`, each the device's latest value (a double);
//! - `device.kind` (a string) and `device.labels` (a map of strings);
//! - `twin.desired` and `twin.reported`, the device's twin documents (JSON objects; a member
//!   not there is an error at run time, so test with `has(twin.reported.fan)` where it may
//!   be missing);
//! - `hour`, `minute` and `weekday`, the judged point's local time ([`super::clock`]), unless a
//!   metric in `selector.metrics` has the same name (the metric wins);
//! - `avg("m", "10m")`, `min(..)`, `max(..)`, `count(..)` over a metric listed in the
//!   selector and a window of at most [`MAX_WINDOW_MS`], both given as string literals;
//! - `group_avg("m", "10m", "site")`, `group_min`, `group_max`, `group_count`: the same over
//!   the devices the rule selects that share the device's value of a label ([`super::group`]);
//! - `anomaly("m")` and `forecast("m", "30m")`, the AI engine's score and forecast of a metric
//!   listed in the selector ([`super::ai_inputs`]);
//! - CEL's standard functions and macros (`size`, `has`, `exists`, `matches`...).

use std::sync::Arc;

use cel::Program;
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo};
use sentio_core::Rule;
use sentio_core::time::parse_duration_ms;

use super::ai_inputs::{self, AiInput};
use super::clock::ClockField;
use super::fast::Fast;
use super::group::{self, GroupAggregate};

/// The longest window an aggregate may ask for: a window is running state (a few slots), but a
/// day bounds how long a stale reading can weigh on a rule.
pub const MAX_WINDOW_MS: i64 = 24 * 3_600_000;
/// The longest `for`, `clear_for` and `cool_down` a rule may have.
pub const MAX_FOR_MS: i64 = 7 * 24 * 3_600_000;
/// The longest expression accepted (bytes).
pub const MAX_EXPRESSION_LEN: usize = 4_096;

/// The windowed aggregates an expression may call.
const AGGREGATES: [&str; 4] = ["avg", "min", "max", "count"];
/// CEL's standard functions (operators are recognised by their `_`, `@` or `!` prefix).
const STANDARD: [&str; 18] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "exists",
    "all",
    "has",
];
/// The variables read only through their fields: name, fields, what to write instead.
const RECORDS: [(&str, [&str; 2], &str); 2] = [
    (
        "device",
        ["kind", "labels"],
        "use device.kind or device.labels",
    ),
    (
        "twin",
        ["desired", "reported"],
        "use twin.desired or twin.reported",
    ),
];

/// Why a rule was refused, and where (1-based line and column of the expression named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Which part of the rule: `condition`, `clear`, `for`, `selector`...
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
    /// Where in the expression, if the error is in one.
    pub position: Option<(u32, u32)>,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)?;
        if let Some((line, column)) = self.position {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

impl RuleError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
            position: None,
        }
    }
}

/// A windowed aggregate a rule reads: its metric and window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aggregate {
    /// The metric.
    pub metric: Arc<str>,
    /// The window as written (`"10m"`): the key the expression calls it by.
    pub window: Arc<str>,
    /// The window (ms).
    pub window_ms: i64,
}

/// A rule with its expressions parsed and checked.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule as written.
    pub rule: Rule,
    /// Its condition.
    pub(crate) condition: Program,
    /// Its clear condition, if any.
    pub(crate) clear: Option<Program>,
    /// Every (metric, window) either expression aggregates over, without repeats.
    pub(crate) aggregates: Vec<Aggregate>,
    /// The time-of-day variables either expression reads, without repeats.
    pub(crate) clock: Vec<ClockField>,
    /// The AI engine's values either expression reads, without repeats.
    pub(crate) ai: Vec<AiInput>,
    /// The label-group aggregates either expression reads, without repeats.
    pub(crate) groups: Vec<GroupAggregate>,
    /// The condition's fast tree, if it has one of the common shapes.
    pub(crate) fast_condition: Option<Fast>,
    /// The clear condition's fast tree, if it has one.
    pub(crate) fast_clear: Option<Fast>,
}

impl CompiledRule {
    /// Whether `metric` is one the rule reads.
    pub fn reads(&self, metric: &str) -> bool {
        self.rule.selector.metrics.iter().any(|m| m == metric)
    }
}

/// Checks `rule` and compiles its expressions.
pub fn compile(rule: Rule) -> Result<CompiledRule, RuleError> {
    if rule.selector.metrics.is_empty() {
        return Err(RuleError::new(
            "selector.metrics",
            "name at least one metric the rule reads",
        ));
    }
    if let Some(m) = rule
        .selector
        .metrics
        .iter()
        .find(|m| !sentio_core::telemetry::valid_metric(m))
    {
        return Err(RuleError::new(
            "selector.metrics",
            format!("{m:?} is not a metric name"),
        ));
    }
    for (field, ms) in [
        ("for", rule.for_ms),
        ("clear_for", rule.clear_for_ms),
        ("cool_down", rule.cool_down_ms),
    ] {
        if !(0..=MAX_FOR_MS).contains(&ms) {
            return Err(RuleError::new(field, "must be between 0 and 7 days"));
        }
    }
    if rule.name.trim().is_empty() || rule.name.len() > 200 {
        return Err(RuleError::new("name", "give 1-200 characters"));
    }
    super::actions::check(&rule.actions)?;
    super::actions::check_on_resolve(&rule.on_resolve)?;
    let mut reads = Reads::default();
    let condition = expression("condition", &rule.condition, &rule, &mut reads)?;
    let clear = rule
        .clear
        .as_deref()
        .map(|c| expression("clear", c, &rule, &mut reads))
        .transpose()?;
    let fast =
        |p: &Program| Fast::compile(p.expression(), &rule.selector.metrics, &reads.aggregates);
    let (fast_condition, fast_clear) = (fast(&condition), clear.as_ref().and_then(fast));
    Ok(CompiledRule {
        rule,
        condition,
        clear,
        aggregates: reads.aggregates,
        clock: reads.clock,
        ai: reads.ai,
        groups: reads.groups,
        fast_condition,
        fast_clear,
    })
}

/// What a rule's expressions read besides metrics, device and twin.
#[derive(Default)]
struct Reads {
    aggregates: Vec<Aggregate>,
    clock: Vec<ClockField>,
    ai: Vec<AiInput>,
    groups: Vec<GroupAggregate>,
}

/// Parses and checks one expression, adding the aggregates and time-of-day variables it uses.
fn expression(
    field: &'static str,
    source: &str,
    rule: &Rule,
    reads: &mut Reads,
) -> Result<Program, RuleError> {
    if source.trim().is_empty() || source.len() > MAX_EXPRESSION_LEN {
        return Err(RuleError::new(
            field,
            format!("give an expression of 1-{MAX_EXPRESSION_LEN} bytes"),
        ));
    }
    let program = Program::compile(source).map_err(|e| {
        let first = e.errors.first();
        RuleError {
            field,
            message: first.map_or_else(|| e.to_string(), |p| p.msg.clone()),
            position: first.map(|p| (p.pos.0.max(1) as u32, p.pos.1.max(1) as u32)),
        }
    })?;
    let mut check = Check {
        field,
        source,
        info: program.source_info(),
        rule,
        scope: Vec::new(),
        reads,
    };
    check.expr(program.expression())?;
    Ok(program)
}

/// A walk over one expression's syntax tree.
struct Check<'a> {
    field: &'static str,
    source: &'a str,
    info: &'a SourceInfo,
    rule: &'a Rule,
    /// Variables bound by the comprehensions (macros) around the node.
    scope: Vec<&'a str>,
    reads: &'a mut Reads,
}

impl<'a> Check<'a> {
    fn expr(&mut self, e: &'a IdedExpr) -> Result<(), RuleError> {
        match &e.expr {
            Expr::Ident(name) => self.ident(e, name),
            Expr::Select(s) => {
                if let Expr::Ident(name) = &s.operand.expr
                    && let Some((_, fields, hint)) =
                        RECORDS.iter().find(|(record, ..)| record == name)
                    && !self.scope.contains(&name.as_str())
                {
                    if !fields.contains(&s.field.as_str()) {
                        return Err(self.at(e, format!("unknown name {name}.{}: {hint}", s.field)));
                    }
                    return Ok(());
                }
                self.expr(&s.operand)
            }
            Expr::Call(c) => {
                let name = c.func_name.as_str();
                if c.target.is_none() && AGGREGATES.contains(&name) {
                    return self.aggregate(e, name, &c.args);
                }
                if c.target.is_none() && ["anomaly", "forecast"].contains(&name) {
                    return self.ai_input(e, name, &c.args);
                }
                if c.target.is_none() && group::FUNCTIONS.contains(&name) {
                    return self.group(e, name, &c.args);
                }
                let operator = name.starts_with(['_', '@', '!']) || name == "-_";
                if !operator && !STANDARD.contains(&name) {
                    return Err(self.at(
                        e,
                        format!(
                            "unknown function {name}: use avg, min, max or count(\"metric\", \"10m\"), {}, {} or a standard CEL function",
                            group::SIGNATURE,
                            ai_inputs::SIGNATURES
                        ),
                    ));
                }
                if let Some(t) = &c.target {
                    self.expr(t)?;
                }
                c.args.iter().try_for_each(|a| self.expr(a))
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range)?;
                self.expr(&c.accu_init)?;
                let bound = self.scope.len();
                self.scope.push(&c.iter_var);
                self.scope.extend(c.iter_var2.as_deref());
                self.scope.push(&c.accu_var);
                let r = [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .try_for_each(|x| self.expr(x));
                self.scope.truncate(bound);
                r
            }
            Expr::List(l) => l.elements.iter().try_for_each(|x| self.expr(x)),
            Expr::Map(m) => m.entries.iter().try_for_each(|x| match &x.expr {
                EntryExpr::MapEntry(me) => {
                    self.expr(&me.key)?;
                    self.expr(&me.value)
                }
                EntryExpr::StructField(f) => self.expr(&f.value),
            }),
            Expr::Struct(_) => Err(self.at(e, "message types are not available in rules")),
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    fn ident(&mut self, e: &IdedExpr, name: &str) -> Result<(), RuleError> {
        if self.scope.contains(&name) || self.rule.selector.metrics.iter().any(|m| m == name) {
            return Ok(());
        }
        if let Some(field) = ClockField::named(name) {
            if !self.reads.clock.contains(&field) {
                self.reads.clock.push(field);
            }
            return Ok(());
        }
        if let Some((_, _, hint)) = RECORDS.iter().find(|(record, ..)| *record == name) {
            return Err(self.at(e, *hint));
        }
        Err(self.at(
            e,
            format!(
                "unknown name {name}: a rule reads the metrics in selector.metrics ({}), device.kind, device.labels, twin.desired, twin.reported, hour, minute and weekday, and calls avg, min, max or count(\"metric\", \"10m\"), {}, {}",
                self.rule.selector.metrics.join(", "),
                group::SIGNATURE,
                ai_inputs::SIGNATURES
            ),
        ))
    }

    fn aggregate(&mut self, e: &IdedExpr, name: &str, args: &[IdedExpr]) -> Result<(), RuleError> {
        let literal = |a: &IdedExpr| match &a.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.to_string()),
            _ => None,
        };
        let (Some(metric), Some(window)) = (
            args.first().and_then(literal),
            args.get(1).and_then(literal),
        ) else {
            return Err(self.at(
                e,
                format!("{name} takes two string literals: {name}(\"metric\", \"10m\")"),
            ));
        };
        if args.len() != 2 {
            return Err(self.at(e, format!("{name} takes two arguments")));
        }
        if !self.rule.selector.metrics.contains(&metric) {
            return Err(self.at(
                &args[0],
                format!("unknown metric {metric:?}: list it in selector.metrics"),
            ));
        }
        let window_ms = parse_duration_ms(&window)
            .ok()
            .filter(|w| (1_000..=MAX_WINDOW_MS).contains(w))
            .ok_or_else(|| {
                self.at(
                    &args[1],
                    format!("window {window:?}: give a duration from 1s to 24h, e.g. \"10m\""),
                )
            })?;
        let a = Aggregate {
            metric: metric.into(),
            window: window.into(),
            window_ms,
        };
        if !self.reads.aggregates.contains(&a) {
            self.reads.aggregates.push(a);
        }
        Ok(())
    }

    fn ai_input(&mut self, e: &IdedExpr, name: &str, args: &[IdedExpr]) -> Result<(), RuleError> {
        let input = self.call(e, args, |l, m| ai_inputs::parse(name, l, m))?;
        push_new(&mut self.reads.ai, input);
        Ok(())
    }

    fn group(&mut self, e: &IdedExpr, name: &str, args: &[IdedExpr]) -> Result<(), RuleError> {
        let g = self.call(e, args, |l, m| group::parse(name, l, m))?;
        push_new(&mut self.reads.groups, g);
        Ok(())
    }

    /// A call checked by `parse` (its arguments' literals and the rule's metrics); an error is
    /// placed at the argument it names, else at the call.
    fn call<T>(
        &self,
        e: &IdedExpr,
        args: &[IdedExpr],
        parse: impl FnOnce(&[Option<String>], &[String]) -> Result<T, (Option<usize>, String)>,
    ) -> Result<T, RuleError> {
        parse(&literals(args), &self.rule.selector.metrics)
            .map_err(|(arg, message)| self.at(arg.and_then(|k| args.get(k)).unwrap_or(e), message))
    }

    /// An error at node `e`, with its line and column.
    fn at(&self, e: &IdedExpr, message: impl Into<String>) -> RuleError {
        // The parser counts offsets in characters.
        let position = self.info.offset_for(e.id).map(|(start, _)| {
            let before: Vec<char> = self.source.chars().take(start as usize).collect();
            let line = before.iter().filter(|&&c| c == '\n').count() as u32 + 1;
            let column = before.iter().rev().take_while(|&&c| c != '\n').count() as u32 + 1;
            (line, column)
        });
        RuleError {
            field: self.field,
            message: message.into(),
            position,
        }
    }
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Each argument's string literal, if it is one.
fn literals(args: &[IdedExpr]) -> Vec<Option<String>> {
    args.iter()
        .map(|a| match &a.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

/// A rule `r` reading `co2` and `temp`, for the tests.
#[cfg(test)]
pub(crate) fn test_rule(condition: &str, clear: Option<&str>, for_ms: i64) -> Rule {
    use sentio_core::{RuleId, Selector, Severity};
    Rule {
        id: RuleId::parse("r").unwrap(),
        name: "r".into(),
        enabled: true,
        selector: Selector {
            metrics: vec!["co2".into(), "temp".into()],
            ..Selector::default()
        },
        condition: condition.into(),
        clear: clear.map(Into::into),
        for_ms,
        clear_for_ms: 0,
        cool_down_ms: 0,
        severity: Severity::Warning,
        actions: Vec::new(),
        on_resolve: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(condition: &str, clear: Option<&str>) -> Rule {
        test_rule(condition, clear, 0)
    }

    /// A refusal: the field, the start of the message and the position.
    type Refused<'a> = (&'a str, &'a str, Option<(u32, u32)>);

    /// Compiles `condition` (and `clear`): `Ok` with the aggregates, or the refusal.
    fn check(condition: &str, clear: Option<&str>, expected: Result<&[(&str, i64)], Refused<'_>>) {
        let got = compile(rule(condition, clear));
        match (got, expected) {
            (Ok(c), Ok(aggs)) => {
                let got: Vec<(&str, i64)> = c
                    .aggregates
                    .iter()
                    .map(|a| (&*a.metric, a.window_ms))
                    .collect();
                assert_eq!(got, aggs, "{condition}");
            }
            (Err(e), Err((field, message, position))) => {
                assert_eq!(e.field, field, "{condition}: {e}");
                assert!(e.message.starts_with(message), "{condition}: {e}");
                assert_eq!(e.position, position, "{condition}: {e}");
            }
            (got, expected) => panic!("{condition}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn the_time_of_day_is_a_known_name_unless_a_metric_has_it() {
        let c = compile(rule(
            "hour >= 5 && hour < 7 && weekday <= 5 && co2 > 1",
            None,
        ))
        .unwrap();
        assert_eq!(c.clock, [ClockField::Hour, ClockField::Weekday]);
        let e = compile(rule("hours > 5", None)).unwrap_err();
        assert!(
            e.message.contains("hour, minute and weekday"),
            "the 422 names them: {e}"
        );
        let mut shadowed = rule("minute > 5", None);
        shadowed.selector.metrics.push("minute".into());
        assert!(
            compile(shadowed).unwrap().clock.is_empty(),
            "the metric wins"
        );
    }

    #[test]
    fn names_syntax_and_aggregates_are_checked_at_creation() {
        check("co2 > 1000", None, Ok(&[]));
        check(
            r#"avg("co2", "10m") > 1000 && max("temp", "1h") < 30.5 || avg("co2", "10m") > 2000"#,
            Some(r#"count("co2", "30s") == 0 || co2 < 800"#),
            Ok(&[("co2", 600_000), ("temp", 3_600_000), ("co2", 30_000)]),
        );
        check(
            r#"device.kind == "room" && device.labels.floor == "2" && [co2, temp].all(x, x > 0)"#,
            None,
            Ok(&[]),
        );
        check(
            "co2 > ",
            None,
            Err(("condition", "Syntax error", Some((1, 7)))),
        );
        check(
            "co2 > 1000 &&\n  humidity > 3",
            None,
            Err(("condition", "unknown name humidity", Some((2, 3)))),
        );
        check(
            "co2 > 1",
            Some("co2 < 1 || nope"),
            Err(("clear", "unknown name nope", Some((1, 12)))),
        );
        check(
            "device.owner == 'x'",
            None,
            Err(("condition", "unknown name device.owner", Some((1, 7)))),
        );
        check(
            r#"co2 > 1000 && twin.reported.fan != "high" && twin.desired.mode == "auto""#,
            None,
            Ok(&[]),
        );
        check(
            "twin.owner == 'x'",
            None,
            Err(("condition", "unknown name twin.owner", Some((1, 5)))),
        );
        check(
            "twin == {}",
            None,
            Err((
                "condition",
                "use twin.desired or twin.reported",
                Some((1, 1)),
            )),
        );
        check(
            "rate(co2) > 1",
            None,
            Err(("condition", "unknown function rate", Some((1, 5)))),
        );
        check(
            r#"avg("humidity", "10m") > 1"#,
            None,
            Err(("condition", "unknown metric \"humidity\"", Some((1, 5)))),
        );
        check(
            r#"avg("co2", "2d") > 1"#,
            None,
            Err(("condition", "window \"2d\"", Some((1, 12)))),
        );
        check(
            r#"avg(co2, "10m") > 1"#,
            None,
            Err(("condition", "avg takes two string literals", Some((1, 4)))),
        );
        check("", None, Err(("condition", "give an expression", None)));
    }

    #[test]
    fn the_ai_inputs_are_checked_and_named_in_the_refusals() {
        let c = compile(rule(
            r#"anomaly("temp") > 0.9 || forecast("temp", "30m") > 90.0"#,
            Some(r#"anomaly("temp") < 0.5"#),
        ))
        .unwrap();
        let labels: Vec<String> = c.ai.iter().map(AiInput::label).collect();
        assert_eq!(labels, ["anomaly(temp)", "forecast(temp, 30m)"]);
        check(
            r#"anomaly("humidity") > 0.9"#,
            None,
            Err(("condition", "unknown metric \"humidity\"", Some((1, 9)))),
        );
        check(
            r#"forecast("temp", "2d") > 1"#,
            None,
            Err(("condition", "horizon \"2d\"", Some((1, 18)))),
        );
        check(
            r#"forecast("temp") > 1"#,
            None,
            Err((
                "condition",
                "forecast takes two string literals",
                Some((1, 9)),
            )),
        );
        for refused in ["predict(co2) > 1", "nope > 1"] {
            let e = compile(rule(refused, None)).unwrap_err();
            assert!(
                e.message
                    .contains(r#"anomaly("metric") and forecast("metric", "30m")"#),
                "the 422 names the signatures: {e}"
            );
        }
    }

    #[test]
    fn a_rule_needs_metrics_and_a_bounded_for() {
        let mut r = rule("co2 > 1", None);
        r.selector.metrics.clear();
        assert_eq!(compile(r).unwrap_err().field, "selector.metrics");
        let mut r = rule("co2 > 1", None);
        r.for_ms = MAX_FOR_MS + 1;
        assert_eq!(compile(r).unwrap_err().field, "for");
        let mut r = rule("co2 > 1", None);
        r.cool_down_ms = -1;
        assert_eq!(compile(r).unwrap_err().field, "cool_down");
    }
}
