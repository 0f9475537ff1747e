//! `sentio-bench store`: the embedded store (durable head + pco chunks, through the
//! `SeriesStore` trait) against its peer, the same data as one SQLite row per point, in the
//! same run: ingest, bytes per point, a month of 1-second data drawn at 1,000 points, reopen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rusqlite::{Connection, params};
use sentio_core::{DeviceId, Point};
use sentio_store::{SealPolicy, SeriesStore, SqliteStore};

/// Arguments of `sentio-bench store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Series in the simulated fleet (one point per second each).
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Hours of fleet data.
    #[arg(long, default_value_t = 1.0)]
    hours: f64,
    /// Days of 1-second data in the chart series, drawn at `--points`.
    #[arg(long, default_value_t = 30.0)]
    chart_days: f64,
    /// Multiplies `--hours` and `--chart-days` (e.g. 0.05 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Points drawn by the chart query.
    #[arg(long, default_value_t = 1000)]
    points: usize,
    /// Points per append (the pipeline's group commit takes up to 20,000).
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
    /// Repetitions of each chart query (the median is reported).
    #[arg(long, default_value_t = 9)]
    queries: usize,
    /// Where to put the two databases (default: a new temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Points in the head when the restart row's writer is killed (times `--scale`).
    #[arg(long, default_value_t = 1_000_000)]
    replay_points: u64,
    /// Extra ingest-only rounds (the fleet into fresh databases, no sealer), Sentio and the
    /// peer alternating: the median ratio and its spread (the box's load moves single runs).
    #[arg(long, default_value_t = 3)]
    ingest_rounds: usize,
}

/// Arguments of the restart row's child process (`sentio bench store-child`).
#[derive(Debug, Args)]
pub struct ChildArgs {
    /// Directory of the database.
    #[arg(long)]
    dir: PathBuf,
    /// `sentio` (the store's head, through the trait) or `peer` (row per point).
    #[arg(long)]
    side: String,
    /// Points to write.
    #[arg(long)]
    points: u64,
    /// Series they are spread over (1 point per second each).
    #[arg(long, default_value_t = 1000)]
    series: usize,
}

/// The restart row's writer: appends `points` acknowledged points (no sealer: they all stay in
/// the head), prints `ready`, and waits to be killed without closing anything.
pub async fn child(args: ChildArgs) -> anyhow::Result<()> {
    let w = replay_workload(args.points, args.series);
    match args.side.as_str() {
        "sentio" => {
            let store = SqliteStore::open(&args.dir)?;
            let devices = device_ids(w.series)?;
            let metric: Arc<str> = Arc::from("temperature");
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| {
                w.for_each(|batch| {
                    let points: Vec<Point> = batch
                        .iter()
                        .map(|&(s, ts_ms, value)| Point {
                            device: devices[s].clone(),
                            metric: metric.clone(),
                            ts_ms,
                            value,
                        })
                        .collect();
                    handle.block_on(store.append(&points))?;
                    Ok(())
                })
            })?;
            println!("ready");
            // Keep the store (and its connection) open until the parent kills this process.
            std::future::pending::<()>().await;
            drop(store);
        }
        "peer" => {
            let mut conn = open_peer(&args.dir.join("peer.db"))?;
            w.for_each(|batch| peer_append(&mut conn, batch))?;
            println!("ready");
            std::future::pending::<()>().await;
        }
        other => anyhow::bail!("unknown side {other:?}"),
    }
    Ok(())
}

/// The restart row's data: `points` spread over `series` series at 1 point per second.
fn replay_workload(points: u64, series: usize) -> Workload {
    Workload {
        series: series.max(1),
        chart_points: 0,
        fleet_seconds: (points / series.max(1) as u64).max(1) as i64,
        batch: 20_000,
    }
}

fn device_ids(series: usize) -> anyhow::Result<Vec<DeviceId>> {
    Ok((0..=series)
        .map(|i| DeviceId::parse(&format!("bench-{i:05}")))
        .collect::<Result<_, _>>()?)
}

/// One peer transaction: a row per point.
fn peer_append(conn: &mut Connection, batch: &Batch) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO points (series_id, ts, value) VALUES (?1, ?2, ?3)",
        )?;
        for &(s, ts, v) in batch {
            stmt.execute(params![s as i64, ts, v])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// What the restart row measured on one side.
struct Replay {
    /// Open + first query after the kill.
    ms: f64,
    /// Bytes of write-ahead log left by the killed writer.
    wal_bytes: u64,
    /// Points the first query returned.
    answered: usize,
}

/// Writes `w` in a child process (this executable), kills it with SIGKILL once it says every
/// point is acknowledged, then times reopening the database and answering the first query
/// (series 1, its whole range).
async fn restart_side(dir: &Path, side: &str, w: &Workload) -> anyhow::Result<Replay> {
    use std::io::{BufRead, BufReader};
    std::fs::create_dir_all(dir)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["store-child", "--side", side, "--dir"])
        .arg(dir)
        .args([
            "--points",
            &(w.fleet_seconds as u64 * w.series as u64).to_string(),
            "--series",
            &w.series.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the writer child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim() == "ready")
    })
    .await?;
    // SIGKILL: no clean close, no checkpoint.
    child.kill()?;
    child.wait()?;
    anyhow::ensure!(ready, "the {side} writer died before it was ready");
    let db = if side == "sentio" {
        dir.join(sentio_store::DB_FILE)
    } else {
        dir.join("peer.db")
    };
    let wal_bytes = std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len())
        .unwrap_or(0);
    let (from, to) = (w.fleet_start(), w.fleet_start() + w.fleet_seconds * 1000);
    let t = Instant::now();
    let answered = if side == "sentio" {
        let store = SqliteStore::open(dir)?;
        let devices = device_ids(1)?;
        store
            .query(sentio_store::RangeQuery {
                device: devices[1].clone(),
                metric: "temperature".into(),
                from_ms: from,
                to_ms: to,
                step: None,
                limit: 100_000,
            })
            .await?
            .points
            .len()
    } else {
        let conn = open_peer(&db)?;
        let mut stmt = conn.prepare(
            "SELECT ts, value FROM points WHERE series_id = 1 AND ts >= ?1 AND ts < ?2 ORDER BY ts",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?.len()
    };
    Ok(Replay {
        ms: ms(t.elapsed()),
        wal_bytes,
        answered,
    })
}

/// Start of the simulated data: 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// xorshift64*: deterministic noise.
struct Noise(u64);

impl Noise {
    /// Uniform in [-0.5, 0.5).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// A realistic sensor: a slow daily wave around a per-series level, small noise, rounded to
/// 0.01 as sensors report.
fn sensor_value(series: usize, ts_ms: i64, noise: &mut Noise) -> f64 {
    let day = (ts_ms - START_MS) as f64 / 86_400_000.0 * std::f64::consts::TAU;
    let level = 15.0 + (series % 20) as f64;
    let amplitude = 2.0 + (series % 7) as f64 * 0.5;
    let v = level + amplitude * (day + series as f64).sin() + 0.2 * noise.next();
    (v * 100.0).round() / 100.0
}

/// One batch of the workload: `(series index, ts, value)`.
type Batch = Vec<(usize, i64, f64)>;

/// The workload, batch by batch: first the chart series (series 0) over `chart_days`, then the
/// fleet (series 1..=n) second by second over `hours`.
#[derive(Debug, Clone, Copy)]
struct Workload {
    series: usize,
    chart_points: i64,
    fleet_seconds: i64,
    batch: usize,
}

impl Workload {
    fn total(&self) -> u64 {
        self.chart_points as u64 + self.fleet_seconds as u64 * self.series as u64
    }

    fn chart_start(&self) -> i64 {
        START_MS
    }

    fn fleet_start(&self) -> i64 {
        START_MS + self.chart_points * 1000
    }

    /// Calls `f` with every batch, in order.
    fn for_each(&self, mut f: impl FnMut(&Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut batch = Vec::with_capacity(self.batch);
        for i in 0..self.chart_points {
            let ts = self.chart_start() + i * 1000;
            batch.push((0, ts, sensor_value(0, ts, &mut noise)));
            if batch.len() == self.batch {
                f(&batch)?;
                batch.clear();
            }
        }
        for s in 0..self.fleet_seconds {
            let ts = self.fleet_start() + s * 1000;
            for series in 1..=self.series {
                batch.push((series, ts, sensor_value(series, ts, &mut noise)));
                if batch.len() == self.batch {
                    f(&batch)?;
                    batch.clear();
                }
            }
        }
        if !batch.is_empty() {
            f(&batch)?;
        }
        Ok(())
    }
}

/// What was measured on one side.
#[derive(Debug, Default)]
struct Side {
    ingest_s: f64,
    seal_s: f64,
    file_bytes: u64,
    used_bytes: u64,
    sealed_file_bytes: u64,
    sealed_used_bytes: u64,
    chart_ms: Vec<f64>,
    chart: Vec<(i64, f64)>,
    reopen_ms: f64,
    /// The data directory on disk (`du`) once sealed, rolled up and freed pages returned.
    rolled_dir_bytes: u64,
}

/// The peer: one row per point, the same pragmas as the store.
fn open_peer(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, \
         value REAL NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;",
    )?;
    Ok(conn)
}

/// The peer's file size and its bytes in use, after a checkpoint.
fn peer_disk(conn: &Connection, path: &Path) -> anyhow::Result<(u64, u64)> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let mut file = std::fs::metadata(path)?.len();
    if let Ok(m) = std::fs::metadata(format!("{}-wal", path.display())) {
        file += m.len();
    }
    Ok((file, file - (page * free) as u64))
}

/// The peer's chart: per bucket the row holding the minimum and the row holding the maximum
/// (SQLite returns the other columns of the row that holds MIN/MAX), in time order.
fn peer_chart(conn: &Connection, from: i64, to: i64, n: usize) -> anyhow::Result<Vec<(i64, f64)>> {
    let buckets = (n / 2) as i64;
    let width = ((to - from + buckets - 1) / buckets).max(1);
    let mut extremes: std::collections::BTreeMap<i64, Vec<(i64, f64)>> = Default::default();
    for agg in ["MIN", "MAX"] {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT (ts - ?2) / ?3 AS b, ts, {agg}(value) FROM points \
             WHERE series_id = ?1 AND ts >= ?2 AND ts < ?4 GROUP BY b"
        ))?;
        let rows = stmt.query_map(params![0i64, from, width, to], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, f64>(2)?,
            ))
        })?;
        for row in rows {
            let (b, t, v) = row?;
            extremes.entry(b).or_default().push((t, v));
        }
    }
    let mut out = Vec::with_capacity(n);
    for (_, mut pair) in extremes {
        pair.sort_by_key(|p| p.0);
        pair.dedup_by_key(|p| p.0);
        out.extend(pair);
    }
    Ok(out)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run_store(dir: &Path, w: &Workload, args: &StoreArgs) -> anyhow::Result<(Side, u64)> {
    let mut side = Side::default();
    let store = SqliteStore::open(dir)?;
    let devices = device_ids(w.series)?;
    let metric: Arc<str> = Arc::from("temperature");

    // Ingest through the trait, with the node's background sealer running beside it.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sealer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .run_sealer(Duration::from_millis(500), async {
                    let _ = stop_rx.await;
                })
                .await;
        })
    };
    let ingest = append_all(&store, w)?;
    let _ = stop_tx.send(());
    sealer.await?;
    side.ingest_s = ingest.as_secs_f64();
    // What the background sealer left (its 10-minute seal age keeps the newest points raw).
    let t = Instant::now();
    store.seal_all().await?;
    side.seal_s = t.elapsed().as_secs_f64();
    let tiers = store.tier_stats().await?;
    let disk = store.checkpoint().await?;
    side.file_bytes = disk.file_bytes;
    side.used_bytes = disk.file_bytes - disk.free_bytes;
    drop(store);

    // Reopen, then seal everything but each series' newest point: the layout of data older
    // than the seal age.
    let t = Instant::now();
    let store = SqliteStore::open_with(
        dir,
        SealPolicy {
            seal_age_ms: 0,
            max_wait_ms: 0,
            ..SealPolicy::default()
        },
    )?;
    side.reopen_ms = ms(t.elapsed());
    store.seal_all().await?;
    let sealed = store.tier_stats().await?;
    println!(
        "sentio, all sealed: {} chunks holding {} points, chunk data {:.2} B/point, {} points left in the head",
        sealed.chunks,
        sealed.sealed_points,
        sealed.chunk_bytes as f64 / sealed.sealed_points.max(1) as f64,
        sealed.head_points
    );
    let disk = store.checkpoint().await?;
    side.sealed_file_bytes = disk.file_bytes;
    side.sealed_used_bytes = disk.file_bytes - disk.free_bytes;

    let (from, to) = (w.chart_start(), w.chart_start() + w.chart_points * 1000);
    for _ in 0..args.queries.max(1) {
        let t = Instant::now();
        let r = store
            .downsample(&devices[0], &metric, from, to, args.points)
            .await?;
        side.chart_ms.push(ms(t.elapsed()));
        side.chart = r.points;
    }
    side.rolled_dir_bytes = roll_up_and_compact(&store, w, dir).await?;
    Ok((side, tiers.head_points))
}

/// The node's maintenance over the sealed data (every point kept raw: a year's retention, the
/// clock two hours after the data, so that a day which ended with the data is packed, as the
/// node packs it an hour after rolling it up): 1-minute and 1-hour rollups, packed days, freed
/// pages returned to the file system. Returns the data directory's bytes on disk (`du`)
/// afterwards, and prints where they are.
async fn roll_up_and_compact(store: &SqliteStore, w: &Workload, dir: &Path) -> anyhow::Result<u64> {
    use sentio_store::RetentionStore;
    store
        .set_retention(sentio_store::RetentionPolicy {
            raw_ms: 365 * 86_400_000,
            ..Default::default()
        })
        .await?;
    let now = w.fleet_start() + w.fleet_seconds * 1000 + 2 * 3_600_000;
    let t = Instant::now();
    let mut rolled = 0;
    while {
        let r = store.maintain(now).await?;
        rolled += r.rolled_buckets;
        r.more
    } {}
    store.checkpoint().await?;
    let bytes = store.storage().await?.bytes;
    println!(
        "sentio, rolled up: {rolled} minute buckets in {:.1} s; data directory {:.1} MB on disk",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );
    print_pages(&dir.join(sentio_store::DB_FILE), w.total())?;
    Ok(bytes)
}

/// Where the database's pages go: per table and index, its pages' bytes per point and how much
/// of them is unused, largest first (SQLite's `dbstat`), and the free pages.
fn print_pages(db: &Path, points: u64) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT name, COUNT(*), SUM(pgsize), SUM(unused) FROM dbstat \
         GROUP BY name ORDER BY SUM(pgsize) DESC LIMIT 8",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    print!("  pages of {page} B, {free} free; by table and index, B/point (unused):");
    for row in rows {
        let (name, _pages, bytes, unused) = row?;
        print!(
            " {name} {:.3} ({:.0} %)",
            bytes as f64 / points as f64,
            100.0 * unused as f64 / bytes.max(1) as f64
        );
    }
    println!();
    Ok(())
}

fn run_peer(dir: &Path, w: &Workload, args: &StoreArgs) -> anyhow::Result<Side> {
    let mut side = Side::default();
    let path = dir.join("peer.db");
    let mut conn = open_peer(&path)?;
    let mut ingest = Duration::ZERO;
    w.for_each(|batch| {
        let t = Instant::now();
        peer_append(&mut conn, batch)?;
        ingest += t.elapsed();
        Ok(())
    })?;
    side.ingest_s = ingest.as_secs_f64();
    (side.file_bytes, side.used_bytes) = peer_disk(&conn, &path)?;
    (side.sealed_file_bytes, side.sealed_used_bytes) = (side.file_bytes, side.used_bytes);
    drop(conn);
    let t = Instant::now();
    let conn = open_peer(&path)?;
    side.reopen_ms = ms(t.elapsed());
    let (from, to) = (w.chart_start(), w.chart_start() + w.chart_points * 1000);
    for _ in 0..args.queries.max(1) {
        let t = Instant::now();
        side.chart = peer_chart(&conn, from, to, args.points)?;
        side.chart_ms.push(ms(t.elapsed()));
    }
    Ok(side)
}

/// Runs the benchmark and prints the table.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let w = Workload {
        series: args.series,
        chart_points: (args.chart_days * args.scale * 86_400.0) as i64,
        fleet_seconds: (args.hours * args.scale * 3600.0) as i64,
        batch: args.batch.max(1),
    };
    anyhow::ensure!(
        w.chart_points >= 2,
        "the chart series needs at least 2 points"
    );
    let temp;
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let (ours_dir, peer_dir) = (base.join("sentio"), base.join("peer"));
    for d in [&ours_dir, &peer_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let total = w.total();
    println!(
        "store bench: chart series {:.1} days + {} series x {:.2} h, 1 point/s, values rounded to 0.01: {} points, appends of {}",
        w.chart_points as f64 / 86_400.0,
        w.series,
        w.fleet_seconds as f64 / 3600.0,
        total,
        w.batch
    );
    let (ours, head_left) = run_store(&ours_dir, &w, &args).await?;
    let peer = tokio::task::block_in_place(|| run_peer(&peer_dir, &w, &args))?;

    let per_point = |b: u64| b as f64 / total as f64;
    let rate = |s: f64| total as f64 / s;
    println!(
        "{:<52} {:>14} {:>14} {:>10}",
        "", "sentio", "peer (rows)", "ratio"
    );
    let row = |name: &str, a: f64, b: f64, ratio: f64, unit: &str| {
        println!("{name:<52} {a:>14.2} {b:>14.2} {ratio:>9.2}x  {unit}");
    };
    row(
        "ingest through the trait, points/s (M)",
        rate(ours.ingest_s) / 1e6,
        rate(peer.ingest_s) / 1e6,
        rate(ours.ingest_s) / rate(peer.ingest_s),
        "higher is better",
    );
    row(
        "ingest + final seal, points/s (M)",
        rate(ours.ingest_s + ours.seal_s) / 1e6,
        rate(peer.ingest_s) / 1e6,
        rate(ours.ingest_s + ours.seal_s) / rate(peer.ingest_s),
        "",
    );
    println!(
        "  (after ingest {head_left} points were still in the head: the newest 10 minutes of each series)"
    );
    row(
        "bytes/point on disk, running (file)",
        per_point(ours.file_bytes),
        per_point(peer.file_bytes),
        per_point(peer.file_bytes) / per_point(ours.file_bytes),
        "smaller",
    );
    row(
        "bytes/point on disk, running (pages in use)",
        per_point(ours.used_bytes),
        per_point(peer.used_bytes),
        per_point(peer.used_bytes) / per_point(ours.used_bytes),
        "smaller",
    );
    row(
        "bytes/point, all sealed (pages in use)",
        per_point(ours.sealed_used_bytes),
        per_point(peer.sealed_used_bytes),
        per_point(peer.sealed_used_bytes) / per_point(ours.sealed_used_bytes),
        "smaller",
    );
    row(
        "bytes/point, all sealed (file, freed head pages kept)",
        per_point(ours.sealed_file_bytes),
        per_point(peer.sealed_file_bytes),
        per_point(peer.sealed_file_bytes) / per_point(ours.sealed_file_bytes),
        "smaller",
    );
    row(
        "bytes/point, data directory (du) + rollups, pages freed",
        per_point(ours.rolled_dir_bytes),
        per_point(peer.sealed_file_bytes),
        per_point(peer.sealed_file_bytes) / per_point(ours.rolled_dir_bytes),
        "smaller",
    );
    let (a, b) = (median(&ours.chart_ms), median(&peer.chart_ms));
    row(
        &format!(
            "chart query {:.0} days at {} points, median ms",
            w.chart_points as f64 / 86_400.0,
            args.points
        ),
        a,
        b,
        b / a,
        "faster",
    );
    row(
        "reopen, ms",
        ours.reopen_ms,
        peer.reopen_ms,
        peer.reopen_ms / ours.reopen_ms,
        "faster",
    );
    ingest_rounds(&base, &w, args.ingest_rounds).await?;
    // Restart after a kill with the head full of acknowledged points.
    let replay = replay_workload((args.replay_points as f64 * args.scale) as u64, args.series);
    let replay_total = replay.fleet_seconds as u64 * replay.series as u64;
    let ours_r = restart_side(&base.join("replay-sentio"), "sentio", &replay).await?;
    let peer_r = restart_side(&base.join("replay-peer"), "peer", &replay).await?;
    row(
        &format!(
            "kill -9, {:.2} M head points: reopen + 1st query, ms",
            replay_total as f64 / 1e6
        ),
        ours_r.ms,
        peer_r.ms,
        peer_r.ms / ours_r.ms,
        "faster",
    );
    println!(
        "  (write-ahead log left by the killed writer: sentio {:.1} MiB, peer {:.1} MiB; first query answered {} and {} points, expected {})",
        ours_r.wal_bytes as f64 / 1048576.0,
        peer_r.wal_bytes as f64 / 1048576.0,
        ours_r.answered,
        peer_r.answered,
        replay.fleet_seconds
    );
    println!(
        "chart answers: sentio {} points, peer {} points, identical: {}",
        ours.chart.len(),
        peer.chart.len(),
        if ours.chart == peer.chart {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}

/// Appends every batch of `w` through the trait; the time spent in `append` alone.
fn append_all(store: &SqliteStore, w: &Workload) -> anyhow::Result<Duration> {
    let devices = device_ids(w.series)?;
    let metric: Arc<str> = Arc::from("temperature");
    let handle = tokio::runtime::Handle::current();
    let mut points = Vec::with_capacity(w.batch);
    let mut ingest = Duration::ZERO;
    tokio::task::block_in_place(|| {
        w.for_each(|batch| {
            points.clear();
            points.extend(batch.iter().map(|&(s, ts_ms, value)| Point {
                device: devices[s].clone(),
                metric: metric.clone(),
                ts_ms,
                value,
            }));
            let t = Instant::now();
            handle.block_on(store.append(&points))?;
            ingest += t.elapsed();
            Ok(())
        })
    })?;
    Ok(ingest)
}

/// Seconds Sentio's store takes to append the fleet of `w` into a new directory (no sealer).
fn store_ingest_s(dir: &Path, w: &Workload) -> anyhow::Result<f64> {
    Ok(append_all(&SqliteStore::open(dir)?, w)?.as_secs_f64())
}

/// Seconds the peer takes to append the fleet of `w` into a new database.
fn peer_ingest_s(dir: &Path, w: &Workload) -> anyhow::Result<f64> {
    let mut conn = open_peer(&dir.join("peer.db"))?;
    let mut ingest = Duration::ZERO;
    w.for_each(|batch| {
        let t = Instant::now();
        peer_append(&mut conn, batch)?;
        ingest += t.elapsed();
        Ok(())
    })?;
    Ok(ingest.as_secs_f64())
}

/// `rounds` ingest-only rounds of the fleet (no chart series), Sentio then the peer, each into
/// a fresh directory: every round's rates, then the median ratio with its spread.
async fn ingest_rounds(base: &Path, w: &Workload, rounds: usize) -> anyhow::Result<()> {
    if rounds == 0 {
        return Ok(());
    }
    let fleet = Workload {
        chart_points: 0,
        ..*w
    };
    let total = fleet.total() as f64;
    let mut ratios = Vec::with_capacity(rounds);
    let (mut ours_all, mut peer_all) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = base.join(format!("round-{round}"));
        std::fs::create_dir_all(dir.join("sentio"))?;
        std::fs::create_dir_all(dir.join("peer"))?;
        let ours = total / store_ingest_s(&dir.join("sentio"), &fleet)?;
        let peer =
            total / tokio::task::block_in_place(|| peer_ingest_s(&dir.join("peer"), &fleet))?;
        std::fs::remove_dir_all(&dir)?;
        println!(
            "  ingest round {}: sentio {:.3} M points/s, peer {:.3} M points/s, {:.2}x",
            round + 1,
            ours / 1e6,
            peer / 1e6,
            ours / peer
        );
        ratios.push(ours / peer);
        ours_all.push(ours);
        peer_all.push(peer);
    }
    let spread = |xs: &[f64]| {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    let (lo, hi) = spread(&ratios);
    println!(
        "{:<52} {:>14.3} {:>14.3} {:>9.2}x  median of {rounds} (ratio {lo:.2}-{hi:.2})",
        "ingest rounds (fleet only, no sealer), points/s (M)",
        median(&ours_all) / 1e6,
        median(&peer_all) / 1e6,
        median(&ratios),
    );
    Ok(())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "sentio-bench-store-{}-{}",
            std::process::id(),
            sentio_core::time::now_ms()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
