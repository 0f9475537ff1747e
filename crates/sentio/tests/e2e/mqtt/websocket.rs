//! MQTT over WebSocket at `/mqtt` on the HTTP port (subprotocol `mqtt`), driven by
//! rumqttc's WebSocket transport: the same device and token authentication and the same ACLs
//! as MQTT over TCP, and one broker behind both (a WebSocket subscriber gets a TCP publish).

use std::time::Duration;

use crate::support::*;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    SubscribeReasonCode, Transport,
};
use sentio::node::Node;
use serde_json::json;

/// MQTT 3.1.1 over WebSocket to the node's HTTP port: connected, or the broker's refusal.
async fn ws_connect(
    node: &Node,
    client_id: &str,
    user: &str,
    pass: &str,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    ws_connect_session(node, client_id, user, pass, true).await
}

/// [`ws_connect`] with a persistent session when `clean` is false.
async fn ws_connect_session(
    node: &Node,
    client_id: &str,
    user: &str,
    pass: &str,
    clean: bool,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let url = format!("ws://{}/mqtt", node.http_addr);
    let mut o = MqttOptions::new(client_id, url, node.http_addr.port());
    o.set_transport(Transport::Ws);
    o.set_credentials(user, pass);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(clean);
    let (client, mut el) = AsyncClient::new(o, 100);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("an answer to CONNECT within 5 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, el)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_publishes_over_websocket_at_qos1_and_the_points_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "ws-dev", "room").await;

    let (client, mut el) = ws_connect(&node, "ws-dev", "ws-dev", &secret)
        .await
        .expect("the device connects over WebSocket with its secret");
    publish_acked(
        &client,
        &mut el,
        "devices/ws-dev/telemetry",
        br#"{"temperature": 19.25}"#.to_vec(),
    )
    .await
    .expect("PUBACK over WebSocket");
    // The PUBACK is sent after the commit, so the point is there at once.
    let temps = points(&node, "ws-dev", "temperature").await;
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert_eq!(temps[0].1, 19.25);

    // The broker lists it like any client, with the address the HTTP server saw.
    let (_, clients) = api(&node, "GET", "/api/v1/broker/clients", None).await;
    let me = clients["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "ws-dev")
        .cloned()
        .unwrap_or_else(|| panic!("ws-dev listed: {clients}"));
    assert_eq!(me["username"], "ws-dev");
    assert!(
        me["address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{me}"
    );

    // Its ACL is the TCP one: only its own commands topic.
    client
        .subscribe("devices/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = next_v3(&mut el, |p| match p {
        Packet::SubAck(a) => Some(a.return_codes.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Failure]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_and_unknown_device_are_refused_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register(&node, "ws-dev", "room").await;
    for (user, pass) in [("ws-dev", "wrong"), ("nobody", "x")] {
        match ws_connect(&node, "c1", user, pass).await {
            Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)) => {}
            Err(e) => panic!("{user}: expected a bad-credentials CONNACK, got {e:?}"),
            Ok(_) => panic!("{user}: connected with a wrong secret"),
        }
    }
    let (_, events) = api(&node, "GET", "/api/v1/devices/ws-dev", None).await;
    assert!(
        events.to_string().contains("wrong secret"),
        "the refusal is recorded on the device: {events}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_subscriber_receives_what_a_tcp_client_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "pump-1", "pump").await;
    let (_, user, pass) = create_token(
        &node,
        "dash",
        json!([{"filter": "devices/+/telemetry", "rights": "subscribe"}]),
    )
    .await;

    // The dashboard's token, over WebSocket.
    let (sub, mut sub_el) = ws_connect(&node, "dash-ws", &user, &pass)
        .await
        .expect("the token connects over WebSocket");
    sub.subscribe("devices/+/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = next_v3(&mut sub_el, |p| match p {
        Packet::SubAck(a) => Some(a.return_codes.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    // The device, over plain TCP.
    let (dev, mut dev_el) = mqtt_connect(&node, "pump-1", "pump-1", &secret)
        .await
        .unwrap();
    let payload = br#"{"bearing_temp": 71.5}"#.to_vec();
    publish_acked(
        &dev,
        &mut dev_el,
        "devices/pump-1/telemetry",
        payload.clone(),
    )
    .await
    .unwrap();

    let got = next_v3(&mut sub_el, |p| match p {
        Packet::Publish(p) => Some((p.topic.clone(), p.payload.to_vec())),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(got, ("devices/pump-1/telemetry".to_string(), payload));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_subprotocol_is_refused_with_a_clear_error() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut req = format!("ws://{}/mqtt", node.http_addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(body.contains("Sec-WebSocket-Protocol: mqtt"), "{body}");
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    node.shutdown().await;
}

/// A token over WebSocket: revoking it closes the connection, like over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_its_websocket_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (id, user, pass) = create_token(
        &node,
        "dash",
        json!([{"filter": "site/#", "rights": "both"}]),
    )
    .await;
    let (_client, mut el) = ws_connect(&node, "dash-ws", &user, &pass).await.unwrap();
    let (status, body) = api(&node, "DELETE", &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        next_v3(&mut el, |_| None::<()>).await.is_err(),
        "the WebSocket connection is closed"
    );
    node.shutdown().await;
}

/// A persistent session opened over WebSocket is saved when the node stops while the client is
/// connected (Sentio closes its own connections before mqtt5's storage), so messages published
/// after the restart wait for the client and are delivered when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_websocket_session_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "pump-1", "pump").await;
    let (_, user, pass) = create_token(
        &node,
        "dash",
        json!([{"filter": "devices/+/telemetry", "rights": "subscribe"}]),
    )
    .await;
    let (sub, mut el) = ws_connect_session(&node, "dash-ws", &user, &pass, false)
        .await
        .unwrap();
    sub.subscribe("devices/+/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();
    next_v3(&mut el, |p| matches!(p, Packet::SubAck(_)).then_some(()))
        .await
        .unwrap();
    // Stopped with the WebSocket client still connected.
    node.shutdown().await;
    drop((sub, el));

    let node = start(dir.path()).await;
    let (dev, mut dev_el) = mqtt_connect(&node, "pump-1", "pump-1", &secret)
        .await
        .unwrap();
    for i in 0..2 {
        publish_acked(
            &dev,
            &mut dev_el,
            "devices/pump-1/telemetry",
            format!("{{\"n\": {i}}}").into_bytes(),
        )
        .await
        .unwrap();
    }
    let (_sub, mut el) = ws_connect_session(&node, "dash-ws", &user, &pass, false)
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(
            next_v3(&mut el, |p| match p {
                Packet::Publish(p) => Some(String::from_utf8_lossy(&p.payload).to_string()),
                _ => None,
            })
            .await
            .expect("the queued messages are delivered"),
        );
    }
    assert_eq!(got, vec![r#"{"n": 0}"#, r#"{"n": 1}"#]);
    node.shutdown().await;
}

/// What MQTT over WebSocket forbids closes that connection and nothing else: a text message,
/// and a message larger than the WebSocket limit (four of the largest packet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_oversized_messages_close_the_connection() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "ws-dev", "room").await;
    let big = vec![0x30u8; 4 * sentio_broker::DEFAULT_MAX_PACKET + 1024];
    for msg in [Message::text("CONNECT please"), Message::binary(big)] {
        let mut req = format!("ws://{}/mqtt", node.http_addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
            "mqtt"
        );
        let _ = ws.send(msg).await;
        // The server ends the connection: a close frame, the end of the stream, or a reset.
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the server closes the connection within 5 s")
        {
            Some(Ok(Message::Close(_)) | Err(_)) | None => {}
            Some(Ok(other)) => panic!("unexpected answer {other:?}"),
        }
    }
    // The broker still serves everyone else.
    ws_connect(&node, "ws-dev", "ws-dev", &secret)
        .await
        .expect("a valid client still connects");
    node.shutdown().await;
}

/// MQTT allows a WebSocket message to hold several packets, or part of one: CONNECT and the
/// first half of a QoS 1 PUBLISH in one message, the rest in a second, are one valid session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_may_share_and_span_websocket_messages() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "ws-dev", "room").await;

    let mut connect = Vec::new();
    raw::string(b"MQTT", &mut connect);
    connect.extend_from_slice(&[4, 0xC2, 0, 60]); // 3.1.1; username, password, clean session
    for field in ["raw-ws", "ws-dev", &secret] {
        raw::string(field.as_bytes(), &mut connect);
    }
    let mut publish = Vec::new();
    raw::string(b"devices/ws-dev/telemetry", &mut publish);
    publish.extend_from_slice(&[0, 1]); // packet id 1
    publish.extend_from_slice(br#"{"humidity": 41.5}"#);
    let (connect, publish) = (raw::packet(0x10, &connect), raw::packet(0x32, &publish));
    let half = publish.len() / 2;
    let first = [connect.as_slice(), &publish[..half]].concat();

    let mut req = format!("ws://{}/mqtt", node.http_addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::binary(first)).await.unwrap();
    ws.send(Message::binary(publish[half..].to_vec()))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 8 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("CONNACK and PUBACK within 5 s")
        {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            other => panic!("unexpected {other:?} after {got:?}"),
        }
    }
    // CONNACK accepted, then PUBACK for packet 1.
    assert_eq!(got, [0x20, 2, 0, 0, 0x40, 2, 0, 1]);
    assert_eq!(points(&node, "ws-dev", "humidity").await[0].1, 41.5);
    node.shutdown().await;
}

/// Another implementation: the paho-mqtt Python client over WebSocket (installed by
/// `scripts/services.sh`; skipped with a notice where it is missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt_publishes_over_websocket() {
    let have_paho = std::process::Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_paho {
        eprintln!("SKIPPED: python3 with paho-mqtt not installed (run scripts/services.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "paho-dev", "room").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/support/paho_ws.py");
    let (host, port) = (
        node.http_addr.ip().to_string(),
        node.http_addr.port().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &host, &port, "paho-dev", &secret])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["good"]["connack"], "Success", "{r}");
    assert_eq!(r["good"]["puback"], r["good"]["mid"], "{r}");
    assert_eq!(r["bad"]["connack"], "Bad user name or password", "{r}");
    assert_eq!(points(&node, "paho-dev", "pressure").await[0].1, 1.25);
    node.shutdown().await;
}
