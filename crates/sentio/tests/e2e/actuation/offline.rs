//! A device offline while a command and a desired change are sent, then a restart of Sentio,
//! then the device connects and subscribes: it gets the commands in order and the desired
//! twin, each within a second of subscribing (printed). A device with a persistent session
//! that reconnects without subscribing again gets the commands sent while it was away, also
//! across a restart.

use std::time::Instant;

use serde_json::json;

use super::device::{Device, send_command, wait_state};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_device_gets_its_commands_in_order_and_its_twin_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-1", "room").await;
    let mut ids = Vec::new();
    for name in ["lights_off", "heat_back", "vent_low"] {
        let (st, cmd) = send_command(&node, "room-1", json!({"name": name, "ttl": "10m"})).await;
        assert_eq!(st, 201, "{cmd}");
        assert_eq!(cmd["state"], "pending", "offline: not delivered");
        ids.push(cmd["id"].as_str().unwrap().to_string());
    }
    let (st, twin) = api(
        &node,
        "PATCH",
        "/api/v1/devices/room-1/twin",
        Some(json!({"desired": {"setpoint": 17.5, "lights": "off"}})),
    )
    .await;
    assert_eq!(st, 200, "{twin}");
    assert_eq!(twin["version"], 1);
    node.shutdown().await;

    let node = start(dir.path()).await;
    let mut dev = Device::connect(&node, "room-1", &secret, "a").await;
    let subscribed = Instant::now();
    dev.subscribe_own().await;
    let mut commands = Vec::new();
    let mut desired = None;
    let mut last_ms = 0.0;
    while commands.len() < 3 || desired.is_none() {
        let (topic, body) = dev
            .next_message(5)
            .await
            .unwrap_or_else(|| panic!("got {commands:?} and {desired:?} only"));
        last_ms = subscribed.elapsed().as_secs_f64() * 1000.0;
        if topic == "devices/room-1/twin/desired" {
            desired = Some(body);
        } else {
            commands.push(body["id"].as_str().unwrap().to_string());
        }
    }
    println!(
        "offline commands and twin delivered {last_ms:.1} ms after the SUBSCRIBE (across a restart)"
    );
    assert!(last_ms < 1_000.0, "within 1 s of subscribing: {last_ms} ms");
    assert_eq!(commands, ids, "in the order they were sent");
    assert_eq!(
        desired.unwrap(),
        json!({"version": 1, "desired": {"setpoint": 17.5, "lights": "off"}})
    );
    dev.idle(200).await;
    for id in &ids {
        wait_state(&node, "room-1", id, "delivered", 5).await;
    }
    node.shutdown().await;
}

/// Connects `id` as a persistent session (clean session 0) under client id `<id>-p`.
async fn connect_persistent(node: &sentio::node::Node, id: &str, secret: &str) -> Device {
    let mut o = rumqttc::MqttOptions::new(format!("{id}-p"), "127.0.0.1", node.mqtt_addr.port());
    o.set_credentials(id, secret);
    o.set_clean_session(false);
    o.set_keep_alive(std::time::Duration::from_secs(10));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
    next_v3(&mut el, |p| {
        matches!(p, rumqttc::Packet::ConnAck(_)).then_some(())
    })
    .await
    .expect("the device connects");
    Device {
        id: id.to_string(),
        client,
        el,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_gets_commands_sent_while_away_without_subscribing_again() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "pump-1", "pump").await;
    let mut dev = connect_persistent(&node, "pump-1", &secret).await;
    dev.subscribe(&["devices/pump-1/commands/+".to_string()])
        .await;
    dev.client.disconnect().await.unwrap();
    dev.idle(200).await;
    drop(dev);
    let mut ids = Vec::new();
    for name in ["slow_down", "stop"] {
        let (st, cmd) = send_command(&node, "pump-1", json!({"name": name, "ttl": "10m"})).await;
        assert_eq!(st, 201, "{cmd}");
        assert_eq!(cmd["state"], "pending", "offline: not delivered");
        ids.push(cmd["id"].as_str().unwrap().to_string());
    }
    node.shutdown().await;

    let node = start(dir.path()).await;
    let mut dev = connect_persistent(&node, "pump-1", &secret).await;
    let mut commands = Vec::new();
    while commands.len() < 2 {
        let (topic, body) = dev
            .next_message(5)
            .await
            .unwrap_or_else(|| panic!("got {commands:?} only, without a new SUBSCRIBE"));
        assert!(topic.starts_with("devices/pump-1/commands/"), "{topic}");
        commands.push(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(commands, ids, "in the order they were sent");
    dev.idle(200).await;
    for id in &ids {
        wait_state(&node, "pump-1", id, "delivered", 5).await;
    }
    node.shutdown().await;
}
