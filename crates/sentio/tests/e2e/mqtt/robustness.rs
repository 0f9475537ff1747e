//! The broker under bad input and crashes, through the front door. An oversized packet
//! and malformed packets (raw bytes on a TcpStream) close only their own connection; a
//! persistent session's queued QoS 1 and 2 messages survive a restart and a `kill -9` of the real
//! binary and are delivered when the subscriber returns.

use std::time::Duration;

use crate::support::raw::{self, Raw, connect_raw};
use crate::support::*;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::io::AsyncWriteExt;

/// A healthy client still connects, publishes at QoS 1 and gets a successful PUBACK.
async fn still_serves(addr: std::net::SocketAddr, user: &str, pass: &str) {
    let (mut c, rc) = connect_raw(addr, 5, "healthy", user, pass).await;
    assert_eq!(rc, 0, "a normal client is still accepted");
    c.send(&raw::publish_v5("load/ok", 1, 7, b"fine"))
        .await
        .unwrap();
    let ack = c.expect(4).await;
    assert_eq!(&ack[..2], &[0, 7]);
    assert!(ack.len() == 2 || ack[2] == 0, "PUBACK success: {ack:?}");
    c.send(&raw::packet(0xE0, &[0])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_packet_disconnects_only_its_client() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (user, pass) = load_token(&node).await;
    // A bystander stays connected throughout.
    let (mut bystander, rc) = connect_raw(node.mqtt_addr, 5, "bystander", &user, &pass).await;
    assert_eq!(rc, 0);

    // The MQTT 5 CONNACK announces the maximum (property 0x27, Maximum Packet Size = 262,144).
    let mut big = Raw::open(node.mqtt_addr).await;
    big.send(&raw::connect(5, "big", &user, &pass, 0))
        .await
        .unwrap();
    let connack = big.expect(2).await;
    assert_eq!(connack[1], 0);
    assert!(
        connack
            .windows(5)
            .any(|w| w == [0x27, 0x00, 0x04, 0x00, 0x00]),
        "CONNACK carries Maximum Packet Size 262144: {connack:?}"
    );
    // 300 KiB > the default 256 KiB maximum: the connection is closed. (mqtt5 0.49 closes it
    // without first sending DISCONNECT 0x95, which MQTT 5 §4.13 allows but does not require.)
    big.send(&raw::publish_v5("load/big", 1, 1, &vec![b'x'; 300 * 1024]))
        .await
        .unwrap();
    let reason = big.until_closed().await;
    assert!(
        reason.is_none() || reason == Some(0x95),
        "closed, with DISCONNECT 0x95 if any: {reason:?}"
    );

    // MQTT 3.1.1 has no DISCONNECT from the server: the connection is closed.
    let (mut big3, rc) = connect_raw(node.mqtt_addr, 4, "big3", &user, &pass).await;
    assert_eq!(rc, 0);
    // (The v5 properties byte is one more payload byte to a 3.1.1 reader.)
    big3.send(&raw::publish_v5("load/big", 0, 0, &vec![b'x'; 300 * 1024]))
        .await
        .unwrap();
    big3.until_closed().await;

    still_serves(node.mqtt_addr, &user, &pass).await;
    bystander
        .send(&raw::publish_v5("load/by", 1, 3, b"still here"))
        .await
        .unwrap();
    assert_eq!(&bystander.expect(4).await[..2], &[0, 3]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (user, pass) = load_token(&node).await;
    let (mut bystander, rc) = connect_raw(node.mqtt_addr, 5, "bystander", &user, &pass).await;
    assert_eq!(rc, 0);

    let good = raw::connect(5, "m", &user, &pass, 0);
    let mut bad_name = good.clone();
    bad_name[4..8].copy_from_slice(b"MQTX");
    let mut bad_level = good.clone();
    bad_level[8] = 9;
    let mut connect_then_garbage = good.clone();
    connect_then_garbage.extend_from_slice(&[0xFF; 16]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // A remaining length of five bytes (the maximum is four).
        (
            "bad remaining length",
            vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        ("bad protocol name", bad_name),
        ("unknown protocol level", bad_level),
        ("garbage after CONNECT", connect_then_garbage),
        (
            "PUBLISH before CONNECT",
            raw::publish_v5("load/x", 0, 0, b"hi"),
        ),
        ("reserved packet type 0", vec![0x00, 0x00]),
        (
            "CONNECT claiming more bytes than sent, then EOF",
            good[..good.len() - 3].to_vec(),
        ),
        ("second CONNECT", [good.clone(), good.clone()].concat()),
    ];
    for (name, bytes) in cases {
        let mut c = Raw::open(node.mqtt_addr).await;
        c.send(&bytes).await.unwrap();
        if name.contains("then EOF") {
            c.stream.shutdown().await.unwrap();
        }
        // Whatever the broker answers first (a CONNACK, a DISCONNECT), it closes this one.
        c.until_closed().await;
        eprintln!("{name}: closed");
        still_serves(node.mqtt_addr, &user, &pass).await;
    }
    bystander
        .send(&raw::publish_v5("load/by", 1, 3, b"still here"))
        .await
        .unwrap();
    assert_eq!(&bystander.expect(4).await[..2], &[0, 3]);
    node.shutdown().await;
}

/// Leaves "keeper" an offline persistent MQTT 5 session subscribed to `load/keep`: what is
/// published there is queued on disk.
async fn offline_keeper(addr: std::net::SocketAddr, user: &str, pass: &str) {
    let mut keeper = Raw::open(addr).await;
    keeper
        .send(&raw::connect(5, "keeper", user, pass, 3_600))
        .await
        .unwrap();
    keeper.expect(2).await;
    keeper
        .send(&raw::subscribe_v5(&["load/keep"]))
        .await
        .unwrap();
    keeper.expect(9).await;
    keeper.send(&raw::packet(0xE0, &[0])).await.unwrap();
    keeper.until_closed().await;
}

/// A client that publishes and disconnects at once (its PUBLISHes and its DISCONNECT read in
/// one buffer) gets every PUBACK before the broker closes the connection, also when the
/// PUBLISHes were queued for an offline persistent session (whose acks wait for one flush of
/// the queue store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_just_before_a_disconnect_are_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (user, pass) = load_token(&node).await;
    offline_keeper(node.mqtt_addr, &user, &pass).await;

    let (mut producer, rc) = connect_raw(node.mqtt_addr, 5, "producer", &user, &pass).await;
    assert_eq!(rc, 0);
    let ids = [1u16, 2, 3];
    let mut burst = Vec::new();
    for id in ids {
        burst.extend(raw::publish_v5("load/keep", 1, id, b"m"));
    }
    burst.extend(raw::packet(0xE0, &[0]));
    producer.send(&burst).await.unwrap();
    let mut acked = Vec::new();
    loop {
        match producer.read(Duration::from_secs(10)).await {
            raw::Read::Packet(4, body) => acked.push(u16::from_be_bytes([body[0], body[1]])),
            raw::Read::Packet(..) => {}
            raw::Read::Closed => break,
            raw::Read::Nothing => panic!("the broker kept the connection open"),
        }
    }
    assert_eq!(
        acked, ids,
        "every PUBLISH before the DISCONNECT acknowledged"
    );
    node.shutdown().await;
}

/// Acknowledgements leave in the order their PUBLISHes came, whatever their QoS and whether
/// they waited for the queue store's flush [MQTT-4.6.0-2, -3]: a QoS 2 PUBLISH's PUBREC waits
/// for the flush of its stored copy, a refusal (a topic outside the token's ACL) and a QoS 1
/// PUBACK wait behind it; PUBCOMPs likewise. The persistent subscriber then gets every
/// accepted message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_qos_acknowledgements_keep_publish_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (user, pass) = load_token(&node).await;
    offline_keeper(node.mqtt_addr, &user, &pass).await;

    let (mut producer, rc) = connect_raw(node.mqtt_addr, 5, "producer", &user, &pass).await;
    assert_eq!(rc, 0);
    // (packet id, QoS, topic): the third is outside `load/#`, refused with PUBACK 0x87.
    let burst_of = [
        (1u16, 2u8, "load/keep"),
        (2, 1, "load/keep"),
        (3, 1, "forbidden/keep"),
        (4, 2, "load/keep"),
        (5, 1, "load/keep"),
    ];
    let mut burst = Vec::new();
    for (id, qos, topic) in burst_of {
        burst.extend(raw::publish_v5(topic, qos, id, format!("m{id}").as_bytes()));
    }
    producer.send(&burst).await.unwrap();
    let mut acks = Vec::new();
    while acks.len() < burst_of.len() {
        match producer.read(Duration::from_secs(10)).await {
            raw::Read::Packet(kind @ (4 | 5), body) => {
                acks.push((kind, u16::from_be_bytes([body[0], body[1]])));
            }
            raw::Read::Packet(..) => {}
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }
    assert_eq!(
        acks,
        [(5, 1), (4, 2), (4, 3), (5, 4), (4, 5)],
        "PUBREC (5) and PUBACK (4) in PUBLISH order"
    );
    let mut rels = Vec::new();
    for id in [1u16, 4] {
        rels.extend(raw::packet(0x62, &[(id >> 8) as u8, id as u8, 0]));
    }
    producer.send(&rels).await.unwrap();
    let mut comps = Vec::new();
    for _ in 0..2 {
        let body = producer.expect(7).await;
        comps.push(u16::from_be_bytes([body[0], body[1]]));
    }
    assert_eq!(comps, [1, 4], "PUBCOMPs in PUBREL order");
    producer.send(&raw::packet(0xE0, &[0])).await.unwrap();

    let mut keeper = Raw::open(node.mqtt_addr).await;
    keeper
        .send(&raw::connect(5, "keeper", &user, &pass, 3_600))
        .await
        .unwrap();
    assert_eq!(keeper.expect(2).await[1], 0, "the session resumed");
    let mut got = Vec::new();
    while got.len() < 4 {
        let body = keeper.expect(3).await;
        let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let payload = &body[2 + topic_len + 2..];
        let props = usize::from(payload[0]);
        got.push(String::from_utf8_lossy(&payload[1 + props..]).into_owned());
    }
    got.sort();
    assert_eq!(
        got,
        ["m1", "m2", "m4", "m5"],
        "every accepted message, none refused"
    );
    node.shutdown().await;
}

/// An MQTT 3.1.1 client with a persistent session (clean session off), connected.
async fn persistent(port: u16, user: &str, pass: &str) -> (AsyncClient, EventLoop) {
    persistent_with(port, user, pass, false).await
}

/// `persistent`, optionally with manual acks (rumqttc then acknowledges nothing by itself).
async fn persistent_with(
    port: u16,
    user: &str,
    pass: &str,
    manual_acks: bool,
) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new("keeper", "127.0.0.1", port);
    o.set_credentials(user, pass);
    o.set_manual_acks(manual_acks);
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 100);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll())
            .await
            .expect("CONNACK within 10 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return (c, el),
            Ok(_) => {}
            Err(e) => panic!("keeper could not connect: {e}"),
        }
    }
}

enum Stop {
    /// SIGTERM: the node shuts down and flushes.
    Graceful,
    /// SIGKILL right after the last PUBACK (QoS 1) or PUBCOMP (QoS 2).
    Kill9,
    /// SIGKILL once mqtt5's write-behind has put every queued message on disk.
    Kill9AfterWriteBehind,
}

/// Kills the node if a test fails half-way (it would otherwise outlive the test).
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many stored records name `topic` anywhere in the broker's queue store (its journal and
/// tables hold each queued message's JSON, uncompressed).
fn stored_records(data: &std::path::Path, topic: &str) -> usize {
    fn walk(dir: &std::path::Path, needle: &[u8], count: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, needle, count);
            } else if let Ok(bytes) = std::fs::read(&path) {
                *count += bytes.windows(needle.len()).filter(|w| *w == needle).count();
            }
        }
    }
    let mut count = 0;
    walk(&data.join("mqtt/queue-store"), topic.as_bytes(), &mut count);
    count
}

/// Where the persistent subscriber is while the messages are published.
#[derive(PartialEq)]
enum Subscriber {
    /// Disconnected: the messages wait in its session's queue.
    Offline,
    /// Connected, receiving and never acknowledging: the messages are in flight to it (up to
    /// the broker's outbound window) or queued behind.
    OnlineNotAcking,
}

async fn queued_messages_survive(stop: Stop, qos: QoS) {
    messages_survive(Subscriber::Offline, stop, qos).await;
}

async fn messages_survive(subscriber: Subscriber, stop: Stop, qos: QoS) {
    let _heavy = heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, http_addr, port) = spawn_sentio(dir.path(), None);
    let mut child = Guard(child);
    let (user, pass) = load_token_at(&http_addr).await;

    // The subscriber takes a persistent session and subscribes.
    let never_acks = subscriber == Subscriber::OnlineNotAcking;
    let (sub, mut sub_el) = persistent_with(port, &user, &pass, never_acks).await;
    sub.subscribe("load/keep", qos).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_el.poll().await.unwrap() {
            break;
        }
    }
    let mut online = None;
    if subscriber == Subscriber::Offline {
        sub.disconnect().await.unwrap();
        while sub_el.poll().await.is_ok() {}
    } else {
        // Manual acks that are never given: everything it receives stays unacknowledged.
        online = Some(tokio::spawn(async move {
            let mut received = 0;
            while let Ok(ev) = sub_el.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = ev {
                    received += 1;
                }
            }
            (sub, received)
        }));
    }

    // While it is offline, 50 messages are published and acknowledged (QoS 1: PUBACK; QoS 2:
    // PUBCOMP, after which the publisher has forgotten the message).
    let mut o = MqttOptions::new("producer", "127.0.0.1", port);
    o.set_credentials(&user, &pass);
    let (p, mut pel) = AsyncClient::new(o, 100);
    let n = 50;
    for i in 0..n {
        p.publish("load/keep", qos, false, format!("m{i}"))
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), pel.poll())
                .await
                .expect("PUBACK or PUBCOMP within 10 s")
            {
                Ok(Event::Incoming(Packet::PubAck(_))) if qos == QoS::AtLeastOnce => break,
                Ok(Event::Incoming(Packet::PubComp(_))) if qos == QoS::ExactlyOnce => break,
                Ok(_) => {}
                Err(e) => panic!("producer: {e}"),
            }
        }
    }
    drop(p);
    match stop {
        Stop::Graceful => {
            let pid = child.0.id().to_string();
            let st = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
            assert!(st.success());
            assert!(child.0.wait().unwrap().success(), "sentio stops cleanly");
        }
        Stop::Kill9 => {
            // Right after the last PUBACK: no shutdown, no flush.
            child.0.kill().unwrap();
            child.0.wait().unwrap();
        }
        Stop::Kill9AfterWriteBehind => {
            let written = eventually(10, || async {
                (stored_records(dir.path(), "load/keep") >= n).then_some(())
            })
            .await;
            assert!(written.is_some(), "the queued messages reach disk");
            child.0.kill().unwrap();
            child.0.wait().unwrap();
        }
    }
    drop(child);
    if let Some(online) = online {
        let (_sub, received) = online.await.unwrap();
        assert!(
            received > 0,
            "the online subscriber received messages before the kill"
        );
    }

    let (child, _http_addr, port) = spawn_sentio(dir.path(), None);
    let _child = Guard(child);
    let (_sub, mut sub_el) = persistent(port, &user, &pass).await;
    let mut got = std::collections::BTreeSet::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), sub_el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(m)))) => {
                got.insert(String::from_utf8_lossy(&m.payload).to_string());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber: {e}"),
            Err(_) => {
                let missing: Vec<String> = (0..n)
                    .map(|i| format!("m{i}"))
                    .filter(|m| !got.contains(m))
                    .collect();
                panic!(
                    "{} of {n} acknowledged messages delivered after the restart; missing {missing:?}",
                    got.len()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_qos1_messages_survive_a_restart() {
    queued_messages_survive(Stop::Graceful, QoS::AtLeastOnce).await;
}

/// A message queued for an offline session is on disk before its PUBACK (the vendored mqtt5
/// flushes and fsyncs its queue writes first, `vendor/mqtt5/SENTIO-PATCH.md`), so a `kill -9`
/// right after the last PUBACK loses none of the acknowledged messages. Upstream 0.49 wrote
/// them up to 250 ms after the PUBACK, and this test lost all 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_qos1_messages_survive_kill_9_right_after_the_puback() {
    queued_messages_survive(Stop::Kill9, QoS::AtLeastOnce).await;
}

/// The same at QoS 2: the message is queued when the PUBREL arrives, and on disk before the
/// PUBCOMP (and the PUBLISH's inbound copy before the PUBREC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_qos2_messages_survive_kill_9_right_after_the_pubcomp() {
    queued_messages_survive(Stop::Kill9, QoS::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_qos1_messages_on_disk_survive_kill_9() {
    queued_messages_survive(Stop::Kill9AfterWriteBehind, QoS::AtLeastOnce).await;
}

/// A persistent session whose subscriber is online but has not acknowledged: its QoS 1/2
/// messages go through its session queue on disk (fsynced before the publisher's ack) and
/// leave it only once their outbound inflight copy is durable, so a `kill -9` right after the
/// publisher's last ack loses none of them; they are sent again when the subscriber resumes.
/// Upstream mqtt5 held them in an in-memory delivery lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_qos1_messages_to_an_online_subscriber_survive_kill_9() {
    messages_survive(Subscriber::OnlineNotAcking, Stop::Kill9, QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_qos2_messages_to_an_online_subscriber_survive_kill_9() {
    messages_survive(Subscriber::OnlineNotAcking, Stop::Kill9, QoS::ExactlyOnce).await;
}
