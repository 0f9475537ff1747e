//! Label-group aggregates over MQTT: `temp > group_avg("temp", "10m", "site") + 5` fires on the
//! room that is hotter than its own site's rooms (a hot room of another site does not count),
//! and the site's window survives a restart: after it, a room compared with the points its
//! site's rooms published before the restart fires (a fresh window would hold only its own).
//! A replay of the rule judges the rooms together and says the same.

use serde_json::{Value, json};

use crate::support::*;
use sentio::node::Node;

const ROOMS: [(&str, &str); 3] = [
    ("room-n1", "north"),
    ("room-n2", "north"),
    ("room-s1", "south"),
];

async fn register_rooms(node: &Node) -> Vec<String> {
    let mut secrets = Vec::new();
    for (id, site) in ROOMS {
        let body = json!({"id": id, "kind": "room", "labels": {"site": site}});
        let (st, body) = api(node, "POST", "/api/v1/devices", Some(body)).await;
        assert_eq!(st, 201, "{body}");
        secrets.push(body["secret"].as_str().unwrap().to_string());
    }
    secrets
}

/// Publishes one temperature of room `i` over MQTT.
async fn publish(node: &Node, secrets: &[String], i: usize, ts: i64, temp: f64) {
    let id = ROOMS[i].0;
    let (client, mut el) = mqtt_connect(node, &format!("{id}-{ts}"), id, &secrets[i])
        .await
        .unwrap();
    let payload = json!({"ts": ts, "temp": temp}).to_string().into_bytes();
    publish_acked(
        &client,
        &mut el,
        &format!("devices/{id}/telemetry"),
        payload,
    )
    .await
    .unwrap();
}

async fn hot_rooms(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for (id, _) in ROOMS {
        let alerts = alerts_of(node, id).await;
        if alerts
            .iter()
            .any(|a| a["metric"] == "rule/hotter-than-site")
        {
            out.push(id.to_string());
        }
    }
    out
}

async fn wait_hot(node: &Node, n: usize) -> Vec<String> {
    eventually(15, || async {
        let hot = hot_rooms(node).await;
        (hot.len() >= n).then_some(hot)
    })
    .await
    .unwrap_or_else(|| panic!("{n} room(s) alerting"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_compares_a_room_with_its_sites_rooms_and_the_sites_window_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secrets = register_rooms(&node).await;
    let rule = json!({
        "id": "hotter-than-site",
        "name": "hotter than its site",
        "selector": {"kind": "room", "metrics": ["temp"]},
        "condition": r#"temp > group_avg("temp", "10m", "site") + 5.0"#,
        "clear_for": "0s",
        "cool_down": "0s",
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = api(
        &node,
        "POST",
        "/api/v1/rules",
        Some(
            json!({"id": "bad", "name": "bad", "selector": {"metrics": ["temp"]},
            "condition": r#"group_avg("temp", "10m") > 1.0"#}),
        ),
    )
    .await;
    assert_eq!(st, 422, "{body}");
    assert!(body.to_string().contains("three string literals"), "{body}");

    let t0 = (now_ms() - 120_000) / 1_000 * 1_000;
    // North: 20, 21, then 30 (north's average 23.7: 30 is more than 5 above it). South: one
    // room at 40, which is its own average.
    publish(&node, &secrets, 0, t0, 20.0).await;
    publish(&node, &secrets, 1, t0 + 1_000, 21.0).await;
    publish(&node, &secrets, 2, t0 + 2_000, 40.0).await;
    publish(&node, &secrets, 0, t0 + 3_000, 30.0).await;
    assert_eq!(wait_hot(&node, 1).await, ["room-n1"]);

    node.shutdown().await;
    let node = start(dir.path()).await;
    // North's window holds 20, 21, 30 from before the restart: with 35 the average is 26.5.
    publish(&node, &secrets, 1, t0 + 4_000, 35.0).await;
    assert_eq!(wait_hot(&node, 2).await, ["room-n1", "room-n2"]);

    let (st, body) = api(
        &node,
        "POST",
        &format!(
            "/api/v1/rules/hotter-than-site/test?from={t0}&to={}",
            t0 + 10_000
        ),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let opened: Vec<(String, Value)> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device"].as_str().unwrap().to_string(),
                d["episodes"][0]["opened_ms"].clone(),
            )
        })
        .collect();
    assert_eq!(
        opened,
        [
            ("room-n1".to_string(), json!(t0 + 3_000)),
            ("room-n2".to_string(), json!(t0 + 4_000)),
            ("room-s1".to_string(), Value::Null),
        ],
        "{body}"
    );
    node.shutdown().await;
}
