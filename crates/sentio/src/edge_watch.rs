//! In a cloud node: one alert per offline edge. An edge whose uplink has been down longer than
//! `edges.offline_alert_after` raises one `silence` alert on `edge:<id>` (not one per device
//! behind it: the cloud runs no detection on an edge's points), resolved when the edge is back.
//! An edge whose reported clock differs from this node's by more than `edges.clock_skew_limit`
//! raises one `limit` alert on `edge:<id>` (detector `edge_clock`), resolved when it is back
//! within.
//!
//! **Invariant:** at most one open offline alert and one open clock alert per edge, also across
//! restarts (the open ones are found again at start, by detector).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sentio_broker::BrokerHandle;
use sentio_core::time::format_time;
use sentio_core::{Alert, AlertId, AlertKind, AlertState, Explanation, Subject};
use sentio_pipeline::{Notice, NoticeEvent, NoticeSender};
use sentio_store::{AlertFilter, AlertStore, EdgeStore, edge_username};
use tracing::{info, warn};

/// How often the edges are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// The detector named in the offline alert.
const DETECTOR: &str = "edge_link";

/// The detector named in the clock alert.
const CLOCK_DETECTOR: &str = "edge_clock";

/// The device kind an edge's alert carries (for notification grouping and routes).
pub(crate) const EDGE_KIND: &str = "edge";

/// One edge as the watch knows it.
#[derive(Default)]
struct Watched {
    /// Since when its link has been seen down (ms), if it is down.
    down_since: Option<i64>,
    /// Its open offline alert, if any.
    alert: Option<Alert>,
    /// Its open clock alert, if any.
    clock_alert: Option<Alert>,
}

/// Watches every edge until `stop` completes.
pub(crate) async fn run(
    edges: Arc<dyn EdgeStore>,
    alerts: Arc<dyn AlertStore>,
    broker: BrokerHandle,
    notices: NoticeSender,
    offline_after: Duration,
    clock_skew_limit_ms: i64,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let after_ms = offline_after.as_millis() as i64;
    let mut watched: HashMap<String, Watched> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let Ok(list) = edges.list_edges().await else {
            continue;
        };
        // No edge registered (most nodes): nothing to watch, and the client table (a copy of
        // every connection, sorted: 10,000 devices' worth every second) is not listed.
        if list.is_empty() {
            continue;
        }
        let connected: std::collections::HashSet<String> = broker
            .clients()
            .into_iter()
            .filter_map(|c| c.username)
            .collect();
        let now = sentio_core::time::now_ms();
        for edge in list {
            let user = edge_username(&edge.id);
            let w = match watched.entry(edge.id.to_string()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    // Alerts left open by an earlier run are this edge's.
                    let open = open_on(&*alerts, &user).await;
                    let by = |detector: &str| {
                        open.iter()
                            .find(|a| a.explanation.detector == detector)
                            .cloned()
                    };
                    v.insert(Watched {
                        down_since: None,
                        alert: by(DETECTOR),
                        clock_alert: by(CLOCK_DETECTOR),
                    })
                }
            };
            let report = broker.edge_report(edge.id.as_str());
            let clock =
                report.and_then(|r| Some((r.clock_skew_ms?, r.clock_ok(clock_skew_limit_ms)?)));
            if let Some((skew, clock_ok)) = clock {
                check_clock(
                    &*alerts,
                    &notices,
                    &mut w.clock_alert,
                    &user,
                    skew,
                    clock_ok,
                    now,
                )
                .await;
            }
            if connected.contains(&user) {
                w.down_since = None;
                if let Some(mut alert) = w.alert.take() {
                    alert.state = AlertState::Resolved;
                    alert.resolved_ms = Some(now);
                    if let Err(e) = alerts.save_alert(&alert).await {
                        warn!(edge = %edge.id, error = %e, "could not resolve the edge's offline alert");
                        w.alert = Some(alert);
                        continue;
                    }
                    info!(edge = %edge.id, "edge back online; its offline alert resolved");
                    let _ = notices.try_send(Notice {
                        event: NoticeEvent::Resolved,
                        alert,
                        device_kind: Arc::from(EDGE_KIND),
                        labels: Default::default(),
                    });
                }
                continue;
            }
            // Down: since it was last heard of (its last report, or the last batch applied),
            // or since now when this node has not heard of it since it started.
            let heard = report
                .map(|r| r.reported_ms)
                .into_iter()
                .chain(edge.progress.iter().map(|p| p.updated_ms))
                .max();
            let since = *w
                .down_since
                .get_or_insert_with(|| heard.unwrap_or(now).min(now));
            if w.alert.is_some() || now - since < after_ms {
                continue;
            }
            let mut alert = offline_alert(&user, edge.id.as_str(), since, now);
            match alerts.save_alert(&alert).await {
                Ok(id) => {
                    alert.id = AlertId::new(id);
                    warn!(edge = %edge.id, since = %format_time(since), "edge offline; alert raised");
                    let notice = Notice {
                        event: NoticeEvent::Opened,
                        alert: alert.clone(),
                        device_kind: Arc::from(EDGE_KIND),
                        labels: Default::default(),
                    };
                    let _ = notices.try_send(notice);
                    w.alert = Some(alert);
                }
                Err(e) => {
                    warn!(edge = %edge.id, error = %e, "could not raise the edge's offline alert")
                }
            }
        }
    }
}

/// The open alerts on `user` (an `edge:<id>`), found again at start (none if unreadable).
pub(crate) async fn open_on(alerts: &dyn AlertStore, user: &str) -> Vec<Alert> {
    alerts
        .list_alerts(AlertFilter {
            state: Some(AlertState::Open),
            device: Some(user.to_string()),
            acknowledged: None,
            limit: 16,
        })
        .await
        .unwrap_or_default()
}

/// Raises `open`, the clock alert of the edge of `user`, when its clock is `skew` ms off and not
/// `clock_ok`, unless one is open; resolves it once the clock is ok again.
async fn check_clock(
    alerts: &dyn AlertStore,
    notices: &NoticeSender,
    open: &mut Option<Alert>,
    user: &str,
    skew: i64,
    clock_ok: bool,
    now: i64,
) {
    let event = match (open.take(), clock_ok) {
        (None, true) => return,
        (Some(alert), false) => {
            *open = Some(alert);
            return;
        }
        (Some(mut alert), true) => {
            alert.state = AlertState::Resolved;
            alert.resolved_ms = Some(now);
            if let Err(e) = alerts.save_alert(&alert).await {
                warn!(edge = user, error = %e, "could not resolve the edge's clock alert");
                *open = Some(alert);
                return;
            }
            info!(
                edge = user,
                skew_ms = skew,
                "edge clock back within the limit; its alert resolved"
            );
            *open = None;
            (NoticeEvent::Resolved, alert)
        }
        (None, false) => {
            let mut alert = clock_alert(user, skew, now);
            match alerts.save_alert(&alert).await {
                Ok(id) => alert.id = AlertId::new(id),
                Err(e) => {
                    warn!(edge = user, error = %e, "could not raise the edge's clock alert");
                    return;
                }
            }
            warn!(edge = user, skew_ms = skew, "edge clock off; alert raised");
            *open = Some(alert.clone());
            (NoticeEvent::Opened, alert)
        }
    };
    let _ = notices.try_send(Notice {
        event: event.0,
        alert: event.1,
        device_kind: Arc::from(EDGE_KIND),
        labels: Default::default(),
    });
}

/// The clock alert of the edge of `user`, its clock `skew` ms ahead of this node's (behind if
/// negative).
fn clock_alert(user: &str, skew: i64, now: i64) -> Alert {
    let explanation = Explanation {
        kind: AlertKind::Limit,
        detector: CLOCK_DETECTOR.into(),
        message: format!(
            "the clock of {user} is {:.1} s {} this node's (its points keep the \
             timestamps the edge gave them)",
            skew.unsigned_abs() as f64 / 1000.0,
            if skew > 0 { "ahead of" } else { "behind" }
        ),
        ..Explanation::default()
    };
    edge_alert(user, now, now, explanation)
}

/// The alert of edge `id` (username `user`) down since `since`.
fn offline_alert(user: &str, id: &str, since: i64, now: i64) -> Alert {
    let explanation = Explanation {
        kind: AlertKind::Silence,
        detector: DETECTOR.into(),
        message: format!(
            "edge {id} has been offline since {} (its uplink is down; what its devices send \
             meanwhile is kept on the edge and comes up when it is back)",
            format_time(since)
        ),
        ..Explanation::default()
    };
    edge_alert(user, since, now, explanation)
}

/// An open alert on the edge of `user` as a whole, opened at `opened_ms`.
pub(crate) fn edge_alert(user: &str, opened_ms: i64, now: i64, explanation: Explanation) -> Alert {
    Alert {
        id: AlertId::UNSAVED,
        device: user.to_string(),
        metric: Subject::Device.label(),
        state: AlertState::Open,
        opened_ms,
        last_anomaly_ms: now,
        resolved_ms: None,
        anomalous_points: 0,
        explanation: explanation.clone(),
        peak: explanation,
        feedback: None,
        ack: None,
        resolved_by: None,
        silenced_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentio_store::SqliteStore;

    #[tokio::test]
    async fn a_clock_an_hour_off_raises_one_alert_resolved_once_back_within() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let (user, limit, now) = ("edge:site-1", 30_000, 1_780_000_000_000);
        let mut open = None;
        let skews: [i64; 4] = [3_600_000, 3_600_000, -3_599_000, 500];
        for (i, skew) in skews.into_iter().enumerate() {
            let ok = skew.abs() <= limit;
            check_clock(&store, &tx, &mut open, user, skew, ok, now + i as i64).await;
        }
        // One alert while the clock was off, however many reports said so.
        let opened = rx.try_recv().unwrap();
        assert_eq!(opened.event, NoticeEvent::Opened);
        assert_eq!(opened.alert.explanation.detector, CLOCK_DETECTOR);
        assert!(
            opened
                .alert
                .explanation
                .message
                .contains("3600.0 s ahead of")
        );
        let resolved = rx.try_recv().unwrap();
        assert_eq!(resolved.event, NoticeEvent::Resolved);
        assert_eq!(resolved.alert.id, opened.alert.id);
        assert!(rx.try_recv().is_err());
        assert!(open.is_none());
        assert!(open_on(&store, user).await.is_empty());
        // Off again, still open when the watch finds it.
        check_clock(&store, &tx, &mut open, user, -90_000, false, now + 10).await;
        let again = open_on(&store, user).await;
        assert_eq!(again.len(), 1);
        assert!(again[0].explanation.message.contains("90.0 s behind"));
    }
}
