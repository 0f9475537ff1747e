//! Commands down through the edge: a command created on the cloud for a device of the edge
//! goes down to the edge (`edges/<id>/down/commands`), which keeps it under the cloud's id and
//! delivers it; the device's reply reaches the cloud (`up/commands`), whose command shows it.
//! A command sent while the device is offline waits on the edge (also across a restart of the
//! edge, which makes the cloud send it again) and is delivered once when the device
//! reconnects. Real processes and the fault proxy (see `uplink`).

use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::*;

use super::uplink::{EDGE, Pair, get_when};

const DEVICE: &str = "lamp-1";
const EDGE_TOML: &str = "ack_timeout = \"3s\"\nkeep_alive = \"5s\"";

/// The device on the edge, subscribed to its commands: the client and the commands it gets
/// (topic, body).
async fn connect(
    pair: &Pair,
    secret: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Value)>) {
    let filter = format!("devices/{DEVICE}/commands/+");
    pair.listening_device(DEVICE, secret, &filter).await
}

async fn send(http: &str, name: &str) -> String {
    let (status, body) = api_at(
        http,
        "POST",
        &format!("/api/v1/devices/{DEVICE}/commands"),
        Some(json!({"name": name, "params": {"on": true}, "ttl": "10m"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// The command `id` on the node at `http` once `done` holds for it.
async fn wait(http: &str, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/devices/{DEVICE}/commands/{id}");
    get_when(http, &path, secs, done).await
}

/// Receives the next command, answers it `{"status":"ok"}`; its id.
async fn answer(client: &AsyncClient, rx: &mut mpsc::UnboundedReceiver<(String, Value)>) -> String {
    let (topic, body) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no command reached the device")
        .unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(topic, format!("devices/{DEVICE}/commands/{id}"));
    client
        .publish(
            format!("{topic}/reply"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&json!({"status": "ok", "level": 3})).unwrap(),
        )
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_command_reaches_the_edge_device_and_its_reply_comes_back_also_after_it_was_offline()
 {
    let _heavy = heavy().await;
    let mut pair = Pair::start(EDGE_TOML).await;
    let secret = pair.register_device(DEVICE).await;
    eventually(30, || async {
        let (status, body) = api_at(
            &pair.cloud_http,
            "GET",
            &format!("/api/v1/devices/{DEVICE}"),
            None,
        )
        .await;
        (status == 200 && body["edge"] == EDGE).then_some(())
    })
    .await
    .expect("the edge's device did not reach the cloud");

    // Online: down, delivered, answered, and the cloud shows the answer.
    let (client, mut rx) = connect(&pair, &secret).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = now_ms();
    let first = send(&pair.cloud_http, "light").await;
    assert_eq!(answer(&client, &mut rx).await, first, "the cloud's id");
    let done = wait(&pair.cloud_http, &first, 20, |c| c["state"] == "succeeded").await;
    println!(
        "edge command: created on the cloud -> succeeded on the cloud in {} ms",
        now_ms() - sent
    );
    assert_eq!(done["reply"], json!({"status": "ok", "level": 3}), "{done}");
    assert!(done["delivered_ms"].is_i64(), "{done}");
    let on_edge = wait(&pair.edge_http, &first, 5, |c| c["state"] == "succeeded").await;
    assert_eq!(on_edge["name"], "light", "{on_edge}");

    // Offline: the command waits on the edge, pending on both sides.
    client.disconnect().await.unwrap();
    drop(rx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = send(&pair.cloud_http, "dim").await;
    wait(&pair.edge_http, &second, 20, |c| c["state"] == "pending").await;
    // A restart of the edge: the cloud sends its pending command down again; the edge keeps
    // it once.
    pair.restart_edge_with(EDGE_TOML).await;
    eventually(30, || async {
        (pair.uplink().await["connected"] == true).then_some(())
    })
    .await
    .expect("the edge did not reconnect");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, list) = api_at(
        &pair.edge_http,
        "GET",
        &format!("/api/v1/devices/{DEVICE}/commands"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "each once: {list}");
    let pending = wait(&pair.cloud_http, &second, 5, |_| true).await;
    assert_eq!(pending["state"], "pending", "{pending}");

    // The device comes back: the command is delivered and answered.
    let (client, mut rx) = connect(&pair, &secret).await;
    assert_eq!(answer(&client, &mut rx).await, second);
    let done = wait(&pair.cloud_http, &second, 20, |c| c["state"] == "succeeded").await;
    assert_eq!(done["reply"]["level"], 3, "{done}");
    client.disconnect().await.unwrap();
}

/// An edge's report about a command counts only for a device that edge registered: an edge
/// claiming that a device of the cloud's own answered changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_cannot_answer_a_command_of_a_device_it_did_not_register() {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason};

    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let edge = super::create_edge(&node.http_addr.to_string(), "site-9").await;
    register(&node, "own-1", "room").await;
    let (status, cmd) = api(
        &node,
        "POST",
        "/api/v1/devices/own-1/commands",
        Some(json!({"name": "open", "ttl": "10m"})),
    )
    .await;
    assert_eq!(status, 201, "{cmd}");
    let id = cmd["id"].as_str().unwrap();
    let (c, mut el) = mqtt5_connect(
        &node,
        "e9",
        Some(("edge:site-9", edge["secret"].as_str().unwrap())),
    )
    .await
    .expect("the edge logs in");
    let claim = json!([{
        "id": id, "device": "own-1", "name": "open", "params": cmd["params"],
        "created_ms": cmd["created_ms"], "expires_ms": cmd["expires_ms"], "state": "succeeded",
        "delivered_ms": now_ms(), "replied_ms": now_ms(), "reply": {"status": "ok"},
    }]);
    let mut payload = vec![1u8];
    payload.extend(serde_json::to_vec(&claim).unwrap());
    c.publish("edges/site-9/up/commands", Q5::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let reason = next_v5(&mut el, |p| match p {
        Packet5::PubAck(a) => Some(a.reason),
        _ => None,
    })
    .await
    .unwrap();
    assert!(
        matches!(
            reason,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        ),
        "{reason:?}"
    );
    let (status, now) = api(
        &node,
        "GET",
        &format!("/api/v1/devices/own-1/commands/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["state"], "pending", "{now}");
    assert!(now.get("reply").is_none(), "{now}");
    node.shutdown().await;
}
