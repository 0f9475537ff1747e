//! The rules watch's dirty list: each changed (rule, device) state is handed to the store once
//! per [`Watch::take_dirty`], again only after it changes again, never for a device forgotten,
//! and its saved text is the state's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sentio_core::{DeviceId, Point, Rule, RuleId, Selector, Severity, StateKey};

use super::rules::RulesWatch;
use super::watch::{DeviceBatch, Watch};
use crate::rules::compile;

fn rule(id: &str, device: &DeviceId) -> Arc<crate::rules::CompiledRule> {
    let rule = Rule {
        id: RuleId::parse(id).unwrap(),
        name: id.to_string(),
        enabled: true,
        selector: Selector {
            devices: vec![device.clone()],
            metrics: vec!["temp".into()],
            ..Selector::default()
        },
        condition: r#"temp > 50.0 && avg("temp", "1m") > 40.0"#.into(),
        clear: None,
        for_ms: 0,
        clear_for_ms: 0,
        cool_down_ms: 0,
        severity: Severity::Warning,
        actions: Vec::new(),
        on_resolve: Vec::new(),
    };
    Arc::new(compile(rule).unwrap())
}

/// Judges one point of `metric` on `device`.
fn observe(watch: &mut RulesWatch, device: &DeviceId, metric: &str, ts_ms: i64, value: f64) {
    let points = [Point {
        device: device.clone(),
        metric: Arc::from(metric),
        ts_ms,
        value,
    }];
    let batch = DeviceBatch {
        device,
        kind: &Arc::from("machine"),
        labels: &BTreeMap::new(),
        twin: &cel::Value::Null,
        points: &points,
        arrived: &points,
        now_ms: ts_ms,
        scores: &Default::default(),
    };
    watch.observe(&batch, &mut Vec::new());
}

fn taken(watch: &mut RulesWatch) -> HashSet<StateKey> {
    let mut dirty = HashSet::new();
    watch.take_dirty(&mut dirty);
    dirty
}

fn key(rule: &str, device: &DeviceId) -> StateKey {
    StateKey::Rule {
        device: device.clone(),
        rule: RuleId::parse(rule).unwrap(),
    }
}

#[test]
fn a_changed_rule_state_is_saved_once_per_take_and_never_after_its_device_is_forgotten() {
    let (a, b) = (DeviceId::parse("a").unwrap(), DeviceId::parse("b").unwrap());
    let mut watch = RulesWatch::default();
    watch.set(vec![rule("r1", &a), rule("r2", &a), rule("r3", &b)]);

    for ts in 0..3 {
        observe(&mut watch, &a, "temp", ts * 1_000, 60.0);
    }
    // A metric no rule reads changes no state.
    observe(&mut watch, &b, "humidity", 0, 60.0);
    let dirty = taken(&mut watch);
    assert_eq!(dirty, HashSet::from([key("r1", &a), key("r2", &a)]));
    for k in &dirty {
        let saved = watch.save(k).expect("a dirty state is saved");
        assert!(saved.contains("\"temp\":60.0"), "{saved}");
    }
    assert!(
        taken(&mut watch).is_empty(),
        "nothing changed since the take"
    );

    observe(&mut watch, &b, "temp", 3_000, 61.0);
    observe(&mut watch, &a, "temp", 3_000, 62.0);
    assert_eq!(
        taken(&mut watch),
        HashSet::from([key("r1", &a), key("r2", &a), key("r3", &b)])
    );

    observe(&mut watch, &a, "temp", 4_000, 63.0);
    observe(&mut watch, &b, "temp", 4_000, 63.0);
    watch.forget(&a);
    assert_eq!(taken(&mut watch), HashSet::from([key("r3", &b)]));
    assert!(watch.save(&key("r1", &a)).is_none());

    // A state restored is not dirty until it changes.
    let saved = watch.save(&key("r3", &b)).unwrap();
    let mut restarted = RulesWatch::default();
    restarted.set(vec![rule("r3", &b)]);
    restarted.restore(&key("r3", &b), &saved).unwrap();
    assert!(taken(&mut restarted).is_empty());
    observe(&mut restarted, &b, "temp", 5_000, 64.0);
    assert_eq!(taken(&mut restarted), HashSet::from([key("r3", &b)]));
}
