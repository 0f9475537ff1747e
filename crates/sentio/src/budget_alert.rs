//! On an edge: one alert while its disk budget degrades or drops undelivered points. When a
//! maintenance pass degraded undelivered raw points to their minute rollups or dropped some
//! (`OutboxStore::outbox_counts` rose), one `limit` alert (detector `edge_budget`) opens on
//! `edge:<id>`, its message kept current with the counts; it resolves once the store is back
//! under the budget. It goes up to the cloud with the edge's other alerts.
//!
//! **Invariant:** at most one open budget alert, also across restarts (the open one is found
//! again at start).

use std::sync::Arc;
use std::time::Duration;

use sentio_core::{AlertId, AlertKind, AlertState, EdgeId, Explanation};
use sentio_pipeline::{Notice, NoticeEvent, NoticeSender};
use sentio_store::{AlertStore, OutboxCounts, OutboxStore, RetentionStore, edge_username};
use tracing::{info, warn};

/// How often the counts are looked at (a maintenance pass runs every 5 s).
const EVERY: Duration = Duration::from_secs(2);

/// The detector named in the alert.
pub(crate) const DETECTOR: &str = "edge_budget";

/// Where the watch reads from.
pub(crate) struct Sources {
    pub(crate) outbox: Arc<dyn OutboxStore>,
    pub(crate) storage: Arc<dyn RetentionStore>,
    pub(crate) alerts: Arc<dyn AlertStore>,
}

/// Watches the edge `edge`'s budget until `stop` completes.
pub(crate) async fn run(
    edge: EdgeId,
    s: Sources,
    notices: NoticeSender,
    stop: impl std::future::Future<Output = ()>,
) {
    let start = Start::read(&edge, &s).await;
    watch(start, s, notices, stop).await
}

/// Where the watch starts: the alert already open and the counts already seen, read before
/// the watch runs so that a step taken after this is never mistaken for the starting point.
pub(crate) struct Start {
    user: String,
    open: Option<sentio_core::Alert>,
    seen: OutboxCounts,
}

impl Start {
    pub(crate) async fn read(edge: &EdgeId, s: &Sources) -> Start {
        let user = edge_username(edge);
        let open = crate::edge_watch::open_on(&*s.alerts, &user)
            .await
            .into_iter()
            .find(|a| a.explanation.detector == DETECTOR);
        let seen = s.outbox.outbox_counts().await.unwrap_or_default();
        Start { user, open, seen }
    }
}

/// The watch from `start` until `stop` completes.
pub(crate) async fn watch(
    start: Start,
    s: Sources,
    notices: NoticeSender,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let Start {
        user,
        mut open,
        mut seen,
    } = start;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let (Ok(counts), Ok(storage)) = (s.outbox.outbox_counts().await, s.storage.storage().await)
        else {
            continue;
        };
        let lost = |c: &OutboxCounts| c.degraded_points() + c.dropped_points();
        let stepped = lost(&counts) > lost(&seen);
        let now = sentio_core::time::now_ms();
        let event = match open.take() {
            None if stepped => {
                let mut alert =
                    crate::edge_watch::edge_alert(&user, now, now, explanation(&counts));
                match s.alerts.save_alert(&alert).await {
                    Ok(id) => alert.id = AlertId::new(id),
                    Err(e) => {
                        warn!(error = %e, "could not raise the disk budget alert");
                        continue;
                    }
                }
                warn!(
                    degraded = counts.degraded_points(),
                    dropped = counts.dropped_points(),
                    "over the disk budget: undelivered points degraded or dropped; alert raised"
                );
                Some((NoticeEvent::Opened, alert))
            }
            None => None,
            Some(mut alert) if !storage.over_budget => {
                alert.state = AlertState::Resolved;
                alert.resolved_ms = Some(now);
                if let Err(e) = s.alerts.save_alert(&alert).await {
                    warn!(error = %e, "could not resolve the disk budget alert");
                    open = Some(alert);
                    continue;
                }
                info!("back under the disk budget; its alert resolved");
                Some((NoticeEvent::Resolved, alert))
            }
            Some(mut alert) => {
                if stepped {
                    // The same alert, with the counts now.
                    alert.explanation = explanation(&counts);
                    alert.last_anomaly_ms = now;
                    if let Err(e) = s.alerts.save_alert(&alert).await {
                        warn!(error = %e, "could not update the disk budget alert");
                    }
                }
                open = Some(alert);
                None
            }
        };
        seen = counts;
        if let Some((event, alert)) = event {
            if event == NoticeEvent::Opened {
                open = Some(alert.clone());
            }
            let _ = notices.try_send(Notice {
                event,
                alert,
                device_kind: Arc::from(crate::edge_watch::EDGE_KIND),
                labels: Default::default(),
            });
        }
    }
}

/// What the alert says, with the counts now.
fn explanation(c: &OutboxCounts) -> Explanation {
    Explanation {
        kind: AlertKind::Limit,
        detector: DETECTOR.into(),
        message: format!(
            "the edge is over its disk budget: {} undelivered raw points were replaced by their \
             minute rollups (which go up instead) and {} were dropped; raw points already \
             delivered go first",
            c.degraded_points(),
            c.dropped_points()
        ),
        ..Explanation::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentio_core::{DeviceId, Point};
    use sentio_store::{Lane, Maintenance, SeriesStore, SqliteStore};

    /// Waits for the next notice (the watch looks every 2 s).
    async fn next(rx: &mut tokio::sync::mpsc::Receiver<Notice>) -> Notice {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("no notice in time")
            .expect("the watch stopped")
    }

    /// Maintenance passes until the store has nothing left to do now.
    async fn maintain(store: &SqliteStore, now: i64) {
        while store.maintain(now).await.unwrap().more {}
    }

    #[tokio::test]
    async fn a_pass_that_degrades_opens_one_alert_resolved_once_under_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        store.enable_outbox();
        store.set_outbox_lane(Lane::Backlog);
        // Three undelivered hours of full-precision points, rolled up.
        let t0 = (sentio_core::time::now_ms() - 4 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
        let device = DeviceId::parse("meter-1").unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let points: Vec<Point> = (0..3 * 3_600)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Point {
                    device: device.clone(),
                    metric: "t".into(),
                    ts_ms: t0 + i * 1_000,
                    value: (x >> 11) as f64,
                }
            })
            .collect();
        for batch in points.chunks(600) {
            store.append(batch).await.unwrap();
        }
        store.seal_all().await.unwrap();
        let now = sentio_core::time::now_ms();
        maintain(&store, now).await;
        store.checkpoint().await.unwrap();

        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sources = Sources {
            outbox: store.clone(),
            storage: store.clone(),
            alerts: store.clone(),
        };
        let edge = EdgeId::parse("site-1").unwrap();
        // The starting counts are read before the budget changes, as `run` does at start.
        let start = Start::read(&edge, &sources).await;
        let task = tokio::spawn(watch(start, sources, tx, async {
            let _ = stopped.await;
        }));
        // Over a budget of half the database: undelivered points are degraded, one alert opens.
        let st = store.storage().await.unwrap();
        store.set_disk_budget(Some((st.bytes - st.free_bytes) / 2));
        maintain(&store, now).await;
        let degraded = store.outbox_counts().await.unwrap().degraded_points();
        assert!(degraded > 0);
        let opened = next(&mut rx).await;
        assert_eq!(opened.event, NoticeEvent::Opened);
        assert_eq!(opened.alert.device, "edge:site-1");
        assert_eq!(opened.alert.explanation.detector, DETECTOR);
        assert!(
            opened
                .alert
                .explanation
                .message
                .contains("undelivered raw points were replaced by their minute rollups"),
            "{}",
            opened.alert.explanation.message
        );
        // Under the budget again (none now): resolved, and no second alert.
        store.set_disk_budget(None);
        maintain(&store, now).await;
        let resolved = next(&mut rx).await;
        assert_eq!(resolved.event, NoticeEvent::Resolved);
        assert_eq!(resolved.alert.id, opened.alert.id);
        assert!(
            crate::edge_watch::open_on(&*store, "edge:site-1")
                .await
                .is_empty()
        );
        let _ = stop.send(());
        task.await.unwrap();
        assert!(rx.try_recv().is_err());
    }
}
