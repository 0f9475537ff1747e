//! Fleet-level tests: determinism, healthy ranges, fault visibility and the fault schedule.

use std::collections::HashMap;

use crate::{Fault, FaultKind, Fleet, FleetSpec, Reading};

/// Monday 2024-01-01 10:00 UTC (office hours).
const MONDAY_10H: i64 = 1_704_103_200_000;

/// Simulates `seconds` at `step_s` from `start`; returns readings keyed by device then metric.
fn simulate(fleet: &mut Fleet, start: i64, seconds: i64, step_s: i64) -> Vec<Vec<Reading>> {
    (0..=seconds / step_s)
        .map(|i| fleet.step(start + i * step_s * 1000))
        .collect()
}

/// `(ts, value)` of one device metric.
fn series(ticks: &[Vec<Reading>], device: &str, metric: &str) -> Vec<(i64, f64)> {
    ticks
        .iter()
        .flat_map(|t| t.iter())
        .filter(|r| r.device == device)
        .map(|r| (r.ts_ms, r.get(metric).expect("metric exists")))
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn window(s: &[(i64, f64)], from: i64, to: i64) -> Vec<f64> {
    s.iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, v)| *v)
        .collect()
}

#[test]
fn same_seed_same_values_other_seed_other_values() {
    let spec = FleetSpec::demo();
    let mut a = Fleet::new(spec, MONDAY_10H);
    let mut b = Fleet::new(spec, MONDAY_10H);
    let ra = simulate(&mut a, MONDAY_10H, 1800, 1);
    let rb = simulate(&mut b, MONDAY_10H, 1800, 1);
    assert_eq!(ra, rb);
    assert_eq!(a.ground_truth(), b.ground_truth());

    let mut c = Fleet::new(FleetSpec { seed: 7, ..spec }, MONDAY_10H);
    let rc = simulate(&mut c, MONDAY_10H, 1800, 1);
    assert_ne!(ra, rc);
    assert_ne!(a.ground_truth(), c.ground_truth());
}

#[test]
fn adding_devices_does_not_change_existing_ones() {
    let small = FleetSpec {
        seed: 5,
        rooms: 1,
        pumps: 1,
        wearables: 1,
    };
    let big = FleetSpec { rooms: 3, ..small };
    let ra = simulate(&mut Fleet::new(small, MONDAY_10H), MONDAY_10H, 30, 1);
    let rb = simulate(&mut Fleet::new(big, MONDAY_10H), MONDAY_10H, 30, 1);
    // room-1 is generated from its own stream; faults differ later, but not in the first 30 s.
    assert_eq!(series(&ra, "room-1", "co2"), series(&rb, "room-1", "co2"));
}

#[test]
fn schedule_does_not_depend_on_step_size() {
    let spec = FleetSpec::demo();
    let mut fine = Fleet::new(spec, MONDAY_10H);
    let mut coarse = Fleet::new(spec, MONDAY_10H);
    simulate(&mut fine, MONDAY_10H, 7200, 1);
    simulate(&mut coarse, MONDAY_10H, 7200, 60);
    assert_eq!(fine.ground_truth(), coarse.ground_truth());
}

#[test]
fn readings_have_sensor_precision_and_all_metrics() {
    let mut fleet = Fleet::new(FleetSpec::demo(), MONDAY_10H);
    let ticks = simulate(&mut fleet, MONDAY_10H, 120, 1);
    for r in ticks.iter().flatten() {
        let kind = r.device.split('-').next().unwrap();
        let expected: &[&str] = match kind {
            "room" => &[
                "temperature",
                "humidity",
                "co2",
                "light",
                "occupancy",
                "power_w",
            ],
            "pump" => &["vibration_rms", "motor_current", "bearing_temp", "power_w"],
            _ => &["heart_rate", "activity"],
        };
        let names: Vec<&str> = r.values.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, expected);
        for (m, v) in &r.values {
            let step = match m.as_str() {
                "temperature" | "vibration_rms" | "motor_current" => 0.01,
                "humidity" | "bearing_temp" => 0.1,
                _ => 1.0,
            };
            let scaled = v / step;
            assert!(
                (scaled - scaled.round()).abs() < 1e-6,
                "{m}={v} not at {step}"
            );
        }
        let json = r.to_json();
        assert_eq!(json["ts"], r.ts_ms);
        assert_eq!(json.as_object().unwrap().len(), expected.len() + 1);
    }
}

fn healthy_range(metric: &str) -> (f64, f64) {
    match metric {
        "temperature" => (15.0, 30.0),
        "humidity" => (20.0, 70.0),
        "co2" => (380.0, 2000.0),
        "light" => (0.0, 1500.0),
        "occupancy" => (0.0, 12.0),
        "vibration_rms" => (0.5, 5.0),
        "motor_current" => (8.0, 17.0),
        "bearing_temp" => (30.0, 60.0),
        "heart_rate" => (40.0, 200.0),
        "activity" => (0.0, 200.0),
        // A room's lights and heat pump (about 0.3-2 kW), a pump's motor (about 5-10 kW).
        "power_w" => (250.0, 11_000.0),
        other => panic!("unknown metric {other}"),
    }
}

#[test]
fn healthy_values_stay_in_physical_ranges_over_two_days() {
    // Two days from Friday 00:00 UTC at 10 s: nights, office hours and a weekend.
    let start = MONDAY_10H + 4 * 86_400_000 - 10 * 3_600_000;
    let mut fleet = Fleet::new(
        FleetSpec {
            seed: 11,
            ..FleetSpec::demo()
        },
        start,
    );
    let ticks = simulate(&mut fleet, start, 2 * 86_400, 10);
    let truth = fleet.ground_truth();
    let mut checked = 0;
    for r in ticks.iter().flatten() {
        let device_truth: Vec<&Fault> = truth
            .iter()
            .filter(|f| f.device == r.device && f.contains(r.ts_ms))
            .collect();
        for (m, v) in &r.values {
            let faulty = device_truth.iter().any(|f| &f.metric == m);
            if faulty {
                continue;
            }
            let (lo, hi) = healthy_range(m);
            assert!(
                (lo..=hi).contains(v),
                "{} {m}={v} outside [{lo}, {hi}] at {}",
                r.device,
                r.ts_ms
            );
            checked += 1;
        }
    }
    assert!(checked > 500_000, "{checked}");
}

#[test]
fn first_faults_start_within_90_seconds_then_recur() {
    let start = MONDAY_10H;
    let fleet = Fleet::new(FleetSpec::demo(), start);
    let truth = fleet.ground_truth();
    let early: Vec<&Fault> = truth
        .iter()
        .filter(|f| f.start_ms <= start + 90_000)
        .collect();
    for (prefix, kind) in [
        ("room-", FaultKind::LevelShift),
        ("pump-", FaultKind::BearingFault),
        ("wearable-", FaultKind::IrregularRhythm),
    ] {
        assert!(
            early
                .iter()
                .any(|f| f.device.starts_with(prefix) && f.kind == kind),
            "no early {kind} on a {prefix} device: {early:?}"
        );
    }
    assert!(truth.iter().all(|f| f.start_ms >= start + 60_000));
    // The openers end within ~5 minutes, so a demo shows them come and go.
    assert!(
        early.iter().all(|f| f.end_ms <= start + 300_000),
        "{early:?}"
    );

    // Recurring: a fault starts every 1-3 minutes during the first hour, each 20 s to 6 min long.
    let mut starts: Vec<i64> = truth
        .iter()
        .filter(|f| f.start_ms < start + 3_600_000)
        .map(|f| f.start_ms)
        .collect();
    starts.dedup();
    assert!(
        starts.len() >= 20,
        "{} fault episodes in an hour",
        starts.len()
    );
    for w in starts.windows(2) {
        assert!(w[1] - w[0] <= 240_000, "gap {} ms", w[1] - w[0]);
    }
    for f in &truth {
        let d = f.end_ms - f.start_ms;
        assert!((20_000..=360_000).contains(&d), "{f:?}");
    }
    // Every kind occurs somewhere in the first hours.
    let kinds: std::collections::HashSet<FaultKind> = truth.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
}

#[test]
fn a_fleet_of_one_kind_still_faults_early() {
    let spec = FleetSpec {
        seed: 3,
        rooms: 0,
        pumps: 0,
        wearables: 2,
    };
    let truth = Fleet::new(spec, MONDAY_10H).ground_truth();
    assert_eq!(truth[0].start_ms, MONDAY_10H + 60_000);
    assert_eq!(truth[0].kind, FaultKind::IrregularRhythm);
    assert!(
        Fleet::new(
            FleetSpec {
                seed: 1,
                rooms: 0,
                pumps: 0,
                wearables: 0
            },
            0
        )
        .ground_truth()
        .is_empty()
    );
}

#[test]
fn ground_truth_serialises_as_documented() {
    let truth = Fleet::new(FleetSpec::demo(), MONDAY_10H).ground_truth();
    let line = serde_json::to_string(&truth[0]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5);
    for k in ["device", "metric", "start_ms", "end_ms", "kind"] {
        assert!(v.get(k).is_some(), "{k} missing in {line}");
    }
    assert!(
        ["level_shift", "bearing_fault", "irregular_rhythm"].contains(&v["kind"].as_str().unwrap())
    );
    let back: Fault = serde_json::from_str(&line).unwrap();
    assert_eq!(back, truth[0]);
}

/// Checks one fault is visible against the minute before it (a fault-free minute for the device).
fn assert_visible(f: &Fault, s: &[(i64, f64)]) {
    let before = window(s, f.start_ms - 60_000, f.start_ms);
    let during = window(s, f.start_ms, f.end_ms);
    let len = during.len();
    assert!(before.len() >= 50 && len >= 15, "{f:?}");
    let tail = &during[len * 4 / 5..];
    let base = mean(&before);
    let shift_threshold = match f.metric.as_str() {
        "temperature" => 2.0,
        "humidity" => 5.0,
        "co2" => 150.0,
        "vibration_rms" => 3.0,
        "motor_current" => 0.5,
        "bearing_temp" => 3.0,
        "heart_rate" => 30.0,
        other => panic!("unexpected faulty metric {other}"),
    };
    match f.kind {
        FaultKind::Spike | FaultKind::LevelShift => {
            let d = (mean(&during) - base).abs();
            assert!(d > shift_threshold, "{f:?}: shift {d}");
        }
        FaultKind::Drift => {
            let d = (mean(tail) - base).abs();
            assert!(d > shift_threshold, "{f:?}: drift {d}");
        }
        FaultKind::Stuck => {
            assert!(during.iter().all(|v| *v == during[0]), "{f:?}: not flat");
            assert!(before.iter().any(|v| *v != before[0]), "{f:?}: flat before");
        }
        FaultKind::BearingFault => {
            let rise = mean(tail) - base;
            let needed = match f.metric.as_str() {
                "vibration_rms" => 4.0,
                "bearing_temp" => 10.0,
                other => panic!("bearing fault listed on {other}"),
            };
            assert!(rise > needed, "{f:?}: rise {rise}");
            // Progressive: the first fifth barely moved compared with the end.
            let head = mean(&during[..len / 5]) - base;
            assert!(head < rise / 4.0, "{f:?}: head {head} vs rise {rise}");
        }
        FaultKind::IrregularRhythm => {
            let jumps = |v: &[f64]| {
                mean(
                    &v.windows(2)
                        .map(|w| (w[1] - w[0]).abs())
                        .collect::<Vec<_>>(),
                )
            };
            let (jb, jd) = (jumps(&before), jumps(&during));
            assert!(jd > 10.0 && jd > 4.0 * jb, "{f:?}: jumps {jd} vs {jb}");
        }
    }
}

#[test]
fn every_fault_is_visible_in_its_window() {
    for seed in [42, 1, 2] {
        let start = MONDAY_10H;
        let spec = FleetSpec {
            seed,
            ..FleetSpec::demo()
        };
        let mut fleet = Fleet::new(spec, start);
        let horizon_s = 3 * 3600;
        let ticks = simulate(&mut fleet, start, horizon_s, 1);
        let mut cache: HashMap<(String, String), Vec<(i64, f64)>> = HashMap::new();
        let mut checked = 0;
        for f in fleet
            .ground_truth()
            .iter()
            .filter(|f| f.end_ms <= start + horizon_s * 1000)
        {
            let s = cache
                .entry((f.device.clone(), f.metric.clone()))
                .or_insert_with(|| series(&ticks, &f.device, &f.metric));
            assert_visible(f, s);
            checked += 1;
        }
        assert!(checked >= 60, "seed {seed}: {checked} faults checked");
    }
}

#[test]
fn values_return_to_normal_after_a_fault() {
    let start = MONDAY_10H;
    let mut fleet = Fleet::new(FleetSpec::demo(), start);
    let ticks = simulate(&mut fleet, start, 1800, 1);
    let truth = fleet.ground_truth();
    let bearing = truth
        .iter()
        .find(|f| f.kind == FaultKind::BearingFault && f.metric == "vibration_rms")
        .unwrap();
    let s = series(&ticks, &bearing.device, "vibration_rms");
    let before = mean(&window(&s, bearing.start_ms - 60_000, bearing.start_ms));
    let after = mean(&window(&s, bearing.end_ms, bearing.end_ms + 30_000));
    assert!((after - before).abs() < 0.5, "{before} -> {after}");
}

#[test]
fn active_and_starting_faults_agree_with_the_ground_truth() {
    let start = MONDAY_10H;
    let fleet = Fleet::new(FleetSpec::demo(), start);
    let truth = fleet.ground_truth();
    let mut starts: Vec<i64> = truth
        .windows(2)
        .map(|w| w[1].start_ms - w[0].start_ms)
        .collect();
    starts.retain(|d| *d >= 0);
    assert_eq!(
        starts.len(),
        truth.len() - 1,
        "ground truth sorted by start"
    );
    for ts in (start..start + 3_600_000).step_by(7_000) {
        let expected: Vec<Fault> = truth.iter().filter(|f| f.contains(ts)).cloned().collect();
        assert_eq!(fleet.active_faults(ts), expected, "at {ts}");
        let starting: Vec<Fault> = truth
            .iter()
            .filter(|f| f.start_ms >= ts && f.start_ms < ts + 7_000)
            .cloned()
            .collect();
        assert_eq!(fleet.faults_starting(ts, ts + 7_000), starting);
    }
    assert!(!fleet.active_faults(start + 75_000).is_empty());
}

#[test]
fn the_opening_bearing_fault_is_clear_within_a_minute() {
    let start = MONDAY_10H;
    let mut fleet = Fleet::new(FleetSpec::demo(), start);
    let ticks = simulate(&mut fleet, start, 600, 1);
    let f = fleet
        .ground_truth()
        .into_iter()
        .find(|f| f.kind == FaultKind::BearingFault && f.metric == "vibration_rms")
        .unwrap();
    let s = series(&ticks, &f.device, "vibration_rms");
    let before = window(&s, f.start_ms - 60_000, f.start_ms);
    let sd = (before
        .iter()
        .map(|v| (v - mean(&before)).powi(2))
        .sum::<f64>()
        / before.len() as f64)
        .sqrt();
    let at_one_minute = mean(&window(&s, f.start_ms + 50_000, f.start_ms + 60_000));
    assert!(
        at_one_minute > mean(&before) + 5.0 * sd,
        "{at_one_minute} vs {} ± {sd}",
        mean(&before)
    );
}

/// Mean of `metric` of `device` over readings.
fn mean_of(ticks: &[Vec<Reading>], device: &str, metric: &str) -> f64 {
    let v: Vec<f64> = series(ticks, device, metric).iter().map(|p| p.1).collect();
    mean(&v)
}

#[test]
fn a_room_obeys_lights_and_setback_and_its_power_follows() {
    use serde_json::json;
    // Two copies of the same fleet at 10:00 on a Monday; only one is given orders.
    let spec = FleetSpec::demo();
    let (mut left, mut ruled) = (Fleet::new(spec, MONDAY_10H), Fleet::new(spec, MONDAY_10H));
    let warm_up = simulate(&mut left, MONDAY_10H, 60, 1);
    assert_eq!(warm_up, simulate(&mut ruled, MONDAY_10H, 60, 1));
    assert_eq!(
        ruled.reported("room-1").unwrap(),
        json!({"lights": "auto", "hvac_mode": "schedule", "hvac_setpoint": ruled.reported("room-1").unwrap()["hvac_setpoint"], "ventilation": "auto"})
    );

    ruled
        .command("room-1", "lights", &json!({"value": "off"}))
        .unwrap();
    let refused = ruled
        .set_desired("room-1", &json!({"hvac_mode": "setback", "color": "red"}))
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let reported = ruled.reported("room-1").unwrap();
    assert_eq!(
        (reported["lights"].as_str(), reported["hvac_mode"].as_str()),
        (Some("off"), Some("setback"))
    );

    let from = MONDAY_10H + 61_000;
    let base = simulate(&mut left, from, 3_600, 10);
    let after = simulate(&mut ruled, from, 3_600, 10);
    // Lights off: 400 lux less; a setback: the room cools by about the set-points' gap.
    let dark = mean_of(&base, "room-1", "light") - mean_of(&after, "room-1", "light");
    assert!((300.0..500.0).contains(&dark), "light fell by {dark} lux");
    let last = |t: &[Vec<Reading>]| t.last().unwrap()[0].get("temperature").unwrap();
    let cooler = last(&base) - last(&after);
    assert!(cooler > 1.5, "the room cooled by {cooler} °C in an hour");
    let saved = mean_of(&base, "room-1", "power_w") - mean_of(&after, "room-1", "power_w");
    assert!(saved > 400.0, "power fell by {saved} W");
    // The other rooms were not touched.
    assert_eq!(
        series(&base, "room-2", "power_w"),
        series(&after, "room-2", "power_w")
    );
}

#[test]
fn orders_are_checked_whole_and_a_pump_obeys_its_speed() {
    use serde_json::json;
    let mut fleet = Fleet::new(FleetSpec::demo(), MONDAY_10H);
    let before = fleet.reported("room-1").unwrap();
    for (device, name, params, why) in [
        (
            "room-1",
            "lights",
            json!({"value": "dim"}),
            "lights must be one of auto, on, off",
        ),
        (
            "room-1",
            "lights",
            json!("off"),
            "lights takes params {\"value\": ...}",
        ),
        ("room-1", "reboot", json!({}), "unknown command \"reboot\""),
        (
            "room-1",
            "hvac_setpoint",
            json!({"value": 40}),
            "hvac_setpoint must be a number from 16 to 26",
        ),
        (
            "wearable-1",
            "lights",
            json!({"value": "on"}),
            "unknown command",
        ),
        ("nobody", "lights", json!({"value": "on"}), "no device"),
    ] {
        let got = fleet.command(device, name, &params).unwrap_err();
        assert!(got.starts_with(why), "{device} {name}: {got}");
    }
    assert_eq!(fleet.reported("room-1").unwrap(), before, "unchanged");
    assert!(fleet.set_desired("room-1", &json!([1])).is_err());
    assert_eq!(fleet.reported("wearable-1"), Some(json!({})));

    let full = simulate(&mut fleet, MONDAY_10H, 120, 1);
    fleet
        .command("pump-1", "speed", &json!({"value": 50}))
        .unwrap();
    assert_eq!(fleet.reported("pump-1").unwrap(), json!({"speed": 50}));
    let half = simulate(&mut fleet, MONDAY_10H + 121_000, 600, 1);
    let ratio = mean_of(&half, "pump-1", "power_w") / mean_of(&full, "pump-1", "power_w");
    assert!(
        (0.2..0.3).contains(&ratio),
        "half speed draws {ratio} of full power"
    );
    fleet.command("pump-1", "stop", &json!(null)).unwrap();
    let stopped = simulate(&mut fleet, MONDAY_10H + 722_000, 60, 1);
    assert!(mean_of(&stopped, "pump-1", "power_w") < 100.0);
    fleet.command("pump-1", "start", &json!({})).unwrap();
    assert_eq!(fleet.reported("pump-1").unwrap(), json!({"speed": 100}));
}
