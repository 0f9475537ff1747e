//! The packed head (one blob per series and append) read, sealed, expired and migrated as if
//! every point were a row: the later append wins on an equal timestamp, a read crosses blobs
//! and chunks, a blob cut by the seal or by expiry keeps its other points, and a data
//! directory with an older head (row per point, or blobs keyed by series) opens with every
//! point.

use std::sync::Arc;

use sentio_core::{DeviceId, Point};
use sentio_store::{
    Agg, DeviceRegistry, Maintenance, NewDevice, RangeQuery, RetentionPolicy, RetentionStore,
    SealPolicy, SeriesStore, SqliteStore,
};

const POLICY: SealPolicy = SealPolicy {
    seal_age_ms: 60_000,
    chunk_points: 50,
    max_wait_ms: 120_000,
};

fn point(ts_ms: i64, value: f64) -> Point {
    Point {
        device: DeviceId::parse("d1").unwrap(),
        metric: Arc::from("t"),
        ts_ms,
        value,
    }
}

fn run(from_s: i64, to_s: i64, value: impl Fn(i64) -> f64) -> Vec<Point> {
    (from_s..to_s).map(|i| point(i * 1000, value(i))).collect()
}

async fn raw(store: &SqliteStore, from: i64, to: i64, limit: usize) -> Vec<(i64, f64)> {
    store
        .query(RangeQuery {
            device: DeviceId::parse("d1").unwrap(),
            metric: "t".into(),
            from_ms: from,
            to_ms: to,
            step: None,
            limit,
        })
        .await
        .unwrap()
        .points
}

async fn agg(store: &SqliteStore, from: i64, to: i64, step: i64, agg: Agg) -> Vec<(i64, f64)> {
    store
        .query(RangeQuery {
            device: DeviceId::parse("d1").unwrap(),
            metric: "t".into(),
            from_ms: from,
            to_ms: to,
            step: Some((step, agg)),
            limit: 1000,
        })
        .await
        .unwrap()
        .points
}

/// Whether the store's database in `dir` has a table `name` (the store closed).
fn has_table(dir: &std::path::Path, name: &str) -> bool {
    let conn = rusqlite::Connection::open(dir.join(sentio_store::DB_FILE)).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

async fn unsealed(store: &SqliteStore, from: i64, to: i64) -> u64 {
    store
        .unsealed_points(&DeviceId::parse("d1").unwrap(), "t", from, to)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_timestamp_written_again_by_a_later_append_wins_in_the_head_sealed_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    store.append(&run(0, 10, |i| i as f64)).await.unwrap();
    // The same timestamps again, twice in one batch (the later of the batch wins too).
    store
        .append(&[point(3_000, 30.0), point(5_000, 0.5), point(5_000, 50.0)])
        .await
        .unwrap();
    store.append(&[point(5_000, 55.0)]).await.unwrap();
    let want = vec![
        (0, 0.0),
        (1_000, 1.0),
        (2_000, 2.0),
        (3_000, 30.0),
        (4_000, 4.0),
        (5_000, 55.0),
        (6_000, 6.0),
        (7_000, 7.0),
        (8_000, 8.0),
        (9_000, 9.0),
    ];
    assert_eq!(raw(&store, 0, 100_000, 100).await, want);
    assert_eq!(unsealed(&store, 0, 100_000).await, 10, "counted once each");
    assert_eq!(
        agg(&store, 0, 10_000, 10_000, Agg::Sum).await,
        vec![(0, 122.0)]
    );
    assert_eq!(
        agg(&store, 0, 10_000, 10_000, Agg::Count).await,
        vec![(0, 10.0)]
    );
    // A page boundary inside overlapping blobs.
    assert_eq!(raw(&store, 0, 100_000, 4).await, want[..4].to_vec());
    assert_eq!(raw(&store, 4_000, 100_000, 2).await, want[4..6].to_vec());
    let series = store.series(&DeviceId::parse("d1").unwrap()).await.unwrap();
    assert_eq!(
        (series[0].latest_ts_ms, series[0].latest_value),
        (9_000, 9.0)
    );

    // Reopened (the commit order survives), then sealed: the same answers.
    drop(store);
    let store = SqliteStore::open_with(
        dir.path(),
        SealPolicy {
            seal_age_ms: 0,
            max_wait_ms: 0,
            ..POLICY
        },
    )
    .unwrap();
    assert_eq!(raw(&store, 0, 100_000, 100).await, want);
    store.append(&[point(1_000, 11.0)]).await.unwrap();
    let mut want = want;
    want[1].1 = 11.0;
    assert_eq!(raw(&store, 0, 100_000, 100).await, want);
    let r = store.seal_all().await.unwrap();
    assert_eq!(r.points, 9, "the newest point stays in the head");
    let tiers = store.tier_stats().await.unwrap();
    assert_eq!((tiers.sealed_points, tiers.head_points), (9, 1));
    assert_eq!(raw(&store, 0, 100_000, 100).await, want);
    // A later append over a sealed point still wins.
    store.append(&[point(2_000, 22.0)]).await.unwrap();
    want[2].1 = 22.0;
    assert_eq!(raw(&store, 0, 100_000, 100).await, want);
}

#[tokio::test]
async fn a_range_read_crosses_blobs_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    // 400 s in appends of 40: 10 blobs; sealing leaves the last 60 s (and what waits for a
    // full chunk) in the head.
    for k in 0..10 {
        store
            .append(&run(k * 40, k * 40 + 40, |i| i as f64))
            .await
            .unwrap();
    }
    // A late blob over sealed and unsealed times, with points between the ticks.
    let late: Vec<Point> = (0..40).map(|i| point(i * 10_000 + 500, -1.0)).collect();
    store.seal_all().await.unwrap();
    store.append(&late).await.unwrap();
    let tiers = store.tier_stats().await.unwrap();
    assert!(
        tiers.chunks > 0 && tiers.head_points > 40,
        "both tiers hold points: {tiers:?}"
    );
    let mut want: Vec<(i64, f64)> = (0..400).map(|i| (i * 1000, i as f64)).collect();
    want.extend((0..40).map(|i| (i * 10_000 + 500, -1.0)));
    want.sort_by_key(|p| p.0);
    assert_eq!(raw(&store, 0, 1_000_000, 10_000).await, want);
    for (from, to) in [(95_000, 305_500), (339_999, 380_501), (1, 399_001)] {
        let part: Vec<(i64, f64)> = want
            .iter()
            .copied()
            .filter(|p| p.0 >= from && p.0 < to)
            .collect();
        assert_eq!(raw(&store, from, to, 10_000).await, part, "{from}..{to}");
        let sum: f64 = part.iter().map(|p| p.1).sum();
        let total = agg(&store, from, to, 1_000_000, Agg::Sum).await;
        assert_eq!(total, vec![(0, sum)], "{from}..{to}");
        // Page by page.
        let mut pages = Vec::new();
        let mut at = from;
        loop {
            let page = store
                .query(RangeQuery {
                    device: DeviceId::parse("d1").unwrap(),
                    metric: "t".into(),
                    from_ms: at,
                    to_ms: to,
                    step: None,
                    limit: 7,
                })
                .await
                .unwrap();
            pages.extend(page.points);
            match page.next {
                Some(n) => at = n,
                None => break,
            }
        }
        assert_eq!(pages, part, "pages of {from}..{to}");
    }
    // Sealing the rest changes no answer.
    drop(store);
    let store = SqliteStore::open_with(
        dir.path(),
        SealPolicy {
            seal_age_ms: 0,
            max_wait_ms: 0,
            ..POLICY
        },
    )
    .unwrap();
    store.seal_all().await.unwrap();
    assert_eq!(raw(&store, 0, 1_000_000, 10_000).await, want);
}

#[tokio::test]
async fn sealing_a_blob_that_straddles_the_cut_keeps_its_newer_points_in_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    // One append, one blob: 0..300 s. Seal age 60 s: 0..240 s is ready, in chunks of 50.
    let pts = run(0, 300, |i| (i % 13) as f64);
    store.append(&pts).await.unwrap();
    let r = store.seal_all().await.unwrap();
    assert_eq!((r.points, r.chunks), (200, 4), "four full chunks");
    let tiers = store.tier_stats().await.unwrap();
    assert_eq!((tiers.sealed_points, tiers.head_points), (200, 100));
    assert_eq!(unsealed(&store, 0, 200_000).await, 0);
    assert_eq!(unsealed(&store, 200_000, 300_000).await, 100);
    let want: Vec<(i64, f64)> = pts.iter().map(|p| (p.ts_ms, p.value)).collect();
    assert_eq!(raw(&store, 0, 1_000_000, 1000).await, want);
    // The rest of the blob is sealed once newer points arrive; a reopen in between.
    drop(store);
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    store.append(&run(300, 400, |_| 1.0)).await.unwrap();
    store.seal_all().await.unwrap();
    let tiers = store.tier_stats().await.unwrap();
    assert_eq!(tiers.sealed_points + tiers.head_points, 400, "{tiers:?}");
    assert_eq!(tiers.sealed_points, 300, "{tiers:?}");
    assert_eq!(raw(&store, 0, 300_000, 1000).await, want);
}

#[tokio::test]
async fn expiry_cutting_through_a_blob_keeps_the_points_after_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing sealed: every point stays in the head.
    let store = SqliteStore::open_with(
        dir.path(),
        SealPolicy {
            seal_age_ms: i64::MAX / 4,
            max_wait_ms: i64::MAX / 4,
            ..POLICY
        },
    )
    .unwrap();
    store.create_device(NewDevice::new("d1")).await.unwrap();
    // Three hours at 1 s in one append: one blob.
    let t0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;
    let pts: Vec<Point> = (0..3 * 3600)
        .map(|i| point(t0 + i * 1000, (i % 100) as f64))
        .collect();
    store.append(&pts).await.unwrap();
    store
        .set_retention(RetentionPolicy {
            raw_ms: 3_600_000,
            ..RetentionPolicy::default()
        })
        .await
        .unwrap();
    let now = t0 + 3 * 3_600_000;
    let mut expired = 0;
    loop {
        let r = store.maintain(now).await.unwrap();
        expired += r.expired_points;
        if !r.more {
            break;
        }
    }
    assert_eq!(store.tier_stats().await.unwrap().chunks, 0);
    let left = raw(&store, t0, now, 100_000).await;
    assert!(!left.is_empty() && expired > 0);
    assert_eq!(
        left.len() as u64 + expired,
        3 * 3600,
        "every point counted once"
    );
    let cut = left[0].0;
    assert!(cut > t0 && cut <= now - 3_600_000, "{cut}");
    let want: Vec<(i64, f64)> = pts
        .iter()
        .filter(|p| p.ts_ms >= cut)
        .map(|p| (p.ts_ms, p.value))
        .collect();
    assert_eq!(left, want);
    assert_eq!(unsealed(&store, t0, now).await, want.len() as u64);
}

#[tokio::test]
async fn an_older_row_per_point_head_is_packed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open_with(dir.path(), POLICY).unwrap());
    // The head as an older version left it: one row per point in `points`.
    {
        let conn = rusqlite::Connection::open(dir.path().join(sentio_store::DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, \
             value REAL NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
             INSERT INTO series (id, device, metric) VALUES (7, 'd1', 't'), (8, 'd2', 't');",
        )
        .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO points (series_id, ts, value) VALUES (?1, ?2, ?3)")
            .unwrap();
        for i in 0..25_000i64 {
            insert.execute((7, i * 1000, i as f64 / 8.0)).unwrap();
        }
        insert.execute((8, 5, 5.0)).unwrap();
    }
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    let got = raw(&store, 0, i64::MAX, 100_000).await;
    assert_eq!(got.len(), 25_000);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, p)| *p == (i as i64 * 1000, i as f64 / 8.0))
    );
    let d2 = store
        .query(RangeQuery {
            device: DeviceId::parse("d2").unwrap(),
            metric: "t".into(),
            from_ms: 0,
            to_ms: 10,
            step: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(d2.points, vec![(5, 5.0)]);
    // A new append over a migrated point wins; the old table is gone.
    store.append(&[point(2_000, -2.0)]).await.unwrap();
    assert_eq!(
        raw(&store, 1_000, 4_000, 10).await,
        vec![(1_000, 0.125), (2_000, -2.0), (3_000, 0.375)]
    );
    drop(store);
    assert!(!has_table(dir.path(), "points"));
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    assert_eq!(raw(&store, 0, i64::MAX, 100_000).await.len(), 25_000);
    assert_eq!(raw(&store, 2_000, 2_001, 10).await, vec![(2_000, -2.0)]);
}

#[tokio::test]
async fn an_older_series_keyed_head_moves_into_commit_order_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    store.append(&run(0, 10, |i| i as f64)).await.unwrap();
    store.append(&[point(5_000, -5.0)]).await.unwrap();
    drop(store);
    // The head as the previous version left it: table `head`, keyed by series.
    {
        let conn = rusqlite::Connection::open(dir.path().join(sentio_store::DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE head (series_id INTEGER NOT NULL, first_ts INTEGER NOT NULL, \
             seq INTEGER NOT NULL, last_ts INTEGER NOT NULL, count INTEGER NOT NULL, \
             data BLOB NOT NULL, PRIMARY KEY (series_id, first_ts, seq)) WITHOUT ROWID;
             INSERT INTO head SELECT series_id, first_ts, seq, last_ts, count, data FROM head_log;
             DROP TABLE head_log;",
        )
        .unwrap();
    }
    let want: Vec<(i64, f64)> = (0..10)
        .map(|i| (i * 1000, if i == 5 { -5.0 } else { i as f64 }))
        .collect();
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    assert_eq!(raw(&store, 0, i64::MAX, 100).await, want);
    // Appends continue after the moved blobs' seqs: a new write still wins.
    store.append(&[point(6_000, -6.0)]).await.unwrap();
    drop(store);
    assert!(
        !has_table(dir.path(), "head"),
        "the series-keyed table is dropped"
    );
    let store = SqliteStore::open_with(dir.path(), POLICY).unwrap();
    let got = raw(&store, 0, i64::MAX, 100).await;
    assert_eq!(got[5], (5_000, -5.0));
    assert_eq!(got[6], (6_000, -6.0));
    assert_eq!(got.len(), 10);
}
