//! No anonymous MQTT access unless the user turns it on (`serve --allow-anonymous`);
//! then clients without a username may publish and subscribe only under `public/#`, everyone
//! else is authenticated as before, and a warning is logged at start.

use crate::support::*;
use rumqttc::v5::ConnectionError as ConnError5;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as Code5, Packet as Packet5, PubAckReason, SubscribeReasonCode as Sub5,
};
use sentio::node::Node;

async fn start_anonymous(dir: &std::path::Path) -> Node {
    start_with(dir, |c| c.mqtt.allow_anonymous = true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    match mqtt5_connect(&node, "anon", None).await {
        Err(ConnError5::ConnectionRefused(Code5::NotAuthorized)) => {}
        Err(e) => panic!("expected NotAuthorized, got {e:?}"),
        Ok(_) => panic!("an anonymous client connected without --allow-anonymous"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_allowed_anonymous_clients_are_confined_to_public() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_anonymous(dir.path()).await;
    let secret = register(&node, "dev-1", "room").await;

    let (sub, mut sub_el) = mqtt5_connect(&node, "anon-sub", None)
        .await
        .expect("anonymous clients connect when allowed");
    sub.subscribe("public/#", Q5::AtLeastOnce).await.unwrap();
    sub.subscribe("devices/#", Q5::AtLeastOnce).await.unwrap();
    sub.subscribe("#", Q5::AtLeastOnce).await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            next_v5(&mut sub_el, |p| match p {
                Packet5::SubAck(a) => Some(a.return_codes[0]),
                _ => None,
            })
            .await
            .unwrap(),
        );
    }
    assert_eq!(
        codes,
        vec![
            Sub5::Success(Q5::AtLeastOnce),
            Sub5::NotAuthorized,
            Sub5::NotAuthorized
        ]
    );

    let (publ, mut pub_el) = mqtt5_connect(&node, "anon-pub", None).await.unwrap();
    for (topic, want) in [
        ("public/weather", PubAckReason::Success),
        ("devices/dev-1/telemetry", PubAckReason::NotAuthorized),
        ("elsewhere", PubAckReason::NotAuthorized),
    ] {
        publ.publish(topic, Q5::AtLeastOnce, false, b"{\"t\": 1}".to_vec())
            .await
            .unwrap();
        let reason = next_v5(&mut pub_el, |p| match p {
            Packet5::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await
        .unwrap();
        assert_eq!(reason, want, "{topic}");
    }
    // Nothing reached the device's series.
    assert!(points(&node, "dev-1", "t").await.is_empty());

    let got = next_v5(&mut sub_el, |p| match p {
        Packet5::Publish(p) => Some(p.topic.to_vec()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(got, b"public/weather");

    // Named clients are authenticated exactly as before.
    match mqtt5_connect(&node, "d", Some(("dev-1", "wrong"))).await {
        Err(ConnError5::ConnectionRefused(Code5::BadUserNamePassword)) => {}
        other => panic!("wrong secret with anonymous access on: {:?}", other.err()),
    }
    mqtt5_connect(&node, "d", Some(("dev-1", &secret)))
        .await
        .expect("the device connects with its secret");

    // Listed without a username.
    let (_, clients) = api(&node, "GET", "/api/v1/broker/clients", None).await;
    let anon = clients["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "anon-sub")
        .cloned()
        .unwrap_or_else(|| panic!("{clients}"));
    assert!(anon["username"].is_null(), "{anon}");
    node.shutdown().await;
}

/// `sentio serve --allow-anonymous` says so loudly at start.
#[test]
fn the_binary_warns_at_start_when_anonymous_access_is_on() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args([
            "serve",
            "--mqtt",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--no-mqtt-tls",
            "--allow-anonymous",
            "--data",
        ])
        .arg(dir.path())
        .env("SENTIO_ADMIN_TOKEN", TOKEN)
        .env("SENTIO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sentio starts");
    let mut warned = None;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.contains("ANONYMOUS MQTT ACCESS IS ON") {
            warned = Some(line.clone());
        }
        if line.contains("Sentio is running") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let line = warned.expect("a warning about anonymous access before 'Sentio is running'");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("public/#"), "{line}");
}
