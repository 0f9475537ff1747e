//! How people handle alerts: acknowledgements (the first one stays), hand resolutions and
//! comments survive a reopen, and an erasure removes them with their alerts.

use sentio_core::{Ack, Alert, AlertId, AlertState, Comment, Explanation};
use sentio_store::{AlertFilter, NewDevice};

use super::{Backend, dev};

fn open_alert(device: &str) -> Alert {
    Alert {
        id: AlertId::UNSAVED,
        device: device.into(),
        metric: "t".into(),
        state: AlertState::Open,
        opened_ms: 5,
        last_anomaly_ms: 5,
        resolved_ms: None,
        anomalous_points: 1,
        explanation: Explanation::default(),
        peak: Explanation::default(),
        feedback: None,
        ack: None,
        resolved_by: None,
        silenced_by: None,
    }
}

fn comment(author: &str, at_ms: i64, text: &str) -> Comment {
    Comment {
        author: author.into(),
        at_ms,
        text: text.into(),
    }
}

/// `save_alerts` inserts the new alerts and updates the saved ones in one call, in order, and
/// answers their ids in that order; an empty batch writes nothing.
pub async fn a_batch_of_alerts_is_saved_in_order_with_its_ids(backend: &impl Backend) {
    let s = backend.open();
    s.registry
        .create_device(NewDevice::new("d1"))
        .await
        .unwrap();
    assert_eq!(
        s.alerts.save_alerts(Vec::new()).await.unwrap(),
        Vec::<i64>::new()
    );
    let first = s.alerts.save_alert(&open_alert("d1")).await.unwrap();
    let mut resolved = open_alert("d1");
    resolved.id = AlertId::new(first);
    resolved.state = AlertState::Resolved;
    resolved.resolved_ms = Some(9);
    resolved.anomalous_points = 4;
    let news: Vec<Alert> = (0..300)
        .map(|i| {
            let mut a = open_alert("d1");
            a.metric = format!("rule/r{i}");
            a
        })
        .collect();
    let mut batch = vec![resolved];
    batch.extend(news);
    let ids = s.alerts.save_alerts(batch).await.unwrap();
    assert_eq!(ids.len(), 301);
    assert_eq!(ids[0], first, "a saved alert is updated, not stored again");
    assert!(
        ids.windows(2).skip(1).all(|w| w[1] > w[0]),
        "new ids, in order"
    );
    let stored = s.alerts.get_alert(first).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.resolved_ms, stored.anomalous_points),
        (AlertState::Resolved, Some(9), 4)
    );
    for (i, id) in ids[1..].iter().enumerate().step_by(37) {
        let a = s.alerts.get_alert(*id).await.unwrap().unwrap();
        assert_eq!(a.metric, format!("rule/r{i}"));
        assert_eq!(a.state, AlertState::Open);
    }
    let open = s
        .alerts
        .list_alerts(AlertFilter {
            state: Some(AlertState::Open),
            device: None,
            acknowledged: None,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 300);
}

pub async fn acknowledgements_resolutions_and_comments_survive_reopen_and_erase(
    backend: &impl Backend,
) {
    let id;
    {
        let s = backend.open();
        s.registry
            .create_device(NewDevice::new("d1"))
            .await
            .unwrap();
        id = s.alerts.save_alert(&open_alert("d1")).await.unwrap();
        assert_eq!(s.alerts.get_alert(id).await.unwrap().unwrap().ack, None);
        let ann = Ack {
            by: "user:ann".into(),
            at_ms: 10,
        };
        assert_eq!(
            s.alerts.acknowledge(id, &ann).await.unwrap(),
            Some(ann.clone())
        );
        let bob = Ack {
            by: "user:bob".into(),
            at_ms: 20,
        };
        assert_eq!(
            s.alerts.acknowledge(id, &bob).await.unwrap(),
            Some(ann),
            "the first acknowledgement stays"
        );
        assert_eq!(s.alerts.acknowledge(id + 1, &bob).await.unwrap(), None);
        assert!(
            s.alerts
                .add_comment(id, &comment("user:ann", 11, "on it"))
                .await
                .unwrap()
        );
        assert!(
            s.alerts
                .add_comment(id, &comment("admin", 12, "thanks"))
                .await
                .unwrap()
        );
        assert!(
            !s.alerts
                .add_comment(id + 1, &comment("admin", 12, "x"))
                .await
                .unwrap()
        );
        // Resolved by hand: the tracker's later save of the alert keeps who resolved it.
        s.alerts.set_resolved_by(id, "user:bob").await.unwrap();
        let mut a = s.alerts.get_alert(id).await.unwrap().unwrap();
        a.state = AlertState::Resolved;
        a.resolved_ms = Some(30);
        s.alerts.save_alert(&a).await.unwrap();
    }
    let s = backend.open();
    let a = s.alerts.get_alert(id).await.unwrap().unwrap();
    assert_eq!(a.lifecycle(), "resolved");
    assert_eq!(a.ack.as_ref().map(|k| k.by.as_str()), Some("user:ann"));
    assert_eq!(a.resolved_by.as_deref(), Some("user:bob"));
    let listed = s.alerts.list_alerts(AlertFilter::default()).await.unwrap();
    assert_eq!(listed[0].ack, a.ack, "lists carry the handling too");
    assert_eq!(
        s.alerts.comments(id).await.unwrap(),
        [
            comment("user:ann", 11, "on it"),
            comment("admin", 12, "thanks")
        ]
    );
    s.registry.delete_device(&dev("d1"), true).await.unwrap();
    assert!(s.alerts.get_alert(id).await.unwrap().is_none());
    assert!(s.alerts.comments(id).await.unwrap().is_empty());
}
