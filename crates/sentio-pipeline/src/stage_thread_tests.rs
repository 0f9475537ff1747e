//! The writer and the detectors run on threads of their own: a runtime held by other work (a
//! busy broker's connection tasks) does not stop points from being committed and scored, and
//! the detectors' thread runs below the node's priority.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sentio_core::{DeviceId, Point};
use sentio_store::{NewDevice, SqliteStore, Stores};

use crate::{LocalBus, Pipeline, PipelineConfig, Stats};

const POINTS: usize = 2_000;

async fn started(dir: &std::path::Path) -> Pipeline {
    let store = Arc::new(SqliteStore::open(dir).unwrap());
    let stores = Stores::of(store);
    stores
        .registry
        .create_device(NewDevice::new("d1"))
        .await
        .unwrap();
    Pipeline::start(
        PipelineConfig::default(),
        stores,
        Arc::new(LocalBus::new(1024)),
        None,
    )
    .await
    .unwrap()
}

/// The only worker of the runtime that feeds ingest is held (as by a busy broker) right after
/// the points are queued: they are committed and scored all the same.
#[tokio::test(flavor = "current_thread")]
async fn points_are_stored_and_scored_while_the_feeding_runtime_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = started(dir.path()).await;
    let device = DeviceId::parse("d1").unwrap();
    let t0 = sentio_core::time::now_ms() - POINTS as i64 * 1000;
    let points = (0..POINTS)
        .map(|i| Point {
            device: device.clone(),
            metric: "m".into(),
            ts_ms: t0 + i as i64 * 1000,
            value: (i % 7) as f64,
        })
        .collect();
    pipeline
        .ingest
        .submit(points, Vec::new(), false)
        .await
        .unwrap();
    // From here on this runtime runs nothing until the loop ends: a blocking wait on its only
    // worker.
    let stats = pipeline.stats.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Stats::get(&stats.points_scored) < POINTS as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (stored, scored) = (
        Stats::get(&stats.points_stored),
        Stats::get(&stats.points_scored),
    );
    pipeline.shutdown().await;
    assert_eq!(
        stored, POINTS as u64,
        "committed while the runtime was held"
    );
    assert_eq!(scored, POINTS as u64, "scored while the runtime was held");
}

/// Every detect thread runs `detect_nice` steps below the threads that start it.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_detectors_run_below_the_node_s_priority() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = started(dir.path()).await;
    let base = crate::stage_thread::current_nice().unwrap();
    let expected = (base + crate::DEFAULT_DETECT_NICE).min(19);
    let mut detect_threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim() != "sentio-detect" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        // After the command's closing parenthesis: state is field 3, nice field 19.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        detect_threads.push(fields[16].parse::<i32>().unwrap());
    }
    pipeline.shutdown().await;
    assert!(!detect_threads.is_empty(), "a thread named sentio-detect");
    assert!(
        detect_threads.iter().all(|&nice| nice == expected),
        "nice {detect_threads:?}, expected {expected}"
    );
}

/// Blocking work started from a stage (the store's SQLite calls) runs at the stage's priority,
/// whichever thread made the stage's blocking pool start its thread.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_stage_s_blocking_work_runs_at_the_stage_s_priority() {
    let base = crate::stage_thread::current_nice().unwrap();
    let stage = crate::StageThread::start("stage-nice-test", 5).unwrap();
    // First, when the pool's thread is started from outside the stage (this test's thread).
    let from_outside = stage
        .handle()
        .spawn_blocking(crate::stage_thread::current_nice)
        .await
        .unwrap();
    let on_stage = stage
        .spawn(async {
            let blocking = tokio::task::spawn_blocking(crate::stage_thread::current_nice)
                .await
                .unwrap();
            (crate::stage_thread::current_nice(), blocking)
        })
        .await
        .unwrap();
    stage.stop().await;
    let expected = Some((base + 5).min(19));
    assert_eq!(
        on_stage,
        (expected, expected),
        "the stage and its blocking pool"
    );
    assert_eq!(
        from_outside, expected,
        "a pool thread started from elsewhere"
    );
}
