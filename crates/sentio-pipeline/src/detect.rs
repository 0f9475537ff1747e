//! The detect stage: every stored point is scored by its series' detector, its device's
//! relations and cadence, its peer group and any declared limit; verdicts drive alerts; everything
//! is announced on the bus. Users' false-alarm marks come back here (`Command`), because this
//! task owns the detectors whose sensitivity they change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sentio_ai::{Cadence, DeviceRelations, LimitWatch, PeerGroup, SeriesDetector};
use sentio_core::time::now_ms;
use sentio_core::{Alert, AlertKind, AlertState, Explanation, Feedback, Point};
use sentio_store::{AlertFilter, AlertStore, DeviceRegistry, SeriesStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::explain;
use crate::{
    AlertTracker, Bus, DeclaredLimit, Event, PipelineConfig, PipelineError, Stats, Stores,
    Transition,
};

type SeriesKey = (String, String);
/// Device, metric label (`a~b` for a relation, `*` for silence) and kind: one open alert each.
type AlertKey = (String, String, AlertKind);

/// One joint reading of a device: (device, timestamp).
type Reading = (String, i64);
/// Metric label of device-wide alerts (silence).
pub const DEVICE_WIDE: &str = "*";
/// Saved-state key of a device's cadence and relations.
const DEVICE_STATE: &str = "~device";
/// Saved-state key prefix of a series' limit watch.
const LIMIT_STATE: &str = "~limit/";
/// Saved-state "device" of the peer groups.
const PEER_STATE: &str = "~peers";

struct SeriesState {
    detector: SeriesDetector,
    last_ts_ms: i64,
    limit: Option<LimitWatch>,
}

#[derive(Default, Serialize, Deserialize)]
struct DeviceState {
    #[serde(skip)]
    kind: String,
    cadence: Cadence,
    relations: DeviceRelations,
}

/// Requests to the detect task.
pub(crate) enum Command {
    /// A user's verdict on an alert.
    Feedback {
        alert_id: i64,
        false_alarm: bool,
        note: Option<String>,
        reply: oneshot::Sender<Result<Alert, PipelineError>>,
    },
    /// Forget everything learnt about a device (it was deleted or erased).
    Forget {
        device: String,
        reply: oneshot::Sender<()>,
    },
}

pub(crate) struct DetectStage {
    config: PipelineConfig,
    series: HashMap<SeriesKey, SeriesState>,
    devices: HashMap<String, DeviceState>,
    peers: HashMap<SeriesKey, PeerGroup>,
    trackers: HashMap<AlertKey, AlertTracker>,
    dirty: HashSet<SeriesKey>,
    dirty_devices: HashSet<String>,
    dirty_peers: HashSet<SeriesKey>,
    registry: Arc<dyn DeviceRegistry>,
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
        let mut stage = Self {
            config: config.clone(),
            series: HashMap::new(),
            devices: HashMap::new(),
            peers: HashMap::new(),
            trackers: HashMap::new(),
            dirty: HashSet::new(),
            dirty_devices: HashSet::new(),
            dirty_peers: HashSet::new(),
            registry: stores.registry.clone(),
            alerts: stores.alerts.clone(),
            store: stores.series.clone(),
            bus,
            stats,
        };
        let mut unreadable = 0;
        let mut limits: Vec<(String, String, LimitWatch)> = Vec::new();
        for (device, metric, state) in stores.series.load_detector_states().await? {
            let ok = if device == PEER_STATE {
                let Some((kind, m)) = metric.split_once('/') else {
                    continue;
                };
                serde_json::from_str::<PeerGroup>(&state)
                    .map(|g| stage.peers.insert((kind.into(), m.into()), g))
                    .is_ok()
            } else if metric == DEVICE_STATE {
                serde_json::from_str::<DeviceState>(&state)
                    .map(|d| stage.devices.insert(device, d))
                    .is_ok()
            } else if let Some(m) = metric.strip_prefix(LIMIT_STATE) {
                serde_json::from_str::<LimitWatch>(&state)
                    .map(|w| limits.push((device, m.to_string(), w)))
                    .is_ok()
            } else {
                serde_json::from_str::<SeriesDetector>(&state)
                    .map(|detector| {
                        stage.series.insert(
                            (device, metric),
                            SeriesState {
                                detector,
                                last_ts_ms: i64::MIN,
                                limit: None,
                            },
                        )
                    })
                    .is_ok()
            };
            // State from an older version relearns rather than failing the start.
            unreadable += usize::from(!ok);
        }
        for (device, metric, watch) in limits {
            if let Some(s) = stage.series.get_mut(&(device, metric)) {
                s.limit = Some(watch);
            }
        }
        let devices: Vec<String> = stage.devices.keys().cloned().collect();
        let started = now_ms();
        for d in devices {
            let kind = stage.kind_of(&d).await;
            if let Some(s) = stage.devices.get_mut(&d) {
                s.kind = kind;
                s.cadence.resume(started);
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
            let kind = alert.explanation.kind;
            let key = (alert.device.clone(), alert.metric.clone(), kind);
            stage.trackers.insert(
                key,
                AlertTracker::new(stage.resolve_after(kind), Some(alert)),
            );
        }
        info!(
            series = stage.series.len(),
            devices = stage.devices.len(),
            peer_groups = stage.peers.len(),
            open_alerts = n_open,
            relearning = unreadable,
            "detectors restored"
        );
        Ok(stage)
    }

    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<crate::ingest::Scored>,
        mut commands: mpsc::Receiver<Command>,
        save_every: Duration,
    ) {
        let mut save = tokio::time::interval(save_every);
        save.tick().await;
        let mut silence = tokio::time::interval(Duration::from_secs(1));
        silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => self.process(batch.points).await,
                    None => break,
                },
                Some(cmd) = commands.recv() => self.command(cmd).await,
                _ = save.tick() => self.save_states().await,
                _ = silence.tick() => self.check_silence().await,
            }
        }
        self.save_states().await;
    }

    fn resolve_after(&self, kind: AlertKind) -> u32 {
        match kind {
            AlertKind::Silence => 1,
            AlertKind::Predictive => 6,
            AlertKind::Limit => 10,
            _ => self.config.resolve_after_normal_points,
        }
    }

    fn tracker(&mut self, device: &str, metric: &str, kind: AlertKind) -> &mut AlertTracker {
        let resolve_after = self.resolve_after(kind);
        self.trackers
            .entry((device.to_string(), metric.to_string(), kind))
            .or_insert_with(|| AlertTracker::new(resolve_after, None))
    }

    fn anomaly_open(&self, device: &str, metric: &str) -> bool {
        self.trackers
            .get(&(device.to_string(), metric.to_string(), AlertKind::Anomaly))
            .is_some_and(|t| t.open().is_some())
    }

    async fn kind_of(&self, device: &str) -> String {
        let Ok(device) = sentio_core::DeviceId::parse(device) else {
            return "device".to_string();
        };
        match self.registry.get_device(&device).await {
            Ok(Some(d)) => d.kind,
            _ => "device".to_string(),
        }
    }

    fn declared_limit(&self, kind: &str, metric: &str) -> Option<&DeclaredLimit> {
        self.config
            .limits
            .iter()
            .find(|l| l.kind == kind && l.metric == metric)
    }

    async fn process(&mut self, points: Vec<Point>) {
        let now = now_ms();
        for p in &points {
            if !self.devices.contains_key(p.device.as_str()) {
                let kind = self.kind_of(p.device.as_str()).await;
                self.devices.insert(
                    p.device.to_string(),
                    DeviceState {
                        kind,
                        ..DeviceState::default()
                    },
                );
            }
        }
        let mut by_device: HashMap<String, Vec<(String, i64, f64)>> = HashMap::new();
        let mut readings: Vec<(Reading, Vec<(String, f64)>)> = Vec::new();
        let mut transitions: Vec<(AlertKey, Transition)> = Vec::new();
        for p in &points {
            let device = p.device.as_str();
            let metric: &str = &p.metric;
            by_device.entry(device.to_string()).or_default().push((
                metric.to_string(),
                p.ts_ms,
                p.value,
            ));
            let dev = self.devices.get_mut(device).expect("inserted above");
            dev.cadence.observe(p.ts_ms, now);
            let kind = dev.kind.clone();
            self.dirty_devices.insert(device.to_string());
            let silent_key = (
                device.to_string(),
                DEVICE_WIDE.to_string(),
                AlertKind::Silence,
            );
            if let Some(t) = self.trackers.get_mut(&silent_key)
                && t.open().is_some()
            {
                let t = t.observe_with(device, DEVICE_WIDE, p.ts_ms, false, Explanation::default);
                transitions.push((silent_key, t));
            }

            // The series' own detectors.
            let key = (device.to_string(), metric.to_string());
            let detector_config = &self.config.detector;
            let state = self
                .series
                .entry(key.clone())
                .or_insert_with(|| SeriesState {
                    detector: SeriesDetector::new(detector_config),
                    last_ts_ms: i64::MIN,
                    limit: None,
                });
            // Detectors are causal: a late point is stored but not scored out of order.
            if p.ts_ms <= state.last_ts_ms {
                continue;
            }
            state.last_ts_ms = p.ts_ms;
            let score = state.detector.update(p.ts_ms, p.value);
            Stats::add(&self.stats.points_scored, 1);
            self.dirty.insert(key.clone());
            let t = self
                .tracker(device, metric, AlertKind::Anomaly)
                .observe(device, metric, p.ts_ms, &score);
            transitions.push(((key.0.clone(), key.1.clone(), AlertKind::Anomaly), t));

            // A declared limit: the value itself, and the forecast.
            if let Some(limit) = self.declared_limit(&kind, metric).map(|l| l.limit) {
                let state = self.series.get_mut(&key).expect("inserted above");
                let obs = state
                    .limit
                    .get_or_insert_with(LimitWatch::default)
                    .observe(&limit, p.ts_ms, p.value);
                let breach = obs.breach;
                let t = self.tracker(device, metric, AlertKind::Limit).observe_with(
                    device,
                    metric,
                    p.ts_ms,
                    breach.is_some(),
                    || explain::limit(metric, p.value, breach.expect("alerting")),
                );
                transitions.push(((key.0.clone(), key.1.clone(), AlertKind::Limit), t));
                if let Some(forecast) = obs.forecast {
                    let t = self
                        .tracker(device, metric, AlertKind::Predictive)
                        .observe_with(device, metric, p.ts_ms, forecast.is_some(), || {
                            explain::predictive(metric, &forecast.expect("alerting"))
                        });
                    transitions.push(((key.0.clone(), key.1.clone(), AlertKind::Predictive), t));
                }
            }

            // The fleet view: the device against its peers of the same kind.
            let group = (kind.clone(), metric.to_string());
            let verdict = self
                .peers
                .entry(group.clone())
                .or_default()
                .observe(device, p.ts_ms, p.value);
            self.dirty_peers.insert(group);
            if let Some(v) = verdict {
                let alert = v.alert && !self.anomaly_open(device, metric);
                let t = self.tracker(device, metric, AlertKind::Peer).observe_with(
                    device,
                    metric,
                    p.ts_ms,
                    alert,
                    || explain::peer(device, metric, &kind, p.value, &v),
                );
                transitions.push(((key.0, key.1, AlertKind::Peer), t));
            }

            let reading_key = (device.to_string(), p.ts_ms);
            match readings.iter_mut().rev().find(|(k, _)| *k == reading_key) {
                Some((_, r)) => r.push((metric.to_string(), p.value)),
                None => readings.push((reading_key, vec![(metric.to_string(), p.value)])),
            }
        }

        // The multivariate view: metrics of one device read together.
        for ((device, ts), reading) in readings {
            if reading.len() < 2 {
                continue;
            }
            let Some(dev) = self.devices.get_mut(&device) else {
                continue;
            };
            let pairs: Vec<(&str, f64)> = reading.iter().map(|(m, v)| (m.as_str(), *v)).collect();
            for v in dev.relations.observe(&pairs) {
                let label = format!("{}~{}", v.metrics.0, v.metrics.1);
                let alert = v.alert
                    && !self.anomaly_open(&device, &v.metrics.0)
                    && !self.anomaly_open(&device, &v.metrics.1);
                let t = self
                    .tracker(&device, &label, AlertKind::Relation)
                    .observe_with(&device, &label, ts, alert, || explain::relation(&v));
                transitions.push(((device.clone(), label, AlertKind::Relation), t));
            }
        }

        for (device, points) in by_device {
            self.bus.publish(Event::Telemetry { device, points });
        }
        self.save_transitions(transitions).await;
    }

    async fn check_silence(&mut self) {
        let now = now_ms();
        let mut transitions = Vec::new();
        let silent: Vec<(String, sentio_ai::Silence)> = self
            .devices
            .iter()
            .filter_map(|(d, s)| s.cadence.silence(now).map(|x| (d.clone(), x)))
            .collect();
        for (device, s) in silent {
            let key = (device.clone(), DEVICE_WIDE.to_string(), AlertKind::Silence);
            let t = self.tracker(&device, DEVICE_WIDE, AlertKind::Silence);
            if t.open().is_some() {
                continue;
            }
            let t = t.observe_with(&device, DEVICE_WIDE, now, true, || explain::silence(&s));
            transitions.push((key, t));
        }
        self.save_transitions(transitions).await;
    }

    /// Saves a batch's transitions in order. An alert that opened earlier in the same batch has
    /// no id in its later transitions (the store gave it one only now): it gets that id, so it
    /// is updated rather than stored twice.
    async fn save_transitions(&mut self, transitions: Vec<(AlertKey, Transition)>) {
        let mut ids: HashMap<(AlertKey, i64), i64> = HashMap::new();
        for (key, t) in transitions {
            let (mut alert, kind) = match t {
                Transition::Opened(a) => (a, "opened"),
                Transition::Escalated(a) => (a, "escalated"),
                Transition::Resolved(a) => (a, "resolved"),
                Transition::None => continue,
            };
            let this = (key, alert.opened_ms);
            if alert.id == 0
                && let Some(&id) = ids.get(&this)
            {
                alert.id = id;
            }
            if let Some(id) = self.save_alert(&this.0, alert, kind).await {
                ids.insert(this, id);
            }
        }
    }

    async fn save_alert(&mut self, key: &AlertKey, alert: Alert, what: &str) -> Option<i64> {
        match self.alerts.save_alert(&alert).await {
            Ok(id) => {
                let mut alert = alert;
                alert.id = id;
                if let Some(t) = self.trackers.get_mut(key) {
                    t.set_id(alert.opened_ms, id);
                }
                match what {
                    "opened" => {
                        Stats::add(&self.stats.alerts_opened, 1);
                        warn!(alert = id, kind = alert.explanation.kind.as_str(), device = %alert.device,
                              metric = %alert.metric, "alert opened: {}", alert.explanation.message);
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
                Some(id)
            }
            Err(e) => {
                error!(error = %e, "could not save an alert");
                None
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Feedback {
                alert_id,
                false_alarm,
                note,
                reply,
            } => {
                let r = self.feedback(alert_id, false_alarm, note).await;
                let _ = reply.send(r);
            }
            Command::Forget { device, reply } => {
                self.forget(&device);
                let _ = reply.send(());
            }
        }
    }

    fn forget(&mut self, device: &str) {
        self.series.retain(|(d, _), _| d != device);
        self.dirty.retain(|(d, _)| d != device);
        self.devices.remove(device);
        self.dirty_devices.remove(device);
        self.trackers.retain(|(d, _, _), _| d != device);
        for (key, group) in &mut self.peers {
            let before = group.len();
            group.remove(device);
            if group.len() != before {
                self.dirty_peers.insert(key.clone());
            }
        }
    }

    /// Applies a user's verdict: a false alarm lowers the sensitivity of whatever raised the
    /// alert and closes it; a confirmation is recorded and changes nothing.
    async fn feedback(
        &mut self,
        id: i64,
        false_alarm: bool,
        note: Option<String>,
    ) -> Result<Alert, PipelineError> {
        let alert = self
            .alerts
            .get_alert(id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("no alert {id}")))?;
        if alert.feedback.as_ref().is_some_and(|f| f.false_alarm) && false_alarm {
            return Err(PipelineError::Conflict(format!(
                "alert {id} is already marked as a false alarm"
            )));
        }
        let kind = alert.explanation.kind;
        let device = alert.device.clone();
        let metric = alert.metric.clone();
        let effect = if !false_alarm {
            "confirmed as a real problem; sensitivity unchanged".to_string()
        } else {
            self.desensitise(&device, &metric, kind)?
        };
        let now = now_ms();
        let key = (device.clone(), metric.clone(), kind);
        let mut updated = alert.clone();
        if false_alarm && alert.state == AlertState::Open {
            let closed = self
                .trackers
                .get_mut(&key)
                .filter(|t| t.open().is_some_and(|a| a.id == id))
                .and_then(|t| t.close(now));
            updated = closed.unwrap_or_else(|| {
                let mut a = alert.clone();
                a.state = AlertState::Resolved;
                a.resolved_ms = Some(now.max(a.last_anomaly_ms));
                a
            });
            self.alerts.save_alert(&updated).await?;
        }
        let feedback = Feedback {
            false_alarm,
            note,
            at_ms: now,
            effect,
        };
        self.alerts.save_feedback(id, &feedback).await?;
        info!(alert = id, device = %device, metric = %metric, false_alarm, "feedback: {}", feedback.effect);
        updated.feedback = Some(feedback);
        self.save_states().await;
        self.bus.publish(Event::Alert {
            alert: Box::new(updated.clone()),
        });
        Ok(updated)
    }

    fn desensitise(
        &mut self,
        device: &str,
        metric: &str,
        kind: AlertKind,
    ) -> Result<String, PipelineError> {
        let gone = || {
            PipelineError::Conflict(format!(
                "the detector behind this alert no longer exists ({device} was deleted or erased)"
            ))
        };
        Ok(match kind {
            AlertKind::Anomaly => {
                let key = (device.to_string(), metric.to_string());
                let s = self.series.get_mut(&key).ok_or_else(gone)?;
                let c = s.detector.mark_false_alarm();
                self.dirty.insert(key);
                format!(
                    "{device}/{metric} is less sensitive after {} false alarm(s): fused score needed \
                     {:.3} -> {:.3}, baseline band {:.1} -> {:.1} spreads",
                    c.false_alarms,
                    c.score_threshold_before,
                    c.score_threshold_after,
                    c.band_before,
                    c.band_after
                )
            }
            AlertKind::Relation => {
                let (a, b) = metric.split_once('~').ok_or_else(gone)?;
                let dev = self.devices.get_mut(device).ok_or_else(gone)?;
                let (n, before, after) = dev.relations.mark_false_alarm(a, b).ok_or_else(gone)?;
                self.dirty_devices.insert(device.to_string());
                format!(
                    "relation {a}~{b} of {device} is less sensitive after {n} false alarm(s): band \
                     {before:.1} -> {after:.1} spreads"
                )
            }
            AlertKind::Peer => {
                let kind = self
                    .devices
                    .get(device)
                    .map(|d| d.kind.clone())
                    .ok_or_else(gone)?;
                let group = (kind, metric.to_string());
                let g = self.peers.get_mut(&group).ok_or_else(gone)?;
                let (n, before, after) = g.mark_false_alarm(device).ok_or_else(gone)?;
                self.dirty_peers.insert(group);
                format!(
                    "{device}/{metric} against its peers is less sensitive after {n} false alarm(s): \
                     band {before:.1} -> {after:.1} spreads"
                )
            }
            AlertKind::Silence => {
                let dev = self.devices.get_mut(device).ok_or_else(gone)?;
                let n = dev.cadence.mark_false_alarm();
                self.dirty_devices.insert(device.to_string());
                format!(
                    "{device} may now stay silent {:.2}x longer before an alert ({n} false alarm(s))",
                    dev.cadence.threshold_factor()
                )
            }
            AlertKind::Predictive => {
                let key = (device.to_string(), metric.to_string());
                let w = self
                    .series
                    .get_mut(&key)
                    .and_then(|s| s.limit.as_mut())
                    .ok_or_else(gone)?;
                let (n, before, after) = w.mark_false_alarm();
                self.dirty.insert(key);
                format!(
                    "predictive alerts on {device}/{metric} now need a crossing within {:.0} % of \
                     the horizon (was {:.0} %) after {n} false alarm(s)",
                    after * 100.0,
                    before * 100.0
                )
            }
            AlertKind::Limit => {
                return Err(PipelineError::Invalid(
                    "a declared limit does not learn: change the limit (serve --limit) instead of \
                     marking its alert as a false alarm"
                        .into(),
                ));
            }
        })
    }

    async fn save_states(&mut self) {
        let mut states: Vec<(String, String, String)> = Vec::new();
        for key in self.dirty.drain() {
            let Some(s) = self.series.get(&key) else {
                continue;
            };
            if let Ok(json) = serde_json::to_string(&s.detector) {
                states.push((key.0.clone(), key.1.clone(), json));
            }
            if let Some(w) = &s.limit
                && let Ok(json) = serde_json::to_string(w)
            {
                states.push((key.0.clone(), format!("{LIMIT_STATE}{}", key.1), json));
            }
        }
        for device in self.dirty_devices.drain() {
            if let Some(d) = self.devices.get(&device)
                && let Ok(json) = serde_json::to_string(d)
            {
                states.push((device, DEVICE_STATE.to_string(), json));
            }
        }
        for group in self.dirty_peers.drain() {
            if let Some(g) = self.peers.get(&group)
                && let Ok(json) = serde_json::to_string(g)
            {
                states.push((
                    PEER_STATE.to_string(),
                    format!("{}/{}", group.0, group.1),
                    json,
                ));
            }
        }
        if states.is_empty() {
            return;
        }
        if let Err(e) = self.store.save_detector_states(states).await {
            error!(error = %e, "could not save detector state");
        }
    }
}
