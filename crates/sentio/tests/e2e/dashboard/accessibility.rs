//! axe-core on every page (`tests/browser/a11y.mjs`): the sign-in page, then fleet, device,
//! alerts, rules, provisioning, users, system and my tokens as the admin and the viewer's
//! pages (and a refused one) as a viewer, each at a desktop and a 375 px width; any violation
//! fails the test, printed. Each page's screenshot at each width lands in one folder, printed.
//! Then the keyboard alone (Tab and Enter): sign in, open the alerts page, acknowledge an alert.

use serde_json::{Value, json};

use super::{add_user, node_with_hot_pump_rule, run_browser, shots_dir};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_no_axe_violation_at_desktop_and_phone_width() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_hot_pump_rule(dir.path()).await;
    let secret = register(&node, "pump-1", "pump").await;
    let now = now_ms();
    let items: Vec<Value> = (0..30)
        .map(|i| {
            let temp = if i == 29 { 95.0 } else { 50.0 + (i % 5) as f64 };
            json!({"ts": now - (30 - i) * 60_000, "temp": temp, "load": i})
        })
        .collect();
    let (st, body) = post_telemetry(&node, "pump-1", &secret, &items).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = post_telemetry(&node, "pump-1", &secret, &[json!({"state": "running"})]).await;
    assert_eq!(st, 200, "{body}");
    wait_for_kind(&node, "pump-1", "limit", 30).await;
    let admin = add_user(&node, "ann", "admin").await;
    let viewer = add_user(&node, "vic", "viewer").await;
    let shots = shots_dir("every-page");
    if run_browser(
        "a11y.mjs",
        &[
            ("SENTIO_URL", format!("http://{}", node.http_addr)),
            ("SENTIO_ADMIN", format!("ann:{admin}")),
            ("SENTIO_VIEWER", format!("vic:{viewer}")),
            ("SENTIO_DEVICE", "pump-1".into()),
            ("SENTIO_SHOTS", shots.display().to_string()),
        ],
    )
    .await
    {
        println!("screenshots of every page: {}", shots.display());
    }
    node.shutdown().await;
}
