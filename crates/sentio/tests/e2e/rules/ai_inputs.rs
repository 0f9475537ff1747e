//! Rules reading the AI engine: on a pump publishing over MQTT, `anomaly("temp") > 0.7` opens
//! on the spike the anomaly alert opens on, with the same fused score; `forecast("bearing_temp",
//! "5m") > 90` opens while the bearing is still well below 90 because its forecast crosses it;
//! replaying both over the stored history opens them at the same instants; an unknown metric in
//! an AI call is refused with 422 and its position.

use rumqttc::{AsyncClient, EventLoop};
use serde_json::{Value, json};

use crate::support::*;
use sentio::node::Node;

const DEVICE: &str = "pump-7";
const TOPIC: &str = "devices/pump-7/telemetry";
/// The second (from the start) the temperature spikes at.
const SPIKE_S: i64 = 500;
const SECONDS: i64 = 600;

/// The pump's `s`th second: temperature flat with a little noise and one spike; the bearing
/// rising 0.05 degrees a second from 60.
fn second(t0: i64, s: i64) -> Value {
    let temp = if s == SPIKE_S {
        60.0
    } else {
        20.0 + (s % 7) as f64 * 0.05
    };
    json!({"ts": t0 + s * 1_000, "temp": temp, "bearing_temp": 60.0 + 0.05 * s as f64})
}

async fn publish_history(client: &AsyncClient, el: &mut EventLoop, t0: i64) {
    for chunk in (0..SECONDS).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<Value> = chunk.iter().map(|&s| second(t0, s)).collect();
        let payload = serde_json::to_vec(&batch).unwrap();
        publish_acked(client, el, TOPIC, payload).await.unwrap();
    }
}

async fn create(node: &Node, id: &str, metrics: &[&str], condition: &str) -> (u16, Value) {
    let rule = json!({
        "id": id,
        "name": id,
        "selector": {"devices": [DEVICE], "metrics": metrics},
        "condition": condition,
        "clear_for": "0s",
        "cool_down": "0s",
    });
    api(node, "POST", "/api/v1/rules", Some(rule)).await
}

/// The first time the rule's replay over `[from, to)` opens its alert on the pump.
async fn replayed_opening(node: &Node, id: &str, from: i64, to: i64) -> i64 {
    let (st, body) = api(
        node,
        "POST",
        &format!("/api/v1/rules/{id}/test?from={from}&to={to}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body["devices"][0]["episodes"][0]["opened_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("the replay of {id} opens: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_read_the_anomaly_score_and_the_forecast_live_and_in_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, DEVICE, "pump").await;

    let (st, body) = create(&node, "bad", &["temp"], r#"anomaly("humidity") > 0.9"#).await;
    assert_eq!(st, 422, "{body}");
    assert!(
        body.to_string().contains("humidity") && body.to_string().contains("column"),
        "{body}"
    );
    let (st, body) = create(&node, "spike", &["temp"], r#"anomaly("temp") > 0.7"#).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = create(
        &node,
        "bearing",
        &["bearing_temp"],
        r#"forecast("bearing_temp", "5m") > 90.0"#,
    )
    .await;
    assert_eq!(st, 201, "{body}");

    let (client, mut el) = mqtt_connect(&node, "pump-7-a", DEVICE, &secret)
        .await
        .unwrap();
    let t0 = (now_ms() - 30 * 60_000) / 1_000 * 1_000;
    publish_history(&client, &mut el, t0).await;

    let open = |metric: &'static str| {
        let node = &node;
        async move {
            eventually(30, || async {
                alerts_of(node, DEVICE)
                    .await
                    .into_iter()
                    .find(|a| a["metric"] == metric)
            })
            .await
            .unwrap_or_else(|| panic!("an alert on {metric}"))
        }
    };
    let spike = open("rule/spike").await;
    let anomaly = open("temp").await;
    let spike_ms = t0 + SPIKE_S * 1_000;
    assert_eq!(spike["opened_ms"], spike_ms, "{spike}");
    assert_eq!(anomaly["opened_ms"], spike_ms, "{anomaly}");
    let (st, traces) = api(&node, "GET", "/api/v1/rules/spike/traces", None).await;
    assert_eq!(st, 200, "{traces}");
    let opened = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["decision"] == "opened")
        .cloned()
        .expect("an opened trace");
    let score = opened["windows"]["anomaly(temp)"].as_f64().unwrap();
    assert!(score > 0.7, "{opened}");
    let alert_score = anomaly["explanation"]["score"].as_f64().unwrap();
    assert!(
        (score - alert_score).abs() < 1e-9,
        "the rule reads the score the anomaly alert has: {score} vs {alert_score}"
    );

    let bearing = open("rule/bearing").await;
    let opened_ms = bearing["opened_ms"].as_i64().unwrap();
    let at_s = (opened_ms - t0) / 1_000;
    let bearing_then = 60.0 + 0.05 * at_s as f64;
    assert!(
        (200..SECONDS).contains(&at_s) && bearing_then < 85.0,
        "opened at {at_s} s with the bearing at {bearing_then}, before it nears 90"
    );

    let to = t0 + SECONDS * 1_000;
    assert_eq!(replayed_opening(&node, "spike", t0, to).await, spike_ms);
    assert_eq!(
        replayed_opening(&node, "bearing", t0, to).await,
        opened_ms,
        "the replay forecasts as the live rule did"
    );
    node.shutdown().await;
}
