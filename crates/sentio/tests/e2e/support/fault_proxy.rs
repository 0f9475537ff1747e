//! A TCP fault proxy between two nodes (tokio): it passes bytes both ways, and on command
//! cuts every connection (and refuses new ones), black-holes them (accepts and reads, never
//! forwards or answers), or delays them. It counts the bytes it forwards from the client side,
//! which is what the uplink costs on the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: watch::Sender<Fault>,
    upstream: Arc<std::sync::Mutex<SocketAddr>>,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_up: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Fault::Pass);
        let bytes_up = Arc::new(AtomicU64::new(0));
        let counted = bytes_up.clone();
        let upstream = Arc::new(std::sync::Mutex::new(upstream));
        let target = upstream.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (rx, counted) = (rx.clone(), counted.clone());
                let to = *target.lock().unwrap();
                tokio::spawn(connection(client, to, rx, counted));
            }
        });
        Self {
            addr,
            mode,
            upstream,
            bytes_up,
            task,
        }
    }

    /// Changes what the proxy does, for existing and new connections.
    pub fn set(&self, fault: Fault) {
        let _ = self.mode.send(fault);
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
    mut mode: watch::Receiver<Fault>,
    counted: Arc<AtomicU64>,
) {
    let now = *mode.borrow_and_update();
    match now {
        Fault::Cut => return,
        Fault::BlackHole => return swallow(client, mode).await,
        Fault::Pass | Fault::Delay(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, mode.clone(), Some(counted));
    let down = pump(sr, cw, mode, None);
    // Either direction ending (a cut, a close) ends both.
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

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Fault>,
    counted: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
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
        match now {
            Fault::Cut => return,
            // Read, never forwarded: the peer waits for an answer that never comes.
            Fault::BlackHole => continue,
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Pass => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(c) = &counted {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
