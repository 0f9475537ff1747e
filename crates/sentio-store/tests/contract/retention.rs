//! Retention and rollups over simulated months: raw points expire per device, per kind and
//! globally; rollups answer where raw has expired, late points and duplicates update them.

use std::collections::BTreeMap;

use sentio_core::Point;
use sentio_store::{
    Agg, MaintenanceReport, NewDevice, RangeQuery, RangeResult, Resolution, RetentionPolicy, Stores,
};

use super::{Backend, dev};

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;
/// A day boundary.
pub const T0: i64 = 1_699_920_000_000;
/// One point every 5 minutes.
pub const EVERY: i64 = 5 * MIN;
pub const DAYS: i64 = 120;

pub fn value(i: i64) -> f64 {
    (i % 100) as f64
}

fn point(device: &str, ts_ms: i64, v: f64) -> Point {
    super::point(device, "t", ts_ms, v)
}

pub async fn q(
    store: &Stores,
    device: &str,
    (from, to): (i64, i64),
    step: Option<(i64, Agg)>,
) -> (RangeResult, Resolution) {
    store
        .series
        .query_resolved(RangeQuery {
            device: dev(device),
            metric: "t".into(),
            from_ms: from,
            to_ms: to,
            step,
            limit: 100_000,
        })
        .await
        .unwrap()
}

pub async fn maintain_all(store: &Stores, now: i64) -> MaintenanceReport {
    let mut total = MaintenanceReport::default();
    loop {
        let r = store.retention.maintain(now).await.unwrap();
        total.rolled_buckets += r.rolled_buckets;
        total.expired_points += r.expired_points;
        total.expired_rollups += r.expired_rollups;
        total.evicted_points += r.evicted_points;
        if !r.more {
            return total;
        }
    }
}

/// Four devices with 120 days of a point every 5 minutes, sealed.
pub async fn fleet(backend: &impl Backend) -> Stores {
    let store = backend.open();
    for (id, kind) in [
        ("pump-1", "pump"),
        ("pump-2", "pump"),
        ("room-1", "room"),
        ("room-2", "room"),
    ] {
        let mut d = NewDevice::new(id);
        d.kind = Some(kind.into());
        store.registry.create_device(d).await.unwrap();
        let n = DAYS * DAY / EVERY;
        let pts: Vec<Point> = (0..n)
            .map(|i| point(id, T0 + i * EVERY, value(i)))
            .collect();
        for batch in pts.chunks(20_000) {
            store.series.append(batch).await.unwrap();
        }
    }
    store.maintenance.seal_round().await.unwrap();
    store
}

pub fn policy() -> RetentionPolicy {
    RetentionPolicy {
        raw_ms: 7 * DAY,
        kinds: BTreeMap::from([("pump".to_string(), 30 * DAY)]),
        devices: BTreeMap::from([("pump-1".to_string(), 90 * DAY)]),
        ..RetentionPolicy::default()
    }
}

/// Whether a raw point is left in `[from, to)`.
pub async fn has_raw(store: &Stores, device: &str, from: i64, to: i64) -> bool {
    !q(store, device, (from, to), None).await.0.points.is_empty()
}

pub async fn raw_expires_per_device_kind_and_globally_and_rollups_answer(backend: &impl Backend) {
    let store = fleet(backend).await;
    store.retention.set_retention(policy()).await.unwrap();
    assert_eq!(store.retention.retention().await.unwrap(), policy());
    let now = T0 + DAYS * DAY;
    let r = maintain_all(&store, now).await;
    assert!(r.rolled_buckets > 0 && r.expired_points > 0, "{r:?}");

    // Per device 90 days, per kind 30 days, globally 7 days.
    for (dev, keep) in [("pump-1", 90), ("pump-2", 30), ("room-1", 7), ("room-2", 7)] {
        let edge = now - keep * DAY;
        assert!(
            !has_raw(&store, dev, T0, edge - MIN).await,
            "{dev}: raw older than {keep} days is gone"
        );
        assert!(
            has_raw(&store, dev, edge + MIN, edge + HOUR).await,
            "{dev}: raw younger than {keep} days is kept"
        );
    }

    // Where raw has expired, a step aggregate answers from the 1-hour rollups: 12 points an
    // hour, with the generator's values.
    let day = T0 + 100 * DAY;
    let (sum, res) = q(&store, "room-1", (day, day + DAY), Some((HOUR, Agg::Sum))).await;
    assert_eq!(res, Resolution::Hour);
    assert_eq!(sum.points.len(), 24);
    for (b, s) in &sum.points {
        let i0 = (b - T0) / EVERY;
        let want: f64 = (i0..i0 + 12).map(value).sum();
        assert_eq!(*s, want, "hour {b}");
    }
    for (agg, f) in [
        (Agg::Count, (|_: i64| 12.0) as fn(i64) -> f64),
        (Agg::First, |i0| value(i0)),
        (Agg::Last, |i0| value(i0 + 11)),
        (Agg::Min, |i0| {
            (i0..i0 + 12).map(value).fold(f64::MAX, f64::min)
        }),
        (Agg::Max, |i0| {
            (i0..i0 + 12).map(value).fold(f64::MIN, f64::max)
        }),
    ] {
        let (r, _) = q(&store, "room-1", (day, day + DAY), Some((HOUR, agg))).await;
        for (b, v) in &r.points {
            assert_eq!(*v, f((b - T0) / EVERY), "{agg:?} at {b}");
        }
    }
    // A 5-minute step over expired raw, within 90 days: the 1-minute rollups, point by point.
    let (fine, res) = q(&store, "room-1", (day, day + HOUR), Some((EVERY, Agg::Avg))).await;
    assert_eq!(res, Resolution::Minute);
    let raw_like: Vec<(i64, f64)> = (0..12)
        .map(|k| {
            let t = day + k * EVERY;
            (t, value((t - T0) / EVERY))
        })
        .collect();
    assert_eq!(fine.points, raw_like);
    // Older than the 1-minute rollups' 90 days: only hours are left.
    let old = T0 + 10 * DAY;
    let (coarse, res) = q(
        &store,
        "room-1",
        (old, old + HOUR),
        Some((EVERY, Agg::Count)),
    )
    .await;
    assert_eq!(res, Resolution::Hour);
    assert_eq!(coarse.points, vec![(old, 12.0)]);

    // A range over expired and kept raw: rollups, then raw points, nothing counted twice.
    let (days, res) = q(
        &store,
        "room-1",
        (now - 20 * DAY, now),
        Some((DAY, Agg::Count)),
    )
    .await;
    assert_eq!(res, Resolution::Hour);
    assert_eq!(days.points.len(), 20);
    assert!(days.points.iter().all(|(_, c)| *c == 288.0), "{days:?}");
    // Where raw is complete, raw answers, as before.
    let (_, res) = q(&store, "room-1", (now - DAY, now), Some((HOUR, Agg::Count))).await;
    assert_eq!(res, Resolution::Raw);

    // A chart over all 120 days: from the hours, with the extremes of the data.
    let (chart, res) = store
        .series
        .downsample_resolved(&dev("room-1"), "t", T0, now, 200)
        .await
        .unwrap();
    assert_eq!(res, Resolution::Hour);
    assert!(chart.points.len() > 100 && chart.points.len() <= 200);
    assert!(chart.points.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(
        chart.points.iter().map(|p| p.1).fold(f64::MAX, f64::min),
        0.0
    );
    assert_eq!(
        chart.points.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        99.0
    );

    // A month later every raw point of the room has expired; its latest value is still known.
    maintain_all(&store, now + 30 * DAY).await;
    assert!(!has_raw(&store, "room-1", T0, now + 30 * DAY).await);
    let series = store.series.series(&dev("room-1")).await.unwrap();
    let n = DAYS * DAY / EVERY;
    assert_eq!(
        (series[0].latest_ts_ms, series[0].latest_value),
        (T0 + (n - 1) * EVERY, value(n - 1))
    );
}

pub async fn late_points_and_duplicates_update_the_rollups(backend: &impl Backend) {
    let store = fleet(backend).await;
    store.retention.set_retention(policy()).await.unwrap();
    let now = T0 + DAYS * DAY;
    maintain_all(&store, now).await;

    // 1. A late point where raw has already expired: folded into the rollups, not kept raw.
    let expired_hour = T0 + 100 * DAY;
    store
        .series
        .append(&[point("room-1", expired_hour + 30_000, 1000.0)])
        .await
        .unwrap();
    // 2. A late point and a duplicate in hours already rolled up but still raw.
    let kept_hour = now - DAY;
    let dup_ts = kept_hour + EVERY;
    store
        .series
        .append(&[
            point("room-1", kept_hour + 30_000, -500.0),
            point("room-1", dup_ts, 77.5),
        ])
        .await
        .unwrap();
    store.maintenance.seal_round().await.unwrap();
    maintain_all(&store, now).await;

    assert!(!has_raw(&store, "room-1", expired_hour, expired_hour + HOUR).await);
    let hour = |agg| {
        q(
            &store,
            "room-1",
            (expired_hour, expired_hour + HOUR),
            Some((HOUR, agg)),
        )
    };
    assert_eq!(hour(Agg::Count).await.0.points, vec![(expired_hour, 13.0)]);
    assert_eq!(hour(Agg::Max).await.0.points, vec![(expired_hour, 1000.0)]);
    let i0 = (expired_hour - T0) / EVERY;
    assert_eq!(
        hour(Agg::First).await.0.points,
        vec![(expired_hour, value(i0))],
        "the late point came after the hour's first"
    );
    let (minute, res) = q(
        &store,
        "room-1",
        (expired_hour, expired_hour + EVERY),
        Some((MIN, Agg::Sum)),
    )
    .await;
    assert_eq!(res, Resolution::Minute);
    assert_eq!(minute.points, vec![(expired_hour, value(i0) + 1000.0)]);

    // Ten days on, raw of `kept_hour` expires: its rollup has the late point, and the
    // duplicate's last value replaced the old one (12 + 1 points, not 12 + 2).
    let later = now + 10 * DAY;
    maintain_all(&store, later).await;
    assert!(!has_raw(&store, "room-1", kept_hour, kept_hour + HOUR).await);
    let range = (kept_hour, kept_hour + HOUR);
    let count = q(&store, "room-1", range, Some((HOUR, Agg::Count))).await;
    assert_eq!(count.1, Resolution::Hour);
    assert_eq!(count.0.points, vec![(kept_hour, 13.0)]);
    let k0 = (kept_hour - T0) / EVERY;
    let want_sum: f64 = (k0..k0 + 12).map(value).sum::<f64>() - value(k0 + 1) + 77.5 - 500.0;
    let sum = q(&store, "room-1", range, Some((HOUR, Agg::Sum))).await;
    assert_eq!(sum.0.points, vec![(kept_hour, want_sum)]);
    let min = q(&store, "room-1", range, Some((HOUR, Agg::Min))).await;
    assert_eq!(min.0.points, vec![(kept_hour, -500.0)]);
}

pub async fn rollups_expire_erasure_removes_them_and_the_policy_survives_reopen(
    backend: &impl Backend,
) {
    {
        let store = fleet(backend).await;
        let mut p = policy();
        p.rollup_1m_ms = 30 * DAY;
        p.rollup_1h_ms = 100 * DAY;
        store.retention.set_retention(p.clone()).await.unwrap();
        let now = T0 + DAYS * DAY;
        let r = maintain_all(&store, now).await;
        assert!(r.expired_rollups > 0, "{r:?}");
        // Older than 100 days: nothing at all is left of room-1.
        let old = T0 + 10 * DAY;
        let (gone, _) = q(&store, "room-1", (old, old + DAY), Some((HOUR, Agg::Count))).await;
        assert!(gone.points.is_empty(), "{gone:?}");
        // Between 30 and 100 days: hours only, even for a 1-minute step.
        let mid = T0 + 50 * DAY;
        let (hours, res) = q(&store, "room-1", (mid, mid + HOUR), Some((MIN, Agg::Count))).await;
        assert_eq!((hours.points, res), (vec![(mid, 12.0)], Resolution::Hour));

        // Invalid policies are refused.
        let mut bad = p.clone();
        bad.rollup_1h_ms = 10 * DAY; // shorter than pump-1's 90 days of raw points
        assert!(store.retention.set_retention(bad).await.is_err());
        let mut bad = p.clone();
        bad.kinds.insert("room".into(), 0);
        assert!(store.retention.set_retention(bad).await.is_err());

        // Erasure removes the device's rollups too, and says so.
        let removed = store
            .registry
            .delete_device(&dev("room-2"), true)
            .await
            .unwrap();
        let rollups = removed.iter().find(|(k, _)| k == "rollups").unwrap().1;
        assert!(rollups > 0, "{removed:?}");
        let (none, _) = q(&store, "room-2", (mid, now), Some((HOUR, Agg::Count))).await;
        assert!(none.points.is_empty());
    }
    let store = backend.open();
    assert_eq!(
        store.retention.retention().await.unwrap().rollup_1h_ms,
        100 * DAY
    );
    let mid = T0 + 50 * DAY;
    let (hours, res) = q(
        &store,
        "room-1",
        (mid, mid + HOUR),
        Some((HOUR, Agg::Count)),
    )
    .await;
    assert_eq!((hours.points, res), (vec![(mid, 12.0)], Resolution::Hour));
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub async fn rollups_equal_the_raw_points_they_summarise_through_late_points_and_expiry(
    backend: &impl Backend,
) {
    // Irregular points over 20 days, then rounds of late points and duplicates (inside raw)
    // and late points where raw has expired, with maintenance passes moving `now` on; at the
    // end every hour answered from the rollups equals the model's, which keeps every point
    // (the last value per timestamp).
    let store = backend.open();
    store
        .registry
        .create_device(NewDevice::new("r-1"))
        .await
        .unwrap();
    let p = RetentionPolicy {
        raw_ms: 5 * DAY,
        ..RetentionPolicy::default()
    };
    store.retention.set_retention(p).await.unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut model: BTreeMap<i64, f64> = BTreeMap::new();
    let mut t = T0;
    let mut batch = Vec::new();
    while t < T0 + 20 * DAY {
        t += 1 + rng.below(120_000) as i64;
        let v = (rng.below(10_000) as f64) / 100.0;
        model.insert(t, v);
        batch.push(point("r-1", t, v));
    }
    store.series.append(&batch).await.unwrap();
    let mut now = T0 + 20 * DAY;
    for round in 0..6 {
        store.maintenance.seal_round().await.unwrap();
        maintain_all(&store, now).await;
        let raw_from = now - 5 * DAY; // about where raw starts now (hour-floored cut)
        let mut late = Vec::new();
        for _ in 0..40 {
            // Inside kept raw: new points and duplicates of existing ones (last value wins).
            let ts = if rng.below(2) == 0 {
                let keys: Vec<i64> = model
                    .range(raw_from + HOUR..now - HOUR)
                    .map(|(k, _)| *k)
                    .collect();
                keys[rng.below(keys.len() as u64) as usize]
            } else {
                raw_from + HOUR + rng.below((now - HOUR - raw_from - HOUR) as u64) as i64
            };
            let v = -(rng.below(1000) as f64) - round as f64;
            model.insert(ts, v);
            late.push(point("r-1", ts, v));
        }
        for _ in 0..20 {
            // Where raw has expired: new timestamps only (a duplicate's old value is gone).
            let ts = loop {
                let ts = T0 + rng.below((raw_from - 2 * HOUR - T0) as u64) as i64;
                if !model.contains_key(&ts) {
                    break ts;
                }
            };
            let v = 1000.0 + rng.below(1000) as f64;
            model.insert(ts, v);
            late.push(point("r-1", ts, v));
        }
        store.series.append(&late).await.unwrap();
        now += DAY;
    }
    store.maintenance.seal_round().await.unwrap();
    maintain_all(&store, now).await;
    maintain_all(&store, now + 30 * DAY).await; // all raw expired: only rollups answer

    let aggs = [
        Agg::Count,
        Agg::Sum,
        Agg::Min,
        Agg::Max,
        Agg::First,
        Agg::Last,
        Agg::Rate,
    ];
    let steps = [(HOUR, Resolution::Hour), (5 * MIN, Resolution::Minute)];
    for ((step, resolution), agg) in steps.into_iter().flat_map(|s| aggs.map(|a| (s, a))) {
        let (got, res) = q(&store, "r-1", (T0, T0 + 20 * DAY), Some((step, agg))).await;
        assert_eq!(res, resolution, "{agg:?}");
        let mut want: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        for (ts, v) in model.range(..T0 + 20 * DAY) {
            want.entry(ts.div_euclid(step) * step)
                .or_default()
                .push((*ts, *v));
        }
        let want: Vec<(i64, f64)> = want
            .into_iter()
            .filter_map(|(b, tvs)| {
                let vs: Vec<f64> = tvs.iter().map(|p| p.1).collect();
                let (t0, t1) = (tvs[0].0, tvs[tvs.len() - 1].0);
                let v = match agg {
                    // A rate needs two points at different times.
                    Agg::Rate if t1 == t0 => return None,
                    Agg::Rate => (vs[vs.len() - 1] - vs[0]) / ((t1 - t0) as f64 / 1000.0),
                    Agg::Count => vs.len() as f64,
                    Agg::Sum => vs.iter().sum(),
                    Agg::Min => vs.iter().copied().fold(f64::MAX, f64::min),
                    Agg::Max => vs.iter().copied().fold(f64::MIN, f64::max),
                    Agg::First => vs[0],
                    Agg::Last => vs[vs.len() - 1],
                    Agg::Avg => unreachable!(),
                };
                Some((b, v))
            })
            .collect();
        assert_eq!(got.points.len(), want.len(), "{agg:?}");
        for (g, w) in got.points.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{agg:?}");
            assert!(
                (g.1 - w.1).abs() < 1e-6 * w.1.abs().max(1.0),
                "{agg:?} at {}: {} vs {}",
                g.0,
                g.1,
                w.1
            );
        }
    }
}

/// A store told to stop its background work (the node stopping) ends its rounds at once and
/// does nothing more, loses no point, and the reopened store does the work.
pub async fn an_interrupted_store_stops_background_work_and_loses_nothing(backend: &impl Backend) {
    let store = backend.open();
    let now = T0 + 3 * DAY;
    for d in 0..20 {
        let id = format!("room-{d}");
        store
            .registry
            .create_device(NewDevice::new(&id))
            .await
            .unwrap();
        let pts: Vec<Point> = (0..2 * DAY / EVERY)
            .map(|i| point(&id, T0 + i * EVERY, value(i)))
            .collect();
        store.series.append(&pts).await.unwrap();
    }
    store.maintenance.interrupt();
    let started = std::time::Instant::now();
    store.maintenance.seal_round().await.unwrap();
    store.maintenance.maintenance_round().await.unwrap();
    let r = store.retention.maintain(now).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!((r.rolled_buckets, r.more), (0, false), "{r:?}");
    let all = (T0, T0 + 2 * DAY);
    assert_eq!(
        q(&store, "room-7", all, None).await.0.points.len() as i64,
        2 * DAY / EVERY
    );
    drop(store);

    let store = backend.open();
    assert!(maintain_all(&store, now).await.rolled_buckets > 0);
    let hourly = q(&store, "room-7", all, Some((HOUR, Agg::Count))).await.0;
    assert_eq!(hourly.points.len() as i64, 48);
}
