//! A head start from stored history. A device that has points in the store but nothing learnt
//! about it (its data written by a version without detector state, or the node killed before
//! the device's first state save) has its latest stored history streamed through the watches
//! before its first live batch is judged, as `sentio detect --history` streams a file of normal
//! operation first. Verdicts on history are dropped: history opens no alert and runs no rule.

use std::collections::{HashSet, VecDeque};

use sentio_core::{DeviceId, Point};
use sentio_store::{RangeQuery, SeriesStore};

/// Most points of one series streamed as a head start: the newest ones of the window. Six
/// hours of a 1 Hz series fit; a device of 5 such metrics costs the detect stage about a
/// tenth of a second once.
pub(crate) const MAX_POINTS_PER_SERIES: usize = 25_000;
/// Points per page read from the store.
const PAGE: usize = 5_000;

/// The devices still owed a head start, and how far back it reaches.
#[derive(Debug, Default)]
pub(crate) struct Seeding {
    pending: HashSet<DeviceId>,
    window_ms: i64,
}

impl Seeding {
    /// Seeds `pending` from the latest `window_ms` of their history (nothing when 0).
    pub(crate) fn new(pending: HashSet<DeviceId>, window_ms: i64) -> Self {
        let pending = if window_ms > 0 {
            pending
        } else {
            HashSet::new()
        };
        Self { pending, window_ms }
    }

    /// How many devices are still owed a head start.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether `device` is owed a head start; it is owed it once.
    pub(crate) fn take(&mut self, device: &DeviceId) -> bool {
        !self.pending.is_empty() && self.pending.remove(device)
    }

    /// The device no longer exists: nothing to seed.
    pub(crate) fn forget(&mut self, device: &DeviceId) {
        self.pending.remove(device);
    }

    /// The device's stored numeric points before `before_ms` within the window, the newest
    /// [`MAX_POINTS_PER_SERIES`] of each series, merged in time order.
    pub(crate) async fn history(
        &self,
        store: &dyn SeriesStore,
        device: &DeviceId,
        before_ms: i64,
    ) -> sentio_store::Result<Vec<Point>> {
        let mut points = Vec::new();
        for series in store.series(device).await? {
            let metric: std::sync::Arc<str> = series.metric.as_str().into();
            let mut newest: VecDeque<(i64, f64)> = VecDeque::new();
            let mut from_ms = before_ms.saturating_sub(self.window_ms);
            loop {
                let page = store
                    .query(RangeQuery {
                        device: device.clone(),
                        metric: series.metric.clone(),
                        from_ms,
                        to_ms: before_ms,
                        step: None,
                        limit: PAGE,
                    })
                    .await?;
                for p in page.points {
                    if newest.len() == MAX_POINTS_PER_SERIES {
                        newest.pop_front();
                    }
                    newest.push_back(p);
                }
                match page.next {
                    Some(next) if next > from_ms => from_ms = next,
                    _ => break,
                }
            }
            points.extend(newest.into_iter().map(|(ts_ms, value)| Point {
                device: device.clone(),
                metric: metric.clone(),
                ts_ms,
                value,
            }));
        }
        // Stable: points of one timestamp keep their series' order.
        points.sort_by_key(|p| p.ts_ms);
        Ok(points)
    }
}
