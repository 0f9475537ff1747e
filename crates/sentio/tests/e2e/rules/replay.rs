//! `POST /api/v1/rules/<id>/test`: a rule replayed over history posted over HTTP answers when
//! its alert would have opened and resolved on each device it selects, and what its actions
//! would have done; beyond the replay limits it is refused with 422 naming them.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_replayed_over_stored_history_says_when_it_would_have_fired_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.rules.replay_max_devices = 2).await;
    let room1 = register(&node, "room-1", "room").await;
    let room2 = register(&node, "room-2", "room").await;
    let pump = register(&node, "pump-1", "pump").await;

    // An hour ago, every 5 s for 2 minutes: room-1 above 1000 from 30 s to 85 s; room-2 never.
    let base = (sentio_core::time::now_ms() - 3_600_000) / 1_000 * 1_000;
    let history = |high: bool| -> Vec<serde_json::Value> {
        (0..24)
            .map(|i| {
                let at = i * 5_000;
                let co2 = if high && (30_000..90_000).contains(&at) {
                    1_200.0
                } else {
                    900.0
                };
                json!({"ts": base + at, "co2": co2})
            })
            .collect()
    };
    for (device, secret, high) in [("room-1", &room1, true), ("room-2", &room2, false)] {
        let (st, body) = post_telemetry(&node, device, secret, &history(high)).await;
        assert_eq!(st, 200, "{body}");
    }
    let (st, body) = post_telemetry(
        &node,
        "pump-1",
        &pump,
        &[json!({"ts": base, "co2": 5_000.0})],
    )
    .await;
    assert_eq!(st, 200, "{body}");

    let rule = json!({
        "id": "co2-high",
        "name": "CO2 high",
        "selector": {"kind": "room", "metrics": ["co2"]},
        "condition": "co2 > 1000",
        "for": "10s",
        "clear_for": "0s",
        "cool_down": "0s",
        "actions": ["alert", {"type": "set_desired", "desired": {"fan": "high"}}]
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");

    let range = format!("from={}&to={}", base, base + 3_600_000);
    let (st, body) = api(
        &node,
        "POST",
        &format!("/api/v1/rules/co2-high/test?{range}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["fired"], 1, "{body}");
    let devices = body["devices"].as_array().unwrap();
    let ids: Vec<&str> = devices
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["room-1", "room-2"], "rooms only: {body}");
    let room1 = &devices[0];
    assert_eq!(room1["points"], 24, "{body}");
    let episode = &room1["episodes"][0];
    // Held from 30 s: opens at 40 s (`for` 10 s); the first point below, at 90 s, resolves.
    assert_eq!(episode["opened_ms"], base + 40_000, "{body}");
    assert_eq!(episode["resolved_ms"], base + 90_000, "{body}");
    assert_eq!(episode["values"]["co2"], 1_200.0, "{body}");
    assert_eq!(episode["resolved_values"]["co2"], 900.0, "{body}");
    assert_eq!(
        episode["actions"],
        json!([
            "open a warning alert on room-1",
            "merge {\"fan\":\"high\"} into the desired twin of room-1"
        ]),
        "described: {body}"
    );
    assert_eq!(devices[1]["episodes"], json!([]), "{body}");
    // Described, never done: the room's desired twin is untouched.
    let (st, twin) = api(&node, "GET", "/api/v1/devices/room-1/twin", None).await;
    assert_eq!(st, 200, "{twin}");
    assert_eq!(twin["desired"], json!({}), "{twin}");

    // Beyond the limits: 422, naming them.
    let long = format!("from={}&to={}", base - 8 * 86_400_000, base);
    let (st, body) = api(
        &node,
        "POST",
        &format!("/api/v1/rules/co2-high/test?{long}"),
        None,
    )
    .await;
    assert_eq!(st, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("rules.replay_max_range"),
        "{body}"
    );
    let every = json!({
        "id": "co2-any",
        "name": "CO2 anywhere",
        "selector": {"metrics": ["co2"]},
        "condition": "co2 > 1000",
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(every)).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = api(
        &node,
        "POST",
        &format!("/api/v1/rules/co2-any/test?{range}"),
        None,
    )
    .await;
    assert_eq!(st, 422, "three devices, two allowed: {body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("rules.replay_max_devices"),
        "{body}"
    );
    let (st, _) = api(&node, "POST", "/api/v1/rules/nope/test", None).await;
    assert_eq!(st, 404);
}
