//! Who is online: devices connected over MQTT, or that sent data recently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sentio_core::{DeviceId, time};
use sentio_store::DeviceRegistry;
use tokio::sync::watch;
use tracing::error;

use crate::{Bus, Event};

/// A device without a connection is online this long after its last point (HTTP devices).
pub const ONLINE_WINDOW_MS: i64 = 60_000;
/// A device reporting steadily has its last-seen time written to the registry at most this
/// often (ms); a device seen for the first time since start, or going online or offline, is
/// written at the next flush. The API reads the time in memory, so only a restart sees the
/// registry's (at most this much older).
pub const LAST_SEEN_SAVED_EVERY_MS: i64 = 60_000;

#[derive(Debug, Default, Clone, Copy)]
struct Status {
    last_seen_ms: i64,
    connections: u32,
    /// The last-seen time last written to the registry (0: none since start).
    flushed_ms: i64,
    /// When (wall clock) it was written.
    flushed_at_ms: i64,
    announced_online: bool,
}

impl Status {
    /// Whether the last-seen time is written at this flush, `now` being the wall clock and
    /// `online` the state about to be announced.
    fn seen_due(&self, now: i64, online: bool, stopping: bool) -> bool {
        self.last_seen_ms > self.flushed_ms
            && (stopping
                || self.flushed_ms == 0
                || online != self.announced_online
                || now - self.flushed_at_ms >= LAST_SEEN_SAVED_EVERY_MS)
    }
}

/// Presence of every device, kept in memory and flushed to the registry every few seconds.
#[derive(Debug, Default)]
pub struct Presence {
    devices: Mutex<HashMap<String, Status>>,
}

impl Presence {
    fn update(&self, device: &str, f: impl FnOnce(&mut Status)) {
        let mut map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        // The id is copied only for a device not seen yet, not on every message.
        if let Some(s) = map.get_mut(device) {
            f(s);
            return;
        }
        f(map.entry(device.to_string()).or_default());
    }

    /// The device sent something at `ts_ms`.
    pub fn seen(&self, device: &str, ts_ms: i64) {
        self.update(device, |s| s.last_seen_ms = s.last_seen_ms.max(ts_ms));
    }

    /// The device opened an MQTT connection.
    pub fn connected(&self, device: &str) {
        let now = time::now_ms();
        self.update(device, |s| {
            s.connections += 1;
            s.last_seen_ms = s.last_seen_ms.max(now);
        });
    }

    /// The device closed an MQTT connection.
    pub fn disconnected(&self, device: &str) {
        self.update(device, |s| s.connections = s.connections.saturating_sub(1));
    }

    /// Whether the device is online now, and when it was last seen (if since start).
    pub fn status(&self, device: &str) -> (bool, Option<i64>) {
        let map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(device) {
            Some(s) => (is_online(s, time::now_ms()), Some(s.last_seen_ms)),
            None => (false, None),
        }
    }

    /// Forgets a deleted device.
    pub fn forget(&self, device: &str) {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(device);
    }
}

fn is_online(s: &Status, now: i64) -> bool {
    s.connections > 0 || now - s.last_seen_ms < ONLINE_WINDOW_MS
}

/// Every 2 s: announces online/offline changes and writes the last-seen times that are due
/// ([`LAST_SEEN_SAVED_EVERY_MS`]): at 10,000 devices at 1 Hz, not 10,000 rows every 2 s.
pub(crate) async fn run_flusher(
    presence: Arc<Presence>,
    registry: Arc<dyn DeviceRegistry>,
    bus: Arc<dyn Bus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let now = time::now_ms();
        let mut to_flush = Vec::new();
        let mut changes = Vec::new();
        {
            let mut map = presence.devices.lock().unwrap_or_else(|p| p.into_inner());
            for (id, s) in map.iter_mut() {
                let online = is_online(s, now);
                if s.seen_due(now, online, stopping) {
                    // An id that is not a device id cannot be registered: nothing to record.
                    if let Ok(device) = DeviceId::parse(id) {
                        to_flush.push((device, s.last_seen_ms));
                    }
                    s.flushed_ms = s.last_seen_ms;
                    s.flushed_at_ms = now;
                }
                if online != s.announced_online {
                    s.announced_online = online;
                    changes.push((id.clone(), online));
                }
            }
        }
        if !to_flush.is_empty()
            && let Err(e) = registry.touch(&to_flush).await
        {
            error!(error = %e, "could not record last-seen times");
        }
        for (device, online) in changes {
            bus.publish(Event::Presence { device, online });
        }
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_device_is_written_once_a_minute_and_at_once_when_its_state_changes() {
        let t0 = 1_000_000;
        let mut s = Status {
            last_seen_ms: t0,
            connections: 1,
            ..Status::default()
        };
        assert!(s.seen_due(t0, true, false), "first seen since start");
        (s.flushed_ms, s.flushed_at_ms, s.announced_online) = (t0, t0, true);
        for t in (t0 + 1_000..t0 + LAST_SEEN_SAVED_EVERY_MS).step_by(2_000) {
            s.last_seen_ms = t;
            assert!(!s.seen_due(t, true, false), "steady at {t}");
            assert!(s.seen_due(t, true, true), "written when stopping");
        }
        let later = t0 + LAST_SEEN_SAVED_EVERY_MS;
        s.last_seen_ms = later;
        assert!(s.seen_due(later, true, false), "a minute later");
        s.connections = 0;
        assert!(s.seen_due(t0 + 3_000, false, false), "going offline");
        s.flushed_ms = later;
        assert!(
            !s.seen_due(later + LAST_SEEN_SAVED_EVERY_MS, false, true),
            "nothing new"
        );
    }
}
