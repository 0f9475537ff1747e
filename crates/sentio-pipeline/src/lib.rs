//! The processing pipeline between the connectivity layer and the API:
//!
//! ```text
//! broker / HTTP ingest ──► [ingest: parse, group-commit to the store, ack] ──► bounded channel
//!        ──► [detect: watches per device batch, one AlertTracker per AlertKey] ──► Bus (live events)
//! ```
//!
//! Stages are tasks joined by bounded `tokio::sync::mpsc` channels. The CPU-bound ones (the
//! writer, which builds each group commit, and the detectors) each run on a thread of their
//! own ([`stage_thread`]), never on the node's runtime workers, so the broker's acceptors and
//! connection tasks do not wait behind a batch being scored; the detectors' thread runs at a
//! lower OS priority ([`PipelineConfig::detect_nice`]). When the store or the detectors fall
//! behind, [`Ingest::submit`] waits, which holds the publisher's PUBACK (or HTTP
//! response), so back-pressure reaches the device instead of memory growing. An acknowledgement
//! is only given after the points are committed to the store.
//!
//! The [`Bus`] trait carries live events (telemetry, alerts, presence) to WebSocket clients; the
//! embedded default is [`LocalBus`], and a scale-out mode can put NATS behind the same trait.
//!
//! The detect stage is a folder of watches (`detect/`): each looks at one device's share of a
//! committed batch (its series' detectors, its silence, its declared limits, its peers, the
//! relations between its metrics) and returns verdicts on alert keys
//! ([`sentio_core::AlertKey`]); an [`AlertTracker`] per key turns them into alerts.

#![deny(missing_docs)]

pub mod actuate;
mod alerts;
mod bus;
mod control;
mod detect;
mod error;
mod explain;
mod ingest;
mod notice;
mod presence;
pub mod rules;
mod series_limit;
mod stage_thread;
#[cfg(test)]
mod stage_thread_tests;
mod stats;

pub use alerts::{AlertTracker, Transition};
pub use bus::{Bus, Event, LocalBus, Subscription};
pub use control::{Control, DeclaredLimit};
#[doc(hidden)]
pub use detect::RulesProbe;
pub use error::PipelineError;
pub use ingest::{Accepted, Ingest};
pub use notice::{Notice, NoticeEvent, NoticeSender};
pub use presence::Presence;
pub use series_limit::DEFAULT_MAX_SERIES_PER_DEVICE;
pub use stage_thread::StageThread;
pub use stats::Stats;

use std::sync::Arc;
use std::time::Duration;

use sentio_ai::{DetectorConfig, DeviceModelConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Default late-point window: 7 days, the default raw retention of the issue, so a point is
/// accepted as long as raw data of its age is kept (a device back from a week offline can
/// upload its buffer).
pub const DEFAULT_LATE_WINDOW_MS: i64 = 7 * 86_400_000;

/// Default [`PipelineConfig::detect_nice`].
pub const DEFAULT_DETECT_NICE: i32 = 10;
/// Default [`PipelineConfig::seed_history_ms`]: six hours, a working shift of history.
pub const DEFAULT_SEED_HISTORY_MS: i64 = 6 * 3_600_000;

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Batches waiting for the store (each batch is one payload).
    pub ingest_capacity: usize,
    /// Points committed but not yet scored by the detectors. The writer waits (and so the
    /// publishers' acknowledgements wait) when this many are in flight: back-pressure counted in
    /// points, since one batch holds anything from 1 to `max_commit_points` points.
    pub detect_capacity_points: usize,
    /// Most points committed in one transaction (group commit). A commit takes what is
    /// waiting, so commits grow with the backlog up to this: fewer, larger blobs per series
    /// when the writer is behind (each blob costs two index rows and a read later).
    pub max_commit_points: usize,
    /// Points further than this in the future are refused.
    pub max_future_ms: i64,
    /// The late-point window: points (and text events) stamped further than this before their
    /// arrival are refused with a reason; `None` accepts any past time (replays of history).
    /// Within it, late and out-of-order points are stored and merged, sealed ranges included.
    pub max_late_ms: Option<i64>,
    /// The anomaly detector's parameters (one set for every series).
    pub detector: DetectorConfig,
    /// Consecutive normal points after which an open alert resolves.
    pub resolve_after_normal_points: u32,
    /// How often detector state is saved to the store.
    pub save_state_every: Duration,
    /// A device with stored points but no saved detector state at start (data from a version
    /// without it, or a kill before its first save) is seeded from this much of its latest
    /// history before its first live point is judged; 0 turns it off.
    pub seed_history_ms: i64,
    /// Limits declared per device kind and metric (range alerts and predictive maintenance).
    pub limits: Vec<DeclaredLimit>,
    /// Most distinct metrics (numeric series and text metrics) one device may have; points of
    /// new metrics beyond it are refused with a reason recorded on the device.
    pub max_series_per_device: usize,
    /// The device model's settings (one model per device of two metrics or more); `None`
    /// turns it off.
    pub device_model: Option<DeviceModelConfig>,
    /// Bounds of commands to devices.
    pub commands: actuate::CommandLimits,
    /// Largest twin document (desired or reported), in bytes of JSON.
    pub max_twin_bytes: usize,
    /// The zone in which rules read the time of day.
    pub rule_clock: rules::RuleClock,
    /// How many steps of OS priority (nice) the detectors' thread runs below the node's (Linux;
    /// 0 keeps the node's): when the cores are busy, the broker's workers go first and scoring
    /// waits, bounded by `detect_capacity_points` (beyond it the writer, and so the
    /// acknowledgements, wait for the detectors).
    pub detect_nice: i32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            ingest_capacity: 1024,
            detect_capacity_points: 100_000,
            max_commit_points: 50_000,
            max_future_ms: 5 * 60_000,
            max_late_ms: Some(DEFAULT_LATE_WINDOW_MS),
            detector: DetectorConfig {
                warmup: 40,
                ..DetectorConfig::default()
            },
            resolve_after_normal_points: 30,
            save_state_every: Duration::from_secs(30),
            seed_history_ms: DEFAULT_SEED_HISTORY_MS,
            limits: Vec::new(),
            max_series_per_device: DEFAULT_MAX_SERIES_PER_DEVICE,
            device_model: Some(DeviceModelConfig::default()),
            commands: actuate::CommandLimits::default(),
            max_twin_bytes: actuate::DEFAULT_MAX_TWIN_BYTES,
            rule_clock: rules::RuleClock::default(),
            detect_nice: DEFAULT_DETECT_NICE,
        }
    }
}

/// The store as the pipeline sees it: every seam of one backend (it uses the registry, series,
/// alerts, events and health).
pub use sentio_store::Stores;

/// A running pipeline.
pub struct Pipeline {
    /// Where payloads go in.
    pub ingest: Ingest,
    /// Live events.
    pub bus: Arc<dyn Bus>,
    /// Who is online.
    pub presence: Arc<Presence>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Feedback on alerts, forgetting devices, declared limits.
    pub control: Control,
    /// Commands to devices.
    pub commands: actuate::Commands,
    /// Devices' twins.
    pub twins: actuate::Twins,
    /// Where the broker attaches the way out to devices.
    pub courier: actuate::CourierSlot,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The writer's and the detectors' threads, stopped once every task has ended.
    stages: Vec<stage_thread::StageThread>,
}

impl Pipeline {
    /// Starts the stages. Restores open alerts and detector state from the store first.
    /// Every alert that opens is also sent to `notices`, when given.
    pub async fn start(
        config: PipelineConfig,
        stores: Stores,
        bus: Arc<dyn Bus>,
        notices: Option<NoticeSender>,
    ) -> Result<Self, PipelineError> {
        let stats = Arc::new(Stats::default());
        let presence = Arc::new(Presence::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (ingest_tx, ingest_rx) = mpsc::channel(config.ingest_capacity);
        let detect_budget = config.detect_capacity_points.max(config.max_commit_points);
        let (detect_tx, detect_rx) =
            mpsc::channel(detect_budget / config.max_commit_points.max(1) + 16);
        let detect_permits = Arc::new(tokio::sync::Semaphore::new(detect_budget));
        let (command_tx, command_rx) = mpsc::channel(64);

        let courier = actuate::CourierSlot::default();
        let commands = actuate::Commands::new(
            stores.commands.clone(),
            stores.edges.clone(),
            bus.clone(),
            courier.clone(),
            config.commands,
        );
        let twins = actuate::Twins::new(
            (stores.twins.clone(), stores.edges.clone()),
            bus.clone(),
            courier.clone(),
            config.max_twin_bytes,
            command_tx.clone(),
        );
        let detector = detect::DetectStage::restore(
            &config,
            &stores,
            bus.clone(),
            stats.clone(),
            rules::ActionDesks {
                commands: commands.clone(),
                twins: twins.clone(),
                courier: courier.clone(),
            },
            notices,
        )
        .await?;
        let writer = stage_thread::StageThread::start("sentio-writer", 0)?;
        let detect = stage_thread::StageThread::start("sentio-detect", config.detect_nice)?;
        let tasks = vec![
            tokio::spawn(commands.clone().run_expiry(shutdown_rx.clone())),
            writer.spawn(ingest::run_writer(
                ingest_rx,
                ingest::DetectQueue::new(detect_tx, detect_permits, detect_budget),
                stores.series.clone(),
                stores.events.clone(),
                config.max_commit_points,
                stats.clone(),
                shutdown_rx.clone(),
            )),
            detect.spawn(detector.run(detect_rx, command_rx, config.save_state_every)),
            tokio::spawn(presence::run_flusher(
                presence.clone(),
                stores.registry.clone(),
                bus.clone(),
                shutdown_rx,
            )),
        ];
        let series_limit = Arc::new(series_limit::SeriesLimit::new(
            config.max_series_per_device,
            stores.series.clone(),
        ));
        let ingest = Ingest::new(
            ingest_tx,
            stores.registry.clone(),
            stores.health.clone(),
            presence.clone(),
            stats.clone(),
            sentio_core::telemetry::TimeWindow {
                max_future_ms: config.max_future_ms,
                max_late_ms: config.max_late_ms,
            },
            series_limit.clone(),
        );
        Ok(Self {
            ingest,
            bus,
            presence,
            stats,
            control: Control::new(command_tx, config.limits.clone(), series_limit),
            commands,
            twins,
            courier,
            shutdown,
            tasks,
            stages: vec![writer, detect],
        })
    }

    /// Stops accepting, drains what was accepted into the store and detectors, saves detector
    /// state, and returns when every stage has finished.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        drop(self.ingest);
        for t in self.tasks {
            let _ = t.await;
        }
        for stage in self.stages {
            stage.stop().await;
        }
    }
}
