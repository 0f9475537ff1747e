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
use sentio_store::{
    AlertFilter, AlertStore, OutboxCounts, OutboxStore, RetentionStore, edge_username,
};
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
    tokio::pin!(stop);
    let user = edge_username(&edge);
    let mut open = s
        .alerts
        .list_alerts(AlertFilter {
            state: Some(AlertState::Open),
            device: Some(user.clone()),
            acknowledged: None,
            limit: 16,
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.explanation.detector == DETECTOR);
    let mut seen = s.outbox.outbox_counts().await.unwrap_or_default();
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
