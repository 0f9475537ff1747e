//! Recording refused CONNECTs on the device they claimed, off the CONNECT path.
//!
//! A wrong secret for a registered device is recorded on it (its refusal count and last
//! reason, a database write). Done on the CONNECT path, only known ids paid for that write, so
//! the CONNACK's delay told a guesser which device ids exist. Instead every refused CONNECT,
//! known id or not, hands its claimed username to [`RefusalRecorder::record`], which never
//! waits: it puts it on a bounded channel (dropped and counted when full) and a background task
//! looks the id up and writes. The CONNECT path does the same work whatever the id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sentio_core::{DeviceId, time};
use sentio_store::DeviceRegistry;
use tokio::sync::mpsc;
use tracing::error;

/// Refused CONNECTs waiting to be recorded, at most.
pub(crate) const RECORD_QUEUE: usize = 1024;

/// One refused CONNECT: the username it gave and where it came from.
#[derive(Debug)]
struct Refused {
    username: String,
    address: SocketAddr,
}

/// The CONNECT path's side of the recorder.
pub(crate) struct RefusalRecorder {
    tx: mpsc::Sender<Refused>,
    /// Refusals not recorded because the queue was full.
    pub dropped: AtomicU64,
}

impl RefusalRecorder {
    /// A recorder whose queue holds `capacity` refusals, and the receiving end to give to
    /// [`run`].
    fn channel(capacity: usize) -> (Self, mpsc::Receiver<Refused>) {
        let (tx, rx) = mpsc::channel(capacity);
        let recorder = Self {
            tx,
            dropped: AtomicU64::new(0),
        };
        (recorder, rx)
    }

    /// Starts the recording task (on the current tokio runtime).
    pub(crate) fn start(registry: Arc<dyn DeviceRegistry>) -> Self {
        let (recorder, rx) = Self::channel(RECORD_QUEUE);
        tokio::spawn(run(registry, rx));
        recorder
    }

    /// Queues a refused CONNECT for recording; never waits (a plain function: it cannot).
    pub(crate) fn record(&self, username: &str, address: SocketAddr) {
        let refused = Refused {
            username: username.to_string(),
            address,
        };
        if self.tx.try_send(refused).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Records each queued refusal on its device, if the username names a registered one.
async fn run(registry: Arc<dyn DeviceRegistry>, mut rx: mpsc::Receiver<Refused>) {
    while let Some(r) = rx.recv().await {
        let Some(device) = DeviceId::parse(&r.username)
            .ok()
            .filter(|d| registry.is_registered(d))
        else {
            continue;
        };
        let reason = format!("MQTT connect from {} refused: wrong secret", r.address);
        if let Err(e) = registry
            .record_rejection(&device, time::now_ms(), &reason)
            .await
        {
            error!(device = device.as_str(), error = %e, "could not record a refused connect");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_never_waits_a_full_queue_drops_and_counts() {
        // No task drains this queue: a `record` that waited for room would never return.
        let (recorder, mut rx) = RefusalRecorder::channel(2);
        let addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        for name in ["pump-1", "no-such-device", "pump-1"] {
            recorder.record(name, addr);
        }
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rx.try_recv().unwrap().username, "pump-1");
        assert_eq!(rx.try_recv().unwrap().username, "no-such-device");
        assert!(rx.try_recv().is_err());
    }
}
