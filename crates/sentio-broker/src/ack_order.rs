//! The acknowledgements of PUBLISHes read together (vendor/mqtt5, SENTIO-PATCH: held acks):
//! mqtt5's client handler holds a PUBACK while a further whole packet is already buffered and
//! sends the held ones in one write once the buffer runs dry. These tests speak raw MQTT 5 to
//! a real broker: the acks still come in the order of their PUBLISHes, before any packet the
//! handler writes after them, and before the connection ends on a malformed packet.

use std::net::SocketAddr;
use std::time::Duration;

use mqtt5::broker::MqttBroker;
use mqtt5::broker::config::{BrokerConfig, StorageConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const PUBACK: u8 = 4;
const PINGRESP: u8 = 13;
const PUBLISH: u8 = 3;

async fn start_broker() -> SocketAddr {
    let config = BrokerConfig::default()
        .with_bind_address(([127, 0, 0, 1], 0))
        .with_storage(StorageConfig::new().with_persistence(false));
    let mut broker = MqttBroker::with_config(config).await.expect("broker");
    let addr = broker.local_addr().expect("listening");
    tokio::spawn(async move { broker.run().await });
    addr
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            break;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn connect(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    string("MQTT", &mut body);
    body.extend_from_slice(&[5, 0x02, 0, 60, 0]);
    string(client_id, &mut body);
    packet(0x10, &body)
}

fn subscribe_qos1(packet_id: u16, filter: &str) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.push(0);
    string(filter, &mut body);
    body.push(1);
    packet(0x82, &body)
}

fn publish_qos1(packet_id: u16, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic, &mut body);
    body.extend_from_slice(&packet_id.to_be_bytes());
    body.push(0);
    body.extend_from_slice(payload);
    packet(0x32, &body)
}

/// A client that reads whole packets: `(type, body)`.
struct Client {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr, client_id: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut client = Self {
            stream,
            buffered: Vec::new(),
        };
        client.send(&connect(client_id)).await;
        let (kind, body) = client.next().await.expect("CONNACK");
        assert_eq!((kind, body.get(1)), (2, Some(&0)), "CONNACK success");
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    fn whole_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let (mut len, mut shift, mut at) = (0usize, 0, 1);
        loop {
            let byte = *self.buffered.get(at)?;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if self.buffered.len() < at + len {
            return None;
        }
        let kind = self.buffered[0] >> 4;
        let body = self.buffered[at..at + len].to_vec();
        self.buffered.drain(..at + len);
        Some((kind, body))
    }

    /// The next packet, or `None` once the broker closed the connection.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(packet) = self.whole_packet() {
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("a packet within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }
}

fn packet_id(body: &[u8]) -> u16 {
    u16::from_be_bytes([body[0], body[1]])
}

#[tokio::test]
async fn pubacks_of_publishes_read_together_come_in_order_before_a_later_reply() {
    let addr = start_broker().await;
    let mut subscriber = Client::connect(addr, "ack-order-sub").await;
    subscriber.send(&subscribe_qos1(1, "ack/order")).await;
    let (kind, _) = subscriber.next().await.expect("SUBACK");
    assert_eq!(kind, 9);

    let mut publisher = Client::connect(addr, "ack-order-pub").await;
    let count: u16 = 200;
    let mut burst = Vec::new();
    for id in 1..=count {
        burst.extend(publish_qos1(id, "ack/order", &id.to_be_bytes()));
    }
    burst.extend_from_slice(&[0xc0, 0]); // PINGREQ
    publisher.send(&burst).await;

    let mut seen = Vec::new();
    loop {
        let (kind, body) = publisher.next().await.expect("connection open");
        if kind == PINGRESP {
            break;
        }
        assert_eq!(kind, PUBACK, "only PUBACKs before the PINGRESP");
        seen.push(packet_id(&body));
    }
    assert_eq!(
        seen,
        (1..=count).collect::<Vec<_>>(),
        "every PUBACK, in order"
    );

    let mut delivered = Vec::new();
    while delivered.len() < usize::from(count) {
        let (kind, body) = subscriber.next().await.expect("delivery");
        assert_eq!(kind, PUBLISH);
        let topic_len = usize::from(packet_id(&body));
        let id = packet_id(&body[2 + topic_len..]);
        assert_eq!(body[2 + topic_len + 2], 0, "no properties");
        let payload = &body[2 + topic_len + 3..];
        delivered.push(packet_id(payload));
        let mut puback = vec![0x40, 2];
        puback.extend_from_slice(&id.to_be_bytes());
        subscriber.send(&puback).await;
    }
    assert_eq!(
        delivered,
        (1..=count).collect::<Vec<_>>(),
        "delivered in order"
    );
}

#[tokio::test]
async fn a_publish_read_with_a_malformed_packet_is_acknowledged_before_the_close() {
    let addr = start_broker().await;
    let mut publisher = Client::connect(addr, "ack-before-close").await;
    let mut bytes = publish_qos1(7, "ack/close", b"x");
    // Packet type 0 is reserved: a malformed packet, and the connection ends.
    bytes.extend_from_slice(&[0x00, 0x00]);
    publisher.send(&bytes).await;

    let mut packets = Vec::new();
    while let Some(packet) = publisher.next().await {
        packets.push(packet);
    }
    let first = packets.first().expect("a reply before the close");
    assert_eq!(first.0, PUBACK, "the PUBACK first: {packets:?}");
    assert_eq!(packet_id(&first.1), 7);
}
