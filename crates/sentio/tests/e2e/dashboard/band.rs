//! The AI engine's expected band drawn on the device page (`tests/browser/band.mjs`): a series
//! the engine has scored gets a shaded band behind its line, a young one has none; the
//! forecast's 95 % interval is shaded and its mean dashed after the last point, while the
//! window ends now.

use serde_json::{Value, json};

use super::{add_user, run_browser, shots_dir};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_page_shades_the_expected_band_behind_a_scored_series() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "boiler-1", "boiler").await;
    // Ten minutes of `temp` a second apart (past the engine's warm-up); `young` only five points.
    let now = now_ms();
    let items: Vec<Value> = (0..600)
        .map(|i| {
            let mut v = json!({"ts": now - (600 - i) * 1_000, "temp": 60.0 + (i % 7) as f64 * 0.1});
            if i % 120 == 0 {
                v["young"] = json!(i);
            }
            v
        })
        .collect();
    let (st, body) = post_telemetry(&node, "boiler-1", &secret, &items).await;
    assert_eq!(st, 200, "{body}");
    // The bands are saved with the detector state: at the latest when the node stops.
    eventually(10, || async {
        (points(&node, "boiler-1", "temp").await.len() == 600).then_some(())
    })
    .await
    .expect("points stored");
    node.shutdown().await;
    let node = start(dir.path()).await;
    let (st, band) = api(
        &node,
        "GET",
        "/api/v1/devices/boiler-1/series/temp/band",
        None,
    )
    .await;
    assert_eq!(st, 200, "{band}");
    assert!(!band["bands"].as_array().unwrap().is_empty(), "{band}");

    let viewer = add_user(&node, "vic", "viewer").await;
    let shots = shots_dir("band");
    if run_browser(
        "band.mjs",
        &[
            ("SENTIO_URL", format!("http://{}", node.http_addr)),
            ("SENTIO_VIEWER", format!("vic:{viewer}")),
            ("SENTIO_DEVICE", "boiler-1".into()),
            ("SENTIO_SHOTS", shots.display().to_string()),
        ],
    )
    .await
    {
        println!("screenshots: {}", shots.display());
    }
    node.shutdown().await;
}
