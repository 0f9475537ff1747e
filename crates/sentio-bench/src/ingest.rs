//! `sentio-bench ingest`: the whole pipeline through the front door. Many MQTT publishers
//! (rumqttc, one connection per registered device, QoS 1) → embedded broker → durable group
//! commit → detectors, then read back through `POST /api/v1/query`.
//!
//! Two phases on one node:
//! 1. **throughput**: every device publishes as fast as its in-flight window allows; sustained
//!    points/s = points acknowledged / time until the last PUBACK;
//! 2. **latency** at a fixed offered rate (`--rate`): besides the load, a marker device publishes
//!    a uniquely stamped point every `1/--markers` s and a poller asks the HTTP API for it until
//!    it is there (publish → queryable); the load's publish → PUBACK times are reported too (a
//!    PUBACK is sent only after the commit, so it is queryable by then).
//!
//! At the end every acknowledged reading is counted back through `/api/v1/query`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::demo_eval::{call, http_agent};
use anyhow::{Context, bail};
use clap::Args;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use sentio::config::Config;
use sentio::node::Node;
use serde_json::{Value, json};

/// Arguments of `sentio-bench ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Publishing devices, one MQTT connection each.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Metrics per reading.
    #[arg(long, default_value_t = 10)]
    metrics: usize,
    /// Readings per MQTT message (a device uploading a small batch); points per message =
    /// readings x metrics.
    #[arg(long, default_value_t = 10)]
    readings: usize,
    /// Seconds of the flat-out throughput phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Points per second offered in the latency phase.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10.0)]
    latency_seconds: f64,
    /// Marker points per second in the latency phase (each one polled until queryable).
    #[arg(long, default_value_t = 20)]
    markers: u64,
    /// In-flight QoS 1 messages per connection.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// Data directory of the node (default: a new temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rules loaded before the load starts: rule `r` selects device `r % devices` and reads
    /// `m0` (so `rules / devices` rules judge each of its `m0` points); compare with 0.
    #[arg(long, default_value_t = 0)]
    rules: usize,
}

/// Rule `r` of `--rules`, on device `device`: four shapes, as `sentio-bench rules` loads.
fn bench_rule(r: usize, device: &str) -> Value {
    let t = 23.0 + (r % 3) as f64;
    let condition = match r % 4 {
        0 => format!("m0 > {t:.1}"),
        1 => format!(r#"avg("m0", "5m") > {t:.1}"#),
        2 => format!(r#"m0 > {t:.1} && max("m0", "1m") > {:.1}"#, t + 0.5),
        _ => format!(r#"count("m0", "1m") > 50 && m0 > {t:.1}"#),
    };
    // A zero `for` is refused as a duration: it is given as `for_ms`.
    json!({"id": format!("bench-{r}"), "name": format!("bench rule {r}"), "condition": condition,
           "for_ms": if r.is_multiple_of(4) { 60_000 } else { 0 },
           "selector": {"devices": [device], "metrics": ["m0"]}})
}

const MARKER: &str = "bench-marker";

/// Shared counters of the publishers.
#[derive(Default)]
pub(crate) struct Counters {
    /// Readings whose message was acknowledged.
    pub(crate) acked_readings: AtomicU64,
    /// Messages acknowledged.
    pub(crate) acked_messages: AtomicU64,
}

/// One publishing device: its client, and the PUBACK latencies its event loop saw (µs).
pub(crate) struct Publisher {
    id: String,
    pub(crate) client: AsyncClient,
    latencies: Arc<Mutex<Vec<u32>>>,
    pub(crate) loop_task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Messages published and not acknowledged yet.
    pending: Arc<AtomicU64>,
}

/// Registers a device through the API; returns its secret.
pub(crate) fn register(
    agent: &ureq::Agent,
    base: &str,
    auth: &str,
    id: &str,
    role: &str,
) -> anyhow::Result<String> {
    let (st, b) = call(
        agent,
        "POST",
        &format!("{base}/api/v1/devices"),
        auth,
        Some(&json!({"id": id, "kind": "bench", "labels": {"bench": role}})),
    )?;
    if st != 201 {
        bail!("registering {id}: {st} {b}");
    }
    Ok(b["secret"].as_str().unwrap_or_default().to_string())
}

/// Drives one connection: records when each QoS 1 publish left and when its PUBACK came.
async fn drive(
    mut el: EventLoop,
    latencies: Arc<Mutex<Vec<u32>>>,
    counters: Arc<Counters>,
    pending: Arc<AtomicU64>,
    readings: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    loop {
        let ev = match el.poll().await {
            Ok(ev) => ev,
            // The benchmark disconnects once everything is acknowledged.
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(e) => return Err(e).context("MQTT connection"),
        };
        match ev {
            Event::Outgoing(Outgoing::Disconnect) => break,
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                sent.insert(pkid, Instant::now());
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(t) = sent.remove(&ack.pkid) {
                    let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    latencies.lock().unwrap().push(us);
                }
                counters.acked_messages.fetch_add(1, Ordering::Relaxed);
                counters
                    .acked_readings
                    .fetch_add(readings, Ordering::Relaxed);
                pending.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    Ok(())
}

pub(crate) async fn connect(
    mqtt: SocketAddr,
    id: &str,
    secret: &str,
    inflight: u16,
    counters: Arc<Counters>,
    readings: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Publisher> {
    let mut o = MqttOptions::new(id, mqtt.ip().to_string(), mqtt.port());
    o.set_credentials(id, secret);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(inflight);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 64);
    // Wait for the CONNACK before publishing.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll())
            .await
            .context("CONNACK within 10 s")?
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => bail!("{id} could not connect: {e}"),
        }
    }
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let pending = Arc::new(AtomicU64::new(0));
    let loop_task = tokio::spawn(drive(
        el,
        latencies.clone(),
        counters,
        pending.clone(),
        readings,
        stop,
    ));
    Ok(Publisher {
        id: id.to_string(),
        client,
        latencies,
        loop_task,
        pending,
    })
}

/// Milliseconds between two readings of a device (a 1 Hz sensor).
const READING_MS: i64 = 1000;

/// A message of `readings` readings of `metrics` metrics, the first stamped `ts`, then one
/// per [`READING_MS`]: a slow wave per metric plus a little noise, rounded to 0.01 like a sensor.
fn payload(ts: i64, readings: usize, metrics: usize) -> Vec<u8> {
    let mut items = Vec::with_capacity(readings);
    for r in 0..readings {
        let t = ts + r as i64 * READING_MS;
        let mut o = serde_json::Map::with_capacity(metrics + 1);
        o.insert("ts".into(), json!(t));
        for m in 0..metrics {
            let phase = (t / READING_MS) as f64 / 600.0 + m as f64;
            let noise = ((t as u64 ^ m as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as f64
                / 1024.0
                - 0.5;
            let x = 20.0 + 5.0 * phase.sin() + 0.2 * noise;
            o.insert(format!("m{m}"), json!((x * 100.0).round() / 100.0));
        }
        items.push(Value::Object(o));
    }
    serde_json::to_vec(&items).expect("JSON")
}

pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Publishes from every device until `deadline`; with `interval`, one message per device per
/// interval (paced), else as fast as the in-flight window allows. Each device stamps its
/// readings from its own clock `next_ts` on (1 ms apart, so no two readings share a timestamp).
pub(crate) async fn publish_phase(
    pubs: &[Publisher],
    next_ts: &[Arc<AtomicU64>],
    (readings, metrics): (usize, usize),
    deadline: Instant,
    interval: Option<Duration>,
) -> u64 {
    let mut tasks = Vec::new();
    for (i, p) in pubs.iter().enumerate() {
        let client = p.client.clone();
        let topic = format!("devices/{}/telemetry", p.id);
        let pending = p.pending.clone();
        let next = next_ts[i].clone();
        // Spread the paced devices over the interval.
        let offset = interval.map(|iv| iv.mul_f64(i as f64 / pubs.len() as f64));
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut tick = interval.map(|iv| {
                let mut t = tokio::time::interval_at(
                    tokio::time::Instant::now() + offset.unwrap_or_default(),
                    iv,
                );
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while Instant::now() < deadline {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let ts = next.fetch_add(readings as u64 * READING_MS as u64, Ordering::Relaxed);
                let body = payload(ts as i64, readings, metrics);
                pending.fetch_add(1, Ordering::Relaxed);
                if client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, body)
                    .await
                    .is_err()
                {
                    pending.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                sent += 1;
            }
            sent
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap_or(0);
    }
    sent
}

/// Waits until every published message of every device is acknowledged.
pub(crate) async fn drain(pubs: &[Publisher]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while pubs.iter().any(|p| p.pending.load(Ordering::Relaxed) > 0) {
        if Instant::now() > deadline {
            bail!("messages still unacknowledged after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub(crate) fn take_latencies(pubs: &[Publisher]) -> Vec<u32> {
    let mut all = Vec::new();
    for p in pubs {
        all.append(&mut p.latencies.lock().unwrap());
    }
    all.sort_unstable();
    all
}

/// The marker series: one uniquely stamped point every `every`, each polled through the API
/// until it is there. Returns publish → queryable times (µs), sorted.
async fn markers(
    node: &Node,
    secret: &str,
    every: Duration,
    until: Instant,
) -> anyhow::Result<Vec<u32>> {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let p = connect(
        node.mqtt_addr,
        MARKER,
        secret,
        10,
        counters,
        1,
        stop.clone(),
    )
    .await?;
    let sent: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let first_ts = sentio_core::time::now_ms() - 60_000;
    let done = Arc::new(AtomicBool::new(false));
    // The poller: asks for every marker at or after the oldest one not seen yet.
    let poller = {
        let (sent, done) = (sent.clone(), done.clone());
        let base = format!("http://{}", node.http_addr);
        let auth = format!("Bearer {}", node.admin_token);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u32>> {
            let agent = http_agent();
            let mut seen = Vec::new();
            let mut from = first_ts;
            loop {
                let finished = done.load(Ordering::Relaxed);
                let body = json!({"devices": {"ids": [MARKER]}, "metrics": ["mark"],
                                  "from": from, "to": first_ts + 10_000_000});
                let (st, r) = call(
                    &agent,
                    "POST",
                    &format!("{base}/api/v1/query"),
                    &auth,
                    Some(&body),
                )?;
                let now = Instant::now();
                if st != 200 {
                    bail!("marker query: {st} {r}");
                }
                let points = r["series"][0]["points"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut sent = sent.lock().unwrap();
                for p in points {
                    let ts = p[0].as_i64().unwrap_or_default();
                    if let Some(t) = sent.remove(&ts) {
                        seen.push(now.duration_since(t).as_micros() as u32);
                    }
                    from = from.max(ts + 1);
                }
                if finished && sent.is_empty() {
                    break;
                }
                drop(sent);
                std::thread::sleep(Duration::from_millis(1));
            }
            seen.sort_unstable();
            Ok(seen)
        })
    };
    let mut k = 0i64;
    let mut tick = tokio::time::interval(every);
    while Instant::now() < until {
        tick.tick().await;
        let ts = first_ts + k;
        k += 1;
        sent.lock().unwrap().insert(ts, Instant::now());
        p.pending.fetch_add(1, Ordering::Relaxed);
        p.client
            .publish(
                "devices/bench-marker/telemetry",
                QoS::AtLeastOnce,
                false,
                json!({"ts": ts, "mark": k}).to_string(),
            )
            .await?;
    }
    drain(std::slice::from_ref(&p)).await?;
    done.store(true, Ordering::Relaxed);
    let seen = poller.await??;
    stop.store(true, Ordering::Relaxed);
    let _ = p.client.disconnect().await;
    let _ = p.loop_task.await;
    Ok(seen)
}

/// Runs the benchmark and prints the figures.
pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.devices >= 1 && args.metrics >= 1 && args.readings >= 1,
        "--devices, --metrics and --readings must be at least 1"
    );
    // With SENTIO_LOG (e.g. `sentio_pipeline::writer=debug,sentio_store::append=debug`), the
    // node's logs go to stderr: the writer's and the store's per-commit timings.
    let logging = std::env::var_os("SENTIO_LOG").is_some();
    if logging {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SENTIO_LOG"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let temp = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "sentio-bench-ingest-{}-{}",
            std::process::id(),
            sentio_core::time::now_ms()
        ))
    });
    let mut config = Config::loopback(&dir);
    config.http.admin_token = Some(format!(
        "bench-ingest-admin-token-{}",
        sentio_core::time::now_ms()
    ));
    let node = Node::start(config).await?;
    let result = measure(&node, &args, logging).await;
    node.shutdown().await;
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(node: &Node, args: &IngestArgs, logging: bool) -> anyhow::Result<()> {
    let base = format!("http://{}", node.http_addr);
    let auth = format!("Bearer {}", node.admin_token);
    let ids: Vec<String> = (0..args.devices).map(|i| format!("bench-{i:05}")).collect();
    let secrets = {
        let (base, auth, ids) = (base.clone(), auth.clone(), ids.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
            let agent = http_agent();
            let mut out = ids
                .iter()
                .map(|id| register(&agent, &base, &auth, id, "load"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.push(register(&agent, &base, &auth, MARKER, "marker")?);
            Ok(out)
        })
        .await??
    };
    if args.rules > 0 {
        let (base, auth, ids, n) = (base.clone(), auth.clone(), ids.clone(), args.rules);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let agent = http_agent();
            for r in 0..n {
                let body = bench_rule(r, &ids[r % ids.len()]);
                let (st, b) = call(
                    &agent,
                    "POST",
                    &format!("{base}/api/v1/rules"),
                    &auth,
                    Some(&body),
                )?;
                if st != 201 {
                    bail!("creating rule {r}: {st} {b}");
                }
            }
            Ok(())
        })
        .await??;
        println!(
            "{} rules loaded ({:.0} judging each m0 point)",
            args.rules,
            args.rules as f64 / args.devices as f64
        );
    }
    let per_msg = (args.readings * args.metrics) as u64;
    println!(
        "ingest bench: {} devices over MQTT (QoS 1, rumqttc, {} in flight each), {} readings x {} metrics = {} points per message, node with storage and detection on",
        args.devices, args.inflight, args.readings, args.metrics, per_msg
    );
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut pubs = Vec::with_capacity(args.devices);
    for (id, secret) in ids.iter().zip(&secrets) {
        pubs.push(
            connect(
                node.mqtt_addr,
                id,
                secret,
                args.inflight,
                counters.clone(),
                args.readings as u64,
                stop.clone(),
            )
            .await?,
        );
    }
    // Each device's readings are stamped from six days ago on, 1 s apart (a device uploading
    // its backlog): inside the 7-day late-point window, never in the future, never repeated.
    let start_ts = (sentio_core::time::now_ms() - 6 * 86_400_000) as u64;
    let next_ts: Vec<Arc<AtomicU64>> = (0..args.devices)
        .map(|_| Arc::new(AtomicU64::new(start_ts)))
        .collect();
    let metrics_before = scrape(&base, &auth).await?;

    // Phase 1: flat out.
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(args.seconds);
    let sent = publish_phase(
        &pubs,
        &next_ts,
        (args.readings, args.metrics),
        deadline,
        None,
    )
    .await;
    drain(&pubs).await?;
    let elapsed = t.elapsed().as_secs_f64();
    let acked = counters.acked_messages.load(Ordering::Relaxed);
    let throughput = (acked * per_msg) as f64 / elapsed;
    let lat1 = take_latencies(&pubs);
    let metrics_after = scrape(&base, &auth).await?;
    println!(
        "throughput phase: {acked} of {sent} messages acknowledged ({} points) in {elapsed:.2} s: {:.0} points/s stored and acknowledged ({:.0} msg/s); publish -> PUBACK p50 {:.1} ms, p99 {:.1} ms",
        acked * per_msg,
        throughput,
        acked as f64 / elapsed,
        percentile(&lat1, 0.5),
        percentile(&lat1, 0.99),
    );
    let stored = metrics_after.0 - metrics_before.0;
    let scored = metrics_after.1 - metrics_before.1;
    println!(
        "  node counters when the last PUBACK came: {stored} points committed, {scored} scored by the detectors ({:.0} %)",
        100.0 * scored as f64 / stored.max(1) as f64
    );
    // The detectors work behind the commit (bounded channel): the whole pipeline's rate counts
    // until they have scored every committed point too.
    let scored_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (st, sc, alerts) = scrape(&base, &auth).await?;
        if sc >= st || Instant::now() > scored_deadline {
            let all = t.elapsed().as_secs_f64();
            println!(
                "  every committed point scored after {all:.2} s: {:.0} points/s through store + AI ({} alerts opened)",
                (sc - metrics_before.1) as f64 / all,
                alerts - metrics_before.2
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Phase 2: paced at --rate, with markers polled until queryable.
    if logging {
        eprintln!("== latency phase starts");
    }
    let msgs_per_s = args.rate as f64 / per_msg as f64;
    let interval = Duration::from_secs_f64(args.devices as f64 / msgs_per_s.max(1e-9));
    let t = Instant::now();
    let until = t + Duration::from_secs_f64(args.latency_seconds);
    let acked_before = counters.acked_messages.load(Ordering::Relaxed);
    let every = Duration::from_secs_f64(1.0 / args.markers.max(1) as f64);
    let marker_secret = secrets.last().cloned().unwrap_or_default();
    let (sent, marks) = tokio::join!(
        publish_phase(
            &pubs,
            &next_ts,
            (args.readings, args.metrics),
            until,
            Some(interval)
        ),
        markers(node, &marker_secret, every, until)
    );
    let marks = marks?;
    drain(&pubs).await?;
    if logging {
        eprintln!("== latency phase ends");
    }
    let elapsed = t.elapsed().as_secs_f64();
    let acked2 = counters.acked_messages.load(Ordering::Relaxed) - acked_before;
    let lat2 = take_latencies(&pubs);
    println!(
        "latency phase: {:.0} points/s offered, {:.0} points/s acknowledged ({acked2} of {sent} messages in {elapsed:.2} s)",
        args.rate,
        (acked2 * per_msg) as f64 / elapsed
    );
    println!(
        "  publish -> queryable (marker points polled through POST /api/v1/query, {} markers): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        marks.len(),
        percentile(&marks, 0.5),
        percentile(&marks, 0.99),
        percentile(&marks, 1.0)
    );
    println!(
        "  publish -> PUBACK (durable commit) of the load: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat2, 0.5),
        percentile(&lat2, 0.99),
        percentile(&lat2, 1.0)
    );

    // Every acknowledged reading is queryable: count metric m0 of every device in one query.
    let acked_readings = counters.acked_readings.load(Ordering::Relaxed);
    let total: f64 = {
        let (base, auth, ids) = (base.clone(), auth.clone(), ids.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            let agent = http_agent();
            let mut total = 0.0;
            // At most 100 series per query.
            for group in ids.chunks(100) {
                let body = json!({"devices": {"ids": group}, "metrics": ["m0"],
                                  "from": start_ts as i64, "step": "1d", "agg": "count"});
                let (st, r) = call(
                    &agent,
                    "POST",
                    &format!("{base}/api/v1/query"),
                    &auth,
                    Some(&body),
                )?;
                if st != 200 {
                    bail!("counting back: {st} {r}");
                }
                total += r["series"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|one| one["points"].as_array().cloned().unwrap_or_default())
                    .map(|p| p[1].as_f64().unwrap_or_default())
                    .sum::<f64>();
            }
            Ok(total)
        })
        .await??
    };
    println!(
        "check: {acked_readings} readings acknowledged, {total:.0} readings of m0 counted back through POST /api/v1/query: {}",
        if total as u64 == acked_readings {
            "all there"
        } else {
            "MISMATCH"
        }
    );
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = p.client.disconnect().await;
        let _ = p.loop_task.await;
    }
    if total as u64 != acked_readings {
        bail!("acknowledged readings missing from the store");
    }
    Ok(())
}

/// Points stored, points scored and alerts opened, from `/metrics`.
async fn scrape(base: &str, auth: &str) -> anyhow::Result<(u64, u64, u64)> {
    let (url, auth) = (format!("{base}/metrics"), auth.to_string());
    let text = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut resp = http_agent()
            .get(&url)
            .header("Authorization", &auth)
            .call()?;
        Ok(resp.body_mut().read_to_string()?)
    })
    .await??;
    let read = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_default() as u64
    };
    Ok((
        read("sentio_points_stored_total"),
        read("sentio_points_scored_total"),
        read("sentio_alerts_opened_total"),
    ))
}
