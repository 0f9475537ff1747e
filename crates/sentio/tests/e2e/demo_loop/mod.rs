//! The demo closes the loop: `serve --demo`'s simulated devices obey commands and desired
//! twins sent through the API (they answer, report their twin, and their telemetry follows),
//! and the demo's rules are in the rule store once, across restarts, as the user left them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::actuation::device::{send_command, wait_state};
use crate::support::*;

/// Waits until `room`'s reported twin has `key` = `value`; the twin then.
async fn reported(node: &sentio::node::Node, room: &str, key: &str, value: &str) -> Value {
    let path = format!("/api/v1/devices/{room}/twin");
    eventually(20, || async {
        let (st, twin) = api(node, "GET", &path, None).await;
        assert_eq!(st, 200, "{twin}");
        (twin["reported"][key] == value).then_some(twin)
    })
    .await
    .unwrap_or_else(|| panic!("{room} did not report {key} = {value}"))
}

/// The median of `metric` of `device` over the readings taken after `after_ms` (waits for 3).
async fn median_after(node: &sentio::node::Node, device: &str, metric: &str, after_ms: i64) -> f64 {
    let mut values = eventually(20, || async {
        let v: Vec<f64> = points(node, device, metric)
            .await
            .into_iter()
            .filter(|(ts, _)| *ts > after_ms)
            .map(|(_, v)| v)
            .collect();
        (v.len() >= 3).then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("no {metric} of {device} after {after_ms}"));
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Sends `lights` = `value` to `room`; once it succeeded and the room reported it, the time
/// from which its telemetry shows it (the next readings).
async fn lights(node: &sentio::node::Node, room: &str, value: &str) -> i64 {
    let (st, cmd) = send_command(
        node,
        room,
        json!({"name": "lights", "params": {"value": value}}),
    )
    .await;
    assert_eq!(st, 201, "{cmd}");
    let id = cmd["id"].as_str().unwrap();
    let done = wait_state(node, room, id, "succeeded", 20).await;
    assert_eq!(done["reply"], json!({"status": "ok"}));
    reported(node, room, "lights", value).await;
    now_ms() + 1_500
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_over_the_api_turns_a_sim_rooms_lights_off_and_its_telemetry_follows() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.demo.enabled = true).await;
    // The room reports its state once it is connected.
    reported(&node, "room-1", "hvac_mode", "schedule").await;

    let on = lights(&node, "room-1", "on").await;
    let (light_on, power_on) = (
        median_after(&node, "room-1", "light", on).await,
        median_after(&node, "room-1", "power_w", on).await,
    );
    let off = lights(&node, "room-1", "off").await;
    let (light_off, power_off) = (
        median_after(&node, "room-1", "light", off).await,
        median_after(&node, "room-1", "power_w", off).await,
    );
    println!("room-1 lights on: {light_on} lux, {power_on} W; off: {light_off} lux, {power_off} W");
    assert!(
        light_on - light_off > 300.0,
        "{light_on} -> {light_off} lux"
    );
    // 260-580 W of lighting; the heat pump's part changes slowly, the meter's noise is 3 W.
    assert!(power_on - power_off > 200.0, "{power_on} -> {power_off} W");

    // A value the room does not take: failed, with the reason, and nothing changes.
    let (st, cmd) = send_command(
        &node,
        "room-1",
        json!({"name": "lights", "params": {"value": "dim"}}),
    )
    .await;
    assert_eq!(st, 201, "{cmd}");
    let failed = wait_state(&node, "room-1", cmd["id"].as_str().unwrap(), "failed", 20).await;
    assert_eq!(failed["reply"]["status"], "failed");
    assert!(
        failed["reply"]["reason"]
            .as_str()
            .unwrap()
            .contains("auto, on, off"),
        "{failed}"
    );

    // The desired twin: the pump slows, reports it, and draws less.
    let before = median_after(&node, "pump-2", "power_w", now_ms()).await;
    let (st, twin) = api(
        &node,
        "PATCH",
        "/api/v1/devices/pump-2/twin",
        Some(json!({"desired": {"speed": 50}})),
    )
    .await;
    assert_eq!(st, 200, "{twin}");
    let twin = eventually(20, || async {
        let (_, twin) = api(&node, "GET", "/api/v1/devices/pump-2/twin", None).await;
        (twin["reported"]["speed"] == 50).then_some(twin)
    })
    .await
    .expect("pump-2 reports speed 50");
    assert_eq!(twin["delta"], json!({}), "{twin}");
    let after = median_after(&node, "pump-2", "power_w", now_ms() + 1_500).await;
    println!("pump-2 full speed: {before} W; half speed: {after} W");
    assert!(after < before * 0.4, "{before} -> {after} W");
    node.shutdown().await;
}

/// The demo rules' ids and whether each is enabled.
async fn demo_rules(node: &sentio::node::Node) -> Vec<(String, bool)> {
    let (st, list) = api(node, "GET", "/api/v1/rules", None).await;
    assert_eq!(st, 200, "{list}");
    list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_str().unwrap().starts_with("demo-"))
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["enabled"] == true))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rules_are_installed_once_and_kept_as_the_user_left_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.demo.enabled = true).await;
    let first = demo_rules(&node).await;
    let ids: Vec<&str> = first.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["demo-empty-room", "demo-hot-bearing", "demo-stuffy-room"]
    );
    assert!(first.iter().all(|(_, enabled)| *enabled));
    let (st, body) = api(
        &node,
        "POST",
        "/api/v1/rules/demo-stuffy-room/disable",
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    node.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let node = start_with(dir.path(), |c| c.demo.enabled = true).await;
    let again = demo_rules(&node).await;
    assert_eq!(again.len(), first.len(), "no duplicates: {again:?}");
    let stuffy = again
        .iter()
        .find(|(id, _)| id == "demo-stuffy-room")
        .unwrap();
    assert!(!stuffy.1, "still disabled after the restart");
    node.shutdown().await;

    // Without the demo, no demo rules are added.
    let plain = tempfile::tempdir().unwrap();
    let node = start(plain.path()).await;
    assert!(demo_rules(&node).await.is_empty());
    node.shutdown().await;
}
