//! The rules `serve --demo` ships: they act on the simulated rooms and pumps through their
//! desired twins, so the demo closes the loop (telemetry → rule → desired twin → device →
//! telemetry). `sentio bench energy` runs the same rules over a simulated day.
//!
//! [`install`] puts each one in the rule store only where its id is free: a restart duplicates
//! nothing and keeps a user's edits or disabling; a deleted one comes back at the next start
//! (disable it to keep it off).

use sentio_core::{DeviceId, Rule, RuleAction, RuleId, Selector, Severity};
use sentio_store::{RuleStore, StoreError};
use tracing::info;

/// How long a room must be empty before its lights go off and its heating is set back.
pub const EMPTY_ROOM_FOR_MS: i64 = 15 * 60_000;

fn rule(id: &str, name: &str, kind: &str, metric: &str, condition: &str) -> Rule {
    Rule {
        id: RuleId::parse(id).expect("a valid rule id"),
        name: name.to_string(),
        enabled: true,
        selector: Selector {
            devices: Vec::<DeviceId>::new(),
            kind: Some(kind.to_string()),
            labels: Default::default(),
            metrics: vec![metric.to_string()],
        },
        condition: condition.to_string(),
        clear: None,
        for_ms: 0,
        clear_for_ms: Rule::DEFAULT_CLEAR_FOR_MS,
        cool_down_ms: Rule::DEFAULT_COOL_DOWN_MS,
        severity: Severity::Info,
        actions: Vec::new(),
        on_resolve: Vec::new(),
    }
}

fn set_desired(patch: serde_json::Value) -> Vec<RuleAction> {
    vec![RuleAction::SetDesired {
        patch: patch.to_string(),
    }]
}

/// The demo's rules. See the module documentation; README's demo section says what each does.
/// Each undoes its change with `on_resolve` when its alert resolves on the data, at once and
/// ready to act again at once.
pub fn demo_rules() -> Vec<Rule> {
    use serde_json::json;
    vec![
        Rule {
            for_ms: EMPTY_ROOM_FOR_MS,
            clear_for_ms: 0,
            cool_down_ms: 0,
            actions: set_desired(
                json!({"lights": "off", "hvac_mode": "setback", "ventilation": "auto"}),
            ),
            on_resolve: set_desired(json!({"lights": "auto", "hvac_mode": "schedule"})),
            ..rule(
                "demo-empty-room",
                "Empty room: lights off, heating set back (back on when someone comes in)",
                "room",
                "occupancy",
                "occupancy == 0.0",
            )
        },
        Rule {
            for_ms: 5 * 60_000,
            actions: set_desired(json!({"ventilation": "boost"})),
            ..rule(
                "demo-stuffy-room",
                "Stuffy room: ventilation boost",
                "room",
                "co2",
                "co2 > 1000.0",
            )
        },
        Rule {
            for_ms: 30_000,
            clear: Some("bearing_temp < 60.0".to_string()),
            clear_for_ms: 5 * 60_000,
            cool_down_ms: 0,
            severity: Severity::Warning,
            actions: set_desired(json!({"speed": 60})),
            on_resolve: set_desired(json!({"speed": 100})),
            ..rule(
                "demo-hot-bearing",
                "Pump bearing hot or predicted to overheat: slowed to 60 % (full speed once below 60 °C for 5 min)",
                "pump",
                "bearing_temp",
                r#"bearing_temp > 80.0 || forecast("bearing_temp", "30m") > 90.0"#,
            )
        },
    ]
}

/// Puts every demo rule whose id is free into `rules`; returns how many it added.
pub async fn install(rules: &dyn RuleStore) -> Result<usize, StoreError> {
    let mut added = 0;
    for rule in demo_rules() {
        if rules.get_rule(&rule.id).await?.is_none() {
            rules.put_rule(&rule).await?;
            added += 1;
        }
    }
    info!(added, "demo rules installed");
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_rules_compile_and_act_through_desired_twins() {
        for rule in demo_rules() {
            let id = rule.id.clone();
            let compiled = sentio_pipeline::rules::compile(rule)
                .unwrap_or_else(|e| panic!("demo rule {id}: {e}"));
            assert!(!compiled.rule.actions.is_empty(), "{id} acts");
        }
    }
}
