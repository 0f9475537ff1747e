//! A TCP fault proxy between two nodes (tokio): it passes bytes both ways, and on command
//! cuts every connection (and refuses new ones), black-holes them (accepts and reads, never
//! forwards or answers), delays them, limits their bandwidth (bytes per second, each way),
//! truncates the next write mid-packet (forwards its first N bytes, then closes that
//! connection and passes again), or flaps (pass and cut alternating at a period). It counts
//! the bytes it forwards from the client side, which is what the uplink costs on the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the proxy does with traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Close every connection; new ones are closed at once.
    Cut,
    /// Accept and read, never forward or answer.
    BlackHole,
    /// Forward both ways, each read held this long first.
    Delay(Duration),
    /// Forward both ways at most this many bytes per second each way (per connection).
    Limit(u64),
    /// Forward the first this many bytes of the next write (either way; all of it when it is
    /// shorter), then close that connection; the proxy passes again afterwards.
    Truncate(usize),
    /// Pass and cut alternating, each for this long (starting with a cut).
    Flap(Duration),
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// What the connections do now (never [`Fault::Flap`]: the flapper switches it).
    mode: Arc<watch::Sender<Fault>>,
    flapper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    upstream: Arc<std::sync::Mutex<SocketAddr>>,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_up: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(f) = self.flapper.lock().unwrap().take() {
            f.abort();
        }
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(watch::channel(Fault::Pass).0);
        let bytes_up = Arc::new(AtomicU64::new(0));
        let counted = bytes_up.clone();
        let upstream = Arc::new(std::sync::Mutex::new(upstream));
        let target = upstream.clone();
        let modes = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (modes, counted) = (modes.clone(), counted.clone());
                let to = *target.lock().unwrap();
                tokio::spawn(connection(client, to, modes, counted));
            }
        });
        Self {
            addr,
            mode,
            flapper: std::sync::Mutex::new(None),
            upstream,
            bytes_up,
            task,
        }
    }

    /// Changes what the proxy does, for existing and new connections.
    pub fn set(&self, fault: Fault) {
        let mut flapper = self.flapper.lock().unwrap();
        if let Some(f) = flapper.take() {
            f.abort();
        }
        let Fault::Flap(period) = fault else {
            self.mode.send_replace(fault);
            return;
        };
        let mode = self.mode.clone();
        *flapper = Some(tokio::spawn(async move {
            for phase in [Fault::Cut, Fault::Pass].into_iter().cycle() {
                mode.send_replace(phase);
                tokio::time::sleep(period).await;
            }
        }));
    }

    /// Forwards new connections to `upstream` from now on (a restarted node's new port).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// Bytes forwarded from clients so far.
    pub fn bytes_up(&self) -> u64 {
        self.bytes_up.load(Ordering::Relaxed)
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    modes: Arc<watch::Sender<Fault>>,
    counted: Arc<AtomicU64>,
) {
    let mut mode = modes.subscribe();
    let now = *mode.borrow_and_update();
    match now {
        Fault::Cut => return,
        Fault::BlackHole => return swallow(client, mode).await,
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, modes.clone(), Some(counted));
    let down = pump(sr, cw, modes, None);
    // Either direction ending (a cut, a close, a truncation) ends both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Reads and discards until the proxy passes again or cuts (then the connection closes).
async fn swallow(mut client: TcpStream, mut mode: watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
            c = mode.changed() => if c.is_err() || *mode.borrow() != Fault::BlackHole { return },
        }
    }
}

/// Reads per pass under a bandwidth limit: about a twentieth of a second's bytes, so the
/// pacing is smooth.
fn read_size(fault: Fault, buf: usize) -> usize {
    match fault {
        Fault::Limit(rate) => (rate as usize / 20).clamp(1, buf),
        _ => buf,
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    modes: Arc<watch::Sender<Fault>>,
    counted: Option<Arc<AtomicU64>>,
) {
    let mut mode = modes.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    // Under a bandwidth limit: when the link is free to send again.
    let mut free_at = Instant::now();
    loop {
        let size = read_size(*mode.borrow(), buf.len());
        let n = tokio::select! {
            r = from.read(&mut buf[..size]) => match r {
                Ok(n) if n > 0 => n,
                _ => return,
            },
            c = mode.changed() => {
                if c.is_err() || *mode.borrow() == Fault::Cut {
                    return;
                }
                continue;
            }
        };
        let now = *mode.borrow();
        let (mut send, mut then_close) = (n, false);
        match now {
            Fault::Cut => return,
            // Read, never forwarded: the peer waits for an answer that never comes.
            Fault::BlackHole => continue,
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Limit(rate) => {
                free_at = free_at.max(Instant::now())
                    + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
                tokio::time::sleep_until(free_at).await;
            }
            // One truncation: whichever direction writes first.
            Fault::Truncate(keep) => {
                if modes.send_replace(Fault::Pass) == Fault::Truncate(keep) {
                    (send, then_close) = (keep.min(n), true);
                }
            }
            Fault::Pass | Fault::Flap(_) => {}
        }
        if to.write_all(&buf[..send]).await.is_err() {
            return;
        }
        if let Some(c) = &counted {
            c.fetch_add(send as u64, Ordering::Relaxed);
        }
        if then_close {
            let _ = to.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The proxy itself, between a plain TCP client and a plain TCP server on loopback.

    use super::*;

    /// A server that reads every connection to its end; each connection's byte count is sent
    /// on the channel when it closes.
    async fn sink() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut total = 0;
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        total += n;
                    }
                    let _ = tx.send(total);
                });
            }
        });
        (addr, rx)
    }

    /// A server that writes `bytes` bytes to every connection, then closes it.
    async fn source(bytes: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(&vec![7u8; bytes]).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_bandwidth_limit_paces_each_direction_to_its_rate() {
        const RATE: u64 = 40_000;
        const BYTES: usize = 60_000;
        // Up: 60 kB at 40 kB/s take about 1.5 s to reach the server.
        let (server, mut got) = sink().await;
        let proxy = FaultProxy::start(server).await;
        proxy.set(Fault::Limit(RATE));
        let started = Instant::now();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(&vec![1u8; BYTES]).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(got.recv().await, Some(BYTES));
        let up = started.elapsed();
        // Down: the same from a server that writes.
        let proxy = FaultProxy::start(source(BYTES).await).await;
        proxy.set(Fault::Limit(RATE));
        let started = Instant::now();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        let mut read = Vec::new();
        client.read_to_end(&mut read).await.unwrap();
        let down = started.elapsed();
        println!("fault proxy: {BYTES} B at {RATE} B/s took {up:?} up, {down:?} down");
        assert_eq!(read.len(), BYTES);
        let expected = Duration::from_secs_f64(BYTES as f64 / RATE as f64);
        for took in [up, down] {
            assert!(took >= expected.mul_f64(0.9), "{took:?}");
            assert!(took <= expected.mul_f64(1.6), "{took:?}");
        }
        // Unlimited, the same bytes take a moment.
        proxy.set(Fault::Pass);
        let started = Instant::now();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.read_to_end(&mut Vec::new()).await.unwrap();
        assert!(started.elapsed() < expected / 4, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_truncated_write_ends_the_stream_short_once() {
        let (server, mut got) = sink().await;
        let proxy = FaultProxy::start(server).await;
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(&[1u8; 1_000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.set(Fault::Truncate(100));
        client.write_all(&[2u8; 1_000]).await.unwrap();
        // The server saw the first write and 100 bytes of the second, then the end.
        let total = tokio::time::timeout(Duration::from_secs(5), got.recv()).await;
        assert_eq!(total.unwrap(), Some(1_100));
        // The client's side is closed too: its read ends.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest));
        assert!(closed.await.is_ok(), "the client's connection stays open");
        // One truncation: a new connection passes everything.
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        again.write_all(&[3u8; 5_000]).await.unwrap();
        again.shutdown().await.unwrap();
        assert_eq!(got.recv().await, Some(5_000));
    }

    #[tokio::test]
    async fn a_flapping_link_cuts_and_passes_in_turn() {
        let (server, mut got) = sink().await;
        let proxy = FaultProxy::start(server).await;
        proxy.set(Fault::Flap(Duration::from_millis(300)));
        // Every 100 ms a connection that writes: those opened in a cut phase are closed at
        // once, those in a pass phase are closed at the next cut with their bytes through.
        let (mut passed, mut refused) = (0, 0);
        for _ in 0..15 {
            let next = Instant::now() + Duration::from_millis(100);
            let mut c = TcpStream::connect(proxy.addr).await.unwrap();
            let _ = c.write_all(b"hello").await;
            let mut buf = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
                // Closed at once (or at a cut within the 100 ms).
                Ok(_) => refused += 1,
                // Still open: the link passes.
                Err(_) => passed += 1,
            }
            tokio::time::sleep_until(next).await;
        }
        proxy.set(Fault::Pass);
        println!("fault proxy flapping: {passed} connections passed, {refused} were cut");
        assert!(
            passed >= 2 && refused >= 3,
            "{passed} passed, {refused} cut"
        );
        // Whatever passed reached the server.
        let mut delivered = 0;
        while let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(1), got.recv()).await {
            delivered += usize::from(n == 5);
        }
        assert!(delivered >= passed, "{delivered} of {passed}");
    }
}
