//! The disk budget on an edge (outbox on): delivered raw points go first, then undelivered
//! ones whose minutes are rolled up are degraded to those rollups (recorded on the rollups
//! lane), and only then are undelivered points dropped; per lane the counts always satisfy
//! accepted = delivered + degraded + dropped + pending, across a reopen too.

use std::sync::Arc;

use crate::contract;
use contract::retention::{HOUR, MIN, T0, has_raw, maintain_all};
use sentio_core::Point;
use sentio_store::{BatchSeq, Lane, NewDevice, OutboxCounts, OutboxStore, SqliteStore, Stores};

const DEVICES: [&str; 2] = ["meter-1", "meter-2"];

/// Full-precision values (about 8 bytes a point): raw points are most of the database.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Appends `[from, to)` at 1 s for every device, one batch per `batch_ms`; returns the seq of
/// the last batch.
async fn append(
    s: &Stores,
    store: &SqliteStore,
    noise: &mut Noise,
    (from, to): (i64, i64),
    batch_ms: i64,
) -> BatchSeq {
    let mut t = from;
    while t < to {
        let end = (t + batch_ms).min(to);
        let pts: Vec<Point> = DEVICES
            .iter()
            .flat_map(|d| {
                (t..end)
                    .step_by(1000)
                    .map(|ts| contract::point(d, "t", ts, 0.0))
                    .collect::<Vec<_>>()
            })
            .map(|mut p| {
                p.value = noise.next();
                p
            })
            .collect();
        s.series.append(&pts).await.unwrap();
        t = end;
    }
    store.outbox_status().await.unwrap().last
}

/// A store with its outbox on (points recorded on the backlog lane) and the two devices.
async fn edge_store() -> (tempfile::TempDir, Arc<SqliteStore>, Stores) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let s = Stores::of(store.clone());
    store.enable_outbox();
    store.set_outbox_lane(Lane::Backlog);
    for d in DEVICES {
        s.registry.create_device(NewDevice::new(d)).await.unwrap();
    }
    (dir, store, s)
}

fn assert_balanced(c: &OutboxCounts) {
    for lane in Lane::ALL {
        assert!(c.lane(lane).balanced(), "{lane:?}: {:?}", c.lane(lane));
    }
}

async fn live_bytes(s: &Stores) -> u64 {
    let st = s.retention.storage().await.unwrap();
    st.bytes - st.free_bytes
}

#[tokio::test]
async fn over_the_budget_an_edge_drops_delivered_raw_then_degrades_undelivered_raw_to_rollups() {
    let (dir, store, s) = edge_store().await;
    // The empty database's pages (a page or more per table), which no budget step can free.
    store.checkpoint().await.unwrap();
    let empty = live_bytes(&s).await;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    // Two hours delivered, then four undelivered; batches of 10 minutes.
    let delivered_to = T0 + 2 * HOUR;
    let end = T0 + 6 * HOUR;
    let acked = append(&s, &store, &mut noise, (T0, delivered_to), 10 * MIN).await;
    store.outbox_acked(Lane::Backlog, acked).await.unwrap();
    append(&s, &store, &mut noise, (delivered_to, end), 10 * MIN).await;
    store.seal_all().await.unwrap();
    let now = end + HOUR;
    maintain_all(&s, now).await;
    store.checkpoint().await.unwrap();
    let before = store.outbox_counts().await.unwrap();
    assert_balanced(&before);
    let points = 2 * 6 * 3600;
    assert_eq!(before.backlog.accepted, points);
    assert_eq!(before.backlog.delivered, points / 3);
    assert_eq!(before.degraded_points() + before.dropped_points(), 0);

    // A budget that more than the delivered raw points must leave to meet: 70 % of the data.
    let live = live_bytes(&s).await;
    let budget = empty + (live - empty) * 7 / 10;
    s.maintenance.set_disk_budget(Some(budget));
    let r = maintain_all(&s, now).await;
    let after = store.outbox_counts().await.unwrap();
    assert_balanced(&after);
    // Delivered raw went (evicted), and undelivered raw was degraded, not dropped.
    assert_eq!(r.evicted_points, points / 3, "{r:?} {after:?}");
    assert!(after.backlog.degraded > 0, "{after:?}");
    assert_eq!(after.dropped_points(), 0, "{after:?}");
    let now_live = live_bytes(&s).await;
    assert!(now_live <= budget, "{live} -> {now_live}: {after:?}");
    for d in DEVICES {
        assert!(
            !has_raw(&s, d, T0, delivered_to).await,
            "{d}: delivered raw removed"
        );
        assert!(
            has_raw(&s, d, end - HOUR, end).await,
            "{d}: the newest raw stays"
        );
    }
    // The degraded minutes wait on the rollups lane: one row per series and minute, counting
    // every degraded point once.
    let rollups = store.outbox_rollups(BatchSeq(0), 1_000).await.unwrap();
    let counted: u64 = rollups
        .iter()
        .flat_map(|b| &b.series)
        .flat_map(|s| &s.rows)
        .map(|r| r.count)
        .sum();
    assert_eq!(counted, after.backlog.degraded);
    assert_eq!(after.rollups.pending, after.rollups.accepted);
    assert_eq!(
        after.rollups.accepted,
        after.backlog.degraded / 60,
        "a row per degraded minute"
    );
    // What is left pending goes up without the degraded points.
    let left: usize = store
        .outbox_batches(Lane::Backlog, acked, 1_000, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|b| b.points().count())
        .sum();
    assert_eq!(left as u64, after.backlog.pending);

    // The counts are kept: the same after a reopen, and delivery counts on.
    drop(s);
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.outbox_counts().await.unwrap(), after);
    let last = store.outbox_status().await.unwrap().last;
    store.outbox_acked(Lane::Backlog, last).await.unwrap();
    store.outbox_acked(Lane::Rollups, last).await.unwrap();
    let done = store.outbox_counts().await.unwrap();
    assert_balanced(&done);
    assert_eq!(done.backlog.pending + done.rollups.pending, 0);
    assert_eq!(done.backlog.delivered + done.backlog.degraded, points);
}

#[tokio::test]
async fn under_any_mix_of_appends_acknowledgements_and_budget_passes_the_counts_balance() {
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let s = Stores::of(store.clone());
        store.enable_outbox();
        for d in DEVICES {
            s.registry.create_device(NewDevice::new(d)).await.unwrap();
        }
        let mut noise = Noise(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut t = T0;
        let mut budget_set = false;
        for _ in 0..24 {
            let pick = (noise.next() * 5.0) as u32;
            match pick {
                0 | 1 => {
                    let lane = if noise.next() < 0.5 {
                        Lane::Points
                    } else {
                        Lane::Backlog
                    };
                    store.set_outbox_lane(lane);
                    let span = (5 + (noise.next() * 40.0) as i64) * MIN;
                    let batch = (1 + (noise.next() * 9.0) as i64) * MIN;
                    append(&s, &store, &mut noise, (t, t + span), batch).await;
                    t += span;
                }
                2 => {
                    // Acknowledge part of a lane.
                    let lane = if noise.next() < 0.5 {
                        Lane::Points
                    } else {
                        Lane::Backlog
                    };
                    let st = store.outbox_status().await.unwrap();
                    let upto = st.lane(lane).acked.0
                        + ((st.last.0 - st.lane(lane).acked.0) as f64 * noise.next()) as i64;
                    store.outbox_acked(lane, BatchSeq(upto)).await.unwrap();
                }
                3 => {
                    store.seal_all().await.unwrap();
                    if !budget_set {
                        s.maintenance
                            .set_disk_budget(Some(live_bytes(&s).await / 2));
                        budget_set = true;
                    }
                    maintain_all(&s, t + 10 * MIN).await;
                }
                _ => {
                    maintain_all(&s, t + 10 * MIN).await;
                }
            }
            let counts = store.outbox_counts().await.unwrap();
            assert_balanced(&counts);
            // Pending counts points that are there to send: none went silently.
            let status = store.outbox_status().await.unwrap();
            for lane in [Lane::Points, Lane::Backlog] {
                let there: usize = store
                    .outbox_batches(lane, status.lane(lane).acked, 100_000, usize::MAX)
                    .await
                    .unwrap()
                    .iter()
                    .map(|b| b.points().count())
                    .sum();
                assert_eq!(
                    there as u64,
                    counts.lane(lane).pending,
                    "seed {seed} {lane:?}"
                );
            }
        }
        let c = store.outbox_counts().await.unwrap();
        println!("seed {seed}: {c:?}");
    }
}

#[tokio::test]
async fn with_nothing_to_degrade_the_oldest_undelivered_batches_are_dropped_and_counted() {
    let (_dir, store, s) = edge_store().await;
    let mut noise = Noise(0x1234_5678_9ABC_DEF1);
    // Six hours, none delivered, none rolled up yet (maintenance runs "now", at their end).
    let end = T0 + 6 * HOUR;
    append(&s, &store, &mut noise, (T0, end), 10 * MIN).await;
    store.seal_all().await.unwrap();
    store.checkpoint().await.unwrap();
    let live = live_bytes(&s).await;
    s.maintenance.set_disk_budget(Some(live * 8 / 10));
    maintain_all(&s, T0).await;
    let c = store.outbox_counts().await.unwrap();
    assert_balanced(&c);
    assert!(
        c.backlog.dropped > 0,
        "{c:?} {live} -> {}",
        live_bytes(&s).await
    );
    assert_eq!(c.degraded_points(), 0, "{c:?}");
    // The oldest went, counted; what is left pending is there to send.
    for d in DEVICES {
        assert!(
            !has_raw(&s, d, T0, T0 + 10 * MIN).await,
            "{d}: the oldest batch dropped"
        );
        let now_live = live_bytes(&s).await;
        assert!(
            has_raw(&s, d, end - 10 * MIN, end).await,
            "{d}: the newest kept: {c:?} {live} -> {now_live}"
        );
    }
    let left: usize = store
        .outbox_batches(Lane::Backlog, BatchSeq(0), 1_000, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|b| b.points().count())
        .sum();
    assert_eq!(left as u64, c.backlog.pending);
    assert_eq!(c.backlog.dropped + c.backlog.pending, 2 * 6 * 3600);
}
