//! The embedded store's contract, exercised through the traits.

use std::sync::Arc;

use sentio_core::{Alert, AlertId, AlertState, DeviceId, Explanation, Point};
use sentio_store::{
    Agg, AlertFilter, AlertStore, DeviceRegistry, NewDevice, RangeQuery, SeriesStore, SqliteStore,
    StoreError,
};

fn point(dev: &str, metric: &str, ts_ms: i64, value: f64) -> Point {
    Point {
        device: DeviceId::parse(dev).unwrap(),
        metric: Arc::from(metric),
        ts_ms,
        value,
    }
}

fn explanation(v: f64) -> Explanation {
    Explanation {
        detector: "test".into(),
        expected: 1.0,
        lower: 0.0,
        upper: 2.0,
        observed: v,
        score: 0.9,
        message: "high".into(),
        ..Explanation::default()
    }
}

fn query(dev: &str, from: i64, to: i64, step: Option<(i64, Agg)>, limit: usize) -> RangeQuery {
    RangeQuery {
        device: DeviceId::parse(dev).unwrap(),
        metric: "t".into(),
        from_ms: from,
        to_ms: to,
        step,
        limit,
    }
}

#[tokio::test]
async fn everything_survives_reopen_and_erase_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let secret;
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let (_, s) = store.create_device(NewDevice::new("d1")).await.unwrap();
        secret = s;
        assert!(matches!(
            store.create_device(NewDevice::new("d1")).await,
            Err(StoreError::DuplicateDevice(_))
        ));
        assert!(store.create_device(NewDevice::new("bad/id")).await.is_err());
        let pts: Vec<Point> = (0..100)
            .map(|i| point("d1", "t", i * 1000, i as f64))
            .collect();
        store.append(&pts).await.unwrap();
        // Same timestamp again: last value wins.
        store.append(&[point("d1", "t", 0, 42.0)]).await.unwrap();
        let alert = Alert {
            id: AlertId::UNSAVED,
            device: "d1".into(),
            metric: "t".into(),
            state: AlertState::Open,
            opened_ms: 5,
            last_anomaly_ms: 5,
            resolved_ms: None,
            anomalous_points: 1,
            explanation: explanation(9.0),
            peak: explanation(9.0),
            feedback: None,
        };
        let id = store.save_alert(&alert).await.unwrap();
        assert!(id > 0);
        store
            .save_alert(&Alert {
                id: AlertId::new(id),
                state: AlertState::Resolved,
                resolved_ms: Some(9),
                ..alert
            })
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.verify_secret("d1", &secret));
    assert!(!store.verify_secret("d1", "nope"));
    assert!(!store.verify_secret("d2", &secret));

    let raw = store
        .query(query("d1", 0, 10_000, None, 1000))
        .await
        .unwrap();
    assert_eq!(raw.points.len(), 10);
    assert_eq!(raw.points[0], (0, 42.0));
    assert_eq!(raw.next, None);

    let page = store
        .query(query("d1", 0, 100_000, None, 30))
        .await
        .unwrap();
    assert_eq!(page.points.len(), 30);
    assert_eq!(page.next, Some(30_000));

    let avg = store
        .query(query("d1", 10_000, 30_000, Some((10_000, Agg::Avg)), 100))
        .await
        .unwrap();
    assert_eq!(avg.points, vec![(10_000, 14.5), (20_000, 24.5)]);
    let last = store
        .query(query("d1", 10_000, 30_000, Some((10_000, Agg::Last)), 100))
        .await
        .unwrap();
    assert_eq!(last.points, vec![(10_000, 19.0), (20_000, 29.0)]);
    let count = store
        .query(query("d1", 0, 100_000, Some((60_000, Agg::Count)), 100))
        .await
        .unwrap();
    assert_eq!(count.points, vec![(0, 60.0), (60_000, 40.0)]);

    let series = store.series(&DeviceId::parse("d1").unwrap()).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(
        (series[0].latest_ts_ms, series[0].latest_value),
        (99_000, 99.0)
    );

    let alerts = store.list_alerts(AlertFilter::default()).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].state, AlertState::Resolved);
    assert_eq!(alerts[0].explanation.observed, 9.0);

    let removed = store.delete_device("d1", true).await.unwrap();
    assert!(
        removed.contains(&("points".to_string(), 100)),
        "{removed:?}"
    );
    assert!(removed.contains(&("alerts".to_string(), 1)), "{removed:?}");
    assert!(!store.verify_secret("d1", &secret));
    let raw = store
        .query(query("d1", 0, 100_000, None, 1000))
        .await
        .unwrap();
    assert!(raw.points.is_empty());
    assert!(matches!(
        store.delete_device("d1", false).await,
        Err(StoreError::UnknownDevice(_))
    ));
}
