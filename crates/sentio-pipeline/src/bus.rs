//! Live events for WebSocket clients and other in-process listeners.

use std::sync::Arc;

use sentio_core::Alert;
use tokio::sync::broadcast;

/// One live event.
#[derive(Debug, Clone)]
pub enum Event {
    /// Points that were just stored.
    Telemetry {
        /// Device id.
        device: String,
        /// `(metric, ts_ms, value)`.
        points: Vec<(String, i64, f64)>,
    },
    /// An alert opened, grew or resolved.
    Alert {
        /// The alert as it is now (boxed: it is much larger than the other events).
        alert: Box<Alert>,
    },
    /// A command was accepted or changed state.
    Command {
        /// The command as it is now.
        command: Box<sentio_core::Command>,
    },
    /// A device's twin changed (desired or reported).
    Twin {
        /// Device id.
        device: String,
        /// The twin as it is now.
        twin: Box<sentio_core::Twin>,
    },
    /// A device came online or went offline.
    Presence {
        /// Device id.
        device: String,
        /// Whether it is online now.
        online: bool,
    },
}

/// The message bus seam: the embedded default is [`LocalBus`]; scale-out mode puts a
/// distributed bus (NATS JetStream) behind the same trait.
pub trait Bus: Send + Sync {
    /// Publishes an event to every current subscriber. Never blocks: a subscriber that falls
    /// behind loses the oldest events and is told how many.
    fn publish(&self, event: Event);
    /// Whether anyone listens now: a publisher may skip building an event nobody receives
    /// (telemetry is built per point). `true` when the bus cannot tell.
    fn has_subscribers(&self) -> bool {
        true
    }
    /// A new subscription to every event published from now on.
    fn subscribe(&self) -> Subscription;
}

/// A subscription to the bus.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
}

impl Subscription {
    /// Wraps a broadcast receiver.
    pub fn new(rx: broadcast::Receiver<Arc<Event>>) -> Self {
        Self { rx }
    }

    /// The next event; `Err(n)` when `n` events were missed because this subscriber was slow;
    /// `Ok(None)` when the bus is gone.
    pub async fn recv(&mut self) -> Result<Option<Arc<Event>>, u64> {
        match self.rx.recv().await {
            Ok(e) => Ok(Some(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(n),
            Err(broadcast::error::RecvError::Closed) => Ok(None),
        }
    }
}

/// In-process bus on a tokio broadcast channel.
pub struct LocalBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl LocalBus {
    /// A bus that keeps up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: Event) {
        // No subscriber is not an error: live events are for whoever listens now.
        let _ = self.tx.send(Arc::new(event));
    }

    fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn subscribe(&self) -> Subscription {
        Subscription::new(self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_bus_has_subscribers_only_while_one_is_held() {
        let bus = LocalBus::new(8);
        assert!(!bus.has_subscribers(), "no one listens yet");
        let sub = bus.subscribe();
        assert!(bus.has_subscribers());
        drop(sub);
        assert!(!bus.has_subscribers(), "the only listener left");
    }
}
