//! The raw points around each anomaly, for an edge with the aggregates policy: once an alert
//! the edge opened is [`UplinkSettings::raw_around_alert`] old and its device's data has passed
//! the window, the raw points of its device from that long before it opened to that long
//! after, in whole minutes, go in the outbox's live lane ([`OutboxStore::record_window`]), once per alert, in alert
//! order. Whole minutes, so the cloud's minutes computed from them equal the edge's rollups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentio_core::DeviceId;
use sentio_store::{AlertFilter, AlertStore, OutboxStore, WindowRecorded};
use tracing::warn;

use crate::UplinkSettings;

/// A minute in ms.
const MINUTE: i64 = 60_000;

/// An alert seen this long ago has its window recorded whatever its device sent since.
const SETTLED: Duration = Duration::from_secs(300);

/// How often the alerts are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Most alerts looked at a time (the newest; an edge opens far fewer between two looks).
const LOOKED_AT: usize = 1_000;

/// The window of an alert opened at `opened_ms`: whole minutes from `around` before to
/// `around` after.
pub fn window(opened_ms: i64, around: Duration) -> (i64, i64) {
    let around = i64::try_from(around.as_millis()).unwrap_or(i64::MAX / 4);
    let from = opened_ms.saturating_sub(around).div_euclid(MINUTE) * MINUTE;
    let to = (opened_ms.saturating_add(around).div_euclid(MINUTE) + 1) * MINUTE;
    (from, to)
}

/// Records the window of every alert whose window has closed, in id order, until stopped.
pub(crate) async fn run(
    settings: UplinkSettings,
    outbox: Arc<dyn OutboxStore>,
    alerts: Arc<dyn AlertStore>,
) {
    // When each waiting alert was first seen (in memory: after a restart they wait again).
    let mut seen = HashMap::new();
    loop {
        if let Err(e) = record_closed(&settings, &*outbox, &*alerts, &mut seen).await {
            warn!(error = %e, "recording the raw points around alerts; trying again");
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn record_closed(
    s: &UplinkSettings,
    outbox: &dyn OutboxStore,
    alerts: &dyn AlertStore,
    seen: &mut HashMap<i64, Instant>,
) -> sentio_store::Result<()> {
    let done = outbox.windows_done().await?;
    let mut open = alerts
        .list_alerts(AlertFilter {
            limit: LOOKED_AT,
            ..AlertFilter::default()
        })
        .await?;
    open.retain(|a| a.id.get() > done);
    seen.retain(|id, _| *id > done);
    open.sort_by_key(|a| a.id.get());
    let now = sentio_core::time::now_ms();
    for a in open {
        // A device's alerts only (not this node's own system alerts).
        let Ok(device) = DeviceId::parse(&a.device) else {
            continue;
        };
        let (from, to) = window(a.opened_ms, s.raw_around_alert);
        // Once the device's data has passed the window (backfilled data too), or the alert
        // was seen [`SETTLED`] ago.
        if to > now {
            break; // in id order: later ones wait for this one
        }
        let settled = seen
            .entry(a.id.get())
            .or_insert_with(Instant::now)
            .elapsed()
            >= SETTLED;
        if outbox
            .record_window(a.id, &device, (from, to), settled)
            .await?
            == WindowRecorded::Waiting
        {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_minutes_around_the_opening() {
        let five = Duration::from_secs(300);
        assert_eq!(window(10 * MINUTE + 1_500, five), (5 * MINUTE, 16 * MINUTE));
        assert_eq!(window(10 * MINUTE, five), (5 * MINUTE, 16 * MINUTE));
        assert_eq!(
            window(10 * MINUTE, Duration::ZERO),
            (10 * MINUTE, 11 * MINUTE)
        );
    }
}
