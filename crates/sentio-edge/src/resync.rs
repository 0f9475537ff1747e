//! Re-sync on the edge ([`sentio_store::resync`]): the cloud's request arrives on
//! `edges/<id>/down/resync` with its hourly digests of this edge's series; [`Job::plan`]
//! compares them with the edge's own (from its hourly rollups) and [`Job::next_part`] reads
//! what the edge's policy sends of each hour that differs (the store's read API: head and
//! chunks; rollups): its raw points, or, with the aggregates policy, its minute rollups (which
//! replace the cloud's minutes of the hour) and the raw points around the edge's alerts in it
//! ([`crate::windows::window`], of its newest alerts); in parts of at most [`PART_POINTS`]
//! points and rows, sent on `edges/<id>/up/resync` one at a time (the link paces them with
//! the backlog's rate).
//!
//! **Invariant:** a part is built once and sent until the cloud acknowledges it (the cloud
//! applies each part of a run once, and a re-sent point equal to one it holds changes
//! nothing); the job outlives a lost link, so a run resumes at the unacknowledged part.

use std::collections::{HashMap, VecDeque};

use sentio_core::{DeviceId, Point};
use sentio_store::resync::HOUR_MS;
use sentio_store::{
    AlertFilter, HourKey, PART_POINTS, RangeQuery, Resolution, ResyncFigures, ResyncPart,
    ResyncRequest, SeriesRollups, SeriesStore, StoreError, UplinkPolicy,
};
use tracing::info;

use crate::UplinkSettings;
use crate::records::RecordSources;

/// The newest alerts whose raw points an aggregates re-sync sends again.
const ALERTS_LOOKED_AT: usize = 1_000;

/// What an hour that differs is sent as: the edge's policy.
enum Resend {
    /// Its raw points.
    Raw,
    /// Its minute rollups, and the raw points of these windows (per device, in order, not
    /// overlapping) within it.
    Aggregates(HashMap<String, Vec<(i64, i64)>>),
}

impl Resend {
    /// The raw ranges of hour `h` to send.
    fn ranges(&self, h: &HourKey) -> VecDeque<(i64, i64)> {
        let hour = (h.hour, h.hour + HOUR_MS);
        match self {
            Resend::Raw => VecDeque::from([hour]),
            Resend::Aggregates(windows) => windows
                .get(&h.device)
                .into_iter()
                .flatten()
                .map(|&(a, b)| (a.max(hour.0), b.min(hour.1)))
                .filter(|(a, b)| a < b)
                .collect(),
        }
    }
}

/// The windows of the newest alerts of each device, sorted and merged.
async fn alert_windows(
    sources: &RecordSources,
    s: &UplinkSettings,
) -> Result<HashMap<String, Vec<(i64, i64)>>, StoreError> {
    let alerts = sources
        .alerts
        .list_alerts(AlertFilter {
            limit: ALERTS_LOOKED_AT,
            ..AlertFilter::default()
        })
        .await?;
    let mut out: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for a in alerts.iter().filter(|a| DeviceId::parse(&a.device).is_ok()) {
        let w = crate::windows::window(a.opened_ms, s.raw_around_alert);
        out.entry(a.device.clone()).or_default().push(w);
    }
    for w in out.values_mut() {
        w.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(w.len());
        for &(a, b) in w.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *w = merged;
    }
    Ok(out)
}

/// One re-sync run on the edge: what is left to send, and the part being sent.
pub(crate) struct Job {
    id: i64,
    figures: ResyncFigures,
    resend: Resend,
    /// Hours still to read; of the front one, the raw ranges left (none: not started, its
    /// rollups not read yet), the first from `cursor` on.
    hours: VecDeque<HourKey>,
    ranges: Option<VecDeque<(i64, i64)>>,
    cursor: Option<i64>,
    /// The next part's index.
    part: u32,
    /// Built and not yet acknowledged.
    pending: Option<ResyncPart>,
    /// The last part was acknowledged.
    done: bool,
    /// Points acknowledged so far.
    pub(crate) points_acked: u64,
    /// Minute rollup rows acknowledged so far.
    rows_acked: u64,
}

impl Job {
    /// Compares the cloud's digests in `req` with this edge's.
    pub(crate) async fn plan(
        req: ResyncRequest,
        sources: &RecordSources,
        s: &UplinkSettings,
    ) -> Result<Self, StoreError> {
        let mine = sources.digests.hour_digests(None, req.from, req.to).await?;
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
        let hours: VecDeque<HourKey> = found
            .differing
            .into_iter()
            .take(req.max_hours.try_into().unwrap_or(usize::MAX))
            .collect();
        let resend = match s.policy {
            UplinkPolicy::Aggregates if !hours.is_empty() => {
                Resend::Aggregates(alert_windows(sources, s).await?)
            }
            UplinkPolicy::Aggregates => Resend::Aggregates(HashMap::new()),
            UplinkPolicy::Raw => Resend::Raw,
        };
        Ok(Self {
            id: req.id,
            figures,
            resend,
            hours,
            ranges: None,
            cursor: None,
            part: 0,
            pending: None,
            done: false,
            points_acked: 0,
            rows_acked: 0,
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
            let (points, rollups) = self.read(series).await?;
            self.pending = Some(ResyncPart {
                id: self.id,
                part: self.part,
                last: self.hours.is_empty(),
                figures: self.figures,
                points,
                rollups,
            });
        }
        Ok(self.pending.as_ref())
    }

    /// What the next hours send, up to [`PART_POINTS`] points and rows (a part's hours are
    /// whole unless one alone holds more; an hour's rollups always go in one part).
    async fn read(
        &mut self,
        series: &dyn SeriesStore,
    ) -> Result<(Vec<Point>, Vec<SeriesRollups>), StoreError> {
        let mut out: Vec<Point> = Vec::new();
        let mut rollups: Vec<SeriesRollups> = Vec::new();
        let mut rows = 0usize;
        while let Some(h) = self.hours.front() {
            let room = (PART_POINTS as usize).saturating_sub(out.len() + rows);
            if room == 0 {
                break;
            }
            let Ok(device) = DeviceId::parse(&h.device) else {
                self.hours.pop_front();
                continue;
            };
            let metric: std::sync::Arc<str> = h.metric.as_str().into();
            let Some(ranges) = self.ranges.as_mut() else {
                // The hour starts: its minutes first (the aggregates policy).
                if matches!(self.resend, Resend::Aggregates(_)) {
                    let end = h.hour + HOUR_MS;
                    let minutes: Vec<_> = series
                        .rollups(&device, &h.metric, Resolution::Minute, h.hour, 60)
                        .await?
                        .into_iter()
                        .filter(|r| r.bucket_ms < end)
                        .collect();
                    rows += minutes.len();
                    if !minutes.is_empty() {
                        rollups.push(SeriesRollups {
                            device,
                            metric,
                            rows: minutes,
                        });
                    }
                }
                self.ranges = Some(self.resend.ranges(h));
                continue;
            };
            let Some(&(from, to)) = ranges.front() else {
                self.ranges = None;
                self.hours.pop_front();
                continue;
            };
            let got = series
                .query(RangeQuery {
                    device: device.clone(),
                    metric: h.metric.clone(),
                    from_ms: self.cursor.unwrap_or(from),
                    to_ms: to,
                    step: None,
                    limit: room,
                })
                .await?;
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
                    ranges.pop_front();
                }
            }
        }
        Ok((out, rollups))
    }

    /// The cloud acknowledged the pending part.
    pub(crate) fn acknowledged(&mut self) {
        if let Some(p) = self.pending.take() {
            self.points_acked += p.points.len() as u64;
            self.rows_acked += p.rollups.iter().map(|s| s.rows.len() as u64).sum::<u64>();
            self.part += 1;
            if p.last {
                self.done = true;
                info!(
                    run = self.id,
                    points = self.points_acked,
                    rollup_rows = self.rows_acked,
                    "re-sync sent"
                );
            }
        }
    }
}
