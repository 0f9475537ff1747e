//! The ingest stage: payload → points → durable commit → acknowledgement.

use std::sync::Arc;
use std::time::Instant;

use sentio_core::telemetry::TimeWindow;
use sentio_core::{DeviceId, Point, TextEvent, telemetry, time};
use sentio_store::{DeviceRegistry, EventStore, SeriesStore, StorageHealth};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, warn};

use crate::series_limit::SeriesLimit;
use crate::{PipelineError, Presence, Stats};

/// Points (and text events) of one payload on their way to the store, with whom to tell when
/// they are durable.
pub(crate) struct Batch {
    points: Vec<Point>,
    events: Vec<TextEvent>,
    ack: Option<oneshot::Sender<Result<(), CommitFailed>>>,
    /// When it was queued (the writer reports how long the oldest batch of a commit waited).
    queued: Instant,
}

/// Why a batch was not committed.
#[derive(Debug, Clone)]
pub(crate) struct CommitFailed {
    /// The disk was full.
    full: bool,
    message: String,
}

/// What a payload yielded once stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Points stored.
    pub points: usize,
    /// Text values stored as events.
    pub events: usize,
    /// Reasons for the parts that were refused.
    pub rejected: Vec<String>,
}

/// The way into the pipeline, shared by the MQTT broker and HTTP ingest. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Batch>,
    registry: Arc<dyn DeviceRegistry>,
    health: Arc<dyn StorageHealth>,
    presence: Arc<Presence>,
    stats: Arc<Stats>,
    window: TimeWindow,
    series_limit: Arc<SeriesLimit>,
}

impl Ingest {
    pub(crate) fn new(
        tx: mpsc::Sender<Batch>,
        registry: Arc<dyn DeviceRegistry>,
        health: Arc<dyn StorageHealth>,
        presence: Arc<Presence>,
        stats: Arc<Stats>,
        window: TimeWindow,
        series_limit: Arc<SeriesLimit>,
    ) -> Self {
        Self {
            tx,
            registry,
            health,
            presence,
            stats,
            window,
            series_limit,
        }
    }

    /// Takes a telemetry payload from an authenticated `device`. Refused parts are recorded on the
    /// device with their reason. With `durable`, returns only once the points are committed.
    /// Errs when nothing could be accepted or the store failed.
    pub async fn payload(
        &self,
        device: &DeviceId,
        payload: &[u8],
        durable: bool,
    ) -> Result<Accepted, PipelineError> {
        let now = time::now_ms();
        self.presence.seen(device.as_str(), now);
        let mut parsed = telemetry::parse_in(device, payload, now, self.window);
        let over = self
            .series_limit
            .admit(device, &mut parsed.points, &mut parsed.events)
            .await?;
        if let Some(reason) = over.reason(self.series_limit.limit()) {
            Stats::add(&self.stats.series_limit_refusals, over.metrics.len() as u64);
            parsed.rejected.push(reason);
        }
        for reason in &parsed.rejected {
            self.reject(device, reason).await;
        }
        if parsed.points.is_empty() && parsed.events.is_empty() {
            if parsed.rejected.is_empty() {
                return Ok(Accepted {
                    points: 0,
                    events: 0,
                    rejected: vec![],
                });
            }
            return Err(PipelineError::Rejected(parsed.rejected.join("; ")));
        }
        let (n, e) = (parsed.points.len(), parsed.events.len());
        self.submit(parsed.points, parsed.events, durable).await?;
        Ok(Accepted {
            points: n,
            events: e,
            rejected: parsed.rejected,
        })
    }

    /// Queues points and text events for the store; waits while the queue is full
    /// (back-pressure). With `durable`, also waits for the commit.
    pub async fn submit(
        &self,
        points: Vec<Point>,
        events: Vec<TextEvent>,
        durable: bool,
    ) -> Result<(), PipelineError> {
        let (ack, done) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.tx
            .send(Batch {
                points,
                events,
                ack,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        if let Some(done) = done {
            match done.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.full => return Err(PipelineError::StorageFull(e.message)),
                Ok(Err(e)) => {
                    return Err(PipelineError::Store(sentio_store::StoreError::Task(
                        e.message,
                    )));
                }
                Err(_) => return Err(PipelineError::ShuttingDown),
            }
        }
        Ok(())
    }

    /// Records that something a device sent was refused, and why: in the log, in the counters,
    /// and on the device (visible through the API).
    pub async fn reject(&self, device: &DeviceId, reason: &str) {
        warn!(device = device.as_str(), reason, "telemetry refused");
        Stats::add(&self.stats.rejections, 1);
        if let Err(e) = self
            .registry
            .record_rejection(device, time::now_ms(), reason)
            .await
        {
            error!(device = device.as_str(), error = %e, "could not record a refusal");
        }
    }

    /// Whether the store's disk is full (the store's own state: a write failed for lack of
    /// space and none has succeeded since).
    pub fn storage_full(&self) -> bool {
        self.health.is_full()
    }

    /// Counts a payload refused up front because the store is full.
    pub fn count_storage_refusal(&self) {
        Stats::add(&self.stats.storage_full_refusals, 1);
    }

    /// Presence of devices, for the broker's connect/disconnect events.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }
}

/// Committed points on their way to the detectors, holding their share of the detect stage's
/// budget (in points) until they are scored.
pub(crate) struct Scored {
    pub points: Vec<Point>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The writer's end of the queue to the detectors, bounded in points.
pub(crate) struct DetectQueue {
    tx: mpsc::Sender<Scored>,
    permits: Arc<tokio::sync::Semaphore>,
    budget: usize,
}

impl DetectQueue {
    pub(crate) fn new(
        tx: mpsc::Sender<Scored>,
        permits: Arc<tokio::sync::Semaphore>,
        budget: usize,
    ) -> Self {
        Self {
            tx,
            permits,
            budget,
        }
    }

    /// Waits until the detectors have room for `points`, then queues them; `false` once the
    /// detect stage is gone.
    async fn send(&self, points: Vec<Point>) -> bool {
        let n = points.len().clamp(1, self.budget) as u32;
        let Ok(permit) = self.permits.clone().acquire_many_owned(n).await else {
            return false;
        };
        self.tx
            .send(Scored {
                points,
                _permit: permit,
            })
            .await
            .is_ok()
    }
}

/// Group commit: takes every batch waiting (up to `max_points`), commits them in one
/// transaction, acknowledges each, then hands the points to the detectors.
pub(crate) async fn run_writer(
    mut rx: mpsc::Receiver<Batch>,
    detect: DetectQueue,
    series: Arc<dyn SeriesStore>,
    event_store: Arc<dyn EventStore>,
    max_points: usize,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            b = rx.recv() => b,
            _ = shutdown.changed() => {
                // Stop taking new batches but drain what was already queued.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        let taken = Instant::now();
        let waited = taken.duration_since(first.queued);
        let mut batches = 1usize;
        let mut points = first.points;
        let mut events = first.events;
        let mut acks: Vec<_> = first.ack.into_iter().collect();
        while points.len() + events.len() < max_points {
            match rx.try_recv() {
                Ok(b) => {
                    points.extend(b.points);
                    events.extend(b.events);
                    acks.extend(b.ack);
                    batches += 1;
                }
                Err(_) => break,
            }
        }
        // Points, then events (a failure of either leaves the batch unacknowledged; a retry
        // replaces what was stored, since both keep the last value per timestamp).
        let stored = match series.append(&points).await {
            Ok(()) => event_store.append_events(&events).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                let committed = Instant::now();
                Stats::add(&stats.points_stored, points.len() as u64);
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
                let n = points.len();
                if !detect.send(points).await {
                    break;
                }
                debug!(
                    target: "sentio_pipeline::writer",
                    batches,
                    points = n,
                    queued_us = waited.as_micros() as u64,
                    store_us = committed.duration_since(taken).as_micros() as u64,
                    detect_wait_us = committed.elapsed().as_micros() as u64,
                    "commit"
                );
            }
            Err(e) => {
                error!(error = %e, points = points.len(), events = events.len(), "commit failed; not acknowledged");
                Stats::add(&stats.store_failures, 1);
                let failed = CommitFailed {
                    full: e.is_storage_full(),
                    message: e.to_string(),
                };
                for ack in acks {
                    let _ = ack.send(Err(failed.clone()));
                }
            }
        }
    }
}
