//! A rule's alert over MQTT: a CO2 rule with `for`, a clear condition below the condition
//! (hysteresis), on a room publishing through the broker. It opens once the condition has held
//! for `for`, stays open between the two thresholds, resolves on clear; and a `for` timer
//! started before a restart fires at its time after it, with no new point.

use rumqttc::{AsyncClient, EventLoop};
use serde_json::{Value, json};

use crate::support::*;
use sentio::node::Node;

const DEVICE: &str = "room-1";
const TOPIC: &str = "devices/room-1/telemetry";
const FOR_MS: i64 = 4_000;

async fn publish(client: &AsyncClient, el: &mut EventLoop, ts: i64, co2: f64) {
    let payload = json!({"ts": ts, "co2": co2}).to_string().into_bytes();
    publish_acked(client, el, TOPIC, payload).await.unwrap();
}

/// The room's rule alerts, newest first.
async fn rule_alerts(node: &Node) -> Vec<Value> {
    alerts_of(node, DEVICE)
        .await
        .into_iter()
        .filter(|a| a["explanation"]["kind"] == "rule")
        .collect()
}

/// Waits for the room's rule alert in `state`.
async fn wait_rule_alert(node: &Node, state: &str, secs: u64) -> Option<Value> {
    eventually(secs, || async {
        rule_alerts(node)
            .await
            .into_iter()
            .find(|a| a["state"] == state)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_opens_after_for_resolves_on_clear_and_its_timer_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, DEVICE, "room").await;
    let rule = json!({
        "id": "co2-high",
        "name": "CO2 high",
        "selector": {"kind": "room", "metrics": ["co2"]},
        "condition": "co2 > 1000 && count(\"co2\", \"1m\") >= 1",
        "clear": "co2 < 800",
        "for_ms": FOR_MS,
        "clear_for": "0s",
        "cool_down": "0s",
        "severity": "critical"
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");

    let (client, mut el) = mqtt_connect(&node, "room-1-a", DEVICE, &secret)
        .await
        .unwrap();
    let t0 = now_ms();
    publish(&client, &mut el, t0, 1_200.0).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(
        rule_alerts(&node).await.is_empty(),
        "not before `for` has passed"
    );
    publish(&client, &mut el, t0 + 1_500, 1_250.0).await;
    let open = wait_rule_alert(&node, "open", 10)
        .await
        .expect("the rule's alert opens");
    assert_eq!(open["metric"], "rule/co2-high");
    assert_eq!(open["explanation"]["score"], 1.0, "critical");
    let opened = open["opened_ms"].as_i64().unwrap();
    assert!(opened >= t0 + FOR_MS, "opened at {opened}, before t0 + for");
    assert!(now_ms() >= t0 + FOR_MS);

    // Between the thresholds it stays open; below the clear threshold it resolves.
    publish(&client, &mut el, now_ms(), 900.0).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    assert_eq!(rule_alerts(&node).await[0]["state"], "open", "hysteresis");
    publish(&client, &mut el, now_ms(), 700.0).await;
    let resolved = wait_rule_alert(&node, "resolved", 5)
        .await
        .expect("resolves on clear");
    assert_eq!(resolved["id"], open["id"]);

    // The condition holds again, then the node restarts before `for` has passed; no point
    // arrives after the restart, and the timer fires at its time all the same.
    let t1 = now_ms();
    publish(&client, &mut el, t1, 1_500.0).await;
    drop(client);
    drop(el);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    node.shutdown().await;
    let node = start(dir.path()).await;
    let reopened = eventually(10, || async {
        rule_alerts(&node)
            .await
            .into_iter()
            .find(|a| a["state"] == "open")
    })
    .await
    .expect("the rule's alert opens after the restart, with no new point");
    assert_eq!(
        reopened["opened_ms"].as_i64().unwrap(),
        t1 + FOR_MS,
        "at t1 + for"
    );
    assert_eq!(rule_alerts(&node).await.len(), 2);
    node.shutdown().await;
}
