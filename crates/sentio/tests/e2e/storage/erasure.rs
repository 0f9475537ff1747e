//! Erasure leaves nothing of the device in any file. A device's points (raw, sealed
//! and rolled up), a text event and its registry row are written and checkpointed; the test
//! first finds its id, a distinctive value and the text in the data directory's files (so the
//! search can fail), then erases the device through the API, stops the node (which
//! checkpoints and removes the write-ahead log) and finds none of them in any file.

use std::path::Path;

use crate::support::*;
use serde_json::json;

const DEVICE: &str = "erasable-meter-7f3a";
const VALUE: f64 = 271_828.182_845_9;
const TEXT: &str = "calibration-by-Ada-Q17";

/// Which needles occur in some file under `dir`, and where.
fn find(dir: &Path, needles: &[(&str, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // The node runs while this walks: the broker's queue store may rotate or compact a
        // file away between the listing and the read; a file that is gone holds nothing.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            for (name, needle) in needles {
                if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    found.push(format!("{name} in {}", path.display()));
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_device_leaves_nothing_in_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    // Raw points older than one day expire into rollups, so every tier holds the value.
    let (st, b) = api(
        &node,
        "PUT",
        "/api/v1/retention",
        Some(json!({"global": "1d"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let secret = register(&node, DEVICE, "meter").await;
    let now = sentio_core::time::now_ms();
    // On an hour boundary: the value (5 minutes in) falls in the first hourly bucket.
    let old = (now - 3 * 86_400_000) / 3_600_000 * 3_600_000;
    let mut batch: Vec<serde_json::Value> = (0..600)
        .map(|i| json!({"ts": old + i * 1000, "e": if i == 300 { VALUE } else { i as f64 }}))
        .collect();
    batch.extend((0..600).map(
        |i| json!({"ts": now - 3_600_000 + i * 1000, "e": if i == 300 { VALUE } else { i as f64 }}),
    ));
    batch.push(json!({"ts": now, "e": VALUE, "note": TEXT}));
    let (st, b) = http(
        "POST",
        format!(
            "http://{}/api/v1/devices/{DEVICE}/telemetry",
            node.http_addr
        ),
        basic(DEVICE, &secret),
        Some(json!(batch).to_string().into_bytes()),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    // Wait for the maintenance loop: the old raw points expired, their rollups answer.
    let series = format!(
        "/api/v1/devices/{DEVICE}/series/e?from={old}&to={}&step=1h&agg=max",
        old + 600_000
    );
    // A bound, not a timing: a pass every 5 s does it in one or two on an idle box, but a
    // loaded 2-core box once needed more than a minute.
    eventually(180, || async {
        let (_, b) = api(&node, "GET", &series, None).await;
        (b["resolution"] == "1h" && b["points"][0][1] == VALUE).then_some(())
    })
    .await
    .expect("rollups answer for the expired points");
    node.shutdown().await;

    let needles = [
        ("device id", DEVICE.as_bytes().to_vec()),
        (
            "value (SQLite REAL, big-endian)",
            VALUE.to_be_bytes().to_vec(),
        ),
        ("text event", TEXT.as_bytes().to_vec()),
    ];
    let before = find(dir.path(), &needles);
    for (name, _) in &needles {
        assert!(
            before.iter().any(|f| f.starts_with(name)),
            "{name} should be on disk before the erasure: {before:?}"
        );
    }

    let node = start(dir.path()).await;
    let (st, b) = api(
        &node,
        "DELETE",
        &format!("/api/v1/devices/{DEVICE}?erase=true"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert!(b["removed"]["rollups"].as_u64().unwrap() > 0, "{b}");
    assert_eq!(b["removed"]["events"], 1, "{b}");
    node.shutdown().await;

    let after = find(dir.path(), &needles);
    assert!(after.is_empty(), "left after erasure: {after:?}");
}
