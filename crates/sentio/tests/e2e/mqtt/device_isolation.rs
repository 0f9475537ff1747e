//! Device isolation: one device cannot hurt another through the MQTT broker. Through the
//! front door, with real clients (rumqttc over TCP, TLS and WebSocket, raw sockets for the exact
//! bytes, paho-mqtt 3.1.1 where installed):
//!
//! - revocation revokes: rotating a device's secret or deleting it closes its connections on
//!   every transport;
//! - a client id belongs to one identity: another device cannot kick its holder or wipe its
//!   session with queued commands;
//! - connection quotas per device, per token and per address: one device cannot take every
//!   connection of the node;
//! - a 3.1.1 client gets 3.1.1 acks (a refused publish is acknowledged the 3.1.1 way) and no
//!   DISCONNECT on takeover; a QoS 1 PUBLISH with packet id 0 is a protocol error;
//! - client ids with control characters are refused and never written raw into the log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::raw::{self, Raw, Read};
use crate::support::*;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sentio::node::Node;
use serde_json::json;

/// The three ways a device reaches the broker.
#[derive(Debug, Clone, Copy)]
enum Via {
    Tcp,
    Tls,
    WebSocket,
}

/// rustls client configuration trusting the node's generated server certificate.
fn trust_node(node_dir: &Path) -> TlsConfiguration {
    let server_cert = std::fs::read(node_dir.join("tls/mqtt-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&server_cert) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConfiguration::Rustls(Arc::new(config))
}

/// An MQTT 3.1.1 client (rumqttc) over `via` that has its CONNACK, or the broker's refusal.
async fn connect_via(
    node: &Node,
    dir: &Path,
    via: Via,
    client_id: &str,
    user: &str,
    pass: &str,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let mut o = match via {
        Via::Tcp => MqttOptions::new(client_id, "127.0.0.1", node.mqtt_addr.port()),
        Via::Tls => {
            let (addr, _) = node.mqtt_tls.clone().expect("TLS listener");
            let mut o = MqttOptions::new(client_id, "127.0.0.1", addr.port());
            o.set_transport(Transport::Tls(trust_node(dir)));
            o
        }
        Via::WebSocket => {
            let url = format!("ws://{}/mqtt", node.http_addr);
            let mut o = MqttOptions::new(client_id, url, node.http_addr.port());
            o.set_transport(Transport::Ws);
            o
        }
    };
    o.set_credentials(user, pass);
    o.set_keep_alive(Duration::from_secs(10));
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

/// Subscribes at QoS 1 and waits for the SUBACK.
async fn subscribe(c: &AsyncClient, el: &mut EventLoop, filter: &str) {
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("SUBACK within 5 s")
            .expect("connected");
        if let Event::Incoming(Packet::SubAck(_)) = ev {
            return;
        }
    }
}

/// Whether the broker closes this connection within 5 s (polling answers nothing else).
async fn closed_within_5s(el: &mut EventLoop) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, el.poll()).await {
            Err(_) => return false,
            Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A token that may publish commands to every device; returns (username, password).
async fn commander(node: &Node) -> (String, String) {
    let (status, body) = api(
        node,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "ops", "acl": [{"filter": "devices/+/commands/#", "rights": "publish"}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["username"].as_str().unwrap().to_string(),
        body["password"].as_str().unwrap().to_string(),
    )
}

/// Connections of `device`, one per transport, each subscribed to its commands.
async fn connect_everywhere(
    node: &Node,
    dir: &Path,
    device: &str,
    secret: &str,
    tag: &str,
) -> Vec<(Via, AsyncClient, EventLoop)> {
    let mut out = Vec::new();
    for via in [Via::Tcp, Via::Tls, Via::WebSocket] {
        let id = format!("{device}-{tag}-{via:?}");
        let (c, mut el) = connect_via(node, dir, via, &id, device, secret)
            .await
            .unwrap_or_else(|e| panic!("{via:?}: {e}"));
        subscribe(&c, &mut el, &format!("devices/{device}/commands/#")).await;
        out.push((via, c, el));
    }
    out
}

/// Finding 1: rotating a device's secret, then deleting it, closes its connections over TCP,
/// TLS and WebSocket; the old secret is refused, the new one works; a device registered again
/// under the same id is not reachable through a connection of the deleted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_or_deleting_a_device_closes_its_connections_on_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.tls.enabled = true).await;
    let old = register(&node, "pump-1", "pump").await;
    let bystander = register(&node, "pump-2", "pump").await;
    let (mut b, rc) = raw::connect_raw(node.mqtt_addr, 5, "p2", "pump-2", &bystander).await;
    assert_eq!(rc, 0);

    let mut conns = connect_everywhere(&node, dir.path(), "pump-1", &old, "a").await;
    let (status, body) = api(&node, "POST", "/api/v1/devices/pump-1/secret", None).await;
    assert_eq!(status, 200, "{body}");
    let new = body["secret"].as_str().unwrap().to_string();
    for (via, _, el) in &mut conns {
        assert!(
            closed_within_5s(el).await,
            "{via:?}: the connection made with the old secret stays open after rotation"
        );
    }
    assert_eq!(body["disconnected_clients"], 3, "{body}");
    match connect_via(&node, dir.path(), Via::Tcp, "again", "pump-1", &old).await {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)) => {}
        other => panic!(
            "old secret: expected a refusal, got {:?}",
            other.map(|_| ())
        ),
    }

    let mut conns = connect_everywhere(&node, dir.path(), "pump-1", &new, "b").await;
    let (status, body) = api(&node, "DELETE", "/api/v1/devices/pump-1?erase=true", None).await;
    assert_eq!(status, 200, "{body}");
    for (via, _, el) in &mut conns {
        assert!(
            closed_within_5s(el).await,
            "{via:?}: a deleted device's connection stays open"
        );
    }
    assert_eq!(body["disconnected_clients"], 3, "{body}");

    // Registered again: a command to the new pump-1 reaches only the new device's connection.
    let newest = register(&node, "pump-1", "pump").await;
    let (c, mut el) = connect_via(&node, dir.path(), Via::Tcp, "pump-1-new", "pump-1", &newest)
        .await
        .unwrap();
    subscribe(&c, &mut el, "devices/pump-1/commands/#").await;
    let (user, pass) = commander(&node).await;
    let (ops, mut ops_el) = mqtt_connect(&node, "ops", &user, &pass).await.unwrap();
    publish_acked(
        &ops,
        &mut ops_el,
        "devices/pump-1/commands/valve",
        b"open".to_vec(),
    )
    .await
    .unwrap();
    let got = loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("the command within 5 s")
            .unwrap()
        {
            Event::Incoming(Packet::Publish(p)) => break p.payload.to_vec(),
            _ => continue,
        }
    };
    assert_eq!(got, b"open");

    // The other device was never touched.
    b.send(&raw::packet(0xC0, &[])).await.unwrap();
    assert_eq!(
        b.expect(13).await,
        Vec::<u8>::new(),
        "pump-2 still answers PINGREQ"
    );
    let (_, list) = api(&node, "GET", "/api/v1/broker/clients", None).await;
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"p2"), "{list}");
    assert!(
        !ids.iter()
            .any(|id| id.starts_with("pump-1-a") || id.starts_with("pump-1-b")),
        "{list}"
    );
    node.shutdown().await;
}

/// Reads packets until a PUBLISH; returns its payload.
async fn next_publish_raw(c: &mut Raw) -> Vec<u8> {
    let body = c.expect(3).await;
    let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
    // QoS 1: packet id after the topic; v5: then properties (length 0 here).
    let rest = &body[2 + topic_len + 2..];
    let props = rest[0] as usize;
    rest[1 + props..].to_vec()
}

/// Finding 2: device A cannot CONNECT with device B's client id, whether B is connected or
/// offline with a persistent session holding a queued QoS 1 command; B keeps its connection
/// and then its session and the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_belongs_to_one_identity() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let a = register(&node, "dev-a", "meter").await;
    let b = register(&node, "dev-b", "meter").await;

    // B connects with a persistent session and subscribes to its commands.
    let mut bc = Raw::open(node.mqtt_addr).await;
    bc.send(&raw::connect(5, "b-1", "dev-b", &b, 3600))
        .await
        .unwrap();
    assert_eq!(bc.expect(2).await[1], 0, "B connects");
    bc.send(&raw::subscribe_v5(&["devices/dev-b/commands/#"]))
        .await
        .unwrap();
    bc.expect(9).await;

    // While B is connected: A is refused (MQTT 5: 0x85; 3.1.1: 0x02), B is not kicked.
    for (version, want) in [(5u8, 0x85u8), (4, 0x02)] {
        let (mut ac, rc) = raw::connect_raw(node.mqtt_addr, version, "b-1", "dev-a", &a).await;
        assert_eq!(rc, want, "v{version}: CONNACK to A using B's client id");
        ac.until_closed().await;
    }
    assert_eq!(
        bc.read(Duration::from_millis(500)).await,
        Read::Nothing,
        "B was disconnected by A's attempt"
    );
    bc.send(&raw::packet(0xC0, &[])).await.unwrap();
    assert_eq!(
        bc.expect(13).await,
        Vec::<u8>::new(),
        "B still answers PINGREQ"
    );

    // B goes offline; a command is queued for its session.
    bc.send(&raw::packet(0xE0, &[0])).await.unwrap();
    bc.until_closed().await;
    let (user, pass) = commander(&node).await;
    let (ops, mut ops_el) = mqtt_connect(&node, "ops", &user, &pass).await.unwrap();
    publish_acked(
        &ops,
        &mut ops_el,
        "devices/dev-b/commands/reboot",
        b"now".to_vec(),
    )
    .await
    .unwrap();

    // A tries to take the offline session over with a clean start: refused, session kept.
    for (version, want) in [(5u8, 0x85u8), (4, 0x02)] {
        let (mut ac, rc) = raw::connect_raw(node.mqtt_addr, version, "b-1", "dev-a", &a).await;
        assert_eq!(
            rc, want,
            "v{version}: CONNACK to A taking B's offline session"
        );
        ac.until_closed().await;
    }

    // B resumes: session present, and the queued command arrives.
    let mut bc = Raw::open(node.mqtt_addr).await;
    bc.send(&raw::connect(5, "b-1", "dev-b", &b, 3600))
        .await
        .unwrap();
    let connack = bc.expect(2).await;
    assert_eq!(connack[1], 0);
    assert_eq!(connack[0] & 1, 1, "B's session is still present");
    assert_eq!(next_publish_raw(&mut bc).await, b"now");

    // A may use its own client ids as before.
    let (_ac, rc) = raw::connect_raw(node.mqtt_addr, 5, "a-1", "dev-a", &a).await;
    assert_eq!(rc, 0);
    node.shutdown().await;
}

/// Opens `n` raw MQTT 5 connections as `user`; returns the connections admitted and the
/// CONNACK codes of the others.
async fn open_many(
    node: &Node,
    prefix: &str,
    user: &str,
    pass: &str,
    n: usize,
) -> (Vec<Raw>, Vec<u8>) {
    let (mut held, mut refused) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (c, rc) =
            raw::connect_raw(node.mqtt_addr, 5, &format!("{prefix}-{i}"), user, pass).await;
        if rc == 0 {
            held.push(c);
        } else {
            refused.push(rc);
        }
    }
    (held, refused)
}

/// Finding 7: with `--max-connections 40`, one device used to get all 40 and the next device
/// was refused. Now a device holds at most its quota (8 by default) and refusals are 0x97.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_cannot_take_every_connection_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.max_connections = 40).await;
    let hog = register(&node, "hog", "meter").await;
    let victim = register(&node, "victim", "meter").await;
    let (held, refused) = open_many(&node, "hog", "hog", &hog, 40).await;
    assert_eq!(
        held.len(),
        sentio_broker::DEFAULT_MAX_CONNECTIONS_PER_DEVICE,
        "connections one device holds"
    );
    assert!(refused.iter().all(|rc| *rc == 0x97), "{refused:?}");
    let (_v, rc) = raw::connect_raw(node.mqtt_addr, 5, "victim-1", "victim", &victim).await;
    assert_eq!(rc, 0, "another device still gets a connection");
    // 3.1.1: server unavailable.
    let (_c, rc) = raw::connect_raw(node.mqtt_addr, 4, "hog-v4", "hog", &hog).await;
    assert_eq!(rc, 0x03);
    // Taking over one of its own client ids is not another connection.
    let (_c, rc) = raw::connect_raw(node.mqtt_addr, 5, "hog-0", "hog", &hog).await;
    assert_eq!(rc, 0, "a takeover at the quota is admitted");
    assert!(metric_value(&node, "sentio_mqtt_limited_total{limit=\"connections\"}").await >= 33);
    drop(held);
    node.shutdown().await;
}

/// Finding 7: connections per address (device and anonymous ones) and per token are capped
/// when configured; a token's connections do not count against the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_and_per_token_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.mqtt.limits.max_connections_per_address = 3;
        c.mqtt.limits.max_connections_per_token = 2;
    })
    .await;
    let mut held = Vec::new();
    for i in 0..4 {
        let id = format!("d{i}");
        let secret = register(&node, &id, "meter").await;
        let (c, rc) = raw::connect_raw(node.mqtt_addr, 5, &id, &id, &secret).await;
        assert_eq!(
            rc,
            if i < 3 { 0 } else { 0x97 },
            "device {id} from 127.0.0.1"
        );
        held.push(c);
    }
    let (user, pass) = commander(&node).await;
    let (tokens, refused) = open_many(&node, "tok", &user, &pass, 3).await;
    assert_eq!(
        (tokens.len(), refused),
        (2, vec![0x97]),
        "connections of one token"
    );
    node.shutdown().await;
}

/// Finding 11: a 3.1.1 client whose QoS 1 publish is refused gets a 3.1.1 PUBACK (packet id
/// only; it was an MQTT 5 PUBACK with reason 0x87 and a reason string, 32 bytes) and stays
/// connected; taken over, it is closed without a DISCONNECT (3.1.1 has none from the server).
/// MQTT 5 keeps both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_311_client_gets_311_acks_and_no_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-3", "meter").await;

    let (mut c, rc) = raw::connect_raw(node.mqtt_addr, 4, "dev-3-a", "dev-3", &secret).await;
    assert_eq!(rc, 0);
    // QoS 1 PUBLISH (3.1.1: topic, packet id 7, payload) to another device's topic.
    let mut body = Vec::new();
    raw::string(b"devices/other/telemetry", &mut body);
    body.extend_from_slice(&7u16.to_be_bytes());
    body.extend_from_slice(b"{\"t\":1}");
    c.send(&raw::packet(0x32, &body)).await.unwrap();
    assert_eq!(
        c.expect(4).await,
        vec![0, 7],
        "a 3.1.1 PUBACK is the packet id alone"
    );
    c.send(&raw::packet(0xC0, &[])).await.unwrap();
    c.expect(13).await;

    // Taken over by the same device: closed, no DISCONNECT.
    let (_c2, rc) = raw::connect_raw(node.mqtt_addr, 4, "dev-3-a", "dev-3", &secret).await;
    assert_eq!(rc, 0);
    assert_eq!(
        c.until_closed().await,
        None,
        "3.1.1 has no DISCONNECT from the server"
    );

    // MQTT 5: the refusal is 0x87, the takeover DISCONNECT 0x8E.
    let (mut v5, rc) = raw::connect_raw(node.mqtt_addr, 5, "dev-3-b", "dev-3", &secret).await;
    assert_eq!(rc, 0);
    v5.send(&raw::publish_v5("devices/other/telemetry", 1, 9, b"{}"))
        .await
        .unwrap();
    let ack = v5.expect(4).await;
    assert_eq!((&ack[..2], ack[2]), (&[0u8, 9][..], 0x87));
    let (_v5b, rc) = raw::connect_raw(node.mqtt_addr, 5, "dev-3-b", "dev-3", &secret).await;
    assert_eq!(rc, 0);
    assert_eq!(v5.until_closed().await, Some(0x8E));
    node.shutdown().await;
}

/// paho-mqtt (Python), MQTT 3.1.1: a refused QoS 1 publish is acknowledged and the client
/// stays connected (it reported "malformed packet" and reconnected in a loop).
const PAHO_REFUSED_PUBLISH: &str = r#"
import json, sys, threading, time
import paho.mqtt.client as mqtt
host, port, device, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out, acked = {"connects": 0, "disconnects": []}, threading.Event()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-311", protocol=mqtt.MQTTv311)
c.username_pw_set(device, secret)
def on_connect(client, userdata, flags, rc, props):
    out["connects"] += 1
    if out["connects"] == 1:
        client.publish("devices/someone-else/telemetry", '{"t": 1}', qos=1)
def on_publish(client, userdata, mid, rc, props):
    out["puback"] = str(rc)
    acked.set()
def on_disconnect(client, userdata, flags, rc, props):
    out["disconnects"].append(str(rc))
c.on_connect, c.on_publish, c.on_disconnect = on_connect, on_publish, on_disconnect
c.connect(host, port, keepalive=10)
c.loop_start()
out["acked"] = acked.wait(5)
time.sleep(0.5)
c.disconnect()
time.sleep(0.2)
c.loop_stop()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_311_gets_a_plain_puback_for_a_refused_publish() {
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
    let secret = register(&node, "paho-dev", "meter").await;
    let port = node.mqtt_addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([
                "-c",
                PAHO_REFUSED_PUBLISH,
                "127.0.0.1",
                &port,
                "paho-dev",
                &secret,
            ])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("paho: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("paho's JSON line");
    assert_eq!(v["acked"], true, "{v}");
    assert_eq!(v["connects"], 1, "paho reconnected: {v}");
    let unexpected: Vec<&serde_json::Value> = v["disconnects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.as_str() != Some("Success") && r.as_str() != Some("Normal disconnection"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "paho disconnected with an error: {v}"
    );
    node.shutdown().await;
}

/// Low: a QoS 1 PUBLISH with packet id 0 is a protocol error [MQTT-2.3.1-1]: no PUBACK; MQTT 5
/// gets DISCONNECT 0x82, 3.1.1 a closed connection. Nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_publish_with_packet_id_0_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-0", "meter").await;

    let (mut v5, rc) = raw::connect_raw(node.mqtt_addr, 5, "dev-0-a", "dev-0", &secret).await;
    assert_eq!(rc, 0);
    v5.send(&raw::publish_v5(
        "devices/dev-0/telemetry",
        1,
        0,
        b"{\"t\":1}",
    ))
    .await
    .unwrap();
    assert_eq!(v5.until_closed().await, Some(0x82));

    let (mut v4, rc) = raw::connect_raw(node.mqtt_addr, 4, "dev-0-b", "dev-0", &secret).await;
    assert_eq!(rc, 0);
    let mut body = Vec::new();
    raw::string(b"devices/dev-0/telemetry", &mut body);
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(b"{\"t\":2}");
    v4.send(&raw::packet(0x32, &body)).await.unwrap();
    assert_eq!(v4.until_closed().await, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(points(&node, "dev-0", "t").await.is_empty());
    node.shutdown().await;
}

/// Finding 8: a client id with a newline, a terminal escape (ESC, or the C1 control CSI) is
/// refused (CONNACK 0x85) and written into the log escaped, never raw: no forged line, no
/// escape sequence reaches the operator's terminal. An unknown username (perhaps a secret
/// typed in the wrong field) is not logged at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_values_are_never_written_raw_into_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mqtt, lines) = spawn_sentio_logging(dir.path());
    let forged = "INFO sentio: admin login ok";
    for id in [
        format!("evil\n{forged}"),
        "evil\u{1b}]0;pwned\u{7}".to_string(),
        "evil\u{9b}31m".to_string(),
    ] {
        let (mut c, rc) = raw::connect_raw(mqtt, 5, &id, "nobody", "x").await;
        assert_eq!(rc, 0x85, "client id {id:?}");
        c.until_closed().await;
    }
    let (mut c, rc) =
        raw::connect_raw(mqtt, 5, "swapped", "s3cr3t-in-the-wrong-field", "pump-1").await;
    assert_eq!(rc, 0x86, "unknown device");
    c.until_closed().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.lock().unwrap().clone();
    let all = lines.join("\n");
    assert!(all.contains("evil"), "the refusals are logged:\n{all}");
    for l in &lines {
        assert!(!l.starts_with(forged), "a forged log line:\n{all}");
        assert!(
            !l.contains("\u{1b}]0;pwned"),
            "a raw escape sequence: {l:?}"
        );
        assert!(!l.contains('\u{9b}'), "a raw C1 control: {l:?}");
        assert!(
            !l.contains("s3cr3t-in-the-wrong-field"),
            "an unknown username: {l}"
        );
    }
}
