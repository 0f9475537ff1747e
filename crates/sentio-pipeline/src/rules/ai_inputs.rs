//! The AI engine as rule inputs:
//! - `anomaly("temp")`: the fused anomaly score (0 to 1) of the device's latest `temp` point,
//!   as the series' own detectors scored it for the anomaly alerts ([`ScoreSheet`], written by
//!   the series watch, read by the rules watch after it);
//! - `forecast("bearing_temp", "30m")`: the mean the forecast (MSTL/AutoETS, the engine's
//!   [`sentio_ai::try_forecast`]) gives that far ahead of the latest point, made from the
//!   metric's history kept as running state: [`Forecaster`] averages the points into
//!   [`FORECAST_STEPS`] buckets per horizon, keeps [`HISTORY_STEPS`] of them and forecasts again
//!   each time a bucket closes, never reading stored history.
//!
//! Both are saved with the rule's state ([`AiState`]). Until a metric has a score or a forecast
//! the function says so and the evaluation is undecided (the rule neither fires nor fails).
//! A replay scores the replayed points again with a fresh detector ([`Rescorer`]): the same
//! engine, but without the history before the range.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use cel::objects::Value;
use cel::{Context, ExecutionError};
use sentio_ai::{DetectorConfig, SeriesDetector};
use sentio_core::Point;
use serde::{Deserialize, Serialize};

use super::scope::NO_POINTS;

/// The AI functions a rule may call, with their signatures (for the 422 messages).
pub(crate) const SIGNATURES: &str = r#"anomaly("metric") and forecast("metric", "30m")"#;
/// Forecast steps per horizon: the bucket width is the horizon divided by this.
pub const FORECAST_STEPS: i64 = 30;
/// Buckets of history a forecast is made from (four horizons).
pub const HISTORY_STEPS: usize = 120;
/// Buckets needed before the first forecast.
pub const MIN_HISTORY_STEPS: usize = 20;
/// The longest forecast horizon a rule may ask for.
pub const MAX_HORIZON_MS: i64 = 24 * 3_600_000;

/// An AI input a rule reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AiInput {
    /// `anomaly(metric)`.
    Anomaly {
        /// The metric.
        metric: Arc<str>,
    },
    /// `forecast(metric, horizon)`.
    Forecast {
        /// The metric.
        metric: Arc<str>,
        /// The horizon as written (`"30m"`).
        horizon: Arc<str>,
        /// The horizon (ms).
        horizon_ms: i64,
    },
}

impl AiInput {
    /// The metric it reads.
    pub fn metric(&self) -> &str {
        match self {
            Self::Anomaly { metric } | Self::Forecast { metric, .. } => metric,
        }
    }

    /// As a trace names it: `anomaly(temp)`, `forecast(temp, 30m)`.
    pub fn label(&self) -> String {
        match self {
            Self::Anomaly { metric } => format!("anomaly({metric})"),
            Self::Forecast {
                metric, horizon, ..
            } => format!("forecast({metric}, {horizon})"),
        }
    }
}

/// Checks a call of `name` (`anomaly` or `forecast`) with `args` (each its string literal, if
/// it is one) on a rule reading `metrics`. The error names the argument it is about (its
/// index; `None`: the call).
pub(crate) fn parse(
    name: &str,
    args: &[Option<String>],
    metrics: &[String],
) -> Result<AiInput, (Option<usize>, String)> {
    let usage = match name {
        "anomaly" => r#"anomaly takes one string literal: anomaly("metric")"#,
        _ => r#"forecast takes two string literals: forecast("metric", "30m")"#,
    };
    let want = if name == "anomaly" { 1 } else { 2 };
    if args.len() != want || args.iter().any(Option::is_none) {
        return Err((None, usage.to_string()));
    }
    let metric = args[0].clone().unwrap_or_default();
    if !metrics.contains(&metric) {
        return Err((
            Some(0),
            format!("unknown metric {metric:?}: list it in selector.metrics"),
        ));
    }
    if name == "anomaly" {
        return Ok(AiInput::Anomaly {
            metric: metric.into(),
        });
    }
    let horizon = args[1].clone().unwrap_or_default();
    let horizon_ms = sentio_core::time::parse_duration_ms(&horizon)
        .ok()
        .filter(|h| (FORECAST_STEPS * 1_000..=MAX_HORIZON_MS).contains(h))
        .ok_or_else(|| {
            (
                Some(1),
                format!("horizon {horizon:?}: give a duration from 30s to 24h, e.g. \"30m\""),
            )
        })?;
    Ok(AiInput::Forecast {
        metric: metric.into(),
        horizon: horizon.into(),
        horizon_ms,
    })
}

/// The fused anomaly score of each point of a device batch, by position: written by the
/// series watch as it scores them, read by the rules watch (which comes after it).
#[derive(Default)]
pub(crate) struct ScoreSheet(RefCell<Vec<Option<f64>>>);

impl ScoreSheet {
    /// Empties it for a batch of `points` points.
    pub(crate) fn reset(&self, points: usize) {
        let mut s = self.0.borrow_mut();
        s.clear();
        s.resize(points, None);
    }

    /// The point at `at` scored `score`.
    pub(crate) fn set(&self, at: usize, score: f64) {
        if let Some(slot) = self.0.borrow_mut().get_mut(at) {
            *slot = Some(score);
        }
    }

    /// The score of the point at `at`, if it was scored.
    pub(crate) fn get(&self, at: usize) -> Option<f64> {
        self.0.borrow().get(at).copied().flatten()
    }
}

/// A replay's anomaly scores: one fresh detector per metric a rule's `anomaly` reads.
pub(crate) struct Rescorer {
    detectors: Vec<(Arc<str>, SeriesDetector)>,
}

impl Rescorer {
    /// Detectors for the `anomaly` inputs of `inputs`.
    pub(crate) fn new(inputs: &[AiInput]) -> Self {
        let config = DetectorConfig::default();
        let mut detectors: Vec<(Arc<str>, SeriesDetector)> = Vec::new();
        for i in inputs {
            if let AiInput::Anomaly { metric } = i
                && !detectors.iter().any(|(m, _)| m == metric)
            {
                detectors.push((metric.clone(), SeriesDetector::new(&config)));
            }
        }
        Self { detectors }
    }

    /// Scores `p`, if its metric is one `anomaly` reads.
    pub(crate) fn score(&mut self, p: &Point) -> Option<f64> {
        let (_, d) = self.detectors.iter_mut().find(|(m, _)| *m == p.metric)?;
        Some(d.update(p.ts_ms, p.value).score)
    }
}

/// A metric's history in buckets and its latest forecast. See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    metric: String,
    horizon_ms: i64,
    /// Closed buckets: start (ms) and mean, oldest first.
    buckets: VecDeque<(i64, f64)>,
    cur_start: i64,
    cur_sum: f64,
    cur_n: u32,
    /// The mean forecast `horizon_ms` ahead, made when the last bucket closed.
    value: Option<f64>,
}

impl Forecaster {
    fn new(metric: &str, horizon_ms: i64) -> Self {
        Self {
            metric: metric.to_string(),
            horizon_ms,
            buckets: VecDeque::new(),
            cur_start: 0,
            cur_sum: 0.0,
            cur_n: 0,
            value: None,
        }
    }

    fn width(&self) -> i64 {
        (self.horizon_ms / FORECAST_STEPS).max(1_000)
    }

    /// Takes a point of its metric; a bucket that closes is forecast from.
    fn add(&mut self, ts_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let width = self.width();
        let start = ts_ms - ts_ms.rem_euclid(width);
        if self.cur_n == 0 {
            self.cur_start = start;
        }
        if start < self.cur_start {
            return;
        }
        if start > self.cur_start {
            let mean = self.cur_sum / f64::from(self.cur_n);
            self.buckets.push_back((self.cur_start, mean));
            while self.buckets.len() > HISTORY_STEPS {
                self.buckets.pop_front();
            }
            self.cur_start = start;
            self.cur_sum = 0.0;
            self.cur_n = 0;
            self.forecast();
        }
        self.cur_sum += value;
        self.cur_n += 1;
    }

    fn forecast(&mut self) {
        if self.buckets.len() < MIN_HISTORY_STEPS {
            return;
        }
        let history: Vec<(i64, f64)> = self.buckets.iter().copied().collect();
        self.value = sentio_ai::try_forecast(&history, self.horizon_ms, self.width())
            .ok()
            .and_then(|f| f.last().map(|p| p.value))
            .filter(|v| v.is_finite());
    }
}

/// What a rule's AI inputs keep on one device, saved with its [`RuleState`](super::RuleState).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiState {
    /// The latest fused anomaly score of each metric `anomaly` reads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scores: BTreeMap<String, f64>,
    /// One forecaster per (metric, horizon) `forecast` reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forecasts: Vec<Forecaster>,
}

impl AiState {
    /// Whether it keeps nothing (a rule without AI inputs).
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty() && self.forecasts.is_empty()
    }

    /// Takes a point: into the forecasters of its metric.
    pub(crate) fn add(&mut self, inputs: &[AiInput], p: &Point) {
        for i in inputs {
            let AiInput::Forecast {
                metric, horizon_ms, ..
            } = i
            else {
                continue;
            };
            if *metric != p.metric {
                continue;
            }
            let f = match self
                .forecasts
                .iter()
                .position(|f| *f.metric == **metric && f.horizon_ms == *horizon_ms)
            {
                Some(k) => &mut self.forecasts[k],
                None => {
                    self.forecasts.push(Forecaster::new(metric, *horizon_ms));
                    self.forecasts.last_mut().expect("pushed")
                }
            };
            f.add(p.ts_ms, p.value);
        }
    }

    /// The point of `metric` just added was scored `score`, if `anomaly` reads it.
    pub(crate) fn scored(&mut self, inputs: &[AiInput], metric: &str, score: f64) {
        let read = inputs
            .iter()
            .any(|i| matches!(i, AiInput::Anomaly { metric: m } if **m == *metric));
        if !read {
            return;
        }
        match self.scores.get_mut(metric) {
            Some(s) => *s = score,
            None => {
                self.scores.insert(metric.to_string(), score);
            }
        }
    }

    /// Each input's value, in the order of `inputs`.
    pub(crate) fn values<'a>(
        &'a self,
        inputs: &'a [AiInput],
    ) -> impl Iterator<Item = Option<f64>> + 'a {
        inputs.iter().map(|i| match i {
            AiInput::Anomaly { metric } => self.scores.get(&**metric).copied(),
            AiInput::Forecast {
                metric, horizon_ms, ..
            } => self
                .forecasts
                .iter()
                .find(|f| *f.metric == **metric && f.horizon_ms == *horizon_ms)
                .and_then(|f| f.value),
        })
    }

    /// The inputs with a value, named as a trace shows them.
    pub fn named_values(&self, inputs: &[AiInput]) -> BTreeMap<String, f64> {
        inputs
            .iter()
            .zip(self.values(inputs))
            .filter_map(|(i, v)| Some((i.label(), v?)))
            .collect()
    }
}

/// Each AI input's value at the evaluation under way, in the order of the inputs.
pub(crate) type AiValues = Arc<Mutex<Vec<Option<f64>>>>;

/// Registers `anomaly` and `forecast` on `ctx`, reading the values written into the cell it
/// returns (in the order of `inputs`).
pub(crate) fn register(
    ctx: &mut Context<'static, 'static>,
    inputs: &[AiInput],
) -> Result<AiValues, String> {
    let values: AiValues = Arc::new(Mutex::new(vec![None; inputs.len()]));
    if inputs.is_empty() {
        return Ok(values);
    }
    let keys: Arc<Vec<AiInput>> = Arc::new(inputs.to_vec());
    let (v, k) = (values.clone(), keys.clone());
    ctx.add_function("anomaly", move |metric: Arc<String>| {
        let found = k
            .iter()
            .position(|i| matches!(i, AiInput::Anomaly { metric: m } if **m == **metric));
        read(&v, found, "anomaly", || {
            format!("{NO_POINTS}{metric} scored by the anomaly engine yet")
        })
    })
    .map_err(|e| e.to_string())?;
    let (v, k) = (values.clone(), keys);
    ctx.add_function(
        "forecast",
        move |metric: Arc<String>, horizon: Arc<String>| {
            let found = k.iter().position(|i| {
                matches!(i, AiInput::Forecast { metric: m, horizon: h, .. }
                    if **m == **metric && **h == **horizon)
            });
            read(&v, found, "forecast", || {
                format!(
                    "{NO_POINTS}{metric} forecast {horizon} ahead yet (a forecast needs \
                     {MIN_HISTORY_STEPS} steps of a {FORECAST_STEPS}th of the horizon)"
                )
            })
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(values)
}

fn read(
    values: &AiValues,
    found: Option<usize>,
    function: &str,
    waiting: impl FnOnce() -> String,
) -> Result<Value, ExecutionError> {
    let values = values.lock().unwrap_or_else(|e| e.into_inner());
    found
        .and_then(|k| values.get(k).copied().flatten())
        .map(Value::Float)
        .ok_or_else(|| ExecutionError::function_error(function, waiting()))
}

#[cfg(test)]
mod tests {
    use sentio_core::DeviceId;

    use super::*;

    fn point(metric: &str, ts_ms: i64, value: f64) -> Point {
        Point {
            device: DeviceId::parse("pump-1").unwrap(),
            metric: metric.into(),
            ts_ms,
            value,
        }
    }

    #[test]
    fn a_rule_reads_the_score_and_the_forecast_and_waits_without_failing_until_they_exist() {
        use crate::rules::compile::test_rule;
        use crate::rules::judge::{Eval, RuleState, RuleVars, Step, device_value};
        let vars = RuleVars {
            device: device_value("pump", &BTreeMap::new()),
            twin: Value::Null,
        };
        let eval = Eval::default();
        let r = crate::rules::compile(test_rule(r#"anomaly("temp") > 0.9"#, None, 0)).unwrap();
        let mut state = RuleState::default();
        let p = point("temp", 0, 20.0);
        state.add(&r, &p);
        let Step::Undecided(why) = state.judge(&r, &eval, &vars, 0) else {
            panic!("no score yet: undecided")
        };
        assert!(why.contains("no points of temp scored"), "{why}");
        state.ai.scored(&r.ai, "temp", 0.95);
        assert_eq!(state.judge(&r, &eval, &vars, 0), Step::Open);
        state.ai.scored(&r.ai, "temp", 0.2);
        assert_eq!(state.judge(&r, &eval, &vars, 1_000), Step::Clear);

        let r =
            crate::rules::compile(test_rule(r#"forecast("temp", "10m") > 60.0"#, None, 0)).unwrap();
        let mut state = RuleState::default();
        let mut steps = Vec::new();
        for s in 0..1_200i64 {
            let p = point("temp", s * 1_000, 50.0 + 0.01 * s as f64);
            state.add(&r, &p);
            match state.judge(&r, &eval, &vars, p.ts_ms) {
                Step::Undecided(_) => steps.push("undecided"),
                Step::Open => steps.push("open"),
                Step::Failed(why) => panic!("never failing: {why}"),
                _ => {}
            }
        }
        steps.dedup();
        assert_eq!(
            steps,
            ["undecided", "open"],
            "waits for the first forecast, then opens while the value is still below 60"
        );
    }

    #[test]
    fn calls_are_checked_against_the_rules_metrics() {
        let metrics = vec!["temp".to_string()];
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            parse("anomaly", &[s("temp")], &metrics),
            Ok(AiInput::Anomaly {
                metric: "temp".into()
            })
        );
        assert_eq!(
            parse("forecast", &[s("temp"), s("30m")], &metrics),
            Ok(AiInput::Forecast {
                metric: "temp".into(),
                horizon: "30m".into(),
                horizon_ms: 1_800_000
            })
        );
        assert_eq!(
            parse("anomaly", &[s("co2")], &metrics).unwrap_err().0,
            Some(0)
        );
        assert_eq!(
            parse("forecast", &[s("temp"), s("2d")], &metrics)
                .unwrap_err()
                .0,
            Some(1)
        );
        assert_eq!(
            parse("forecast", &[s("temp"), None], &metrics)
                .unwrap_err()
                .0,
            None
        );
        assert_eq!(parse("anomaly", &[], &metrics).unwrap_err().0, None);
    }

    #[test]
    fn a_rising_series_is_forecast_ahead_once_enough_history_is_kept() {
        let inputs = [AiInput::Forecast {
            metric: "temp".into(),
            horizon: "10m".into(),
            horizon_ms: 600_000,
        }];
        let mut state = AiState::default();
        // One point a second rising 0.01 a second; buckets of 20 s.
        let mut first = None;
        for s in 0..1_200i64 {
            state.add(&inputs, &point("temp", s * 1_000, 50.0 + 0.01 * s as f64));
            if first.is_none() && state.values(&inputs).next().flatten().is_some() {
                first = Some(s);
            }
        }
        let first = first.expect("a forecast was made");
        assert!(
            (400..=420).contains(&first),
            "the first forecast after 20 buckets of 20 s: {first}"
        );
        let ahead = state.values(&inputs).next().flatten().unwrap();
        // Now about 61.99; ten minutes ahead about 6 more.
        assert!((66.0..70.0).contains(&ahead), "forecast {ahead}");
        let restored: AiState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(restored, state, "saved and restored whole");
        assert!(
            state.values(&inputs).count() == 1 && !state.is_empty(),
            "one value per input"
        );
    }

    #[test]
    fn scores_are_kept_only_for_the_metrics_anomaly_reads() {
        let inputs = [AiInput::Anomaly {
            metric: "temp".into(),
        }];
        let mut state = AiState::default();
        assert_eq!(state.values(&inputs).next(), Some(None));
        state.scored(&inputs, "co2", 0.5);
        assert!(state.is_empty());
        state.scored(&inputs, "temp", 0.95);
        assert_eq!(state.named_values(&inputs)["anomaly(temp)"], 0.95);
    }

    #[test]
    fn a_replay_rescores_with_a_fresh_detector_and_a_sheet_holds_a_batch() {
        let inputs = [AiInput::Anomaly {
            metric: "temp".into(),
        }];
        let mut r = Rescorer::new(&inputs);
        assert_eq!(r.score(&point("co2", 0, 1.0)), None);
        let mut last = 0.0;
        for s in 0..600 {
            last = r
                .score(&point("temp", s * 1_000, 20.0 + (s % 3) as f64 * 0.1))
                .unwrap();
        }
        let spike = r.score(&point("temp", 600_000, 80.0)).unwrap();
        assert!(spike > last && spike > 0.5, "{last} then {spike}");
        let sheet = ScoreSheet::default();
        sheet.reset(2);
        sheet.set(1, 0.7);
        sheet.set(5, 0.1);
        assert_eq!(
            (sheet.get(0), sheet.get(1), sheet.get(5)),
            (None, Some(0.7), None)
        );
    }
}
