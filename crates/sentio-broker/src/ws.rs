//! MQTT over WebSocket. The HTTP server (`sentio-api`, route `/mqtt`, subprotocol `mqtt`)
//! upgrades the connection and turns the WebSocket's binary messages into a byte stream; this
//! hands that stream straight to the embedded broker's per-connection handler, as mqtt5's own
//! WebSocket listener would (no second socket, no bridge), with the same auth and ACL as TCP.

use std::net::SocketAddr;

use mqtt5::broker::transport::BrokerTransport;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::BrokerHandle;
use crate::accept::ByteStream;

/// The WebSocket subprotocol MQTT uses (MQTT 3.1.1 §6, MQTT 5 §6).
pub const WEBSOCKET_SUBPROTOCOL: &str = "mqtt";

impl BrokerHandle {
    /// The largest MQTT packet the broker accepts, in bytes.
    pub fn max_packet_size(&self) -> usize {
        self.acceptor.max_packet_size()
    }

    /// Serves one MQTT connection carried by `stream` (the bytes of an accepted WebSocket's
    /// binary messages) from `peer`, until it closes.
    pub async fn serve_websocket<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let transport = BrokerTransport::WebSocket(Box::new(ByteStream::new(stream, peer)));
        self.acceptor
            .serve(transport, peer, self.acceptor.base_auth())
            .await;
    }
}
