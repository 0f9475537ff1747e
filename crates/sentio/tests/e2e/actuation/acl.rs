//! The device ACL around commands and twins: a device may subscribe to its own command topics
//! and desired twin, and publish its own replies and reported twin; it can neither read nor
//! answer another device's, nor forge what the node publishes to itself (a command, or a
//! retained desired twin).

use rumqttc::SubscribeReasonCode;
use serde_json::json;

use super::device::{Device, send_command, wait_state};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_touch_another_devices_commands_or_twin_nor_forge_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret_a = register(&node, "dev-a", "sensor").await;
    let secret_b = register(&node, "dev-b", "sensor").await;
    let mut a = Device::connect(&node, "dev-a", &secret_a, "x").await;
    let refused = a
        .subscribe(&[
            "devices/dev-b/commands/+".into(),
            "devices/dev-b/twin/desired".into(),
            "devices/+/twin/desired".into(),
            "devices/dev-a/twin/#".into(),
        ])
        .await;
    assert_eq!(refused, vec![SubscribeReasonCode::Failure; 4]);
    a.subscribe_own().await;

    // dev-b's command cannot be answered by dev-a.
    let (_, cmd) = send_command(&node, "dev-b", json!({"name": "open"})).await;
    let cid = cmd["id"].as_str().unwrap();
    a.publish(
        &format!("devices/dev-b/commands/{cid}/reply"),
        &json!({"status": "ok"}),
    )
    .await;
    a.publish("devices/dev-b/twin/reported", &json!({"hacked": true}))
        .await;
    // Nor can dev-a forge the node's messages to itself: its desired twin (retained) or a command.
    a.publish_retained(
        "devices/dev-a/twin/desired",
        &json!({"version": 99, "desired": {"x": 1}}),
    )
    .await;
    a.publish("devices/dev-a/commands/c-forged", &json!({"name": "self"}))
        .await;
    assert!(
        a.next_message(1).await.is_none(),
        "dev-a got a forged message"
    );
    a.idle(300).await;

    let (_, c) = api(
        &node,
        "GET",
        &format!("/api/v1/devices/dev-b/commands/{cid}"),
        None,
    )
    .await;
    assert_eq!(c["state"], "pending", "{c}");
    let (_, twin_b) = api(&node, "GET", "/api/v1/devices/dev-b/twin", None).await;
    assert_eq!(twin_b["reported"], json!({}));
    // A device subscribing later to its desired twin finds no forged retained message.
    let mut a2 = Device::connect(&node, "dev-a", &secret_a, "y").await;
    a2.subscribe_own().await;
    assert!(
        a2.next_message(1).await.is_none(),
        "a forged desired twin was retained"
    );
    // The refusals are recorded on the device.
    let (_, dev) = api(&node, "GET", "/api/v1/devices/dev-a", None).await;
    assert!(
        dev["last_rejection"].to_string().contains("refused"),
        "{dev}"
    );
    // dev-b itself may do all of it.
    let mut b = Device::connect(&node, "dev-b", &secret_b, "x").await;
    b.subscribe_own().await;
    b.next_message(5).await.expect("dev-b gets its command");
    b.publish(
        &format!("devices/dev-b/commands/{cid}/reply"),
        &json!({"status": "ok"}),
    )
    .await;
    wait_state(&node, "dev-b", cid, "succeeded", 5).await;
    node.shutdown().await;
}
