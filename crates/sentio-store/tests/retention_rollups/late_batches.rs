//! A group commit mixes many devices' payloads: late points of several series, interleaved and
//! out of order in one append, must each update their own series' minutes once rolled up.

use std::sync::Arc;

use crate::contract;
use contract::point;
use contract::retention::{DAY, EVERY, MIN, T0, fleet, maintain_all, policy, value};
use sentio_core::{DeviceId, Point};
use sentio_store::{Resolution, SqliteStore};

#[tokio::test]
async fn late_points_of_many_series_in_one_append_each_reach_their_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let s = fleet(&crate::Opened(store)).await;
    s.retention.set_retention(policy()).await.unwrap();
    let now = T0 + 120 * DAY;
    maintain_all(&s, now).await;

    // An hour already rolled up, raw still kept; the fleet has one point every 5 minutes, at
    // the start of each 5 minutes. One append: minutes 3, 2, 1 (newest first), each minute's
    // points of three devices one after the other, then a duplicate of room-2's minute 2.
    let hour = now - DAY;
    let devices = ["room-1", "room-2", "pump-1"];
    let late = |d: usize, m: i64| -> Point {
        point(
            devices[d],
            "t",
            hour + m * MIN + 30_000,
            100.0 * (d as f64 + 1.0) + m as f64,
        )
    };
    let mut batch = Vec::new();
    for m in [3, 2, 1] {
        for d in 0..devices.len() {
            batch.push(late(d, m));
        }
    }
    batch.push(point("room-2", "t", hour + 2 * MIN + 30_000, -1.0));
    s.series.append(&batch).await.unwrap();
    maintain_all(&s, now).await;

    let grid = value((hour - T0) / EVERY);
    for (d, device) in devices.iter().enumerate() {
        let rows = s
            .series
            .rollups(
                &DeviceId::parse(device).unwrap(),
                "t",
                Resolution::Minute,
                hour,
                4,
            )
            .await
            .unwrap();
        let sums: Vec<(i64, u64, f64)> = rows
            .iter()
            .map(|r| ((r.bucket_ms - hour) / MIN, r.count, r.sum))
            .collect();
        let own = |m: i64| {
            if *device == "room-2" && m == 2 {
                -1.0 // the later duplicate wins
            } else {
                100.0 * (d as f64 + 1.0) + m as f64
            }
        };
        assert_eq!(
            sums,
            vec![(0, 1, grid), (1, 1, own(1)), (2, 1, own(2)), (3, 1, own(3)),],
            "{device}"
        );
    }
}
