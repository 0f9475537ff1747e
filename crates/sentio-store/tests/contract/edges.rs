//! Store-and-forward: the edge's outbox (a batch per committed append, read back from the
//! series, forgotten once acknowledged) and the cloud's edges (each batch applied once per
//! incarnation and lane, with its progress in the same transaction).

use sentio_core::EdgeId;
use sentio_store::{Applied, BatchSeq, Incarnation, Lane, RangeQuery, StoreError, UplinkBatch};

use super::{Backend, dev, point};

pub async fn the_outbox_records_each_commit_and_forgets_what_is_acked(backend: &impl Backend) {
    let s = backend.open();
    // Before the outbox is on, nothing is recorded.
    s.series
        .append(&[point("pump-1", "temp", 500, 1.0)])
        .await
        .unwrap();
    s.outbox.enable_outbox();
    let a = vec![
        point("pump-1", "temp", 1_000, 20.5),
        point("pump-1", "temp", 2_000, 20.75),
        point("pump-2", "flow", 1_500, 3.25),
    ];
    let b = vec![point("pump-1", "temp", 3_000, 21.0)];
    s.series.append(&a).await.unwrap();
    s.series.append(&b).await.unwrap();
    let status = s.outbox.outbox_status().await.unwrap();
    assert_eq!(status.acked, BatchSeq(0));
    assert_eq!((status.pending_batches, status.pending_points), (2, 4));
    assert!(status.oldest_pending_ms.is_some());
    let batches = s
        .outbox
        .outbox_batches(Lane::Backlog, BatchSeq(0), 10, 1_000)
        .await
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert!(batches[0].seq < batches[1].seq);
    assert_eq!(status.last, batches[1].seq);
    assert_eq!(batches[0].parts.len(), 1, "a small batch is one part");
    let mut got: Vec<_> = batches[0].points().cloned().collect();
    got.sort_by(|x, y| (x.device.as_str(), x.ts_ms).cmp(&(y.device.as_str(), y.ts_ms)));
    assert_eq!(got, a, "the batch's points as stored, not a copy");
    assert_eq!(batches[1].parts, vec![b]);
    // At most what was asked for, stopping after the batch that reaches max_points.
    assert_eq!(
        s.outbox
            .outbox_batches(Lane::Backlog, BatchSeq(0), 1, 1_000)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.outbox
            .outbox_batches(Lane::Backlog, BatchSeq(0), 10, 2)
            .await
            .unwrap()
            .len(),
        1
    );

    s.outbox
        .outbox_acked(Lane::Backlog, batches[0].seq)
        .await
        .unwrap();
    let after = s
        .outbox
        .outbox_batches(Lane::Backlog, BatchSeq(0), 10, 1_000)
        .await
        .unwrap();
    assert_eq!(after, batches[1..].to_vec());
    // A group commit larger than a part is split on whole series, the same way every time.
    let big: Vec<_> = (0..3)
        .flat_map(|d| (0..3_000).map(move |i| point(&format!("big-{d}"), "v", i, i as f64)))
        .collect();
    s.series.append(&big).await.unwrap();
    let read = |n| s.outbox.outbox_batches(Lane::Backlog, batches[1].seq, 1, n);
    let (first, again) = (read(1).await.unwrap(), read(1).await.unwrap());
    assert_eq!(first, again);
    assert_eq!(first[0].parts.len(), 3);
    assert!(first[0].parts.iter().all(|p| p.len() == 3_000));
    // Never backwards.
    s.outbox
        .outbox_acked(Lane::Backlog, BatchSeq(0))
        .await
        .unwrap();
    let status2 = s.outbox.outbox_status().await.unwrap();
    assert_eq!(status2.acked, batches[0].seq);
    assert_eq!(
        (status2.pending_batches, status2.pending_points),
        (2, 9_001)
    );
    assert!(status2.last_ack_ms.is_some());
    drop(s);

    // A restart keeps the incarnation, the acknowledged seq and the pending batches; new seqs
    // follow the old ones.
    let s = backend.open();
    s.outbox.enable_outbox();
    let status3 = s.outbox.outbox_status().await.unwrap();
    assert_eq!(status3.incarnation, status.incarnation);
    assert_eq!(status3.acked, batches[0].seq);
    assert_eq!(status3.pending_points, 9_001);
    s.series
        .append(&[point("pump-1", "temp", 4_000, 22.0)])
        .await
        .unwrap();
    let pending = s
        .outbox
        .outbox_batches(Lane::Backlog, status3.acked, 10, 100_000)
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[..2], [batches[1].clone(), first[0].clone()]);
    assert!(pending[2].seq > first[0].seq);
    s.outbox
        .outbox_acked(Lane::Backlog, pending[2].seq)
        .await
        .unwrap();
    let done = s.outbox.outbox_status().await.unwrap();
    assert_eq!((done.pending_batches, done.pending_points), (0, 0));
    assert_eq!(done.oldest_pending_ms, None);
    assert_eq!(done.last, pending[2].seq);
}

pub async fn outbox_lanes_keep_their_batches_apart(backend: &impl Backend) {
    let s = backend.open();
    s.outbox.enable_outbox();
    // Until the uplink says the link is up, commits go to the backlog lane.
    s.series
        .append(&[point("pump-1", "temp", 1_000, 1.0)])
        .await
        .unwrap();
    s.outbox.set_outbox_lane(Lane::Points);
    s.series
        .append(&[point("pump-1", "temp", 2_000, 2.0)])
        .await
        .unwrap();
    s.series
        .append(&[point("pump-1", "temp", 3_000, 3.0)])
        .await
        .unwrap();
    s.outbox.set_outbox_lane(Lane::Backlog);
    s.series
        .append(&[point("pump-1", "temp", 4_000, 4.0)])
        .await
        .unwrap();
    let read = |lane| s.outbox.outbox_batches(lane, BatchSeq(0), 10, 1_000);
    let values = |b: &[sentio_store::OutboxBatch]| -> Vec<f64> {
        b.iter().flat_map(|b| b.points().map(|p| p.value)).collect()
    };
    let (live, backlog) = (
        read(Lane::Points).await.unwrap(),
        read(Lane::Backlog).await.unwrap(),
    );
    assert_eq!(values(&live), [2.0, 3.0]);
    assert_eq!(values(&backlog), [1.0, 4.0]);
    let st = s.outbox.outbox_status().await.unwrap();
    assert_eq!(
        (st.live.pending_batches, st.backlog.pending_batches),
        (2, 2)
    );
    assert_eq!((st.pending_batches, st.pending_points), (4, 4));
    assert_eq!(st.acked, BatchSeq(0));
    // Acknowledging the live lane leaves the backlog pending, and the backlog's first batch
    // still bounds what is held everywhere.
    s.outbox
        .outbox_acked(Lane::Points, live[1].seq)
        .await
        .unwrap();
    let st = s.outbox.outbox_status().await.unwrap();
    assert_eq!(st.live.acked, live[1].seq);
    assert_eq!((st.live.pending_batches, st.backlog.pending_points), (0, 2));
    assert_eq!(st.backlog.acked, BatchSeq(0));
    assert_eq!(st.acked, BatchSeq(backlog[0].seq.0 - 1));
    assert_eq!(values(&read(Lane::Backlog).await.unwrap()), [1.0, 4.0]);
    s.outbox
        .outbox_acked(Lane::Backlog, backlog[0].seq)
        .await
        .unwrap();
    let st = s.outbox.outbox_status().await.unwrap();
    assert_eq!(st.acked, BatchSeq(backlog[1].seq.0 - 1));
    drop(s);
    // The lanes and their acknowledgements survive a reopen.
    let s = backend.open();
    let st = s.outbox.outbox_status().await.unwrap();
    assert_eq!(
        (st.live.acked, st.backlog.acked),
        (live[1].seq, backlog[0].seq)
    );
    let rest = s
        .outbox
        .outbox_batches(Lane::Backlog, st.backlog.acked, 10, 1_000)
        .await
        .unwrap();
    assert_eq!(values(&rest), [4.0]);
    s.outbox
        .outbox_acked(Lane::Backlog, rest[0].seq)
        .await
        .unwrap();
    let st = s.outbox.outbox_status().await.unwrap();
    assert_eq!((st.pending_batches, st.acked), (0, st.last));
}

pub async fn an_edge_registry_is_applied_under_the_edge_and_never_takes_a_device(
    backend: &impl Backend,
) {
    use sentio_store::wire::RegistryRecord;
    let s = backend.open();
    let site = EdgeId::parse("site-1").unwrap();
    s.edges.create_edge(&site).await.unwrap();
    s.registry
        .create_device(sentio_store::NewDevice {
            id: "own-1".into(),
            name: None,
            kind: Some("meter".into()),
            labels: Default::default(),
        })
        .await
        .unwrap();
    let record = |id: &str, site: &str| RegistryRecord {
        id: id.into(),
        name: id.into(),
        kind: "pump".into(),
        labels: [("site".to_string(), site.to_string())].into(),
    };
    let done = s
        .edges
        .apply_registry(&site, vec![record("far-1", "north"), record("own-1", "x")])
        .await
        .unwrap();
    assert_eq!((done.applied, done.conflicts), (1, 1));
    // Again, and changed: the same device, brought up to date.
    let again = s
        .edges
        .apply_registry(&site, vec![record("far-1", "east")])
        .await
        .unwrap();
    assert_eq!((again.applied, again.conflicts), (1, 0));
    let far = s.registry.get_device(&dev("far-1")).await.unwrap().unwrap();
    assert_eq!(
        (far.kind.as_str(), far.labels["site"].as_str()),
        ("pump", "east")
    );
    let own = s.registry.get_device(&dev("own-1")).await.unwrap().unwrap();
    assert_eq!(own.kind, "meter", "a device of this node is left alone");
    let edges = s.edges.device_edges().await.unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges["far-1"], "site-1");
    assert!(
        !s.registry.verify_secret(&dev("far-1"), ""),
        "no secret anyone holds"
    );
    let other = EdgeId::parse("site-2").unwrap();
    s.edges.create_edge(&other).await.unwrap();
    let taken = s
        .edges
        .apply_registry(&other, vec![record("far-1", "west")])
        .await
        .unwrap();
    assert_eq!(taken.conflicts, 1, "another edge's device is left alone");
    assert!(matches!(
        s.edges
            .apply_registry(&EdgeId::parse("nobody").unwrap(), vec![])
            .await,
        Err(StoreError::UnknownEdge(_))
    ));
}

pub async fn an_edge_alert_is_held_once_and_follows_its_changes(backend: &impl Backend) {
    use sentio_core::{Ack, Alert, AlertId, AlertState, Explanation};
    let s = backend.open();
    let site = EdgeId::parse("site-1").unwrap();
    s.edges.create_edge(&site).await.unwrap();
    let mut alert = Alert {
        id: AlertId::new(41),
        device: "far-1".into(),
        metric: "level".into(),
        state: AlertState::Open,
        opened_ms: 1_000,
        last_anomaly_ms: 2_000,
        resolved_ms: None,
        anomalous_points: 3,
        explanation: Explanation {
            message: "level far above".into(),
            ..Explanation::default()
        },
        peak: Explanation::default(),
        feedback: None,
        ack: None,
        resolved_by: None,
        silenced_by: None,
    };
    let list = || async {
        s.alerts
            .list_alerts(sentio_store::AlertFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
    };
    assert_eq!(
        s.edges
            .apply_alerts(&site, vec![alert.clone()])
            .await
            .unwrap(),
        1
    );
    s.edges
        .apply_alerts(&site, vec![alert.clone()])
        .await
        .unwrap();
    let held = list().await;
    assert_eq!(held.len(), 1, "the same alert again is the same alert");
    let ours = held[0].id.get();
    assert_eq!(s.edges.alert_edges().await.unwrap()[&ours], "site-1");
    // Acknowledged, then resolved on the edge: this node's copy follows.
    alert.ack = Some(Ack {
        by: "user:ann".into(),
        at_ms: 2_500,
    });
    alert.state = AlertState::Resolved;
    alert.resolved_ms = Some(3_000);
    s.edges.apply_alerts(&site, vec![alert]).await.unwrap();
    let held = list().await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].state, AlertState::Resolved);
    assert_eq!(
        held[0].ack.as_ref().map(|a| a.by.as_str()),
        Some("user:ann")
    );
    assert_eq!(held[0].explanation.message, "level far above");
}

fn batch(edge: &EdgeId, inc: Incarnation, seq: i64, ts: i64, value: f64) -> UplinkBatch {
    UplinkBatch {
        edge: edge.clone(),
        incarnation: inc,
        lane: Lane::Points,
        seq: BatchSeq(seq),
        part: 0,
        points: vec![point("far-1", "level", ts, value)],
    }
}

async fn stored(s: &sentio_store::Stores) -> Vec<(i64, f64)> {
    s.series
        .query(RangeQuery {
            device: dev("far-1"),
            metric: "level".into(),
            from_ms: 0,
            to_ms: 1_000_000,
            step: None,
            limit: 1_000,
        })
        .await
        .unwrap()
        .points
}

pub async fn edges_apply_each_batch_once_per_incarnation(backend: &impl Backend) {
    let s = backend.open();
    let site = EdgeId::parse("site-1").unwrap();
    let (edge, secret) = s.edges.create_edge(&site).await.unwrap();
    assert_eq!(edge.id, site);
    assert!(edge.progress.is_empty());
    assert!(s.edges.verify_edge(&site, &secret));
    assert!(!s.edges.verify_edge(&site, "guess"));
    assert!(
        !s.edges
            .verify_edge(&EdgeId::parse("site-2").unwrap(), &secret)
    );
    assert!(matches!(
        s.edges.create_edge(&site).await,
        Err(StoreError::DuplicateEdge(_))
    ));
    let (one, two) = (Incarnation([1; 16]), Incarnation([2; 16]));
    let apply = |b| async { s.edges.apply_uplink(vec![b]).await.map(|v| v[0]) };
    assert_eq!(
        apply(batch(&site, one, 1, 10, 1.0)).await.unwrap(),
        Applied::Stored
    );
    assert_eq!(
        apply(batch(&site, one, 2, 20, 2.0)).await.unwrap(),
        Applied::Stored
    );
    // Sent again (a lost acknowledgement): acknowledged, not applied, even with other values.
    assert_eq!(
        apply(batch(&site, one, 2, 20, 9.0)).await.unwrap(),
        Applied::Duplicate
    );
    assert_eq!(
        apply(batch(&site, one, 1, 30, 9.0)).await.unwrap(),
        Applied::Duplicate
    );
    // The parts of a batch: each applied once, in order.
    let mut part1 = batch(&site, one, 3, 25, 2.5);
    part1.part = 1;
    let part0 = batch(&site, one, 3, 22, 2.25);
    assert_eq!(apply(part0.clone()).await.unwrap(), Applied::Stored);
    assert_eq!(apply(part1.clone()).await.unwrap(), Applied::Stored);
    assert_eq!(apply(part0).await.unwrap(), Applied::Duplicate);
    assert_eq!(apply(part1).await.unwrap(), Applied::Duplicate);
    assert_eq!(
        stored(&s).await,
        vec![(10, 1.0), (20, 2.0), (22, 2.25), (25, 2.5)]
    );
    // A restored edge starts a new incarnation: its seq 1 is new.
    assert_eq!(
        apply(batch(&site, two, 1, 30, 3.0)).await.unwrap(),
        Applied::Stored
    );
    assert_eq!(
        stored(&s).await,
        vec![(10, 1.0), (20, 2.0), (22, 2.25), (25, 2.5), (30, 3.0)]
    );
    let unknown = EdgeId::parse("nobody").unwrap();
    assert!(matches!(
        apply(batch(&unknown, one, 1, 40, 4.0)).await,
        Err(StoreError::UnknownEdge(_))
    ));
    drop(s);

    let s = backend.open();
    assert!(
        s.edges.verify_edge(&site, &secret),
        "digests survive a reopen"
    );
    let edge = s.edges.get_edge(&site).await.unwrap().unwrap();
    let mut progress: Vec<(Incarnation, i64, u32, u64)> = edge
        .progress
        .iter()
        .map(|p| (p.incarnation, p.seq.0, p.part, p.points))
        .collect();
    progress.sort_by_key(|p| p.0.0);
    assert_eq!(progress, vec![(one, 3, 1, 4), (two, 1, 0, 1)]);
    assert_eq!(s.edges.list_edges().await.unwrap(), vec![edge]);
    assert_eq!(
        s.edges
            .apply_uplink(vec![
                batch(&site, one, 2, 20, 9.0),
                batch(&site, one, 4, 40, 4.0),
                batch(&site, one, 4, 41, 9.0),
                batch(&site, two, 2, 42, 4.5),
            ])
            .await
            .unwrap(),
        vec![
            Applied::Duplicate,
            Applied::Stored,
            Applied::Duplicate,
            Applied::Stored
        ],
        "several batches in one call, each once"
    );
    assert_eq!(
        stored(&s).await,
        vec![
            (10, 1.0),
            (20, 2.0),
            (22, 2.25),
            (25, 2.5),
            (30, 3.0),
            (40, 4.0),
            (42, 4.5)
        ]
    );
    assert_eq!(s.edges.get_edge(&unknown).await.unwrap(), None);
    // The backlog lane is its own stream: its seq 1 is new though the live lane is past it,
    // and is applied once.
    let mut old = batch(&site, one, 1, 5, 0.5);
    old.lane = Lane::Backlog;
    let apply = |b| async { s.edges.apply_uplink(vec![b]).await.map(|v| v[0]) };
    assert_eq!(apply(old.clone()).await.unwrap(), Applied::Stored);
    assert_eq!(apply(old).await.unwrap(), Applied::Duplicate);
    assert_eq!(stored(&s).await[0], (5, 0.5));
    let edge = s.edges.get_edge(&site).await.unwrap().unwrap();
    assert!(
        edge.progress
            .iter()
            .any(|p| p.lane == Lane::Backlog && p.seq == BatchSeq(1) && p.points == 1)
    );
}

/// A minute's aggregate of `device/metric` in `store`, with the resolution it came from.
async fn per_minute(
    s: &sentio_store::Stores,
    agg: sentio_store::Agg,
    (from, to): (i64, i64),
) -> (Vec<(i64, f64)>, sentio_store::Resolution) {
    let (r, res) = s
        .series
        .query_resolved(RangeQuery {
            device: dev("room-1"),
            metric: "temp".into(),
            from_ms: from,
            to_ms: to,
            step: Some((60_000, agg)),
            limit: 10_000,
        })
        .await
        .unwrap();
    (r.points, res)
}

/// Two nodes: an edge and its cloud, each on its own backend.
pub async fn an_aggregates_edge_sends_each_rolled_minute_once_and_the_cloud_answers_from_it(
    edge: &impl Backend,
    cloud: &impl Backend,
) {
    use sentio_store::{Agg, Resolution, UplinkRollups};
    const MIN: i64 = 60_000;
    let (edge, cloud) = (edge.open(), cloud.open());
    edge.outbox.record_rollups(true).await.unwrap();
    // Half an hour of a 1 Hz series, in sensor precision.
    let t0 = 28_333_000 * MIN;
    let points: Vec<_> = (0..1_800)
        .map(|i| {
            point(
                "room-1",
                "temp",
                t0 + i * 1_000 + 250,
                20.0 + (i % 37) as f64 * 0.25,
            )
        })
        .collect();
    edge.series.append(&points).await.unwrap();
    edge.retention.maintain(t0 + 40 * MIN).await.unwrap();
    let batches = edge.outbox.outbox_rollups(BatchSeq(0), 100).await.unwrap();
    let rows: Vec<_> = batches
        .iter()
        .flat_map(|b| b.series.iter().flat_map(|s| s.rows.iter()))
        .collect();
    assert_eq!(rows.len(), 30, "every closed minute, once");
    assert!(rows.iter().all(|r| r.count == 60));
    let status = edge.outbox.outbox_status().await.unwrap();
    assert_eq!(status.rollups.pending_points, 30);
    assert_eq!(
        status.pending_points, 0,
        "no raw batch with the aggregates policy"
    );

    let site = EdgeId::parse("site-1").unwrap();
    cloud.edges.create_edge(&site).await.unwrap();
    let inc = status.incarnation;
    let up = |b: &sentio_store::RollupBatch| UplinkRollups {
        edge: site.clone(),
        incarnation: inc,
        seq: b.seq,
        series: b.series.clone(),
    };
    let sent: Vec<_> = batches.iter().map(up).collect();
    let v = cloud.edges.apply_rollups(sent.clone()).await.unwrap();
    assert!(v.iter().all(|v| *v == Applied::Stored), "{v:?}");
    let v = cloud.edges.apply_rollups(sent).await.unwrap();
    assert!(v.iter().all(|v| *v == Applied::Duplicate), "{v:?}");
    // The cloud answers from the edge's minutes: the same counts and sums as the edge's own.
    let range = (t0, t0 + 30 * MIN);
    for agg in [Agg::Count, Agg::Sum, Agg::Min, Agg::Max] {
        let (theirs, res) = per_minute(&cloud, agg, range).await;
        let (ours, raw) = per_minute(&edge, agg, range).await;
        assert_eq!((res, raw), (Resolution::Minute, Resolution::Raw), "{agg:?}");
        assert_eq!(theirs.len(), 30, "{agg:?}");
        assert_eq!(theirs, ours, "{agg:?}");
    }
    let progress = cloud.edges.get_edge(&site).await.unwrap().unwrap().progress;
    assert!(
        progress
            .iter()
            .any(|p| p.lane == Lane::Rollups && p.points == 30),
        "{progress:?}"
    );

    // A late point: its minute is rolled again and goes up again, replacing the cloud's row.
    edge.outbox
        .outbox_acked(Lane::Rollups, batches.last().unwrap().seq)
        .await
        .unwrap();
    assert!(
        edge.outbox
            .outbox_rollups(BatchSeq(0), 100)
            .await
            .unwrap()
            .is_empty()
    );
    edge.series
        .append(&[point("room-1", "temp", t0 + 5 * MIN + 500, 99.0)])
        .await
        .unwrap();
    edge.retention.maintain(t0 + 41 * MIN).await.unwrap();
    let again = edge.outbox.outbox_rollups(BatchSeq(0), 100).await.unwrap();
    assert_eq!(again.len(), 1);
    let v = cloud
        .edges
        .apply_rollups(again.iter().map(up).collect())
        .await
        .unwrap();
    assert_eq!(v, [Applied::Stored]);
    let (counts, _) = per_minute(&cloud, Agg::Count, range).await;
    assert_eq!(counts[5], (t0 + 5 * MIN, 61.0));
    assert_eq!(counts.iter().map(|c| c.1).sum::<f64>(), 1_801.0);
    // Hours derive from the minutes.
    let (r, res) = cloud
        .series
        .query_resolved(RangeQuery {
            device: dev("room-1"),
            metric: "temp".into(),
            from_ms: t0 - 20 * MIN,
            to_ms: t0 + 40 * MIN,
            step: Some((3_600_000, Agg::Count)),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(res, Resolution::Hour);
    assert_eq!(r.points.iter().map(|p| p.1).sum::<f64>(), 1_801.0);
}

pub async fn the_raw_points_around_an_alert_go_in_the_live_lane_once(backend: &impl Backend) {
    use sentio_core::AlertId;
    use sentio_store::WindowRecorded;
    let s = backend.open();
    s.outbox.record_rollups(true).await.unwrap();
    let points: Vec<_> = (0..600)
        .flat_map(|i| {
            [
                point("room-1", "temp", i * 1_000, i as f64),
                point("room-1", "hum", i * 1_000, 40.0),
                point("room-2", "temp", i * 1_000, 1.0),
            ]
        })
        .collect();
    s.series.append(&points).await.unwrap();
    assert_eq!(s.outbox.windows_done().await.unwrap(), 0);
    let device = dev("room-1");
    let record = |alert: i64, window: (i64, i64), settled: bool| {
        let device = device.clone();
        let s = &s;
        async move {
            s.outbox
                .record_window(AlertId::new(alert), &device, window, settled)
                .await
                .unwrap()
        }
    };
    // Its data has not passed the window yet: it waits, unless settled.
    assert_eq!(
        record(7, (60_000, 700_000), false).await,
        WindowRecorded::Waiting
    );
    assert_eq!(s.outbox.windows_done().await.unwrap(), 0);
    assert_eq!(
        record(7, (60_000, 180_000), false).await,
        WindowRecorded::Recorded
    );
    // Once per alert, and never an earlier one after it.
    assert_eq!(record(7, (0, 600_000), true).await, WindowRecorded::Done);
    assert_eq!(record(3, (0, 600_000), true).await, WindowRecorded::Done);
    assert_eq!(s.outbox.windows_done().await.unwrap(), 7);
    let batches = s
        .outbox
        .outbox_batches(Lane::Points, BatchSeq(0), 10, 10_000)
        .await
        .unwrap();
    assert_eq!(batches.len(), 1);
    let got: Vec<_> = batches[0].points().collect();
    assert_eq!(got.len(), 240, "two series of room-1, two minutes each");
    assert!(
        got.iter()
            .all(|p| p.device == device && (60_000..180_000).contains(&p.ts_ms))
    );
}

/// A series the cloud holds only as an edge's minute rollups (no raw point) expires with the
/// rollup retention like the cloud's own rollups, also one first written after the store
/// opened (and after a maintenance pass saw every series).
pub async fn rollups_an_edge_alone_sent_expire_with_the_rollup_retention(backend: &impl Backend) {
    use sentio_store::{Resolution, RetentionPolicy, RollupRow, SeriesRollups, UplinkRollups};
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    let s = backend.open();
    s.retention
        .set_retention(RetentionPolicy {
            rollup_1m_ms: 2 * DAY,
            rollup_1h_ms: 10 * DAY,
            ..RetentionPolicy::default()
        })
        .await
        .unwrap();
    let now = 20_000 * DAY;
    s.retention.maintain(now).await.unwrap();
    let site = EdgeId::parse("site-1").unwrap();
    s.edges.create_edge(&site).await.unwrap();
    // An hour five days old and the last hour.
    let hour = |start: i64| -> Vec<RollupRow> {
        (0..60)
            .map(|m| {
                let b = start + m * MIN;
                RollupRow {
                    bucket_ms: b,
                    count: 60,
                    sum: 120.0,
                    min: 2.0,
                    max: 2.0,
                    first: (b, 2.0),
                    last: (b + 59_000, 2.0),
                }
            })
            .collect()
    };
    let mut rows = hour(now - 5 * DAY);
    rows.extend(hour(now - 2 * HOUR));
    s.edges
        .apply_rollups(vec![UplinkRollups {
            edge: site.clone(),
            incarnation: Incarnation([5; 16]),
            seq: BatchSeq(1),
            series: vec![SeriesRollups {
                device: dev("far-1"),
                metric: "t".into(),
                rows,
            }],
        }])
        .await
        .unwrap();
    let store = &s;
    let held = |res| async move {
        store
            .series
            .rollups(&dev("far-1"), "t", res, 0, 1_000)
            .await
            .unwrap()
            .iter()
            .map(|r| r.bucket_ms)
            .collect::<Vec<_>>()
    };
    assert_eq!(held(Resolution::Minute).await.len(), 120);
    assert_eq!(
        held(Resolution::Hour).await,
        [now - 5 * DAY, now - 2 * HOUR]
    );
    // The old hour's minutes are past their retention; its hour row is not.
    let report = s.retention.maintain(now).await.unwrap();
    assert_eq!(report.expired_rollups, 60, "{report:?}");
    let minutes = held(Resolution::Minute).await;
    assert_eq!(minutes.len(), 60);
    assert!(minutes.iter().all(|b| *b >= now - 2 * HOUR));
    assert_eq!(held(Resolution::Hour).await.len(), 2);
    // Six days on, the old hour row has passed its retention too (and the recent minutes).
    let report = s.retention.maintain(now + 6 * DAY).await.unwrap();
    assert_eq!(report.expired_rollups, 61, "{report:?}");
    assert_eq!(held(Resolution::Hour).await, [now - 2 * HOUR]);
    assert!(held(Resolution::Minute).await.is_empty());
}

pub async fn an_edge_policy_is_kept_across_reopen(backend: &impl Backend) {
    use sentio_store::UplinkPolicy;
    let site = EdgeId::parse("site-1").unwrap();
    {
        let s = backend.open();
        let (created, _) = s.edges.create_edge(&site).await.unwrap();
        assert_eq!(created.policy, None, "unknown before its first report");
        s.edges
            .set_edge_policy(&site, UplinkPolicy::Aggregates)
            .await
            .unwrap();
        // An unknown edge: nothing kept, no error.
        s.edges
            .set_edge_policy(&EdgeId::parse("nope").unwrap(), UplinkPolicy::Raw)
            .await
            .unwrap();
    }
    let s = backend.open();
    let edge = s.edges.get_edge(&site).await.unwrap().unwrap();
    assert_eq!(edge.policy, Some(UplinkPolicy::Aggregates));
    s.edges
        .set_edge_policy(&site, UplinkPolicy::Raw)
        .await
        .unwrap();
    let listed = s.edges.list_edges().await.unwrap();
    assert_eq!(listed[0].policy, Some(UplinkPolicy::Raw));
    assert!(
        s.edges
            .get_edge(&EdgeId::parse("nope").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}
