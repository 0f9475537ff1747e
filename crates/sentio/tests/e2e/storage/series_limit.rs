//! The per-device series limit: one device inventing metric names cannot grow the node without
//! bound. Past `pipeline.max_series_per_device` (1,000 by default) its new metrics are refused
//! with a reason recorded on the device and counted in `/metrics`, its existing metrics keep
//! being stored, and erasing the device frees its count (a new device of the same id starts at
//! zero).

use crate::support::*;
use serde_json::{Map, Value, json};

const DEVICE: &str = "name-inventor";

/// One payload of `n` metrics named `prefix0000..`, each with value 1.
fn metrics(prefix: &str, n: usize, ts: i64) -> Vec<Value> {
    let mut item = Map::new();
    item.insert("ts".into(), json!(ts));
    for i in 0..n {
        item.insert(format!("{prefix}{i:04}"), json!(1.0));
    }
    vec![Value::Object(item)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_past_its_series_limit_is_refused_new_metrics_and_erasure_frees_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, DEVICE, "meter").await;
    let now = sentio_core::time::now_ms();

    // The default limit: 1,000 of 1,200 new metrics are stored, 200 refused with the reason.
    let (st, b) = post_telemetry(&node, DEVICE, &secret, &metrics("m", 1_200, now - 2_000)).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["accepted"], 1_000, "{b}");
    let reasons = b["rejected"].to_string();
    assert!(
        reasons.contains("series limit") && reasons.contains("200 new metric"),
        "{b}"
    );
    assert_eq!(
        metric_value(&node, "sentio_series_limit_refusals_total").await,
        200
    );
    let (_, device) = api(&node, "GET", &format!("/api/v1/devices/{DEVICE}"), None).await;
    assert!(
        device["last_rejection"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("pipeline.max_series_per_device")),
        "{device}"
    );

    // Metrics it already has are still stored; still no new one.
    let mut more = metrics("m", 3, now - 1_000);
    more[0]["brand-new"] = json!(2.0);
    let (st, b) = post_telemetry(&node, DEVICE, &secret, &more).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["accepted"], 3, "{b}");
    assert_eq!(points(&node, DEVICE, "m0001").await.len(), 2);
    assert!(points(&node, DEVICE, "brand-new").await.is_empty());
    assert!(points(&node, DEVICE, "m1100").await.is_empty());

    // A payload made only of refused metrics is refused as a whole.
    let (st, b) = post_telemetry(&node, DEVICE, &secret, &metrics("x", 5, now)).await;
    assert_eq!(st, 422, "{b}");

    // Erased: the same id registered again starts with no metrics counted.
    let (st, b) = api(
        &node,
        "DELETE",
        &format!("/api/v1/devices/{DEVICE}?erase=true"),
        None,
    )
    .await;
    assert!(st == 200 || st == 204, "{st} {b}");
    let secret = register(&node, DEVICE, "meter").await;
    let (st, b) = post_telemetry(&node, DEVICE, &secret, &metrics("n", 1_000, now)).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["accepted"], 1_000, "{b}");
}
