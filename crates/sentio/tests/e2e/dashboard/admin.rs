//! The admin's pages in a real browser (`tests/browser/admin.mjs`): rules (a bad condition's
//! message at its field, a rule replayed over stored history with its open/resolve span drawn
//! on the chart), provisioning (the secret shown once; the curl, mosquitto_pub and Python
//! examples run as shown store their reading), users and tokens, the system page; and a viewer
//! created there who sees no admin page or edit control and whom the API refuses anyway.

use serde_json::{Value, json};

use super::{add_user, run_browser, shots_dir};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_rules_devices_users_and_the_system_page() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    // An hour of pump-1's temperature, a minute apart, over 90 for ten minutes in the middle:
    // what a rule created later would have fired on once.
    let secret = register(&node, "pump-1", "pump").await;
    let now = now_ms();
    let items: Vec<Value> = (0..60)
        .map(|i| {
            let temp = if (20..30).contains(&i) { 95.0 } else { 50.0 };
            json!({"ts": now - (60 - i) * 60_000, "temp": temp})
        })
        .collect();
    let (st, body) = post_telemetry(&node, "pump-1", &secret, &items).await;
    assert_eq!(st, 200, "{body}");
    let admin = add_user(&node, "ann", "admin").await;
    let shots = shots_dir("admin");
    let ran = run_browser(
        "admin.mjs",
        &[
            ("SENTIO_URL", format!("http://{}", node.http_addr)),
            ("SENTIO_ADMIN", format!("ann:{admin}")),
            ("SENTIO_DEVICE", format!("pump-1:{secret}")),
            ("SENTIO_SHOTS", shots.display().to_string()),
        ],
    )
    .await;
    if ran {
        println!("screenshots: {}", shots.display());
        // What the browser did reached the server: the rule, the device, the viewer.
        let (st, rule) = api(&node, "GET", "/api/v1/rules/hot", None).await;
        assert_eq!(
            (st, rule["name"].as_str()),
            (200, Some("Hot pump, edited")),
            "{rule}"
        );
        let (st, _) = api(&node, "GET", "/api/v1/devices/boiler-1", None).await;
        assert_eq!(st, 200);
        let (st, vic) = api(&node, "GET", "/api/v1/users/vic", None).await;
        assert_eq!((st, vic["role"].as_str()), (200, Some("viewer")), "{vic}");
    }
    node.shutdown().await;
}
