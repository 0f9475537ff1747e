//! `GET /mqtt`: MQTT over WebSocket on the HTTP port (subprotocol `mqtt`). The upgraded
//! connection's binary messages become a byte stream that the embedded broker serves like a TCP
//! connection: same CONNECT authentication (device id + secret, API tokens), same ACLs.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use sentio_broker::WEBSOCKET_SUBPROTOCOL;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ApiError, AppState};

/// Subprotocols accepted: `mqtt` (MQTT 3.1.1 and 5) and the older `mqttv3.1` some clients send.
const SUBPROTOCOLS: [&str; 2] = [WEBSOCKET_SUBPROTOCOL, "mqttv3.1"];

pub async fn upgrade(
    State(s): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(broker) = s.broker.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_broker",
            "this node runs without an MQTT broker",
        ));
    };
    let requested = ws.requested_protocols().count();
    let ws = ws.protocols(SUBPROTOCOLS);
    if requested > 0 && ws.selected_protocol().is_none() {
        return Err(ApiError::bad_request(
            "MQTT over WebSocket needs the subprotocol \"mqtt\" (Sec-WebSocket-Protocol: mqtt)",
        ));
    }
    let peer = peer.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |Extension(c)| c.0);
    // The WebSocket layer buffers a whole message before the broker sees it, so its size is
    // bounded: a client may put several packets in one message (MQTT §6), hence four of the
    // largest packet (1 MiB by default); the broker still checks each packet's own size.
    let limit = ws_message_limit(broker.max_packet_size());
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            broker.serve_websocket(WsBytes::new(socket), peer).await;
        })
        .into_response())
}

/// The largest WebSocket message (and frame) accepted for a broker whose largest packet is
/// `max_packet` bytes.
fn ws_message_limit(max_packet: usize) -> usize {
    max_packet.saturating_mul(4).max(64 * 1024)
}

/// A WebSocket's binary messages as a byte stream: each write is one binary message; reads
/// return the messages' bytes in order, whatever their framing (an MQTT packet may span
/// messages, and a message may hold several packets). A text message is an error (MQTT
/// requires binary frames); a close is the end of the stream.
struct WsBytes {
    ws: WebSocket,
    pending: Bytes,
}

impl WsBytes {
    fn new(ws: WebSocket) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn io_error(e: axum::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl AsyncRead for WsBytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "MQTT over WebSocket must use binary messages",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl AsyncWrite for WsBytes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.ws.poll_ready_unpin(cx)).map_err(io_error)?;
        self.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.ws.poll_close_unpin(cx).map_err(io_error)
    }
}
