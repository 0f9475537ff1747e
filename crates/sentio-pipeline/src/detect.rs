//! The detect stage: every stored point is scored by its series' detector; verdicts drive the
//! series' alert; everything is announced on the bus.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sentio_ai::SeriesDetector;
use sentio_core::{AlertState, Point};
use sentio_store::{AlertFilter, AlertStore, SeriesStore};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::{AlertTracker, Bus, Event, PipelineConfig, PipelineError, Stats, Stores, Transition};

type SeriesKey = (String, String);

struct SeriesState {
    detector: SeriesDetector,
    alert: AlertTracker,
    last_ts_ms: i64,
}

pub(crate) struct DetectStage {
    config: PipelineConfig,
    series: HashMap<SeriesKey, SeriesState>,
    dirty: HashSet<SeriesKey>,
    alerts: Arc<dyn AlertStore>,
    store: Arc<dyn SeriesStore>,
    bus: Arc<dyn Bus>,
    stats: Arc<Stats>,
}

impl DetectStage {
    /// Restores detector state and open alerts saved by the previous run.
    pub(crate) async fn restore(
        config: &PipelineConfig,
        stores: &Stores,
        bus: Arc<dyn Bus>,
        stats: Arc<Stats>,
    ) -> Result<Self, PipelineError> {
        let mut series = HashMap::new();
        let mut unreadable = 0;
        for (device, metric, state) in stores.series.load_detector_states().await? {
            match serde_json::from_str::<SeriesDetector>(&state) {
                Ok(detector) => {
                    series.insert(
                        (device, metric),
                        SeriesState {
                            detector,
                            alert: AlertTracker::new(config.resolve_after_normal_points, None),
                            last_ts_ms: i64::MIN,
                        },
                    );
                }
                // A detector from an older version: it relearns rather than failing the start.
                Err(_) => unreadable += 1,
            }
        }
        let open = stores
            .alerts
            .list_alerts(AlertFilter {
                state: Some(AlertState::Open),
                device: None,
                limit: 100_000,
            })
            .await?;
        let n_open = open.len();
        for alert in open {
            let key = (alert.device.clone(), alert.metric.clone());
            let entry = series.entry(key).or_insert_with(|| SeriesState {
                detector: SeriesDetector::new(&config.detector),
                alert: AlertTracker::new(config.resolve_after_normal_points, None),
                last_ts_ms: i64::MIN,
            });
            entry.alert = AlertTracker::new(config.resolve_after_normal_points, Some(alert));
        }
        info!(
            series = series.len(),
            open_alerts = n_open,
            relearning = unreadable,
            "detectors restored"
        );
        Ok(Self {
            config: config.clone(),
            series,
            dirty: HashSet::new(),
            alerts: stores.alerts.clone(),
            store: stores.series.clone(),
            bus,
            stats,
        })
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Vec<Point>>, save_every: Duration) {
        let mut tick = tokio::time::interval(save_every);
        tick.tick().await;
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(points) => self.process(points).await,
                    None => break,
                },
                _ = tick.tick() => self.save_states().await,
            }
        }
        self.save_states().await;
    }

    async fn process(&mut self, points: Vec<Point>) {
        let mut by_device: HashMap<String, Vec<(String, i64, f64)>> = HashMap::new();
        let mut transitions = Vec::new();
        for p in &points {
            by_device.entry(p.device.to_string()).or_default().push((
                p.metric.to_string(),
                p.ts_ms,
                p.value,
            ));
            let key = (p.device.to_string(), p.metric.to_string());
            let config = &self.config;
            let state = self
                .series
                .entry(key.clone())
                .or_insert_with(|| SeriesState {
                    detector: SeriesDetector::new(&config.detector),
                    alert: AlertTracker::new(config.resolve_after_normal_points, None),
                    last_ts_ms: i64::MIN,
                });
            // Detectors are causal: a late point is stored but not scored out of order.
            if p.ts_ms <= state.last_ts_ms {
                continue;
            }
            state.last_ts_ms = p.ts_ms;
            let score = state.detector.update(p.ts_ms, p.value);
            Stats::add(&self.stats.points_scored, 1);
            self.dirty.insert(key.clone());
            match state.alert.observe(&key.0, &key.1, p.ts_ms, &score) {
                Transition::None => {}
                t => transitions.push((key, t)),
            }
        }
        for (device, points) in by_device {
            self.bus.publish(Event::Telemetry { device, points });
        }
        for (key, t) in transitions {
            let (alert, kind) = match t {
                Transition::Opened(a) => (a, "opened"),
                Transition::Escalated(a) => (a, "escalated"),
                Transition::Resolved(a) => (a, "resolved"),
                Transition::None => continue,
            };
            match self.alerts.save_alert(&alert).await {
                Ok(id) => {
                    let mut alert = alert;
                    alert.id = id;
                    if let Some(s) = self.series.get_mut(&key) {
                        s.alert.set_id(id);
                    }
                    match kind {
                        "opened" => {
                            Stats::add(&self.stats.alerts_opened, 1);
                            warn!(alert = id, device = %alert.device, metric = %alert.metric,
                                  "alert opened: {}", alert.explanation.message);
                        }
                        "resolved" => {
                            Stats::add(&self.stats.alerts_resolved, 1);
                            info!(alert = id, device = %alert.device, metric = %alert.metric, "alert resolved");
                        }
                        _ => {}
                    }
                    self.bus.publish(Event::Alert {
                        alert: Box::new(alert),
                    });
                }
                Err(e) => error!(error = %e, "could not save an alert"),
            }
        }
    }

    async fn save_states(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let states: Vec<_> = self
            .dirty
            .drain()
            .filter_map(|key| {
                let s = self.series.get(&key)?;
                let json = serde_json::to_string(&s.detector).ok()?;
                Some((key.0, key.1, json))
            })
            .collect();
        if let Err(e) = self.store.save_detector_states(states).await {
            error!(error = %e, "could not save detector state");
        }
    }
}
