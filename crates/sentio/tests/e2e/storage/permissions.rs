//! The data directory is private to the node's user: the database (which holds the key that
//! digests every secret), its WAL, the broker's state and a backup are readable by nobody else,
//! and a directory left readable by an older version is tightened at start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::*;
use serde_json::json;

/// Every entry under `root` (itself included) whose mode lets group or others read, write or
/// enter it, with its mode.
fn exposed(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            found.push((path.clone(), mode));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    found
}

fn count_files(root: &Path) -> usize {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                1 + count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_a_backup_are_readable_by_their_owner_only() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let node = start(&data).await;
    let secret = register(&node, "meter-1", "meter").await;
    // Telemetry over HTTP and over MQTT with a persistent session, so the database, its WAL
    // and the broker's state files all exist.
    let t0 = now_ms() - 60_000;
    let items: Vec<_> = (0..100)
        .map(|i| json!({"ts": t0 + i * 100, "power": i as f64}))
        .collect();
    assert_eq!(
        post_telemetry(&node, "meter-1", &secret, &items).await.0,
        200
    );
    let (client, mut el) = mqtt_connect(&node, "meter-1", "meter-1", &secret)
        .await
        .unwrap();
    publish_acked(
        &client,
        &mut el,
        "devices/meter-1/telemetry",
        br#"{"power": 1.5}"#.to_vec(),
    )
    .await
    .unwrap();
    let exposed_while_running = exposed(&data);
    drop(client);

    // `sentio backup`, the real binary, while the node runs.
    let file = work.path().join("sentio.backup");
    let out = tokio::task::spawn_blocking({
        let (d, f) = (data.clone(), file.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sentio"))
                .arg("backup")
                .arg("--data")
                .arg(d)
                .arg("--to")
                .arg(f)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    node.shutdown().await;

    assert!(count_files(&data) >= 3, "the node wrote its files");
    assert!(
        exposed_while_running.is_empty(),
        "readable by others while the node runs: {exposed_while_running:?}"
    );
    let after = exposed(&data);
    assert!(after.is_empty(), "readable by others: {after:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup holds every secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_readable_by_others_is_tightened_at_start() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old = data.join("notes.txt");
    std::fs::write(&old, b"left by an older version").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();

    let node = start(&data).await;
    register(&node, "meter-1", "meter").await;
    node.shutdown().await;

    let left = exposed(&data);
    assert!(left.is_empty(), "readable by others: {left:?}");
    // Only group and other bits go: the owner keeps its access.
    let mode = std::fs::metadata(&old).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
