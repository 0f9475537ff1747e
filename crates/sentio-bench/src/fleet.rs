//! `sentio-bench fleet`: what a node costs as its fleet grows. A real `sentio serve` (the
//! executable beside this one, as a child) and, in this process, one MQTT connection per
//! registered device (rumqttc, QoS 1, one reading of `--metrics` metrics per message). For each
//! size of `--devices` (ascending, on the same node: devices are added), three windows:
//!
//! 1. **idle**: every device connected, none sending (keep-alive pings only);
//! 2. **1 Hz**: every device publishing one reading per `--interval-ms`, spread over the
//!    interval, after a warm-up (the first points create the series);
//! 3. **after**: every device stopped again, with the series it just wrote.
//!
//! The node's CPU is read from `/proc/<pid>/stat` (utime + stime over the window, as a share of
//! one core) and its RSS from `/proc/<pid>/status`, so the figures are the node's own whatever
//! else the box runs; the publishers' acknowledged rate shows the node kept up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::broker::{SentioChild, start_sentio_with};
use crate::demo_eval::http_agent;
use crate::ingest::{Counters, Publisher, connect, drain, percentile, publish_phase, register};

/// Arguments of `sentio-bench fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Fleet sizes, ascending; each adds devices to the same node.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 3_000, 10_000])]
    devices: Vec<usize>,
    /// Metrics per reading (one series each).
    #[arg(long, default_value_t = 5)]
    metrics: usize,
    /// Milliseconds between two readings of a device (1,000: 1 Hz).
    #[arg(long, default_value_t = 1_000)]
    interval_ms: u64,
    /// Seconds of each measured window.
    #[arg(long, default_value_t = 20.0)]
    window_seconds: f64,
    /// Seconds between a change (connected, started, stopped) and its window.
    #[arg(long, default_value_t = 10.0)]
    settle_seconds: f64,
    /// Connections opened at once while connecting the fleet.
    #[arg(long, default_value_t = 64)]
    connect_parallel: usize,
}

/// CPU time (utime + stime, in clock ticks) of a process so far.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/<pid>/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// The unit of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`; 100 on Linux when it cannot be
/// asked).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `/proc/<pid>/status` size field (`VmRSS`, `VmHWM`) in MiB.
fn status_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// The node's cost over one window.
#[derive(Debug, Clone, Copy)]
struct Cost {
    /// Share of one core (1.0 = a whole core).
    core: f64,
    /// CPU time over the window, seconds.
    cpu_s: f64,
    /// Resident set at the end of the window, MiB.
    rss_mib: f64,
    /// Largest resident set seen during the window (sampled every 250 ms), MiB.
    peak_rss_mib: f64,
}

/// Measures the node's CPU over `seconds` (the caller decides what happens meanwhile), and its
/// RSS every 250 ms.
async fn measure(pid: u32, seconds: f64) -> anyhow::Result<Cost> {
    let hz = clock_ticks_per_second();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
    let until = t0 + Duration::from_secs_f64(seconds);
    let mut peak = status_mib(pid, "VmRSS")?;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        peak = peak.max(status_mib(pid, "VmRSS")?);
    }
    let (c1, wall) = (cpu_ticks(pid)?, t0.elapsed().as_secs_f64());
    let rss_mib = status_mib(pid, "VmRSS")?;
    let cpu_s = (c1 - c0) as f64 / hz;
    Ok(Cost {
        core: cpu_s / wall,
        cpu_s,
        rss_mib,
        peak_rss_mib: peak.max(rss_mib),
    })
}

/// One size's figures.
struct Row {
    devices: usize,
    idle: Cost,
    busy: Cost,
    after: Cost,
    /// Points acknowledged per second during the 1 Hz window, and offered.
    acked_points_s: f64,
    /// The node's CPU seconds per 1,000 points acknowledged during the 1 Hz window: less
    /// noisy than the rate on a shared box.
    cpu_s_per_k: f64,
    offered_points_s: f64,
    /// Publish → PUBACK during the 1 Hz window (ms).
    puback_p50: f64,
    puback_p99: f64,
}

/// The open-file limit raised to its hard maximum (the node inherits it): each connection is a
/// socket on both ends.
fn raise_open_files(needed: u64) -> anyhow::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .context("raising the open-file limit")?;
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if soft < needed {
        bail!(
            "the open-file limit is {soft}, {needed} are needed for this fleet: raise the hard limit (ulimit -Hn)"
        );
    }
    Ok(soft)
}

/// The node's configuration for a large fleet on loopback: every device connects from
/// 127.0.0.1, so the per-address limit (a NAT site's share) is lifted, and so is the node's.
const FLEET_CONFIG: &str =
    "[mqtt]\nmax_connections = 0\n\n[mqtt.limits]\nmax_connections_per_address = 0\n";

/// Runs the benchmark and prints the curve.
pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.devices.is_empty()
            && args.devices.windows(2).all(|w| w[0] < w[1])
            && args.metrics >= 1
            && args.interval_ms >= 1,
        "--devices must be ascending, --metrics and --interval-ms at least 1"
    );
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; build with `cargo build --release -p sentio-bench -p sentio` for figures worth keeping"
        );
    }
    let largest = *args.devices.last().unwrap_or(&0) as u64;
    let files = raise_open_files(largest + 1_000)?;
    let dir = std::env::temp_dir().join(format!(
        "sentio-bench-fleet-{}-{}",
        std::process::id(),
        sentio_core::time::now_ms()
    ));
    let node = start_sentio_with(&dir.join("data"), Some(FLEET_CONFIG))?;
    eprintln!(
        "node pid {} (mqtt {}, http {}), open-file limit {files}",
        node.guard.pid(),
        node.mqtt_port,
        node.http_port
    );
    let result = curve(&node, &args).await;
    drop(node);
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => eprintln!("the node's data and log are kept in {}", dir.display()),
    }
    result
}

async fn curve(node: &SentioChild, args: &FleetArgs) -> anyhow::Result<()> {
    let pid = node.guard.pid();
    let base = format!("http://127.0.0.1:{}", node.http_port);
    let auth = format!("Bearer {}", node.admin);
    let mqtt = ([127, 0, 0, 1], node.mqtt_port).into();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut pubs: Vec<Publisher> = Vec::new();
    let mut next_ts: Vec<Arc<AtomicU64>> = Vec::new();
    let mut rows = Vec::new();
    println!(
        "fleet bench: `sentio serve` (pid {pid}) and one MQTT connection per device (rumqttc, QoS 1), {} metrics per device, one reading every {} ms; windows of {} s",
        args.metrics, args.interval_ms, args.window_seconds
    );
    for &n in &args.devices {
        let t = Instant::now();
        let ids: Vec<String> = (pubs.len()..n).map(|i| format!("fleet-{i:05}")).collect();
        let secrets = register_all(&base, &auth, &ids).await?;
        let registered = t.elapsed();
        let t = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(args.connect_parallel.max(1)));
        let mut tasks = Vec::with_capacity(ids.len());
        for (id, secret) in ids.into_iter().zip(secrets) {
            let permit = sem.clone().acquire_owned().await?;
            let (counters, stop) = (counters.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let p = connect(mqtt, &id, &secret, 10, counters, 1, stop).await;
                drop(permit);
                p
            }));
        }
        for task in tasks {
            pubs.push(task.await??);
            next_ts.push(Arc::new(AtomicU64::new(0)));
        }
        eprintln!(
            "{n} devices: registered in {:.1} s, connected in {:.1} s",
            registered.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
        let settle = Duration::from_secs_f64(args.settle_seconds);
        tokio::time::sleep(settle).await;
        let idle = measure(pid, args.window_seconds).await?;
        eprintln!("{n} devices idle: {}", pct(&idle));

        // 1 Hz: warm up, then the window, every device stamping its readings from now on.
        let now = sentio_core::time::now_ms() as u64;
        for ts in &next_ts {
            ts.fetch_max(now, Ordering::Relaxed);
        }
        let interval = Duration::from_millis(args.interval_ms);
        let until = Instant::now() + settle + Duration::from_secs_f64(args.window_seconds);
        let publishing = publish_phase(&pubs, &next_ts, (1, args.metrics), until, Some(interval));
        let window = async {
            tokio::time::sleep(settle).await;
            crate::ingest::take_latencies(&pubs);
            let acked = counters.acked_messages.load(Ordering::Relaxed);
            let t = Instant::now();
            let cost = measure(pid, args.window_seconds).await?;
            let acked = counters.acked_messages.load(Ordering::Relaxed) - acked;
            let points = acked as f64 * args.metrics as f64;
            let rate = points / t.elapsed().as_secs_f64();
            let per_k = cost.cpu_s / (points / 1000.0);
            anyhow::Ok((cost, rate, per_k, crate::ingest::take_latencies(&pubs)))
        };
        let (_, window) = tokio::join!(publishing, window);
        let (busy, acked_points_s, cpu_s_per_k, lat) = window?;
        // Said before the drain, which fails when the node fell behind.
        eprintln!(
            "{n} devices at 1 reading per {} ms: {} (peak {:.0} MiB; {acked_points_s:.0} points/s acknowledged, {cpu_s_per_k:.3} CPU s per 1 k points)",
            args.interval_ms,
            pct(&busy),
            busy.peak_rss_mib
        );
        drain(&pubs).await?;

        tokio::time::sleep(settle).await;
        let after = measure(pid, args.window_seconds).await?;
        let row = Row {
            devices: n,
            idle,
            busy,
            after,
            acked_points_s,
            cpu_s_per_k,
            offered_points_s: n as f64 * args.metrics as f64 * 1000.0 / args.interval_ms as f64,
            puback_p50: percentile(&lat, 0.5),
            puback_p99: percentile(&lat, 0.99),
        };
        eprintln!("{}", format_row_md(&row, args.metrics));
        rows.push(row);
    }
    println!(
        "\n| devices (series) | idle: core, RSS | {} ms: core, RSS (peak) | points/s acknowledged of offered | CPU s per 1 k points | PUBACK p50 / p99 | after: core, RSS |",
        args.interval_ms
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{}", format_row_md(r, args.metrics));
    }
    println!(
        "node peak RSS (VmHWM): {:.0} MiB",
        status_mib(pid, "VmHWM").unwrap_or(f64::NAN)
    );
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = p.client.disconnect().await;
        let _ = p.loop_task.await;
    }
    Ok(())
}

fn pct(c: &Cost) -> String {
    format!("{:.1} %, {:.0} MiB", 100.0 * c.core, c.rss_mib)
}

fn format_row_md(r: &Row, metrics: usize) -> String {
    format!(
        "| {} ({}) | {} | {} ({:.0} MiB) | {:.0} of {:.0} | {:.3} | {:.1} / {:.1} ms | {} |",
        r.devices,
        r.devices * metrics,
        pct(&r.idle),
        pct(&r.busy),
        r.busy.peak_rss_mib,
        r.acked_points_s,
        r.offered_points_s,
        r.cpu_s_per_k,
        r.puback_p50,
        r.puback_p99,
        pct(&r.after)
    )
}

/// Registers `ids` through the API on a few threads; returns their secrets in order.
async fn register_all(base: &str, auth: &str, ids: &[String]) -> anyhow::Result<Vec<String>> {
    const THREADS: usize = 4;
    let chunk = ids.len().div_ceil(THREADS).max(1);
    let mut tasks = Vec::new();
    for part in ids.chunks(chunk) {
        let (base, auth, part) = (base.to_string(), auth.to_string(), part.to_vec());
        tasks.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<Vec<String>> {
                let agent = http_agent();
                part.iter()
                    .map(|id| register(&agent, &base, &auth, id, "fleet"))
                    .collect()
            },
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for t in tasks {
        out.extend(t.await??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_cpu_and_rss_are_read_from_proc() {
        let pid = std::process::id();
        let before = cpu_ticks(pid).unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(
            cpu_ticks(pid).unwrap() > before,
            "300 ms of spinning shows as CPU time"
        );
        let rss = status_mib(pid, "VmRSS").unwrap();
        assert!(rss > 0.5 && rss < 10_000.0, "{rss}");
    }

    #[test]
    fn the_fleet_config_parses_and_lifts_the_connection_limits() {
        let c = sentio::config::Config::from_toml(FLEET_CONFIG).unwrap();
        assert_eq!(c.mqtt.max_connections, 0);
        assert_eq!(c.mqtt.limits.max_connections_per_address, 0);
        c.check().unwrap();
    }
}
