//! Retained messages are bounded per identity (`mqtt.limits.max_retained_messages` and
//! `max_retained_bytes`: PUBACK 0x97 beyond, a 3.1.1 client gets its plain PUBACK and nothing
//! is retained, a CONNECT whose retained will would pass them gets CONNACK 0x97), clearing one always works and frees its share, the bounds hold across a
//! restart, payloads are stored compactly (files written before the change still load), and
//! under a disk budget the broker refuses new retained data instead of the store evicting
//! telemetry for it.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill, Packet as Packet5, PubAckReason};
use rumqttc::v5::{AsyncClient as Client5, ConnectionError, Event as Event5, EventLoop as Loop5};
use rumqttc::{Packet, QoS};
use sentio::node::Node;
use serde_json::json;

/// Publishes a retained QoS 1 message and returns the PUBACK's reason.
async fn retain(c: &Client5, el: &mut Loop5, topic: &str, payload: Vec<u8>) -> PubAckReason {
    c.publish(topic, Q5::AtLeastOnce, true, payload)
        .await
        .unwrap();
    next_v5(el, |p| match p {
        Packet5::PubAck(a) => Some(a.reason),
        _ => None,
    })
    .await
    .unwrap()
}

/// The retained messages a new subscription to `filter` receives: (topic, payload length),
/// sorted by topic.
async fn retained(node: &Node, device: &str, secret: &str, filter: &str) -> Vec<(String, usize)> {
    let (c, mut el) = mqtt5_connect_with(
        node,
        &format!("{device}-reader"),
        Some((device, secret)),
        |o| {
            o.set_max_packet_size(Some(1 << 20));
        },
    )
    .await
    .unwrap();
    c.subscribe(filter, Q5::AtLeastOnce).await.unwrap();
    let mut got = Vec::new();
    while let Ok(ev) = tokio::time::timeout(Duration::from_millis(1500), el.poll()).await {
        if let Event5::Incoming(Packet5::Publish(p)) = ev.unwrap() {
            assert!(p.retain, "only retained messages are expected");
            got.push((
                String::from_utf8(p.topic.to_vec()).unwrap(),
                p.payload.len(),
            ));
        }
    }
    c.disconnect().await.unwrap();
    got.sort();
    got
}

/// A topic a device may both publish (retained) and subscribe to: a reply under its commands.
fn commands(device: &str, name: &str) -> String {
    format!("devices/{device}/commands/{name}/reply")
}

/// Retains `len` bytes on `devices/<device>/commands/r<i>/reply` for each `i` in `names`, each
/// acknowledged with success.
async fn retain_all(
    c: &Client5,
    el: &mut Loop5,
    device: &str,
    names: std::ops::Range<usize>,
    len: usize,
) {
    for i in names {
        let topic = commands(device, &format!("r{i}"));
        let r = retain(c, el, &topic, vec![b'x'; len]).await;
        assert_eq!(r, PubAckReason::Success, "{topic}");
    }
}

/// Bytes of the database file and its log in the data directory `dir`.
fn database_bytes(dir: &Path) -> u64 {
    ["sentio.db", "sentio.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Finding 3 (a, b): a device can no longer store unlimited retained messages; other devices
/// keep their own share; clearing frees it; a 3.1.1 client over its bound is not retained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_bounded_per_identity_and_clearing_frees_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let configure = |c: &mut sentio::config::Config| {
        c.mqtt.limits.max_retained_messages = 4;
        c.mqtt.limits.max_retained_bytes = 10_000;
    };
    // A retained message written in the form used before this change (pretty-printed JSON,
    // the payload as an array of numbers) still loads.
    let old_dir = dir.path().join("mqtt/retained");
    std::fs::create_dir_all(&old_dir).unwrap();
    let old = json!({
        "topic": "devices/dev-a/commands/old/reply", "payload": b"hi".to_vec(), "qos": "AtLeastOnce",
        "retain": true, "stored_at_secs": now_ms() / 1000, "message_expiry_interval": null,
        "user_properties": [], "content_type": null, "response_topic": null,
        "correlation_data": null, "payload_format_indicator": null
    });
    std::fs::write(
        old_dir.join("devices%2Fdev-a%2Fcommands%2Fold%2Freply.json"),
        serde_json::to_vec_pretty(&old).unwrap(),
    )
    .unwrap();
    let node = start_with(dir.path(), configure).await;
    let a = register(&node, "dev-a", "pump").await;
    let b = register(&node, "dev-b", "pump").await;
    assert_eq!(
        retained(&node, "dev-a", &a, "devices/dev-a/commands/#").await,
        vec![(commands("dev-a", "old"), 2)],
        "the old form loads"
    );

    let (ca, mut ela) = mqtt5_connect(&node, "a", Some(("dev-a", &a)))
        .await
        .unwrap();
    // "old" (2 bytes) and three more: four messages, 6,002 bytes.
    retain_all(&ca, &mut ela, "dev-a", 0..3, 2_000).await;
    // A fifth topic: over the count. A larger replacement: over the bytes.
    for (topic, len) in [("r3", 10), ("r0", 6_000)] {
        let r = retain(&ca, &mut ela, &commands("dev-a", topic), vec![b'y'; len]).await;
        assert_eq!(r, PubAckReason::QuotaExceeded, "{topic} ({len} bytes)");
    }
    // A replacement within the bytes is fine.
    let r = retain(&ca, &mut ela, &commands("dev-a", "r0"), vec![b'z'; 5_000]).await;
    assert_eq!(r, PubAckReason::Success);
    // Another device is not affected.
    let (cb, mut elb) = mqtt5_connect(&node, "b", Some(("dev-b", &b)))
        .await
        .unwrap();
    retain_all(&cb, &mut elb, "dev-b", 0..4, 2_000).await;
    // A 3.1.1 client over the bound gets a plain PUBACK; nothing is retained.
    let (c3, mut el3) = mqtt_connect(&node, "a-311", "dev-a", &a).await.unwrap();
    c3.publish(
        commands("dev-a", "r9"),
        QoS::AtLeastOnce,
        true,
        vec![b'q'; 10],
    )
    .await
    .unwrap();
    next_v3(&mut el3, |p| matches!(p, Packet::PubAck(_)).then_some(()))
        .await
        .unwrap();
    let held = retained(&node, "dev-a", &a, "devices/dev-a/commands/#").await;
    assert_eq!(
        held,
        vec![
            (commands("dev-a", "old"), 2),
            (commands("dev-a", "r0"), 5_000),
            (commands("dev-a", "r1"), 2_000),
            (commands("dev-a", "r2"), 2_000),
        ]
    );
    // A will that would be retained on a fifth topic: the CONNECT is refused.
    let will = LastWill::new(
        commands("dev-a", "gone"),
        b"bye".to_vec(),
        Q5::AtLeastOnce,
        true,
        None,
    );
    match mqtt5_connect_with(&node, "a-will", Some(("dev-a", &a)), |o| {
        o.set_last_will(will);
    })
    .await
    {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::QuotaExceeded)) => {}
        other => panic!("a retained will over the quota: {:?}", other.err()),
    }
    assert_eq!(
        metric_value(&node, "sentio_mqtt_limited_total{limit=\"retained\"}").await,
        4
    );

    // Clearing always works and frees the share at once.
    let r = retain(&ca, &mut ela, &commands("dev-a", "old"), Vec::new()).await;
    assert_eq!(r, PubAckReason::Success);
    let r = retain(&ca, &mut ela, &commands("dev-a", "r3"), vec![b'w'; 900]).await;
    assert_eq!(r, PubAckReason::Success);
    drop((ca, ela, cb, elb, c3, el3));

    // Payloads are stored compactly: dev-b's 8,000 bytes take well under twice that on disk
    // (the pretty-printed array of numbers took about nine times).
    let files: u64 = std::fs::read_dir(&old_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("dev-b"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(files < 16_000, "dev-b's retained files take {files} bytes");
    node.shutdown().await;

    // The shares are rebuilt at start: dev-a still holds four messages.
    let node = start_with(dir.path(), configure).await;
    let (ca, mut ela) = mqtt5_connect(&node, "a", Some(("dev-a", &a)))
        .await
        .unwrap();
    let r = retain(&ca, &mut ela, &commands("dev-a", "r4"), vec![b'v'; 10]).await;
    assert_eq!(r, PubAckReason::QuotaExceeded, "after a restart");
    let r = retain(&ca, &mut ela, &commands("dev-a", "r3"), Vec::new()).await;
    assert_eq!(r, PubAckReason::Success);
    let r = retain(&ca, &mut ela, &commands("dev-a", "r4"), vec![b'v'; 10]).await;
    assert_eq!(r, PubAckReason::Success);
    node.shutdown().await;
}

/// Finding 3 (c): with a disk budget, retained messages no longer push the other devices'
/// raw points out. At the budget, new retained data is refused (0x97, counted), clearing and
/// replacing by no more still work, and no raw point is evicted for the broker's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_disk_budget_retained_data_is_refused_and_telemetry_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    // Another device's history: 3,000 points two days ago, which the budget may evict once
    // rolled up.
    let node = start(dir.path()).await;
    let meter = register(&node, "meter-1", "meter").await;
    let thief = register(&node, "thief", "pump").await;
    let old = (now_ms() - 2 * 86_400_000) / 3_600_000 * 3_600_000;
    for chunk in 0..3 {
        let batch: Vec<_> = (0..1000)
            .map(|i| json!({"ts": old + (chunk * 1000 + i) * 1000, "v": i as f64}))
            .collect();
        let (st, body) = post_telemetry(&node, "meter-1", &meter, &batch).await;
        assert_eq!(st, 200, "{body}");
    }
    let (_, storage) = api(&node, "GET", "/api/v1/storage", None).await;
    let used = storage["bytes"].as_u64().unwrap();
    node.shutdown().await;

    // The budget leaves the database far below its eviction mark, with about 2 MB to spare
    // for everything else.
    let db = database_bytes(dir.path());
    let budget = used + 2_000_000;
    assert!((db as f64) < budget as f64 * 0.8, "{db} of {budget}");
    let node = start_with(dir.path(), |c| {
        c.store.disk_budget = Some(sentio::config::ByteSize(budget));
        c.mqtt.limits.max_retained_messages = 0;
        c.mqtt.limits.max_retained_bytes = 0;
    })
    .await;
    let (c, mut el) = mqtt5_connect(&node, "thief", Some(("thief", &thief)))
        .await
        .unwrap();
    let mut stored = 0;
    let refused = loop {
        assert!(
            stored < 60,
            "60 retained messages of 100 KB were all stored"
        );
        let topic = commands("thief", &format!("blob{stored}"));
        match retain(&c, &mut el, &topic, vec![b'#'; 100_000]).await {
            PubAckReason::Success => stored += 1,
            other => break other,
        }
    };
    assert_eq!(refused, PubAckReason::QuotaExceeded);
    assert!(stored >= 5, "only {stored} stored before the budget");
    // Clearing one, and replacing one by no more, still work.
    let r = retain(&c, &mut el, &commands("thief", "blob0"), Vec::new()).await;
    assert_eq!(r, PubAckReason::Success);
    let r = retain(&c, &mut el, &commands("thief", "blob1"), vec![b'-'; 50_000]).await;
    assert_eq!(r, PubAckReason::Success);
    assert!(metric_value(&node, "sentio_mqtt_limited_total{limit=\"retained_disk\"}").await >= 1);
    // Several maintenance passes (every 5 s): the meter's history stays whole.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(points(&node, "meter-1", "v").await.len(), 3000);
    let (_, storage) = api(&node, "GET", "/api/v1/storage", None).await;
    assert_eq!(storage["budget_evicted_points"], 0, "{storage}");
    node.shutdown().await;
}
