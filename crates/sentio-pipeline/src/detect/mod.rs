//! The detect stage: a folder of watches. Every committed point reaches, device by device, each
//! [`Watch`]: the series' own detectors (`series`), the device's reporting cadence (`silence`),
//! any declared limit (`limits`), the device's kind's peer group (`peers`), the relations
//! between the device's metrics (`relations`) and the device's multivariate model
//! (`device_model`) and the users' rules (`rules`). Their verdicts drive one [`AlertTracker`]
//! per [`AlertKey`]; alerts and telemetry are announced on the bus. Users' false-alarm marks
//! and rule changes come back here ([`Command`]), because this task owns the state they change.

mod bands;
mod device_model;
mod limits;
mod peers;
mod per_device;
mod per_series;
mod relations;
mod rules;
mod rules_probe;
mod seed;
mod series;
mod silence;
mod state;
mod watch;

pub(crate) use per_series::shrink_if_sparse;
pub use rules_probe::RulesProbe;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sentio_core::time::now_ms;
use sentio_core::{
    Ack, Alert, AlertId, AlertKey, AlertKind, AlertState, DeviceId, Feedback, Point, RuleAction,
    RuleId, SeriesKey, Subject, Twin,
};
use sentio_store::{AlertFilter, AlertStore, DeviceRegistry, RuleStore, SeriesStore, TwinStore};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::rules::ActionDesks;
use crate::rules::judge::twin_value;
use crate::{
    AlertTracker, Bus, Event, Notice, NoticeEvent, NoticeSender, PipelineConfig, PipelineError,
    Stats, Stores, Transition,
};
use watch::{DeviceBatch, Finding, Verdict, Watch};

/// How often silence (and any other watch's time-driven verdict) is checked. A silence
/// threshold is at least one learnt interval plus 10 s (`sentio_ai::cadence::MIN_SLACK_MS`), so
/// a one-second check delays an alert by a tenth of the shortest threshold at most.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// Open alerts restored at start: far more than are open at once (at most one per device,
/// subject and kind, and alerts resolve); the list is newest first, so only alerts older than
/// the newest 100,000 would stay open in the store unwatched.
const MAX_OPEN_ALERTS_RESTORED: usize = 100_000;
/// The kind of a device the registry does not know (it was deleted while its points were on
/// their way): such devices are peers of one another only.
const UNKNOWN_KIND: &str = "device";
/// Points of stored history handed to the watches at a time while a device is seeded.
const SEED_CHUNK: usize = 1_000;

/// Whether the watches judge (live points) or only learn (stored history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judge {
    Live,
    Learn,
}

/// Steps of one state-save period (`save_state_every`): each writes the changed rows of one
/// slice of the state ([`state::SaveSlices`]).
const SAVE_SLICES: usize = 10;

/// Requests to the detect task.
pub(crate) enum Command {
    /// A user's verdict on an alert.
    Feedback {
        alert_id: AlertId,
        false_alarm: bool,
        note: Option<String>,
        reply: oneshot::Sender<Result<Alert, PipelineError>>,
    },
    /// A user says the state behind an alert is normal.
    NewNormal {
        alert_id: AlertId,
        note: Option<String>,
        reply: oneshot::Sender<Result<Alert, PipelineError>>,
    },
    /// Forget everything learnt about a device (it was deleted or erased).
    Forget {
        device: DeviceId,
        reply: oneshot::Sender<()>,
    },
    /// A person takes charge of an alert.
    Acknowledge {
        alert_id: AlertId,
        by: String,
        reply: oneshot::Sender<Result<Alert, PipelineError>>,
    },
    /// A person resolves an alert by hand.
    Resolve {
        alert_id: AlertId,
        by: String,
        reply: oneshot::Sender<Result<Alert, PipelineError>>,
    },
    /// The users' rules changed in the store: load them again.
    ReloadRules {
        reply: oneshot::Sender<Result<(), PipelineError>>,
    },
    /// A device's twin changed (rules read it).
    TwinChanged { device: DeviceId, twin: Box<Twin> },
    /// The rules' run-time reports (traces too for one rule).
    RuleReports {
        rule: Option<RuleId>,
        reply: oneshot::Sender<Vec<crate::rules::report::RuleReport>>,
    },
}

/// A rule's actions, as [`DetectStage::fire_rule`] runs them.
struct RuleActions {
    on_fire: Vec<RuleAction>,
    on_resolve: Vec<RuleAction>,
}

/// Why transitions are saved: only a resolution judged on the data runs a rule's `on_resolve`
/// actions (not one because the rule changed, nor one by hand, which is not saved here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The watches' verdicts.
    Verdicts,
    /// The rule was changed, disabled or removed.
    RuleChanged,
}

/// What a saved transition was, for the log and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Opened,
    Escalated,
    Resolved,
}

pub(crate) struct DetectStage {
    watches: Vec<Box<dyn Watch>>,
    trackers: foldhash::HashMap<AlertKey, AlertTracker>,
    /// Timestamp of the latest watched point of each series: watches are causal, so a point at
    /// or before it is stored but not watched.
    watched_until: foldhash::HashMap<SeriesKey, i64>,
    /// Device kinds, loaded from the registry at start and looked up for a new device before
    /// its first batch is watched.
    kinds: HashMap<DeviceId, Arc<str>>,
    /// Device labels, loaded with the kinds and again whenever the rules change.
    labels: HashMap<DeviceId, BTreeMap<String, String>>,
    /// Device twins as rules read them, loaded with the kinds and kept current by the twin
    /// desk ([`Command::TwinChanged`]).
    twins: HashMap<DeviceId, cel::Value>,
    twin_store: Arc<dyn TwinStore>,
    /// Verdicts of the batch being applied (kept to reuse its allocation).
    verdicts: Vec<Verdict>,
    default_resolve_after: u32,
    registry: Arc<dyn DeviceRegistry>,
    alerts: Arc<dyn AlertStore>,
    store: Arc<dyn SeriesStore>,
    rules: Arc<dyn RuleStore>,
    /// Each enabled rule's actions beyond the alert: run when its alert opens, and when it
    /// resolves by the rule's clear condition.
    rule_actions: HashMap<RuleId, RuleActions>,
    /// The anomaly scores of the device batch under way (rules read them).
    scores: crate::rules::ai_inputs::ScoreSheet,
    desks: ActionDesks,
    bus: Arc<dyn Bus>,
    stats: Arc<Stats>,
    /// Where opened alerts go to be notified.
    notices: Option<NoticeSender>,
    /// The changed state not saved yet, by slice of the save period.
    saves: state::SaveSlices,
    /// Devices with stored history and nothing learnt, owed a head start.
    seeding: seed::Seeding,
}

impl DetectStage {
    /// Restores watch state and open alerts saved by the previous run.
    pub(crate) async fn restore(
        config: &PipelineConfig,
        stores: &Stores,
        bus: Arc<dyn Bus>,
        stats: Arc<Stats>,
        desks: ActionDesks,
        notices: Option<NoticeSender>,
    ) -> Result<Self, PipelineError> {
        let resolve_after = config.resolve_after_normal_points;
        // Silence first: an arrival ends a silence before the arrival itself is judged.
        let mut watches: Vec<Box<dyn Watch>> = vec![
            Box::new(silence::SilenceWatch::new(now_ms())),
            Box::new(series::SeriesWatch::new(
                config.detector.clone(),
                resolve_after,
            )),
            Box::new(limits::LimitsWatch::new(config.limits.clone())),
            Box::new(peers::PeersWatch::new(resolve_after)),
            Box::new(relations::RelationsWatch::new(resolve_after)),
        ];
        if let Some(model) = &config.device_model {
            watches.push(Box::new(device_model::DeviceModelWatch::new(model.clone())));
        }
        watches.push(Box::new(rules::RulesWatch::new(config.rule_clock)));
        let mut stage = Self {
            watches,
            trackers: foldhash::HashMap::default(),
            watched_until: foldhash::HashMap::default(),
            kinds: HashMap::new(),
            labels: HashMap::new(),
            twins: HashMap::new(),
            twin_store: stores.twins.clone(),
            verdicts: Vec::new(),
            default_resolve_after: resolve_after,
            registry: stores.registry.clone(),
            alerts: stores.alerts.clone(),
            store: stores.series.clone(),
            rules: stores.rules.clone(),
            rule_actions: HashMap::new(),
            scores: Default::default(),
            desks,
            bus,
            stats,
            notices,
            saves: state::SaveSlices::new(SAVE_SLICES),
            seeding: seed::Seeding::default(),
        };
        let rows = stores.series.load_detector_states().await?;
        let n_rows = rows.len();
        let mut unreadable = 0;
        let mut learnt: HashSet<String> = HashSet::new();
        for (device, metric, json) in rows {
            if !learnt.contains(&device) {
                learnt.insert(device.clone());
            }
            // State from an older version relearns rather than failing the start.
            unreadable += usize::from(!state::restore_row(
                &mut stage.watches,
                &device,
                &metric,
                &json,
            ));
        }
        let mut unlearnt = HashSet::new();
        for d in stores.registry.list_devices().await? {
            if let Ok(id) = DeviceId::parse(&d.id) {
                if d.last_seen_ms.is_some() && !learnt.contains(&d.id) {
                    unlearnt.insert(id.clone());
                }
                stage.kinds.insert(id.clone(), d.kind.into());
                stage.labels.insert(id, d.labels);
            }
        }
        stage.seeding = seed::Seeding::new(unlearnt, config.seed_history_ms);
        let n_rules = stage.load_rules().await?;
        let open = stores
            .alerts
            .list_alerts(AlertFilter {
                state: Some(AlertState::Open),
                device: None,
                acknowledged: None,
                limit: MAX_OPEN_ALERTS_RESTORED,
            })
            .await?;
        let n_open = open.len();
        for alert in open {
            match AlertKey::of(&alert) {
                Ok(key) => {
                    let tracker = AlertTracker::new(stage.resolve_after(key.kind), Some(alert));
                    stage.trackers.insert(key, tracker);
                }
                Err(e) => warn!(alert = %alert.id, error = %e, "open alert not restored"),
            }
        }
        info!(
            states = n_rows,
            devices = stage.kinds.len(),
            open_alerts = n_open,
            rules = n_rules,
            relearning = unreadable,
            to_seed = stage.seeding.pending(),
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
        // One slice of the state per step: every changed row is written within `save_every`.
        let step = (save_every / self.saves.slices() as u32).max(Duration::from_millis(1));
        let mut save = tokio::time::interval(step);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        save.tick().await;
        let mut tick = tokio::time::interval(TICK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => self.process(batch.points).await,
                    None => break,
                },
                Some(cmd) = commands.recv() => self.command(cmd).await,
                _ = save.tick() => self.save_step().await,
                _ = tick.tick() => self.tick().await,
            }
        }
        self.save_states().await;
    }

    /// Consecutive normal verdicts after which an alert of `kind` resolves: the raising watch
    /// says.
    fn resolve_after(&self, kind: AlertKind) -> u32 {
        self.watches
            .iter()
            .find(|w| w.kinds().contains(&kind))
            .map_or(self.default_resolve_after, |w| w.resolve_after(kind))
    }

    /// Looks up the kinds of the batch's devices not seen yet, before anything is watched.
    async fn resolve_kinds(&mut self, points: &[Point]) {
        let unknown: HashSet<&DeviceId> = points
            .iter()
            .map(|p| &p.device)
            .filter(|d| !self.kinds.contains_key(*d))
            .collect();
        for device in unknown {
            let (kind, labels) = match self.registry.get_device(device).await {
                Ok(Some(d)) => (d.kind, d.labels),
                _ => (UNKNOWN_KIND.to_string(), BTreeMap::new()),
            };
            self.kinds.insert(device.clone(), kind.into());
            self.labels.insert(device.clone(), labels);
            match self.twin_store.twin(device).await {
                Ok(twin) => {
                    self.twins.insert(device.clone(), twin_value(&twin));
                }
                Err(e) => warn!(%device, error = %e, "twin not loaded; rules read it empty"),
            }
        }
    }

    async fn process(&mut self, points: Vec<Point>) {
        self.resolve_kinds(&points).await;
        let now = now_ms();
        let mut transitions = Vec::new();
        // Live telemetry copies every point into owned strings: only for someone listening.
        let live = self.bus.has_subscribers();
        for (device, arrived) in by_device(points) {
            if self.seeding.take(&device) {
                self.seed(&device, &arrived, now).await;
            }
            self.watch_device(&device, &arrived, now, &mut transitions);
            if !live {
                continue;
            }
            self.bus.publish(Event::Telemetry {
                device: device.to_string(),
                points: arrived
                    .iter()
                    .map(|p| (p.metric.to_string(), p.ts_ms, p.value))
                    .collect(),
            });
        }
        self.save_transitions(transitions, Cause::Verdicts).await;
    }

    /// Streams the device's stored history before `arrived` through the watches (its head
    /// start, [`seed`]).
    async fn seed(&mut self, device: &DeviceId, arrived: &[Point], now: i64) {
        let Some(before_ms) = arrived.iter().map(|p| p.ts_ms).min() else {
            return;
        };
        let started = std::time::Instant::now();
        let history = match self
            .seeding
            .history(self.store.as_ref(), device, before_ms)
            .await
        {
            Ok(history) => history,
            Err(e) => {
                warn!(%device, error = %e, "stored history not read; the detectors learn from now");
                return;
            }
        };
        if history.is_empty() {
            return;
        }
        let mut ignored = Vec::new();
        for chunk in history.chunks(SEED_CHUNK) {
            self.observe_device(device, chunk, now, Judge::Learn, &mut ignored);
        }
        info!(
            %device,
            points = history.len(),
            ms = started.elapsed().as_millis() as u64,
            "detectors seeded from stored history"
        );
    }

    /// Runs every watch over one device's share of the batch and applies their verdicts.
    fn watch_device(
        &mut self,
        device: &DeviceId,
        arrived: &[Point],
        now: i64,
        transitions: &mut Vec<(AlertKey, Transition)>,
    ) {
        self.observe_device(device, arrived, now, Judge::Live, transitions);
    }

    /// Runs the watches over one device's points: live, every watch and its verdicts applied;
    /// learning (history), the rules skipped and the verdicts dropped.
    fn observe_device(
        &mut self,
        device: &DeviceId,
        arrived: &[Point],
        now: i64,
        judge: Judge,
        transitions: &mut Vec<(AlertKey, Transition)>,
    ) {
        let in_order: Vec<bool> = arrived.iter().map(|p| self.advance(p)).collect();
        let points: Cow<'_, [Point]> = if in_order.iter().all(|&ok| ok) {
            Cow::Borrowed(arrived)
        } else {
            arrived
                .iter()
                .zip(&in_order)
                .filter(|(_, ok)| **ok)
                .map(|(p, _)| p.clone())
                .collect()
        };
        if judge == Judge::Live {
            Stats::add(&self.stats.points_scored, points.len() as u64);
        }
        let kind = self
            .kinds
            .get(device)
            .cloned()
            .unwrap_or_else(|| UNKNOWN_KIND.into());
        let no_labels = BTreeMap::new();
        let labels = self.labels.get(device).unwrap_or(&no_labels);
        let no_twin = cel::Value::Null;
        let twin = self.twins.get(device).unwrap_or(&no_twin);
        let batch = DeviceBatch {
            device,
            kind: &kind,
            labels,
            twin,
            points: &points,
            arrived,
            now_ms: now,
            scores: &self.scores,
        };
        self.scores.reset(points.len());
        let mut verdicts = std::mem::take(&mut self.verdicts);
        for w in &mut self.watches {
            if judge == Judge::Learn && w.kinds().contains(&AlertKind::Rule) {
                continue;
            }
            w.observe(&batch, &mut verdicts);
        }
        if judge == Judge::Learn {
            verdicts.clear();
        }
        // Stable: within one point, the watches' order.
        verdicts.sort_by_key(|v| v.at);
        for v in verdicts.drain(..) {
            self.apply(v, transitions);
        }
        self.verdicts = verdicts;
    }

    /// Whether `p` is newer than its series' latest watched point (and records it if so).
    fn advance(&mut self, p: &Point) -> bool {
        let latest = self
            .watched_until
            .entry(SeriesKey::of(p))
            .or_insert(i64::MIN);
        let newer = p.ts_ms > *latest;
        if newer {
            *latest = p.ts_ms;
        }
        newer
    }

    /// Whether the series' own detectors have an alert open on a metric of `key`'s subject.
    fn anomaly_open(&self, key: &AlertKey) -> bool {
        key.subject.metrics().any(|m| {
            let anomaly = AlertKey::new(
                key.device.clone(),
                Subject::Metric(m.clone()),
                AlertKind::Anomaly,
            );
            self.trackers
                .get(&anomaly)
                .is_some_and(|t| t.open().is_some())
        })
    }

    /// Applies one verdict to its key's tracker.
    fn apply(&mut self, v: Verdict, transitions: &mut Vec<(AlertKey, Transition)>) {
        let alerting = match v.finding {
            Finding::Normal => None,
            Finding::Held(observed) => {
                if self
                    .trackers
                    .get_mut(&v.key)
                    .is_some_and(|t| t.held(v.ts_ms))
                {
                    return;
                }
                let explained = self
                    .watches
                    .iter()
                    .find(|w| w.kinds().contains(&v.key.kind))
                    .and_then(|w| w.explain(&v.key, observed));
                let Some(e) = explained else {
                    return;
                };
                Some(Box::new(e))
            }
            Finding::Alert(e) => Some(e),
            Finding::AlertUnlessAnomaly(e) => (!self.anomaly_open(&v.key)).then_some(e),
            Finding::Onset(e) => {
                if self
                    .trackers
                    .get(&v.key)
                    .is_some_and(|t| t.open().is_some())
                {
                    return;
                }
                Some(e)
            }
        };
        let t = match alerting {
            // A normal verdict only matters to an alert that exists.
            None => match self.trackers.get_mut(&v.key) {
                Some(t) => t.observe(&v.key, v.ts_ms, None),
                None => return,
            },
            Some(e) => {
                let resolve_after = self.resolve_after(v.key.kind);
                self.trackers
                    .entry(v.key.clone())
                    .or_insert_with(|| AlertTracker::new(resolve_after, None))
                    .observe(&v.key, v.ts_ms, Some(*e))
            }
        };
        if t != Transition::None {
            transitions.push((v.key, t));
        }
    }

    /// Verdicts that need no points (silence), every [`TICK_EVERY`].
    async fn tick(&mut self) {
        let now = now_ms();
        let mut verdicts = std::mem::take(&mut self.verdicts);
        let trackers = &self.trackers;
        let open = |key: &AlertKey| trackers.get(key).is_some_and(|t| t.open().is_some());
        for w in &mut self.watches {
            w.tick(now, &open, &mut verdicts);
        }
        let mut transitions = Vec::new();
        for v in verdicts.drain(..) {
            self.apply(v, &mut transitions);
        }
        self.verdicts = verdicts;
        self.save_transitions(transitions, Cause::Verdicts).await;
    }

    /// A rule's alert opened (`resolved` false) or resolved by its clear condition: its
    /// actions for that run, off this stage's path.
    fn fire_rule(&self, key: &AlertKey, resolved: bool) {
        let Subject::Rule(rule) = &key.subject else {
            return;
        };
        let Some(actions) = self.rule_actions.get(rule).map(|a| match resolved {
            false => &a.on_fire,
            true => &a.on_resolve,
        }) else {
            return;
        };
        if actions.is_empty() {
            return;
        }
        let no_labels = BTreeMap::new();
        let planned = actions
            .iter()
            .map(|a| {
                let targets = match a {
                    RuleAction::Command { to: Some(to), .. } => self
                        .kinds
                        .iter()
                        .filter(|(d, kind)| {
                            to.selects(d, kind, self.labels.get(*d).unwrap_or(&no_labels))
                        })
                        .map(|(d, _)| d.clone())
                        .collect(),
                    _ => vec![key.device.clone()],
                };
                (a.clone(), targets)
            })
            .collect();
        tokio::spawn(crate::rules::actions::run(
            self.desks.clone(),
            rule.clone(),
            key.device.clone(),
            planned,
        ));
    }

    /// Saves a batch's transitions in one store transaction, then tells the notifier and the
    /// bus of each, in order.
    ///
    /// Only the last transition of each alert (key and opening time) in the batch is written:
    /// it carries the earlier ones (an alert that opened and resolved in one batch is stored
    /// once, resolved; an escalation followed by a later escalation or the resolution is not
    /// even told). One commit per batch, not one per alert: with many rules, a batch can open
    /// or resolve hundreds of alerts, and a commit each (an fsync each) on this stage, which
    /// the writer waits for, stalled ingest.
    async fn save_transitions(&mut self, transitions: Vec<(AlertKey, Transition)>, cause: Cause) {
        let superseded = superseded_escalations(&transitions);
        let mut kept = Vec::new();
        for (i, (key, t)) in transitions.into_iter().enumerate() {
            if superseded[i] {
                continue;
            }
            let (alert, change) = match t {
                Transition::Opened(a) => {
                    self.fire_rule(&key, false);
                    (a, Change::Opened)
                }
                Transition::Escalated(a) => (a, Change::Escalated),
                Transition::Resolved(a) => {
                    if cause == Cause::Verdicts {
                        self.fire_rule(&key, true);
                    }
                    (a, Change::Resolved)
                }
                Transition::None => continue,
            };
            kept.push((key, alert, change));
        }
        if kept.is_empty() {
            return;
        }
        let last = last_of_each_alert(&kept);
        let written: Vec<Alert> = kept
            .iter()
            .zip(&last)
            .filter(|(_, last)| **last)
            .map(|((_, a, _), _)| a.clone())
            .collect();
        let ids = match self.alerts.save_alerts(written).await {
            Ok(ids) => ids,
            Err(e) => {
                error!(error = %e, alerts = kept.len(), "could not save alerts");
                return;
            }
        };
        let mut ids_of: HashMap<(AlertKey, i64), AlertId> = HashMap::new();
        let mut next = ids.into_iter();
        for ((key, a, _), last) in kept.iter().zip(&last) {
            if *last && let Some(id) = next.next() {
                ids_of.insert((key.clone(), a.opened_ms), AlertId::new(id));
            }
        }
        for (key, mut alert, change) in kept {
            let Some(&id) = ids_of.get(&(key.clone(), alert.opened_ms)) else {
                continue;
            };
            alert.id = id;
            self.saved(&key, alert, change).await;
        }
    }

    /// What follows an alert's save: its id on the tracker, the counters, the notifier, the
    /// bus.
    async fn saved(&mut self, key: &AlertKey, alert: Alert, change: Change) {
        let id = alert.id;
        if let Some(t) = self.trackers.get_mut(key) {
            t.set_id(alert.opened_ms, id);
        }
        match change {
            Change::Opened => {
                Stats::add(&self.stats.alerts_opened, 1);
                warn!(alert = %id, kind = alert.explanation.kind.as_str(), device = %alert.device,
                      metric = %alert.metric, "alert opened: {}", alert.explanation.message);
                self.notify(NoticeEvent::Opened, &key.device, &alert).await;
            }
            Change::Resolved => {
                Stats::add(&self.stats.alerts_resolved, 1);
                info!(alert = %id, device = %alert.device, metric = %alert.metric, "alert resolved");
                self.notify(NoticeEvent::Resolved, &key.device, &alert)
                    .await;
            }
            Change::Escalated => {}
        }
        self.bus.publish(Event::Alert {
            alert: Box::new(alert),
        });
    }

    /// Tells the notifier what happened to `alert` of `device`. Waits while the notifier is
    /// behind; fails only once it has stopped.
    async fn notify(&mut self, event: NoticeEvent, device: &DeviceId, alert: &Alert) {
        let Some(tx) = &self.notices else {
            return;
        };
        let notice = Notice {
            event,
            alert: alert.clone(),
            device_kind: self
                .kinds
                .get(device)
                .cloned()
                .unwrap_or_else(|| UNKNOWN_KIND.into()),
            labels: self.labels.get(device).cloned().unwrap_or_default(),
        };
        if tx.send(notice).await.is_err() {
            warn!(alert = %alert.id, event = event.as_str(), "the notifier has stopped: alert not notified");
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
            Command::NewNormal {
                alert_id,
                note,
                reply,
            } => {
                let r = self.new_normal(alert_id, note).await;
                let _ = reply.send(r);
            }
            Command::Acknowledge {
                alert_id,
                by,
                reply,
            } => {
                let r = self.acknowledge(alert_id, by).await;
                let _ = reply.send(r);
            }
            Command::Resolve {
                alert_id,
                by,
                reply,
            } => {
                let r = self.resolve(alert_id, by).await;
                let _ = reply.send(r);
            }
            Command::Forget { device, reply } => {
                self.forget(&device);
                let _ = reply.send(());
            }
            Command::ReloadRules { reply } => {
                let r = self.reload_rules().await;
                let _ = reply.send(r);
            }
            Command::RuleReports { rule, reply } => {
                let reports = self
                    .watches
                    .iter()
                    .flat_map(|w| w.rule_reports(rule.as_ref()))
                    .collect();
                let _ = reply.send(reports);
            }
            Command::TwinChanged { device, twin } => {
                // A device not seen yet gets its twin loaded with its kind.
                if self.kinds.contains_key(&device) {
                    self.twins.insert(device, twin_value(&twin));
                }
            }
        }
    }

    /// Loads the stored rules at start; returns how many are enabled.
    async fn load_rules(&mut self) -> Result<usize, PipelineError> {
        self.set_rules().await.map(|(n, _)| n)
    }

    /// Loads and compiles the stored rules and hands them to the watches. A stored rule that no
    /// longer compiles (written by another version) is logged and skipped. Returns how many are
    /// enabled, and the rules removed, disabled or changed since the last load.
    async fn set_rules(&mut self) -> Result<(usize, Vec<RuleId>), PipelineError> {
        let mut compiled = Vec::new();
        for rule in self.rules.list_rules().await? {
            let id = rule.id.clone();
            match crate::rules::compile(rule) {
                Ok(c) => compiled.push(Arc::new(c)),
                Err(e) => error!(rule = %id, error = %e, "stored rule not loaded"),
            }
        }
        let enabled = compiled.iter().filter(|r| r.rule.enabled).count();
        self.rule_actions = compiled
            .iter()
            .filter(|r| {
                r.rule.enabled && !(r.rule.actions.is_empty() && r.rule.on_resolve.is_empty())
            })
            .map(|r| {
                let actions = RuleActions {
                    on_fire: r.rule.actions.clone(),
                    on_resolve: r.rule.on_resolve.clone(),
                };
                (r.rule.id.clone(), actions)
            })
            .collect();
        let mut changed = Vec::new();
        for w in &mut self.watches {
            changed.extend(w.set_rules(&compiled));
        }
        Ok((enabled, changed))
    }

    /// The rules changed: loads them and the device labels again, and resolves the open alerts
    /// of the rules removed, disabled or changed.
    async fn reload_rules(&mut self) -> Result<(), PipelineError> {
        for d in self.registry.list_devices().await? {
            if let Ok(id) = DeviceId::parse(&d.id) {
                self.labels.insert(id, d.labels);
            }
        }
        let (_, changed) = self.set_rules().await?;
        let now = now_ms();
        let mut transitions = Vec::new();
        for (key, t) in &mut self.trackers {
            if let Subject::Rule(rule) = &key.subject
                && changed.contains(rule)
                && let Some(alert) = t.close(now)
            {
                transitions.push((key.clone(), Transition::Resolved(alert)));
            }
        }
        self.save_transitions(transitions, Cause::RuleChanged).await;
        self.save_states().await;
        Ok(())
    }

    fn forget(&mut self, device: &DeviceId) {
        for w in &mut self.watches {
            w.forget(device);
        }
        self.trackers.retain(|k, _| k.device != *device);
        self.watched_until.retain(|s, _| s.device != *device);
        self.kinds.remove(device);
        self.labels.remove(device);
        self.twins.remove(device);
        self.seeding.forget(device);
        per_series::shrink_if_sparse(&mut self.trackers);
        per_series::shrink_if_sparse(&mut self.watched_until);
    }

    /// Applies a user's verdict: a false alarm lowers the sensitivity of whatever raised the
    /// alert and closes it; a confirmation is recorded and changes nothing.
    async fn feedback(
        &mut self,
        id: AlertId,
        false_alarm: bool,
        note: Option<String>,
    ) -> Result<Alert, PipelineError> {
        let (alert, key) = stored_alert(Arc::clone(&self.alerts), id).await?;
        if alert.feedback.as_ref().is_some_and(|f| f.false_alarm) && false_alarm {
            return Err(PipelineError::Conflict(format!(
                "alert {id} is already marked as a false alarm"
            )));
        }
        let effect = if !false_alarm {
            "confirmed as a real problem; sensitivity unchanged".to_string()
        } else {
            self.desensitise(&key)?
        };
        self.close_with_feedback(alert, &key, false_alarm, false_alarm, note, effect)
            .await
    }

    /// A person takes charge of open alert `id`: the first acknowledgement is kept and
    /// announced.
    async fn acknowledge(&mut self, id: AlertId, by: String) -> Result<Alert, PipelineError> {
        let (mut alert, key) = stored_alert(Arc::clone(&self.alerts), id).await?;
        if alert.state == AlertState::Resolved {
            return Err(PipelineError::Conflict(format!("alert {id} is resolved")));
        }
        let ack = Ack {
            by,
            at_ms: now_ms(),
        };
        let ack = self
            .alerts
            .acknowledge(id.get(), &ack)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("no alert {id}")))?;
        if let Some(t) = self.trackers.get_mut(&key) {
            t.set_ack(id, ack.clone());
        }
        info!(alert = %id, device = %key.device, by = %ack.by, "alert acknowledged");
        alert.ack = Some(ack);
        self.notify(NoticeEvent::Acknowledged, &key.device, &alert)
            .await;
        self.bus.publish(Event::Alert {
            alert: Box::new(alert.clone()),
        });
        Ok(alert)
    }

    /// A person resolves open alert `id` now; the watch that raised it is told (a rule's open
    /// flag closes). Should the condition go on, the next alerting verdict opens a new alert.
    async fn resolve(&mut self, id: AlertId, by: String) -> Result<Alert, PipelineError> {
        let (alert, key) = stored_alert(Arc::clone(&self.alerts), id).await?;
        if alert.state == AlertState::Resolved {
            return Err(PipelineError::Conflict(format!(
                "alert {id} is already resolved"
            )));
        }
        self.alerts.set_resolved_by(id.get(), &by).await?;
        let mut resolved = self.close_now(alert, &key).await?;
        resolved.resolved_by = Some(by);
        if let Ok(w) = self.watch_for(&key) {
            w.closed(&key);
        }
        Stats::add(&self.stats.alerts_resolved, 1);
        info!(alert = %id, device = %key.device, by = ?resolved.resolved_by, "alert resolved by hand");
        self.notify(NoticeEvent::Resolved, &key.device, &resolved)
            .await;
        self.save_states().await;
        self.bus.publish(Event::Alert {
            alert: Box::new(resolved.clone()),
        });
        Ok(resolved)
    }

    /// Resolves open `alert` (of `key`) now, in its tracker if it is the tracked one, and saves
    /// it.
    async fn close_now(&mut self, alert: Alert, key: &AlertKey) -> Result<Alert, PipelineError> {
        let id = alert.id;
        let now = now_ms();
        let closed = self
            .trackers
            .get_mut(key)
            .filter(|t| t.open().is_some_and(|a| a.id == id))
            .and_then(|t| t.close(now));
        let updated = closed.unwrap_or_else(|| {
            let mut a = alert;
            a.state = AlertState::Resolved;
            a.resolved_ms = Some(now.max(a.last_anomaly_ms));
            a
        });
        self.alerts.save_alert(&updated).await?;
        Ok(updated)
    }

    /// Records feedback on `alert`; with `close`, an open alert resolves now.
    async fn close_with_feedback(
        &mut self,
        alert: Alert,
        key: &AlertKey,
        close: bool,
        false_alarm: bool,
        note: Option<String>,
        effect: String,
    ) -> Result<Alert, PipelineError> {
        let id = alert.id;
        let now = now_ms();
        let mut updated = alert.clone();
        if close && alert.state == AlertState::Open {
            updated = self.close_now(alert, key).await?;
            self.notify(NoticeEvent::Resolved, &key.device, &updated)
                .await;
        }
        let feedback = Feedback {
            false_alarm,
            note,
            at_ms: now,
            effect,
        };
        self.alerts.save_feedback(id.get(), &feedback).await?;
        info!(alert = %id, device = %key.device, metric = %key.subject, false_alarm, "feedback: {}", feedback.effect);
        updated.feedback = Some(feedback);
        self.save_states().await;
        self.bus.publish(Event::Alert {
            alert: Box::new(updated.clone()),
        });
        Ok(updated)
    }

    /// Applies a user's "this is the new normal": the watch that raised the alert learns the
    /// current state as a normal regime, and the alert resolves.
    async fn new_normal(
        &mut self,
        id: AlertId,
        note: Option<String>,
    ) -> Result<Alert, PipelineError> {
        let (alert, key) = stored_alert(Arc::clone(&self.alerts), id).await?;
        let effect = self.watch_for(&key)?.new_normal(&key)?;
        self.close_with_feedback(alert, &key, true, false, note, effect)
            .await
    }

    /// The watch that raises `key`'s alerts.
    fn watch_for(&mut self, key: &AlertKey) -> Result<&mut Box<dyn Watch>, PipelineError> {
        self.watches
            .iter_mut()
            .find(|w| w.kinds().contains(&key.kind))
            .ok_or_else(|| {
                PipelineError::Invalid(format!("no watch raises {} alerts", key.kind.as_str()))
            })
    }

    /// Makes the watch that raised `key`'s alert less sensitive to it.
    fn desensitise(&mut self, key: &AlertKey) -> Result<String, PipelineError> {
        let device_kind = self.kinds.get(&key.device).cloned();
        self.watch_for(key)?
            .false_alarm(key, device_kind.as_deref())
    }

    /// Saves all the watch state changed since the last save, and the expected bands scored
    /// since (a failed save of bands loses those minutes' bands, never a point).
    async fn save_states(&mut self) {
        let mut bands = Vec::new();
        for w in &mut self.watches {
            w.take_bands(&|_| true, &mut bands);
        }
        let rows = self.saves.all(&mut self.watches);
        self.write_states(bands, rows).await;
    }

    /// One step of the periodic save: the changed state and the bands of one slice.
    async fn save_step(&mut self) {
        let (slice, rows) = self.saves.step(&mut self.watches);
        let mut bands = Vec::new();
        let saves = &self.saves;
        let due = |s: &SeriesKey| saves.slice_of(s) == slice;
        for w in &mut self.watches {
            w.take_bands(&due, &mut bands);
        }
        self.write_states(bands, rows).await;
    }

    async fn write_states(
        &mut self,
        bands: Vec<(SeriesKey, sentio_store::BandRow)>,
        rows: Vec<(String, String, String)>,
    ) {
        if !bands.is_empty()
            && let Err(e) = self.store.save_bands(bands).await
        {
            error!(error = %e, "could not save the expected bands");
        }
        if rows.is_empty() {
            return;
        }
        if let Err(e) = self.store.save_detector_states(rows).await {
            error!(error = %e, "could not save detector state");
        }
    }
}

/// For each saved transition, whether it is the last of its alert (key and opening time) in
/// the list: the one written.
fn last_of_each_alert(kept: &[(AlertKey, Alert, Change)]) -> Vec<bool> {
    let mut later: HashSet<(&AlertKey, i64)> = HashSet::new();
    let mut out = vec![false; kept.len()];
    for (i, (key, a, _)) in kept.iter().enumerate().rev() {
        out[i] = later.insert((key, a.opened_ms));
    }
    out
}

/// For each transition, whether it is an escalation that a later escalation or resolution of
/// the same alert (key and opening time) in the same list makes needless to save.
fn superseded_escalations(transitions: &[(AlertKey, Transition)]) -> Vec<bool> {
    let mut later: HashSet<(&AlertKey, i64)> = HashSet::new();
    let mut out = vec![false; transitions.len()];
    for (i, (key, t)) in transitions.iter().enumerate().rev() {
        match t {
            Transition::Escalated(a) => out[i] = !later.insert((key, a.opened_ms)),
            Transition::Resolved(a) => {
                later.insert((key, a.opened_ms));
            }
            Transition::Opened(_) | Transition::None => {}
        }
    }
    out
}

/// The stored alert `id` and its key.
async fn stored_alert(
    alerts: Arc<dyn AlertStore>,
    id: AlertId,
) -> Result<(Alert, AlertKey), PipelineError> {
    let alert = alerts
        .get_alert(id.get())
        .await?
        .ok_or_else(|| PipelineError::NotFound(format!("no alert {id}")))?;
    let key = AlertKey::of(&alert).map_err(|e| PipelineError::Conflict(e.to_string()))?;
    Ok((alert, key))
}

/// A batch's points grouped by device, devices in the order they first appear, each device's
/// points in commit order.
fn by_device(points: Vec<Point>) -> Vec<(DeviceId, Vec<Point>)> {
    let mut groups: Vec<(DeviceId, Vec<Point>)> = Vec::new();
    let mut index: HashMap<DeviceId, usize> = HashMap::new();
    for p in points {
        // A payload's points are contiguous: most points join the group just before them.
        if let Some((d, group)) = groups.last_mut()
            && *d == p.device
        {
            group.push(p);
            continue;
        }
        let next = groups.len();
        let i = *index.entry(p.device.clone()).or_insert(next);
        if i == next {
            groups.push((p.device.clone(), Vec::new()));
        }
        groups[i].1.push(p);
    }
    groups
}

#[cfg(test)]
mod alert_saves_tests;
#[cfg(test)]
mod rules_dirty_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn point(device: &str, metric: &str, ts_ms: i64) -> Point {
        Point {
            device: DeviceId::parse(device).unwrap(),
            metric: metric.into(),
            ts_ms,
            value: 1.0,
        }
    }

    #[test]
    fn batches_split_by_device_in_order() {
        let groups = by_device(vec![
            point("a", "x", 1),
            point("a", "y", 1),
            point("b", "x", 1),
            point("a", "x", 2),
            point("c", "x", 1),
            point("b", "x", 2),
        ]);
        let seen: Vec<(&str, Vec<i64>)> = groups
            .iter()
            .map(|(d, ps)| (d.as_str(), ps.iter().map(|p| p.ts_ms).collect()))
            .collect();
        assert_eq!(
            seen,
            [("a", vec![1, 1, 2]), ("b", vec![1, 2]), ("c", vec![1])]
        );
    }

    #[test]
    fn only_the_last_escalation_of_an_alert_in_a_batch_is_saved() {
        let key = |d: &str| {
            AlertKey::new(
                DeviceId::parse(d).unwrap(),
                Subject::Metric("m".into()),
                sentio_core::AlertKind::Anomaly,
            )
        };
        let mut tracker = crate::alerts::AlertTracker::new(1, None);
        let explained = |observed: f64| sentio_core::Explanation {
            observed,
            score: 0.9,
            ..sentio_core::Explanation::default()
        };
        let (a, b) = (key("a"), key("b"));
        let mut ts = Vec::new();
        ts.push((a.clone(), tracker.observe(&a, 1, Some(explained(1.0)))));
        ts.push((a.clone(), tracker.observe(&a, 2, Some(explained(2.0)))));
        ts.push((a.clone(), tracker.observe(&a, 3, Some(explained(3.0)))));
        let mut other = crate::alerts::AlertTracker::new(1, None);
        ts.push((b.clone(), other.observe(&b, 3, Some(explained(1.0)))));
        ts.push((b.clone(), other.observe(&b, 4, Some(explained(2.0)))));
        ts.push((a.clone(), tracker.observe(&a, 5, Some(explained(4.0)))));
        ts.push((a.clone(), tracker.observe(&a, 6, None)));
        // A new alert of `a` opened after the resolution: its escalation is its own.
        ts.push((a.clone(), tracker.observe(&a, 7, Some(explained(1.0)))));
        ts.push((a.clone(), tracker.observe(&a, 8, Some(explained(2.0)))));
        let kinds: Vec<&str> = ts
            .iter()
            .map(|(_, t)| match t {
                Transition::Opened(_) => "opened",
                Transition::Escalated(_) => "escalated",
                Transition::Resolved(_) => "resolved",
                Transition::None => "none",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "opened",
                "escalated",
                "escalated",
                "opened",
                "escalated",
                "escalated",
                "resolved",
                "opened",
                "escalated"
            ]
        );
        assert_eq!(
            superseded_escalations(&ts),
            [false, true, true, false, false, true, false, false, false]
        );
    }
}
