//! The fast path of a rule's expressions: the common shapes of a CEL condition compiled, at rule
//! creation, into a native tree ([`Fast`]) that reads the rule state's latest values and windows
//! directly, with no CEL context to refresh and no interpreter.
//!
//! The shapes: comparisons (`<`, `<=`, `>`, `>=`, `==`, `!=`) of numbers, where a number is a
//! metric the rule reads, a windowed aggregate (`avg("m", "5m")`, `min`, `max`, `count`), a
//! number literal, or `+ - * /` and unary `-` of those (doubles only); `device.kind` and
//! `device.labels.<name>` compared (`==`, `!=`) with a string literal; `&&`, `||`, `!` and the
//! literals `true` and `false`. Anything else (twin, time of day, macros, int arithmetic, ...)
//! has no fast tree and is run by CEL, which stays the language and the parser.
//!
//! **Invariant:** a fast tree gives exactly CEL's answer or none. Where CEL would fail or be
//! undecided (a metric not reported yet, an empty window, a label missing, a comparison with
//! NaN), [`Fast::eval`] answers `None` and the caller runs the CEL program, so the error and its
//! message are CEL's own. A property test compares both on random inputs.

use std::collections::BTreeMap;

use cel::Value;
use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use cel::objects::KeyRef;

use super::compile::Aggregate;
use super::window::{Agg, Window};

/// A rule state's windows: (metric, window length, window).
pub(crate) type Windows = [(String, i64, Window)];

/// What a fast tree reads.
pub(crate) struct Inputs<'a> {
    /// The latest value of each metric the rule reads.
    pub latest: &'a BTreeMap<String, f64>,
    /// The rule state's windows.
    pub windows: &'a Windows,
    /// The `device` variable (`kind`, `labels`).
    pub device: &'a Value,
    /// Data time of the evaluation (the windows end there).
    pub ts_ms: i64,
}

/// A boolean expression compiled to a native tree. See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fast {
    Const(bool),
    Not(Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Compare(Cmp, Num, Num),
    Text(bool, Text, String),
}

/// A comparison of numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A number: a CEL double (`Lit` also stands for an int or uint literal compared with a double,
/// which CEL compares as a double).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num {
    Lit(f64),
    Metric(String),
    Aggregate(String, i64, Agg),
    Neg(Box<Num>),
    Arith(Op, Box<Num>, Box<Num>),
}

/// Double arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// A string the device has: `device.kind` or `device.labels.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    Kind,
    Label(String),
}

impl Fast {
    /// The fast tree of `expr`, if it has one. `metrics` are the rule's metrics, `aggregates`
    /// the aggregates its expressions were checked to read.
    pub(crate) fn compile(
        expr: &IdedExpr,
        metrics: &[String],
        aggregates: &[Aggregate],
    ) -> Option<Fast> {
        Shapes {
            metrics,
            aggregates,
        }
        .boolean(expr)
    }

    /// CEL's answer, or `None` where CEL would not answer true or false (then run CEL).
    pub(crate) fn eval(&self, inputs: &Inputs<'_>) -> Option<bool> {
        match self {
            Fast::Const(b) => Some(*b),
            Fast::Not(e) => e.eval(inputs).map(|b| !b),
            // CEL's `&&` and `||` answer without the other side's error when one side decides;
            // anything else undecided here is left to CEL.
            Fast::And(a, b) => match a.eval(inputs) {
                Some(false) => Some(false),
                Some(true) => b.eval(inputs),
                None => match b.eval(inputs) {
                    Some(false) => Some(false),
                    _ => None,
                },
            },
            Fast::Or(a, b) => match a.eval(inputs) {
                Some(true) => Some(true),
                Some(false) => b.eval(inputs),
                None => match b.eval(inputs) {
                    Some(true) => Some(true),
                    _ => None,
                },
            },
            Fast::Compare(cmp, a, b) => {
                let (a, b) = (a.eval(inputs)?, b.eval(inputs)?);
                match cmp {
                    Cmp::Eq => Some(a == b),
                    Cmp::Ne => Some(a != b),
                    // CEL fails on an ordering with NaN.
                    Cmp::Lt => a.partial_cmp(&b).map(|o| o.is_lt()),
                    Cmp::Le => a.partial_cmp(&b).map(|o| o.is_le()),
                    Cmp::Gt => a.partial_cmp(&b).map(|o| o.is_gt()),
                    Cmp::Ge => a.partial_cmp(&b).map(|o| o.is_ge()),
                }
            }
            Fast::Text(equal, text, literal) => {
                let Value::Map(device) = inputs.device else {
                    return None;
                };
                let found = match text {
                    Text::Kind => device.get(&KeyRef::String("kind"))?,
                    Text::Label(name) => match device.get(&KeyRef::String("labels"))? {
                        Value::Map(labels) => labels.get(&KeyRef::String(name))?,
                        _ => return None,
                    },
                };
                let Value::String(s) = found else {
                    return None;
                };
                Some((s.as_str() == literal.as_str()) == *equal)
            }
        }
    }
}

impl Num {
    fn eval(&self, inputs: &Inputs<'_>) -> Option<f64> {
        match self {
            Num::Lit(v) => Some(*v),
            Num::Metric(m) => inputs.latest.get(m).copied(),
            Num::Aggregate(metric, window_ms, agg) => {
                let window = inputs
                    .windows
                    .iter()
                    .find(|(m, ms, _)| ms == window_ms && m == metric);
                match window {
                    Some((_, _, w)) => w.get(*agg, inputs.ts_ms),
                    // As the CEL context says of a window with no points yet.
                    None => (*agg == Agg::Count).then_some(0.0),
                }
            }
            Num::Neg(v) => v.eval(inputs).map(|v| -v),
            Num::Arith(op, a, b) => {
                let (a, b) = (a.eval(inputs)?, b.eval(inputs)?);
                Some(match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                })
            }
        }
    }
}

/// The walk that recognises the shapes.
struct Shapes<'a> {
    metrics: &'a [String],
    aggregates: &'a [Aggregate],
}

/// A number as the walk found it, with whether CEL sees it as a double.
struct Typed {
    num: Num,
    double: bool,
}

impl Shapes<'_> {
    fn boolean(&self, e: &IdedExpr) -> Option<Fast> {
        match &e.expr {
            Expr::Literal(LiteralValue::Boolean(b)) => Some(Fast::Const(*b.inner())),
            Expr::Call(c) if c.target.is_none() => {
                let name = c.func_name.as_str();
                match (name, c.args.as_slice()) {
                    (operators::LOGICAL_NOT, [x]) => Some(Fast::Not(Box::new(self.boolean(x)?))),
                    (operators::LOGICAL_AND, [a, b]) => Some(Fast::And(
                        Box::new(self.boolean(a)?),
                        Box::new(self.boolean(b)?),
                    )),
                    (operators::LOGICAL_OR, [a, b]) => Some(Fast::Or(
                        Box::new(self.boolean(a)?),
                        Box::new(self.boolean(b)?),
                    )),
                    (_, [a, b]) => {
                        let cmp = match name {
                            operators::LESS => Cmp::Lt,
                            operators::LESS_EQUALS => Cmp::Le,
                            operators::GREATER => Cmp::Gt,
                            operators::GREATER_EQUALS => Cmp::Ge,
                            operators::EQUALS => Cmp::Eq,
                            operators::NOT_EQUALS => Cmp::Ne,
                            _ => return None,
                        };
                        if let Some(text) = self.text(cmp, a, b) {
                            return Some(text);
                        }
                        let (a, b) = (self.number(a)?, self.number(b)?);
                        // Two int literals compare as ints in CEL: not a shape here.
                        (a.double || b.double).then_some(Fast::Compare(cmp, a.num, b.num))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `device.kind` or `device.labels.<name>` compared with a string literal (either side).
    fn text(&self, cmp: Cmp, a: &IdedExpr, b: &IdedExpr) -> Option<Fast> {
        let equal = match cmp {
            Cmp::Eq => true,
            Cmp::Ne => false,
            _ => return None,
        };
        let literal = |e: &IdedExpr| match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
            _ => None,
        };
        let (text, lit) = match (self.device_text(a), literal(b)) {
            (Some(t), Some(l)) => (t, l),
            _ => (self.device_text(b)?, literal(a)?),
        };
        Some(Fast::Text(equal, text, lit))
    }

    fn device_text(&self, e: &IdedExpr) -> Option<Text> {
        let Expr::Select(s) = &e.expr else {
            return None;
        };
        if s.test {
            return None;
        }
        match &s.operand.expr {
            // `device` itself, not a metric of that name (which the context would shadow).
            Expr::Ident(d) if d == "device" && s.field == "kind" && !self.is_metric(d) => {
                Some(Text::Kind)
            }
            Expr::Select(inner)
                if !inner.test
                    && inner.field == "labels"
                    && matches!(&inner.operand.expr, Expr::Ident(d) if d == "device" && !self.is_metric(d)) =>
            {
                Some(Text::Label(s.field.clone()))
            }
            _ => None,
        }
    }

    fn is_metric(&self, name: &str) -> bool {
        self.metrics.iter().any(|m| m == name)
    }

    fn number(&self, e: &IdedExpr) -> Option<Typed> {
        let double = |num| Some(Typed { num, double: true });
        match &e.expr {
            Expr::Literal(LiteralValue::Double(d)) => double(Num::Lit(*d.inner())),
            Expr::Literal(LiteralValue::Int(i)) => Some(Typed {
                num: Num::Lit(*i.inner() as f64),
                double: false,
            }),
            Expr::Literal(LiteralValue::UInt(u)) => Some(Typed {
                num: Num::Lit(*u.inner() as f64),
                double: false,
            }),
            // The `device` and `twin` variables are set after the metrics: a metric of that
            // name reads the document, not a number.
            Expr::Ident(name) if self.is_metric(name) && name != "device" && name != "twin" => {
                double(Num::Metric(name.clone()))
            }
            Expr::Call(c) if c.target.is_none() => {
                match (c.func_name.as_str(), c.args.as_slice()) {
                    (name @ ("avg" | "min" | "max" | "count"), [m, w]) => {
                        let text = |e: &IdedExpr| match &e.expr {
                            Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
                            _ => None,
                        };
                        let (m, w) = (text(m)?, text(w)?);
                        let a = self
                            .aggregates
                            .iter()
                            .find(|a| *a.metric == *m && *a.window == *w)?;
                        let agg = match name {
                            "avg" => Agg::Avg,
                            "min" => Agg::Min,
                            "max" => Agg::Max,
                            _ => Agg::Count,
                        };
                        double(Num::Aggregate(m, a.window_ms, agg))
                    }
                    (operators::NEGATE, [x]) => {
                        let x = self.number(x)?;
                        // Negating an int literal would be int arithmetic.
                        x.double.then(|| Typed {
                            num: Num::Neg(Box::new(x.num)),
                            double: true,
                        })
                    }
                    (name, [a, b]) => {
                        let op = match name {
                            operators::ADD => Op::Add,
                            operators::SUBSTRACT => Op::Sub,
                            operators::MULTIPLY => Op::Mul,
                            operators::DIVIDE => Op::Div,
                            _ => return None,
                        };
                        let (a, b) = (self.number(a)?, self.number(b)?);
                        // CEL has no double-int arithmetic (an error): only doubles here.
                        (a.double && b.double).then(|| Typed {
                            num: Num::Arith(op, Box::new(a.num), Box::new(b.num)),
                            double: true,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use sentio_core::{DeviceId, Point, Twin};

    use crate::rules::compile::test_rule;
    use crate::rules::judge::{Eval, RuleState, RuleVars, Step, device_value, twin_value};
    use crate::rules::{CompiledRule, compile};

    fn compiled(condition: &str, clear: Option<&str>) -> CompiledRule {
        let mut r = test_rule(condition, clear, 0);
        r.clear_for_ms = 2_000;
        r.cool_down_ms = 3_000;
        compile(r).unwrap()
    }

    #[test]
    fn the_common_shapes_have_a_fast_tree_and_the_others_run_in_cel() {
        for fast in [
            "co2 > 1000",
            "1000 < co2",
            r#"avg("co2", "10m") > 1000 && !(temp <= 18)"#,
            r#"count("co2", "1m") > 50 || max("temp", "30s") - min("temp", "30s") >= 2.5"#,
            r#"device.kind == "room" && device.labels.floor != "2""#,
            r#""room" == device.kind"#,
            "-temp > 3.0 && temp / 2.0 < co2 * 1.5 + 1.0",
            "co2 == 7u || true",
        ] {
            assert!(compiled(fast, None).fast_condition.is_some(), "{fast}");
        }
        for slow in [
            "co2 + 1 > 5", // double + int: a CEL error
            "1 < 2",       // int comparison
            "-(1) < temp", // int arithmetic
            r#"twin.reported.fan == "low""#,
            "hour > 5",
            "[co2, temp].all(x, x > 0)",
            r#"device.labels["floor"] == "2""#,
            r#"device.kind < "room""#,
            "co2 > 1000 && has(twin.reported.fan)",
        ] {
            assert!(compiled(slow, None).fast_condition.is_none(), "{slow}");
        }
        let c = compiled("co2 > 1", Some("twin.reported.fan == 'x'"));
        assert!(c.fast_condition.is_some() && c.fast_clear.is_none());
    }

    /// An int or uint literal, compared with a double.
    fn int() -> impl Strategy<Value = String> {
        prop_oneof![
            (0i32..30).prop_map(|v| format!("{}", v * 50)),
            (0u32..5).prop_map(|v| format!("{v}u")),
        ]
    }

    /// A double the generated expressions use.
    fn number() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("co2".to_string()),
            Just("temp".to_string()),
            Just(r#"avg("co2", "1m")"#.to_string()),
            Just(r#"min("temp", "30s")"#.to_string()),
            Just(r#"max("temp", "30s")"#.to_string()),
            Just(r#"count("co2", "1m")"#.to_string()),
            Just(r#"count("temp", "60s")"#.to_string()),
            (-3i32..30).prop_map(|v| format!("{}.0", v * 50)),
            Just("0.0".to_string()),
        ];
        leaf.prop_recursive(2, 6, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone(), 0..4usize)
                    .prop_map(|(a, b, op)| format!("({a} {} {b})", ["+", "-", "*", "/"][op])),
                inner.prop_map(|a| format!("-({a})")),
            ]
        })
    }

    /// A condition of the fast shapes, or (`mixed`) with some that are not, so that both paths
    /// meet in one expression.
    fn condition(mixed: bool) -> impl Strategy<Value = String> {
        let slow = if mixed { 1 } else { 0 };
        let leaf = prop_oneof![
            8 => (prop_oneof![3 => number(), 1 => int()], number(), any::<bool>(), 0..6usize)
                .prop_map(|(a, b, swap, op)| {
                    let (a, b) = if swap { (b, a) } else { (a, b) };
                    format!("{a} {} {b}", ["<", "<=", ">", ">=", "==", "!="][op])
                }),
            slow => (int(), number()).prop_map(|(i, d)| format!("({i} + {d}) > 1.0")),
            1 => Just(r#"device.kind == "room""#.to_string()),
            1 => Just(r#"device.labels.floor != "2""#.to_string()),
            1 => Just(r#"device.labels.wing == "east""#.to_string()),
            1 => Just("true".to_string()),
            1 => Just("false".to_string()),
            slow => Just("has(twin.reported.fan)".to_string()),
            slow => Just(r#"twin.reported.fan == "low""#.to_string()),
        ];
        leaf.prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
                inner.prop_map(|a| format!("!({a})")),
            ]
        })
    }

    /// Points: (metric co2 or temp, seconds after the previous, value).
    fn points() -> impl Strategy<Value = Vec<(bool, i64, f64)>> {
        prop::collection::vec(
            (
                any::<bool>(),
                0i64..20,
                prop_oneof![
                    (-2i32..30).prop_map(|v| f64::from(v * 50)),
                    -100.0..1500.0f64
                ],
            ),
            1..40,
        )
    }

    /// Runs `points` through `rule` judged by the fast trees where they answer, and by CEL
    /// only; every step, and the state at each step, must be the same.
    fn same_steps(rule: CompiledRule, points: &[(bool, i64, f64)], labels: &[(&str, &str)]) {
        let mut slow = compile(rule.rule.clone()).expect("compiled once");
        slow.fast_condition = None;
        slow.fast_clear = None;
        let eval = Eval::default();
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut twin = Twin::empty();
        twin.reported = serde_json::json!({"fan": "low"});
        let vars = RuleVars {
            device: device_value("room", &labels),
            twin: twin_value(&twin),
        };
        let device = DeviceId::parse("room-1").unwrap();
        let (mut a, mut b) = (RuleState::default(), RuleState::default());
        let mut ts = 1_000_000;
        for &(co2, gap, value) in points {
            ts += gap * 1_000;
            let p = Point {
                device: device.clone(),
                metric: if co2 { "co2" } else { "temp" }.into(),
                ts_ms: ts,
                value,
            };
            a.add(&rule, &p);
            b.add(&slow, &p);
            let (fast_step, cel_step): (Step, Step) = (
                a.judge(&rule, &eval, &vars, ts),
                b.judge(&slow, &eval, &vars, ts),
            );
            assert_eq!(
                fast_step, cel_step,
                "{} / {:?} at {ts}",
                rule.rule.condition, rule.rule.clear
            );
            assert_eq!(a, b);
        }
    }

    fn rule_of(condition: &str, clear: Option<&str>) -> CompiledRule {
        let mut r = test_rule(condition, clear, 0);
        r.clear_for_ms = 2_000;
        r.cool_down_ms = 3_000;
        // Only shapes the generators make; each compiles.
        compile(r).unwrap_or_else(|e| panic!("{condition} / {clear:?}: {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn the_fast_path_decides_as_cel_does(
            condition in condition(false),
            clear in prop::option::of(condition(false)),
            points in points(),
            floor in prop_oneof![Just("2"), Just("3")],
        ) {
            let rule = rule_of(&condition, clear.as_deref());
            prop_assert!(rule.fast_condition.is_some() && rule.fast_clear.is_some() == clear.is_some());
            same_steps(rule, &points, &[("floor", floor)]);
        }

        #[test]
        fn a_rule_partly_in_cel_decides_as_cel_does(
            condition in condition(true),
            clear in prop::option::of(condition(true)),
            points in points(),
        ) {
            same_steps(rule_of(&condition, clear.as_deref()), &points, &[("floor", "3")]);
        }
    }

    #[test]
    fn an_undecided_or_failing_fast_shape_is_left_to_cel() {
        // No temp yet (undecided), a label missing (failing), NaN ordered (failing).
        for (condition, value) in [
            ("temp > 1.0 || co2 > 1.0", 0.0),
            (r#"device.labels.wing == "x" && co2 > 1.0"#, 5.0),
            ("co2 / co2 < 1.0", 0.0),
        ] {
            let rule = compiled(condition, None);
            assert!(rule.fast_condition.is_some());
            same_steps(rule, &[(true, 1, value)], &[]);
        }
    }
}
