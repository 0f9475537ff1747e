//! A graceful stop of the real binary with a thousand devices: SIGTERM ends the process within
//! seconds even while the maintenance pass has minutes of sealing and rollups ahead, and a
//! restart finds every acknowledged point.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sentio_core::{DeviceId, Point};
use sentio_store::{DeviceRegistry, NewDevice, SeriesStore, SqliteStore};
use serde_json::{Value, json};

use crate::support::{self, basic, http, now_ms};

const DEVICES: usize = 1_000;
const METRICS: [&str; 3] = ["temperature", "humidity", "power"];
/// A point every two hours over the last thirty days: ready to seal, to roll up and to pack.
const POINTS_PER_SERIES: i64 = 360;
const STEP_MS: i64 = 2 * 3_600_000;

/// Every point in the store, head and sealed chunks.
async fn stored_points(store: &SqliteStore) -> u64 {
    let t = store.tier_stats().await.unwrap();
    t.head_points + t.sealed_points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_with_a_thousand_devices_within_seconds() {
    let _heavy = support::heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // The fleet and thirty days of its history, written before the node starts.
    let t0 = now_ms() - POINTS_PER_SERIES * STEP_MS;
    let secret = {
        let store = SqliteStore::open(&data).unwrap();
        let mut secret = String::new();
        let mut batch = Vec::new();
        for d in 0..DEVICES {
            let id = format!("dev-{d:04}");
            let (_, s) = store
                .create_device(NewDevice {
                    kind: Some("sensor".into()),
                    ..NewDevice::new(&id)
                })
                .await
                .unwrap();
            if d == 0 {
                secret = s;
            }
            let device = DeviceId::parse(&id).unwrap();
            for m in METRICS {
                let metric: Arc<str> = m.into();
                for i in 0..POINTS_PER_SERIES {
                    batch.push(Point {
                        device: device.clone(),
                        metric: metric.clone(),
                        ts_ms: t0 + i * STEP_MS,
                        value: (i % 17) as f64,
                    });
                }
            }
            if batch.len() >= 50_000 {
                store.append(&batch).await.unwrap();
                batch.clear();
            }
        }
        store.append(&batch).await.unwrap();
        secret
    };
    let preloaded = (DEVICES * METRICS.len()) as u64 * POINTS_PER_SERIES as u64;

    // The history spans 30 days (rollups give the maintenance pass work), longer than the
    // default raw retention: keep raw points longer, so that none may legitimately expire
    // before the count below.
    std::fs::write(
        data.join("sentio.toml"),
        "[store.retention]\nraw = \"400d\"\n",
    )
    .unwrap();
    let (mut child, http_addr, _) = support::spawn_sentio(&data, None);
    // Points acknowledged by the running node.
    let now = now_ms();
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"ts": now - 100 + i, "temperature": 20.0}))
        .collect();
    let (status, body) = http(
        "POST",
        format!("http://{http_addr}/api/v1/devices/dev-0000/telemetry"),
        basic("dev-0000", &secret),
        Some(serde_json::to_vec(&items).unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The first maintenance pass starts 5 s after start: stop in the middle of it.
    tokio::time::sleep(Duration::from_secs(7)).await;

    let pid = child.id().to_string();
    let asked = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if asked.elapsed() > Duration::from_secs(10) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("sentio still runs 10 s after SIGTERM");
    };
    assert!(status.success(), "a graceful stop exits 0: {status:?}");

    // A restart sees every point: the preloaded history and the acknowledged ones.
    let store = SqliteStore::open(&data).unwrap();
    assert_eq!(stored_points(&store).await, preloaded + 100);
}
