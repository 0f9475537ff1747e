//! How well the live engine catches the demo fleet's injected faults.
//!
//! A node is started in a scratch directory; the simulator's fleet generates `minutes` of
//! history ending now (1 reading per device per second), which is posted through the real HTTP
//! ingest with each device's own credentials and timestamps; then the alerts the node raised are
//! compared with the simulator's ground truth. Runs in seconds, not in real time.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use sentio_core::time::now_ms;
use sentio_sim::{Fault, Fleet, FleetSpec};
use serde_json::{Value, json};

use sentio::config::{Config, SpanOrNone};
use sentio::node::Node;

/// An alert may open this long after its fault's end and still count as catching it.
pub const GRACE_MS: i64 = 60_000;

/// The outcome.
#[derive(Debug, Clone)]
pub struct DemoEval {
    /// Start of the simulated history (ms).
    pub start_ms: i64,
    /// Simulated hours.
    pub hours: f64,
    /// Points ingested.
    pub points: u64,
    /// Ingest rate through HTTP (points/s), including detection.
    pub points_per_s: f64,
    /// Faults injected (one per device and metric).
    pub injected: usize,
    /// Faults with an alert on the same device and metric during the fault (or `GRACE_MS` after).
    pub found: usize,
    /// Seconds from fault start to the alert, for the faults found.
    pub delays_s: Vec<f64>,
    /// The faults found, each with its delay in seconds.
    pub found_faults: Vec<(Fault, f64)>,
    /// Faults without an alert.
    pub missed: Vec<Fault>,
    /// Alerts on a device that had a fault on another metric at that time.
    pub related: usize,
    /// Alerts matching no fault.
    pub false_alerts: usize,
    /// The false alerts, as (device, metric, alert kind, opened_ms).
    pub false_list: Vec<(String, String, String, i64)>,
    /// Alerts opened, by kind (`anomaly`, `relation`, `peer`, `silence`, `limit`, `predictive`).
    pub by_kind: std::collections::BTreeMap<String, usize>,
    /// Per fault on a metric with a declared upper limit: how it went for time-to-threshold.
    pub predictions: Vec<PredictionOutcome>,
}

/// Time-to-threshold on one fault of a metric with a declared limit.
#[derive(Debug, Clone)]
pub struct PredictionOutcome {
    /// The fault.
    pub fault: Fault,
    /// When the first predictive alert opened during the fault (ms).
    pub predicted_ms: Option<i64>,
    /// The time that alert forecast for the crossing (ms).
    pub forecast_crossing_ms: Option<i64>,
    /// When the limit alert opened, i.e. the limit was actually crossed (ms).
    pub crossed_ms: Option<i64>,
}

impl PredictionOutcome {
    /// Seconds between the prediction and the actual crossing (positive: predicted in time).
    pub fn lead_s(&self) -> Option<f64> {
        Some((self.crossed_ms? - self.predicted_ms?) as f64 / 1000.0)
    }
}

/// The first alert of `kind` on `device`/`metric` opened within `[from, to]`.
/// Whether alert `a` is about `metric`: its subject, or, for a device alert (subject `*`),
/// one of the contributors its explanation names.
fn names_metric(a: &Value, metric: &str) -> bool {
    a["metric"] == metric
        || (a["metric"] == "*"
            && a["explanation"]["kind"] == "device"
            && a["explanation"]["contributors"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["metric"] == metric)))
}

fn first_alert<'a>(
    alerts: &'a [Value],
    device: &str,
    metric: &str,
    kind: &str,
    from: i64,
    to: i64,
) -> Option<(i64, &'a Value)> {
    alerts
        .iter()
        .filter_map(|a| {
            let opened = a["opened_ms"].as_i64()?;
            (a["device"] == device
                && a["metric"] == metric
                && a["explanation"]["kind"] == kind
                && (from..=to).contains(&opened))
            .then_some((opened, a))
        })
        .min_by_key(|(t, _)| *t)
}

/// An HTTP client that returns error statuses as responses.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// One JSON request to the node's API: status and body (`null` when the body is not JSON).
pub fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())?;
    let mut resp = agent.run(req).with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Runs the evaluation over `minutes` of simulated time for the fleet `spec`, ending at `end_ms`
/// (default: now). The fleet follows the time of day, so a fixed end gives a reproducible run.
pub async fn run(spec: FleetSpec, minutes: u64, end_ms: Option<i64>) -> anyhow::Result<DemoEval> {
    run_with(spec, minutes, end_ms, true).await
}

/// [`run`], with the device model on or off (to measure it against the watches without it).
pub async fn run_with(
    spec: FleetSpec,
    minutes: u64,
    end_ms: Option<i64>,
    device_model: bool,
) -> anyhow::Result<DemoEval> {
    let dir = std::env::temp_dir().join(format!(
        "sentio-demo-eval-{}-{}",
        std::process::id(),
        now_ms()
    ));
    let mut config = Config::loopback(&dir);
    config.ai.limits = Config::demo_limits();
    config.ai.device_model.enabled = device_model;
    // A fixed `--end` may lie further back than the late-point window: the replay is history.
    config.pipeline.late_window = SpanOrNone(None);
    let node = Node::start(config).await?;
    let result = evaluate(&node, spec, minutes, end_ms).await;
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn evaluate(
    node: &Node,
    spec: FleetSpec,
    minutes: u64,
    end_ms: Option<i64>,
) -> anyhow::Result<DemoEval> {
    let base = format!("http://{}", node.http_addr);
    let admin = format!("Bearer {}", node.admin_token);
    let span_ms = minutes as i64 * 60_000;
    let end = end_ms.unwrap_or_else(|| now_ms() - 1_000);
    let start = end - span_ms;
    let base2 = base.clone();
    let (points, elapsed, truth) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let agent = http_agent();
        let mut creds = HashMap::new();
        for d in spec.devices() {
            let (st, body) = call(
                &agent,
                "POST",
                &format!("{base2}/api/v1/devices"),
                &admin,
                Some(&json!({"id": d.id, "name": d.name, "kind": d.kind, "labels": d.labels})),
            )?;
            if st != 201 {
                bail!("registering {}: {st} {body}", d.id);
            }
            let secret = body["secret"].as_str().unwrap_or_default().to_string();
            use base64::Engine;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", d.id));
            creds.insert(d.id.clone(), format!("Basic {basic}"));
        }
        let mut fleet = Fleet::new(spec, start);
        let mut pending: HashMap<String, Vec<Value>> = HashMap::new();
        let mut points = 0u64;
        let began = Instant::now();
        let flush = |pending: &mut HashMap<String, Vec<Value>>| -> anyhow::Result<()> {
            for (device, items) in pending.iter_mut() {
                if items.is_empty() {
                    continue;
                }
                let (st, body) = call(
                    &agent,
                    "POST",
                    &format!("{base2}/api/v1/devices/{device}/telemetry"),
                    &creds[device],
                    Some(&Value::Array(std::mem::take(items))),
                )?;
                if st != 200 {
                    bail!("posting telemetry of {device}: {st} {body}");
                }
            }
            Ok(())
        };
        let mut ts = start;
        while ts <= end {
            for r in fleet.step(ts) {
                points += r.values.len() as u64;
                pending
                    .entry(r.device.clone())
                    .or_default()
                    .push(r.to_json());
            }
            if (ts - start) % 300_000 == 0 {
                flush(&mut pending)?;
            }
            ts += 1_000;
        }
        flush(&mut pending)?;
        let truth: Vec<Fault> = fleet
            .ground_truth()
            .into_iter()
            .filter(|f| f.start_ms <= end)
            .collect();
        Ok((points, began.elapsed().as_secs_f64(), truth))
    })
    .await??;

    // Wait until the detectors have scored every point that was stored, then read the alerts.
    let base3 = base.clone();
    let admin = format!("Bearer {}", node.admin_token);
    let alerts = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Value>> {
        let agent = http_agent();
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let mut resp = agent
                .get(&format!("{base3}/metrics"))
                .header("Authorization", &admin)
                .call()?;
            let text = resp.body_mut().read_to_string()?;
            let scored = text
                .lines()
                .find_map(|l| l.strip_prefix("sentio_points_scored_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if scored >= points {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {scored} of {points} points were scored within 120 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (st, body) = call(
            &agent,
            "GET",
            &format!("{base3}/api/v1/alerts?limit=10000"),
            &admin,
            None,
        )?;
        if st != 200 {
            bail!("listing alerts: {st} {body}");
        }
        Ok(body["alerts"].as_array().cloned().unwrap_or_default())
    })
    .await??;

    let mut found = 0;
    let mut delays_s = Vec::new();
    let mut found_faults = Vec::new();
    let mut missed = Vec::new();
    for f in &truth {
        let hit = alerts
            .iter()
            .filter_map(|a| {
                let opened = a["opened_ms"].as_i64()?;
                (a["device"] == f.device.as_str()
                    && names_metric(a, &f.metric)
                    && opened >= f.start_ms
                    && opened <= f.end_ms + GRACE_MS)
                    .then_some(opened)
            })
            .min();
        match hit {
            Some(opened) => {
                found += 1;
                let delay = (opened - f.start_ms) as f64 / 1000.0;
                delays_s.push(delay);
                found_faults.push((f.clone(), delay));
            }
            None => missed.push(f.clone()),
        }
    }
    let mut related = 0;
    let mut false_list = Vec::new();
    for a in &alerts {
        let (Some(device), Some(metric), Some(opened)) = (
            a["device"].as_str(),
            a["metric"].as_str(),
            a["opened_ms"].as_i64(),
        ) else {
            continue;
        };
        let during = |f: &&Fault| opened >= f.start_ms && opened <= f.end_ms + GRACE_MS;
        if truth
            .iter()
            .filter(during)
            .any(|f| f.device == device && names_metric(a, &f.metric))
        {
            continue;
        }
        if truth.iter().filter(during).any(|f| f.device == device) {
            related += 1;
        } else {
            let kind = a["explanation"]["kind"].as_str().unwrap_or("anomaly");
            false_list.push((
                device.to_string(),
                metric.to_string(),
                kind.to_string(),
                opened,
            ));
        }
    }
    let mut by_kind = std::collections::BTreeMap::new();
    for a in &alerts {
        let kind = a["explanation"]["kind"].as_str().unwrap_or("anomaly");
        *by_kind.entry(kind.to_string()).or_insert(0) += 1;
    }
    let limits: Vec<_> = Config::demo_limits().into_iter().map(|l| l.limit).collect();
    let predictions = truth
        .iter()
        .filter(|f| {
            limits
                .iter()
                .any(|l| l.metric == f.metric && l.limit.upper.is_some())
        })
        .map(|f| {
            let to = f.end_ms + GRACE_MS;
            let predicted =
                first_alert(&alerts, &f.device, &f.metric, "predictive", f.start_ms, to);
            let crossed = first_alert(&alerts, &f.device, &f.metric, "limit", f.start_ms, to);
            PredictionOutcome {
                fault: f.clone(),
                predicted_ms: predicted.map(|(t, _)| t),
                forecast_crossing_ms: predicted
                    .and_then(|(_, a)| a["explanation"]["prediction"]["expected_ms"].as_i64()),
                crossed_ms: crossed.map(|(t, _)| t),
            }
        })
        .collect();
    Ok(DemoEval {
        by_kind,
        predictions,
        start_ms: start,
        hours: minutes as f64 / 60.0,
        points,
        points_per_s: points as f64 / elapsed.max(1e-9),
        injected: truth.len(),
        found,
        delays_s,
        found_faults,
        missed,
        related,
        false_alerts: false_list.len(),
        false_list,
    })
}

/// Arguments of `sentio-bench demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated minutes of history.
    #[arg(long, default_value_t = 120)]
    pub minutes: u64,
    /// Fleet seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// End of the simulated history (ms or RFC 3339; default: now). The fleet follows the time
    /// of day, so a fixed end gives a reproducible run.
    #[arg(long)]
    pub end: Option<String>,
    /// Run without the device model (the watches before it), to measure what it adds.
    #[arg(long)]
    pub no_device_model: bool,
}

/// Replays the demo fleet's history through a node and prints what it caught and missed.
pub async fn run_cli(args: DemoArgs) -> anyhow::Result<()> {
    let spec = FleetSpec {
        seed: args.seed,
        ..FleetSpec::demo()
    };
    let end = match &args.end {
        Some(e) => Some(sentio_core::time::parse_time(e)?),
        None => None,
    };
    let r = run_with(spec, args.minutes, end, !args.no_device_model).await?;
    let mut delays = r.delays_s.clone();
    delays.sort_by(f64::total_cmp);
    let median = delays.get(delays.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "demo fleet: {} devices, {:.1} simulated hours, {} points ingested over HTTP at {:.0} points/s",
        spec.devices().len(),
        r.hours,
        r.points,
        r.points_per_s
    );
    println!(
        "faults found: {}/{} ({:.0} %), median delay {:.0} s",
        r.found,
        r.injected,
        100.0 * r.found as f64 / r.injected.max(1) as f64,
        median
    );
    println!(
        "false alerts: {} ({:.1} per hour for the fleet); alerts on another metric of a faulty device: {}",
        r.false_alerts,
        r.false_alerts as f64 / r.hours,
        r.related
    );
    let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("alerts by kind: {}", kinds.join(", "));
    for p in &r.predictions {
        let at = |t: Option<i64>| {
            t.map_or("never".to_string(), |t| {
                format!("+{} s", (t - r.start_ms) / 1000)
            })
        };
        println!(
            "  time-to-threshold: {} {} fault +{}..+{} s: predicted {} (forecast crossing {}), limit crossed {}{}",
            p.fault.device,
            p.fault.metric,
            (p.fault.start_ms - r.start_ms) / 1000,
            (p.fault.end_ms - r.start_ms) / 1000,
            at(p.predicted_ms),
            at(p.forecast_crossing_ms),
            at(p.crossed_ms),
            p.lead_s()
                .map_or(String::new(), |l| format!(", {l:.0} s ahead")),
        );
    }
    for f in &r.missed {
        println!(
            "  missed: {} {} {:?} at +{} s for {} s",
            f.device,
            f.metric,
            f.kind,
            (f.start_ms - r.start_ms) / 1000,
            (f.end_ms - f.start_ms) / 1000
        );
    }
    for (d, m, k, t) in &r.false_list {
        println!(
            "  false alert: {d} {m} ({k}) at +{} s",
            (t - r.start_ms) / 1000
        );
    }
    Ok(())
}
