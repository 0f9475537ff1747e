//! A rule's `on_resolve` actions through the front door: a room's CO2 rule sends a command to
//! the room (a rumqttc device) when its alert opens and another when it resolves by its clear
//! condition; a person resolving the alert by hand sends nothing; replays and traces say both;
//! `alert` and `notify` are refused there with 422.

use serde_json::{Value, json};

use crate::actuation::device::Device;
use crate::support::*;

/// The next command the room gets: its name and params.
async fn next_command(room: &mut Device) -> Option<(String, Value)> {
    let (topic, body) = room.next_message(5).await?;
    assert!(topic.starts_with("devices/room-7/commands/"), "{topic}");
    Some((body["name"].as_str()?.to_string(), body["params"].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_acts_when_its_alert_resolves_by_clear_but_not_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-7", "room").await;
    for (action, message) in [
        (json!("alert"), "commands, set_desired and publish only"),
        (
            json!({"notify": "ops"}),
            "commands, set_desired and publish only",
        ),
        (
            json!({"type": "command", "name": ""}),
            "on_resolve.command.name",
        ),
        (json!("webhook"), "unknown action"),
    ] {
        let rule = json!({"id": "bad", "name": "bad", "selector": {"metrics": ["co2"]},
            "condition": "co2 > 1000", "on_resolve": [action]});
        let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
        assert_eq!(
            (st, body["field"].as_str()),
            (422, Some("on_resolve")),
            "{body}"
        );
        let said = body.to_string();
        assert!(said.contains(message), "{said}");
    }
    let rule = json!({
        "id": "co2-vent",
        "name": "CO2 high: ventilate until it is low again",
        "selector": {"kind": "room", "metrics": ["co2"]},
        "condition": "co2 > 1000",
        "clear": "co2 < 800",
        "clear_for": "0s",
        "cool_down": "0s",
        "actions": [{"type": "command", "name": "vent", "params": {"level": 3}}],
        "on_resolve": [{"type": "command", "name": "vent", "params": {"level": 0}}]
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        body["on_resolve"][0]["params"],
        json!({"level": 0}),
        "{body}"
    );
    let mut room = Device::connect(&node, "room-7", &secret, "a").await;
    room.subscribe(&["devices/room-7/commands/+".to_string()])
        .await;

    room.publish("devices/room-7/telemetry", &json!({"co2": 1_250}))
        .await;
    let fired = next_command(&mut room).await.expect("the rule fires");
    assert_eq!(fired, ("vent".to_string(), json!({"level": 3})));
    room.publish("devices/room-7/telemetry", &json!({"co2": 900}))
        .await;
    assert!(
        room.next_message(1).await.is_none(),
        "between the condition and clear: still open, nothing sent"
    );
    room.publish("devices/room-7/telemetry", &json!({"co2": 700}))
        .await;
    let resolved = next_command(&mut room)
        .await
        .expect("the alert resolves by clear: on_resolve runs");
    assert_eq!(resolved, ("vent".to_string(), json!({"level": 0})));

    // Fires again; a person resolves it by hand: no on_resolve.
    room.publish("devices/room-7/telemetry", &json!({"co2": 1_300}))
        .await;
    let again = next_command(&mut room).await.expect("fires again");
    assert_eq!(again.1, json!({"level": 3}));
    let open = eventually(5, || async {
        alerts_of(&node, "room-7")
            .await
            .into_iter()
            .find(|a| a["state"] == "open")
    })
    .await
    .expect("the second alert is open");
    let path = format!("/api/v1/alerts/{}/resolve", open["id"]);
    let (st, body) = api(&node, "POST", &path, None).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        room.next_message(2).await.is_none(),
        "resolved by hand: on_resolve does not run"
    );
    let (_, list) = api(&node, "GET", "/api/v1/devices/room-7/commands", None).await;
    assert_eq!(list["commands"].as_array().map(Vec::len), Some(3), "{list}");

    // The traces and a replay of the stored history say what on_resolve did / would do.
    let (_, traces) = api(&node, "GET", "/api/v1/rules/co2-vent/traces", None).await;
    let resolved = traces["traces"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["decision"] == "resolved"))
        .unwrap_or_else(|| panic!("a resolved trace: {traces}"));
    assert_eq!(
        resolved["actions"],
        json!([r#"send command "vent" with params {"level":0} to room-7"#]),
        "{resolved}"
    );
    let (st, replay) = api(&node, "POST", "/api/v1/rules/co2-vent/test", None).await;
    assert_eq!(st, 200, "{replay}");
    let episodes = &replay["devices"][0]["episodes"];
    assert_eq!(
        episodes[0]["resolve_actions"],
        json!([r#"send command "vent" with params {"level":0} to room-7"#]),
        "{replay}"
    );
    node.shutdown().await;
}
