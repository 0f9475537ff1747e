//! Users' rules: kept whole, replaced by id, listed by id, removed, and still there after a
//! reopen.

use std::collections::BTreeMap;

use sentio_core::{Rule, RuleAction, RuleId, Selector, Severity};

use super::{Backend, dev};

fn rule(id: &str, condition: &str) -> Rule {
    Rule {
        id: RuleId::parse(id).unwrap(),
        name: format!("rule {id}"),
        enabled: true,
        selector: Selector {
            devices: vec![dev("room-1")],
            kind: Some("room".into()),
            labels: BTreeMap::from([("floor".to_string(), "2".to_string())]),
            metrics: vec!["co2".into()],
        },
        condition: condition.into(),
        clear: Some("co2 < 800.0".into()),
        for_ms: 600_000,
        clear_for_ms: 60_000,
        cool_down_ms: 300_000,
        severity: Severity::Critical,
        actions: vec![
            RuleAction::Command {
                name: "vent".into(),
                params: r#"{"level":3}"#.into(),
                ttl_ms: Some(60_000),
                to: Some(Selector {
                    kind: Some("fan".into()),
                    ..Selector::default()
                }),
            },
            RuleAction::SetDesired {
                patch: r#"{"vent":"high"}"#.into(),
            },
            RuleAction::Notify {
                channel: "ops".into(),
            },
            RuleAction::Publish {
                topic: "ops/{device}".into(),
                payload: "{rule} fired".into(),
            },
        ],
        on_resolve: vec![RuleAction::SetDesired {
            patch: r#"{"vent":"auto"}"#.into(),
        }],
    }
}

pub async fn rules_are_kept_whole_replaced_by_id_and_survive_reopen(backend: &impl Backend) {
    let s = backend.open();
    let a = rule("co2-high", "co2 > 1000.0");
    let mut b = rule("b-rule", "avg(\"co2\", \"10m\") > 900.0");
    b.selector = Selector::default();
    b.clear = None;
    b.severity = Severity::Info;
    assert!(s.rules.put_rule(&a).await.unwrap(), "new");
    assert!(s.rules.put_rule(&b).await.unwrap(), "new");
    assert_eq!(s.rules.get_rule(&a.id).await.unwrap(), Some(a.clone()));
    let mut a2 = a.clone();
    a2.enabled = false;
    a2.condition = "co2 > 1200.0".into();
    assert!(!s.rules.put_rule(&a2).await.unwrap(), "a replacement");
    assert_eq!(s.rules.list_rules().await.unwrap(), [b.clone(), a2.clone()]);
    drop(s);

    let s = backend.open();
    assert_eq!(s.rules.list_rules().await.unwrap(), [b.clone(), a2.clone()]);
    assert!(s.rules.delete_rule(&b.id).await.unwrap());
    assert!(!s.rules.delete_rule(&b.id).await.unwrap(), "already gone");
    assert_eq!(s.rules.get_rule(&b.id).await.unwrap(), None);
    assert_eq!(s.rules.list_rules().await.unwrap(), [a2]);
}
