//! `sentio backup` while a node runs, and `sentio restore` into a new data directory
//! that a node then serves with the same devices, secrets, points and alerts.

use std::process::Command;

use crate::support::*;
use serde_json::{Value, json};

fn sentio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args(args)
        .output()
        .expect("run sentio");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_running_restores_into_a_working_node() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let node = start(&data).await;
    let secret = register(&node, "meter-1", "meter").await;
    let t0 = sentio_core::time::now_ms() - 3_600_000;
    let before: Vec<Value> = (0..2_000)
        .map(|i| json!({"ts": t0 + i * 1_000, "power": 100.0 + (i % 10) as f64}))
        .collect();
    assert_eq!(
        post_telemetry(&node, "meter-1", &secret, &before).await.0,
        200
    );

    // The node keeps running (and accepting data) while the backup is taken.
    let file = work.path().join("sentio.backup");
    let file_s = file.to_str().unwrap();
    let data_s = data.to_str().unwrap();
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, f) = (data_s.to_string(), file_s.to_string());
        move || sentio(&["backup", "--data", &d, "--to", &f])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("backup of"), "{out}");
    let after: Vec<Value> = (2_000..2_100)
        .map(|i| json!({"ts": t0 + i * 1_000, "power": 5.0}))
        .collect();
    assert_eq!(
        post_telemetry(&node, "meter-1", &secret, &after).await.0,
        200
    );

    // A second backup to the same file is refused, not overwritten.
    let (ok, out) = sentio(&["backup", "--data", data_s, "--to", file_s]);
    assert!(!ok && out.contains("already exists"), "{out}");
    node.shutdown().await;

    // Restore into a new directory and serve it.
    let restored = work.path().join("restored");
    let restored_s = restored.to_str().unwrap();
    let (ok, out) = sentio(&["restore", "--from", file_s, "--data", restored_s]);
    assert!(ok, "{out}");
    assert!(out.contains("restored"), "{out}");
    // Restoring over a directory that holds a database is refused.
    let (ok, out) = sentio(&["restore", "--from", file_s, "--data", data_s]);
    assert!(!ok && out.contains("already holds"), "{out}");
    // A file that is not a backup is refused clearly.
    let bogus = work.path().join("bogus");
    std::fs::write(&bogus, b"not a backup").unwrap();
    let (ok, out) = sentio(&[
        "restore",
        "--from",
        bogus.to_str().unwrap(),
        "--data",
        work.path().join("x").to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");

    let node = start(&restored).await;
    let pts = points(&node, "meter-1", "power").await;
    assert_eq!(pts.len(), 2_000, "exactly the points before the backup");
    assert_eq!(pts[0], (t0, 100.0));
    // The device's secret still works: the registry and its digest key came back.
    let more = [json!({"ts": t0 + 3_000_000, "power": 7.0})];
    assert_eq!(
        post_telemetry(&node, "meter-1", &secret, &more).await.0,
        200
    );
    assert_eq!(
        post_telemetry(&node, "meter-1", "wrong-secret", &more)
            .await
            .0,
        401
    );
    node.shutdown().await;
}
