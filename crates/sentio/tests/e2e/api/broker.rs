//! The broker seen from the API — connected clients (`GET /api/v1/broker/clients`) and
//! broker counters in `/metrics`, driven by real MQTT 3.1.1 and 5 clients (rumqttc).

use std::time::Duration;

use crate::support::*;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Options5};
use rumqttc::{ConnectionError, QoS};
use sentio::node::Node;
use serde_json::{Value, json};

async fn clients(node: &Node) -> Vec<Value> {
    let (status, body) = api(node, "GET", "/api/v1/broker/clients", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["count"].as_u64().unwrap() as usize,
        body["clients"].as_array().unwrap().len()
    );
    body["clients"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_clients_and_broker_counters_are_visible() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    assert!(clients(&node).await.is_empty());
    assert_eq!(
        metric_value(&node, "sentio_mqtt_clients_connected").await,
        0
    );

    // A device over MQTT 3.1.1, subscribed to its commands.
    let secret = register(&node, "pump-7", "pump").await;
    let (dev, mut dev_el) = mqtt_connect(&node, "pump-7", "pump-7", &secret)
        .await
        .unwrap();
    dev.subscribe("devices/pump-7/commands/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), dev_el.poll())
            .await
            .expect("SUBACK within 5 s")
            .unwrap();
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = ev {
            break;
        }
    }
    // A dashboard token over MQTT 5, subscribed to the device's telemetry.
    let (_, user, pass) = create_token(
        &node,
        "dash",
        json!([{"filter": "devices/+/telemetry", "rights": "subscribe"}]),
    )
    .await;
    let mut o = Options5::new("dash-1", "127.0.0.1", node.mqtt_addr.port());
    o.set_credentials(&user, &pass);
    let (dash, mut dash_el) = Client5::new(o, 100);
    dash.subscribe("devices/+/telemetry", Q5::AtLeastOnce)
        .await
        .unwrap();
    tokio::spawn(async move { while dash_el.poll().await.is_ok() {} });

    let listed = eventually(5, || async {
        let c = clients(&node).await;
        let ready = c.len() == 2
            && c.iter()
                .all(|c| c["subscriptions"].as_array().is_some_and(|s| !s.is_empty()));
        ready.then_some(c)
    })
    .await
    .expect("both clients listed with their subscriptions");
    // One publish refused by the device's ACL (QoS 0: no answer; the acknowledged publishes
    // after it, on the same connection, flush it), then three telemetry messages at QoS 1.
    dev.publish(
        "devices/pump-8/telemetry",
        QoS::AtMostOnce,
        false,
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        publish_acked(
            &dev,
            &mut dev_el,
            "devices/pump-7/telemetry",
            format!("{{\"rpm\": {}}}", 1000 + i).into_bytes(),
        )
        .await
        .unwrap();
    }
    // Two failed logins.
    for (u, p) in [("pump-7", "wrong"), (user.as_str(), "wrong")] {
        assert!(matches!(
            mqtt_connect(&node, "intruder", u, p).await,
            Err(ConnectionError::ConnectionRefused(_))
        ));
    }

    let by_id = |id: &str| {
        listed
            .iter()
            .find(|c| c["client_id"] == id)
            .unwrap()
            .clone()
    };
    let d = by_id("pump-7");
    assert_eq!(d["username"], "pump-7");
    assert_eq!(d["kind"], "device");
    assert_eq!(d["protocol"], "3.1.1");
    assert!(
        d["address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{d}"
    );
    assert_eq!(d["subscriptions"], json!(["devices/pump-7/commands/#"]));
    assert_eq!(d["queue_depth"], 0);
    let t = by_id("dash-1");
    assert_eq!(t["username"], user);
    assert_eq!(t["kind"], "token");
    assert_eq!(t["protocol"], "5.0");
    assert_eq!(t["subscriptions"], json!(["devices/+/telemetry"]));

    assert_eq!(
        metric_value(&node, "sentio_mqtt_clients_connected").await,
        2
    );
    assert!(metric_value(&node, "sentio_mqtt_connections_total").await >= 2);
    assert_eq!(
        metric_value(&node, "sentio_mqtt_auth_failures_total").await,
        2
    );
    assert_eq!(
        metric_value(&node, "sentio_mqtt_messages_received_total{qos=\"1\"}").await,
        3
    );
    // The refused publish never reaches the tap.
    assert_eq!(
        metric_value(&node, "sentio_mqtt_messages_received_total{qos=\"0\"}").await,
        0
    );
    assert_eq!(
        metric_value(&node, "sentio_mqtt_acl_denied_total{action=\"publish\"}").await,
        1
    );
    // The dashboard got (and acknowledged) the three telemetry messages.
    let acked = eventually(5, || async {
        let n = metric_value(&node, "sentio_mqtt_messages_acknowledged_total{qos=\"1\"}").await;
        (n == 3).then_some(n)
    })
    .await;
    assert_eq!(
        acked,
        Some(3),
        "acknowledged: {}",
        metric_value(&node, "sentio_mqtt_messages_acknowledged_total{qos=\"1\"}").await
    );
    assert!(metric_value(&node, "sentio_mqtt_messages_sent_total").await >= 3);
    assert!(
        metric_value(&node, "sentio_mqtt_payload_bytes_total{direction=\"in\"}").await
            >= 3 * "{\"rpm\": 1000}".len() as u64
    );

    // A client that leaves is no longer listed.
    dash.disconnect().await.unwrap();
    let left = eventually(5, || async {
        let c = clients(&node).await;
        (c.len() == 1).then_some(c)
    })
    .await
    .expect("the dashboard is gone from the list");
    assert_eq!(left[0]["client_id"], "pump-7");
    drop(dev);
    tokio::time::sleep(Duration::from_millis(50)).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_is_unlisted_while_offline_and_listed_again_when_back() {
    // A persistent v5 session (clean start off, session expiry) that goes away: it is not
    // listed while offline, what is published for it meanwhile waits in its queue, and once back
    // it is listed again and receives them.
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (_, user, pass) =
        create_token(&node, "q", json!([{"filter": "q/#", "rights": "both"}])).await;
    let connect = |id: &str| {
        let mut o = Options5::new(id, "127.0.0.1", node.mqtt_addr.port());
        o.set_credentials(user.clone(), pass.clone());
        o.set_clean_start(false);
        o.set_connect_properties(rumqttc::v5::mqttbytes::v5::ConnectProperties {
            session_expiry_interval: Some(600),
            ..Default::default()
        });
        Client5::new(o, 100)
    };
    let (sub, mut sub_el) = connect("q-sub");
    sub.subscribe("q/#", Q5::AtLeastOnce).await.unwrap();
    loop {
        if let Event5::Incoming(Packet5::SubAck(_)) = sub_el.poll().await.unwrap() {
            break;
        }
    }
    sub.disconnect().await.unwrap();
    while sub_el.poll().await.is_ok() {}
    assert!(
        eventually(5, || async {
            clients(&node).await.is_empty().then_some(())
        })
        .await
        .is_some()
    );

    let (publ, mut pub_el) = connect("q-pub");
    for i in 0..5u8 {
        publ.publish("q/x", Q5::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < 5 {
        if let Event5::Incoming(Packet5::PubAck(_)) = pub_el.poll().await.unwrap() {
            acks += 1;
        }
    }
    assert!(metric_value(&node, "sentio_mqtt_messages_received_total{qos=\"1\"}").await >= 5);

    let (_sub, mut sub_el) = connect("q-sub");
    let mut got = Vec::new();
    while got.len() < 5 {
        let ev = tokio::time::timeout(Duration::from_secs(5), sub_el.poll())
            .await
            .expect("queued messages delivered")
            .unwrap();
        if let Event5::Incoming(Packet5::Publish(p)) = ev {
            got.push(p.payload[0]);
        }
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    let listed = clients(&node).await;
    let back = listed.iter().find(|c| c["client_id"] == "q-sub");
    assert!(
        back.is_some_and(|c| c["protocol"] == "5.0" && c["username"] == user.as_str()),
        "{listed:?}"
    );
    node.shutdown().await;
}
