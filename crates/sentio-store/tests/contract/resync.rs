//! Re-sync in the cloud: each part of a run applied once, with its points and the run's
//! progress; a re-sent point equal to a held one changes nothing; a later run replaces a
//! running one.

use sentio_core::EdgeId;
use sentio_store::{
    Agg, Applied, BatchSeq, Incarnation, RangeQuery, ResyncFigures, ResyncPart, ResyncState,
    RollupRow, SeriesRollups, UplinkRollups,
};

use super::{Backend, dev, point};

pub async fn a_resync_part_is_applied_once_and_a_resent_point_changes_nothing(
    backend: &impl Backend,
) {
    let s = backend.open();
    let site = EdgeId::parse("site-1").unwrap();
    s.edges.create_edge(&site).await.unwrap();
    let held: Vec<_> = (0..10)
        .map(|i| point("far-1", "t", 1_000 * i, i as f64))
        .collect();
    s.series.append(&held).await.unwrap();
    let run = s.edges.start_resync(&site, 0, 3_600_000).await.unwrap();
    assert_eq!(run.state, ResyncState::Running);
    let figures = ResyncFigures {
        compared: 1,
        differing: 1,
    };
    // The hour again: the ten held points and five the cloud lost.
    let resent: Vec<_> = (0..15)
        .map(|i| point("far-1", "t", 1_000 * i, i as f64))
        .collect();
    let part = |part: u32, last: bool, points: Vec<sentio_core::Point>| ResyncPart {
        id: run.id,
        part,
        last,
        figures,
        points,
        rollups: Vec::new(),
    };
    let first = part(0, false, resent.clone());
    assert_eq!(
        s.edges.apply_resync(&site, first.clone()).await.unwrap(),
        Applied::Stored
    );
    assert_eq!(
        s.edges.apply_resync(&site, first).await.unwrap(),
        Applied::Duplicate,
        "a part sent again (its PUBACK lost) is not applied twice"
    );
    let q = RangeQuery {
        device: dev("far-1"),
        metric: "t".into(),
        from_ms: 0,
        to_ms: 3_600_000,
        step: None,
        limit: 100,
    };
    let points = s.series.query(q).await.unwrap().points;
    assert_eq!(points.len(), 15, "each timestamp once");
    assert_eq!(points.iter().map(|p| p.1).sum::<f64>(), 105.0);
    let running = s.edges.last_resync(&site).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.parts, running.points_resent),
        (ResyncState::Running, 1, 15)
    );
    // A part out of order is an error (never acknowledged), the last one ends the run.
    assert!(
        s.edges
            .apply_resync(&site, part(2, true, vec![]))
            .await
            .is_err()
    );
    assert_eq!(
        s.edges
            .apply_resync(&site, part(1, true, vec![]))
            .await
            .unwrap(),
        Applied::Stored
    );
    let done = s.edges.last_resync(&site).await.unwrap().unwrap();
    assert_eq!(
        (
            done.state,
            done.parts,
            done.points_resent,
            done.hours_differing
        ),
        (ResyncState::Done, 2, 15, 1)
    );
    assert!(done.finished_ms.is_some());
    // A part of a run that is over, or of another edge, writes nothing.
    let late = part(2, true, vec![point("far-1", "t", 99_000, 1.0)]);
    assert_eq!(
        s.edges.apply_resync(&site, late).await.unwrap(),
        Applied::Duplicate
    );
    let other = EdgeId::parse("site-2").unwrap();
    s.edges.create_edge(&other).await.unwrap();
    assert_eq!(
        s.edges
            .apply_resync(&other, part(2, true, vec![]))
            .await
            .unwrap(),
        Applied::Duplicate
    );
    // A later run replaces a running one.
    let a = s.edges.start_resync(&site, 0, 1).await.unwrap();
    let b = s.edges.start_resync(&site, 0, 1).await.unwrap();
    assert!(b.id > a.id);
    assert_eq!(s.edges.last_resync(&site).await.unwrap().unwrap().id, b.id);
    assert_eq!(
        s.edges
            .apply_resync(
                &site,
                ResyncPart {
                    id: a.id,
                    ..part(0, true, vec![])
                }
            )
            .await
            .unwrap(),
        Applied::Duplicate,
        "the replaced run is failed"
    );
    assert!(
        s.edges
            .start_resync(&EdgeId::parse("nope").unwrap(), 0, 1)
            .await
            .is_err()
    );
}

/// The minute rollup row of `m` minutes after `t0` holding `count` points of value 2.
fn minute(t0: i64, m: i64, count: u64) -> RollupRow {
    let b = t0 + m * 60_000;
    RollupRow {
        bucket_ms: b,
        count,
        sum: 2.0 * count as f64,
        min: 2.0,
        max: 2.0,
        first: (b, 2.0),
        last: (b + 59_000, 2.0),
    }
}

/// Count and sum per hour of `far-1/t` in `[from, to)`, as the cloud answers them.
async fn hours(s: &sentio_store::Stores, (from, to): (i64, i64)) -> Vec<(i64, f64, f64)> {
    let q = |agg| RangeQuery {
        device: dev("far-1"),
        metric: "t".into(),
        from_ms: from,
        to_ms: to,
        step: Some((3_600_000, agg)),
        limit: 100,
    };
    let counts = s.series.query(q(Agg::Count)).await.unwrap().points;
    let sums = s.series.query(q(Agg::Sum)).await.unwrap().points;
    counts
        .iter()
        .zip(&sums)
        .map(|(c, s)| (c.0, c.1, s.1))
        .collect()
}

pub async fn a_resync_part_of_minutes_replaces_the_minutes_of_its_hours(backend: &impl Backend) {
    const H: i64 = 3_600_000;
    let s = backend.open();
    let site = EdgeId::parse("site-1").unwrap();
    s.edges.create_edge(&site).await.unwrap();
    // An aggregates edge's minutes of three hours: the cloud's hour 1 lost 10 minutes and
    // holds one wrong (a count of 90), hour 2 is whole.
    let t0 = 400_000 * H;
    let mut held: Vec<RollupRow> = (0..60).map(|m| minute(t0, m, 60)).collect();
    held.extend((10..60).map(|m| minute(t0 + H, m, if m == 30 { 90 } else { 60 })));
    held.extend((0..60).map(|m| minute(t0 + 2 * H, m, 60)));
    let series = |rows: Vec<RollupRow>| {
        vec![SeriesRollups {
            device: dev("far-1"),
            metric: "t".into(),
            rows,
        }]
    };
    let v = s
        .edges
        .apply_rollups(vec![UplinkRollups {
            edge: site.clone(),
            incarnation: Incarnation([3; 16]),
            seq: BatchSeq(1),
            series: series(held),
        }])
        .await
        .unwrap();
    assert_eq!(v, [Applied::Stored]);
    // The cloud's digests count an edge's minutes as rolled up (else nothing is compared).
    let digests = s.edges.hour_digests(None, t0, t0 + 3 * H).await.unwrap();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].rolled_until, Some(t0 + 3 * H));
    let counts: Vec<u64> = digests[0].hours.iter().map(|h| h.count).collect();
    assert_eq!(counts, [3_600, 50 * 60 + 30, 3_600]);

    // The edge re-sends hour 1 as it holds it, with the raw points around an alert in it.
    let run = s.edges.start_resync(&site, t0, t0 + 3 * H).await.unwrap();
    let part = ResyncPart {
        id: run.id,
        part: 0,
        last: true,
        figures: ResyncFigures {
            compared: 3,
            differing: 1,
        },
        points: (0..120)
            .map(|i| point("far-1", "t", t0 + H + 20 * 60_000 + i * 1_000, 2.0))
            .collect(),
        rollups: series((0..60).map(|m| minute(t0 + H, m, 60)).collect()),
    };
    assert_eq!(
        s.edges.apply_resync(&site, part.clone()).await.unwrap(),
        Applied::Stored
    );
    assert_eq!(
        s.edges.apply_resync(&site, part).await.unwrap(),
        Applied::Duplicate
    );
    // Hour 1 holds the edge's minutes, not added to what the cloud held; the others as they
    // were; the raw points around the alert are held as raw.
    assert_eq!(
        hours(&s, (t0, t0 + 3 * H)).await,
        [
            (t0, 3_600.0, 7_200.0),
            (t0 + H, 3_600.0, 7_200.0),
            (t0 + 2 * H, 3_600.0, 7_200.0)
        ]
    );
    let digests = s.edges.hour_digests(None, t0, t0 + 3 * H).await.unwrap();
    let counts: Vec<u64> = digests[0].hours.iter().map(|h| h.count).collect();
    assert_eq!(counts, [3_600, 3_600, 3_600]);
    let raw = s
        .series
        .query(RangeQuery {
            device: dev("far-1"),
            metric: "t".into(),
            from_ms: t0,
            to_ms: t0 + 3 * H,
            step: None,
            limit: 1_000,
        })
        .await
        .unwrap()
        .points;
    assert_eq!(raw.len(), 120);
    let done = s.edges.last_resync(&site).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.points_resent, done.rollup_rows_resent),
        (ResyncState::Done, 120, 60)
    );
}
