//! Notifications: silences, channels (replaced by name, counters kept), the outbox (due in
//! time order, retried, given up, delivered once and gone) and alert groups, across a reopen.

use std::collections::BTreeMap;

use sentio_core::{AlertKind, AlertMatcher, Channel, ChannelTarget, Severity, SmtpSecurity};
use sentio_store::{AlertGroup, NewDevice, NewMessage, NewSilence};

use super::{Backend, dev};

fn webhook(name: &str, url: &str) -> Channel {
    Channel {
        name: name.into(),
        target: ChannelTarget::Webhook {
            url: url.into(),
            secret: "whsec_c2VjcmV0".into(),
        },
        route: Some(AlertMatcher {
            min_severity: Severity::Critical,
            ..AlertMatcher::default()
        }),
    }
}

fn message(channel: &str, msg_id: &str, created_ms: i64) -> NewMessage {
    NewMessage {
        channel: channel.into(),
        msg_id: msg_id.into(),
        body: format!("{{\"id\":\"{msg_id}\"}}"),
        created_ms,
    }
}

pub async fn silences_channels_and_the_outbox_survive_reopen_and_deliver_once(
    backend: &impl Backend,
) {
    let matcher = AlertMatcher {
        devices: vec![dev("d1")],
        device_kind: Some("room".into()),
        labels: BTreeMap::from([("site".into(), "a".into())]),
        alert_kinds: vec![AlertKind::Silence, AlertKind::Rule],
        min_severity: Severity::Warning,
    };
    let mail = Channel {
        name: "mail".into(),
        target: ChannelTarget::Email {
            host: "127.0.0.1".into(),
            port: 2525,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "sentio@example.org".into(),
            to: vec!["ops@example.org".into()],
        },
        route: None,
    };
    {
        let s = backend.open();
        let silence = s
            .notify
            .create_silence(NewSilence {
                matcher: matcher.clone(),
                until_ms: 100,
                reason: "maintenance".into(),
                author: "user:ann".into(),
                created_ms: 1,
            })
            .await
            .unwrap();
        let other = s
            .notify
            .create_silence(NewSilence {
                matcher: AlertMatcher::default(),
                until_ms: 50,
                reason: "r".into(),
                author: "admin".into(),
                created_ms: 2,
            })
            .await
            .unwrap();
        assert!(s.notify.delete_silence(other.id).await.unwrap());
        assert!(!s.notify.delete_silence(other.id).await.unwrap());
        assert_eq!(s.notify.silences().await.unwrap(), [silence]);

        assert!(
            s.notify
                .put_channel(&webhook("hook", "http://a"))
                .await
                .unwrap()
        );
        assert!(s.notify.put_channel(&mail).await.unwrap());
        s.notify
            .enqueue(vec![
                message("hook", "alert-1", 10),
                message("hook", "alert-2", 11),
                message("mail", "alert-1", 10),
                message("nowhere", "alert-1", 10),
            ])
            .await
            .unwrap();
        let due = s.notify.due_messages(10, 10).await.unwrap();
        assert_eq!(
            due.len(),
            2,
            "at 10 only the messages queued by 10: {due:?}"
        );
        let first = &due[0];
        s.notify
            .attempt_failed(first.id, "HTTP 500", 12, Some(1_000))
            .await
            .unwrap();
        assert!(
            !s.notify
                .put_channel(&webhook("hook", "http://b"))
                .await
                .unwrap(),
            "replaced"
        );
    }
    let s = backend.open();
    assert_eq!(s.notify.silences().await.unwrap()[0].matcher, matcher);
    assert_eq!(
        s.notify.channels().await.unwrap(),
        [webhook("hook", "http://b"), mail]
    );
    let due = s.notify.due_messages(999, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|m| (m.message.channel.as_str(), m.message.msg_id.as_str()))
            .collect::<Vec<_>>(),
        [("mail", "alert-1"), ("hook", "alert-2")],
        "the failed one waits for its retry time"
    );
    let due = s.notify.due_messages(1_000, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let retried = due.iter().find(|m| m.attempts == 1).expect("retried");
    s.notify.delivered(retried.id).await.unwrap();
    let mail_msg = due.iter().find(|m| m.message.channel == "mail").unwrap();
    s.notify
        .attempt_failed(mail_msg.id, "connection refused", 1_001, None)
        .await
        .unwrap();
    let left = s.notify.due_messages(i64::MAX, 10).await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "delivered and given-up messages are not offered: {left:?}"
    );
    let stats = s.notify.channel_stats().await.unwrap();
    assert_eq!(
        stats
            .iter()
            .map(|c| (c.name.as_str(), c.delivered, c.pending, c.failed))
            .collect::<Vec<_>>(),
        [("hook", 1, 1, 0), ("mail", 0, 0, 1)]
    );
    assert_eq!(stats[0].last_error, Some((12, "HTTP 500".into())));
    assert!(s.notify.delete_channel("hook").await.unwrap());
    assert!(
        s.notify
            .due_messages(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let group = AlertGroup {
        id: 0,
        alert_kind: AlertKind::Silence,
        device_kind: "room".into(),
        opened_ms: 5,
        members: vec![(1, "d1".into()), (2, "d2".into())],
    };
    let id = s.notify.save_group(&group).await.unwrap();
    assert_eq!(
        s.notify.groups(10).await.unwrap(),
        [AlertGroup { id, ..group }]
    );
}

pub async fn erasing_a_device_removes_its_notifications_group_places_and_silences(
    backend: &impl Backend,
) {
    let s = backend.open();
    for d in ["d1", "d2"] {
        s.registry.create_device(NewDevice::new(d)).await.unwrap();
    }
    s.notify
        .put_channel(&webhook("hook", "http://a"))
        .await
        .unwrap();
    let routed = |name: &str, devices: &[&str]| Channel {
        route: Some(AlertMatcher {
            devices: devices.iter().map(|d| dev(d)).collect(),
            min_severity: Severity::Critical,
            ..AlertMatcher::default()
        }),
        ..webhook(name, "http://b")
    };
    for c in [routed("only-d1", &["d1"]), routed("both", &["d1", "d2"])] {
        s.notify.put_channel(&c).await.unwrap();
    }
    let body = |device: &str| {
        format!(r#"{{"type":"alert.opened","data":{{"id":1,"device":"{device}"}}}}"#)
    };
    let msgs = ["d1", "d2", "d11"].map(|d| NewMessage {
        body: body(d),
        ..message("hook", &format!("alert-{d}"), 1)
    });
    s.notify.enqueue(msgs.to_vec()).await.unwrap();
    let group = AlertGroup {
        id: 0,
        alert_kind: AlertKind::Silence,
        device_kind: "room".into(),
        opened_ms: 5,
        members: vec![(1, "d1".into()), (2, "d2".into())],
    };
    s.notify.save_group(&group).await.unwrap();
    for devices in [vec![dev("d1")], vec![dev("d2")]] {
        s.notify
            .create_silence(NewSilence {
                matcher: AlertMatcher {
                    devices,
                    ..AlertMatcher::default()
                },
                until_ms: 100,
                reason: "r".into(),
                author: "admin".into(),
                created_ms: 1,
            })
            .await
            .unwrap();
    }
    s.registry.delete_device(&dev("d1"), true).await.unwrap();
    let left: Vec<String> = s
        .notify
        .due_messages(i64::MAX, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message.msg_id)
        .collect();
    assert_eq!(left, ["alert-d2", "alert-d11"]);
    assert_eq!(
        s.notify.groups(1).await.unwrap()[0].members,
        [(2, "d2".to_string())]
    );
    let silences = s.notify.silences().await.unwrap();
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0].matcher.devices, [dev("d2")]);
    // A route keeps its other devices; one left naming none routes nothing (not everything).
    let channels = s.notify.channels().await.unwrap();
    let route = |name: &str| {
        channels
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .route
            .clone()
    };
    assert_eq!(
        route("hook"),
        webhook("hook", "").route,
        "a route naming no device is kept"
    );
    assert_eq!(route("only-d1"), None);
    let both = route("both").expect("still routed");
    assert_eq!(both.devices, [dev("d2")]);
    assert_eq!(both.min_severity, Severity::Critical);
}
