//! A rule's actions beyond the alert: when a room's CO2 rule fires, the room gets a command
//! and a desired twin change, and an integration gets an MQTT message; bad actions are refused
//! at creation with 422 and the field.

use std::time::Instant;

use serde_json::json;

use super::device::Device;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_fires_sends_a_command_sets_desired_and_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-9", "room").await;
    for (action, field) in [
        (
            json!({"type": "publish", "topic": "devices/{device}/commands/x", "payload": "x"}),
            "actions.publish.topic",
        ),
        (
            json!({"type": "publish", "topic": "alerts/#", "payload": "x"}),
            "actions.publish.topic",
        ),
        (
            json!({"type": "set_desired", "desired": [1]}),
            "actions.set_desired.desired",
        ),
        (
            json!({"type": "command", "name": ""}),
            "actions.command.name",
        ),
        (json!("webhook"), "actions"),
    ] {
        let rule = json!({"id": "bad", "name": "bad", "selector": {"metrics": ["co2"]},
            "condition": "co2 > 1000", "actions": [action]});
        let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
        assert_eq!((st, body["field"].as_str()), (422, Some(field)), "{body}");
    }
    let rule = json!({
        "id": "co2-vent",
        "name": "CO2 high: ventilate",
        "selector": {"kind": "room", "metrics": ["co2"]},
        "condition": "co2 > 1000",
        "actions": [
            "alert",
            {"type": "command", "name": "vent", "params": {"level": 3}, "ttl": "5m"},
            {"type": "set_desired", "desired": {"vent": "high"}},
            {"type": "publish", "topic": "ops/{device}", "payload": "{rule} fired on {device}"}
        ]
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["actions"][1]["type"], "command", "{body}");

    let (_, ops_user, ops_pass) = create_token(
        &node,
        "ops",
        json!([{"filter": "ops/#", "rights": "subscribe"}]),
    )
    .await;
    let mut ops = Device::connect(&node, &ops_user, &ops_pass, "ops").await;
    ops.subscribe(&["ops/#".into()]).await;
    let mut room = Device::connect(&node, "room-9", &secret, "a").await;
    room.subscribe_own().await;

    let sent = Instant::now();
    room.publish("devices/room-9/telemetry", &json!({"co2": 1_250}))
        .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let (topic, body) = room
            .next_message(5)
            .await
            .unwrap_or_else(|| panic!("only {got:?}"));
        got.push((topic, body));
    }
    println!(
        "telemetry PUBACK -> rule's command and desired twin at the device: {:.1} ms",
        sent.elapsed().as_secs_f64() * 1000.0
    );
    let command = got
        .iter()
        .find(|(t, _)| t.starts_with("devices/room-9/commands/"));
    let (_, command) = command.expect("the command arrives");
    assert_eq!(
        (command["name"].clone(), command["params"].clone()),
        (json!("vent"), json!({"level": 3}))
    );
    let desired = got.iter().find(|(t, _)| t == "devices/room-9/twin/desired");
    assert_eq!(
        desired.expect("the desired twin arrives").1,
        json!({"version": 1, "desired": {"vent": "high"}})
    );
    let (topic, _) = ops.next_message(5).await.expect("the integration is told");
    assert_eq!(topic, "ops/room-9");
    // The alert opened once: more high readings send nothing more.
    room.publish("devices/room-9/telemetry", &json!({"co2": 1_300}))
        .await;
    assert!(
        room.next_message(1).await.is_none(),
        "fired once while the alert is open"
    );
    let (_, list) = api(&node, "GET", "/api/v1/devices/room-9/commands", None).await;
    assert_eq!(list["commands"].as_array().map(Vec::len), Some(1), "{list}");
    node.shutdown().await;
}

/// Twin state as a rule input: the rule commands ventilation only while the room does not
/// report it on already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_reads_the_reported_twin() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-8", "room").await;
    let rule = json!({
        "id": "co2-vent-twin",
        "name": "CO2 high and ventilation not on",
        "selector": {"kind": "room", "metrics": ["co2"]},
        "condition": r#"co2 > 1000 && twin.reported.vent != "high""#,
        "actions": [{"type": "command", "name": "vent", "params": {"level": 3}}]
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    let mut room = Device::connect(&node, "room-8", &secret, "a").await;
    room.subscribe_own().await;
    let reported = |vent: &'static str| {
        let node = &node;
        async move {
            eventually(5, || async {
                let (_, t) = api(node, "GET", "/api/v1/devices/room-8/twin", None).await;
                (t["reported"]["vent"] == vent).then_some(())
            })
            .await
            .expect("the report is stored");
            // The detect stage hears of it right after the store.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    room.publish("devices/room-8/twin/reported", &json!({"vent": "high"}))
        .await;
    reported("high").await;
    room.publish("devices/room-8/telemetry", &json!({"co2": 1_250}))
        .await;
    assert!(
        room.next_message(1).await.is_none(),
        "ventilation is reported on: nothing sent"
    );
    room.publish("devices/room-8/twin/reported", &json!({"vent": "low"}))
        .await;
    reported("low").await;
    room.publish("devices/room-8/telemetry", &json!({"co2": 1_300}))
        .await;
    let (topic, command) = room.next_message(5).await.expect("the rule fires");
    assert!(topic.starts_with("devices/room-8/commands/"), "{topic}");
    assert_eq!(command["name"], "vent");
    node.shutdown().await;
}
