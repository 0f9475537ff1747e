//! History as a head start: a device whose points are in the store but whose detectors learnt
//! nothing (data written before detector state existed, or a kill before the first save) is
//! seeded from its stored history at its first live point, so a reading far outside that
//! history is an anomaly at once instead of passing through a fresh detector's warm-up.

use std::sync::Arc;

use sentio::config::SpanOrNone;
use sentio_core::{DeviceId, Point};
use sentio_store::{DeviceRegistry, NewDevice, SeriesStore, SqliteStore};
use serde_json::json;

use crate::support::*;

const DEVICE: &str = "boiler-1";

/// Writes 10 minutes of a steady 1 Hz temperature straight into the data directory's store,
/// as a node would have stored it, with no detector state; returns the device's secret.
async fn stored_history(dir: &std::path::Path, now: i64) -> String {
    let store = SqliteStore::open(dir).unwrap();
    let mut device = NewDevice::new(DEVICE);
    device.kind = Some("boiler".into());
    let (_, secret) = store.create_device(device).await.unwrap();
    let id = DeviceId::parse(DEVICE).unwrap();
    let metric: Arc<str> = "temperature".into();
    let start = now - 610_000;
    let points: Vec<Point> = (0..600)
        .map(|i| Point {
            device: id.clone(),
            metric: metric.clone(),
            ts_ms: start + i * 1_000,
            value: 60.0 + ((i * 7_919) % 13) as f64 * 0.05,
        })
        .collect();
    store.append(&points).await.unwrap();
    store.touch(&[(id, start + 599_000)]).await.unwrap();
    secret
}

/// Three readings at 95 °C now, posted and scored.
async fn overheat(node: &sentio::node::Node, secret: &str, now: i64) {
    let items: Vec<_> = (0..3)
        .map(|i| json!({"ts": now + i * 1_000, "temperature": 95.0}))
        .collect();
    let (st, body) = post_telemetry(node, DEVICE, secret, &items).await;
    assert!(st == 200 || st == 202, "{st} {body}");
    // Scored: the node's count of scored points reaches them.
    eventually(20, || async {
        (metric_value(node, "sentio_points_scored_total").await >= 3).then_some(())
    })
    .await
    .expect("the readings are scored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_stored_history_and_nothing_learnt_is_judged_from_its_first_live_point() {
    let now = sentio_core::time::now_ms();

    let dir = tempfile::tempdir().unwrap();
    let secret = stored_history(dir.path(), now).await;
    let node = start(dir.path()).await;
    overheat(&node, &secret, now).await;
    let alert = wait_for_kind(&node, DEVICE, "anomaly", 20).await;
    assert_eq!(alert["metric"], "temperature", "{alert:#}");
    let alerts = alerts_of_kind(&node, DEVICE, "anomaly").await;
    assert_eq!(
        alerts.len(),
        1,
        "one anomaly alert after the head start: {alerts:#?}"
    );
    node.shutdown().await;

    // The same history with the head start turned off: a fresh detector is still warming up.
    let dir = tempfile::tempdir().unwrap();
    let secret = stored_history(dir.path(), now).await;
    let node = start_with(dir.path(), |c| c.ai.seed_history = SpanOrNone(None)).await;
    overheat(&node, &secret, now).await;
    // The alert of a scored point is saved right after it is scored: give it that moment.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let alerts = alerts_of_kind(&node, DEVICE, "anomaly").await;
    assert!(
        alerts.is_empty(),
        "no head start, no judgement yet: {alerts:#?}"
    );
    node.shutdown().await;
}
