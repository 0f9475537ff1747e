//! The link task: connect, send the outbox in order with several parts in flight, record
//! what the cloud acknowledged, and start over from the acknowledged batch whenever the link
//! fails.
//!
//! **Invariant:** a batch is recorded as delivered ([`OutboxStore::outbox_acked`]) only after
//! the PUBACK of its last part, and only when every earlier part is acknowledged too; each
//! connection starts from the recorded seq, so a part whose PUBACK was lost is sent again (the
//! cloud acknowledges it without applying it twice).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use sentio_core::{Point, topic};
use sentio_store::{BatchSeq, OutboxStore, PART_POINTS, edge_username, wire};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::UplinkSettings;
use crate::state::UplinkState;

/// First wait after a failed connection; doubles up to [`UplinkSettings::max_backoff`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Largest packet the uplink accepts from the cloud (it receives only acknowledgements).
const MAX_INCOMING_PACKET: u32 = 64 * 1024;

/// Runs the uplink until `shutdown` completes: reconnects with a growing back-off and resumes
/// from the acknowledged batch every time.
pub async fn run(
    settings: UplinkSettings,
    outbox: Arc<dyn OutboxStore>,
    state: Arc<UplinkState>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = FIRST_BACKOFF;
    info!(upstream = %settings.upstream, edge = %settings.edge_id, "uplink starting");
    loop {
        let ended = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            ended = session(&settings, &*outbox, &state) => ended,
        };
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
    state
        .connected
        .store(false, std::sync::atomic::Ordering::Relaxed);
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
    part: u32,
    /// Whether it is the batch's last part (its acknowledgement completes the batch).
    last: bool,
    points: Vec<Point>,
}

/// Most points in one message (whole parts; a part may hold more on its own).
const MESSAGE_POINTS: usize = PART_POINTS as usize;

/// How often the edge reports its outbox to the cloud.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Most batch parts in one message.
const MESSAGE_PARTS: usize = 1_024;

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
async fn session(s: &UplinkSettings, outbox: &dyn OutboxStore, state: &UplinkState) -> Ended {
    let mut o = MqttOptions::new(
        format!("sentio-edge-{}", s.edge_id),
        s.upstream.host.clone(),
        s.upstream.port,
    );
    if s.upstream.tls {
        // Never plaintext for an mqtts:// upstream.
        let Some(tls) = &s.tls else {
            return Ended::before_connect("mqtts:// without a TLS configuration");
        };
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
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
            Ok(Some(Err(e))) if s.upstream.tls && e.contains("TLS") => {
                return Ended::before_connect(format!(
                    "TLS to the cloud failed (is edge.ca_file / --upstream-ca its certificate or CA, \
                     and {:?} a name in it?): {e}",
                    s.upstream.host
                ));
            }
            Ok(Some(Err(e))) => return Ended::before_connect(format!("connect: {e}")),
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
    state
        .connected
        .store(true, std::sync::atomic::Ordering::Relaxed);
    UplinkState::add(&state.connects, 1);
    info!(upstream = %s.upstream, acked = status.acked.0, pending_batches = status.pending_batches,
        pending_points = status.pending_points, "uplink connected; resuming after the acknowledged batch");

    let topic = topic::uplink_points(&s.edge_id);
    let status_topic = topic::uplink_status(&s.edge_id);
    let mut last_report: Option<Instant> = None;
    // Read up to here.
    let mut read_through = status.acked;
    let mut ready: VecDeque<Ready> = VecDeque::new();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    loop {
        // Fill the window: messages of consecutive parts, whatever is ready.
        while in_flight.len() < s.in_flight {
            if ready.len() < MESSAGE_PARTS {
                let batches = match outbox
                    .outbox_batches(read_through, MESSAGE_PARTS, s.read_points)
                    .await
                {
                    Ok(b) => b,
                    Err(e) => return Ended::after_connect(format!("reading the outbox: {e}")),
                };
                if let Some(last) = batches.last() {
                    read_through = last.seq;
                }
                for b in batches {
                    let n = b.parts.len();
                    for (i, points) in b.parts.into_iter().enumerate() {
                        ready.push_back(Ready {
                            seq: b.seq,
                            part: i as u32,
                            last: i + 1 == n,
                            points,
                        });
                    }
                }
            }
            if ready.is_empty() {
                break;
            }
            let mut parts = Vec::new();
            let mut points = 0usize;
            while let Some(r) = ready.front() {
                if !parts.is_empty()
                    && (points + r.points.len() > MESSAGE_POINTS || parts.len() >= MESSAGE_PARTS)
                {
                    break;
                }
                points += r.points.len();
                parts.push(ready.pop_front().expect("front exists"));
            }
            let body: Vec<(BatchSeq, u32, &[Point])> = parts
                .iter()
                .map(|p| (p.seq, p.part, p.points.as_slice()))
                .collect();
            let payload = wire::encode(status.incarnation, &body);
            let bytes = payload.len() as u64;
            if let Err(e) = client
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                .await
            {
                return Ended::after_connect(format!("publishing: {e}"));
            }
            UplinkState::add(&state.parts_sent, parts.len() as u64);
            UplinkState::add(&state.bytes_sent, bytes);
            UplinkState::add(&state.points_sent, points as u64);
            in_flight.push_back(InFlight {
                through: parts.iter().rev().find(|p| p.last).map(|p| p.seq),
                batches: parts.iter().filter(|p| p.last).count() as u64,
                points: points as u64,
                pkid: None,
                acked: false,
                sent_at: Instant::now(),
            });
        }
        state
            .in_flight
            .store(in_flight.len() as u64, std::sync::atomic::Ordering::Relaxed);

        // Now and then, what is pending, for the cloud to show (QoS 0: a lost one is
        // replaced by the next).
        if last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            last_report = Some(Instant::now());
            if let Ok(st) = outbox.outbox_status().await {
                let now = sentio_core::time::now_ms();
                let report = wire::StatusReport {
                    pending_batches: st.pending_batches,
                    pending_points: st.pending_points,
                    oldest_pending_age_ms: st.oldest_pending_ms.map(|t| (now - t).max(0) as u64),
                    acked: st.acked,
                };
                let _ = client.try_publish(
                    status_topic.clone(),
                    QoS::AtMostOnce,
                    false,
                    wire::encode_status(&report),
                );
            }
        }
        let oldest = in_flight.iter().find(|f| !f.acked).map(|f| f.sent_at);
        let ack_deadline = oldest.map(|t| t + s.ack_timeout);
        let idle = in_flight.len() < s.in_flight;
        tokio::select! {
            ev = driver.events.recv() => match ev {
                None => return Ended::after_connect("connection closed"),
                Some(Err(e)) => return Ended::after_connect(e),
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(f) = in_flight.iter_mut().find(|f| f.pkid.is_none()) {
                        f.pkid = Some(pkid);
                    }
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if !matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers) {
                        return Ended::after_connect(format!("the cloud refused a batch: {:?}", ack.reason));
                    }
                    if let Some(f) = in_flight.iter_mut().find(|f| f.pkid == Some(ack.pkid) && !f.acked) {
                        f.acked = true;
                    }
                    // Delivered: every batch whose parts are all acknowledged, in order.
                    let mut through = None;
                    while in_flight.front().is_some_and(|f| f.acked) {
                        let f = in_flight.pop_front().expect("front exists");
                        UplinkState::add(&state.points_acked, f.points);
                        UplinkState::add(&state.batches_acked, f.batches);
                        through = f.through.or(through);
                    }
                    if let Some(seq) = through
                        && let Err(e) = outbox.outbox_acked(seq).await
                    {
                        return Ended::after_connect(format!("recording an acknowledgement: {e}"));
                    }
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
            _ = tokio::time::sleep(s.poll), if idle => {}
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
