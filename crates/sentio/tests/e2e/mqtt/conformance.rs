//! The OASIS MQTT 3.1.1 and 5.0 normative statements that matter, checked through the
//! front door of a real in-process node (port 0). Packets are hand-built over a TcpStream
//! (`support/wire.rs`) wherever a client library would hide the wire (flags, properties,
//! reason codes); rumqttc (3.1.1 and v5) checks the same flows with a real client library.
//! Each test cites the statements it checks. "Nothing more arrives" is always shown by a marker
//! message published afterwards arriving next, never by waiting for a silence.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::wire::*;
use crate::support::*;
use rumqttc::{Event, Packet, QoS};
use sentio::node::Node;
use serde_json::json;

/// A node and a token allowed to publish and subscribe everywhere (also under `$app/`).
async fn node_and_token(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut sentio::config::Config),
) -> (Node, String, String) {
    let node = start_with(dir, configure).await;
    let (_, user, pass) = create_token(
        &node,
        "conformance",
        json!([
            {"filter": "#", "rights": "both"},
            {"filter": "$app/#", "rights": "both"}]),
    )
    .await;
    (node, user, pass)
}

struct Ctx {
    node: Node,
    user: String,
    pass: String,
    _dir: tempfile::TempDir,
}

impl Ctx {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A node whose configuration `configure` has changed.
    async fn with(configure: impl FnOnce(&mut sentio::config::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (node, user, pass) = node_and_token(dir.path(), configure).await;
        Self {
            node,
            user,
            pass,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.node.mqtt_addr
    }

    fn v5<'a>(&'a self, id: &'a str) -> Connect<'a> {
        Connect::new(5, id, &self.user, &self.pass)
    }

    fn v4<'a>(&'a self, id: &'a str) -> Connect<'a> {
        Connect::new(4, id, &self.user, &self.pass)
    }

    async fn conn(&self, c: &Connect<'_>) -> Conn {
        Conn::ok(self.addr(), c).await
    }
}

/// Publishes a QoS 1 marker on `topic` and returns once it is acknowledged.
async fn marker(publisher: &mut Conn, topic: &str, id: u16) {
    assert_eq!(publisher.publish1(topic, false, id, b"marker").await, 0);
}

/// §4.3 (the QoS 0, 1 and 2 delivery flows): QoS 0, 1 and 2 through rumqttc 3.1.1; a
/// message is delivered at the minimum of the publish QoS and the granted QoS [MQTT-3.8.4-8]
/// (3.1.1 §3.8.4: "the QoS of Payload Messages sent in response to a Subscription MUST be the
/// minimum of the QoS of the originally published message and the maximum QoS granted").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_0_1_2_are_delivered_at_the_minimum_of_published_and_granted_qos() {
    let ctx = Ctx::new().await;
    let (sub, mut sub_el) = mqtt_connect(&ctx.node, "q-sub", &ctx.user, &ctx.pass)
        .await
        .unwrap();
    sub.subscribe("q/two", QoS::ExactlyOnce).await.unwrap();
    sub.subscribe("q/one", QoS::AtLeastOnce).await.unwrap();
    let mut acks = 0;
    while acks < 2 {
        if let Event::Incoming(Packet::SubAck(_)) = next_event(&mut sub_el).await {
            acks += 1;
        }
    }
    let (publ, mut pub_el) = mqtt_connect(&ctx.node, "q-pub", &ctx.user, &ctx.pass)
        .await
        .unwrap();
    let sends = [
        ("q/two", QoS::AtMostOnce, QoS::AtMostOnce),
        ("q/two", QoS::AtLeastOnce, QoS::AtLeastOnce),
        ("q/two", QoS::ExactlyOnce, QoS::ExactlyOnce),
        ("q/one", QoS::ExactlyOnce, QoS::AtLeastOnce),
    ];
    for (i, (topic, qos, _)) in sends.iter().enumerate() {
        publ.publish(*topic, *qos, false, format!("m{i}"))
            .await
            .unwrap();
    }
    // The publisher's event loop must run for the QoS 1/2 handshakes.
    let pump = tokio::spawn(async move {
        let mut completed = 0;
        while completed < 2 {
            match pub_el.poll().await.unwrap() {
                Event::Incoming(Packet::PubAck(_)) | Event::Incoming(Packet::PubComp(_)) => {
                    completed += 1
                }
                _ => {}
            }
        }
        completed
    });
    let mut got = Vec::new();
    while got.len() < sends.len() {
        if let Event::Incoming(Packet::Publish(p)) = next_event(&mut sub_el).await {
            got.push((
                p.topic.clone(),
                p.qos,
                String::from_utf8(p.payload.to_vec()).unwrap(),
            ));
        }
    }
    got.sort_by(|a, b| a.2.cmp(&b.2));
    for (i, (topic, _, want)) in sends.iter().enumerate() {
        assert_eq!(got[i], (topic.to_string(), *want, format!("m{i}")));
    }
    assert_eq!(
        tokio::time::timeout(WAIT, pump).await.unwrap().unwrap(),
        3 - 1
    );
    ctx.node.shutdown().await;
}

async fn next_event(el: &mut rumqttc::EventLoop) -> Event {
    tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("an event")
        .expect("connection open")
}

/// QoS 2 exactly once, on the wire: the receiver answers PUBREC [MQTT-4.3.3-8]; a DUP re-send
/// of the same packet id before PUBREL is answered with PUBREC again and not delivered twice
/// [MQTT-4.3.3-9] (5.0: "MUST NOT cause duplicate messages to be delivered to any onward
/// recipients"); PUBREL gets PUBCOMP [MQTT-4.3.3-11]. Towards the subscriber the server sends
/// PUBLISH QoS 2, then PUBREL after our PUBREC [MQTT-4.3.3-4/5], and keeps the packet id until
/// PUBCOMP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_is_delivered_exactly_once_with_pubrec_pubrel_pubcomp() {
    let ctx = Ctx::new().await;
    for version in [5u8, 4] {
        let sid = format!("q2-sub-{version}");
        let pid = format!("q2-pub-{version}");
        let mut sub = ctx
            .conn(&Connect::new(version, &sid, &ctx.user, &ctx.pass))
            .await;
        let (codes, _) = sub.subscribe(1, &[("x2/#", 2)], &[]).await;
        assert_eq!(codes, vec![2]);
        let mut publ = ctx
            .conn(&Connect::new(version, &pid, &ctx.user, &ctx.pass))
            .await;
        let p5 = (version == 5).then_some(&[][..]);
        publ.send(&publish("x2/a", 2, false, false, 7, p5, b"once"))
            .await;
        let rec = publ.expect(PUBREC).await;
        assert_eq!(rec[..2], 7u16.to_be_bytes());
        assert!(rec.get(2).is_none_or(|r| *r < 0x80), "PUBREC {rec:?}");
        // The same message again, DUP set, before PUBREL.
        publ.send(&publish("x2/a", 2, false, true, 7, p5, b"once"))
            .await;
        let rec = publ.expect(PUBREC).await;
        assert_eq!(rec[..2], 7u16.to_be_bytes());
        publ.send(&ack(PUBREL, 7)).await;
        let comp = publ.expect(PUBCOMP).await;
        assert_eq!(comp[..2], 7u16.to_be_bytes());
        assert!(comp.get(2).is_none_or(|r| *r == 0), "PUBCOMP {comp:?}");

        let m = sub.message().await;
        assert_eq!(
            (m.topic.as_str(), m.qos, &m.payload[..]),
            ("x2/a", 2, &b"once"[..])
        );
        // The incoming DUP flag is not propagated [MQTT-3.3.1-3]: a first delivery has DUP 0.
        assert!(!m.dup, "{m:?}");
        marker(&mut publ, "x2/marker", 8).await;
        let next = sub.message().await;
        assert_eq!(
            next.topic, "x2/marker",
            "a second copy of the QoS 2 message: {next:?}"
        );
    }
    ctx.node.shutdown().await;
}

/// Retained messages: stored and sent to a new subscription with RETAIN 1 [MQTT-3.3.1-5]
/// [MQTT-3.3.1-8] (5.0: [MQTT-3.3.1-6], [MQTT-3.3.1-9]); a new retained message replaces the
/// old one [MQTT-3.3.1-5]; an empty retained payload removes it and is not stored
/// [MQTT-3.3.1-10]/[MQTT-3.3.1-11] (3.1.1) / [MQTT-3.3.1-6]/[MQTT-3.3.1-7] (5.0); a message
/// delivered to an existing subscription has RETAIN 0 [MQTT-3.3.1-9] (3.1.1), and in MQTT 5 with
/// Retain As Published 0 [MQTT-3.3.1-12].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_set_replaced_cleared_and_flagged() {
    let ctx = Ctx::new().await;
    for version in [4u8, 5] {
        let t = format!("ret{version}/a");
        let other = format!("ret{version}/z");
        let mut publ = ctx
            .conn(&Connect::new(
                version,
                &format!("r-pub-{version}"),
                &ctx.user,
                &ctx.pass,
            ))
            .await;
        let mut live = ctx
            .conn(&Connect::new(
                version,
                &format!("r-live-{version}"),
                &ctx.user,
                &ctx.pass,
            ))
            .await;
        live.subscribe(1, &[(&t, 1)], &[]).await;
        assert_eq!(publ.publish1(&t, true, 1, b"first").await, 0);
        assert_eq!(publ.publish1(&t, true, 2, b"second").await, 0);
        for want in ["first", "second"] {
            let m = live.message().await;
            assert_eq!(m.payload, want.as_bytes());
            assert!(!m.retain, "a live delivery must have RETAIN 0: {m:?}");
        }
        let filter = format!("ret{version}/#");
        let mut late = ctx
            .conn(&Connect::new(
                version,
                &format!("r-late-{version}"),
                &ctx.user,
                &ctx.pass,
            ))
            .await;
        late.subscribe(1, &[(&filter, 1)], &[]).await;
        let m = late.message().await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..], m.retain),
            (t.as_str(), &b"second"[..], true)
        );

        // Clear with an empty payload; a retained marker on another topic proves the order.
        assert_eq!(publ.publish1(&t, true, 3, b"").await, 0);
        assert_eq!(publ.publish1(&other, true, 4, b"z").await, 0);
        let mut later = ctx
            .conn(&Connect::new(
                version,
                &format!("r-later-{version}"),
                &ctx.user,
                &ctx.pass,
            ))
            .await;
        later.subscribe(1, &[(&filter, 1)], &[]).await;
        let m = later.message().await;
        assert_eq!(
            m.topic, other,
            "the cleared retained message was sent: {m:?}"
        );
        // The live subscriber got the empty message itself (it is forwarded, not stored).
        let m = live.message().await;
        assert!(m.payload.is_empty() && !m.retain, "{m:?}");
    }
    ctx.node.shutdown().await;
}

/// Wills: published when the network connection closes without DISCONNECT
/// [MQTT-3.1.2-8]; removed without being published on DISCONNECT (5.0: reason 0x00)
/// [MQTT-3.1.2-10] (3.1.1) / [MQTT-3.1.2-10]/[MQTT-3.14.4-3] (5.0); the will's retain flag is
/// honoured [MQTT-3.1.2-17].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_is_sent_on_abnormal_close_and_not_on_disconnect() {
    let ctx = Ctx::new().await;
    let mut watcher = ctx.conn(&ctx.v5("w-watch")).await;
    watcher.subscribe(1, &[("will/#", 1)], &[]).await;
    let mut publ = ctx.conn(&ctx.v5("w-pub")).await;
    for version in [4u8, 5] {
        // Normal DISCONNECT: no will.
        let id = format!("w-clean-{version}");
        let mut c = Connect::new(version, &id, &ctx.user, &ctx.pass);
        let topic = format!("will/clean{version}");
        c.will = Some(Will {
            topic: &topic,
            payload: b"gone",
            qos: 1,
            retain: false,
            props: vec![],
        });
        let mut conn = ctx.conn(&c).await;
        conn.send(&disconnect((version == 5).then_some(0))).await;
        assert!(matches!(conn.read(WAIT).await, Read::Closed));
        marker(
            &mut publ,
            &format!("will/marker{version}"),
            10 + u16::from(version),
        )
        .await;
        let m = watcher.message().await;
        assert_eq!(
            m.topic,
            format!("will/marker{version}"),
            "will sent after DISCONNECT: {m:?}"
        );

        // Abnormal close (the socket dropped): the will, retained as asked.
        let id = format!("w-crash-{version}");
        let mut c = Connect::new(version, &id, &ctx.user, &ctx.pass);
        let topic = format!("will/crash{version}");
        c.will = Some(Will {
            topic: &topic,
            payload: b"lost",
            qos: 1,
            retain: true,
            props: vec![],
        });
        drop(ctx.conn(&c).await);
        let m = watcher.message().await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            (topic.as_str(), &b"lost"[..])
        );
        let mut late = ctx.conn(&ctx.v5(&format!("w-late-{version}"))).await;
        late.subscribe(1, &[(&topic, 1)], &[]).await;
        let m = late.message().await;
        assert!(m.retain && m.payload == b"lost", "will not retained: {m:?}");
    }
    ctx.node.shutdown().await;
}

/// MQTT 5 Will Delay Interval: the will is not published before the delay, and not at all if
/// the client reconnects with the same client id in time [MQTT-3.1.3-9]; once the delay passes
/// without a reconnect it is published (§3.1.2.5, §3.1.3.2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_will_waits_and_is_cancelled_by_a_reconnect() {
    let ctx = Ctx::new().await;
    let mut watcher = ctx.conn(&ctx.v5("wd-watch")).await;
    watcher.subscribe(1, &[("wd/#", 1)], &[]).await;
    let mut publ = ctx.conn(&ctx.v5("wd-pub")).await;
    let will = |topic: &'static str| Will {
        topic,
        payload: b"late",
        qos: 1,
        retain: false,
        props: vec![(WILL_DELAY, Value::U32(3))],
    };
    // Reconnect within the delay: no will.
    let mut c = ctx.v5("wd-back");
    c.clean = false;
    c.props = vec![(SESSION_EXPIRY, Value::U32(60))];
    c.will = Some(will("wd/back"));
    drop(ctx.conn(&c).await);
    let mut c2 = ctx.v5("wd-back");
    c2.clean = false;
    c2.props = vec![(SESSION_EXPIRY, Value::U32(60))];
    let _back = ctx.conn(&c2).await;

    // No reconnect: the will comes, after a marker sent right after the close.
    let mut c = ctx.v5("wd-gone");
    c.props = vec![(SESSION_EXPIRY, Value::U32(60))];
    c.will = Some(will("wd/gone"));
    drop(ctx.conn(&c).await);
    marker(&mut publ, "wd/marker", 1).await;
    let first = watcher.message().await;
    assert_eq!(
        first.topic, "wd/marker",
        "the will came before its delay: {first:?}"
    );
    // wd/back's will would be due at the same time as wd/gone's: only wd/gone must come.
    let m = watcher.message().await;
    assert_eq!(m.topic, "wd/gone", "{m:?}");
    marker(&mut publ, "wd/marker", 2).await;
    let m = watcher.message().await;
    assert_eq!(m.topic, "wd/marker", "the cancelled will was sent: {m:?}");
    ctx.node.shutdown().await;
}

/// Sessions. 3.1.1: CleanSession 0 resumes the session (Session Present 1 [MQTT-3.2.2-2]) with
/// its subscriptions and the QoS 1/2 messages queued while offline [MQTT-3.1.2-4]/[MQTT-3.1.2-5];
/// CleanSession 1 discards it (Session Present 0 [MQTT-3.2.2-1], [MQTT-3.1.2-6]).
/// 5.0: Session Expiry Interval 0 ends the session with the connection [MQTT-3.1.2-23 note];
/// a non-zero one keeps it, and after it elapses the session is gone (Session Present 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_sessions_keep_subscriptions_and_offline_queues_and_expire() {
    let ctx = Ctx::new().await;
    let mut publ = ctx.conn(&ctx.v5("s-pub")).await;

    // 3.1.1 persistent.
    let mut c = ctx.v4("s-311");
    c.clean = false;
    let (mut s, present, code, _) = Conn::connect(ctx.addr(), &c).await;
    assert_eq!((present, code), (false, 0));
    s.subscribe(1, &[("s311/#", 1)], &[]).await;
    s.send(&disconnect(None)).await;
    assert!(matches!(s.read(WAIT).await, Read::Closed));
    for i in 0..3u16 {
        assert_eq!(
            publ.publish1("s311/q", false, 100 + i, format!("o{i}").as_bytes())
                .await,
            0
        );
    }
    let (mut s, present, _, _) = Conn::connect(ctx.addr(), &c).await;
    assert!(present, "Session Present must be 1");
    for i in 0..3 {
        let m = s.message().await;
        assert_eq!(m.payload, format!("o{i}").as_bytes());
    }
    s.send(&disconnect(None)).await;
    // 3.1.1 clean: the session is discarded, nothing is delivered.
    let mut c1 = ctx.v4("s-311");
    c1.clean = true;
    let (mut s, present, _, _) = Conn::connect(ctx.addr(), &c1).await;
    assert!(!present);
    s.subscribe(1, &[("s311/marker", 1)], &[]).await;
    marker(&mut publ, "s311/q", 110).await;
    marker(&mut publ, "s311/marker", 111).await;
    let m = s.message().await;
    assert_eq!(
        m.topic, "s311/marker",
        "the discarded subscription still delivered: {m:?}"
    );

    // 5.0: a session with expiry 60 s resumes and has its queue.
    let mut c = ctx.v5("s-5");
    c.clean = false;
    c.props = vec![(SESSION_EXPIRY, Value::U32(60))];
    let mut s = ctx.conn(&c).await;
    s.subscribe(1, &[("s5/#", 1)], &[]).await;
    s.send(&disconnect(Some(0))).await;
    assert!(matches!(s.read(WAIT).await, Read::Closed));
    assert_eq!(publ.publish1("s5/q", false, 120, b"queued").await, 0);
    let (mut s, present, _, _) = Conn::connect(ctx.addr(), &c).await;
    assert!(present);
    assert_eq!(s.message().await.payload, b"queued");
    s.send(&disconnect(Some(0))).await;

    // 5.0: expiry 0 (the default): nothing is kept after the connection.
    let mut c0 = ctx.v5("s-5-zero");
    c0.clean = false;
    let mut s = ctx.conn(&c0).await;
    s.subscribe(1, &[("s5z/#", 1)], &[]).await;
    s.send(&disconnect(Some(0))).await;
    assert!(matches!(s.read(WAIT).await, Read::Closed));
    let (_s, present, _, _) = Conn::connect(ctx.addr(), &c0).await;
    assert!(!present, "a session with expiry 0 outlived its connection");

    // 5.0: expiry 1 s, reconnect after it elapsed: gone.
    let mut c1 = ctx.v5("s-5-short");
    c1.clean = false;
    c1.props = vec![(SESSION_EXPIRY, Value::U32(1))];
    let mut s = ctx.conn(&c1).await;
    s.subscribe(1, &[("s5s/#", 1)], &[]).await;
    s.send(&disconnect(Some(0))).await;
    assert!(matches!(s.read(WAIT).await, Read::Closed));
    // Each probe starts a new 1 s session, so probes are 2 s apart (a generous wait for the
    // expiry, not a measurement).
    let mut gone = false;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut s, present, _, _) = Conn::connect(ctx.addr(), &c1).await;
        s.send(&disconnect(Some(0))).await;
        if !present {
            gone = true;
            break;
        }
    }
    assert!(gone, "the session outlived its 1 s expiry");
    ctx.node.shutdown().await;
}

/// Shared subscriptions (5.0 §4.8.2): each message of `$share/<group>/<filter>` goes to one
/// member of the group (5.0 §4.8.2: each message goes to only one of the sessions sharing the subscription),
/// while an ordinary subscription to the same filter gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_subscription_delivers_each_message_to_one_member() {
    let ctx = Ctx::new().await;
    let mut a = ctx.conn(&ctx.v5("sh-a")).await;
    let mut b = ctx.conn(&ctx.v5("sh-b")).await;
    let mut all = ctx.conn(&ctx.v5("sh-all")).await;
    assert_eq!(
        a.subscribe(1, &[("$share/g/sh/+", 1)], &[]).await.0,
        vec![1]
    );
    assert_eq!(
        b.subscribe(1, &[("$share/g/sh/+", 1)], &[]).await.0,
        vec![1]
    );
    all.subscribe(1, &[("sh/+", 1)], &[]).await;
    a.subscribe(2, &[("shm/a", 1)], &[]).await;
    b.subscribe(2, &[("shm/b", 1)], &[]).await;
    // Each member reads on its own task (a read cancelled half-way would lose bytes) until its
    // marker, published after all the messages.
    let collect = |mut c: Conn, mark: &'static str| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let m = c.message().await;
                if m.topic == mark {
                    return got;
                }
                got.push(m.payload);
            }
        })
    };
    let (ta, tb) = (collect(a, "shm/a"), collect(b, "shm/b"));
    let mut publ = ctx.conn(&ctx.v5("sh-pub")).await;
    let n = 20u16;
    for i in 0..n {
        assert_eq!(
            publ.publish1("sh/x", false, i + 1, &i.to_be_bytes()).await,
            0
        );
    }
    marker(&mut publ, "shm/a", 100).await;
    marker(&mut publ, "shm/b", 101).await;
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(all.message().await.payload);
    }
    let (from_a, from_b) = (ta.await.unwrap(), tb.await.unwrap());
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "one member got nothing: {} / {}",
        from_a.len(),
        from_b.len()
    );
    let mut shared: Vec<_> = from_a.into_iter().chain(from_b).collect();
    shared.sort();
    seen.sort();
    assert_eq!(shared, seen, "each message exactly once across the group");
    ctx.node.shutdown().await;
}

/// Topic aliases (5.0 §3.3.2.3.4): the CONNACK announces Topic Alias Maximum; a PUBLISH with a
/// topic and alias sets the mapping and a later one with an empty topic uses it
/// [MQTT-3.3.2-12]; subscribers get the full topic name. An alias of 0, above the maximum, or
/// unknown with an empty topic is a protocol error: DISCONNECT 0x94 Topic Alias invalid, then
/// the connection closes [MQTT-3.3.2-8]/[MQTT-3.3.2-10] (§3.3.2.3.4, §4.13: the server SHOULD
/// send the DISCONNECT; upstream mqtt5 closed without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_are_resolved_and_an_invalid_one_is_refused() {
    let ctx = Ctx::new().await;
    let mut sub = ctx.conn(&ctx.v5("ta-sub")).await;
    sub.subscribe(1, &[("ta/#", 1)], &[]).await;
    let (mut publ, _, code, connack) = Conn::connect(ctx.addr(), &ctx.v5("ta-pub")).await;
    assert_eq!(code, 0);
    let Some(Value::U16(max)) = prop(&connack, TOPIC_ALIAS_MAXIMUM) else {
        panic!("no Topic Alias Maximum in CONNACK: {connack:?}")
    };
    assert!(max >= 1);
    let alias = [(TOPIC_ALIAS, Value::U16(1))];
    publ.send(&publish(
        "ta/long/name",
        1,
        false,
        false,
        1,
        Some(&alias),
        b"a",
    ))
    .await;
    publ.expect(PUBACK).await;
    publ.send(&publish("", 1, false, false, 2, Some(&alias), b"b"))
        .await;
    publ.expect(PUBACK).await;
    for want in [&b"a"[..], b"b"] {
        let m = sub.message().await;
        assert_eq!((m.topic.as_str(), &m.payload[..]), ("ta/long/name", want));
    }
    assert_eq!(max, sentio_broker::TOPIC_ALIAS_MAXIMUM);
    let unknown = 2;
    for (case, topic, alias) in [
        ("above the maximum", "ta/x", max + 1),
        ("0", "ta/x", 0),
        ("unknown, with an empty topic", "", unknown),
    ] {
        let id = format!("ta-bad-{alias}");
        let mut c = ctx.conn(&ctx.v5(&id)).await;
        let bad = [(TOPIC_ALIAS, Value::U16(alias))];
        c.send(&publish(topic, 0, false, false, 0, Some(&bad), b"c"))
            .await;
        assert_eq!(c.until_closed().await, Some(0x94), "topic alias {case}");
    }
    // The earlier publisher's alias 1 is its own: it still works for it.
    publ.send(&publish("", 1, false, false, 3, Some(&alias), b"d"))
        .await;
    publ.expect(PUBACK).await;
    let m = sub.message().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("ta/long/name", &b"d"[..])
    );
    ctx.node.shutdown().await;
}

/// Receive Maximum (5.0 §3.2.2.3.3, §4.9): the CONNACK announces the server's Receive Maximum;
/// a client with more unacknowledged QoS 2 PUBLISHes in flight than that is disconnected with
/// 0x93 Receive Maximum exceeded [MQTT-3.3.4-8 / §4.9].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrunning_receive_maximum_gets_disconnect_0x93() {
    let ctx = Ctx::new().await;
    let (mut c, _, code, connack) = Conn::connect(ctx.addr(), &ctx.v5("rm")).await;
    assert_eq!(code, 0);
    let max = match prop(&connack, RECEIVE_MAXIMUM) {
        Some(Value::U16(m)) => m,
        None => 65535,
        other => panic!("{other:?}"),
    };
    assert!(
        max < u16::MAX,
        "Receive Maximum {max}: no packet id is left to overrun it"
    );
    // Never release (no PUBREL): each stays in flight.
    let mut batch = Vec::new();
    for id in 1..=max + 1 {
        batch.extend(publish("rm/x", 2, false, false, id, Some(&[]), b"q"));
    }
    c.try_send(&batch).await;
    assert_eq!(c.until_closed().await, Some(0x93));
    ctx.node.shutdown().await;
}

/// Maximum Packet Size both ways (5.0 §3.1.2.11, §3.2.2.3.6): the server announces its own; it
/// MUST NOT send a client a packet larger than the client's Maximum Packet Size, and discards
/// such a message for that client [MQTT-3.1.2-24]/[MQTT-3.1.2-25], while clients with room get
/// it. A packet above the server's maximum is a protocol error [MQTT-3.2.2-15 / §4.13].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_packet_size_is_respected_both_ways() {
    let ctx = Ctx::new().await;
    let mut small = ctx.v5("mps-small");
    small.props = vec![(MAXIMUM_PACKET_SIZE, Value::U32(200))];
    let mut small = ctx.conn(&small).await;
    small.subscribe(1, &[("mps/#", 1)], &[]).await;
    let mut big = ctx.conn(&ctx.v5("mps-big")).await;
    big.subscribe(1, &[("mps/#", 1)], &[]).await;
    let (mut publ, _, _, connack) = Conn::connect(ctx.addr(), &ctx.v5("mps-pub")).await;
    let server_max = match prop(&connack, MAXIMUM_PACKET_SIZE) {
        Some(Value::U32(m)) => m as usize,
        other => panic!("no Maximum Packet Size in CONNACK: {other:?}"),
    };
    assert_eq!(server_max, sentio_broker::DEFAULT_MAX_PACKET);
    assert_eq!(publ.publish1("mps/large", false, 1, &[7u8; 1000]).await, 0);
    assert_eq!(publ.publish1("mps/small", false, 2, b"fits").await, 0);
    let m = big.message().await;
    assert_eq!((m.topic.as_str(), m.payload.len()), ("mps/large", 1000));
    assert_eq!(big.message().await.topic, "mps/small");
    let m = small.message().await;
    assert_eq!(
        m.topic, "mps/small",
        "a packet above the client's maximum was sent: {m:?}"
    );

    // Above the server's maximum: the connection is closed (DISCONNECT 0x95 is optional).
    publ.try_send(&publish(
        "mps/huge",
        0,
        false,
        false,
        0,
        Some(&[]),
        &vec![0u8; server_max + 10],
    ))
    .await;
    let reason = publ.until_closed().await;
    assert!(matches!(reason, None | Some(0x95)), "{reason:?}");
    ctx.node.shutdown().await;
}

/// Subscription identifiers (5.0 §3.8.2.1.2): the server returns the identifier of the
/// matching subscription in each PUBLISH [MQTT-3.3.4-3]; for overlapping subscriptions it sends
/// either one copy per subscription or one copy with all identifiers [MQTT-3.3.4-4]/
/// [MQTT-3.3.4-5]; a subscription without identifier gives none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifiers_come_back_with_each_message() {
    let ctx = Ctx::new().await;
    let mut s = ctx.conn(&ctx.v5("sid")).await;
    s.subscribe(1, &[("sid/+", 1)], &[(SUBSCRIPTION_ID, Value::Var(7))])
        .await;
    s.subscribe(2, &[("sid/b", 1)], &[(SUBSCRIPTION_ID, Value::Var(300))])
        .await;
    s.subscribe(3, &[("sidn/#", 1)], &[]).await;
    let mut publ = ctx.conn(&ctx.v5("sid-pub")).await;
    assert_eq!(publ.publish1("sid/a", false, 1, b"a").await, 0);
    let m = s.message().await;
    assert_eq!(m.topic, "sid/a");
    let ids = |m: &Msg| {
        let mut v: Vec<u32> = m
            .props
            .iter()
            .filter_map(|(i, v)| match (i, v) {
                (&SUBSCRIPTION_ID, Value::Var(x)) => Some(*x),
                _ => None,
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&m), vec![7]);
    assert_eq!(publ.publish1("sid/b", false, 2, b"b").await, 0);
    let m = s.message().await;
    let mut got = ids(&m);
    if got.len() == 1 {
        // One copy per subscription.
        let m2 = s.message().await;
        assert_eq!(m2.topic, "sid/b");
        got.extend(ids(&m2));
        got.sort();
    }
    assert_eq!(got, vec![7, 300]);
    assert_eq!(publ.publish1("sidn/x", false, 3, b"n").await, 0);
    let m = s.message().await;
    assert_eq!((m.topic.as_str(), ids(&m)), ("sidn/x", vec![]));
    ctx.node.shutdown().await;
}

/// Request/response and application properties: the server forwards Response Topic
/// [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16], User Properties in order
/// [MQTT-3.3.2-17]/[MQTT-3.3.2-18], Payload Format Indicator [MQTT-3.3.2-4] and Content Type
/// [MQTT-3.3.2-20] unaltered to the subscriber; the responder's answer on the response topic
/// carries the correlation data back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_topic_correlation_data_and_user_properties_are_forwarded() {
    let ctx = Ctx::new().await;
    let mut requester = ctx.conn(&ctx.v5("rr-req")).await;
    requester.subscribe(1, &[("rr/reply/req", 1)], &[]).await;
    let mut responder = ctx.conn(&ctx.v5("rr-resp")).await;
    responder.subscribe(1, &[("rr/service", 1)], &[]).await;
    let sent = vec![
        (PAYLOAD_FORMAT, Value::Byte(1)),
        (CONTENT_TYPE, Value::Str("application/json".into())),
        (RESPONSE_TOPIC, Value::Str("rr/reply/req".into())),
        (CORRELATION_DATA, Value::Bin(vec![0, 1, 2, 0xff])),
        (USER_PROPERTY, Value::Pair("k".into(), "v1".into())),
        (USER_PROPERTY, Value::Pair("k".into(), "v2".into())),
        (USER_PROPERTY, Value::Pair("trace".into(), "abc".into())),
    ];
    requester
        .send(&publish(
            "rr/service",
            1,
            false,
            false,
            1,
            Some(&sent),
            b"{\"q\":1}",
        ))
        .await;
    requester.expect(PUBACK).await;
    let req = responder.message().await;
    for id in [
        PAYLOAD_FORMAT,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
    ] {
        assert_eq!(
            prop(&req.props, id),
            prop(&sent, id),
            "property {id:#x}: {:?}",
            req.props
        );
    }
    // The sent user properties, in order (mqtt5 appends its own after them: see the ignored
    // test below).
    let users: Vec<_> = req
        .props
        .iter()
        .filter(|(i, _)| *i == USER_PROPERTY)
        .collect();
    let sent_users: Vec<_> = sent.iter().filter(|(i, _)| *i == USER_PROPERTY).collect();
    assert_eq!(
        users[..sent_users.len()],
        sent_users,
        "user properties in order"
    );
    let Some(Value::Str(reply_to)) = prop(&req.props, RESPONSE_TOPIC) else {
        unreachable!()
    };
    let corr = prop(&req.props, CORRELATION_DATA).unwrap();
    responder
        .send(&publish(
            &reply_to,
            1,
            false,
            false,
            2,
            Some(&[(CORRELATION_DATA, corr.clone())]),
            b"ok",
        ))
        .await;
    responder.expect(PUBACK).await;
    let reply = requester.message().await;
    assert_eq!(reply.payload, b"ok");
    assert_eq!(prop(&reply.props, CORRELATION_DATA), Some(corr));
    ctx.node.shutdown().await;
}

/// Keep alive: if the client sends nothing for one and a half times its Keep Alive, the server
/// closes the connection [MQTT-3.1.2-22] (3.1.1 and 5.0); if the CONNACK carries a Server Keep
/// Alive, it is the value in force [MQTT-3.2.2-21] (it is then used for the check instead).
/// PINGREQ within the interval keeps the connection open [MQTT-3.12.4-1].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_for_one_and_a_half_keep_alives_is_disconnected() {
    let ctx = Ctx::new().await;
    for version in [5u8, 4] {
        let id = format!("ka-{version}");
        let mut c = Connect::new(version, &id, &ctx.user, &ctx.pass);
        c.keep_alive = 1;
        let (mut conn, _, code, connack) = Conn::connect(ctx.addr(), &c).await;
        assert_eq!(code, 0);
        let keep_alive = match prop(&connack, SERVER_KEEP_ALIVE) {
            Some(Value::U16(k)) => k,
            None => 1,
            other => panic!("{other:?}"),
        };
        assert!(
            keep_alive <= 4,
            "a Server Keep Alive of {keep_alive} s is too long for this test"
        );
        // Pinging keeps it open: three PINGRESPs over three intervals.
        for _ in 0..3 {
            conn.send(&packet(0xC0, &[])).await;
            assert_eq!(conn.next().await.0 >> 4, 13, "PINGRESP");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Then silence: closed (MQTT 5 may send DISCONNECT 0x8D Keep Alive timeout first).
        let reason = conn.until_closed().await;
        assert!(matches!(reason, None | Some(0x8D)), "{reason:?}");
    }
    ctx.node.shutdown().await;
}

/// Server Keep Alive (§3.2.2.3.14): with `--max-keep-alive 2`, an MQTT 5 client asking for
/// 0 or for more gets Server Keep Alive 2 in its CONNACK, the value then in force
/// [MQTT-3.2.2-21] (silent for 1.5 × 2 s: disconnected), while one asking for 1 keeps its own
/// and gets no Server Keep Alive. A 3.1.1 client asking for 0 or more is accepted alike and
/// held to the same 2 s without being told (3.1.1 cannot tell it; §3.1.2.10 lets the server
/// close an inactive connection whatever its keep-alive). It was refused with CONNACK 0x02,
/// which left a sleeping 3.1.1 device asking for 0 no way in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keep_alive_is_announced_as_server_keep_alive_and_enforced() {
    let ctx = Ctx::with(|c| c.mqtt.limits.max_keep_alive = Some(2)).await;
    for asked in [0u16, 600] {
        let id = format!("ska-{asked}");
        let mut c = ctx.v5(&id);
        c.keep_alive = asked;
        let (mut conn, _, code, connack) = Conn::connect(ctx.addr(), &c).await;
        assert_eq!(code, 0);
        assert_eq!(
            prop(&connack, SERVER_KEEP_ALIVE),
            Some(Value::U16(2)),
            "asked {asked}"
        );
        let started = std::time::Instant::now();
        let reason = conn.until_closed().await;
        assert!(matches!(reason, None | Some(0x8D)), "{reason:?}");
        let silent = started.elapsed();
        assert!(
            silent >= Duration::from_millis(2_500) && silent < Duration::from_secs(10),
            "closed after {silent:?} of silence with a keep-alive of 2 s (asked {asked})"
        );
    }
    let mut c = ctx.v5("ska-1");
    c.keep_alive = 1;
    let (_conn, _, code, connack) = Conn::connect(ctx.addr(), &c).await;
    assert_eq!(code, 0);
    assert_eq!(prop(&connack, SERVER_KEEP_ALIVE), None);
    for asked in [0u16, 600] {
        let id = format!("ska311-{asked}");
        let mut c = ctx.v4(&id);
        c.keep_alive = asked;
        let (mut conn, _, code, _) = Conn::connect(ctx.addr(), &c).await;
        assert_eq!(code, 0, "3.1.1 asking for {asked} s is accepted");
        let started = std::time::Instant::now();
        assert_eq!(
            conn.until_closed().await,
            None,
            "3.1.1: closed without DISCONNECT"
        );
        let silent = started.elapsed();
        assert!(
            silent >= Duration::from_millis(2_500) && silent < Duration::from_secs(10),
            "3.1.1 closed after {silent:?} of silence with a maximum of 2 s (asked {asked})"
        );
    }
    let mut c = ctx.v4("ska311-2");
    c.keep_alive = 2;
    assert_eq!(Conn::connect(ctx.addr(), &c).await.2, 0);
    ctx.node.shutdown().await;
}

/// Refusals carry reason codes (and MQTT 5 reason strings, §3.2.2.3.7): bad credentials
/// CONNACK 0x86 (5.0) / 0x04 (3.1.1) [MQTT-3.2.2-6 ...]; no credentials at all 0x87 / 0x05; an
/// ACL-denied MQTT 5 QoS 1 publish PUBACK 0x87 [MQTT-3.4.2-1 table]; a denied subscription SUBACK
/// 0x87 (5.0) / 0x80 (3.1.1) [MQTT-3.9.3-1]; after a refused CONNACK the server closes the
/// connection [MQTT-3.2.2-5 / 3.2.2-7].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_reason_codes_and_reason_strings() {
    let ctx = Ctx::new().await;
    let secret = register(&ctx.node, "rc-dev", "sensor").await;
    for (version, user, pass, want) in [
        (5u8, "rc-dev", "wrong", 0x86u8),
        (5, "nobody", "x", 0x86),
        (5, ctx.user.as_str(), "wrong", 0x86),
        (4, "rc-dev", "wrong", 0x04),
        (4, ctx.user.as_str(), "wrong", 0x04),
    ] {
        let (mut c, present, code, props) =
            Conn::connect(ctx.addr(), &Connect::new(version, "rc-bad", user, pass)).await;
        assert_eq!((code, present), (want, false), "{version} {user}");
        if version == 5 {
            assert!(
                matches!(prop(&props, REASON_STRING), Some(Value::Str(s)) if !s.is_empty()),
                "{props:?}"
            );
        }
        assert!(matches!(c.read(WAIT).await, Read::Closed));
    }
    // No username: not authorized.
    for (version, want) in [(5u8, 0x87u8), (4, 0x05)] {
        let mut b = Vec::new();
        let c = Connect::new(version, "rc-anon", "", "");
        // Build without the username/password flags.
        let mut enc = c.encode();
        let at = 2 + 6 + 1; // header(2) + "MQTT"(6) + level(1) → flags byte
        enc[at] &= !0xC0;
        let tail = 4; // two empty strings at the end
        enc.truncate(enc.len() - tail);
        enc[1] -= tail as u8;
        b.extend(enc);
        let mut conn = Conn::open(ctx.addr(), version == 5).await;
        conn.send(&b).await;
        let body = conn.expect(CONNACK).await;
        assert_eq!(body[1], want, "version {version}");
    }

    // A device: ACL denial on publish (v5 PUBACK 0x87, with a reason string or none) and subscribe.
    let mut d = Conn::ok(ctx.addr(), &Connect::new(5, "rc-dev", "rc-dev", &secret)).await;
    assert_eq!(
        d.publish1("devices/other/telemetry", false, 1, b"{}").await,
        0x87
    );
    assert_eq!(
        d.publish1("devices/rc-dev/status", false, 2, b"ok").await,
        0
    );
    let (codes, _) = d
        .subscribe(
            3,
            &[("devices/#", 1), ("devices/rc-dev/commands/#", 1)],
            &[],
        )
        .await;
    assert_eq!(codes, vec![0x87, 1]);
    let mut d4 = Conn::ok(ctx.addr(), &Connect::new(4, "rc-dev-4", "rc-dev", &secret)).await;
    let (codes, _) = d4.subscribe(4, &[("devices/#", 1)], &[]).await;
    assert_eq!(codes, vec![0x80]);
    ctx.node.shutdown().await;
}

/// Overlapping subscriptions. 3.1.1 [MQTT-3.3.5-1]: the server MUST deliver the message
/// respecting the maximum QoS of all the matching subscriptions, and MAY deliver further copies,
/// one per additional matching subscription at that subscription's QoS. 5.0 [MQTT-3.3.4-2]: the
/// same choice (one copy at the highest QoS, or one per subscription). The no-local option
/// [MQTT-3.8.3-3] stops a client's own messages on that subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_follow_each_version() {
    let ctx = Ctx::new().await;
    let mut publ = ctx.conn(&ctx.v5("ov-pub")).await;
    // 3.1.1: one copy, at QoS 2 (Sentio takes the spec's first option).
    let mut s = ctx.conn(&ctx.v4("ov-311")).await;
    assert_eq!(
        s.subscribe(1, &[("ov/#", 1), ("ov/a", 2), ("ov/+", 0)], &[])
            .await
            .0,
        vec![1, 2, 0]
    );
    s.subscribe(2, &[("ovm", 1)], &[]).await;
    let qos = overlapping_copies(&mut publ, &mut s, "ov/a", "ovm", 1).await;
    assert_eq!(qos, vec![2], "3.1.1 copies");

    // 5.0: copies at QoS up to the subscription's; the highest is among them.
    let mut s = ctx.conn(&ctx.v5("ov-5")).await;
    s.subscribe(1, &[("ov5/#", 1), ("ov5/a", 2)], &[]).await;
    s.subscribe(2, &[("ov5m", 1)], &[]).await;
    let qos = overlapping_copies(&mut publ, &mut s, "ov5/a", "ov5m", 3).await;
    assert!(qos == vec![2] || qos == vec![1, 2], "copies at {qos:?}");

    // No Local: a client's own publish is not sent back on that subscription.
    let mut nl = ctx.conn(&ctx.v5("ov-nl")).await;
    nl.subscribe(1, &[("nl/#", 0x04 | 1)], &[]).await;
    nl.subscribe(2, &[("nlm", 1)], &[]).await;
    assert_eq!(nl.publish1("nl/x", false, 3, b"mine").await, 0);
    marker(&mut publ, "nlm", 5).await;
    let m = nl.message().await;
    assert_eq!(m.topic, "nlm", "No Local ignored: {m:?}");
    ctx.node.shutdown().await;
}

/// Topics beginning with `$` are not matched by filters starting with `#` or `+`
/// [MQTT-4.7.2-1]; a filter that names them (`$app/#`) gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_topics_are_not_matched_by_root_wildcards() {
    let ctx = Ctx::new().await;
    let mut wild = ctx.conn(&ctx.v5("dl-wild")).await;
    wild.subscribe(1, &[("#", 1), ("+/x", 1)], &[]).await;
    let mut named = ctx.conn(&ctx.v5("dl-named")).await;
    named.subscribe(1, &[("$app/#", 1)], &[]).await;
    let mut publ = ctx.conn(&ctx.v5("dl-pub")).await;
    assert_eq!(publ.publish1("$app/x", false, 1, b"hidden").await, 0);
    marker(&mut publ, "dl/marker", 2).await;
    let m = named.message().await;
    assert_eq!(m.topic, "$app/x");
    let m = wild.message().await;
    assert_eq!(
        m.topic, "dl/marker",
        "a root wildcard matched a $ topic: {m:?}"
    );
    ctx.node.shutdown().await;
}

/// Invalid topic filters are refused [MQTT-4.7.1-1]/[MQTT-4.7.1-2]/[MQTT-4.7.3-1]: 5.0 SUBACK
/// 0x8F (or a DISCONNECT), 3.1.1 SUBACK 0x80 or a closed connection [MQTT-4.8.0-1 3.1.1]; a
/// PUBLISH whose topic holds a wildcard is a protocol error [MQTT-3.3.2-2] and closes the
/// connection (5.0: DISCONNECT 0x90 Topic Name invalid if any).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_filters_and_wildcard_topics_are_refused() {
    let ctx = Ctx::new().await;
    for filter in ["a/#/b", "a+/b", "a/b#", "#/a", "$share/g", "$share/g+/x"] {
        for version in [5u8, 4] {
            let id = format!("tf-{version}");
            let mut c = ctx
                .conn(&Connect::new(version, &id, &ctx.user, &ctx.pass))
                .await;
            c.send(&subscribe(version == 5, 1, &[(filter, 1)], &[]))
                .await;
            match c.read(WAIT).await {
                Read::Packet(f, body) if f >> 4 == SUBACK => {
                    let code = if version == 5 {
                        *parse_props(&body[2..]).1.first().unwrap()
                    } else {
                        body[2]
                    };
                    assert!(code >= 0x80, "{filter} v{version} granted: {code:#x}");
                    if version == 5 {
                        assert_eq!(code, 0x8F, "{filter}");
                    }
                }
                Read::Packet(f, body) if f >> 4 == DISCONNECT => {
                    assert!(
                        version == 5 && matches!(body.first(), Some(0x8F | 0x81 | 0x82)),
                        "{filter} {body:?}"
                    );
                }
                Read::Closed => {}
                other => panic!("{filter} v{version}: {other:?}"),
            }
        }
    }
    for topic in ["a/+/b", "a/#"] {
        let mut c = ctx.conn(&ctx.v5("tp")).await;
        c.try_send(&publish(topic, 1, false, false, 1, Some(&[]), b"x"))
            .await;
        let reason = c.until_closed().await;
        assert!(
            matches!(reason, None | Some(0x90) | Some(0x82)),
            "{topic}: {reason:?}"
        );
    }
    ctx.node.shutdown().await;
}

/// [MQTT-3.3.2-17]: the server MUST send all User Properties *unaltered* when forwarding a
/// message. Upstream mqtt5 0.49 appends `x-mqtt-sender` (the publisher's username) and
/// `x-mqtt-client-id` to every forwarded PUBLISH and will, which also shows each publisher's
/// identity to every subscriber; Sentio's patched copy (vendor/mqtt5) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_properties_are_forwarded_unaltered() {
    let ctx = Ctx::new().await;
    let mut sub = ctx.conn(&ctx.v5("up-sub")).await;
    sub.subscribe(1, &[("up/#", 1)], &[]).await;
    let mut publ = ctx.conn(&ctx.v5("up-pub")).await;
    let sent = [(USER_PROPERTY, Value::Pair("k".into(), "v".into()))];
    publ.send(&publish("up/x", 1, false, false, 1, Some(&sent), b"x"))
        .await;
    publ.expect(PUBACK).await;
    let m = sub.message().await;
    assert_eq!(m.props, sent.to_vec());
    ctx.node.shutdown().await;
}

/// Publishes `topic` at QoS 2, then a marker, and returns the sorted QoS of the copies `sub`
/// received before the marker.
async fn overlapping_copies(
    publ: &mut Conn,
    sub: &mut Conn,
    topic: &str,
    mark: &str,
    id: u16,
) -> Vec<u8> {
    publ.send(&publish(topic, 2, false, false, id, Some(&[]), b"x"))
        .await;
    publ.expect(PUBREC).await;
    publ.send(&ack(PUBREL, id)).await;
    publ.expect(PUBCOMP).await;
    marker(publ, mark, id + 1).await;
    let mut qos = Vec::new();
    loop {
        let m = sub.message().await;
        if m.topic == mark {
            break;
        }
        assert_eq!(m.topic, topic);
        qos.push(m.qos);
    }
    qos.sort();
    qos
}

/// [MQTT-3.3.5-1] with the reading: a 3.1.1 client with overlapping subscriptions gets
/// exactly one copy, at the highest granted QoS (Sentio's patched mqtt5 router merges them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_311_client_gets_one_copy_for_overlapping_subscriptions() {
    let ctx = Ctx::new().await;
    let mut publ = ctx.conn(&ctx.v5("ov1-pub")).await;
    let mut s = ctx.conn(&ctx.v4("ov1-311")).await;
    s.subscribe(1, &[("ov1/#", 1), ("ov1/a", 2)], &[]).await;
    s.subscribe(2, &[("ov1m", 1)], &[]).await;
    let qos = overlapping_copies(&mut publ, &mut s, "ov1/a", "ov1m", 1).await;
    assert_eq!(qos, vec![2]);
    ctx.node.shutdown().await;
}

/// A rumqttc v5 client whose event loop runs on a task; returns the client, the CONNACK's
/// session-present flag and a channel of the PUBLISHes it receives.
async fn rumqttc_v5(
    ctx: &Ctx,
    id: &str,
    session_expiry: Option<u32>,
) -> (
    rumqttc::v5::AsyncClient,
    bool,
    tokio::sync::mpsc::Receiver<rumqttc::v5::mqttbytes::v5::Publish>,
) {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::{AsyncClient, Event as E5, MqttOptions};
    let mut o = MqttOptions::new(id, "127.0.0.1", ctx.addr().port());
    o.set_credentials(ctx.user.as_str(), ctx.pass.as_str());
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_start(session_expiry.is_none());
    o.set_session_expiry_interval(session_expiry);
    let (client, mut el) = AsyncClient::new(o, 100);
    let present = loop {
        match tokio::time::timeout(WAIT, el.poll())
            .await
            .expect("CONNACK")
        {
            Ok(E5::Incoming(P5::ConnAck(a))) => break a.session_present,
            Ok(_) => {}
            Err(e) => panic!("rumqttc v5 connect: {e:?}"),
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(100);
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let E5::Incoming(P5::Publish(p)) = ev
                && tx.send(p).await.is_err()
            {
                break;
            }
        }
    });
    (client, present, rx)
}

async fn recv(
    rx: &mut tokio::sync::mpsc::Receiver<rumqttc::v5::mqttbytes::v5::Publish>,
) -> rumqttc::v5::mqttbytes::v5::Publish {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message")
        .expect("the client runs")
}

/// The same statements through a real MQTT 5 client library (rumqttc v5): request/response
/// with Response Topic and Correlation Data [MQTT-3.3.2-15]/[MQTT-3.3.2-16] and user properties
/// [MQTT-3.3.2-17]; a session with a Session Expiry Interval resumes (Session Present 1
/// [MQTT-3.2.2-3]) and receives the QoS 1 messages queued while it was offline
/// [MQTT-3.1.2-23 (5.0): the session state is kept while it has not expired].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_request_response_and_a_resumed_session() {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    let ctx = Ctx::new().await;
    let (requester, _, mut replies) = rumqttc_v5(&ctx, "rq5-req", None).await;
    let (responder, _, mut requests) = rumqttc_v5(&ctx, "rq5-resp", None).await;
    requester
        .subscribe("rq5/reply", Q5::AtLeastOnce)
        .await
        .unwrap();
    responder
        .subscribe("rq5/service", Q5::AtLeastOnce)
        .await
        .unwrap();
    // The subscriptions are in place once a probe on each comes back.
    probe(&requester, &mut replies, "rq5/reply").await;
    probe(&responder, &mut requests, "rq5/service").await;
    let props = PublishProperties {
        response_topic: Some("rq5/reply".into()),
        correlation_data: Some(vec![9, 8, 7].into()),
        user_properties: vec![("trace".into(), "t-1".into())],
        ..Default::default()
    };
    requester
        .publish_with_properties("rq5/service", Q5::AtLeastOnce, false, "ask", props)
        .await
        .unwrap();
    let req = recv(&mut requests).await;
    assert_eq!(&req.payload[..], b"ask");
    let p = req.properties.expect("properties");
    assert_eq!(p.response_topic.as_deref(), Some("rq5/reply"));
    assert_eq!(p.correlation_data.as_deref(), Some(&[9u8, 8, 7][..]));
    assert!(
        p.user_properties
            .contains(&("trace".to_string(), "t-1".to_string()))
    );
    let answer = PublishProperties {
        correlation_data: p.correlation_data.clone(),
        ..Default::default()
    };
    responder
        .publish_with_properties(
            p.response_topic.unwrap(),
            Q5::AtLeastOnce,
            false,
            "yes",
            answer,
        )
        .await
        .unwrap();
    let reply = recv(&mut replies).await;
    assert_eq!(&reply.payload[..], b"yes");
    assert_eq!(
        reply.properties.and_then(|p| p.correlation_data).as_deref(),
        Some(&[9u8, 8, 7][..])
    );

    // A resumed session with its offline queue.
    let (s, present, rx) = rumqttc_v5(&ctx, "rq5-sess", Some(60)).await;
    assert!(!present);
    s.subscribe("rq5/queue", Q5::AtLeastOnce).await.unwrap();
    let mut rx = rx;
    probe(&requester, &mut rx, "rq5/queue").await;
    s.disconnect().await.unwrap();
    while rx.recv().await.is_some() {}
    let mut publ = ctx.conn(&ctx.v5("rq5-pub")).await;
    for i in 0..3u16 {
        assert_eq!(
            publ.publish1("rq5/queue", false, i + 1, format!("q{i}").as_bytes())
                .await,
            0
        );
    }
    let (_s, present, mut rx) = rumqttc_v5(&ctx, "rq5-sess", Some(60)).await;
    assert!(present, "Session Present must be 1");
    for i in 0..3 {
        let m = recv(&mut rx).await;
        assert_eq!(m.payload, format!("q{i}").as_bytes());
    }
    ctx.node.shutdown().await;
}

/// Publishes QoS 0 probes on `topic` until one comes back on `rx` (the subscription is then in
/// place), then empties `rx`.
async fn probe(
    client: &rumqttc::v5::AsyncClient,
    rx: &mut tokio::sync::mpsc::Receiver<rumqttc::v5::mqttbytes::v5::Publish>,
    topic: &str,
) {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    for _ in 0..50 {
        client
            .publish(topic, Q5::AtMostOnce, false, "probe")
            .await
            .unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            while rx.try_recv().is_ok() {}
            return;
        }
    }
    panic!("no probe came back on {topic}");
}
