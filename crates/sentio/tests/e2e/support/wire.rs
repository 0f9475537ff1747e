//! A small MQTT 3.1.1 / 5.0 codec for conformance tests: hand-built packets with any flags and
//! properties, and a connection that returns every packet the broker sends with its fixed
//! header flags and decoded properties, so that nothing a client library would hide is lost.

pub use super::raw::packet;
use super::raw::{string, varint};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous wait for an event that must happen (only used to fail, never to measure).
pub const WAIT: Duration = Duration::from_secs(10);

pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBACK: u8 = 9;
pub const DISCONNECT: u8 = 14;

// Property identifiers used by the tests (MQTT 5.0 §2.2.2.2).
pub const PAYLOAD_FORMAT: u8 = 0x01;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_ID: u8 = 0x0B;
pub const SESSION_EXPIRY: u8 = 0x11;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const WILL_DELAY: u8 = 0x18;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const USER_PROPERTY: u8 = 0x26;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;

/// A property value, typed by its identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Byte(u8),
    U16(u16),
    U32(u32),
    Var(u32),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

fn kind(id: u8) -> fn(&mut &[u8]) -> Value {
    match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => |b| Value::Byte(take(b, 1)[0]),
        0x13 | 0x21 | 0x22 | 0x23 => {
            |b| Value::U16(u16::from_be_bytes(take(b, 2).try_into().unwrap()))
        }
        0x02 | 0x11 | 0x18 | 0x27 => {
            |b| Value::U32(u32::from_be_bytes(take(b, 4).try_into().unwrap()))
        }
        0x0B => |b| Value::Var(read_varint(b)),
        0x09 | 0x16 => |b| Value::Bin(bin(b)),
        0x26 => |b| {
            let k = bin(b);
            let v = bin(b);
            Value::Pair(String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
        },
        _ => |b| Value::Str(String::from_utf8(bin(b)).unwrap()),
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (h, t) = b.split_at(n);
    *b = t;
    h
}

fn bin(b: &mut &[u8]) -> Vec<u8> {
    let n = u16::from_be_bytes(take(b, 2).try_into().unwrap()) as usize;
    take(b, n).to_vec()
}

fn read_varint(b: &mut &[u8]) -> u32 {
    let (mut v, mut shift) = (0u32, 0);
    loop {
        let byte = take(b, 1)[0];
        v |= u32::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return v;
        }
    }
}

/// Encodes properties (length-prefixed).
pub fn props(list: &[(u8, Value)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (id, v) in list {
        b.push(*id);
        match v {
            Value::Byte(x) => b.push(*x),
            Value::U16(x) => b.extend_from_slice(&x.to_be_bytes()),
            Value::U32(x) => b.extend_from_slice(&x.to_be_bytes()),
            Value::Var(x) => varint(*x as usize, &mut b),
            Value::Str(s) => string(s.as_bytes(), &mut b),
            Value::Bin(x) => string(x, &mut b),
            Value::Pair(k, v) => {
                string(k.as_bytes(), &mut b);
                string(v.as_bytes(), &mut b);
            }
        }
    }
    let mut out = Vec::new();
    varint(b.len(), &mut out);
    out.extend(b);
    out
}

/// Decodes a property list that starts at `b`; returns the list and the rest.
pub fn parse_props(mut b: &[u8]) -> (Vec<(u8, Value)>, &[u8]) {
    let len = read_varint(&mut b) as usize;
    let (mut p, rest) = b.split_at(len);
    let mut list = Vec::new();
    while !p.is_empty() {
        let id = take(&mut p, 1)[0];
        list.push((id, kind(id)(&mut p)));
    }
    (list, rest)
}

/// The first value of property `id`.
pub fn prop(list: &[(u8, Value)], id: u8) -> Option<Value> {
    list.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone())
}

/// A will message.
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    pub props: Vec<(u8, Value)>,
}

/// CONNECT options.
pub struct Connect<'a> {
    pub version: u8,
    pub client_id: &'a str,
    pub user: &'a str,
    pub pass: &'a str,
    pub clean: bool,
    pub keep_alive: u16,
    pub props: Vec<(u8, Value)>,
    pub will: Option<Will<'a>>,
}

impl<'a> Connect<'a> {
    pub fn new(version: u8, client_id: &'a str, user: &'a str, pass: &'a str) -> Self {
        Self {
            version,
            client_id,
            user,
            pass,
            clean: true,
            keep_alive: 60,
            props: vec![],
            will: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        string(b"MQTT", &mut b);
        b.push(self.version);
        let mut flags = 0x80 | 0x40;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3) | if w.retain { 0x20 } else { 0 };
        }
        b.push(flags);
        b.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.version == 5 {
            b.extend(props(&self.props));
        }
        string(self.client_id.as_bytes(), &mut b);
        if let Some(w) = &self.will {
            if self.version == 5 {
                b.extend(props(&w.props));
            }
            string(w.topic.as_bytes(), &mut b);
            string(w.payload, &mut b);
        }
        string(self.user.as_bytes(), &mut b);
        string(self.pass.as_bytes(), &mut b);
        packet(0x10, &b)
    }
}

/// PUBLISH; `packet_id` is written for QoS 1 and 2; `props` only for MQTT 5 (`Some`).
pub fn publish(
    topic: &str,
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
    props5: Option<&[(u8, Value)]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = Vec::new();
    string(topic.as_bytes(), &mut b);
    if qos > 0 {
        b.extend_from_slice(&packet_id.to_be_bytes());
    }
    if let Some(p) = props5 {
        b.extend(props(p));
    }
    b.extend_from_slice(payload);
    let first = 0x30 | (qos << 1) | u8::from(retain) | if dup { 0x08 } else { 0 };
    packet(first, &b)
}

/// SUBSCRIBE with `(filter, options)`: options = QoS for 3.1.1; for MQTT 5 QoS | no-local 0x04
/// | retain-as-published 0x08 | retain handling << 4.
pub fn subscribe(
    v5: bool,
    packet_id: u16,
    filters: &[(&str, u8)],
    props5: &[(u8, Value)],
) -> Vec<u8> {
    let mut b = packet_id.to_be_bytes().to_vec();
    if v5 {
        b.extend(props(props5));
    }
    for (f, o) in filters {
        string(f.as_bytes(), &mut b);
        b.push(*o);
    }
    packet(0x82, &b)
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (success, no properties: valid in both versions).
pub fn ack(kind: u8, packet_id: u16) -> Vec<u8> {
    let first = (kind << 4) | if kind == PUBREL { 0x02 } else { 0 };
    packet(first, &packet_id.to_be_bytes())
}

/// DISCONNECT with a reason code (MQTT 5) or none (3.1.1: `None`).
pub fn disconnect(reason: Option<u8>) -> Vec<u8> {
    match reason {
        Some(r) => packet(0xE0, &[r, 0]),
        None => packet(0xE0, &[]),
    }
}

/// A decoded PUBLISH.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: u16,
    pub props: Vec<(u8, Value)>,
    pub payload: Vec<u8>,
}

/// What reading gave.
#[derive(Debug)]
pub enum Read {
    /// First byte (type and flags) and body.
    Packet(u8, Vec<u8>),
    Closed,
    Nothing,
}

/// A raw connection.
pub struct Conn {
    pub stream: TcpStream,
    pub v5: bool,
    /// Packets read while waiting for another kind, returned first by later reads.
    pending: VecDeque<(u8, Vec<u8>)>,
}

impl Conn {
    /// Connects and returns the connection, the CONNACK's session-present flag, reason code and
    /// (MQTT 5) properties.
    pub async fn connect(addr: SocketAddr, c: &Connect<'_>) -> (Self, bool, u8, Vec<(u8, Value)>) {
        let mut conn = Self::open(addr, c.version == 5).await;
        conn.send(&c.encode()).await;
        let body = conn.expect(CONNACK).await;
        let p = if conn.v5 && body.len() > 2 {
            parse_props(&body[2..]).0
        } else {
            vec![]
        };
        (conn, body[0] & 1 == 1, body[1], p)
    }

    /// Connects and asserts success.
    pub async fn ok(addr: SocketAddr, c: &Connect<'_>) -> Self {
        let (conn, _, code, p) = Self::connect(addr, c).await;
        assert_eq!(code, 0, "CONNACK refused: {p:?}");
        conn
    }

    /// A TCP connection, nothing sent yet.
    pub async fn open(addr: SocketAddr, v5: bool) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("TCP connect"),
            v5,
            pending: VecDeque::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Sends, ignoring a connection the broker already closed.
    pub async fn try_send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn read(&mut self, wait: Duration) -> Read {
        if let Some((f, body)) = self.pending.pop_front() {
            return Read::Packet(f, body);
        }
        let r = tokio::time::timeout(wait, self.read_wire()).await;
        r.unwrap_or(Read::Nothing)
    }

    /// Reads one packet from the socket.
    async fn read_wire(&mut self) -> Read {
        {
            let mut first = [0u8; 1];
            if self.stream.read_exact(&mut first).await.is_err() {
                return Read::Closed;
            }
            let (mut len, mut shift) = (0usize, 0);
            loop {
                let mut b = [0u8; 1];
                if self.stream.read_exact(&mut b).await.is_err() {
                    return Read::Closed;
                }
                len |= ((b[0] & 0x7f) as usize) << shift;
                shift += 7;
                if b[0] & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            if self.stream.read_exact(&mut body).await.is_err() {
                return Read::Closed;
            }
            Read::Packet(first[0], body)
        }
    }

    /// The next packet of type `kind`; packets of other kinds read meanwhile are kept for
    /// later reads. Panics on close or silence.
    pub async fn expect(&mut self, kind: u8) -> Vec<u8> {
        if let Some(i) = self.pending.iter().position(|(f, _)| f >> 4 == kind) {
            return self.pending.remove(i).unwrap().1;
        }
        let mut skipped = Vec::new();
        let body = loop {
            let r = tokio::time::timeout(WAIT, self.read_wire()).await;
            match r.unwrap_or(Read::Nothing) {
                Read::Packet(f, body) if f >> 4 == kind => break body,
                Read::Packet(f, body) => skipped.push((f, body)),
                other => panic!("expected packet type {kind}, got {other:?} after {skipped:?}"),
            }
        };
        self.pending.extend(skipped);
        body
    }

    /// The next packet, whatever it is; panics on close or silence.
    pub async fn next(&mut self) -> (u8, Vec<u8>) {
        match self.read(WAIT).await {
            Read::Packet(f, body) => (f, body),
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// The next PUBLISH (other packets are a failure), acknowledged as a well-behaved client
    /// does (QoS 1 PUBACK; QoS 2 PUBREC, then PUBCOMP for the PUBREL).
    pub async fn message(&mut self) -> Msg {
        let (first, body) = self.next().await;
        assert_eq!(
            first >> 4,
            PUBLISH,
            "expected PUBLISH, got {first:#x} {body:?}"
        );
        let m = self.decode(first, &body);
        match m.qos {
            1 => self.send(&ack(PUBACK, m.packet_id)).await,
            2 => {
                self.send(&ack(PUBREC, m.packet_id)).await;
                let rel = self.expect(PUBREL).await;
                assert_eq!(rel[..2], m.packet_id.to_be_bytes());
                self.send(&ack(PUBCOMP, m.packet_id)).await;
            }
            _ => {}
        }
        m
    }

    /// Decodes a PUBLISH.
    pub fn decode(&self, first: u8, body: &[u8]) -> Msg {
        let mut b = body;
        let topic = String::from_utf8(bin(&mut b)).unwrap();
        let qos = (first >> 1) & 3;
        let packet_id = if qos > 0 {
            u16::from_be_bytes(take(&mut b, 2).try_into().unwrap())
        } else {
            0
        };
        let (props, rest) = if self.v5 { parse_props(b) } else { (vec![], b) };
        Msg {
            topic,
            qos,
            retain: first & 1 == 1,
            dup: first & 0x08 != 0,
            packet_id,
            props,
            payload: rest.to_vec(),
        }
    }

    /// Subscribes and returns the SUBACK's reason codes (and MQTT 5 properties).
    pub async fn subscribe(
        &mut self,
        packet_id: u16,
        filters: &[(&str, u8)],
        props5: &[(u8, Value)],
    ) -> (Vec<u8>, Vec<(u8, Value)>) {
        let v5 = self.v5;
        self.send(&subscribe(v5, packet_id, filters, props5)).await;
        let body = self.expect(SUBACK).await;
        assert_eq!(body[..2], packet_id.to_be_bytes());
        if v5 {
            let (p, rest) = parse_props(&body[2..]);
            (rest.to_vec(), p)
        } else {
            (body[2..].to_vec(), vec![])
        }
    }

    /// Publishes at QoS 1 and returns the PUBACK's reason code (0 for 3.1.1).
    pub async fn publish1(
        &mut self,
        topic: &str,
        retain: bool,
        packet_id: u16,
        payload: &[u8],
    ) -> u8 {
        let p = if self.v5 { Some(&[][..]) } else { None };
        self.send(&publish(topic, 1, retain, false, packet_id, p, payload))
            .await;
        let body = self.expect(PUBACK).await;
        assert_eq!(body[..2], packet_id.to_be_bytes());
        body.get(2).copied().unwrap_or(0)
    }

    /// Reads until the broker closes the connection; returns the DISCONNECT reason code if it
    /// sent one first. Panics if the connection stays open.
    pub async fn until_closed(&mut self) -> Option<u8> {
        let mut reason = None;
        loop {
            match self.read(WAIT).await {
                Read::Packet(f, body) if f >> 4 == DISCONNECT => {
                    reason = Some(body.first().copied().unwrap_or(0))
                }
                Read::Packet(..) => {}
                Read::Closed => return reason,
                Read::Nothing => panic!("the broker kept the connection open"),
            }
        }
    }
}
