//! The delivery path's parts of the mqtt5 patch (SENTIO-PATCH.md, "The fan-out path"). Their
//! tests live here, as `wildcard_index`'s do, because mqtt5 is not a workspace member and its
//! own unit tests never run in `cargo test --workspace`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, BytesMut};
use mqtt5::broker::storage::{MemoryBackend, QueuedMessage, StorageBackend};
use mqtt5::broker::sys_topics::BrokerStats;
use mqtt5::packet::publish::PublishPacket;
use mqtt5::packet::{MqttPacket, Packet};
use mqtt5::protocol::v5::properties::Properties;
use mqtt5::transport::packet_io::encode_packet_to_buffer;
use mqtt5::{MqttError, QoS};

/// A PUBLISH as upstream's generic encoder wrote it: fixed header, remaining length, then
/// `MqttPacket::encode_body` (the topic through `encode_string`).
fn generic_encoding(p: &PublishPacket) -> BytesMut {
    let mut body = BytesMut::new();
    p.encode_body(&mut body).unwrap();
    let mut out = BytesMut::new();
    out.put_u8(0x30 | (p.flags() & 0x0f));
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.put_u8(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.put(body);
    out
}

fn direct_encoding(p: PublishPacket) -> Result<BytesMut, MqttError> {
    let mut out = BytesMut::new();
    encode_packet_to_buffer(&Packet::Publish(p), &mut out).map(|()| out)
}

#[test]
fn a_publish_is_encoded_to_the_same_bytes_as_the_generic_encoder() {
    let mut with_properties = Properties::default();
    with_properties.set_subscription_identifier(7);
    with_properties.add_user_property("k".into(), "v".into());
    let mut cases = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for version in [4u8, 5] {
            for retain in [false, true] {
                let mut p = PublishPacket::new("a/b/ünïcode", &b"payload"[..], qos);
                p.protocol_version = version;
                p.retain = retain;
                p.dup = qos != QoS::AtMostOnce && retain;
                if qos != QoS::AtMostOnce {
                    p.packet_id = Some(513);
                }
                if version == 5 && retain {
                    p.properties = with_properties.clone();
                }
                cases.push(p);
            }
        }
    }
    // A remaining length of two bytes.
    let mut long = PublishPacket::new("t".repeat(300), vec![9u8; 200], QoS::AtLeastOnce);
    long.packet_id = Some(1);
    cases.push(long);
    for p in cases {
        let expected = generic_encoding(&p);
        let what = format!("qos {:?} v{}", p.qos, p.protocol_version);
        assert_eq!(direct_encoding(p).unwrap(), expected, "{what}");
    }
}

#[test]
fn a_publish_that_cannot_be_encoded_is_refused() {
    let nul = PublishPacket::new("a\0b", &b"x"[..], QoS::AtMostOnce);
    assert!(matches!(
        direct_encoding(nul),
        Err(MqttError::MalformedPacket(_))
    ));
    let long = PublishPacket::new("t".repeat(70_000), &b"x"[..], QoS::AtMostOnce);
    assert!(matches!(
        direct_encoding(long),
        Err(MqttError::StringTooLong(70_000))
    ));
    let no_id = PublishPacket::new("a", &b"x"[..], QoS::AtLeastOnce);
    assert!(matches!(
        direct_encoding(no_id),
        Err(MqttError::MalformedPacket(_))
    ));
}

#[test]
fn broker_counts_added_from_many_threads_sum_exactly() {
    let stats = Arc::new(BrokerStats::new());
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    stats.publish_sent(10);
                    stats.publish_received(3);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(stats.publish_sent.load(Ordering::Relaxed), 24_000);
    assert_eq!(stats.messages_sent.load(Ordering::Relaxed), 24_000);
    assert_eq!(stats.bytes_sent.load(Ordering::Relaxed), 240_000);
    assert_eq!(stats.publish_received.load(Ordering::Relaxed), 24_000);
    assert_eq!(stats.messages_received.load(Ordering::Relaxed), 24_000);
    assert_eq!(stats.bytes_received.load(Ordering::Relaxed), 72_000);
}

fn queued(client: &str, tag: &str) -> QueuedMessage {
    let publish = PublishPacket::new(
        format!("t/{tag}"),
        tag.as_bytes().to_vec(),
        QoS::AtLeastOnce,
    );
    QueuedMessage::new(publish, client.to_string(), QoS::AtLeastOnce, None)
}

#[tokio::test]
async fn the_queued_total_is_the_sum_of_every_queue_s_count() {
    let backend = MemoryBackend::new();
    let a = backend.queue_handle("a");
    let b = backend.queue_handle("b");
    let sum = |a: &mqtt5::broker::storage::QueueHandle, b: &mqtt5::broker::storage::QueueHandle| {
        a.count() + b.count()
    };
    for tag in ["1", "2", "3"] {
        a.push(queued("a", tag));
        b.push(queued("b", tag));
    }
    assert_eq!((backend.queued_total(), sum(&a, &b)), (6, 6));
    let taken = a.take_keeping_files(2).await;
    assert_eq!(taken.len(), 2);
    assert_eq!((backend.queued_total(), sum(&a, &b)), (4, 4));
    a.requeue_front(taken.into_iter().map(|(_, m)| m).collect());
    assert_eq!((backend.queued_total(), sum(&a, &b)), (6, 6));
    b.take(1).await;
    a.clear(None);
    assert_eq!((backend.queued_total(), sum(&a, &b)), (2, 2));
    b.take(10).await;
    b.finish_drain();
    assert_eq!(backend.queued_total(), 0);
}
