//! Commands to an online device: pending → delivered (its PUBACK) → succeeded (its reply),
//! with the API → device latency printed; a command that expires and is answered late; and the
//! bound of open commands per device (429).

use std::time::Instant;

use serde_json::json;

use super::device::{Device, send_command, wait_state};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_to_an_online_device_is_delivered_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "pump-1", "pump").await;
    let mut dev = Device::connect(&node, "pump-1", &secret, "a").await;
    dev.subscribe_own().await;

    let mut latencies = Vec::new();
    for round in 0..20 {
        let sent = Instant::now();
        let (st, cmd) = send_command(
            &node,
            "pump-1",
            json!({"name": "set_speed", "params": {"rpm": 900 + round}, "ttl": 60}),
        )
        .await;
        assert_eq!(st, 201, "{cmd}");
        let id = cmd["id"].as_str().unwrap().to_string();
        let (topic, body) = dev.next_message(5).await.expect("the command arrives");
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(topic, format!("devices/pump-1/commands/{id}"));
        assert_eq!(body["name"], "set_speed");
        assert_eq!(body["params"], json!({"rpm": 900 + round}));
        assert_eq!(body["id"], id.as_str());
        if round > 0 {
            continue;
        }
        assert_eq!(cmd["topic"], topic.as_str());
        // Its PUBACK went out when the message was read: delivered.
        dev.idle(200).await;
        let delivered = wait_state(&node, "pump-1", &id, "delivered", 5).await;
        assert!(delivered["delivered_ms"].is_i64(), "{delivered}");
        dev.publish(
            &format!("devices/pump-1/commands/{id}/reply"),
            &json!({"status": "ok", "rpm": 900}),
        )
        .await;
        let done = wait_state(&node, "pump-1", &id, "succeeded", 5).await;
        assert_eq!(done["reply"], json!({"status": "ok", "rpm": 900}));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "command API -> device latency over {} commands: p50 {:.1} ms, max {:.1} ms",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // A failed reply, the history newest first, the audit log.
    let (_, cmd) = send_command(&node, "pump-1", json!({"name": "reboot"})).await;
    let id = cmd["id"].as_str().unwrap();
    dev.next_message(5).await.expect("the command arrives");
    dev.publish(
        &format!("devices/pump-1/commands/{id}/reply"),
        &json!({"status": "error", "detail": "busy"}),
    )
    .await;
    wait_state(&node, "pump-1", id, "failed", 5).await;
    let (st, list) = api(
        &node,
        "GET",
        "/api/v1/devices/pump-1/commands?limit=2",
        None,
    )
    .await;
    assert_eq!(st, 200);
    let list = list["commands"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], id);
    let (_, audit) = api(
        &node,
        "GET",
        "/api/v1/audit?action=command.sent&device=pump-1",
        None,
    )
    .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(21),
        "{audit}"
    );
    // Unknown devices and commands, bad bodies.
    let (st, _) = send_command(&node, "nobody", json!({"name": "x"})).await;
    assert_eq!(st, 404);
    let (st, _) = api(&node, "GET", "/api/v1/devices/pump-1/commands/c-0", None).await;
    assert_eq!(st, 404);
    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "ttl": "8d"}),
        json!({"name": "x", "ttl": "soon"}),
    ] {
        let (st, body) = send_command(&node, "pump-1", bad.clone()).await;
        assert_eq!(st, 422, "{bad} -> {body}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_command_records_a_late_reply() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "valve-1", "valve").await;
    let mut dev = Device::connect(&node, "valve-1", &secret, "a").await;
    dev.subscribe_own().await;
    let (st, cmd) = send_command(&node, "valve-1", json!({"name": "close", "ttl": "1s"})).await;
    assert_eq!(st, 201, "{cmd}");
    let id = cmd["id"].as_str().unwrap();
    dev.next_message(5).await.expect("the command arrives");
    dev.idle(200).await;
    wait_state(&node, "valve-1", id, "delivered", 5).await;
    let expired = wait_state(&node, "valve-1", id, "expired", 5).await;
    assert!(expired.get("reply").is_none(), "{expired}");
    dev.publish(
        &format!("devices/valve-1/commands/{id}/reply"),
        &json!({"status": "ok"}),
    )
    .await;
    let late = eventually(5, || async {
        let (_, c) = api(
            &node,
            "GET",
            &format!("/api/v1/devices/valve-1/commands/{id}"),
            None,
        )
        .await;
        c.get("reply").is_some().then_some(c)
    })
    .await
    .expect("the late reply is recorded");
    assert_eq!(late["state"], "expired", "{late}");
    assert_eq!(late["reply"], json!({"status": "ok"}));
    assert!(
        late["replied_ms"].as_i64().unwrap() > late["expires_ms"].as_i64().unwrap(),
        "{late}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_100_open_commands_a_device_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register(&node, "lamp-1", "lamp").await;
    for i in 0..100 {
        let (st, body) = send_command(&node, "lamp-1", json!({"name": "blink", "params": i})).await;
        assert_eq!(st, 201, "command {i}: {body}");
    }
    let (st, body) = send_command(&node, "lamp-1", json!({"name": "blink"})).await;
    assert_eq!(st, 429, "{body}");
    assert_eq!(body["error"], "too_many");
    // Another device is not affected.
    register(&node, "lamp-2", "lamp").await;
    let (st, _) = send_command(&node, "lamp-2", json!({"name": "blink"})).await;
    assert_eq!(st, 201);
    node.shutdown().await;
}
