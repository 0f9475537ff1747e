//! The uplink under the rest of the faults (real processes, the fault proxy of
//! `support::fault_proxy`, see `uplink`): an edge restored from an older backup (a new
//! incarnation), an edge clock an hour off with an outage past the cloud's late-point window, a
//! slow link draining a long backlog while live data stays current, the edge killed with
//! SIGKILL mid-drain, the edge's memory through a long black hole, writes truncated
//! mid-packet, a flapping link. Each test prints points accepted, stored in the cloud,
//! duplicated and lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{EDGE, Fleet, Pair, cloud_latest};

/// The metric the [`Sensors`] send.
const METRIC: &str = "t";
/// Readings per message of history (under rumqttc's 10 KiB packet limit).
const PER_MESSAGE: usize = 200;
/// How the tests' edges are linked: a dead link is noticed within seconds.
const LINK: &str = "ack_timeout = \"3s\"\nkeep_alive = \"5s\"";

/// A sensor-like reading at `ts` (two decimals, so it survives every encoding unchanged).
fn reading(ts: i64) -> f64 {
    let t = ts as f64 / 1_000.0;
    ((21.0 + 2.0 * (t / 900.0).sin() + 0.05 * (t * 7.3).sin()) * 100.0).round() / 100.0
}

/// Devices of the edge sending metric `t` at QoS 1, every point they had acknowledged kept:
/// what the edge accepted over all its lives (and ports).
struct Sensors {
    secrets: BTreeMap<String, String>,
    sent: BTreeMap<String, BTreeMap<i64, f64>>,
}

impl Sensors {
    /// Registers `n` devices `{prefix}-{i}` on the edge.
    async fn register(pair: &Pair, prefix: &str, n: usize) -> Self {
        let mut secrets = BTreeMap::new();
        for i in 0..n {
            let id = format!("{prefix}-{i}");
            let secret = pair.register_device(&id).await;
            secrets.insert(id, secret);
        }
        Self {
            secrets,
            sent: BTreeMap::new(),
        }
    }

    /// One connection per device to the edge as it runs now, each polled in a task of its own.
    fn connect(&self, pair: &Pair) -> Links {
        let (acked, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut clients = BTreeMap::new();
        let mut pollers = Vec::new();
        for (id, secret) in &self.secrets {
            let (client, mut el) = pair.device_client(id, secret, 64);
            let (count, failed) = (acked.clone(), errors.clone());
            pollers.push(tokio::spawn(async move {
                loop {
                    match el.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        // A device reconnects (and sends its unacknowledged publishes again).
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                    }
                }
            }));
            clients.insert(id.clone(), client);
        }
        Links {
            clients,
            pollers,
            acked,
            errors,
            published: 0,
        }
    }

    /// Publishes `messages` (a device and its readings) over `links`, `pace` apart.
    async fn send(
        &mut self,
        links: &mut Links,
        messages: impl IntoIterator<Item = (String, Vec<(i64, f64)>)>,
        pace: Duration,
    ) {
        for (id, readings) in messages {
            let body: Vec<Value> = readings
                .iter()
                .map(|(ts, v)| json!({"ts": ts, METRIC: v}))
                .collect();
            let client: &AsyncClient = &links.clients[&id];
            client
                .publish(
                    format!("devices/{id}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    Value::Array(body).to_string(),
                )
                .await
                .unwrap();
            links.published += 1;
            self.sent.entry(id).or_default().extend(readings);
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
    }

    /// Publishes `messages` over new [`Links`] to the edge as it runs now, `pace` apart, and
    /// waits until the edge acknowledged every one.
    async fn publish(
        &mut self,
        pair: &Pair,
        messages: impl IntoIterator<Item = (String, Vec<(i64, f64)>)>,
        pace: Duration,
    ) {
        let mut links = self.connect(pair);
        self.send(&mut links, messages, pace).await;
        links.close().await;
    }

    /// Every device sends one reading stamped now every 20 ms over `links` while `going`.
    async fn live_while(&mut self, links: &mut Links, mut going: impl FnMut() -> bool + 'static) {
        let ids: Vec<String> = self.secrets.keys().cloned().collect();
        let mut last = now_ms();
        let ticks = std::iter::from_fn(move || {
            going().then(|| {
                last = (last + 1).max(now_ms());
                last
            })
        });
        let messages = ticks.flat_map(move |ts| {
            ids.clone()
                .into_iter()
                .map(move |id| (id, vec![(ts, reading(ts))]))
        });
        let pace = Duration::from_millis(20) / self.secrets.len() as u32;
        self.send(links, messages, pace).await;
    }

    /// Every device sends one reading stamped now every 20 ms, for `secs` seconds, and the
    /// edge acknowledged every one.
    async fn live(&mut self, pair: &Pair, secs: u64) {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut links = self.connect(pair);
        self.live_while(&mut links, move || Instant::now() < until)
            .await;
        links.close().await;
    }

    /// Every device sends 1 Hz readings of `[from, to)` (past timestamps), many a message.
    async fn history(&mut self, pair: &Pair, from: i64, to: i64) {
        let ids: Vec<String> = self.secrets.keys().cloned().collect();
        let starts = (from..to).step_by(PER_MESSAGE * 1_000);
        let messages = starts.flat_map(move |start| {
            ids.clone().into_iter().map(move |id| {
                let end = (start + PER_MESSAGE as i64 * 1_000).min(to);
                let readings = (start..end).step_by(1_000).map(|t| (t, reading(t)));
                (id, readings.collect())
            })
        });
        self.publish(pair, messages, Duration::ZERO).await;
    }

    /// Points sent.
    fn accepted(&self) -> usize {
        self.sent.values().map(BTreeMap::len).sum()
    }

    /// Compares what the devices sent with what the cloud holds (every stored row, so a point
    /// stored twice counts as duplicated); prints and returns the counts.
    async fn compare(&self, pair: &Pair, test: &str) -> SensorCounts {
        let mut c = SensorCounts {
            accepted: self.accepted(),
            ..SensorCounts::default()
        };
        for (id, sent) in &self.sent {
            let rows = points_at(&pair.cloud_http, id, METRIC).await;
            let held: BTreeMap<i64, f64> = rows.iter().copied().collect();
            c.stored += held.len();
            c.duplicated += rows.len() - held.len();
            c.lost += sent.keys().filter(|t| !held.contains_key(t)).count();
            c.foreign += held.keys().filter(|t| !sent.contains_key(t)).count();
            for (ts, v) in &held {
                if let Some(s) = sent.get(ts) {
                    assert_eq!(s, v, "{id} at {ts}: another value in the cloud");
                }
            }
        }
        println!(
            "{test}: accepted {}, stored in the cloud {}, duplicated {}, lost {} ({} points the \
             devices never sent)",
            c.accepted, c.stored, c.duplicated, c.lost, c.foreign
        );
        c
    }
}

/// The [`Sensors`]' connections to the edge and the PUBACKs they got.
struct Links {
    clients: BTreeMap<String, AsyncClient>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    acked: Arc<AtomicU64>,
    /// Connection errors the devices saw.
    errors: Arc<AtomicU64>,
    published: u64,
}

impl Links {
    /// Waits until the edge acknowledged every message published, and disconnects.
    async fn close(self) {
        let (acked, published) = (self.acked, self.published);
        let all = eventually(60, || async {
            (acked.load(Ordering::Relaxed) >= published).then_some(())
        })
        .await;
        assert!(
            all.is_some(),
            "the edge did not acknowledge every message ({} device connection errors)",
            self.errors.load(Ordering::Relaxed)
        );
        for client in self.clients.values() {
            let _ = client.disconnect().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for p in self.pollers {
            p.abort();
        }
    }
}

/// What the cloud holds of the [`Sensors`]' points.
#[derive(Debug, Default, PartialEq, Eq)]
struct SensorCounts {
    accepted: usize,
    stored: usize,
    duplicated: usize,
    lost: usize,
    /// Points in the cloud that no device sent.
    foreign: usize,
}

impl SensorCounts {
    fn assert_exactly_once(&self) {
        assert_eq!(
            (self.stored, self.duplicated, self.lost, self.foreign),
            (self.accepted, 0, 0, 0),
            "{self:?}"
        );
    }
}

/// A counter of the cloud's `/metrics` (0 when absent).
async fn cloud_metric(pair: &Pair, sample: &str) -> u64 {
    let (_, _, text) = get_text(format!("http://{}/metrics", pair.cloud_http), bearer()).await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

/// Batches the cloud acknowledged without applying them (it had them already).
const DUPLICATE_BATCHES: &str = "sentio_edge_batches_total{result=\"duplicate\"}";

/// Runs `sentio` with `args` to its end; its output.
async fn sentio_command(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sentio"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "sentio {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_restored_from_an_older_backup_is_a_new_life_and_the_cloud_holds_each_point_once() {
    let _heavy = heavy().await;
    let mut pair = Pair::start(LINK).await;
    let mut sensors = Sensors::register(&pair, "dev", 2).await;
    sensors.live(&pair, 3).await;
    pair.drained(30).await;
    // The backup holds points not yet delivered: the restored edge sends them again, with
    // sequence numbers the cloud has applied in the old life.
    pair.proxy.set(Fault::Cut);
    sensors.live(&pair, 2).await;
    let pending_at_backup = pair.uplink().await["pending_points"].as_u64().unwrap();
    assert!(pending_at_backup > 0);
    let backup = pair.edge_dir().with_file_name("edge-backup.db");
    let said = sentio_command(vec![
        "backup".into(),
        "--data".into(),
        pair.edge_dir().display().to_string(),
        "--to".into(),
        backup.display().to_string(),
    ])
    .await;
    println!("restore: {}", said.trim());
    let at_backup = sensors.accepted();
    pair.proxy.set(Fault::Pass);
    // More points after the backup, all delivered: the restored edge will not hold them.
    sensors.live(&pair, 3).await;
    pair.drained(30).await;
    let old_life = pair.uplink().await;
    let before_restore = sensors.accepted();
    let duplicates_before = cloud_metric(&pair, DUPLICATE_BATCHES).await;

    let restored = pair.edge_dir().with_file_name("edge-restored");
    sentio_command(vec![
        "restore".into(),
        "--from".into(),
        backup.display().to_string(),
        "--data".into(),
        restored.display().to_string(),
    ])
    .await;
    pair.restart_edge_in(restored, &[]).await;
    let new_life = pair.uplink().await;
    assert_ne!(
        new_life["incarnation"], old_life["incarnation"],
        "a restored backup is a new incarnation"
    );
    sensors.live(&pair, 3).await;
    pair.drained(30).await;

    let mut on_edge = 0;
    for id in sensors.sent.keys() {
        on_edge += points_at(&pair.edge_http, id, METRIC).await.len();
    }
    let cloud = pair.cloud_edge().await;
    let lives: std::collections::BTreeSet<&str> = cloud["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["incarnation"].as_str())
        .collect();
    let duplicates = cloud_metric(&pair, DUPLICATE_BATCHES).await - duplicates_before;
    let after_restore = sensors.accepted() - before_restore;
    println!(
        "restore: {at_backup} points before the backup ({pending_at_backup} of them not yet \
         delivered), {} after it in the old life (delivered), {after_restore} in the restored \
         life; the restored edge holds {on_edge}; the cloud applied {} points over {} \
         incarnations and took {duplicates} batches of the new life for duplicates",
        before_restore - at_backup,
        cloud["points"],
        lives.len()
    );
    assert_eq!(
        on_edge,
        at_backup + after_restore,
        "the restored edge holds the backup's points and its own"
    );
    assert_eq!(lives.len(), 2, "{cloud}");
    // Applied: every point of both lives, and the restored one's undelivered points again.
    assert_eq!(
        cloud["points"].as_u64().unwrap() as usize,
        sensors.accepted() + pending_at_backup as usize,
        "{cloud}"
    );
    assert_eq!(
        duplicates, 0,
        "nothing the restored edge sent was discarded"
    );
    sensors
        .compare(&pair, "restore an older edge backup")
        .await
        .assert_exactly_once();
}

/// libfaketime (Debian's `faketime` package), if installed.
fn libfaketime() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|arch| arch.path().join("faketime/libfaketime.so.1"))
        .find(|lib| lib.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_an_hour_ahead_is_flagged_and_its_backlog_past_the_late_window_is_stored() {
    let Some(lib) = libfaketime() else {
        // scripts/services.sh installs it (Debian's `faketime`); CI runs that.
        println!("libfaketime is not installed: skipped");
        return;
    };
    let _heavy = heavy().await;
    // The cloud refuses points more than 5 s late from its own devices; the outage is longer.
    let mut pair = Pair::start_with_cloud(LINK, "[pipeline]\nlate_window = \"5s\"\n").await;
    // The edge an hour ahead, its timers on the real monotonic clock (`env` runs it in its
    // place, so a kill reaches it; the `faketime` command would run it as its child).
    let preload = format!("LD_PRELOAD={}", lib.display());
    let ahead = [
        "env",
        &preload,
        "FAKETIME=+1h",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
    ];
    pair.restart_edge_in(pair.edge_dir(), &ahead).await;
    // Devices that stamp their readings with their own (right) clock.
    let mut sensors = Sensors::register(&pair, "dev", 2).await;
    // A device that sends no timestamps: the edge stamps its readings with its own clock.
    let (clockless, acked) = pair.counted_device("clockless", 64).await;
    let flagged = eventually(20, || async {
        let e = pair.cloud_edge().await;
        (e["clock_ok"] == false).then_some(e)
    })
    .await
    .expect("the cloud did not flag the edge's clock");
    let skew = flagged["clock_skew_ms"].as_i64().unwrap();
    println!("clock: the cloud sees the edge's clock {skew} ms ahead");
    assert!((skew - 3_600_000).abs() < 10_000, "{flagged}");
    let alert = eventually(20, || async {
        let (_, body) = api_at(
            &pair.cloud_http,
            "GET",
            &format!("/api/v1/alerts?device=edge:{EDGE}"),
            None,
        )
        .await;
        body["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["explanation"]["detector"] == "edge_clock")
            .cloned()
    })
    .await
    .expect("no clock alert in the cloud");
    println!("clock: {}", alert["explanation"]["message"]);

    pair.proxy.set(Fault::Cut);
    for k in 0..20 {
        clockless
            .publish(
                "devices/clockless/telemetry",
                QoS::AtLeastOnce,
                false,
                json!({METRIC: k as f64}).to_string(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sensors.live(&pair, 10).await;
    let cut_for = pair.uplink().await;
    pair.proxy.set(Fault::Pass);
    assert!(
        eventually(10, || async {
            (acked.load(Ordering::Relaxed) >= 20).then_some(())
        })
        .await
        .is_some()
    );
    pair.drained(60).await;
    println!(
        "clock: the link cut with {} points pending, the oldest {} ms old by the edge's clock",
        cut_for["pending_points"], cut_for["oldest_pending_age_ms"]
    );
    sensors
        .compare(&pair, "edge clock +1 h, cut 11 s past a 5 s late window")
        .await
        .assert_exactly_once();
    // Nothing applied twice: the cloud applied as many points as the devices sent.
    assert_eq!(
        pair.cloud_edge().await["points"].as_u64().unwrap() as usize,
        sensors.accepted() + 20
    );
    // The points the edge stamped, an hour ahead of the cloud, are stored too (a read up to
    // now does not reach them: up to two hours ahead does).
    let ahead = |http: String| async move {
        let to = now_ms() + 2 * 3_600_000;
        let path = format!("/api/v1/devices/clockless/series/{METRIC}?from=0&to={to}");
        let (status, body) = api_at(&http, "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        body["points"].as_array().unwrap().clone()
    };
    let on_edge = ahead(pair.edge_http.clone()).await;
    let in_cloud = ahead(pair.cloud_http.clone()).await;
    println!(
        "clock: the edge stamped {} points (the first {} ms ahead of the cloud's clock), the cloud \
         holds {}",
        on_edge.len(),
        on_edge
            .first()
            .map_or(0, |p| p[0].as_i64().unwrap() - now_ms()),
        in_cloud.len()
    );
    assert_eq!(on_edge.len(), 20);
    assert_eq!(in_cloud, on_edge);
}

/// The fraction `q` quantile of `samples` (sorted here).
fn quantile(samples: &mut [i64], q: f64) -> i64 {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

/// Bytes per second each way through the slow link.
const SLOW_LINK: u64 = 40_000;
/// Backlog points per second the edge may send on it: about a third of the link (backlog
/// points cost about 7 bytes each at the socket), so a live part waits behind at most a
/// second's backlog message (about 0.35 s of the link). A rate above the link's fills the
/// socket's buffers: live parts wait behind the backlog and acknowledgements come later than
/// `ack_timeout`, taken for a dead link (BENCHMARKS.md, "Edge failure tests").
const SLOW_LINK_BACKLOG_RATE: u64 = 2_000;

/// Device-hours of 1 Hz history in the slow link's backlog: `SENTIO_SLOW_LINK_DEVICE_HOURS`
/// (default 12, about 43,000 points and 20 s of draining).
fn slow_hours() -> i64 {
    std::env::var("SENTIO_SLOW_LINK_DEVICE_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_drains_a_long_backlog_while_live_data_stays_current() {
    let _heavy = heavy().await;
    let device_hours = slow_hours();
    let pair = Pair::start(&format!("{LINK}\nbacklog_rate = {SLOW_LINK_BACKLOG_RATE}")).await;
    let mut history = Sensors::register(&pair, "hist", device_hours as usize).await;
    let mut probe = Sensors::register(&pair, "probe", 1).await;
    // Live devices publishing throughout, in a task of their own.
    let mut live = Sensors::register(&pair, "live", 2).await;
    let mut live_links = live.connect(&pair);
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let going = running.clone();
    let live_task = tokio::spawn(async move {
        live.live_while(&mut live_links, move || going.load(Ordering::Relaxed))
            .await;
        (live, live_links)
    });
    probe.live(&pair, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // An hour of each history device, sent to the edge while its link is down: the backlog.
    pair.proxy.set(Fault::Cut);
    let end = now_ms() - 60_000;
    history.history(&pair, end - 3_600_000, end).await;
    let during = pair.uplink().await;
    // (The first batches after the cut, before the edge noticed it, are in the live lane.)
    let backlog = during["backlog"]["pending_points"].as_u64().unwrap();
    let pending = during["pending_points"].as_u64().unwrap();
    assert!(pending as usize >= history.accepted(), "{during}");

    let bytes0 = pair.proxy.bytes_up();
    let restored = Instant::now();
    pair.proxy.set(Fault::Limit(SLOW_LINK));
    // Points committed until the edge is connected again are backlog too; from then on,
    // while the backlog drains: a probe reading stamped now, then how long until the cloud
    // answers it.
    let back = eventually(30, || async {
        (pair.uplink().await["connected"] == true).then_some(())
    });
    assert!(back.await.is_some(), "the edge did not reconnect");
    let mut probe_links = probe.connect(&pair);
    let mut latencies = Vec::new();
    let mut drained_in = None;
    while restored.elapsed() < Duration::from_secs(120) {
        let ts = now_ms();
        let reading = vec![("probe-0".to_string(), vec![(ts, reading(ts))])];
        probe.send(&mut probe_links, reading, Duration::ZERO).await;
        let path = format!("/api/v1/devices/probe-0/series/{METRIC}?from={ts}&limit=1");
        let seen = eventually(20, || async {
            let (status, body) = api_at(&pair.cloud_http, "GET", &path, None).await;
            (status == 200 && body["points"].as_array().is_some_and(|p| !p.is_empty())).then(now_ms)
        })
        .await;
        let Some(seen) = seen else {
            panic!(
                "a live reading did not reach the cloud in 20 s: {}",
                pair.uplink().await
            );
        };
        latencies.push(seen - ts);
        let u = pair.uplink().await;
        if u["backlog"]["pending_points"] == 0 {
            drained_in = Some(restored.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let drained_in = drained_in.expect("the backlog did not drain within 2 min");
    let bytes = pair.proxy.bytes_up() - bytes0;
    let (p50, p99) = (
        quantile(&mut latencies, 0.5),
        quantile(&mut latencies, 0.99),
    );
    let secs = drained_in.as_secs_f64();
    println!(
        "slow link ({SLOW_LINK} B/s each way, backlog_rate {SLOW_LINK_BACKLOG_RATE}): {pending} \
         points pending ({backlog} in the backlog lane, {device_hours} device-hours at 1 Hz) \
         drained in {secs:.1} s, {:.0} points/s, {bytes} bytes edge -> cloud ({:.0} B/s, {:.2} \
         B/point); live edge -> cloud queryable over {} probes: p50 {p50} ms, p99 {p99} ms",
        pending as f64 / secs,
        bytes as f64 / secs,
        bytes as f64 / pending as f64,
        latencies.len()
    );
    probe_links.close().await;
    pair.proxy.set(Fault::Pass);
    running.store(false, Ordering::Relaxed);
    let (live, live_links) = live_task.await.unwrap();
    live_links.close().await;
    pair.drained(60).await;
    for (sensors, what) in [(&live, "live"), (&history, "backlog"), (&probe, "probe")] {
        sensors
            .compare(&pair, &format!("slow link: the {what}"))
            .await
            .assert_exactly_once();
    }
    // Nothing applied twice.
    let applied = pair.cloud_edge().await["points"].as_u64().unwrap() as usize;
    assert_eq!(
        applied,
        live.accepted() + history.accepted() + probe.accepted()
    );
    assert!(p99 <= 1_000, "live p99 {p99} ms while the backlog drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_mid_drain_resumes_and_delivers_each_point_once() {
    let _heavy = heavy().await;
    let mut pair = Pair::start(&format!("{LINK}\nbacklog_rate = 300")).await;
    let mut sensors = Sensors::register(&pair, "dev", 4).await;
    sensors.live(&pair, 2).await;
    pair.proxy.set(Fault::Cut);
    sensors.live(&pair, 8).await;
    pair.proxy.set(Fault::Pass);
    let back = eventually(30, || async {
        let u = pair.uplink().await;
        (u["connected"] == true).then_some(u)
    })
    .await
    .expect("the edge did not reconnect");
    let first = back["backlog"]["pending_points"].as_u64().unwrap();
    // Half the backlog sent, then SIGKILL.
    let half = eventually(30, || async {
        let u = pair.uplink().await;
        let left = u["backlog"]["pending_points"].as_u64().unwrap();
        (left > 0 && left <= first / 2).then_some(u)
    })
    .await
    .expect("the backlog did not drain half-way");
    pair.kill_and_restart_edge().await;
    let after = pair.uplink().await;
    println!(
        "kill -9 mid-drain: {first} backlog points, killed with {} left (batches acknowledged \
         through {}); after the restart {} pending",
        half["backlog"]["pending_points"], half["backlog"]["acked_seq"], after["pending_points"]
    );
    assert_eq!(after["incarnation"], half["incarnation"], "the same life");
    pair.drained(60).await;
    sensors
        .compare(&pair, "edge kill -9 mid-drain")
        .await
        .assert_exactly_once();
    // Nothing applied twice: parts in flight at the kill, sent again, were only acknowledged.
    let applied = pair.cloud_edge().await["points"].as_u64().unwrap() as usize;
    let duplicates = cloud_metric(&pair, DUPLICATE_BATCHES).await;
    println!("kill -9 mid-drain: batches acknowledged again without being applied: {duplicates}");
    assert_eq!(applied, sensors.accepted());
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Bytes per second each way through the link restored after the long black hole.
const RESTORED_LINK: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_black_hole_keeps_the_edge_memory_bounded() {
    let _heavy = heavy().await;
    // A short acknowledgement timeout (3 s): the backlog of this black hole (about 25,000
    // points in 3,700 small batches) must drain though the cloud takes longer than that to
    // apply a whole window on a loaded box (BENCHMARKS.md, "Edge failure tests").
    let pair = Pair::start(LINK).await;
    let fleet = Fleet::start(&pair, 8).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.proxy.set(Fault::BlackHole);
    // Past the detection and the first reconnects: the edge's memory with a small backlog.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (rss0, pending0) = (
        rss_kib(pair.edge_pid()),
        pair.uplink().await["pending_points"].as_u64().unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (rss1, u) = (rss_kib(pair.edge_pid()), pair.uplink().await);
    let pending1 = u["pending_points"].as_u64().unwrap();
    println!(
        "black hole 38 s, 8 devices: edge RSS {rss0} KiB with {pending0} points pending, {rss1} \
         KiB with {pending1} pending 30 s later ({:+} KiB for {} more points); {} link losses",
        rss1 as i64 - rss0 as i64,
        pending1 - pending0,
        u["link_losses"]
    );
    assert!(pending1 > pending0 + 10_000, "{u}");
    assert!(
        rss1 <= rss0 + 32 * 1024,
        "the edge's memory grew with the backlog: {rss0} -> {rss1} KiB"
    );
    let (sent0, acked0, timeouts0) = (
        u["points_sent"].as_u64().unwrap(),
        u["points_acked"].as_u64().unwrap(),
        u["ack_timeouts"].as_u64().unwrap(),
    );
    // The link comes back slow: the backlog's first window (about 40 KB) takes longer than
    // `ack_timeout` to go through, though every message in it is acknowledged well within it
    // (as when a loaded cloud applies a deep window slowly).
    let restored = Instant::now();
    pair.proxy.set(Fault::Limit(RESTORED_LINK));
    let report = fleet.stop().await;
    pair.drained(60).await;
    let drained_in = restored.elapsed().as_secs_f64();
    pair.proxy.set(Fault::Pass);
    let u = pair.uplink().await;
    let sent = u["points_sent"].as_u64().unwrap() - sent0;
    let acked = u["points_acked"].as_u64().unwrap() - acked0;
    let timeouts = u["ack_timeouts"].as_u64().unwrap() - timeouts0;
    println!(
        "black hole 38 s, ack_timeout 3 s, then {RESTORED_LINK} B/s: drained in \
         {drained_in:.1} s; {sent} points sent for {acked} acknowledged ({:.2} sent per point), \
         {timeouts} acknowledgement timeouts",
        sent as f64 / acked.max(1) as f64
    );
    assert_eq!(
        timeouts, 0,
        "a slow link that acknowledges taken for a dead one"
    );
    pair.compare("black hole 38 s", &report)
        .await
        .assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_truncated_mid_packet_lose_and_double_nothing() {
    let _heavy = heavy().await;
    let pair = Pair::start(LINK).await;
    // Devices publishing throughout, in a task of their own.
    let mut sensors = Sensors::register(&pair, "dev", 4).await;
    let mut links = sensors.connect(&pair);
    let errors = links.errors.clone();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let going = running.clone();
    let devices = tokio::spawn(async move {
        sensors
            .live_while(&mut links, move || going.load(Ordering::Relaxed))
            .await;
        (sensors, links)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Each time, the next write (a PUBLISH of points going up, or an acknowledgement coming
    // down) cut after a few bytes: inside the fixed header, the topic, the payload.
    for keep in [1, 3, 20, 200, 2_000] {
        let connects = pair.uplink().await["connects"].as_u64().unwrap();
        pair.proxy.set(Fault::Truncate(keep));
        let back = eventually(20, || async {
            let u = pair.uplink().await;
            (u["connected"] == true && u["connects"].as_u64().unwrap() > connects).then_some(())
        })
        .await;
        assert!(
            back.is_some(),
            "no reconnect after a truncation at {keep} bytes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, Ordering::Relaxed);
    let (sensors, links) = devices.await.unwrap();
    // (Before they disconnect, which their pollers see as errors too.)
    let device_errors = errors.load(Ordering::Relaxed);
    links.close().await;
    pair.drained(60).await;
    let u = pair.uplink().await;
    println!(
        "truncated writes: {} connects, {} link losses; {device_errors} device connection errors \
         to the edge meanwhile",
        u["connects"], u["link_losses"]
    );
    sensors
        .compare(&pair, "5 writes truncated mid-packet")
        .await
        .assert_exactly_once();
    let applied = pair.cloud_edge().await["points"].as_u64().unwrap() as usize;
    assert_eq!(applied, sensors.accepted(), "nothing applied twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_loses_and_doubles_nothing() {
    let _heavy = heavy().await;
    let pair = Pair::start(LINK).await;
    let fleet = Fleet::start(&pair, 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.proxy.set(Fault::Flap(Duration::from_millis(1_500)));
    tokio::time::sleep(Duration::from_secs(15)).await;
    pair.proxy.set(Fault::Pass);
    let u = pair.uplink().await;
    println!(
        "flapping link (1.5 s cut, 1.5 s pass, 15 s): {} connects, {} link losses",
        u["connects"], u["link_losses"]
    );
    assert!(u["connects"].as_u64().unwrap() >= 3, "{u}");
    let live = now_ms();
    assert!(
        eventually(15, || async {
            (cloud_latest(&pair).await > live).then_some(())
        })
        .await
        .is_some(),
        "live data did not flow again"
    );
    let report = fleet.stop().await;
    pair.drained(60).await;
    pair.compare("flapping link 15 s", &report)
        .await
        .assert_exactly_once();
}
