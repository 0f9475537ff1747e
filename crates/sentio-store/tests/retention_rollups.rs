//! Retention on the embedded store, where it depends on how SQLite keeps data: settled days of
//! 1-minute rollups are packed, and the disk budget counts the data directory's bytes. What
//! every backend does (expiry, rollups answering) is in the contract (`contract/retention.rs`).

mod contract;
#[path = "retention_rollups/edge_budget.rs"]
mod edge_budget;
#[path = "retention_rollups/late_batches.rs"]
mod late_batches;

use std::sync::Arc;

use contract::retention::{DAY, HOUR, T0, fleet, has_raw, maintain_all, policy, q};
use contract::{Backend, point as point_of};
use sentio_core::Point;
use sentio_store::{Agg, NewDevice, Resolution, SqliteStore, Stores};

fn point(dev: &str, ts_ms: i64, v: f64) -> Point {
    point_of(dev, "t", ts_ms, v)
}

/// The store already opened, given to the contract's helpers.
struct Opened(Arc<SqliteStore>);

impl Backend for Opened {
    fn open(&self) -> Stores {
        Stores::of(self.0.clone())
    }
}

#[tokio::test]
async fn settled_days_of_minute_rollups_are_packed_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let s = fleet(&Opened(store.clone())).await;
    s.retention.set_retention(policy()).await.unwrap();
    let now = T0 + 120 * DAY;
    maintain_all(&s, now).await;
    let packed = store.rollup_stats().await.unwrap();
    assert!(
        packed.packed_rows > packed.minute_rows && packed.packed_bytes < packed.packed_rows * 8,
        "{packed:?}"
    );
    // A 5-minute step over expired raw, within 90 days: answered from the packed days.
    let day = T0 + 100 * DAY;
    let (fine, res) = q(
        &s,
        "room-1",
        (day, day + HOUR),
        Some((5 * 60_000, Agg::Count)),
    )
    .await;
    assert_eq!(res, Resolution::Minute);
    assert_eq!(fine.points.len(), 12);
    assert!(fine.points.iter().all(|(_, c)| *c == 1.0), "{fine:?}");
}

#[tokio::test]
async fn over_the_disk_budget_the_oldest_raw_points_go_and_rollups_stay() {
    // Two series at 1 s with full-precision values (about 8 bytes a point): raw points are
    // most of the database, so removing the oldest of them brings it under the budget.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let s = Stores::of(store.clone());
    let days = 3;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for dev in ["meter-1", "meter-2"] {
        s.registry.create_device(NewDevice::new(dev)).await.unwrap();
        let pts: Vec<Point> = (0..days * DAY / 1000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                point(dev, T0 + i * 1000, (x >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        for batch in pts.chunks(50_000) {
            s.series.append(batch).await.unwrap();
        }
    }
    store.seal_all().await.unwrap();
    let now = T0 + days * DAY;
    let r = maintain_all(&s, now).await;
    assert_eq!(
        (r.expired_points, r.evicted_points),
        (0, 0),
        "7 days of raw kept"
    );
    store.checkpoint().await.unwrap();
    let before = s.retention.storage().await.unwrap();
    assert!(!before.over_budget && before.budget_bytes.is_none());
    // The database holds the points; with its log it is (nearly) all of the directory.
    assert!(before.database_bytes > 0, "{before:?}");
    assert!(
        before.database_bytes + before.log_bytes + before.broker_bytes <= before.bytes,
        "{before:?}"
    );

    let live = before.bytes - before.free_bytes;
    s.maintenance.set_disk_budget(Some(live * 6 / 10));
    let r = maintain_all(&s, now).await;
    assert!(r.evicted_points > 0, "{r:?}");
    let after = s.retention.storage().await.unwrap();
    assert!(after.over_budget, "{after:?}");
    assert!(
        after.bytes - after.free_bytes <= live * 6 / 10,
        "{before:?} {after:?}"
    );
    assert_eq!(after.budget_evicted_points, r.evicted_points);
    for dev in ["meter-1", "meter-2"] {
        // The oldest raw points went first; the rollups still answer for them.
        assert!(!has_raw(&s, dev, T0, T0 + HOUR).await, "{dev}");
        let (c, res) = q(&s, dev, (T0, T0 + HOUR), Some((HOUR, Agg::Count))).await;
        assert_eq!(
            (c.points, res),
            (vec![(T0, 3600.0)], Resolution::Hour),
            "{dev}"
        );
        // The newest stay.
        let newest = q(&s, dev, (now - HOUR, now), None).await.0.points;
        assert_eq!(newest.len(), 3600, "{dev}");
    }
    // Under the budget again: the pressure is over.
    maintain_all(&s, now).await;
    assert!(!s.retention.storage().await.unwrap().over_budget);
}

/// The current day's settled hours are packed, not only whole days: a live series keeps just
/// its last hour or two as plain rows. A late point into a packed hour (raw expired there)
/// unpacks the day, is counted in its minute, and the day is packed again.
#[tokio::test]
async fn settled_hours_of_the_current_day_are_packed_and_a_late_point_repacks_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let s = Stores::of(store.clone());
    s.registry
        .create_device(NewDevice::new("m-1"))
        .await
        .unwrap();
    // Three hours from a day's start, a point every 10 s.
    let pts: Vec<Point> = (0..3 * 360)
        .map(|i| point("m-1", T0 + i * 10_000, (i % 50) as f64))
        .collect();
    s.series.append(&pts).await.unwrap();
    store.seal_all().await.unwrap();
    s.retention
        .set_retention(sentio_store::RetentionPolicy {
            raw_ms: HOUR,
            ..Default::default()
        })
        .await
        .unwrap();
    // Rolled up to 3 h 5 min; hours ending an hour before that are settled: the first two.
    let now = T0 + 3 * HOUR + 10 * 60_000;
    maintain_all(&s, now).await;
    let stats = |r: sentio_store::RollupStats| (r.packed_rows, r.minute_rows);
    assert_eq!(stats(store.rollup_stats().await.unwrap()), (120, 60));
    assert_eq!(
        counts(&s, (T0, T0 + 2 * HOUR), 30 * 60_000).await,
        (vec![180.0; 4], Resolution::Minute)
    );

    s.series
        .append(&[point("m-1", T0 + 30 * 60_000 + 5_000, 7.0)])
        .await
        .unwrap();
    maintain_all(&s, now + 60_000).await;
    assert_eq!(stats(store.rollup_stats().await.unwrap()), (120, 60));
    assert_eq!(
        counts(&s, (T0, T0 + 2 * HOUR), 30 * 60_000).await,
        (vec![180.0, 181.0, 180.0, 180.0], Resolution::Minute)
    );
    assert_eq!(
        counts(&s, (T0 + 30 * 60_000, T0 + 31 * 60_000), 60_000)
            .await
            .0,
        vec![7.0]
    );
}

/// Point counts of m-1 per `step` over `range`, and the tier that answered.
async fn counts(s: &Stores, range: (i64, i64), step: i64) -> (Vec<f64>, Resolution) {
    let (c, res) = q(s, "m-1", range, Some((step, Agg::Count))).await;
    (c.points.iter().map(|p| p.1).collect(), res)
}
