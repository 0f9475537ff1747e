//! Twins: the device reports and the delta shrinks; a desired change reaches a subscribed
//! device (latency printed); two PATCHes from the same version: one 200, one 412 with the
//! version now; a document past 32 KiB: 413.

use std::time::Instant;

use serde_json::{Value, json};

use super::device::Device;
use crate::support::*;
use sentio::node::Node;

async fn patch_twin(
    node: &Node,
    device: &str,
    if_match: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut headers = vec![("Authorization".to_string(), format!("Bearer {TOKEN}"))];
    if let Some(v) = if_match {
        headers.push(("If-Match".to_string(), v.to_string()));
    }
    let r = http_with(
        "PATCH",
        format!("http://{}/api/v1/devices/{device}/twin", node.http_addr),
        headers,
        Some(body),
        None,
    )
    .await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_reaches_the_device_reported_closes_the_delta() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-2", "room").await;
    let mut dev = Device::connect(&node, "room-2", &secret, "a").await;
    dev.subscribe_own().await;
    let mut latencies = Vec::new();
    for i in 0..20 {
        let sent = Instant::now();
        let (st, twin) = patch_twin(&node, "room-2", None, json!({"desired": {"fan": i}})).await;
        assert_eq!(st, 200, "{twin}");
        let (topic, body) = dev.next_message(5).await.expect("the desired twin arrives");
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(topic, "devices/room-2/twin/desired");
        assert_eq!(body, json!({"version": i + 1, "desired": {"fan": i}}));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "desired twin change -> subscribed device over {} changes: p50 {:.1} ms, max {:.1} ms",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    let (_, twin) = api(&node, "GET", "/api/v1/devices/room-2/twin", None).await;
    assert_eq!(twin["delta"], json!({"fan": 19}));
    dev.publish(
        "devices/room-2/twin/reported",
        &json!({"fan": 19, "temp": 20.5}),
    )
    .await;
    let twin = eventually(5, || async {
        let (_, t) = api(&node, "GET", "/api/v1/devices/room-2/twin", None).await;
        (t["delta"] == json!({})).then_some(t)
    })
    .await
    .expect("the report closes the delta");
    assert_eq!(twin["reported"], json!({"fan": 19, "temp": 20.5}));
    assert_eq!(twin["version"], 20, "a report does not change the version");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_lets_one_of_two_writers_win_and_the_size_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register(&node, "room-3", "room").await;
    let (st, twin) = patch_twin(&node, "room-3", Some("\"0\""), json!({"light": "on"})).await;
    assert_eq!((st, &twin["version"]), (200, &json!(1)), "{twin}");
    // Two writers who both read version 1.
    let (a, b) = tokio::join!(
        patch_twin(&node, "room-3", Some("\"1\""), json!({"light": "off"})),
        patch_twin(&node, "room-3", Some("\"1\""), json!({"light": "dim"})),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{a:?} {b:?}");
    let loser = if a.0 == 412 { a.1 } else { b.1 };
    assert_eq!(loser["error"], "version_mismatch");
    assert_eq!(loser["version"], 2, "{loser}");
    // 413 past 32 KiB; nothing changed.
    let big = json!({"blob": "x".repeat(40_000)});
    let (st, body) = patch_twin(&node, "room-3", None, big).await;
    assert_eq!(st, 413, "{body}");
    let (_, twin) = api(&node, "GET", "/api/v1/devices/room-3/twin", None).await;
    assert_eq!(twin["version"], 2);
    let (st, _) = patch_twin(&node, "room-3", Some("three"), json!({"a": 1})).await;
    assert_eq!(st, 400);
    let (st, _) = patch_twin(&node, "room-3", None, json!([1, 2])).await;
    assert_eq!(st, 422);
    node.shutdown().await;
}
