//! The link task: connect, send the outbox in order with several parts in flight, record
//! what the cloud acknowledged, and start over from the acknowledged batches whenever the
//! link fails.
//!
//! Two lanes ([`Lane`]): a batch committed while the link is up is live, one committed while
//! it is down is backlog (the store records the lane in the commit's transaction, as the link
//! tells it with [`OutboxStore::set_outbox_lane`]). Live parts go first; the backlog goes
//! beside them, at most [`UplinkSettings::backlog_rate`] points a second, and keeps its floor
//! share of the window ([`UplinkSettings::live_window`]) so it always progresses. A live
//! batch waits up to [`UplinkSettings::coalesce`] (or until
//! [`UplinkSettings::coalesce_points`] are ready) so that small commits share a message; the
//! backlog never waits. A third lane, [`Lane::Rollups`], carries 1-minute rollups
//! (`up/rollups`), beside the live lane, without waiting: with the aggregates policy those the
//! store records as it rolls minutes up, under any policy those the disk budget degraded
//! undelivered points to.
//!
//! **Invariant:** a batch is recorded as delivered ([`OutboxStore::outbox_acked`]) only after
//! the PUBACK of its last part, and only when every earlier part of its lane is acknowledged
//! too; each connection starts each lane from its recorded seq, so a part whose PUBACK was
//! lost is sent again in the same lane (the cloud acknowledges it without applying it twice).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use sentio_core::{EdgeId, Point, topic};
use sentio_store::{
    BatchSeq, Lane, OutboxStore, PART_POINTS, SeriesRollups, UplinkPolicy, edge_username, wire,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::UplinkSettings;
use crate::records::{self, Kind, RecordSources};
use crate::resync::Job;
use crate::state::UplinkState;

/// First wait after a failed connection; doubles up to [`UplinkSettings::max_backoff`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Largest packet the uplink accepts from the cloud: acknowledgements, and a re-sync request
/// with the cloud's hourly digests (bounded by the cloud's `edges.resync_max_hours`).
const MAX_INCOMING_PACKET: u32 = 4 * 1024 * 1024;

/// Runs the uplink until `shutdown` completes: reconnects with a growing back-off and resumes
/// from the acknowledged batch every time.
pub async fn run(
    settings: UplinkSettings,
    outbox: Arc<dyn OutboxStore>,
    sources: RecordSources,
    state: Arc<UplinkState>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // What the cloud acknowledged of the registry and the alerts (in memory: after a restart
    // it all goes up once more, which changes nothing in the cloud).
    let mut acked = records::Acked::default();
    // A re-sync the cloud asked for: kept across connections (it resumes at its unacknowledged
    // part).
    let mut resync: Option<Job> = None;
    let mut backoff = FIRST_BACKOFF;
    state
        .backlog_rate_limit
        .store(settings.backlog_rate, Ordering::Relaxed);
    info!(upstream = %settings.upstream, edge = %settings.edge_id, "uplink starting");
    // With the aggregates policy, the raw points around each alert, whatever the link does.
    let windows = (settings.policy == UplinkPolicy::Aggregates).then(|| {
        tokio::spawn(crate::windows::run(
            settings.clone(),
            outbox.clone(),
            sources.alerts.clone(),
        ))
    });
    loop {
        let ended = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            ended = session(&settings, &*outbox, (&sources, &mut acked, &mut resync), &state) => ended,
        };
        // What is committed from now on waits for the link: the backlog lane.
        outbox.set_outbox_lane(Lane::Backlog);
        state.lost(ended.why.clone());
        if ended.was_connected {
            backoff = FIRST_BACKOFF;
        }
        warn!(upstream = %settings.upstream, reason = %ended.why, retry_in = ?backoff, "uplink down");
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(settings.max_backoff);
    }
    if let Some(w) = windows {
        w.abort();
    }
    state.connected.store(false, Ordering::Relaxed);
    info!("uplink stopped");
}

/// Why a session ended, and whether it had been connected (which resets the back-off).
struct Ended {
    why: String,
    was_connected: bool,
}

impl Ended {
    fn before_connect(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            was_connected: false,
        }
    }

    fn after_connect(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            was_connected: true,
        }
    }
}

/// A message published and not yet acknowledged.
struct InFlight {
    /// The last batch it completes (its last part is in this message), if any.
    through: Option<BatchSeq>,
    /// Batches it completes.
    batches: u64,
    points: u64,
    /// The packet id rumqttc gave it, once it was written.
    pkid: Option<u16>,
    acked: bool,
    sent_at: Instant,
}

/// A part read from the outbox, not yet published.
struct Ready {
    seq: BatchSeq,
    /// When its batch was committed (ms since the epoch, the edge's clock).
    committed_ms: i64,
    part: u32,
    /// Whether it is the batch's last part (its acknowledgement completes the batch).
    last: bool,
    body: Body,
}

/// What a part carries: points, or (in [`Lane::Rollups`]) rollup rows.
enum Body {
    Points(Vec<Point>),
    Rollups(Vec<SeriesRollups>),
}

impl Ready {
    /// Its points, or rows.
    fn len(&self) -> usize {
        match &self.body {
            Body::Points(p) => p.len(),
            Body::Rollups(s) => s.iter().map(|s| s.rows.len()).sum(),
        }
    }
}

/// The bytes of an MQTT 5 QoS 1 PUBLISH of `payload` bytes on `topic` without properties, as
/// it goes on the socket (before TLS): the fixed header, the topic, the packet id, the empty
/// properties, the payload.
fn publish_packet_bytes(topic: &str, payload: u64) -> u64 {
    let remaining = 2 + topic.len() as u64 + 2 + 1 + payload;
    let mut length_bytes = 1;
    while remaining >= 1 << (7 * length_bytes) {
        length_bytes += 1;
    }
    1 + length_bytes + remaining
}

/// The payload of one message of `parts` of a lane.
fn encode(incarnation: sentio_store::Incarnation, lane: Lane, parts: &[Ready]) -> Vec<u8> {
    if lane == Lane::Rollups {
        let body: Vec<(BatchSeq, &[SeriesRollups])> = parts
            .iter()
            .filter_map(|p| match &p.body {
                Body::Rollups(s) => Some((p.seq, s.as_slice())),
                Body::Points(_) => None,
            })
            .collect();
        return wire::encode_rollups(incarnation, &body);
    }
    let body: Vec<(BatchSeq, u32, &[Point])> = parts
        .iter()
        .filter_map(|p| match &p.body {
            Body::Points(points) => Some((p.seq, p.part, points.as_slice())),
            Body::Rollups(_) => None,
        })
        .collect();
    wire::encode(incarnation, &body)
}

/// Most points in one message (whole parts; a part may hold more on its own).
const MESSAGE_POINTS: usize = PART_POINTS as usize;

/// How often the edge reports its outbox to the cloud, and measures the backlog's drain.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Most batch parts in one message.
const MESSAGE_PARTS: usize = 1_024;

/// One lane within a connection: what was read from the outbox, what is ready to go, what is
/// in flight, in seq order.
struct LaneOut {
    lane: Lane,
    topic: String,
    /// Read up to here.
    read_through: BatchSeq,
    ready: VecDeque<Ready>,
    /// Points in `ready`.
    ready_points: usize,
    in_flight: VecDeque<InFlight>,
}

/// What a lane's acknowledged prefix completed.
#[derive(Default)]
struct Settled {
    through: Option<BatchSeq>,
    batches: u64,
    points: u64,
}

impl LaneOut {
    fn new(lane: Lane, edge: &EdgeId, acked: BatchSeq) -> Self {
        let topic = match lane {
            Lane::Points => topic::uplink_points(edge),
            Lane::Backlog => topic::uplink_backlog(edge),
            Lane::Rollups => topic::uplink_rollups(edge),
        };
        Self {
            lane,
            topic,
            read_through: acked,
            ready: VecDeque::new(),
            ready_points: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// Reads the lane's next batches when fewer than `read_points` points (and
    /// [`MESSAGE_PARTS`] parts) are ready.
    async fn fill(&mut self, outbox: &dyn OutboxStore, read_points: usize) -> Result<(), String> {
        if self.ready.len() >= MESSAGE_PARTS || self.ready_points >= read_points {
            return Ok(());
        }
        if self.lane == Lane::Rollups {
            let batches = outbox
                .outbox_rollups(self.read_through, MESSAGE_PARTS)
                .await
                .map_err(|e| format!("reading the outbox: {e}"))?;
            for b in batches {
                self.read_through = b.seq;
                let r = Ready {
                    seq: b.seq,
                    committed_ms: b.committed_ms,
                    part: 0,
                    last: true,
                    body: Body::Rollups(b.series),
                };
                self.ready_points += r.len();
                self.ready.push_back(r);
            }
            return Ok(());
        }
        let batches = outbox
            .outbox_batches(self.lane, self.read_through, MESSAGE_PARTS, read_points)
            .await
            .map_err(|e| format!("reading the outbox: {e}"))?;
        if let Some(last) = batches.last() {
            self.read_through = last.seq;
        }
        for b in batches {
            let n = b.parts.len();
            for (i, points) in b.parts.into_iter().enumerate() {
                self.ready_points += points.len();
                self.ready.push_back(Ready {
                    seq: b.seq,
                    committed_ms: b.committed_ms,
                    part: i as u32,
                    last: i + 1 == n,
                    body: Body::Points(points),
                });
            }
        }
        Ok(())
    }

    /// How long until its ready parts are due to go: zero when enough points are ready or
    /// the oldest has waited out the coalescing; `None` when nothing is ready.
    fn due_in(&self, s: &UplinkSettings, now_ms: i64) -> Option<Duration> {
        let oldest = self.ready.front()?;
        if self.ready_points >= s.coalesce_points {
            return Some(Duration::ZERO);
        }
        // A clock set back since the commit: no waiting (never a stalled live lane).
        let Ok(waited) = u64::try_from(now_ms - oldest.committed_ms) else {
            return Some(Duration::ZERO);
        };
        Some(s.coalesce.saturating_sub(Duration::from_millis(waited)))
    }

    /// Whether it has anything ready or unacknowledged.
    fn busy(&self) -> bool {
        !self.ready.is_empty() || !self.in_flight.is_empty()
    }

    /// The next message's parts: consecutive, at most `max_points` points unless the first
    /// part alone holds more.
    fn take(&mut self, max_points: usize) -> Vec<Ready> {
        let mut parts = Vec::new();
        let mut points = 0usize;
        while let Some(r) = self.ready.front() {
            if !parts.is_empty() && (points + r.len() > max_points || parts.len() >= MESSAGE_PARTS)
            {
                break;
            }
            points += r.len();
            parts.push(self.ready.pop_front().expect("front exists"));
        }
        self.ready_points -= points;
        parts
    }

    /// Removes the acknowledged messages at the front (in order: a batch counts as delivered
    /// only when everything before it in the lane is).
    fn settle(&mut self) -> Settled {
        let mut done = Settled::default();
        while self.in_flight.front().is_some_and(|f| f.acked) {
            let f = self.in_flight.pop_front().expect("front exists");
            done.points += f.points;
            done.batches += f.batches;
            done.through = f.through.or(done.through);
        }
        done
    }
}

/// The backlog's rate limit: a bucket of points, refilled at the rate, a second deep; a
/// message may take it below zero (the next waits longer), so the average is the rate.
struct Bucket {
    rate: u64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        Self {
            rate,
            tokens: rate as f64,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        if self.rate > 0 {
            self.tokens = (self.tokens + dt * self.rate as f64).min(self.rate as f64);
        }
    }

    fn allows(&self) -> bool {
        self.rate == 0 || self.tokens > 0.0
    }

    fn take(&mut self, points: usize) {
        if self.rate > 0 {
            self.tokens -= points as f64;
        }
    }

    /// Most points in one backlog message: at most a second's worth.
    fn message_points(&self) -> usize {
        if self.rate == 0 {
            MESSAGE_POINTS
        } else {
            MESSAGE_POINTS.min(self.rate as usize).max(1)
        }
    }
}

/// The event loop runs in a task of its own (so that no `poll` is ever cancelled halfway),
/// handing its events over; it stops when the session drops it.
struct Driver {
    events: mpsc::Receiver<Result<Event, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Driver {
    fn start(mut el: EventLoop) -> Self {
        let (tx, events) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let ev = el.poll().await.map_err(|e| e.to_string());
                let failed = ev.is_err();
                if tx.send(ev).await.is_err() || failed {
                    return;
                }
            }
        });
        Self { events, task }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: returns when it fails.
async fn session(
    s: &UplinkSettings,
    outbox: &dyn OutboxStore,
    (sources, acked, resync): (&RecordSources, &mut records::Acked, &mut Option<Job>),
    state: &UplinkState,
) -> Ended {
    // Never plaintext for an mqtts:// or wss:// upstream.
    let mut o = match crate::transport::mqtt_options(s, format!("sentio-edge-{}", s.edge_id)) {
        Ok(o) => o,
        Err(why) => return Ended::before_connect(why),
    };
    o.set_credentials(edge_username(&s.edge_id), s.secret.clone());
    o.set_keep_alive(s.keep_alive.max(Duration::from_secs(5)));
    // Every connection starts afresh from the store's acknowledged seq: no client-side
    // session, no retransmission by rumqttc of what a previous connection sent.
    o.set_clean_start(true);
    o.set_outgoing_inflight_upper_limit(s.in_flight.clamp(1, u16::MAX as usize) as u16);
    o.set_max_packet_size(Some(MAX_INCOMING_PACKET));
    o.set_connection_timeout(s.ack_timeout.as_secs().max(1));
    let (client, el) = AsyncClient::new(o, s.in_flight + 8);
    let mut driver = Driver::start(el);

    // The CONNACK, within the acknowledgement timeout (a black hole never answers).
    let deadline = Instant::now() + s.ack_timeout;
    loop {
        match tokio::time::timeout_at(deadline, driver.events.recv()).await {
            Err(_) => return Ended::before_connect("no CONNACK from the cloud in time"),
            Ok(None) => return Ended::before_connect("connection closed"),
            Ok(Some(Err(e))) => {
                return Ended::before_connect(crate::transport::connect_failed(s, &e));
            }
            Ok(Some(Ok(Event::Incoming(Packet::ConnAck(ack))))) => {
                if ack.code != ConnectReturnCode::Success {
                    return Ended::before_connect(format!("the cloud refused: {:?}", ack.code));
                }
                break;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    let status = match outbox.outbox_status().await {
        Ok(st) => st,
        Err(e) => return Ended::before_connect(format!("reading the outbox: {e}")),
    };
    // The topics the cloud publishes to this edge: its re-sync requests,
    let resync_topic = topic::downlink_resync(&s.edge_id);
    if let Err(e) = client
        .subscribe(resync_topic.clone(), QoS::AtLeastOnce)
        .await
    {
        return Ended::before_connect(format!("subscribing: {e}"));
    }
    // The commands for its devices (the cloud sends the pending ones again now), and their
    // desired twins (sent again now too).
    let commands_topic = topic::downlink_commands(&s.edge_id);
    let twins_topic = topic::downlink_twins(&s.edge_id);
    for t in [&commands_topic, &twins_topic] {
        if let Err(e) = client.subscribe(t.clone(), QoS::AtLeastOnce).await {
            return Ended::before_connect(format!("subscribing: {e}"));
        }
    }
    // Connected: what is committed from now on is live.
    outbox.set_outbox_lane(Lane::Points);
    state.connected.store(true, Ordering::Relaxed);
    UplinkState::add(&state.connects, 1);
    info!(upstream = %s.upstream, live_acked = status.live.acked.0, backlog_acked = status.backlog.acked.0,
        pending_points = status.pending_points, backlog_points = status.backlog.pending_points,
        "uplink connected; resuming each lane after its acknowledged batch");

    let status_topic = topic::uplink_status(&s.edge_id);
    let mut last_report: Option<Instant> = None;
    let mut lanes = [
        LaneOut::new(Lane::Points, &s.edge_id, status.live.acked),
        LaneOut::new(Lane::Backlog, &s.edge_id, status.backlog.acked),
        LaneOut::new(Lane::Rollups, &s.edge_id, status.rollups.acked),
    ];
    const LIVE: usize = 0;
    const BACKLOG: usize = 1;
    const ROLLUPS: usize = 2;
    // Every lane is read from the outbox: the rollups lane carries the aggregates policy's
    // minutes, and under any policy those the disk budget degraded undelivered points to.
    let read = lanes.len();
    // The records (registry, alerts, commands, twins): one message of each kind in flight at
    // most; in `unnumbered` as RECORDS + the kind's index. A kind is due at each report, and
    // commands and twins also when they changed (sent once the kind's message in flight, if
    // any, is acknowledged).
    const RECORDS: usize = 3;
    let mut records_in_flight: [Option<records::InFlight>; Kind::ALL.len()] = Default::default();
    let mut records_due = [true; Kind::ALL.len()];
    // A re-sync part: one in flight at most, paced with the backlog's rate (its own bucket);
    // in `unnumbered` as RESYNC.
    const RESYNC: usize = RECORDS + Kind::ALL.len();
    let mut resync_in_flight: Option<(Option<u16>, Instant)> = None;
    let mut resync_bucket = Bucket::new(s.backlog_rate);
    let resync_up = topic::uplink_resync(&s.edge_id);
    // The lane of each QoS 1 message published and not yet given its packet id, in order.
    let mut unnumbered: VecDeque<usize> = VecDeque::new();
    let mut bucket = Bucket::new(s.backlog_rate);
    // The last acknowledgement (or the connection): the acknowledgement timer runs from it or
    // from the oldest message in flight, whichever is later, so a cloud slowly applying a deep
    // window (every PUBACK progress) is never taken for a dead link; silence is.
    let mut last_ack = Instant::now();
    let mut drained_at = (
        Instant::now(),
        state.backlog_points_acked.load(Ordering::Relaxed),
    );
    loop {
        // Fill the window: live parts first; the backlog within its rate, and with its floor
        // share kept from the live lane while it has anything to send.
        bucket.refill();
        if lanes.iter().map(|l| l.in_flight.len()).sum::<usize>() < s.in_flight {
            for lane in &mut lanes[..read] {
                if let Err(e) = lane.fill(outbox, s.read_points).await {
                    return Ended::after_connect(e);
                }
            }
        }
        loop {
            let in_flight = lanes.iter().map(|l| l.in_flight.len()).sum::<usize>();
            if in_flight >= s.in_flight {
                break;
            }
            let live_window = if lanes[BACKLOG].busy() {
                s.live_window()
            } else {
                s.in_flight
            };
            let live_due = lanes[LIVE]
                .due_in(s, sentio_core::time::now_ms())
                .is_some_and(|d| d.is_zero());
            let pick = if live_due && lanes[LIVE].in_flight.len() < live_window {
                LIVE
            } else if !lanes[ROLLUPS].ready.is_empty() {
                ROLLUPS
            } else if !lanes[BACKLOG].ready.is_empty() && bucket.allows() {
                BACKLOG
            } else {
                break;
            };
            let lane = &mut lanes[pick];
            let parts = lane.take(if pick == BACKLOG {
                bucket.message_points()
            } else {
                MESSAGE_POINTS
            });
            let points: usize = parts.iter().map(Ready::len).sum();
            let payload = encode(status.incarnation, lane.lane, &parts);
            let bytes = payload.len() as u64;
            if let Err(e) = client
                .publish(lane.topic.clone(), QoS::AtLeastOnce, false, payload)
                .await
            {
                return Ended::after_connect(format!("publishing: {e}"));
            }
            if pick == BACKLOG {
                bucket.take(points);
            }
            unnumbered.push_back(pick);
            UplinkState::add(&state.parts_sent, parts.len() as u64);
            UplinkState::add(&state.bytes_sent, bytes);
            if pick == ROLLUPS {
                UplinkState::add(
                    &state.rollup_packet_bytes,
                    publish_packet_bytes(&lane.topic, bytes),
                );
            } else {
                UplinkState::add(&state.points_sent, points as u64);
            }
            lane.in_flight.push_back(InFlight {
                through: parts.iter().rev().find(|p| p.last).map(|p| p.seq),
                batches: parts.iter().filter(|p| p.last).count() as u64,
                points: points as u64,
                pkid: None,
                acked: false,
                sent_at: Instant::now(),
            });
            if lane.ready.is_empty()
                && let Err(e) = lane.fill(outbox, s.read_points).await
            {
                return Ended::after_connect(e);
            }
        }
        // A re-sync part, when none is in flight and the rate allows.
        resync_bucket.refill();
        if resync_in_flight.is_none()
            && resync_bucket.allows()
            && let Some(job) = resync.as_mut()
        {
            let part = match job.next_part(&*sources.series).await {
                Ok(p) => p,
                Err(e) => return Ended::after_connect(format!("reading points to re-sync: {e}")),
            };
            if let Some(part) = part {
                let points = part.points.len();
                let payload = part.encode(status.incarnation);
                UplinkState::add(&state.bytes_sent, payload.len() as u64);
                if let Err(e) = client
                    .publish(resync_up.clone(), QoS::AtLeastOnce, false, payload)
                    .await
                {
                    return Ended::after_connect(format!("publishing: {e}"));
                }
                resync_bucket.take(points);
                unnumbered.push_back(RESYNC);
                resync_in_flight = Some((None, Instant::now()));
            }
        }
        let in_flight = lanes.iter().map(|l| l.in_flight.len()).sum::<usize>();
        state.in_flight.store(in_flight as u64, Ordering::Relaxed);

        // Now and then, what is pending, for the cloud to show (QoS 0: a lost one is
        // replaced by the next), and how fast the backlog drains.
        if last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            last_report = Some(Instant::now());
            let acked_now = state.backlog_points_acked.load(Ordering::Relaxed);
            let secs = drained_at.0.elapsed().as_secs_f64();
            if secs > 0.5 {
                let rate = (acked_now - drained_at.1) as f64 / secs;
                state
                    .backlog_drain_rate
                    .store(rate.round() as u64, Ordering::Relaxed);
                drained_at = (Instant::now(), acked_now);
            }
            records_due = [true; Kind::ALL.len()];
            if let Ok(st) = outbox.outbox_status().await {
                let now = sentio_core::time::now_ms();
                let counts = outbox.outbox_counts().await.unwrap_or_default();
                let report = wire::StatusReport {
                    pending_batches: st.pending_batches,
                    pending_points: st.pending_points,
                    oldest_pending_age_ms: st.oldest_pending_ms.map(|t| (now - t).max(0) as u64),
                    acked: st.acked,
                    backlog_batches: st.backlog.pending_batches,
                    backlog_points: st.backlog.pending_points,
                    backlog_drain_rate: state.backlog_drain_rate.load(Ordering::Relaxed),
                    policy: s.policy,
                    clock_ms: Some(now),
                    degraded_points: counts.degraded_points(),
                    dropped_points: counts.dropped_points(),
                };
                let _ = client.try_publish(
                    status_topic.clone(),
                    QoS::AtMostOnce,
                    false,
                    wire::encode_status(&report),
                );
            }
        }
        // The records: what changed since the cloud last acknowledged it (QoS 1: never
        // dropped; sent again after a lost link).
        for kind in Kind::ALL {
            if !records_due[kind.index()] || records_in_flight[kind.index()].is_some() {
                continue;
            }
            records_due[kind.index()] = false;
            let Some(m) = acked.next(kind, sources, &s.edge_id).await else {
                continue;
            };
            if let Err(e) = client
                .publish(m.topic, QoS::AtLeastOnce, false, m.payload)
                .await
            {
                return Ended::after_connect(format!("publishing: {e}"));
            }
            unnumbered.push_back(RECORDS + kind.index());
            records_in_flight[kind.index()] = Some(m.in_flight);
        }
        let oldest = lanes
            .iter()
            .filter_map(|l| l.in_flight.iter().find(|f| !f.acked).map(|f| f.sent_at))
            .chain(records_in_flight.iter().flatten().map(|r| r.sent_at))
            .chain(resync_in_flight.map(|r| r.1))
            .min();
        let ack_deadline = oldest.map(|t| t.max(last_ack) + s.ack_timeout);
        let idle = in_flight < s.in_flight || resync.as_ref().is_some_and(|j| !j.is_done());
        // While idle, look again at the outbox every `poll`, or sooner when the live parts
        // waiting fall due (parts due already wait for an acknowledgement to free the window).
        let wake = lanes[LIVE]
            .due_in(s, sentio_core::time::now_ms())
            .filter(|d| !d.is_zero())
            .map_or(s.poll, |d| d.min(s.poll));
        tokio::select! {
            ev = driver.events.recv() => match ev {
                None => return Ended::after_connect("connection closed"),
                Some(Err(e)) => return Ended::after_connect(e),
                // QoS 0 (the status reports) has packet id 0; a QoS 1 one never.
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) if pkid != 0 => {
                    match unnumbered.pop_front() {
                        Some(RESYNC) => {
                            if let Some(r) = &mut resync_in_flight {
                                r.0 = Some(pkid);
                            }
                        }
                        Some(i @ RECORDS..) => {
                            if let Some(r) = &mut records_in_flight[i - RECORDS] {
                                r.pkid = Some(pkid);
                            }
                        }
                        Some(lane) => {
                            if let Some(f) = lanes[lane].in_flight.iter_mut().find(|f| f.pkid.is_none()) {
                                f.pkid = Some(pkid);
                            }
                        }
                        None => {}
                    }
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    last_ack = Instant::now();
                    if !matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers) {
                        return Ended::after_connect(format!("the cloud refused a batch: {:?}", ack.reason));
                    }
                    if resync_in_flight.is_some_and(|r| r.0 == Some(ack.pkid)) {
                        resync_in_flight = None;
                        if let Some(job) = resync.as_mut() {
                            job.acknowledged();
                        }
                    } else if let Some(slot) = records_in_flight
                        .iter_mut()
                        .find(|r| r.as_ref().is_some_and(|r| r.pkid == Some(ack.pkid)))
                    {
                        let done = slot.take().expect("found");
                        UplinkState::add(&state.records_acked, acked.acknowledged(done) as u64);
                    } else if let Some(f) = lanes
                        .iter_mut()
                        .flat_map(|l| l.in_flight.iter_mut())
                        .find(|f| f.pkid == Some(ack.pkid) && !f.acked)
                    {
                        f.acked = true;
                    }
                    // Delivered: every batch whose parts are all acknowledged, in its lane's order.
                    for lane in &mut lanes {
                        let done = lane.settle();
                        if lane.lane == Lane::Rollups {
                            UplinkState::add(&state.rollup_rows_acked, done.points);
                        } else {
                            UplinkState::add(&state.points_acked, done.points);
                        }
                        UplinkState::add(&state.batches_acked, done.batches);
                        if lane.lane == Lane::Backlog {
                            UplinkState::add(&state.backlog_points_acked, done.points);
                        }
                        if let Some(seq) = done.through
                            && let Err(e) = outbox.outbox_acked(lane.lane, seq).await
                        {
                            return Ended::after_connect(format!("recording an acknowledgement: {e}"));
                        }
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == resync_topic.as_bytes() => {
                    match sentio_store::ResyncRequest::decode(&p.payload) {
                        Ok(req) => match Job::plan(req, sources, s).await {
                            // A new request replaces a run in progress (the cloud marked it failed).
                            Ok(job) => {
                                *resync = Some(job);
                                resync_in_flight = None;
                            }
                            Err(e) => return Ended::after_connect(format!("re-sync: {e}")),
                        },
                        Err(e) => warn!(error = %e, "re-sync request ignored: it cannot be decoded"),
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == commands_topic.as_bytes() => {
                    crate::down::commands(&*sources.desk, &p.payload).await;
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == twins_topic.as_bytes() => {
                    crate::down::twins(&*sources.desk, &p.payload).await;
                }
                Some(Ok(Event::Incoming(Packet::Disconnect(d)))) => {
                    return Ended::after_connect(format!("the cloud disconnected: {:?}", d.reason_code));
                }
                Some(Ok(_)) => {}
            },
            _ = sleep_until_opt(ack_deadline) => {
                UplinkState::add(&state.ack_timeouts, 1);
                return Ended::after_connect(format!(
                    "no acknowledgement within {:?} (the link is silent)", s.ack_timeout
                ));
            }
            _ = tokio::time::sleep(wake), if idle => {}
            // A command or a twin changed on this edge: their records go up now.
            _ = sources.changed.notified() => {
                records_due[Kind::Commands.index()] = true;
                records_due[Kind::Twins.index()] = true;
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
