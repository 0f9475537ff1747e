//! What rollups and retention cost: bytes per rollup row against bytes per raw point, the
//! rollup pass's throughput and the raw expiry's, on 100 series of 3 days at 1 s (sensor values
//! rounded to 0.01). Printed figures, not a test:
//!
//! ```text
//! cargo run --release -p sentio-store --example rollup_cost
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use sentio_core::{DeviceId, Point};
use sentio_store::{DeviceRegistry, NewDevice, RetentionStore, SeriesStore, SqliteStore};

const SERIES: i64 = 100;
const DAYS: i64 = 3;
const T0: i64 = 1_699_920_000_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sentio-rollup-cost-{}", std::process::id()));
    let store = SqliteStore::open(&dir)?;
    let per_series = DAYS * 86_400;
    for d in 0..SERIES {
        let id = format!("dev-{d}");
        store.create_device(NewDevice::new(&id)).await?;
        let device = DeviceId::parse(&id)?;
        let points: Vec<Point> = (0..per_series)
            .map(|i| Point {
                device: device.clone(),
                metric: Arc::from("t"),
                ts_ms: T0 + i * 1000,
                value: ((20.0 + (i as f64 / 300.0 + d as f64).sin()) * 100.0).round() / 100.0,
            })
            .collect();
        for batch in points.chunks(50_000) {
            store.append(batch).await?;
        }
    }
    store.seal_all().await?;
    let raw = store.checkpoint().await?;
    let raw_live = (raw.file_bytes - raw.free_bytes) as f64;
    let points = (SERIES * per_series) as f64;

    // Roll everything up, as a node does after an upgrade or a restore.
    let now = T0 + DAYS * 86_400_000;
    let (took, longest, report) = passes(&store, now).await?;
    let rolled = store.checkpoint().await?;
    let rows = (SERIES * DAYS * (1440 + 24)) as f64;
    let row_bytes = ((rolled.file_bytes - rolled.free_bytes) as f64 - raw_live) / rows;
    println!("{SERIES} series x {DAYS} days at 1 s = {points} points");
    println!(
        "raw (head + pco chunks): {:.2} bytes/point",
        raw_live / points
    );
    println!(
        "rollups on disk: {rows} rows (1m + 1h), {row_bytes:.1} bytes/row on average = {:.2} bytes per raw point at 1 s",
        row_bytes * rows / points
    );
    let st = store.rollup_stats().await?;
    println!(
        "1m rollups: {} rows packed by day in {} bytes = {:.2} bytes/row; {} recent rows unpacked; {} 1h rows",
        st.packed_rows,
        st.packed_bytes,
        st.packed_bytes as f64 / st.packed_rows.max(1) as f64,
        st.minute_rows,
        st.hour_rows
    );
    println!(
        "rollup pass: {} buckets in {took:?} = {:.1} M raw points/s; longest call {longest:?}, longest step holding the database {} µs",
        report.rolled_buckets,
        points / took.as_secs_f64() / 1e6,
        report.longest_step_us
    );

    // Expire the first day of raw points.
    let mut policy = store.retention().await?;
    policy.raw_ms = 86_400_000;
    store.set_retention(policy).await?;
    let (took, longest, report) = passes(&store, now).await?;
    println!(
        "raw expiry: {} points in {took:?} = {:.1} M points/s; longest call {longest:?}, longest step {} µs",
        report.expired_points,
        report.expired_points as f64 / took.as_secs_f64() / 1e6,
        report.longest_step_us
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Maintenance calls until one has nothing more to do: total time, longest call, totals.
async fn passes(
    store: &SqliteStore,
    now: i64,
) -> Result<(Duration, Duration, sentio_store::MaintenanceReport), sentio_store::StoreError> {
    let start = Instant::now();
    let mut longest = Duration::ZERO;
    let mut total = sentio_store::MaintenanceReport::default();
    loop {
        let call = Instant::now();
        let r = store.maintain(now).await?;
        longest = longest.max(call.elapsed());
        total.rolled_buckets += r.rolled_buckets;
        total.expired_points += r.expired_points;
        total.longest_step_us = total.longest_step_us.max(r.longest_step_us);
        if !r.more {
            return Ok((start.elapsed(), longest, total));
        }
    }
}
