//! "Would this rule have fired?": a rule replayed over stored history through the same state
//! machine as the live watch ([`RuleState`], fresh for each device), answering when its alert
//! would have opened and resolved and what its actions would have done, described, never
//! carried out.
//!
//! Each device's points of the rule's metrics are read with [`SeriesStore::query`], page by
//! page, merged by timestamp (equal timestamps in the selector's metric order), and judged one
//! by one as the detect stage does; before each point, and at the end of the range, the
//! pending `for` timer is checked as the stage's tick would have ([`RuleState::due`]).
//! Bounded by [`ReplayLimits`]: the range and the number of devices are checked before any
//! read.

use std::collections::BTreeMap;

use sentio_core::{DeviceId, Point, RuleAction, Twin};
use sentio_store::{RangeQuery, SeriesStore};
use serde::Serialize;

use super::ai_inputs::Rescorer;
use super::clock::RuleClock;
use super::compile::CompiledRule;
use super::group::{GroupValues, Groups};
use super::judge::{Eval, RuleState, RuleVars, Step, device_value, twin_value};
use crate::PipelineError;

/// Points read per query page.
const PAGE: usize = 50_000;

/// How much one replay may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimits {
    /// Most devices one replay covers.
    pub max_devices: usize,
    /// Longest range (ms).
    pub max_range_ms: i64,
}

impl Default for ReplayLimits {
    fn default() -> Self {
        Self {
            max_devices: 100,
            max_range_ms: 7 * 24 * 3_600_000,
        }
    }
}

/// A device to replay: what a rule reads of it besides its points.
pub struct ReplayDevice {
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its twin (the current one: twins keep no history).
    pub twin: Twin,
}

/// One time the alert would have opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// When it would have opened (data time, ms).
    pub opened_ms: i64,
    /// When it would have resolved; `None`: still open at the end of the range.
    pub resolved_ms: Option<i64>,
    /// The latest value of each metric the rule reads when it opened.
    pub values: BTreeMap<String, f64>,
    /// The same when it resolved.
    pub resolved_values: Option<BTreeMap<String, f64>>,
    /// What each action would have done.
    pub actions: Vec<String>,
    /// What each `on_resolve` action would have done when it resolved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolve_actions: Vec<String>,
}

/// The replay of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceReplay {
    /// The device.
    pub device: String,
    /// Points judged.
    pub points: u64,
    /// Evaluations that decided nothing (a metric not reported yet, a type error).
    pub undecided: u64,
    /// The reason of the first undecided evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_undecided: Option<String>,
    /// Every time the alert would have opened, in time order.
    pub episodes: Vec<Episode>,
}

/// Checks a replay's range and device count against `limits`.
pub fn check_bounds(
    limits: &ReplayLimits,
    from_ms: i64,
    to_ms: i64,
    devices: usize,
) -> Result<(), PipelineError> {
    if to_ms <= from_ms {
        return Err(PipelineError::Invalid("`to` must be after `from`".into()));
    }
    if to_ms - from_ms > limits.max_range_ms {
        return Err(PipelineError::Invalid(format!(
            "the range is longer than the replay limit of {} (rules.replay_max_range)",
            sentio_core::time::spell_duration_ms(limits.max_range_ms)
        )));
    }
    if devices > limits.max_devices {
        return Err(PipelineError::Invalid(format!(
            "the rule selects {devices} devices, more than the replay limit of {} \
             (rules.replay_max_devices); narrow its selector",
            limits.max_devices
        )));
    }
    Ok(())
}

/// Replays `rule` over `[from_ms, to_ms)` of each of `devices` (the caller picks those its
/// selector selects and checks [`check_bounds`]), reading the time of day in `clock`'s zone.
/// A rule without label-group aggregates replays one device at a time; one with them replays
/// all the devices together, in time order, so each group's windows see every member's points.
pub async fn replay(
    rule: &CompiledRule,
    series: &dyn SeriesStore,
    devices: &[ReplayDevice],
    (from_ms, to_ms): (i64, i64),
    clock: RuleClock,
) -> Result<Vec<DeviceReplay>, PipelineError> {
    let eval = Eval::new(clock);
    if rule.groups.is_empty() {
        let mut out = Vec::with_capacity(devices.len());
        for device in devices {
            let points = history(rule, series, &device.id, from_ms, to_ms).await?;
            out.push(replay_points(rule, &eval, device, &points, to_ms));
        }
        return Ok(out);
    }
    let mut histories = Vec::with_capacity(devices.len());
    for device in devices {
        histories.push(history(rule, series, &device.id, from_ms, to_ms).await?);
    }
    Ok(replay_together(rule, &eval, devices, &histories, to_ms))
}

/// The device's points of the rule's metrics in `[from_ms, to_ms)`, merged in time order.
async fn history(
    rule: &CompiledRule,
    series: &dyn SeriesStore,
    device: &DeviceId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Point>, PipelineError> {
    let mut points: Vec<(i64, usize, f64)> = Vec::new();
    for (order, metric) in rule.rule.selector.metrics.iter().enumerate() {
        let mut from = from_ms;
        loop {
            let page = series
                .query(RangeQuery {
                    device: device.clone(),
                    metric: metric.clone(),
                    from_ms: from,
                    to_ms,
                    step: None,
                    limit: PAGE,
                })
                .await?;
            points.extend(page.points.iter().map(|&(ts, v)| (ts, order, v)));
            match page.next {
                Some(next) if next > from => from = next,
                _ => break,
            }
        }
    }
    points.sort_by_key(|&(ts, order, _)| (ts, order));
    let metrics: Vec<std::sync::Arc<str>> = rule
        .rule
        .selector
        .metrics
        .iter()
        .map(|m| std::sync::Arc::from(m.as_str()))
        .collect();
    Ok(points
        .into_iter()
        .map(|(ts_ms, order, value)| Point {
            device: device.clone(),
            metric: metrics[order].clone(),
            ts_ms,
            value,
        })
        .collect())
}

/// Judges `points` (time order) with a fresh state; the range ends at `to_ms`.
pub fn replay_points(
    rule: &CompiledRule,
    eval: &Eval,
    device: &ReplayDevice,
    points: &[Point],
    to_ms: i64,
) -> DeviceReplay {
    let mut run = DeviceRun::new(rule, device, points.len());
    for p in points {
        run.judge(rule, eval, p, &[]);
    }
    run.finish(rule, to_ms)
}

/// Judges the devices' points (each device's in time order) all in time order, with fresh
/// states and label groups; the range ends at `to_ms`.
pub fn replay_together(
    rule: &CompiledRule,
    eval: &Eval,
    devices: &[ReplayDevice],
    histories: &[Vec<Point>],
    to_ms: i64,
) -> Vec<DeviceReplay> {
    let mut runs: Vec<DeviceRun> = devices
        .iter()
        .zip(histories)
        .map(|(d, h)| DeviceRun::new(rule, d, h.len()))
        .collect();
    let mut order: Vec<(i64, usize, usize)> = histories
        .iter()
        .enumerate()
        .flat_map(|(d, h)| h.iter().enumerate().map(move |(i, p)| (p.ts_ms, d, i)))
        .collect();
    order.sort_unstable();
    let mut groups = Groups::default();
    let mut values = Vec::new();
    for (_, d, i) in order {
        let p = &histories[d][i];
        groups.add(rule, &devices[d].labels, p);
        groups.values(rule, &devices[d].labels, p.ts_ms, &mut values);
        runs[d].judge(rule, eval, p, &values);
    }
    runs.into_iter().map(|r| r.finish(rule, to_ms)).collect()
}

/// One device's replay under way.
struct DeviceRun<'d> {
    device: &'d DeviceId,
    vars: RuleVars,
    state: RuleState,
    rescorer: Rescorer,
    r: DeviceReplay,
}

impl<'d> DeviceRun<'d> {
    fn new(rule: &CompiledRule, device: &'d ReplayDevice, points: usize) -> Self {
        Self {
            device: &device.id,
            vars: RuleVars {
                device: device_value(&device.kind, &device.labels),
                twin: twin_value(&device.twin),
            },
            state: RuleState::default(),
            rescorer: Rescorer::new(&rule.ai),
            r: DeviceReplay {
                device: device.id.to_string(),
                points: points as u64,
                undecided: 0,
                first_undecided: None,
                episodes: Vec::new(),
            },
        }
    }

    /// Judges `p` as the detect stage would (its tick first), with the device's group values.
    fn judge(&mut self, rule: &CompiledRule, eval: &Eval, p: &Point, groups: &[GroupValues]) {
        let (state, r) = (&mut self.state, &mut self.r);
        if let Some(at) = state.due(rule, p.ts_ms) {
            r.episodes.push(opened(rule, self.device, state, at));
        }
        state.add(rule, p);
        if let Some(score) = self.rescorer.score(p) {
            state.ai.scored(&rule.ai, &p.metric, score);
        }
        match state.judge_in(rule, eval, &self.vars, groups, p.ts_ms) {
            Step::Open => r.episodes.push(opened(rule, self.device, state, p.ts_ms)),
            Step::Clear => {
                if let Some(e) = r.episodes.last_mut().filter(|e| e.resolved_ms.is_none()) {
                    e.resolved_ms = Some(p.ts_ms);
                    e.resolved_values = Some(state.latest().clone());
                    e.resolve_actions = described_resolve_actions(rule, self.device);
                }
            }
            Step::Undecided(why) | Step::Failed(why) => {
                r.undecided += 1;
                r.first_undecided.get_or_insert(why);
            }
            Step::Nothing | Step::Still => {}
        }
    }

    /// The replay, its pending `for` timer checked at the end of the range.
    fn finish(mut self, rule: &CompiledRule, to_ms: i64) -> DeviceReplay {
        if let Some(at) = self.state.due(rule, to_ms) {
            self.r
                .episodes
                .push(opened(rule, self.device, &self.state, at));
        }
        self.r
    }
}

fn opened(rule: &CompiledRule, device: &DeviceId, state: &RuleState, at: i64) -> Episode {
    Episode {
        opened_ms: at,
        resolved_ms: None,
        values: state.latest().clone(),
        resolved_values: None,
        actions: described_actions(rule, device),
        resolve_actions: Vec::new(),
    }
}

/// What the rule's actions do when its alert opens on `device`, in words; the alert first
/// (it always opens, listed or not).
pub fn described_actions(rule: &CompiledRule, device: &DeviceId) -> Vec<String> {
    std::iter::once(&RuleAction::Alert)
        .chain(
            rule.rule
                .actions
                .iter()
                .filter(|a| **a != RuleAction::Alert),
        )
        .map(|a| describe(a, device, rule))
        .collect()
}

/// What the rule's `on_resolve` actions do when its alert resolves on `device`, in words.
pub fn described_resolve_actions(rule: &CompiledRule, device: &DeviceId) -> Vec<String> {
    rule.rule
        .on_resolve
        .iter()
        .map(|a| describe(a, device, rule))
        .collect()
}

/// What `action` would do for `device`, in words.
pub fn describe(action: &RuleAction, device: &DeviceId, rule: &CompiledRule) -> String {
    let id = &rule.rule.id;
    match action {
        RuleAction::Alert => format!("open a {} alert on {device}", rule.rule.severity.as_str()),
        RuleAction::Command {
            name, params, to, ..
        } => match to {
            None => format!("send command {name:?} with params {params} to {device}"),
            Some(s) => format!(
                "send command {name:?} with params {params} to every device selected by {}",
                selector_words(s)
            ),
        },
        RuleAction::SetDesired { patch } => {
            format!("merge {patch} into the desired twin of {device}")
        }
        RuleAction::Notify { channel } => format!("notify channel {channel:?}"),
        RuleAction::Publish { topic, payload } => format!(
            "publish {:?} on {}",
            RuleAction::fill(payload, device, id),
            RuleAction::fill(topic, device, id)
        ),
    }
}

fn selector_words(s: &sentio_core::Selector) -> String {
    let mut parts = Vec::new();
    if !s.devices.is_empty() {
        let ids: Vec<&str> = s.devices.iter().map(DeviceId::as_str).collect();
        parts.push(format!("devices {}", ids.join(", ")));
    }
    if let Some(k) = &s.kind {
        parts.push(format!("kind {k}"));
    }
    for (k, v) in &s.labels {
        parts.push(format!("{k}={v}"));
    }
    if parts.is_empty() {
        "all devices".into()
    } else {
        parts.join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::rules::compile;
    use crate::rules::compile::test_rule;

    fn device() -> ReplayDevice {
        ReplayDevice {
            id: DeviceId::parse("room-1").unwrap(),
            kind: "room".into(),
            labels: BTreeMap::new(),
            twin: Twin::empty(),
        }
    }

    fn points(values: impl IntoIterator<Item = (i64, f64)>) -> Vec<Point> {
        values
            .into_iter()
            .map(|(ts_ms, value)| Point {
                device: DeviceId::parse("room-1").unwrap(),
                metric: "co2".into(),
                ts_ms,
                value,
            })
            .collect()
    }

    #[test]
    fn a_for_timer_opens_between_points_as_the_tick_would_and_a_clear_resolves() {
        let mut r = test_rule("co2 > 1000", None, 10_000);
        r.actions = vec![RuleAction::SetDesired {
            patch: r#"{"fan":"high"}"#.into(),
        }];
        r.on_resolve = vec![RuleAction::SetDesired {
            patch: r#"{"fan":"auto"}"#.into(),
        }];
        let r = compile(r).unwrap();
        // Holds from 0; the next point comes at 30 s: the tick would have opened it at 10 s.
        let got = replay_points(
            &r,
            &Eval::default(),
            &device(),
            &points([(0, 1200.0), (30_000, 1300.0), (40_000, 900.0)]),
            60_000,
        );
        assert_eq!(got.episodes.len(), 1, "{got:?}");
        let e = &got.episodes[0];
        assert_eq!((e.opened_ms, e.resolved_ms), (10_000, Some(40_000)));
        assert_eq!(e.values["co2"], 1200.0);
        assert_eq!(e.resolved_values.as_ref().unwrap()["co2"], 900.0);
        assert_eq!(
            e.actions,
            [
                "open a warning alert on room-1",
                r#"merge {"fan":"high"} into the desired twin of room-1"#
            ]
        );
        assert_eq!(
            e.resolve_actions,
            [r#"merge {"fan":"auto"} into the desired twin of room-1"#]
        );
        // Still holding at the end of the range: opened, not resolved.
        let got = replay_points(
            &r,
            &Eval::default(),
            &device(),
            &points([(0, 1200.0)]),
            60_000,
        );
        assert_eq!(got.episodes[0].opened_ms, 10_000);
        assert_eq!(got.episodes[0].resolved_ms, None);
        // The range ends before `for` is up: nothing.
        let got = replay_points(
            &r,
            &Eval::default(),
            &device(),
            &points([(0, 1200.0)]),
            5_000,
        );
        assert!(got.episodes.is_empty());
    }

    #[test]
    fn a_replay_reads_each_points_own_time_of_day_in_the_zone() {
        // Pre-heat on weekdays from 05:00 local time while the room is cold.
        let r = compile(test_rule(
            "weekday <= 5 && hour >= 5 && hour < 7 && temp < 19.0",
            Some("hour >= 7 || temp >= 21.0"),
            0,
        ))
        .unwrap();
        // Monday 2026-12-07 00:00 UTC, one cold point an hour for a day.
        let monday = 1_796_601_600_000;
        let temps: Vec<Point> = (0..24)
            .map(|h| Point {
                device: DeviceId::parse("room-1").unwrap(),
                metric: "temp".into(),
                ts_ms: monday + h * 3_600_000,
                value: 17.0,
            })
            .collect();
        let end = monday + 86_400_000;
        let utc = replay_points(&r, &Eval::default(), &device(), &temps, end);
        let hours = |e: &Episode| {
            (
                (e.opened_ms - monday) / 3_600_000,
                e.resolved_ms.map(|t| (t - monday) / 3_600_000),
            )
        };
        assert_eq!(
            utc.episodes.iter().map(hours).collect::<Vec<_>>(),
            [(5, Some(7))]
        );
        let berlin = Eval::new(RuleClock::parse("Europe/Berlin").unwrap());
        let local = replay_points(&r, &berlin, &device(), &temps, end);
        assert_eq!(
            local.episodes.iter().map(hours).collect::<Vec<_>>(),
            [(4, Some(6))],
            "05:00 in Berlin is 04:00 UTC in winter"
        );
        // Sunday: no pre-heat.
        let sunday: Vec<Point> = temps
            .iter()
            .map(|p| Point {
                ts_ms: p.ts_ms - 86_400_000,
                ..p.clone()
            })
            .collect();
        let got = replay_points(&r, &Eval::default(), &device(), &sunday, monday);
        assert!(got.episodes.is_empty(), "{got:?}");
    }

    #[test]
    fn bounds_name_the_limits() {
        let l = ReplayLimits {
            max_devices: 2,
            max_range_ms: 3_600_000,
        };
        assert!(check_bounds(&l, 0, 3_600_000, 2).is_ok());
        let range = check_bounds(&l, 0, 3_600_001, 1).unwrap_err().to_string();
        assert!(range.contains("rules.replay_max_range"), "{range}");
        let devices = check_bounds(&l, 0, 1, 3).unwrap_err().to_string();
        assert!(devices.contains("rules.replay_max_devices"), "{devices}");
        assert!(check_bounds(&l, 5, 5, 1).is_err());
    }

    /// The brief's target: 24 h of one 1 Hz series replayed in at most 1 s (printed; run with
    /// `--release` for the figure in BENCHMARKS.md).
    #[test]
    fn replaying_a_day_of_one_hertz_is_measured() {
        let r = compile(test_rule(r#"avg("co2", "10m") > 1000.0"#, None, 60_000)).unwrap();
        let day = points((0..86_400).map(|i| {
            let v = if (i / 3_600) % 2 == 0 { 900.0 } else { 1_100.0 };
            (i * 1_000, v)
        }));
        let started = Instant::now();
        let got = replay_points(&r, &Eval::default(), &device(), &day, 86_400_000);
        let took = started.elapsed();
        println!(
            "replay: 86400 points (24 h at 1 Hz) through avg(co2, 10m) in {took:?} ({} episodes)",
            got.episodes.len()
        );
        assert_eq!(got.points, 86_400);
        assert_eq!(got.episodes.len(), 12, "one per hour above 1000");
    }
}
