//! The whole loop through the front door — real MQTT and HTTP clients against a node.

use std::time::Duration;

use crate::support::*;
use futures_util::StreamExt;
use rumqttc::{ConnectReturnCode, ConnectionError};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_and_http_telemetry_come_back_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-1", "room").await;

    let (client, mut el) = mqtt_connect(&node, "dev-1", "dev-1", &secret)
        .await
        .unwrap();
    publish_acked(
        &client,
        &mut el,
        "devices/dev-1/telemetry",
        br#"{"temperature": 21.5, "door_open": true}"#.to_vec(),
    )
    .await
    .unwrap();
    // QoS 1: the PUBACK means the point is stored, so it is there at once.
    let temps = points(&node, "dev-1", "temperature").await;
    assert_eq!(temps.len(), 1);
    assert_eq!(temps[0].1, 21.5);
    assert_eq!(points(&node, "dev-1", "door_open").await[0].1, 1.0);

    // A batch with explicit timestamps, over HTTP with the device's own credentials.
    let t0 = now_ms() - 60_000;
    let batch = json!([{"ts": t0, "humidity": 40.0}, {"ts": t0 + 1000, "humidity": 41.0},
                       {"ts": sentio_core::time::format_time(t0 + 2000), "humidity": 42.0}]);
    let (status, body) = http(
        "POST",
        format!("http://{}/api/v1/devices/dev-1/telemetry", node.http_addr),
        basic("dev-1", &secret),
        Some(batch.to_string().into_bytes()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3);
    let hum = points(&node, "dev-1", "humidity").await;
    assert_eq!(hum, vec![(t0, 40.0), (t0 + 1000, 41.0), (t0 + 2000, 42.0)]);

    // Aggregates.
    let (status, body) = api(
        &node,
        "GET",
        &format!(
            "/api/v1/devices/dev-1/series/humidity?from={}&step=1h&agg=avg",
            t0 - 1
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pts = body["points"].as_array().unwrap();
    let sum: f64 = pts.iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert!(!pts.is_empty() && sum > 40.0 && sum < 83.0, "{body}");

    // The device list and series list show it online with its metrics.
    let (_, dev) = api(&node, "GET", "/api/v1/devices/dev-1", None).await;
    assert_eq!(dev["status"], "online");
    assert!(dev["last_seen_ms"].as_i64().unwrap() > 0);
    let (_, series) = api(&node, "GET", "/api/v1/devices/dev-1/series", None).await;
    let metrics: Vec<&str> = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["door_open", "humidity", "temperature"]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_foreign_topics_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let s1 = register(&node, "dev-1", "room").await;
    let _s2 = register(&node, "dev-2", "room").await;

    // Wrong secret, unknown device, no credentials at all.
    for (user, pass) in [("dev-1", "wrong"), ("ghost", "x"), ("dev-1", "")] {
        match mqtt_connect(&node, "c", user, pass).await {
            Err(ConnectionError::ConnectionRefused(code)) => assert!(
                matches!(
                    code,
                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
                ),
                "{user}: {code:?}"
            ),
            Err(e) => panic!("{user}: unexpected error {e:?}"),
            Ok(_) => panic!("{user}/{pass} was accepted"),
        }
    }
    // Refusals are recorded off the CONNECT path: wait for the record.
    let reason = eventually(10, || async {
        let (_, dev) = api(&node, "GET", "/api/v1/devices/dev-1", None).await;
        dev["last_rejection"]["reason"].as_str().map(str::to_string)
    })
    .await;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("wrong secret")),
        "{reason:?}"
    );

    // dev-1 publishing as dev-2: refused, nothing stored for dev-2.
    let (client, mut el) = mqtt_connect(&node, "dev-1", "dev-1", &s1).await.unwrap();
    let _ = publish_acked(
        &client,
        &mut el,
        "devices/dev-2/telemetry",
        br#"{"t": 1}"#.to_vec(),
    )
    .await;
    assert!(points(&node, "dev-2", "t").await.is_empty());
    let (_, dev) = api(&node, "GET", "/api/v1/devices/dev-1", None).await;
    assert!(
        dev["last_rejection"]["reason"]
            .as_str()
            .unwrap()
            .contains("devices/dev-2/telemetry"),
        "{dev}"
    );

    // Over HTTP: wrong secret 401, posting for another device 403.
    let url = |d: &str| format!("http://{}/api/v1/devices/{d}/telemetry", node.http_addr);
    let (st, body) = http(
        "POST",
        url("dev-1"),
        basic("dev-1", "nope"),
        Some(b"{\"t\":1}".to_vec()),
    )
    .await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    let (st, _) = http(
        "POST",
        url("dev-2"),
        basic("dev-1", &s1),
        Some(b"{\"t\":1}".to_vec()),
    )
    .await;
    assert_eq!(st, 403);
    assert!(points(&node, "dev-2", "t").await.is_empty());

    // The admin API refuses a missing or wrong token.
    let (st, body) = http(
        "GET",
        format!("http://{}/api/v1/devices", node.http_addr),
        None,
        None,
    )
    .await;
    assert_eq!(st, 401);
    assert!(body["detail"].as_str().unwrap().contains("admin.token"));
    let (st, _) = http(
        "GET",
        format!("http://{}/api/v1/devices", node.http_addr),
        Some("Bearer wrong".into()),
        None,
    )
    .await;
    assert_eq!(st, 401);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_get_a_reason_and_earlier_data_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-1", "room").await;
    let (client, mut el) = mqtt_connect(&node, "dev-1", "dev-1", &secret)
        .await
        .unwrap();
    let topic = "devices/dev-1/telemetry";
    publish_acked(&client, &mut el, topic, br#"{"t": 20.0}"#.to_vec())
        .await
        .unwrap();

    let reason = || async {
        let (_, d) = api(&node, "GET", "/api/v1/devices/dev-1", None).await;
        d["last_rejection"]["reason"].as_str().map(str::to_string)
    };
    let far = now_ms() + 86_400_000;
    for (payload, expect) in [
        (b"{not json".to_vec(), "malformed JSON"),
        (br#"{"t": null}"#.to_vec(), "null values are not stored"),
        (
            format!(r#"{{"ts": {far}, "t": 99}}"#).into_bytes(),
            "in the future",
        ),
        (br#"[1, 2]"#.to_vec(), "expected a JSON object"),
    ] {
        publish_acked(&client, &mut el, topic, payload)
            .await
            .unwrap();
        let got = eventually(5, || async {
            reason().await.filter(|r| r.contains(expect))
        })
        .await;
        assert!(
            got.is_some(),
            "no reason containing {expect:?}: {:?}",
            reason().await
        );
    }

    // A 1 MB payload: over the broker's 256 KiB limit; the connection is dropped, the node lives.
    let big = format!(r#"{{"t": 1, "pad": "{}"}}"#, "x".repeat(1 << 20)).into_bytes();
    let r = publish_acked(&client, &mut el, topic, big).await;
    assert!(r.is_err(), "a 1 MB publish should not be acknowledged");
    // Over HTTP the same payload is a 413 with a JSON error, recorded on the device.
    let (st, body) = http(
        "POST",
        format!("http://{}/api/v1/devices/dev-1/telemetry", node.http_addr),
        basic("dev-1", &secret),
        Some(vec![b' '; 1 << 20]),
    )
    .await;
    assert_eq!(st, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");

    // Earlier data is untouched, and the node still takes data.
    assert_eq!(
        points(&node, "dev-1", "t")
            .await
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        [20.0]
    );
    let (client, mut el) = mqtt_connect(&node, "dev-1b", "dev-1", &secret)
        .await
        .unwrap();
    publish_acked(&client, &mut el, topic, br#"{"t": 21.0}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(points(&node, "dev-1", "t").await.len(), 2);
    let (_, d) = api(&node, "GET", "/api/v1/devices/dev-1", None).await;
    assert!(d["rejected_count"].as_u64().unwrap() >= 5, "{d}");
    node.shutdown().await;
}

/// Normal history then a gross spike, posted as one timestamped batch.
fn history_with_spike(t0: i64, n: usize) -> serde_json::Value {
    let mut items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let wobble = ((i * 7919) % 13) as f64 * 0.05;
            json!({"ts": t0 + i as i64 * 1000, "temperature": 21.0 + wobble})
        })
        .collect();
    items.push(json!({"ts": t0 + n as i64 * 1000, "temperature": 95.0}));
    json!(items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_devices_secrets_points_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-1", "room").await;
    let t0 = now_ms() - 3_600_000;
    let (st, body) = http(
        "POST",
        format!("http://{}/api/v1/devices/dev-1/telemetry", node.http_addr),
        basic("dev-1", &secret),
        Some(history_with_spike(t0, 1200).to_string().into_bytes()),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let alert = eventually(10, || async {
        let (_, a) = api(&node, "GET", "/api/v1/alerts?device=dev-1", None).await;
        a["alerts"].as_array().and_then(|v| v.first().cloned())
    })
    .await
    .expect("the spike opens an alert");
    assert_eq!(alert["metric"], "temperature");
    assert_eq!(alert["state"], "open");
    let ex = &alert["explanation"];
    assert_eq!(ex["observed"], 95.0);
    assert!(ex["upper"].as_f64().unwrap() < 95.0, "{ex}");
    assert!(ex["expected"].as_f64().unwrap() < 30.0, "{ex}");
    assert!(!ex["detector"].as_str().unwrap().is_empty());
    node.shutdown().await;

    let node = start(dir.path()).await;
    let (client, mut el) = mqtt_connect(&node, "dev-1", "dev-1", &secret)
        .await
        .expect("the old secret still works after restart");
    publish_acked(
        &client,
        &mut el,
        "devices/dev-1/telemetry",
        br#"{"temperature": 21.1}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(points(&node, "dev-1", "temperature").await.len(), 1202);
    let (_, a) = api(&node, "GET", "/api/v1/alerts?device=dev-1", None).await;
    assert_eq!(a["alerts"][0]["id"], alert["id"], "{a}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_stream_carries_live_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-1", "room").await;
    let url = format!("ws://{}/api/v1/stream?token={TOKEN}", node.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let (client, mut el) = mqtt_connect(&node, "dev-1", "dev-1", &secret)
        .await
        .unwrap();
    publish_acked(
        &client,
        &mut el,
        "devices/dev-1/telemetry",
        br#"{"co2": 612}"#.to_vec(),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let msg = ws.next().await.unwrap().unwrap();
            let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            if v["type"] == "telemetry" {
                return v;
            }
        }
    })
    .await
    .expect("a telemetry event");
    assert_eq!(ev["device"], "dev-1");
    assert_eq!(ev["points"][0][0], "co2");
    assert_eq!(ev["points"][0][2], 612.0);

    // Without the token, no stream.
    let bad = format!("ws://{}/api/v1/stream", node.http_addr);
    assert!(tokio_tungstenite::connect_async(bad).await.is_err());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_json_with_fitting_status() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register(&node, "dev-1", "room").await;
    let cases = [
        ("POST", "/api/v1/devices", Some(json!({"id": "dev-1"})), 409),
        (
            "POST",
            "/api/v1/devices",
            Some(json!({"id": "bad id!"})),
            400,
        ),
        (
            "POST",
            "/api/v1/devices",
            Some(json!({"name": "no id"})),
            422,
        ),
        ("GET", "/api/v1/devices/nope", None, 404),
        ("DELETE", "/api/v1/devices/nope", None, 404),
        (
            "GET",
            "/api/v1/devices/dev-1/series/t?from=yesterday",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/devices/dev-1/series/t?step=1y&agg=avg",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/devices/dev-1/series/t?step=1m&agg=median",
            None,
            400,
        ),
        ("GET", "/api/v1/alerts?state=maybe", None, 400),
        ("GET", "/api/v1/nothing-here", None, 404),
    ];
    for (method, path, body, want) in cases {
        let (st, b) = api(&node, method, path, body).await;
        assert_eq!(st, want, "{method} {path}: {b}");
        assert!(
            b["error"].is_string() && b["detail"].is_string(),
            "{method} {path}: {b}"
        );
    }
    let (st, h) = http(
        "GET",
        format!("http://{}/api/v1/health", node.http_addr),
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(h["status"], "ok");

    // Deleting with erase reports what went.
    let (st, b) = api(&node, "DELETE", "/api/v1/devices/dev-1?erase=true", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["removed"]["devices"], 1);
    let (st, _) = api(&node, "GET", "/api/v1/devices/dev-1", None).await;
    assert_eq!(st, 404);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_and_content_type_are_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (st, b) = api(&node, "PUT", "/api/v1/devices", None).await;
    assert_eq!(st, 405, "{b}");
    assert_eq!(b["error"], "method_not_allowed");
    let (st, b) = http(
        "POST",
        format!("http://{}/api/v1/devices", node.http_addr),
        bearer(),
        None,
    )
    .await;
    // An empty body with a JSON content type is an invalid body, not a server error.
    assert!(st == 400 || st == 422, "{st} {b}");
    assert!(b["error"].is_string(), "{b}");
    let (st, b) = api(&node, "GET", "/api/v1/alerts?limit=-1", None).await;
    assert_eq!(st, 400);
    assert!(b["detail"].as_str().unwrap().contains("limit"), "{b}");
    node.shutdown().await;
}
