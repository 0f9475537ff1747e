//! The device model through the front door: a device whose metrics arrive in separate MQTT
//! payloads is one model; a shift of one metric against the others (inside its own range)
//! opens one device alert naming it, which resolves when the device is back; the learnt state
//! survives a restart (no relearning); a user's `new_normal` resolves the alert and says so.

use rumqttc::{AsyncClient, EventLoop};
use serde_json::{Value, json};

use crate::support::*;
use sentio::node::Node;

const DEVICE: &str = "pump-1";
const TOPIC: &str = "devices/pump-1/telemetry";

/// Flow and pressure of row `i`: pressure follows flow; `gap` moves it off that relation.
fn row(i: i64, gap: f64) -> (f64, f64) {
    let flow = 10.0 + 3.0 * (i as f64 / 5.0).sin() + ((i * 7919) % 13) as f64 * 0.01;
    let pressure = 0.5 * flow + ((i * 104_729) % 11) as f64 * 0.005 + gap;
    (flow, pressure)
}

/// Rows are 30 s apart: the live model judges at most one row per 30 s (`row_every`).
const ROW_MS: i64 = 30_000;

/// Publishes rows `range`, each metric in its own payload 200 ms apart.
async fn publish_rows(
    client: &AsyncClient,
    el: &mut EventLoop,
    t0: i64,
    range: std::ops::Range<i64>,
    gap: f64,
) {
    for i in range {
        let (flow, pressure) = row(i, gap);
        let ts = t0 + i * ROW_MS;
        for payload in [
            json!({"ts": ts, "flow": flow}),
            json!({"ts": ts + 200, "pressure": pressure}),
        ] {
            publish_acked(client, el, TOPIC, payload.to_string().into_bytes())
                .await
                .unwrap();
        }
    }
}

/// The device's device-model alerts, newest first.
async fn device_alerts(node: &Node) -> Vec<Value> {
    alerts_of_kind(node, DEVICE, "device").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_shift_is_one_device_alert_and_the_model_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, DEVICE, "pump").await;
    let t0 = now_ms() - 401 * ROW_MS;
    let (client, mut el) = mqtt_connect(&node, "pump-1-a", DEVICE, &secret)
        .await
        .unwrap();

    // 200 rows of normal operation (the model fits on its first 120), then pressure 0.8 above
    // its relation to flow (its own range is about 3.5..6.5) for 60 rows, then back.
    publish_rows(&client, &mut el, t0, 0..200, 0.0).await;
    assert!(
        device_alerts(&node).await.is_empty(),
        "alert on normal rows"
    );
    publish_rows(&client, &mut el, t0, 200..260, 0.8).await;
    let alert = wait_for_kind(&node, DEVICE, "device", 20).await;
    assert_eq!(alert["metric"], "*", "{alert}");
    let e = &alert["explanation"];
    assert_eq!(e["detector"], "device_model", "{alert}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("pressure") && message.contains('%'),
        "{message}"
    );
    let names: Vec<&str> = e["contributors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metric"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"pressure"), "{alert}");
    publish_rows(&client, &mut el, t0, 260..300, 0.0).await;
    let resolved = eventually(20, || async {
        let all = device_alerts(&node).await;
        (all.len() == 1 && all[0]["state"] == "resolved").then_some(all)
    })
    .await;
    assert!(
        resolved.is_some(),
        "one device alert, resolved: {:#?}",
        device_alerts(&node).await
    );
    drop(client);
    node.shutdown().await;

    // After a restart the model judges at once: a shift shorter than a fit is caught.
    let node = start(dir.path()).await;
    let (client, mut el) = mqtt_connect(&node, "pump-1-b", DEVICE, &secret)
        .await
        .unwrap();
    publish_rows(&client, &mut el, t0, 300..340, 0.8).await;
    let open = eventually(20, || async {
        device_alerts(&node)
            .await
            .into_iter()
            .find(|a| a["state"] == "open")
    })
    .await
    .expect("a device alert after the restart, without relearning");

    // The user says this is the new normal: the alert resolves and says so; the shifted state
    // raises nothing while it is learnt.
    let id = open["id"].as_i64().unwrap();
    let (st, r) = api(
        &node,
        "POST",
        &format!("/api/v1/alerts/{id}/feedback"),
        Some(json!({"new_normal": true})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert!(r["effect"].as_str().unwrap().contains("new normal"), "{r}");
    assert_eq!(r["alert"]["state"], "resolved", "{r}");
    publish_rows(&client, &mut el, t0, 340..400, 0.8).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let all = device_alerts(&node).await;
    assert!(all.iter().all(|a| a["state"] == "resolved"), "{all:#?}");
    assert_eq!(all.len(), 2, "{all:#?}");
    // Only device alerts can become a new normal.
    let (st, e) = api(
        &node,
        "POST",
        &format!("/api/v1/alerts/{id}/feedback"),
        Some(json!({"new_normal": true, "false_alarm": true})),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    drop(client);
    node.shutdown().await;
}
