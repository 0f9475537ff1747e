//! `sentio-bench upkeep`: what the store's background work (sealing, rollups, retention) costs
//! as the fleet grows, idle and at 1 Hz. For each fleet size it fills a fresh store with 20
//! minutes of history for every series, lets the background work catch up, then runs the
//! node's rounds (`seal_round` + `maintenance_round`, every 5 s in a node): first with nothing
//! new (idle), then each after 5 s worth of points, one per series per second, appended
//! through the trait. It prints CPU time (not wall time, so other load on the box does not
//! change the figures much) per round and per 5 s of appends, as a share of one core.
//!
//! Two more figures per size: **fresh**, the same 1 Hz rounds on a second store holding no
//! history (a fleet's first minutes, before anything is old enough to roll up: what a node
//! pays right after its devices connect), and **roll**, one maintenance as of 20 minutes later
//! on the first store, when every series is due for its rollup at once (the 15-minute roll):
//! CPU per series rolled and the longest the store's connection was held in one go (what an
//! append could wait).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use sentio_core::{DeviceId, Point};
use sentio_store::{Maintenance, RetentionStore, SeriesStore, SqliteStore};

/// Arguments of `sentio-bench upkeep`.
#[derive(Debug, Args)]
pub struct UpkeepArgs {
    /// Fleet sizes to measure, in devices.
    #[arg(long, value_delimiter = ',', default_value = "1000,3000,10000")]
    devices: Vec<usize>,
    /// Metrics per device.
    #[arg(long, default_value_t = 5)]
    metrics: usize,
    /// Rounds measured in each phase (idle, then at 1 Hz).
    #[arg(long, default_value_t = 6)]
    rounds: u32,
}

/// Seconds between the node's background rounds (`node.rs`, `run_maintenance`).
const ROUND: Duration = Duration::from_secs(5);

/// CPU time used by this process so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // The kernel's USER_HZ is 100 on every Linux we run on.
    Ok(Duration::from_millis(ticks * 10))
}

/// What one fleet size cost, in CPU time (robust to other load on the box, unlike a share of
/// wall time).
struct Costs {
    /// CPU per round with nothing appended.
    idle_round: Duration,
    /// CPU per round after 5 s worth of points (one per series per second).
    active_round: Duration,
    /// CPU to append those 5 s worth of points.
    append_5s: Duration,
    /// Longest round (wall time) of the active rounds.
    longest_active: Duration,
}

/// What rolling up every series at once cost.
struct Roll {
    cpu: Duration,
    /// Longest hold of the connection reported by the passes.
    longest_hold: Duration,
    buckets: u64,
}

/// Maintenance as of `now_ms` until nothing is left; every series is due for its roll.
async fn roll_all(store: &SqliteStore, now_ms: i64) -> anyhow::Result<Roll> {
    let cpu = cpu_time()?;
    let (mut longest, mut buckets) = (0, 0);
    loop {
        let r = store.maintain(now_ms).await?;
        longest = longest.max(r.longest_step_us);
        buckets += r.rolled_buckets;
        if !r.more {
            break;
        }
    }
    Ok(Roll {
        cpu: cpu_time()? - cpu,
        longest_hold: Duration::from_micros(longest),
        buckets,
    })
}

/// `rounds` rounds of 5 s of 1 Hz appends on a store with no history; CPU per round.
async fn fresh_rounds(
    ids: &[DeviceId],
    metrics: &[Arc<str>],
    rounds: u32,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path())?;
    let start = sentio_core::time::now_ms();
    let mut total = Duration::ZERO;
    for r in 0..rounds as i64 {
        for s in 0..ROUND.as_secs() as i64 {
            let ts = start + (r * ROUND.as_secs() as i64 + s) * 1000;
            append_all(&store, &series_points(ids, metrics, ts)).await?;
        }
        total += round(&store).await?.0;
    }
    Ok(total / rounds)
}

fn series_points(ids: &[DeviceId], metrics: &[Arc<str>], ts_ms: i64) -> Vec<Point> {
    ids.iter()
        .flat_map(|d| {
            metrics.iter().enumerate().map(move |(i, m)| Point {
                device: d.clone(),
                metric: m.clone(),
                ts_ms,
                value: (ts_ms / 1000 % 100) as f64 + i as f64,
            })
        })
        .collect()
}

async fn append_all(store: &SqliteStore, points: &[Point]) -> anyhow::Result<()> {
    for chunk in points.chunks(20_000) {
        store.append(chunk).await?;
    }
    Ok(())
}

/// One of the node's rounds; returns its CPU and wall time.
async fn round(store: &SqliteStore) -> anyhow::Result<(Duration, Duration)> {
    let (cpu, t) = (cpu_time()?, Instant::now());
    store.seal_round().await?;
    store.maintenance_round().await?;
    Ok((cpu_time()? - cpu, t.elapsed()))
}

/// `rounds` idle rounds, then `rounds` rounds each after 5 s worth of points (timestamps
/// advance 5 s a round, whatever the wall clock does).
async fn measure(
    store: &SqliteStore,
    ids: &[DeviceId],
    metrics: &[Arc<str>],
    rounds: u32,
) -> anyhow::Result<Costs> {
    let mut idle = Duration::ZERO;
    for _ in 0..rounds {
        idle += round(store).await?.0;
    }
    let (mut active, mut append, mut longest) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let start = sentio_core::time::now_ms();
    for r in 0..rounds as i64 {
        let cpu = cpu_time()?;
        for s in 0..ROUND.as_secs() as i64 {
            let ts = start + (r * ROUND.as_secs() as i64 + s) * 1000;
            append_all(store, &series_points(ids, metrics, ts)).await?;
        }
        append += cpu_time()? - cpu;
        let (c, wall) = round(store).await?;
        active += c;
        longest = longest.max(wall);
    }
    Ok(Costs {
        idle_round: idle / rounds,
        active_round: active / rounds,
        append_5s: append / rounds,
        longest_active: longest,
    })
}

/// Runs the benchmark and prints one row per fleet size.
pub async fn run(args: UpkeepArgs) -> anyhow::Result<()> {
    println!(
        "store upkeep: {} metrics per device, {} rounds per phase; CPU time per {} s round \
         (seal + maintenance) and per {} s of 1 Hz appends",
        args.metrics,
        args.rounds,
        ROUND.as_secs(),
        ROUND.as_secs()
    );
    println!(
        "{:>8} {:>8} | {:>11} {:>6} | {:>11} {:>13} {:>8} {:>13} | {:>11} | {:>10} {:>10} {:>12}",
        "devices",
        "series",
        "idle round",
        "core",
        "1 Hz round",
        "longest wall",
        "appends",
        "1 Hz in all",
        "fresh round",
        "roll CPU",
        "per series",
        "longest hold"
    );
    let metrics: Vec<Arc<str>> = (0..args.metrics)
        .map(|i| Arc::from(format!("m{i}")))
        .collect();
    let core = |d: Duration| d.as_secs_f64() / ROUND.as_secs_f64() * 100.0;
    for &n in &args.devices {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path())?;
        let ids: Vec<DeviceId> = (0..n)
            .map(|i| DeviceId::parse(&format!("dev-{i:05}")))
            .collect::<Result<_, _>>()?;
        // 20 minutes of history, a point a minute, then let the background work catch up.
        let now = sentio_core::time::now_ms();
        for k in (1..=20).rev() {
            append_all(&store, &series_points(&ids, &metrics, now - k * 60_000)).await?;
        }
        store.seal_round().await?;
        store.maintenance_round().await?;
        let c = measure(&store, &ids, &metrics, args.rounds).await?;
        let roll = roll_all(&store, sentio_core::time::now_ms() + 20 * 60_000).await?;
        drop(store);
        let fresh = fresh_rounds(&ids, &metrics, args.rounds).await?;
        let series = n * args.metrics;
        anyhow::ensure!(
            roll.buckets >= series as u64,
            "the roll phase rolled {} buckets, fewer than the {series} series",
            roll.buckets
        );
        println!(
            "{:>8} {:>8} | {:>8.1} ms {:>5.1}% | {:>8.1} ms {:>10.0} ms {:>7.1}% {:>12.1}% | {:>8.1} ms | {:>7.0} ms {:>7.1} µs {:>9.1} ms",
            n,
            series,
            c.idle_round.as_secs_f64() * 1000.0,
            core(c.idle_round),
            c.active_round.as_secs_f64() * 1000.0,
            c.longest_active.as_secs_f64() * 1000.0,
            core(c.append_5s),
            core(c.active_round + c.append_5s),
            fresh.as_secs_f64() * 1000.0,
            roll.cpu.as_secs_f64() * 1000.0,
            roll.cpu.as_secs_f64() * 1e6 / series as f64,
            roll.longest_hold.as_secs_f64() * 1000.0,
        );
    }
    Ok(())
}
