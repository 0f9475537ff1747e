//! Text values are kept as events (the latest and a bounded history), not dropped.

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_values_are_kept_as_bounded_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "press-1", "press").await;
    let url = format!("http://{}/api/v1/devices/press-1/telemetry", node.http_addr);
    // Recent timestamps: the node refuses points older than its late-point window (7 days).
    let t0 = sentio_core::time::now_ms() - 600_000;

    // Over HTTP: a number and a text in one reading.
    let (st, r) = http(
        "POST",
        url.clone(),
        basic("press-1", &secret),
        Some(
            json!({"ts": t0 + 1000, "state": "running", "pressure": 3.5})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["events"], 1);

    // Over MQTT, QoS 1: acknowledged once stored.
    let (client, mut el) = mqtt_connect(&node, "press-1-c", "press-1", &secret)
        .await
        .unwrap();
    publish_acked(
        &client,
        &mut el,
        "devices/press-1/telemetry",
        json!({"ts": t0 + 2000, "state": "stopped"})
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();

    let (st, e) = api(&node, "GET", "/api/v1/devices/press-1/events", None).await;
    assert_eq!(st, 200, "{e}");
    let texts: Vec<&str> = e["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["stopped", "running"], "newest first");

    // Too long a text is refused with its reason; the rest of the reading is kept.
    let long = json!({"ts": t0 + 3000, "state": "x".repeat(2000), "pressure": 3.6});
    let (st, r) = http(
        "POST",
        url.clone(),
        basic("press-1", &secret),
        Some(long.to_string().into_bytes()),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["accepted"], 1);
    assert!(
        r["rejected"][0]
            .as_str()
            .unwrap()
            .contains("longer than the limit"),
        "{r}"
    );

    // The history is bounded: the newest 1,000 per metric are kept.
    let batch: Vec<Value> = (0..1_005)
        .map(|i| json!({"ts": t0 + 10_000 + i, "mode": format!("m{i}")}))
        .collect();
    let (st, r) = http(
        "POST",
        url.clone(),
        basic("press-1", &secret),
        Some(serde_json::to_vec(&batch).unwrap()),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let (st, e) = api(
        &node,
        "GET",
        "/api/v1/devices/press-1/events?metric=mode&limit=1000",
        None,
    )
    .await;
    assert_eq!(st, 200, "{e}");
    let ev = e["events"].as_array().unwrap();
    assert_eq!(ev.len(), 1_000);
    assert_eq!(ev[0]["text"], "m1004");
    assert_eq!(ev[999]["text"], "m5");
    let (st, _) = api(&node, "GET", "/api/v1/devices/press-1/events?limit=0", None).await;
    assert_eq!(st, 400);
    let (st, _) = api(&node, "GET", "/api/v1/devices/nobody/events", None).await;
    assert_eq!(st, 404);

    // Erasure removes them, and says how many.
    let (st, d) = api(&node, "DELETE", "/api/v1/devices/press-1?erase=true", None).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["removed"]["events"], 1_002, "{d}");
    node.shutdown().await;
}
