//! `sentio-bench energy`: what the demo's rules save. The simulated fleet runs over simulated
//! hours twice from the same seed, once left alone and once with the demo rules
//! ([`sentio::demo_rules`]) judged on every reading by the live node's own state machine
//! (`sentio_pipeline::rules`: [`compile`], [`RuleState::add`], [`RuleState::judge`] and, as the
//! detect stage's tick, [`RuleState::due`]); when a rule's alert opens its actions, and when it
//! resolves on the data its `on_resolve` actions, are applied to the simulated devices as the
//! node would send them (a desired twin merged and sent whole,
//! a command). Energy is the devices' own `power_w` telemetry integrated over time; comfort is
//! counted where a room is occupied: dark (below [`DARK_LUX`]) or cold (below [`COLD_C`]).
//! Runs in seconds, not in real time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use sentio_core::twin::merge_patch;
use sentio_core::{DeviceId, Point, RuleAction, Twin};
use sentio_pipeline::rules::{
    CompiledRule, Eval, RuleState, RuleVars, Step, compile, device_value, twin_value,
};
use sentio_sim::{Fleet, FleetSpec, SimDevice};

/// An occupied room darker than this (lux) counts as dark (offices want 500).
pub const DARK_LUX: f64 = 300.0;
/// An occupied room colder than this (°C) counts as cold (the comfort set-points are 21-22.5).
pub const COLD_C: f64 = 20.0;

/// What one run used and cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyRun {
    /// Energy by device kind (Wh), from `power_w`.
    pub wh_by_kind: BTreeMap<String, f64>,
    /// Room-minutes with someone in.
    pub occupied_min: f64,
    /// Of those, minutes below [`DARK_LUX`].
    pub dark_min: f64,
    /// Of those, minutes below [`COLD_C`].
    pub cold_min: f64,
    /// Times each rule's alert opened (its actions ran).
    pub fired: BTreeMap<String, u64>,
    /// Times each rule's alert resolved on the data (its `on_resolve` actions ran).
    pub resolved: BTreeMap<String, u64>,
    /// Actions the devices refused (a bad value: a rule's mistake).
    pub refused: u64,
}

impl EnergyRun {
    /// Total energy (Wh).
    pub fn total_wh(&self) -> f64 {
        self.wh_by_kind.values().sum()
    }
}

/// The two runs.
#[derive(Debug, Clone)]
pub struct EnergyComparison {
    /// Start of the simulated span (ms).
    pub start_ms: i64,
    /// Simulated hours.
    pub hours: f64,
    /// Seconds between two readings.
    pub step_s: f64,
    /// The fleet left alone.
    pub without: EnergyRun,
    /// The fleet under the demo rules.
    pub with: EnergyRun,
    /// Wall time of both runs (s).
    pub took_s: f64,
}

/// Saving of `with` against `without` in percent.
pub fn saved_pct(without: f64, with: f64) -> f64 {
    if without > 0.0 {
        100.0 * (without - with) / without
    } else {
        0.0
    }
}

/// One device as the rules see it: its twin and what a rule reads of it.
struct Ruled {
    id: DeviceId,
    twin: Twin,
    vars: RuleVars,
}

impl Ruled {
    fn refresh(&mut self, info: &SimDevice, fleet: &Fleet) {
        self.twin.reported = fleet.reported(&info.id).unwrap_or_default();
        self.vars = RuleVars {
            device: device_value(&info.kind, &info.labels),
            twin: twin_value(&self.twin),
        };
    }
}

/// Runs `spec` from `start_ms` for `hours` at one reading per device every `step_ms`, under
/// `rules` (none: left alone).
pub fn simulate(
    spec: FleetSpec,
    start_ms: i64,
    hours: f64,
    step_ms: i64,
    rules: &[CompiledRule],
) -> anyhow::Result<EnergyRun> {
    let mut fleet = Fleet::new(spec, start_ms);
    let infos: Vec<SimDevice> = fleet.devices().cloned().collect();
    let mut devices = Vec::with_capacity(infos.len());
    for info in &infos {
        let mut d = Ruled {
            id: DeviceId::parse(&info.id)?,
            twin: Twin::empty(),
            vars: RuleVars {
                device: device_value(&info.kind, &info.labels),
                twin: twin_value(&Twin::empty()),
            },
        };
        d.refresh(info, &fleet);
        devices.push(d);
    }
    let eval = Eval::default();
    let mut states: HashMap<(usize, usize), RuleState> = HashMap::new();
    let mut run = EnergyRun::default();
    let step_h = step_ms as f64 / 3_600_000.0;
    let end_ms = start_ms + (hours * 3_600_000.0) as i64;
    let mut metric_names: HashMap<String, Arc<str>> = HashMap::new();

    let mut ts = start_ms;
    while ts < end_ms {
        // The tick: a `for` timer that ran out between two readings opens its alert.
        let mut due = Vec::new();
        for (&(r, d), state) in &mut states {
            if state.due(&rules[r], ts).is_some() {
                due.push((r, d));
            }
        }
        due.sort_unstable();
        for (r, d) in due {
            *run.fired.entry(rules[r].rule.id.to_string()).or_default() += 1;
            let actions = &rules[r].rule.actions;
            act(actions, d, &infos, &mut devices, &mut fleet, &mut run);
        }

        // One reading per device, in the fleet's order.
        for (d, reading) in fleet.step(ts).into_iter().enumerate() {
            account(&mut run, &infos[d].kind, &reading, step_h);
            for (r, rule) in rules.iter().enumerate() {
                let info = &infos[d];
                if !rule
                    .rule
                    .selector
                    .selects(&devices[d].id, &info.kind, &info.labels)
                {
                    continue;
                }
                for (metric, value) in &reading.values {
                    if !rule.reads(metric) {
                        continue;
                    }
                    let metric = metric_names
                        .entry(metric.clone())
                        .or_insert_with(|| Arc::from(metric.as_str()))
                        .clone();
                    let point = Point {
                        device: devices[d].id.clone(),
                        metric,
                        ts_ms: ts,
                        value: *value,
                    };
                    let state = states.entry((r, d)).or_default();
                    state.add(rule, &point);
                    let was_open = state.is_open();
                    let (actions, count) = match state.judge(rule, &eval, &devices[d].vars, ts) {
                        Step::Open => (&rule.rule.actions, &mut run.fired),
                        Step::Clear if was_open => (&rule.rule.on_resolve, &mut run.resolved),
                        _ => continue,
                    };
                    *count.entry(rule.rule.id.to_string()).or_default() += 1;
                    act(actions, d, &infos, &mut devices, &mut fleet, &mut run);
                }
            }
        }
        ts += step_ms;
    }
    Ok(run)
}

/// Adds one reading's energy and comfort to the run.
fn account(run: &mut EnergyRun, kind: &str, reading: &sentio_sim::Reading, step_h: f64) {
    if let Some(w) = reading.get("power_w") {
        *run.wh_by_kind.entry(kind.to_string()).or_default() += w * step_h;
    }
    if reading.get("occupancy").is_some_and(|o| o > 0.0) {
        let minutes = step_h * 60.0;
        run.occupied_min += minutes;
        if reading.get("light").is_some_and(|l| l < DARK_LUX) {
            run.dark_min += minutes;
        }
        if reading.get("temperature").is_some_and(|t| t < COLD_C) {
            run.cold_min += minutes;
        }
    }
}

/// Carries out `actions` of a rule whose alert opened (or resolved) on device `d`, on the
/// fleet, as the node would: a desired patch is merged into the twin and the whole desired
/// document sent; a command goes to the device or to every device its `to` selects.
fn act(
    actions: &[RuleAction],
    d: usize,
    infos: &[SimDevice],
    devices: &mut [Ruled],
    fleet: &mut Fleet,
    run: &mut EnergyRun,
) {
    let mut touched = vec![d];
    for action in actions {
        match action {
            RuleAction::SetDesired { patch } => {
                let patch: serde_json::Value = serde_json::from_str(patch).unwrap_or_default();
                merge_patch(&mut devices[d].twin.desired, &patch);
                let desired = devices[d].twin.desired.clone();
                match fleet.set_desired(&infos[d].id, &desired) {
                    Ok(left_out) => run.refused += left_out.len() as u64,
                    Err(_) => run.refused += 1,
                }
            }
            RuleAction::Command {
                name, params, to, ..
            } => {
                let params: serde_json::Value = serde_json::from_str(params).unwrap_or_default();
                let targets: Vec<usize> = match to {
                    None => vec![d],
                    Some(s) => (0..infos.len())
                        .filter(|&t| s.selects(&devices[t].id, &infos[t].kind, &infos[t].labels))
                        .collect(),
                };
                for t in targets {
                    if fleet.command(&infos[t].id, name, &params).is_err() {
                        run.refused += 1;
                    }
                    touched.push(t);
                }
            }
            // An alert, a notification or an MQTT message changes no device.
            RuleAction::Alert | RuleAction::Notify { .. } | RuleAction::Publish { .. } => {}
        }
    }
    for t in touched {
        devices[t].refresh(&infos[t], fleet);
    }
}

/// Both runs: the fleet left alone, then under the demo rules.
pub fn compare(
    spec: FleetSpec,
    start_ms: i64,
    hours: f64,
    step_ms: i64,
) -> anyhow::Result<EnergyComparison> {
    let rules = sentio::demo_rules::demo_rules()
        .into_iter()
        .map(|r| compile(r).map_err(|e| anyhow::anyhow!("a demo rule does not compile: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let began = Instant::now();
    let without = simulate(spec, start_ms, hours, step_ms, &[])?;
    let with = simulate(spec, start_ms, hours, step_ms, &rules)?;
    Ok(EnergyComparison {
        start_ms,
        hours,
        step_s: step_ms as f64 / 1000.0,
        without,
        with,
        took_s: began.elapsed().as_secs_f64(),
    })
}

/// Arguments of `sentio-bench energy`.
#[derive(Debug, clap::Args)]
pub struct EnergyArgs {
    /// Simulated hours.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Start (ms or RFC 3339; default Monday 2026-11-23 00:00 UTC, so a working day).
    #[arg(long, default_value = "2026-11-23T00:00:00Z")]
    pub start: String,
    /// Seconds between two readings of a device (the live fleet: 1).
    #[arg(long, default_value_t = 1)]
    pub step: u32,
    /// Fleet seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs both and prints energy per kind and in total, the saving and the comfort cost.
pub fn run(args: EnergyArgs) -> anyhow::Result<()> {
    let spec = FleetSpec {
        seed: args.seed,
        ..FleetSpec::demo()
    };
    let start = sentio_core::time::parse_time(&args.start)?;
    anyhow::ensure!(args.step > 0, "--step must be at least 1 s");
    anyhow::ensure!(args.hours > 0.0, "--hours must be above 0");
    let c = compare(spec, start, args.hours, i64::from(args.step) * 1000)?;
    println!(
        "demo fleet energy: {} devices, {:.1} simulated hours from {}, a reading per device every {} s, seed {}",
        spec.device_count(),
        c.hours,
        sentio_core::time::format_time(c.start_ms),
        c.step_s,
        spec.seed
    );
    println!(
        "{:<8} {:>14} {:>14} {:>8}",
        "kind", "rules off kWh", "rules on kWh", "saved"
    );
    let kinds: Vec<&String> = c.without.wh_by_kind.keys().collect();
    for kind in kinds {
        let off = c.without.wh_by_kind[kind] / 1000.0;
        let on = c.with.wh_by_kind.get(kind).copied().unwrap_or(0.0) / 1000.0;
        println!(
            "{kind:<8} {off:>14.2} {on:>14.2} {:>7.1}%",
            saved_pct(off, on)
        );
    }
    let (off, on) = (c.without.total_wh() / 1000.0, c.with.total_wh() / 1000.0);
    println!(
        "{:<8} {off:>14.2} {on:>14.2} {:>7.1}%",
        "total",
        saved_pct(off, on)
    );
    println!(
        "comfort (room-minutes occupied: {:.0} off, {:.0} on): dark (< {DARK_LUX} lux) {:.1} off, {:.1} on; cold (< {COLD_C} °C) {:.1} off, {:.1} on",
        c.without.occupied_min,
        c.with.occupied_min,
        c.without.dark_min,
        c.with.dark_min,
        c.without.cold_min,
        c.with.cold_min
    );
    let fired: Vec<String> = c
        .with
        .fired
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect();
    let resolved: Vec<String> = c
        .with
        .resolved
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect();
    println!(
        "rules fired: {}; resolved (on_resolve ran): {}; actions refused by a device: {}",
        fired.join(", "),
        resolved.join(", "),
        c.with.refused
    );
    println!("took {:.1} s for both runs", c.took_s);
    Ok(())
}
