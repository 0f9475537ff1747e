//! A raw MQTT client over a TcpStream: hand-built packets (valid, oversized or malformed) and
//! the exact bytes of the broker's answers, to check reason codes that client libraries hide.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// MQTT variable byte integer.
pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// MQTT UTF-8 string or binary data: two-byte length, then the bytes.
pub fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A packet: fixed header byte, remaining length, body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// CONNECT. `version` 5 or 4 (3.1.1); `expiry_s` is the v5 session expiry (with clean start
/// off when non-zero; for 3.1.1, non-zero means clean session off).
pub fn connect(version: u8, client_id: &str, user: &str, pass: &str, expiry_s: u32) -> Vec<u8> {
    let mut b = Vec::new();
    string(b"MQTT", &mut b);
    b.push(version);
    let clean = if expiry_s == 0 { 0x02 } else { 0 };
    b.push(0x80 | 0x40 | clean);
    b.extend_from_slice(&30u16.to_be_bytes());
    if version == 5 {
        if expiry_s == 0 {
            b.push(0);
        } else {
            b.push(5);
            b.push(0x11);
            b.extend_from_slice(&expiry_s.to_be_bytes());
        }
    }
    string(client_id.as_bytes(), &mut b);
    string(user.as_bytes(), &mut b);
    string(pass.as_bytes(), &mut b);
    packet(0x10, &b)
}

/// SUBSCRIBE (v5) with packet id 1, each filter at QoS 1.
pub fn subscribe_v5(filters: &[&str]) -> Vec<u8> {
    let mut b = vec![0, 1, 0];
    for f in filters {
        string(f.as_bytes(), &mut b);
        b.push(1);
    }
    packet(0x82, &b)
}

/// PUBLISH (v5); `packet_id` is used for QoS 1 and 2.
pub fn publish_v5(topic: &str, qos: u8, packet_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    string(topic.as_bytes(), &mut b);
    if qos > 0 {
        b.extend_from_slice(&packet_id.to_be_bytes());
    }
    b.push(0);
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &b)
}

/// A connection and what it reads.
pub struct Raw {
    pub stream: TcpStream,
}

/// What reading a packet gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Packet type (high nibble of the first byte) and body.
    Packet(u8, Vec<u8>),
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// Nothing within the wait.
    Nothing,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("TCP connect"),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one packet, waiting up to `wait`.
    pub async fn read(&mut self, wait: Duration) -> Read {
        let r = tokio::time::timeout(wait, async {
            let mut first = [0u8; 1];
            if self.stream.read_exact(&mut first).await.is_err() {
                return Read::Closed;
            }
            let mut len = 0usize;
            let mut shift = 0;
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
            Read::Packet(first[0] >> 4, body)
        })
        .await;
        r.unwrap_or(Read::Nothing)
    }

    /// Reads packets until one of type `kind` (skipping others), or the end.
    pub async fn expect(&mut self, kind: u8) -> Vec<u8> {
        loop {
            match self.read(Duration::from_secs(10)).await {
                Read::Packet(k, body) if k == kind => return body,
                Read::Packet(..) => {}
                other => panic!("expected packet type {kind}, got {other:?}"),
            }
        }
    }

    /// Reads until the broker closes the connection; returns the DISCONNECT reason code if it
    /// sent one first. Panics if the connection stays open for 10 s.
    pub async fn until_closed(&mut self) -> Option<u8> {
        let mut reason = None;
        loop {
            match self.read(Duration::from_secs(10)).await {
                Read::Packet(14, body) => reason = Some(body.first().copied().unwrap_or(0)),
                Read::Packet(..) => {}
                Read::Closed => return reason,
                Read::Nothing => panic!("the broker kept the connection open"),
            }
        }
    }
}

/// Connects and returns the connection with the CONNACK reason code.
pub async fn connect_raw(
    addr: SocketAddr,
    version: u8,
    client_id: &str,
    user: &str,
    pass: &str,
) -> (Raw, u8) {
    let mut c = Raw::open(addr).await;
    c.send(&connect(version, client_id, user, pass, 0))
        .await
        .unwrap();
    let body = c.expect(2).await;
    (c, body[1])
}
