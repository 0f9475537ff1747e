//! The broker's limits through the front door, with the reason codes a client sees.
//! Connections per node (CONNACK 0x97), subscriptions per client (SUBACK 0x97), publishes per
//! second per client (a token bucket that throttles the flooding client only), and the queue
//! of an offline session: dropped and counted beyond a configured bound, back-pressure on the
//! publishers without one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::raw::{self, connect_raw};
use crate::support::*;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use sentio::node::Node;
use serde_json::{Value, json};

/// An MQTT 3.1.1 client (rumqttc) that has its CONNACK.
async fn client(
    node: &Node,
    id: &str,
    user: &str,
    pass: &str,
    clean: bool,
) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, "127.0.0.1", node.mqtt_addr.port());
    o.set_credentials(user, pass);
    o.set_clean_session(clean);
    o.set_inflight(100);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 1000);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("CONNACK within 5 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return (c, el),
            Ok(_) => {}
            Err(e) => panic!("{id} could not connect: {e}"),
        }
    }
}

/// Subscribes at QoS 1 and waits for the SUBACK.
async fn subscribe(c: &AsyncClient, el: &mut EventLoop, filter: &str) {
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
            return;
        }
    }
}

/// Disconnects cleanly (the session stays if it is persistent).
async fn disconnect(c: AsyncClient, mut el: EventLoop) {
    c.disconnect().await.unwrap();
    while el.poll().await.is_ok() {}
}

/// Publishes `n` QoS 1 messages `prefix-0..n` to `topic` from a task; returns the number of
/// PUBACKs seen so far (updated live).
fn publish_counting(c: AsyncClient, mut el: EventLoop, topic: &str, n: usize) -> Arc<AtomicUsize> {
    let acked = Arc::new(AtomicUsize::new(0));
    let topic = topic.to_string();
    tokio::spawn(async move {
        for i in 0..n {
            c.publish(&topic, QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap();
        }
    });
    let a = acked.clone();
    tokio::spawn(async move {
        while a.load(Ordering::SeqCst) < n {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => panic!("publisher lost its connection: {e}"),
            }
        }
    });
    acked
}

/// Collects incoming PUBLISH payloads until `n` arrived.
async fn receive(el: &mut EventLoop, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push((
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).to_string(),
            )),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!(
                "subscriber lost its connection after {} messages: {e}",
                got.len()
            ),
            Err(_) => panic!("only {} of {n} messages arrived", got.len()),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_connack_quota_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.max_connections = 2).await;
    let (user, pass) = load_token(&node).await;

    let (mut c1, rc) = connect_raw(node.mqtt_addr, 5, "c1", &user, &pass).await;
    assert_eq!(rc, 0);
    let (_c2, rc) = connect_raw(node.mqtt_addr, 5, "c2", &user, &pass).await;
    assert_eq!(rc, 0);
    // MQTT 5: CONNACK 0x97 "quota exceeded", then the connection is closed.
    let (mut c3, rc) = connect_raw(node.mqtt_addr, 5, "c3", &user, &pass).await;
    assert_eq!(rc, 0x97, "CONNACK reason beyond the connection limit");
    c3.until_closed().await;
    // MQTT 3.1.1 has no such code: 0x03 "server unavailable".
    let (_c4, rc) = connect_raw(node.mqtt_addr, 4, "c4", &user, &pass).await;
    assert_eq!(rc, 0x03);
    // Taking over a connected client id is not a new connection.
    let (_c2b, rc) = connect_raw(node.mqtt_addr, 5, "c2", &user, &pass).await;
    assert_eq!(rc, 0, "a takeover of c2 is admitted at the limit");
    assert!(metric_value(&node, "sentio_mqtt_limited_total{limit=\"connections\"}").await >= 2);

    // Once a client leaves, a new one is admitted.
    c1.send(&raw::packet(0xE0, &[0])).await.unwrap();
    c1.until_closed().await;
    let admitted = eventually(10, || async {
        let (_c, rc) = connect_raw(node.mqtt_addr, 5, "c5", &user, &pass).await;
        (rc == 0).then_some(())
    })
    .await;
    assert!(admitted.is_some(), "a freed connection slot is reused");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_beyond_the_limit_get_suback_quota_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.limits.max_subscriptions = 2).await;
    let (user, pass) = load_token(&node).await;
    let (mut c, rc) = connect_raw(node.mqtt_addr, 5, "subs", &user, &pass).await;
    assert_eq!(rc, 0);
    c.send(&raw::subscribe_v5(&["load/a", "load/b", "load/c"]))
        .await
        .unwrap();
    // SUBACK: packet id (2 bytes), properties (length < 128 here), one reason code per filter.
    let suback = |body: Vec<u8>| {
        let props = body[2] as usize;
        (
            String::from_utf8_lossy(&body[3..3 + props]).to_string(),
            body[3 + props..].to_vec(),
        )
    };
    let (props, codes) = suback(c.expect(9).await);
    assert_eq!(
        codes,
        [0x01, 0x01, 0x97],
        "granted, granted, quota exceeded"
    );
    assert!(props.contains("quota"), "a reason string: {props:?}");
    // Subscribing again to a filter it holds is not a new subscription.
    c.send(&raw::subscribe_v5(&["load/a"])).await.unwrap();
    assert_eq!(suback(c.expect(9).await).1, [0x01]);
    assert_eq!(
        metric_value(&node, "sentio_mqtt_limited_total{limit=\"subscriptions\"}").await,
        1
    );
    let (_, clients) = api(&node, "GET", "/api/v1/broker/clients", None).await;
    assert_eq!(
        clients["clients"][0]["subscriptions"],
        json!(["load/a", "load/b"])
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_throttled_while_another_is_not() {
    let _heavy = heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.limits.max_publish_rate = 50).await;
    let (user, pass) = load_token(&node).await;
    let (watch, mut watch_el) = client(&node, "watch", &user, &pass, true).await;
    subscribe(&watch, &mut watch_el, "load/#").await;

    // 300 messages at 50/s take at least 5 s; the first second's worth go at once.
    let flood = 300;
    let (fc, fel) = client(&node, "flood", &user, &pass, true).await;
    let flood_acked = publish_counting(fc, fel, "load/flood", flood);
    let receiver = tokio::spawn(async move { receive(&mut watch_el, flood + 20).await });
    let past_burst = eventually(30, || async {
        (flood_acked.load(Ordering::SeqCst) >= 80).then_some(())
    })
    .await;
    assert!(past_burst.is_some(), "the flood is past its burst");

    // Meanwhile another client publishes 20 messages, each acknowledged in turn: all of them
    // go through while the flooder is still held to its rate.
    let (cc, mut cel) = client(&node, "calm", &user, &pass, true).await;
    for i in 0..20 {
        publish_acked(&cc, &mut cel, "load/calm", i.to_string().into_bytes())
            .await
            .unwrap();
    }
    let flood_done = flood_acked.load(Ordering::SeqCst);
    assert!(
        flood_done < flood,
        "the calm client finished while the flooder was throttled ({flood_done}/{flood} acknowledged)"
    );
    // Throttled, not refused: every message of both clients is delivered.
    let got = receiver.await.unwrap();
    let count = |t: &str| got.iter().filter(|(topic, _)| topic == t).count();
    assert_eq!(count("load/flood"), flood);
    assert_eq!(count("load/calm"), 20);
    let throttled = metric_value(&node, "sentio_mqtt_limited_total{limit=\"rate\"}").await;
    assert!(
        throttled >= 150,
        "most of the flood waited for its token ({throttled})"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_a_configured_queue_bound_the_oldest_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.limits.max_queued_messages = Some(5)).await;
    let (user, pass) = load_token(&node).await;
    let (sub, mut sub_el) = client(&node, "slowpoke", &user, &pass, false).await;
    subscribe(&sub, &mut sub_el, "load/q").await;
    disconnect(sub, sub_el).await;

    let (p, mut pel) = client(&node, "producer", &user, &pass, true).await;
    for i in 0..12 {
        publish_acked(&p, &mut pel, "load/q", i.to_string().into_bytes())
            .await
            .unwrap();
    }
    assert_eq!(
        metric_value(&node, "sentio_mqtt_dropped_total{reason=\"queue_full\"}").await,
        7
    );

    // Back online, the session holds the 5 newest.
    let (_sub, mut sub_el) = client(&node, "slowpoke", &user, &pass, false).await;
    let got: Vec<String> = receive(&mut sub_el, 5)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, ["7", "8", "9", "10", "11"]);
    let (_, body) = api(&node, "GET", "/api/v1/broker/clients", None).await;
    let slowpoke: &Value = body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "slowpoke")
        .expect("slowpoke listed");
    assert_eq!(slowpoke["dropped"], 7, "{body}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_queue_bound_publishers_wait_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.limits.backpressure_queue_depth = 5).await;
    let (user, pass) = load_token(&node).await;
    let (sub, mut sub_el) = client(&node, "away", &user, &pass, false).await;
    subscribe(&sub, &mut sub_el, "load/bp").await;
    disconnect(sub, sub_el).await;

    let (p, pel) = client(&node, "producer", &user, &pass, true).await;
    let acked = publish_counting(p, pel, "load/bp", 8);
    // The offline session's queue fills to 5; the 6th publish is held (no PUBACK).
    let held = eventually(10, || async {
        (acked.load(Ordering::SeqCst) == 5
            && metric_value(&node, "sentio_mqtt_limited_total{limit=\"backpressure\"}").await >= 1)
            .then_some(())
    })
    .await;
    assert!(
        held.is_some(),
        "acknowledged: {}",
        acked.load(Ordering::SeqCst)
    );
    assert_eq!(
        acked.load(Ordering::SeqCst),
        5,
        "held publishes are not acknowledged"
    );

    // The subscriber returns: it gets all 8, and the publisher all its PUBACKs.
    let (_sub, mut sub_el) = client(&node, "away", &user, &pass, false).await;
    let got: Vec<String> = receive(&mut sub_el, 8)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, ["0", "1", "2", "3", "4", "5", "6", "7"]);
    let all = eventually(10, || async {
        (acked.load(Ordering::SeqCst) == 8).then_some(())
    })
    .await;
    assert!(all.is_some());
    assert_eq!(
        metric_value(&node, "sentio_mqtt_dropped_total{reason=\"queue_full\"}").await,
        0
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_is_told_quota_exceeded_at_the_connection_limit() {
    if !have("mosquitto_pub") {
        eprintln!("SKIPPED: mosquitto_pub not installed (run scripts/services.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.mqtt.max_connections = 1).await;
    let (user, pass) = load_token(&node).await;
    let (_holder, rc) = connect_raw(node.mqtt_addr, 5, "holder", &user, &pass).await;
    assert_eq!(rc, 0);
    let port = node.mqtt_addr.port().to_string();
    for version in ["mqttv5", "mqttv311"] {
        let out = tokio::task::spawn_blocking({
            let (user, pass, port) = (user.clone(), pass.clone(), port.clone());
            move || {
                std::process::Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", "1"])
                    .args(["-i", "late", "-u", &user, "-P", &pass])
                    .args(["-t", "load/x", "-m", "hello"])
                    .output()
                    .expect("mosquitto_pub runs")
            }
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        eprintln!("{version}: {}", stderr.trim());
        assert!(!out.status.success(), "{version}: refused");
        let want = if version == "mqttv5" {
            "quota exceeded"
        } else {
            "unavailable"
        };
        assert!(stderr.contains(want), "{version}: {stderr}");
    }
    node.shutdown().await;
}
