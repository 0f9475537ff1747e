//! Protocol edges an external MQTT interoperability suite checks, on the wire (raw packets,
//! `support/wire.rs`): every refusal an MQTT 3.1.1 client can meet is answered with 3.1.1
//! packets (the 2-byte acknowledgement, SUBACK 0x80), while MQTT 5 gets the reason codes.

use crate::support::wire::*;
use crate::support::*;
use serde_json::json;

/// [MQTT-3.3.5-2] (3.1.1): a PUBLISH the server does not authorize gets a positive
/// acknowledgement by the normal QoS rules (or the connection closes); 3.1.1 acks are the
/// packet id alone (remaining length 2), SUBACK return codes are 0x00-0x02 or 0x80
/// [MQTT-3.9.3-2]. Each refusal path: the ACL (QoS 1 PUBACK, QoS 2 PUBREC then PUBCOMP), the
/// identity's retained share (0x97 for MQTT 5: QoS 1 and 2), the subscription bound (0x97 for
/// MQTT 5). The refused retained message is not stored; the client stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_311_client_gets_plain_311_packets_for_every_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.mqtt.limits.max_retained_messages = 1;
        c.mqtt.limits.max_subscriptions = 1;
    })
    .await;
    let acl = json!([{"filter": "ok/#", "rights": "both"}]);
    let (_, user, pass) = create_token(&node, "edges", acl).await;
    let addr = node.mqtt_addr;
    let mut c = Conn::ok(addr, &Connect::new(4, "edge-311", &user, &pass)).await;

    // Outside the ACL: QoS 1, then QoS 2.
    assert_plain_acks(&mut c, "no/x", false, 1, 1, "QoS 1 refused by the ACL").await;
    assert_plain_acks(&mut c, "no/x", false, 2, 2, "QoS 2 refused by the ACL").await;
    // The identity's retained share (one message): the first fills it, the next are refused.
    assert_plain_acks(&mut c, "ok/r1", true, 1, 3, "QoS 1 retained, kept").await;
    assert_plain_acks(&mut c, "ok/r2", true, 1, 4, "QoS 1 over the retained share").await;
    assert_plain_acks(&mut c, "ok/r3", true, 2, 5, "QoS 2 over the retained share").await;

    // The subscription bound (one): SUBACK 0x80, 3.1.1's only failure code.
    assert_eq!(c.subscribe(6, &[("ok/s1", 1)], &[]).await.0, [1]);
    assert_eq!(c.subscribe(7, &[("ok/s2", 1)], &[]).await.0, [0x80]);

    // The same refusals to an MQTT 5 client carry their reason codes.
    let mut v5 = Conn::ok(addr, &Connect::new(5, "edge-5", &user, &pass)).await;
    v5.send(&publish("no/x", 2, false, false, 1, Some(&[]), b"x"))
        .await;
    assert_eq!(v5.expect(PUBREC).await[..3], [0, 1, 0x87]);
    assert_eq!(v5.publish1("ok/r4", true, 2, b"over").await, 0x97);
    assert_eq!(v5.subscribe(3, &[("ok/s1", 1)], &[]).await.0, [1]);
    assert_eq!(v5.subscribe(4, &[("ok/s2", 1)], &[]).await.0, [0x97]);

    // Only the first retained message was kept; the 3.1.1 client is still connected: a new
    // subscriber gets `ok/r1` retained, then the 3.1.1 client's marker.
    let mut sub = Conn::ok(addr, &Connect::new(4, "edge-sub", &user, &pass)).await;
    assert_eq!(sub.subscribe(1, &[("ok/#", 1)], &[]).await.0, [1]);
    let m = sub.message().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.retain),
        ("ok/r1", &b"ok/r1"[..], true)
    );
    assert_eq!(c.publish1("ok/marker", false, 8, b"m").await, 0);
    let m = sub.message().await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("ok/marker", &b"m"[..]));
    node.shutdown().await;
}

/// Publishes `topic` (its name as payload) at `qos` from a 3.1.1 connection and asserts the
/// 3.1.1 acknowledgements: PUBACK, or PUBREC then PUBCOMP for our PUBREL, each the packet id
/// alone.
async fn assert_plain_acks(c: &mut Conn, topic: &str, retain: bool, qos: u8, id: u16, what: &str) {
    c.send(&publish(
        topic,
        qos,
        retain,
        false,
        id,
        None,
        topic.as_bytes(),
    ))
    .await;
    let plain = id.to_be_bytes().to_vec();
    if qos == 1 {
        assert_eq!(c.expect(PUBACK).await, plain, "{what}");
        return;
    }
    assert_eq!(c.expect(PUBREC).await, plain, "{what}: PUBREC");
    c.send(&ack(PUBREL, id)).await;
    assert_eq!(c.expect(PUBCOMP).await, plain, "{what}: PUBCOMP");
}
