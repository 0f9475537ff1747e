//! Re-sync on the edge ([`sentio_store::resync`]): the cloud's request arrives on
//! `edges/<id>/down/resync` with its hourly digests of this edge's series; [`Job::plan`]
//! compares them with the edge's own (from its hourly rollups) and [`Job::next_part`] reads the
//! raw points of each hour that differs (the store's read API: head and chunks), in parts of
//! at most [`PART_POINTS`] points, sent on `edges/<id>/up/resync` one at a time (the link
//! paces them with the backlog's rate).
//!
//! **Invariant:** a part is built once and sent until the cloud acknowledges it (the cloud
//! applies each part of a run once, and a re-sent point equal to one it holds changes
//! nothing); the job outlives a lost link, so a run resumes at the unacknowledged part.

use std::collections::VecDeque;

use sentio_core::{DeviceId, Point};
use sentio_store::resync::HOUR_MS;
use sentio_store::{
    EdgeStore, HourKey, PART_POINTS, RangeQuery, ResyncFigures, ResyncPart, ResyncRequest,
    SeriesStore, StoreError,
};
use tracing::info;

/// One re-sync run on the edge: what is left to send, and the part being sent.
pub(crate) struct Job {
    id: i64,
    figures: ResyncFigures,
    /// Hours still to read, the front one from `cursor` on.
    hours: VecDeque<HourKey>,
    cursor: Option<i64>,
    /// The next part's index.
    part: u32,
    /// Built and not yet acknowledged.
    pending: Option<ResyncPart>,
    /// The last part was acknowledged.
    done: bool,
    /// Points acknowledged so far.
    pub(crate) points_acked: u64,
}

impl Job {
    /// Compares the cloud's digests in `req` with this edge's.
    pub(crate) async fn plan(
        req: ResyncRequest,
        edges: &dyn EdgeStore,
    ) -> Result<Self, StoreError> {
        let mine = edges.hour_digests(None, req.from, req.to).await?;
        let found = sentio_store::resync::compare(&mine, &req.cloud);
        info!(
            run = req.id,
            compared = found.compared,
            differing = found.differing.len(),
            "re-sync asked by the cloud: hours compared"
        );
        let figures = ResyncFigures {
            compared: found.compared,
            differing: found.differing.len() as u64,
        };
        let hours = found
            .differing
            .into_iter()
            .take(req.max_hours.try_into().unwrap_or(usize::MAX))
            .collect();
        Ok(Self {
            id: req.id,
            figures,
            hours,
            cursor: None,
            part: 0,
            pending: None,
            done: false,
            points_acked: 0,
        })
    }

    /// Whether its last part was acknowledged.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The part to send now (the unacknowledged one again, or the next one read), if any.
    pub(crate) async fn next_part(
        &mut self,
        series: &dyn SeriesStore,
    ) -> Result<Option<&ResyncPart>, StoreError> {
        if self.done {
            return Ok(None);
        }
        if self.pending.is_none() {
            let points = self.read(series).await?;
            self.pending = Some(ResyncPart {
                id: self.id,
                part: self.part,
                last: self.hours.is_empty(),
                figures: self.figures,
                points,
            });
        }
        Ok(self.pending.as_ref())
    }

    /// The points of the next hours, up to [`PART_POINTS`] (a part's hours are whole unless
    /// one alone holds more).
    async fn read(&mut self, series: &dyn SeriesStore) -> Result<Vec<Point>, StoreError> {
        let mut out: Vec<Point> = Vec::new();
        while let Some(h) = self.hours.front() {
            let room = PART_POINTS as usize - out.len();
            if room == 0 {
                break;
            }
            let Ok(device) = DeviceId::parse(&h.device) else {
                self.hours.pop_front();
                continue;
            };
            let got = series
                .query(RangeQuery {
                    device: device.clone(),
                    metric: h.metric.clone(),
                    from_ms: self.cursor.unwrap_or(h.hour),
                    to_ms: h.hour + HOUR_MS,
                    step: None,
                    limit: room,
                })
                .await?;
            let metric: std::sync::Arc<str> = h.metric.as_str().into();
            out.extend(got.points.into_iter().map(|(ts_ms, value)| Point {
                device: device.clone(),
                metric: metric.clone(),
                ts_ms,
                value,
            }));
            match got.next {
                Some(next) => self.cursor = Some(next),
                None => {
                    self.cursor = None;
                    self.hours.pop_front();
                }
            }
        }
        Ok(out)
    }

    /// The cloud acknowledged the pending part.
    pub(crate) fn acknowledged(&mut self) {
        if let Some(p) = self.pending.take() {
            self.points_acked += p.points.len() as u64;
            self.part += 1;
            if p.last {
                self.done = true;
                info!(run = self.id, points = self.points_acked, "re-sync sent");
            }
        }
    }
}
