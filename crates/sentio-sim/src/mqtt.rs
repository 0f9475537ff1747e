//! Publishing a fleet over MQTT: one connection per device, JSON telemetry on
//! `devices/<id>/telemetry`, reconnection with exponential back-off. Each device also obeys:
//! its connection's task passes the commands and desired twins it receives as [`Order`]s to
//! the fleet's loop, which applies them between two steps and answers on the device's
//! connection (the reply, then the reported twin).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::error::SimError;
use crate::fleet::{Fleet, Reading};
use crate::spec::FleetSpec;

/// First and longest wait before reconnecting after a failed or dropped connection.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long shutdown waits for connections to flush and close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Orders received and not yet applied, for the whole fleet; a device's task waits beyond.
const ORDER_QUEUE: usize = 1024;
/// Largest packet a device takes (a desired twin is at most 32 KiB by default).
const MAX_INCOMING_PACKET: usize = 256 * 1024;

/// How to run a fleet against a broker.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// Which fleet to simulate.
    pub spec: FleetSpec,
    /// Time between two readings of a device (default 1 s).
    pub interval: Duration,
    /// Device id -> secret. The MQTT username is always the device id; the password is the
    /// secret, or none if the device has no entry.
    pub credentials: HashMap<String, String>,
    /// Where to write the ground truth as JSON lines, if anywhere.
    pub ground_truth: Option<PathBuf>,
    /// MQTT QoS of telemetry, 0, 1 or 2 (default 1).
    pub qos: u8,
    /// Stop after this long; `None` runs until the shutdown future completes.
    pub duration: Option<Duration>,
    /// How a tick's readings go out (default [`TickShape::Spread`]).
    pub tick_shape: TickShape,
}

/// How the fleet's readings of one tick are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TickShape {
    /// Each device at its own phase: the tick's readings leave spread over the interval in
    /// fleet order (about `devices / interval` a millisecond), as devices that were switched
    /// on at different times do.
    #[default]
    Spread,
    /// The whole fleet at once at every tick: one burst of `devices` publishes.
    Burst,
}

impl SimConfig {
    /// A config with the defaults: 1 s interval, QoS 1, no credentials, no ground-truth file,
    /// no time limit.
    pub fn new(host: impl Into<String>, port: u16, spec: FleetSpec) -> Self {
        Self {
            host: host.into(),
            port,
            spec,
            interval: Duration::from_secs(1),
            credentials: HashMap::new(),
            ground_truth: None,
            qos: 1,
            duration: None,
            tick_shape: TickShape::default(),
        }
    }

    fn validate(&self) -> Result<QoS, SimError> {
        if self.host.trim().is_empty() {
            return Err(SimError::InvalidConfig("empty broker host".into()));
        }
        if self.port == 0 {
            return Err(SimError::InvalidConfig("broker port 0".into()));
        }
        if self.interval.is_zero() {
            return Err(SimError::InvalidConfig("zero publish interval".into()));
        }
        if self.spec.device_count() == 0 {
            return Err(SimError::InvalidConfig("the fleet has no devices".into()));
        }
        match self.qos {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            q => Err(SimError::InvalidConfig(format!(
                "QoS {q} (must be 0, 1 or 2)"
            ))),
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::new("127.0.0.1", 1883, FleetSpec::demo())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimReport {
    /// Number of simulated devices (= MQTT connections).
    pub devices: usize,
    /// Number of fleet steps (one reading per device each).
    pub ticks: u64,
    /// Telemetry messages handed to a connected client.
    pub messages_published: u64,
    /// Metric values in those messages.
    pub points_published: u64,
    /// Messages written to the network: telemetry and answers.
    pub messages_sent: u64,
    /// Messages acknowledged by the broker (QoS 1 PUBACK / QoS 2 PUBCOMP): telemetry and
    /// answers.
    pub messages_acked: u64,
    /// Answers handed to a connected client: command replies and reported twins (one when a
    /// device connects, one after each order).
    pub answers_published: u64,
    /// Readings not published because the device was disconnected or its queue was full.
    pub messages_dropped: u64,
    /// Successful connections (including reconnections).
    pub connections: u64,
    /// Connections refused by the broker (e.g. bad credentials, not authorised).
    pub connections_refused: u64,
    /// Other connection failures (network errors, timeouts, dropped connections).
    pub connection_errors: u64,
    /// Messages the client rejected for another reason than a full queue.
    pub publish_errors: u64,
    /// Ground-truth records written (0 without a ground-truth file).
    pub faults_written: usize,
    /// Commands carried out (answered `ok`).
    pub commands_obeyed: u64,
    /// Commands refused (answered `failed` with a reason).
    pub commands_refused: u64,
    /// Desired twins applied.
    pub desired_applied: u64,
}

impl SimReport {
    /// All errors: refusals, connection failures and publish errors.
    pub fn errors(&self) -> u64 {
        self.connections_refused + self.connection_errors + self.publish_errors
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    connection_errors: AtomicU64,
}

struct Connection {
    id: String,
    topic: String,
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the fleet `config.spec` against the broker until `shutdown` completes or
/// `config.duration` elapses, then disconnects and reports.
///
/// Each device gets its own MQTT connection (client id and username = device id) and publishes
/// `{"ts": <wall-clock ms>, "<metric>": <value>, ...}` to `devices/<id>/telemetry` every
/// `config.interval`. A device that is disconnected skips its readings (counted as dropped) while
/// it reconnects with exponential back-off (0.5 s to 30 s); refusals are logged as errors.
///
/// With `config.ground_truth`, the fault schedule is written there as JSON lines
/// (`{"device","metric","start_ms","end_ms","kind"}`): faults known at start (one hour ahead)
/// first, further lines appended as the schedule grows; with a `duration`, only faults that
/// start within it.
pub async fn run(
    config: SimConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<SimReport, SimError> {
    let qos = config.validate()?;
    let start_ms = now_ms();
    let mut fleet = Fleet::new(config.spec, start_ms);
    let stop_at_ms = config
        .duration
        .map(|d| start_ms.saturating_add(d.as_millis() as i64));
    let mut truth = match &config.ground_truth {
        Some(path) => Some(GroundTruthWriter::create(path.clone())?),
        None => None,
    };
    if let Some(writer) = truth.as_mut() {
        writer.write_new(&fleet, stop_at_ms)?;
    }

    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (orders_tx, mut orders) = mpsc::channel(ORDER_QUEUE);
    let connections: Vec<Connection> = fleet
        .devices()
        .enumerate()
        .map(|(index, device)| {
            let link = Link {
                index,
                counters: counters.clone(),
                orders: orders_tx.clone(),
                stop: stop_rx.clone(),
            };
            connect(&config, &device.id, link)
        })
        .collect();
    drop(orders_tx);
    info!(
        devices = connections.len(),
        host = %config.host,
        port = config.port,
        interval_ms = config.interval.as_millis() as u64,
        "simulator started"
    );

    let mut report = SimReport {
        devices: connections.len(),
        ..SimReport::default()
    };
    // Give the devices a moment (up to 2 s) to connect so the first readings are not dropped.
    let all_connected = async {
        while !connections
            .iter()
            .all(|c| c.connected.load(Ordering::Relaxed))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let deadline = async {
        match config.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown, deadline);
    let stopped_early = tokio::select! {
        _ = &mut shutdown => true,
        _ = &mut deadline => true,
        _ = tokio::time::timeout(Duration::from_secs(2), all_connected) => false,
    };

    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_ts = start_ms;
    // Spread: a tick's readings wait here and leave a slice at a time (1 ms slices, or one
    // device's share of the interval when that is longer).
    let mut waiting: VecDeque<(usize, Reading)> = VecDeque::new();
    let slice = (config.interval / connections.len().max(1) as u32).max(Duration::from_millis(1));
    let per_slice = ((connections.len() as u128 * slice.as_nanos())
        .div_ceil(config.interval.as_nanos().max(1)) as usize)
        .max(1);
    let mut slicer = tokio::time::interval(slice);
    slicer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result = loop {
        if stopped_early {
            break Ok(());
        }
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = &mut deadline => break Ok(()),
            Some(order) = orders.recv() => {
                if let Some(conn) = connections.get(order.index) {
                    obey(&mut fleet, conn, order.kind, &mut report);
                }
            }
            _ = slicer.tick(), if !waiting.is_empty() => {
                for _ in 0..per_slice {
                    let Some((index, reading)) = waiting.pop_front() else { break };
                    send_reading(&connections[index], &reading, qos, &mut report)?;
                }
            }
            _ = ticker.tick() => {
                let ts = now_ms();
                let readings = fleet.step(ts);
                report.ticks += 1;
                for fault in fleet.faults_starting(last_ts, ts.max(last_ts) + 1) {
                    info!(
                        device = %fault.device,
                        metric = %fault.metric,
                        kind = %fault.kind,
                        duration_s = (fault.end_ms - fault.start_ms) / 1000,
                        "fault injected"
                    );
                }
                last_ts = last_ts.max(ts + 1);
                // What the last tick has not sent yet goes first, in order.
                for (index, reading) in waiting.drain(..) {
                    send_reading(&connections[index], &reading, qos, &mut report)?;
                }
                match config.tick_shape {
                    TickShape::Burst => {
                        for (reading, conn) in readings.iter().zip(&connections) {
                            send_reading(conn, reading, qos, &mut report)?;
                        }
                    }
                    TickShape::Spread => {
                        waiting.extend(readings.into_iter().enumerate());
                        slicer.reset_immediately();
                    }
                }
                if let Some(writer) = truth.as_mut()
                    && let Err(e) = writer.write_new(&fleet, stop_at_ms)
                {
                    break Err(e);
                }
            }
        }
    };

    // Graceful shutdown: let queued publishes go out and be acknowledged (up to 1 s), queue a
    // DISCONNECT behind them, then give the event loops a moment to flush before aborting
    // whatever is still trying to connect.
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < drain_until {
        let sent = counters.sent.load(Ordering::Relaxed);
        let acked = counters.acked.load(Ordering::Relaxed);
        let all_sent = sent >= report.messages_published + report.answers_published;
        if all_sent && (qos == QoS::AtMostOnce || acked >= sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    for conn in &connections {
        let _ = conn.client.try_disconnect();
    }
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace);
    for conn in connections {
        let mut task = conn.task;
        tokio::select! {
            _ = &mut task => {}
            _ = &mut grace => task.abort(),
        }
    }

    report.messages_sent = counters.sent.load(Ordering::Relaxed);
    report.messages_acked = counters.acked.load(Ordering::Relaxed);
    report.connections = counters.connections.load(Ordering::Relaxed);
    report.connections_refused = counters.refused.load(Ordering::Relaxed);
    report.connection_errors = counters.connection_errors.load(Ordering::Relaxed);
    report.faults_written = truth.map(|w| w.written).unwrap_or(0);
    info!(?report, "simulator stopped");
    result.map(|()| report)
}

/// Publishes one device's reading on its connection (counted as dropped while it is offline
/// or its request queue is full).
fn send_reading(
    conn: &Connection,
    reading: &Reading,
    qos: QoS,
    report: &mut SimReport,
) -> Result<(), SimError> {
    debug_assert_eq!(reading.device, conn.id);
    if !conn.connected.load(Ordering::Relaxed) {
        report.messages_dropped += 1;
        return Ok(());
    }
    let payload = serde_json::to_vec(&reading.to_json())?;
    match conn
        .client
        .try_publish(conn.topic.as_str(), qos, false, payload)
    {
        Ok(()) => {
            report.messages_published += 1;
            report.points_published += reading.values.len() as u64;
        }
        Err(rumqttc::ClientError::TryRequest(_)) => {
            debug!(device = %conn.id, "request queue full, reading dropped");
            report.messages_dropped += 1;
        }
        Err(e) => {
            warn!(device = %conn.id, error = %e, "publish failed");
            report.publish_errors += 1;
        }
    }
    Ok(())
}

/// What a device's connection task shares with the fleet's loop.
struct Link {
    /// The device's position in the fleet.
    index: usize,
    counters: Arc<Counters>,
    orders: mpsc::Sender<Order>,
    stop: watch::Receiver<bool>,
}

/// Something a device received, for the fleet's loop to carry out.
struct Order {
    index: usize,
    kind: OrderKind,
}

enum OrderKind {
    /// The device (re)connected: it reports its state.
    Connected,
    /// A command: its id, name and params.
    Command {
        id: String,
        name: String,
        params: serde_json::Value,
    },
    /// The desired twin document.
    Desired(serde_json::Value),
}

/// What a device received on `topic`, if it is for it to obey.
fn order_of(device: &str, topic: &str, payload: &[u8]) -> Option<OrderKind> {
    let rest = topic.strip_prefix("devices/")?.strip_prefix(device)?;
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if rest == "/twin/desired" {
        return Some(OrderKind::Desired(body.get("desired")?.clone()));
    }
    let id = rest.strip_prefix("/commands/")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some(OrderKind::Command {
        id: id.to_owned(),
        name: body.get("name")?.as_str()?.to_owned(),
        params: body
            .get("params")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    })
}

/// Applies an order to the fleet and answers on the device's connection: a command's reply,
/// then (after anything that may have changed it) the reported twin.
fn obey(fleet: &mut Fleet, conn: &Connection, order: OrderKind, report: &mut SimReport) {
    let id = conn.id.as_str();
    match order {
        OrderKind::Connected => {}
        OrderKind::Command {
            id: command,
            name,
            params,
        } => {
            let reply = match fleet.command(id, &name, &params) {
                Ok(()) => {
                    report.commands_obeyed += 1;
                    info!(device = %id, command = %name, "command carried out");
                    serde_json::json!({"status": "ok"})
                }
                Err(reason) => {
                    report.commands_refused += 1;
                    info!(device = %id, command = %name, %reason, "command refused");
                    serde_json::json!({"status": "failed", "reason": reason})
                }
            };
            let topic = format!("devices/{id}/commands/{command}/reply");
            answer(conn, topic, &reply, report);
        }
        OrderKind::Desired(desired) => match fleet.set_desired(id, &desired) {
            Ok(refused) => {
                report.desired_applied += 1;
                for why in refused {
                    info!(device = %id, %why, "desired twin member left out");
                }
            }
            Err(why) => warn!(device = %id, %why, "desired twin not applied"),
        },
    }
    if let Some(state) = fleet.reported(id) {
        answer(conn, format!("devices/{id}/twin/reported"), &state, report);
    }
}

/// Publishes `body` on `topic` (QoS 1) from the device, if its queue has room.
fn answer(conn: &Connection, topic: String, body: &serde_json::Value, report: &mut SimReport) {
    let payload = body.to_string().into_bytes();
    match conn
        .client
        .try_publish(topic, QoS::AtLeastOnce, false, payload)
    {
        Ok(()) => report.answers_published += 1,
        Err(e) => warn!(device = %conn.id, error = %e, "answer not sent"),
    }
}

fn connect(config: &SimConfig, id: &str, link: Link) -> Connection {
    let mut options = MqttOptions::new(id, config.host.clone(), config.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(MAX_INCOMING_PACKET, MAX_INCOMING_PACKET);
    // An empty password is not sent at all (MQTT 3.1.1 password flag cleared).
    let password = config.credentials.get(id).cloned().unwrap_or_default();
    options.set_credentials(id, password);
    let (client, eventloop) = AsyncClient::new(options, 64);
    let connected = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(drive(
        id.to_owned(),
        eventloop,
        client.clone(),
        connected.clone(),
        link,
    ));
    Connection {
        id: id.to_owned(),
        topic: format!("devices/{id}/telemetry"),
        client,
        connected,
        task,
    }
}

/// Polls one device's event loop: tracks connection state and counts, subscribes to the
/// device's commands and desired twin on each connection, passes what arrives there to the
/// fleet's loop, and backs off after failures instead of spinning.
async fn drive(
    id: String,
    mut eventloop: EventLoop,
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    link: Link,
) {
    let Link {
        index,
        counters,
        orders,
        mut stop,
    } = link;
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() && !connected.load(Ordering::Relaxed) {
            return;
        }
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected.store(true, Ordering::Relaxed);
                counters.connections.fetch_add(1, Ordering::Relaxed);
                info!(device = %id, "connected to broker");
                backoff = MIN_BACKOFF;
                for topic in [
                    format!("devices/{id}/commands/+"),
                    format!("devices/{id}/twin/desired"),
                ] {
                    if let Err(e) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                        warn!(device = %id, error = %e, "cannot subscribe");
                    }
                }
                let order = Order {
                    index,
                    kind: OrderKind::Connected,
                };
                if orders.send(order).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(kind) = order_of(&id, &p.topic, &p.payload)
                    && orders.send(Order { index, kind }).await.is_err()
                {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                connected.store(false, Ordering::Relaxed);
                debug!(device = %id, "disconnected");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let was_connected = connected.swap(false, Ordering::Relaxed);
                if *stop.borrow() {
                    return;
                }
                match &e {
                    ConnectionError::ConnectionRefused(code) => {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        error!(
                            device = %id,
                            code = ?code,
                            retry_in_ms = backoff.as_millis() as u64,
                            "broker refused the connection (check the device id and secret)"
                        );
                    }
                    _ => {
                        counters.connection_errors.fetch_add(1, Ordering::Relaxed);
                        let what = if was_connected {
                            "connection to broker lost"
                        } else {
                            "cannot connect to broker"
                        };
                        warn!(
                            device = %id,
                            error = %e,
                            retry_in_ms = backoff.as_millis() as u64,
                            "{what}"
                        );
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Appends ground-truth records to a JSON-lines file as the schedule grows.
struct GroundTruthWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    /// Scheduled faults already considered (written or beyond the run's end).
    seen: usize,
    written: usize,
}

impl GroundTruthWriter {
    fn create(path: PathBuf) -> Result<Self, SimError> {
        let file = std::fs::File::create(&path).map_err(|source| SimError::GroundTruth {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            file: std::io::BufWriter::new(file),
            seen: 0,
            written: 0,
        })
    }

    fn write_new(&mut self, fleet: &Fleet, stop_at_ms: Option<i64>) -> Result<(), SimError> {
        if fleet.scheduled_faults() == self.seen {
            return Ok(());
        }
        let faults = fleet.ground_truth();
        for fault in &faults[self.seen..] {
            if stop_at_ms.is_some_and(|stop| fault.start_ms >= stop) {
                continue;
            }
            let line = serde_json::to_string(fault)?;
            writeln!(self.file, "{line}").map_err(|source| self.io_error(source))?;
            self.written += 1;
        }
        self.seen = faults.len();
        self.file.flush().map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: std::io::Error) -> SimError {
        SimError::GroundTruth {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &std::path::Path) -> Vec<crate::Fault> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn ground_truth_file_grows_with_the_schedule_without_duplicates() {
        let path = std::env::temp_dir().join(format!("sentio-sim-gt-{}.jsonl", std::process::id()));
        let start = 1_704_103_200_000;
        let mut fleet = Fleet::new(FleetSpec::demo(), start);
        let mut writer = GroundTruthWriter::create(path.clone()).unwrap();
        writer.write_new(&fleet, None).unwrap();
        let first = lines(&path);
        assert_eq!(first, fleet.ground_truth());
        for s in 0..=7200 {
            fleet.step(start + s * 1000);
        }
        writer.write_new(&fleet, None).unwrap();
        let all = lines(&path);
        assert!(all.len() > first.len());
        assert_eq!(all, fleet.ground_truth());
        assert_eq!(writer.written, all.len());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn ground_truth_file_keeps_only_faults_starting_within_the_run() {
        let path =
            std::env::temp_dir().join(format!("sentio-sim-gt5-{}.jsonl", std::process::id()));
        let start = 1_704_103_200_000;
        let fleet = Fleet::new(FleetSpec::demo(), start);
        let mut writer = GroundTruthWriter::create(path.clone()).unwrap();
        let stop = start + 300_000;
        writer.write_new(&fleet, Some(stop)).unwrap();
        let written = lines(&path);
        let expected: Vec<_> = fleet
            .ground_truth()
            .into_iter()
            .filter(|f| f.start_ms < stop)
            .collect();
        assert!(!written.is_empty());
        assert_eq!(written, expected);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn config_validation() {
        let ok = SimConfig::default();
        assert_eq!(ok.validate().unwrap(), QoS::AtLeastOnce);
        let bad = [
            SimConfig {
                qos: 3,
                ..SimConfig::default()
            },
            SimConfig {
                interval: Duration::ZERO,
                ..SimConfig::default()
            },
            SimConfig {
                host: " ".into(),
                ..SimConfig::default()
            },
            SimConfig {
                spec: FleetSpec {
                    seed: 1,
                    rooms: 0,
                    pumps: 0,
                    wearables: 0,
                },
                ..SimConfig::default()
            },
        ];
        for config in bad {
            assert!(matches!(config.validate(), Err(SimError::InvalidConfig(_))));
        }
    }
}
