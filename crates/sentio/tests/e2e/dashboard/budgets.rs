//! The page's figures, measured in the browser (`tests/browser/budgets.mjs`) against a node
//! holding 100 devices with an hour of readings each, 10,000 alerts (1,000 of them open) and
//! one device with a month of one-second data (2.6 M points), all written to the store before
//! the node starts: the page's bytes and its JavaScript's (gzipped), the time to a usable fleet
//! page and to a month drawn.

use std::sync::Arc;

use sentio_core::{Alert, AlertId, AlertState, DeviceId, Explanation, Point};
use sentio_store::{AlertStore, DeviceRegistry, NewDevice, SeriesStore, SqliteStore};

use super::{add_user, run_browser, shots_dir};
use crate::support::*;

const DEVICES: usize = 100;
const ALERTS: usize = 10_000;
/// One alert in ten is still open.
const OPEN_EVERY: usize = 10;
const DAY_MS: i64 = 86_400_000;
const MONTH_S: i64 = 30 * 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_100_with_10000_alerts_and_a_month_of_seconds_load_within_budget() {
    let _heavy = heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = now_ms();
    {
        let store = SqliteStore::open(&data).unwrap();
        let kinds = ["room", "pump", "wearable"];
        let mut batch = Vec::new();
        for d in 0..DEVICES {
            let id = format!("dev-{d:03}");
            let mut new = NewDevice::new(&id);
            new.kind = Some(kinds[d % kinds.len()].into());
            new.labels.insert("site".into(), format!("plant-{}", d % 4));
            store.create_device(new).await.unwrap();
            let device = DeviceId::parse(&id).unwrap();
            let metric: Arc<str> = "temp".into();
            // The last hour at one minute; dev-000 has a month at one second.
            let (n, step) = if d == 0 {
                (MONTH_S, 1_000)
            } else {
                (60, 60_000)
            };
            for i in 0..n {
                batch.push(Point {
                    device: device.clone(),
                    metric: metric.clone(),
                    ts_ms: now - (n - i) * step,
                    value: 20.0 + ((i % 600) as f64 / 60.0).sin() * 5.0 + (d % 7) as f64,
                });
                if batch.len() >= 100_000 {
                    store.append(&batch).await.unwrap();
                    batch.clear();
                }
            }
        }
        store.append(&batch).await.unwrap();
        for i in 0..ALERTS {
            let opened_ms = now - DAY_MS + (i as i64) * 1_000;
            let open = i % OPEN_EVERY == 0;
            store
                .save_alert(&Alert {
                    id: AlertId::UNSAVED,
                    device: format!("dev-{:03}", i % DEVICES),
                    metric: "temp".into(),
                    state: if open {
                        AlertState::Open
                    } else {
                        AlertState::Resolved
                    },
                    opened_ms,
                    last_anomaly_ms: opened_ms,
                    resolved_ms: (!open).then_some(opened_ms + 60_000),
                    anomalous_points: 1,
                    explanation: Explanation::default(),
                    peak: Explanation::default(),
                    feedback: None,
                    ack: None,
                    resolved_by: None,
                    silenced_by: None,
                })
                .await
                .unwrap();
        }
    }
    let mut config = node_config(&dir.path().join("data"));
    config.http.admin_token = Some(TOKEN.into());
    // Keep the month raw: the chart reads the points themselves, not rollups.
    config.store.retention.raw = Some(sentio::config::Span(60 * DAY_MS));
    let node = try_start(config).await.expect("node starts");
    let password = add_user(&node, "olga", "operator").await;
    let shots = shots_dir("budgets");
    run_browser(
        "budgets.mjs",
        &[
            ("SENTIO_URL", format!("http://{}", node.http_addr)),
            ("SENTIO_OPERATOR", format!("olga:{password}")),
            ("SENTIO_DEVICES", DEVICES.to_string()),
            ("SENTIO_ALERTS", ALERTS.to_string()),
            ("SENTIO_OPEN_ALERTS", (ALERTS / OPEN_EVERY).to_string()),
            ("SENTIO_MONTH_DEVICE", "dev-000".into()),
            ("SENTIO_SHOTS", shots.display().to_string()),
        ],
    )
    .await;
    node.shutdown().await;
}
