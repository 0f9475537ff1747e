//! The store's background work (sealing, rollups, retention, the disk budget) runs on a thread
//! of its own, below the node's priority, with its SQLite calls on that thread's own blocking
//! pool: never on the runtime whose workers carry the broker's connections.

use crate::support;

/// The name and nice value of every thread of this process whose name starts with `prefix`.
fn nice_of_threads(prefix: &str) -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let comm = comm.trim().to_string();
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state is field 3, nice field 19.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        found.push((comm, fields[16].parse::<i32>().unwrap()));
    }
    found
}

/// The calling thread's nice value.
fn own_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_s_maintenance_runs_on_its_own_thread_below_the_node_s_priority() {
    let dir = tempfile::tempdir().unwrap();
    let base = own_nice();
    let node = support::start(dir.path()).await;
    // The first round (5 s after the start) calls the store: its SQLite work runs on the
    // store thread's blocking pool ("sentio-store-blocking", cut to 15 characters).
    let threads = support::eventually(20, || async {
        let threads = nice_of_threads("sentio-store");
        threads
            .iter()
            .any(|(name, _)| name.starts_with("sentio-store-b"))
            .then_some(threads)
    })
    .await;
    node.shutdown().await;
    let threads = threads.expect("the store's maintenance called the store from its own thread");
    let expected = (base + 10).min(19);
    assert!(
        threads.iter().any(|(name, _)| name == "sentio-store"),
        "a thread named sentio-store: {threads:?}"
    );
    assert!(
        threads.iter().all(|&(_, nice)| nice == expected),
        "every store thread at nice {expected}: {threads:?}"
    );
}
