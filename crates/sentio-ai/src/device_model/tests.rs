//! Unit tests of the device model: persistent steps, joint shifts, regimes, constant metrics,
//! row alignment, late metrics and saved state.

use super::*;

use crate::test_noise::Noise;

const STEP_MS: i64 = 10_000;

/// Feeds whole rows; returns the verdicts.
fn feed(
    model: &mut DeviceModel,
    cfg: &DeviceModelConfig,
    start: usize,
    rows: &[Vec<(&str, f64)>],
) -> Vec<DeviceVerdict> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| model.update_row(cfg, (start + i) as i64 * STEP_MS, r.iter().copied()))
        .collect()
}

/// A machine whose three metrics follow one load: temperature, current, vibration.
fn machine(noise: &mut Noise, t: usize, shift: f64) -> Vec<(&'static str, f64)> {
    let load = 50.0 + 10.0 * (t as f64 / 8.0).sin() + noise.normal();
    vec![
        ("temp", 20.0 + 0.5 * load + 0.3 * noise.normal() + shift),
        ("current", 2.0 + 0.1 * load + 0.05 * noise.normal()),
        ("vibration", 0.5 + 0.02 * load + 0.02 * noise.normal()),
    ]
}

fn opened(v: &[DeviceVerdict]) -> usize {
    v.iter()
        .filter(|v| v.events.contains(&DeviceEvent::Opened))
        .count()
}

#[test]
fn a_step_lasting_an_hour_is_one_alarm_that_resolves_when_it_ends() {
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(7);
    let mut model = DeviceModel::new();
    let normal: Vec<_> = (0..400).map(|t| machine(&mut n, t, 0.0)).collect();
    let before = feed(&mut model, &cfg, 0, &normal);
    assert_eq!(model.regimes(), 1);
    assert_eq!(opened(&before), 0, "false alarm on normal rows");
    // 5 spreads of the temperature's noise, for an hour of 10 s rows.
    let step: Vec<_> = (400..760).map(|t| machine(&mut n, t, 2.5)).collect();
    let during = feed(&mut model, &cfg, 400, &step);
    assert_eq!(opened(&during), 1, "one alarm for the whole step");
    let held = during.iter().filter(|v| v.alert).count();
    assert!(held >= 340, "alarm held on {held} of 360 rows");
    assert!(during.last().unwrap().alert, "still open at the step's end");
    let contributions = model.explain();
    assert_eq!(contributions[0].metric, "temp", "{contributions:?}");
    assert!(contributions[0].share > 0.5 && contributions[0].sigma > 2.0);
    assert!((contributions[0].expected - (contributions[0].observed - 2.5)).abs() < 1.0);
    let after: Vec<_> = (760..1000).map(|t| machine(&mut n, t, 0.0)).collect();
    let after = feed(&mut model, &cfg, 760, &after);
    let resolved = after
        .iter()
        .position(|v| v.events.contains(&DeviceEvent::Resolved))
        .expect("resolved after the step");
    assert!(resolved <= 30, "resolved {resolved} rows after the end");
    assert_eq!(opened(&after), 0);
    assert!(!model.alert_open());
}

#[test]
fn two_correlated_metrics_moving_apart_within_their_ranges_are_caught() {
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(11);
    let mut model = DeviceModel::new();
    let pair = |n: &mut Noise, t: usize, gap: f64| {
        let flow = 10.0 * (t as f64 / 6.0).sin();
        vec![
            ("flow", flow + 0.3 * n.normal()),
            ("pressure", 0.5 * flow + 0.15 * n.normal() + gap),
        ]
    };
    let normal: Vec<_> = (0..400).map(|t| pair(&mut n, t, 0.0)).collect();
    assert_eq!(opened(&feed(&mut model, &cfg, 0, &normal)), 0);
    // Pressure 2 units off its relation: well inside its own range of ±5.
    let apart: Vec<_> = (400..500).map(|t| pair(&mut n, t, 2.0)).collect();
    for (_, v) in apart
        .iter()
        .flat_map(|r| r.iter())
        .filter(|(m, _)| *m == "pressure")
    {
        assert!(v.abs() < 7.5);
    }
    let verdicts = feed(&mut model, &cfg, 400, &apart);
    assert_eq!(opened(&verdicts), 1);
    assert!(verdicts.iter().filter(|v| v.alert).count() >= 90);
    let names: Vec<_> = model.explain().into_iter().map(|c| c.metric).collect();
    assert!(names[..2].contains(&"pressure".to_string()), "{names:?}");
}

fn pump(n: &mut Noise, on: bool) -> Vec<(&'static str, f64)> {
    if on {
        vec![
            ("flow", 10.0 + 0.2 * n.normal()),
            ("pressure", 5.0 + 0.1 * n.normal()),
            ("power", 3.0 + 0.05 * n.normal()),
        ]
    } else {
        vec![
            ("flow", 0.05 * n.normal().abs()),
            ("pressure", 0.2 + 0.05 * n.normal()),
            ("power", 0.1 + 0.01 * n.normal()),
        ]
    }
}

#[test]
fn a_pump_alternating_between_learnt_regimes_raises_nothing() {
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(3);
    // Both regimes seen while learning.
    let mut model = DeviceModel::new();
    let rows: Vec<_> = (0..2000).map(|t| pump(&mut n, (t / 30) % 2 == 0)).collect();
    let v = feed(&mut model, &cfg, 0, &rows);
    assert_eq!(opened(&v), 0, "alternating pump alarmed");

    // Only "off" while learning: "on" is new, the user says it is normal, then both are known.
    let mut model = DeviceModel::new();
    let off: Vec<_> = (0..200).map(|_| pump(&mut n, false)).collect();
    feed(&mut model, &cfg, 0, &off);
    let on: Vec<_> = (0..20).map(|_| pump(&mut n, true)).collect();
    let v = feed(&mut model, &cfg, 200, &on);
    assert_eq!(opened(&v), 1, "a regime never seen alarms");
    assert_eq!(
        model.adopt_new_normal(Adoption::User),
        DeviceEvent::NewNormal(Adoption::User)
    );
    assert!(!model.alert_open());
    let on: Vec<_> = (0..200).map(|_| pump(&mut n, true)).collect();
    let v = feed(&mut model, &cfg, 220, &on);
    assert_eq!(opened(&v), 0, "the adopted regime alarmed while learnt");
    assert!(v.iter().any(|v| v.events.contains(&DeviceEvent::Learnt {
        reason: LearnReason::NewNormal(Adoption::User),
        regimes: 2
    })));
    let rows: Vec<_> = (0..1500).map(|t| pump(&mut n, (t / 40) % 2 == 0)).collect();
    let v = feed(&mut model, &cfg, 420, &rows);
    assert_eq!(opened(&v), 0, "switching between learnt regimes alarmed");
}

#[test]
fn an_alarm_open_too_long_becomes_a_new_normal_and_says_so() {
    let cfg = DeviceModelConfig {
        adopt_after_ms: 3_600_000,
        ..DeviceModelConfig::default()
    };
    let mut n = Noise(5);
    let mut model = DeviceModel::new();
    let off: Vec<_> = (0..200).map(|_| pump(&mut n, false)).collect();
    feed(&mut model, &cfg, 0, &off);
    let on: Vec<_> = (0..1000).map(|_| pump(&mut n, true)).collect();
    let v = feed(&mut model, &cfg, 200, &on);
    assert_eq!(opened(&v), 1);
    let adopted = v
        .iter()
        .position(|v| {
            v.events
                .contains(&DeviceEvent::NewNormal(Adoption::Timeout))
        })
        .expect("adopted after an hour");
    // Opened at row ~0 of the new state; an hour is 360 rows of 10 s.
    assert!((355..=370).contains(&adopted), "{adopted}");
    assert!(v[adopted + 1..].iter().all(|v| !v.alert));
    assert_eq!(model.regimes(), 2);
}

#[test]
fn constant_and_near_constant_metrics_do_not_blow_up() {
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(13);
    let mut model = DeviceModel::new();
    let row = |n: &mut Noise, t: usize| {
        vec![
            ("setpoint", 42.0),
            ("zero", 0.0),
            ("door", if t.is_multiple_of(97) { 1.0 } else { 0.0 }),
            ("level", 1e6 + ((t / 50) % 2) as f64),
            ("temp", 21.0 + 0.2 * n.normal()),
        ]
    };
    let rows: Vec<_> = (0..2000).map(|t| row(&mut n, t)).collect();
    let v = feed(&mut model, &cfg, 0, &rows);
    assert!(v.iter().all(|v| v.score.is_finite()));
    assert_eq!(opened(&v), 0, "constant metrics alarmed");
    // The constant setpoint moving is seen, and named.
    let moved: Vec<_> = (2000..2050)
        .map(|t| {
            let mut r = row(&mut n, t);
            r[0].1 = 45.0;
            r
        })
        .collect();
    let v = feed(&mut model, &cfg, 2000, &moved);
    assert_eq!(opened(&v), 1);
    assert!(v.iter().all(|v| v.score.is_finite()));
    assert_eq!(model.explain()[0].metric, "setpoint");
}

#[test]
fn metrics_in_separate_payloads_make_one_row() {
    let cfg = DeviceModelConfig::default();
    let mut model = DeviceModel::new();
    let mut rows = 0;
    for t in 0..50i64 {
        let ts = t * 60_000;
        // The first cycle ends when `a` repeats; then each complete set is a row.
        let a = model.update(&cfg, ts, [("a", t as f64)]);
        assert_eq!(a.is_some(), t == 1, "row {t}");
        assert!(model.update(&cfg, ts + 200, [("b", 1.0)]).is_none());
        rows += usize::from(model.update(&cfg, ts + 400, [("c", 2.0)]).is_some());
    }
    assert_eq!(model.metrics(), ["a", "b", "c"]);
    assert_eq!(rows, 49);
    assert_eq!(model.rows(), 50);
}

#[test]
fn a_fast_device_is_judged_every_row_every_ms() {
    let cfg = DeviceModelConfig {
        row_every_ms: 30_000,
        ..DeviceModelConfig::default()
    };
    let mut model = DeviceModel::new();
    let mut rows = 0;
    // One payload a second for ten minutes: a row every 30 s.
    for t in 0..600i64 {
        let ts = t * 1_000;
        rows += usize::from(
            model
                .update(&cfg, ts, [("a", t as f64 % 7.0), ("b", 1.0)])
                .is_some(),
        );
    }
    assert!((19..=21).contains(&rows), "{rows} rows");
}

#[test]
fn a_metric_appearing_late_is_learnt_without_an_alarm() {
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(17);
    let mut model = DeviceModel::new();
    let rows: Vec<_> = (0..300).map(|t| machine(&mut n, t, 0.0)).collect();
    feed(&mut model, &cfg, 0, &rows);
    let rows: Vec<_> = (300..800)
        .map(|t| {
            let mut r = machine(&mut n, t, 0.0);
            r.push(("humidity", 40.0 + n.normal()));
            r
        })
        .collect();
    let v = feed(&mut model, &cfg, 300, &rows);
    assert_eq!(opened(&v), 0);
    assert!(v.iter().any(|v| v.events.contains(&DeviceEvent::Learnt {
        reason: LearnReason::NewMetrics,
        regimes: 1
    })));
    assert_eq!(model.metrics().len(), 4);
    assert_eq!(model.learning(), None);
    // A metric that stops reporting: the others still judge the rows.
    let rows: Vec<_> = (800..1000).map(|t| machine(&mut n, t, 0.0)).collect();
    let v = feed(&mut model, &cfg, 800, &rows);
    assert_eq!(opened(&v), 0);
}

#[test]
fn state_round_trips_through_serde_and_is_small() {
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(19);
    let names: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    let mut model = DeviceModel::new();
    let row = |n: &mut Noise, t: usize| -> Vec<f64> {
        let common = (t as f64 / 4.0).sin();
        (0..50)
            .map(|i| 100.0 * i as f64 + common * (i % 5) as f64 + n.normal())
            .collect()
    };
    for t in 0..300 {
        let r = row(&mut n, t);
        model.update_row(
            &cfg,
            t as i64 * STEP_MS,
            names.iter().map(String::as_str).zip(r),
        );
    }
    let json = serde_json::to_string(&model).unwrap();
    assert!(json.len() <= 64 * 1024, "{} bytes", json.len());
    let mut restored: DeviceModel = serde_json::from_str(&json).unwrap();
    assert_eq!(restored.regimes(), 1);
    for t in 300..400 {
        let r = row(&mut n, t);
        let shift = if t >= 350 { 5.0 } else { 0.0 };
        let r: Vec<f64> = r
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i == 3 { shift } else { 0.0 })
            .collect();
        let ts = t as i64 * STEP_MS;
        let a = model.update_row(&cfg, ts, names.iter().map(String::as_str).zip(r.clone()));
        let b = restored.update_row(&cfg, ts, names.iter().map(String::as_str).zip(r));
        assert_eq!(a.alert, b.alert, "row {t}");
        assert!(
            (a.score - b.score).abs() < 1e-3 * a.score.max(1.0),
            "row {t}"
        );
    }
    assert!(
        restored.alert_open(),
        "the shift after the restart is caught"
    );
}

#[test]
fn a_new_normal_never_seen_long_enough_is_dropped_and_faults_alarm_again() {
    let cfg = DeviceModelConfig {
        adopt_after_ms: 3_600_000,
        ..DeviceModelConfig::default()
    };
    let mut n = Noise(23);
    let mut model = DeviceModel::new();
    let off: Vec<_> = (0..200).map(|_| pump(&mut n, false)).collect();
    feed(&mut model, &cfg, 0, &off);
    let on: Vec<_> = (0..20).map(|_| pump(&mut n, true)).collect();
    assert_eq!(opened(&feed(&mut model, &cfg, 200, &on)), 1);
    model.adopt_new_normal(Adoption::User);
    // The pump goes back off for two hours: the new regime is never learnt...
    let off: Vec<_> = (0..720).map(|_| pump(&mut n, false)).collect();
    let v = feed(&mut model, &cfg, 220, &off);
    assert!(v.iter().any(|v| v.events.contains(&DeviceEvent::Dropped)));
    assert_eq!(model.learning(), None);
    // ...and a later departure alarms instead of being learnt.
    let on: Vec<_> = (0..20).map(|_| pump(&mut n, true)).collect();
    assert_eq!(opened(&feed(&mut model, &cfg, 940, &on)), 1);
    assert_eq!(model.regimes(), 1);
}

#[test]
fn slow_drift_of_normal_operation_is_followed_and_a_step_still_alarms() {
    // Minute rows; the temperature's level moves by 5 of its spreads over four weeks (a
    // season, wear), far slower than the one-week time constant of the slow learning.
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(23);
    let mut model = DeviceModel::new();
    let weeks4 = 4 * 7 * 24 * 60;
    let mut opened = 0;
    for t in 0..weeks4 {
        let drift = 2.5 * t as f64 / weeks4 as f64;
        let v = model.update_row(&cfg, t as i64 * 60_000, machine(&mut n, t, drift));
        opened += usize::from(v.events.contains(&DeviceEvent::Opened));
    }
    assert_eq!(opened, 0, "the slow drift alarmed");
    // The same step as above, from the drifted level, for an hour.
    let mut during = Vec::new();
    for t in weeks4..weeks4 + 60 {
        during.push(model.update_row(&cfg, t as i64 * 60_000, machine(&mut n, t, 5.0)));
    }
    assert_eq!(
        during
            .iter()
            .filter(|v| v.events.contains(&DeviceEvent::Opened))
            .count(),
        1
    );
    assert!(during.last().unwrap().alert);
}

#[test]
fn a_reading_that_freezes_is_caught() {
    // The machine and a humidity reading of its own (related to nothing else).
    let row = |n: &mut Noise, t: usize, frozen: bool| {
        let mut r = machine(n, t, 0.0);
        let humidity = 40.0 + 2.0 * n.normal();
        r.push(("humidity", if frozen { 40.1 } else { humidity }));
        r
    };
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(19);
    let mut model = DeviceModel::new();
    let normal: Vec<_> = (0..400).map(|t| row(&mut n, t, false)).collect();
    assert_eq!(opened(&feed(&mut model, &cfg, 0, &normal)), 0);
    // The humidity sensor sticks at a reading at the centre of its range.
    let frozen: Vec<_> = (400..460).map(|t| row(&mut n, t, true)).collect();
    let during = feed(&mut model, &cfg, 400, &frozen);
    let held = during.iter().filter(|v| v.alert).count();
    assert_eq!(opened(&during), 1);
    assert!(held >= 50, "alarm held on {held} of 60 rows");
    assert_eq!(model.explain()[0].metric, "humidity");
    assert!(describe(&model.explain(), 3).contains("humidity"));
    // It moves again: the alarm resolves.
    let after: Vec<_> = (460..520).map(|t| row(&mut n, t, false)).collect();
    let after = feed(&mut model, &cfg, 460, &after);
    assert!(
        after
            .iter()
            .any(|v| v.events.contains(&DeviceEvent::Resolved))
    );
}

#[test]
fn a_reading_resting_at_a_value_it_held_while_learnt_is_not_frozen() {
    // A wearer walking most of the time: steps vary with every row, but at rest they are
    // exactly 0, for 10 rows at a time while learnt; heart rate follows the steps.
    let row = |n: &mut Noise, walking: bool, steps_at: Option<f64>| {
        let steps = steps_at.unwrap_or(if walking {
            100.0 + 5.0 * n.normal()
        } else {
            0.0
        });
        vec![
            ("heart_rate", 60.0 + 0.3 * steps + 2.0 * n.normal()),
            ("activity", steps),
        ]
    };
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(23);
    let mut model = DeviceModel::new();
    let normal: Vec<_> = (0..400).map(|t| row(&mut n, t % 40 >= 10, None)).collect();
    assert_eq!(opened(&feed(&mut model, &cfg, 0, &normal)), 0);
    // A long rest: 0 steps for 60 rows, a value it rested at before.
    let rest: Vec<_> = (400..460).map(|_| row(&mut n, false, None)).collect();
    let rest = feed(&mut model, &cfg, 400, &rest);
    assert_eq!(opened(&rest), 0, "a rest of 60 rows alarmed");
    // The step counter sticks at a walking reading while the wearer walks on: caught.
    let walk: Vec<_> = (460..480).map(|_| row(&mut n, true, None)).collect();
    feed(&mut model, &cfg, 460, &walk);
    let stuck: Vec<_> = (480..520).map(|_| row(&mut n, true, Some(103.0))).collect();
    let stuck = feed(&mut model, &cfg, 480, &stuck);
    assert_eq!(opened(&stuck), 1);
    assert_eq!(model.explain()[0].metric, "activity");
}

#[test]
fn a_reading_that_turns_noisy_within_its_range_is_one_held_alarm() {
    // The machine and a level that swings slowly over ±5 with a small reading noise; the
    // level's sensor turns noisy (a loose connector): five times the noise, still well inside
    // the swing, so no row leaves the level's range, but its changes from row to row grow.
    let row = |n: &mut Noise, t: usize, noise: f64| {
        let mut r = machine(n, t, 0.0);
        r.push((
            "level",
            50.0 + 5.0 * (t as f64 / 20.0).sin() + noise * n.normal(),
        ));
        r
    };
    let cfg = DeviceModelConfig::default();
    let mut n = Noise(29);
    let mut model = DeviceModel::new();
    let normal: Vec<_> = (0..400).map(|t| row(&mut n, t, 0.1)).collect();
    assert_eq!(opened(&feed(&mut model, &cfg, 0, &normal)), 0);
    let noisy: Vec<_> = (400..600).map(|t| row(&mut n, t, 0.5)).collect();
    let during = feed(&mut model, &cfg, 400, &noisy);
    let held = during.iter().filter(|v| v.alert).count();
    assert!(opened(&during) <= 2, "{} alarms", opened(&during));
    assert!(held >= 140, "alarm held on {held} of 200 rows");
    assert_eq!(model.explain()[0].metric, "level");
    let after: Vec<_> = (600..700).map(|t| row(&mut n, t, 0.1)).collect();
    let after = feed(&mut model, &cfg, 600, &after);
    assert_eq!(opened(&after), 0);
    assert!(!model.alert_open(), "resolved once the noise is gone");
}
