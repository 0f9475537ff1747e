//! Connections that Sentio accepts itself and hands to `mqtt5`'s per-connection handler: MQTT
//! over WebSocket (upgraded by the HTTP server) and the mutual-TLS listener (whose handshake we
//! run to learn the client certificate). They get the same `ClientHandler` as mqtt5's own
//! listeners, the same router, storage, statistics and limits, and an auth provider chosen per
//! connection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use mqtt5::broker::MqttBroker;
use mqtt5::broker::auth::AuthProvider;
use mqtt5::broker::client_handler::ClientHandler;
use mqtt5::broker::config::BrokerConfig as MqttConfig;
use mqtt5::broker::resource_monitor::ResourceMonitor;
use mqtt5::broker::router::MessageRouter;
use mqtt5::broker::storage::DynamicStorage;
use mqtt5::broker::sys_topics::BrokerStats;
use mqtt5::broker::transport::{BrokerTransport, WebSocketTransport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, warn};

/// How long shutdown waits for the connections accepted here to close (and save their sessions).
const DRAIN: Duration = Duration::from_secs(5);

/// Everything a `ClientHandler` needs, taken from the running broker.
pub(crate) struct Acceptor {
    /// The broker's auth provider (devices, tokens, anonymous if on).
    auth: Arc<dyn AuthProvider>,
    config: Arc<MqttConfig>,
    router: Arc<MessageRouter>,
    storage: Option<Arc<DynamicStorage>>,
    stats: Arc<BrokerStats>,
    resources: Arc<ResourceMonitor>,
    shutdown: broadcast::Sender<()>,
    closing: AtomicBool,
    /// Each live connection holds a clone; shutdown drops this one and waits for the channel
    /// to close.
    live: Mutex<Option<mpsc::Sender<()>>>,
    drained: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl Acceptor {
    pub(crate) fn new(config: MqttConfig, broker: &MqttBroker) -> Self {
        let (live, drained) = mpsc::channel(1);
        Self {
            auth: broker.auth_provider(),
            config: Arc::new(config),
            router: broker.router(),
            storage: broker.storage(),
            stats: broker.stats(),
            resources: broker.resource_monitor(),
            shutdown: broadcast::channel(1).0,
            closing: AtomicBool::new(false),
            live: Mutex::new(Some(live)),
            drained: tokio::sync::Mutex::new(drained),
        }
    }

    /// The largest packet the broker accepts.
    pub(crate) fn max_packet_size(&self) -> usize {
        self.config.max_packet_size
    }

    /// The broker's auth provider.
    pub(crate) fn base_auth(&self) -> Arc<dyn AuthProvider> {
        self.auth.clone()
    }

    /// Serves one MQTT connection until it closes. Refused (dropped) when the broker is
    /// stopping or the connection limits are reached.
    pub(crate) async fn serve(
        &self,
        transport: BrokerTransport,
        peer: SocketAddr,
        auth: Arc<dyn AuthProvider>,
    ) {
        let Some(live) = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        if self.closing.load(Ordering::Acquire) {
            return;
        }
        if !self.resources.can_accept_connection(peer.ip()).await {
            warn!(%peer, transport = transport.transport_type(), "MQTT connection refused: connection limits reached");
            return;
        }
        let handler = ClientHandler::new(
            transport,
            peer,
            self.config.clone(),
            self.router.clone(),
            auth,
            self.storage.clone(),
            self.stats.clone(),
            self.resources.clone(),
            self.shutdown.subscribe(),
        );
        if let Err(e) = handler.run().await {
            if e.is_normal_disconnect() {
                debug!(%peer, "MQTT connection closed");
            } else {
                debug!(%peer, error = ?e, "MQTT connection ended");
            }
        }
        drop(live);
    }

    /// Tells every connection accepted here to close, and waits (at most 5 s) until they have.
    pub(crate) async fn shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let _ = self.shutdown.send(());
        let mut drained = self.drained.lock().await;
        if tokio::time::timeout(DRAIN, drained.recv()).await.is_err() {
            warn!("MQTT connections accepted by Sentio did not close within 5 s");
        }
    }
}

/// A byte stream (e.g. a WebSocket's binary messages) as mqtt5's WebSocket transport, with the
/// peer address the HTTP server saw. The `Mutex` makes it `Sync` (mqtt5 asks for it) at no
/// cost: every access is through `&mut`, so it is never locked.
pub(crate) struct ByteStream<S> {
    io: Mutex<S>,
    peer: SocketAddr,
}

impl<S> ByteStream<S> {
    pub(crate) fn new(io: S, peer: SocketAddr) -> Self {
        Self {
            io: Mutex::new(io),
            peer,
        }
    }

    fn io(self: Pin<&mut Self>) -> Pin<&mut S>
    where
        S: Unpin,
    {
        Pin::new(
            self.get_mut()
                .io
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ByteStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ByteStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> WebSocketTransport for ByteStream<S> {
    fn peer_addr(&self) -> mqtt5::Result<SocketAddr> {
        Ok(self.peer)
    }
}
