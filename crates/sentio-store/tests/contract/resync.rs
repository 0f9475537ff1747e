//! Re-sync in the cloud: each part of a run applied once, with its points and the run's
//! progress; a re-sent point equal to a held one changes nothing; a later run replaces a
//! running one.

use sentio_core::EdgeId;
use sentio_store::{Applied, RangeQuery, ResyncFigures, ResyncPart, ResyncState};

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
