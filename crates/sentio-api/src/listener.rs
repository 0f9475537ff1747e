//! The HTTP accept loop: every connection is served by hyper's HTTP/1 server with a header
//! read timeout and a body deadline, under a cap on connections (in all and per address), and
//! accept errors (such as running out of descriptors) are met with a growing pause and logged
//! once per interval instead of spinning. An HTTPS endpoint completes the TLS handshake within
//! the header timeout, under the same caps (one cap for all endpoints).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

/// How a request arrived, added to each request by the listener: whether over HTTPS (the
/// session cookie's name and `Secure` attribute follow it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transport {
    /// Served over TLS.
    pub https: bool,
}
use tower::ServiceExt;

use crate::limits::HttpLimits;

/// How often at most an accept error or a refused connection is logged.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Longest pause after repeated accept errors.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Counters of the HTTP listener, shown in `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Failed `accept` calls (for example: too many open files).
    pub accept_errors: AtomicU64,
    /// Connections closed at once because a cap was reached.
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

impl ListenerCounters {
    /// Prometheus text of the counters.
    pub fn metrics(&self) -> String {
        let rows = [
            (
                "sentio_http_accept_errors_total",
                "counter",
                "Failed accepts on the HTTP port (such as too many open files).",
                self.accept_errors.load(Ordering::Relaxed),
            ),
            (
                "sentio_http_connections_refused_total",
                "counter",
                "HTTP connections closed at once because a connection cap was reached.",
                self.refused.load(Ordering::Relaxed),
            ),
            (
                "sentio_http_connections_open",
                "gauge",
                "HTTP connections open now.",
                self.open.load(Ordering::Relaxed),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, v) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        out
    }
}

/// Admits connections under the caps; a [`Permit`] is held for the life of a connection.
struct Gate {
    max: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    counters: Arc<ListenerCounters>,
}

/// One admitted connection; dropping it frees its place.
struct Permit {
    gate: Arc<Gate>,
    ip: IpAddr,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Total,
    Address,
}

impl Gate {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= self.max {
            return Err(Refusal::Total);
        }
        let from = open.1.entry(ip).or_default();
        if self.per_address > 0 && *from >= self.per_address {
            return Err(Refusal::Address);
        }
        *from += 1;
        open.0 += 1;
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
        self.gate.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Rate-limits one kind of log line: at most one per [`LOG_INTERVAL`], with the number of
/// occurrences not logged in between.
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new() -> Self {
        Self {
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written now.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One listening socket of the HTTP server: plain HTTP, or HTTPS when it has a TLS acceptor.
pub(crate) struct Endpoint {
    /// The bound socket.
    pub listener: TcpListener,
    /// `Some`: every connection first completes a TLS handshake, within the header timeout.
    pub tls: Option<TlsAcceptor>,
}

/// What every connection of every endpoint shares: the caps, the HTTP settings, the counters.
struct Shared {
    gate: Arc<Gate>,
    http: hyper::server::conn::http1::Builder,
    router: Router,
    header_timeout: Duration,
    body_timeout: Duration,
    counters: Arc<ListenerCounters>,
}

/// Serves `router` on every endpoint under `limits` (one connection cap for all of them) until
/// `shutdown` completes, then waits for the open connections to finish their requests.
pub(crate) async fn serve(
    endpoints: Vec<Endpoint>,
    router: Router,
    limits: &HttpLimits,
    counters: Arc<ListenerCounters>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gate = Arc::new(Gate {
        max: limits.effective_max_connections(),
        per_address: limits.max_connections_per_address,
        open: Mutex::new((0, HashMap::new())),
        counters: counters.clone(),
    });
    tracing::info!(
        max_connections = gate.max,
        per_address = gate.per_address,
        header_timeout_ms = limits.header_timeout_ms,
        body_timeout_ms = limits.body_timeout_ms,
        "HTTP connection limits"
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout());
    let shared = Arc::new(Shared {
        gate,
        http,
        router,
        header_timeout: limits.header_timeout(),
        body_timeout: limits.body_timeout(),
        counters,
    });
    // Each connection holds a receiver: a `true` asks it to finish its request and close, and
    // the sender sees every receiver gone once all connections have closed.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (down_tx, down_rx) = tokio::sync::watch::channel(false);
    let loops = endpoints.into_iter().map(|endpoint| {
        let (shared, stop_rx, mut down) = (shared.clone(), stop_rx.clone(), down_rx.clone());
        accept_loop(endpoint, shared, stop_rx, async move {
            let _ = down.wait_for(|d| *d).await;
        })
    });
    let all = futures_util::future::join_all(loops);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        _ = shutdown => {
            let _ = down_tx.send(true);
            all.await;
        }
    }
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

/// Accepts connections on one endpoint until `shutdown`; each is served in its own task.
async fn accept_loop(
    endpoint: Endpoint,
    shared: Arc<Shared>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let Endpoint { listener, tls } = endpoint;
    let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
    let mut pause = Duration::ZERO;
    let mut accept_log = Throttled::new();
    let mut refusal_log = Throttled::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                pause = Duration::ZERO;
                a
            }
            Err(e) => {
                shared
                    .counters
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                pause = (pause * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_PAUSE);
                if let Some(suppressed) = accept_log.due() {
                    tracing::warn!(error = %e, suppressed, pause_ms = pause.as_millis() as u64,
                        "{scheme} accept failed; pausing before the next accept");
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let permit = match shared.gate.admit(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = refusal_log.due() {
                    tracing::warn!(peer = %peer.ip(), cap = ?why, suppressed,
                        "{scheme} connection refused: connection cap reached");
                }
                // A TLS client could not read a plaintext answer: it is only closed.
                if tls.is_none() {
                    refuse(stream);
                }
                continue;
            }
        };
        let (shared, tls, stop) = (shared.clone(), tls.clone(), stop_rx.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, false, &shared, stop).await,
                Some(acceptor) => {
                    // The handshake is bounded like the headers: a client that never finishes
                    // it cannot hold the connection.
                    match tokio::time::timeout(shared.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => serve_connection(tls, peer, true, &shared, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer.ip(), error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer.ip(), "TLS handshake timed out")
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves HTTP/1 on one accepted connection (plain or TLS) until it ends, or until `stop`
/// asks it to finish its request and close.
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    https: bool,
    shared: &Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (router, body_timeout) = (shared.router.clone(), shared.body_timeout);
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout)));
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(Transport { https });
        router.clone().oneshot(req)
    });
    let conn = shared
        .http
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await.map(|_| ()); } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Answers `503` without waiting for the request, and closes.
fn refuse(stream: TcpStream) {
    const BODY: &str = "{\"error\":\"too_many_connections\",\"detail\":\"the node holds as many HTTP connections as it allows; retry later\"}";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{BODY}",
        BODY.len()
    );
    // Best effort and never blocking: the refusal must not hold the accept loop.
    let _ = stream.try_write(response.as_bytes());
}

/// A request body that fails once its deadline has passed, so a client sending a body slowly
/// cannot hold a connection (and a handler) longer than the body timeout.
struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// The body was not received within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyTimeout(Duration);

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.limit).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
