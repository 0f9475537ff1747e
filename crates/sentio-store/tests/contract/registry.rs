//! Devices, secrets, tokens, text events and the audit log.

use std::collections::BTreeMap;
use std::sync::Arc;

use sentio_core::acl::{AclRule, Rights};
use sentio_core::{Alert, AlertId, AlertState, Explanation, Point, TextEvent};
use sentio_store::{
    Agg, AlertFilter, AuditFilter, DeviceUpdate, EVENT_HISTORY, NewAudit, NewDevice, NewToken,
    RangeQuery, Scope, StoreError, TOKEN_USERNAME_PREFIX,
};

use super::{Backend, dev, point};

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

fn query(device: &str, from: i64, to: i64, step: Option<(i64, Agg)>, limit: usize) -> RangeQuery {
    RangeQuery {
        device: dev(device),
        metric: "t".into(),
        from_ms: from,
        to_ms: to,
        step,
        limit,
    }
}

pub async fn everything_survives_reopen_and_erase_removes_everything(backend: &impl Backend) {
    let secret;
    {
        let s = backend.open();
        let (_, sec) = s
            .registry
            .create_device(NewDevice::new("d1"))
            .await
            .unwrap();
        secret = sec;
        assert!(matches!(
            s.registry.create_device(NewDevice::new("d1")).await,
            Err(StoreError::DuplicateDevice(_))
        ));
        assert!(
            s.registry
                .create_device(NewDevice::new("bad/id"))
                .await
                .is_err()
        );
        let pts: Vec<Point> = (0..100)
            .map(|i| point("d1", "t", i * 1000, i as f64))
            .collect();
        s.series.append(&pts).await.unwrap();
        // Same timestamp again: last value wins.
        s.series.append(&[point("d1", "t", 0, 42.0)]).await.unwrap();
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
            ack: None,
            resolved_by: None,
            silenced_by: None,
        };
        let id = s.alerts.save_alert(&alert).await.unwrap();
        assert!(id > 0);
        s.alerts
            .save_alert(&Alert {
                id: AlertId::new(id),
                state: AlertState::Resolved,
                resolved_ms: Some(9),
                ..alert
            })
            .await
            .unwrap();
    }
    let s = backend.open();
    assert!(s.registry.verify_secret(&dev("d1"), &secret));
    assert!(!s.registry.verify_secret(&dev("d1"), "nope"));
    assert!(!s.registry.verify_secret(&dev("d2"), &secret));

    let raw = s
        .series
        .query(query("d1", 0, 10_000, None, 1000))
        .await
        .unwrap();
    assert_eq!(raw.points.len(), 10);
    assert_eq!(raw.points[0], (0, 42.0));
    assert_eq!(raw.next, None);

    let page = s
        .series
        .query(query("d1", 0, 100_000, None, 30))
        .await
        .unwrap();
    assert_eq!(page.points.len(), 30);
    assert_eq!(page.next, Some(30_000));

    let step = |width, agg| query("d1", 10_000, 30_000, Some((width, agg)), 100);
    let avg = s.series.query(step(10_000, Agg::Avg)).await.unwrap();
    assert_eq!(avg.points, vec![(10_000, 14.5), (20_000, 24.5)]);
    let last = s.series.query(step(10_000, Agg::Last)).await.unwrap();
    assert_eq!(last.points, vec![(10_000, 19.0), (20_000, 29.0)]);
    let count = s
        .series
        .query(query("d1", 0, 100_000, Some((60_000, Agg::Count)), 100))
        .await
        .unwrap();
    assert_eq!(count.points, vec![(0, 60.0), (60_000, 40.0)]);

    let series = s.series.series(&dev("d1")).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(s.series.metric_names(&dev("d1")).await.unwrap(), ["t"]);
    assert!(s.series.metric_names(&dev("d2")).await.unwrap().is_empty());
    assert_eq!(
        (series[0].latest_ts_ms, series[0].latest_value),
        (99_000, 99.0)
    );

    let alerts = s.alerts.list_alerts(AlertFilter::default()).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].state, AlertState::Resolved);
    assert_eq!(alerts[0].explanation.observed, 9.0);

    let removed = s.registry.delete_device(&dev("d1"), true).await.unwrap();
    assert!(
        removed.contains(&("points".to_string(), 100)),
        "{removed:?}"
    );
    assert!(removed.contains(&("alerts".to_string(), 1)), "{removed:?}");
    assert!(!s.registry.verify_secret(&dev("d1"), &secret));
    assert!(!s.registry.is_registered(&dev("d1")));
    let raw = s
        .series
        .query(query("d1", 0, 100_000, None, 1000))
        .await
        .unwrap();
    assert!(raw.points.is_empty());
    assert!(s.series.series(&dev("d1")).await.unwrap().is_empty());
    assert!(s.series.metric_names(&dev("d1")).await.unwrap().is_empty());
    assert!(matches!(
        s.registry.delete_device(&dev("d1"), false).await,
        Err(StoreError::UnknownDevice(_))
    ));
}

/// A kind names a peer group and the first part of a declared limit, a name is shown to people,
/// and an id differing from a registered one only in case would look like the same device:
/// (id, kind, name, the refusal's words or "" when accepted).
pub async fn kinds_names_and_ids_are_checked_at_registration(backend: &impl Backend) {
    let s = backend.open();
    let long_kind = "k".repeat(65);
    let cases: [(&str, Option<&str>, Option<&str>, &str); 9] = [
        ("dev-a", Some("pump"), Some("Pump A"), ""),
        ("DEV-A", Some("pump"), None, "\"dev-a\" already exists"),
        ("Dev-a", None, None, "\"dev-a\" already exists"),
        ("dev-b", Some("pump.x"), None, "kind \"pump.x\" is invalid"),
        ("dev-c", Some(""), None, "kind \"\" is invalid"),
        ("dev-d", Some(long_kind.as_str()), None, "is invalid"),
        (
            "dev-e",
            None,
            Some("line\nINFO admin login ok"),
            "control characters",
        ),
        ("dev-f", None, Some("\u{1b}[31mred"), "control characters"),
        ("dev-g", Some("wear_able-2"), Some("Ünïcode name"), ""),
    ];
    for (id, kind, name, refusal) in cases {
        let mut new = NewDevice::new(id);
        new.kind = kind.map(str::to_string);
        new.name = name.map(str::to_string);
        match (s.registry.create_device(new).await, refusal) {
            (Ok(_), "") => {}
            (Err(e), words) if !words.is_empty() && e.to_string().contains(words) => {}
            (got, _) => panic!(
                "{id} {kind:?} {name:?}: got {:?}, wanted {refusal:?}",
                got.map(|d| d.0.id)
            ),
        }
    }
    assert!(!s.registry.is_registered(&dev("DEV-A")));
    // A rename is held to the same rule.
    let renamed = s
        .registry
        .update_device(
            &dev("dev-a"),
            DeviceUpdate {
                name: Some("bad\rname".into()),
                labels: BTreeMap::new(),
            },
        )
        .await;
    assert!(renamed.is_err_and(|e| e.to_string().contains("control characters")));
}

pub async fn devices_change_labels_secrets_last_seen_and_refusals(backend: &impl Backend) {
    let s = backend.open();
    let mut new = NewDevice::new("pump-1");
    new.kind = Some("pump".into());
    new.labels = BTreeMap::from([("site".to_string(), "plant-a".to_string())]);
    let (d, old_secret) = s.registry.create_device(new).await.unwrap();
    assert_eq!(
        (d.id.as_str(), d.name.as_str(), d.kind.as_str()),
        ("pump-1", "pump-1", "pump")
    );
    s.registry
        .create_device(NewDevice::new("pump-2"))
        .await
        .unwrap();
    assert!(s.registry.is_registered(&dev("pump-1")));
    assert!(!s.registry.is_registered(&dev("pump-3")));
    assert_eq!(s.registry.get_device(&dev("pump-3")).await.unwrap(), None);

    // Rename and relabel: labels not named are kept, `None` removes one.
    let changed = s
        .registry
        .update_device(
            &dev("pump-1"),
            DeviceUpdate {
                name: Some("Pump one".into()),
                labels: BTreeMap::from([
                    ("line".to_string(), Some("2".to_string())),
                    ("site".to_string(), Some("plant-b".to_string())),
                ]),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.name, "Pump one");
    assert_eq!(
        changed.labels,
        BTreeMap::from([
            ("line".to_string(), "2".to_string()),
            ("site".to_string(), "plant-b".to_string())
        ])
    );
    assert_eq!(
        s.registry.get_device(&dev("pump-1")).await.unwrap(),
        Some(changed.clone())
    );
    let selector = BTreeMap::from([("site".to_string(), "plant-b".to_string())]);
    let found = s.registry.devices_with_labels(&selector).await.unwrap();
    assert_eq!(found, vec![changed]);
    let removed = s
        .registry
        .update_device(
            &dev("pump-1"),
            DeviceUpdate {
                name: None,
                labels: BTreeMap::from([("line".to_string(), None)]),
            },
        )
        .await
        .unwrap();
    assert_eq!(removed.labels.len(), 1);
    assert!(matches!(
        s.registry
            .update_device(&dev("pump-3"), DeviceUpdate::default())
            .await,
        Err(StoreError::UnknownDevice(_))
    ));

    // A new secret replaces the old one at once.
    let new_secret = s.registry.rotate_secret(&dev("pump-1")).await.unwrap();
    assert_ne!(new_secret, old_secret);
    assert!(s.registry.verify_secret(&dev("pump-1"), &new_secret));
    assert!(!s.registry.verify_secret(&dev("pump-1"), &old_secret));
    assert!(matches!(
        s.registry.rotate_secret(&dev("pump-3")).await,
        Err(StoreError::UnknownDevice(_))
    ));

    // Last seen only moves forward; refusals are counted with the latest reason.
    s.registry
        .touch(&[(dev("pump-1"), 5_000), (dev("pump-2"), 7_000)])
        .await
        .unwrap();
    s.registry.touch(&[(dev("pump-1"), 4_000)]).await.unwrap();
    s.registry
        .record_rejection(&dev("pump-1"), 6_000, "bad payload")
        .await
        .unwrap();
    s.registry
        .record_rejection(&dev("pump-1"), 8_000, "too late")
        .await
        .unwrap();
    let d = s
        .registry
        .get_device(&dev("pump-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.last_seen_ms, Some(5_000));
    assert_eq!(d.rejected_count, 2);
    assert_eq!(
        (d.last_rejection.as_deref(), d.last_rejection_ms),
        (Some("too late"), Some(8_000))
    );
    let all = s.registry.list_devices().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["pump-1", "pump-2"]);
    assert_eq!(all[1].last_seen_ms, Some(7_000));
}

fn rule(filter: &str, rights: Rights) -> AclRule {
    AclRule::allow(filter, rights)
}

pub async fn tokens_survive_a_reopen_and_revocation_is_immediate(backend: &impl Backend) {
    let t;
    let password;
    {
        let s = backend.open();
        (t, password) = s
            .tokens
            .create_token(NewToken {
                name: "bench".into(),
                // A deny entry survives the reopen too (checked at the end).
                acl: vec![
                    rule("mqtt-load/#", Rights::Both),
                    AclRule::deny("mqtt-load/private/#", Rights::Publish),
                ],
                scopes: vec![],
            })
            .await
            .unwrap();
        assert!(t.username.starts_with(TOKEN_USERNAME_PREFIX));
        assert!(s.tokens.verify_token(&t.username, &password).is_some());
        assert!(s.tokens.verify_token(&t.username, "guess").is_none());
        let scopes = s.tokens.token_scopes(&t.username, &password).unwrap();
        assert!(scopes.is_empty(), "{scopes:?}");
        let dup = s
            .tokens
            .create_token(NewToken {
                name: "bench".into(),
                acl: vec![rule("x", Rights::Publish)],
                scopes: vec![],
            })
            .await;
        assert!(matches!(dup, Err(StoreError::DuplicateToken(_))), "{dup:?}");
        for bad in [vec![], vec![rule("a/#/b", Rights::Publish)]] {
            let r = s
                .tokens
                .create_token(NewToken {
                    name: "other".into(),
                    acl: bad,
                    scopes: vec![],
                })
                .await;
            assert!(matches!(r, Err(StoreError::InvalidQuery(_))), "{r:?}");
        }
    }
    // A token with a scope and no ACL: it reads metrics over HTTP, may do nothing over MQTT.
    let (metrics, metrics_password) = {
        let s = backend.open();
        s.tokens
            .create_token(NewToken {
                name: "prometheus".into(),
                acl: vec![],
                scopes: vec![Scope::Metrics, Scope::Metrics],
            })
            .await
            .unwrap()
    };
    assert_eq!(metrics.scopes, vec![Scope::Metrics]);
    let s = backend.open();
    assert_eq!(
        &s.tokens
            .token_scopes(&metrics.username, &metrics_password)
            .unwrap()[..],
        &[Scope::Metrics]
    );
    assert!(s.tokens.token_scopes(&metrics.username, "guess").is_none());
    assert_eq!(
        s.tokens.delete_token(&metrics.id).await.unwrap(),
        metrics.clone()
    );
    assert!(
        s.tokens
            .token_scopes(&metrics.username, &metrics_password)
            .is_none()
    );
    assert_eq!(s.tokens.list_tokens().await.unwrap(), vec![t.clone()]);
    let acl = s.tokens.verify_token(&t.username, &password).unwrap();
    assert_eq!(&acl[..], &t.acl[..]);
    assert_eq!(s.tokens.delete_token(&t.id).await.unwrap(), t);
    assert!(s.tokens.verify_token(&t.username, &password).is_none());
    assert!(s.tokens.token_acl(&t.username).is_none());
    assert!(matches!(
        s.tokens.delete_token(&t.id).await,
        Err(StoreError::UnknownToken(_))
    ));
    assert!(s.tokens.list_tokens().await.unwrap().is_empty());
}

fn event(metric: &str, ts_ms: i64, text: &str) -> TextEvent {
    TextEvent {
        device: dev("m-1"),
        metric: Arc::from(metric),
        ts_ms,
        text: text.into(),
    }
}

pub async fn text_events_keep_the_last_text_and_a_bounded_history(backend: &impl Backend) {
    let s = backend.open();
    s.registry
        .create_device(NewDevice::new("m-1"))
        .await
        .unwrap();
    let n = EVENT_HISTORY as i64 + 5;
    let states: Vec<TextEvent> = (0..n)
        .map(|i| event("state", i, &format!("s{i}")))
        .collect();
    s.events.append_events(&states).await.unwrap();
    s.events
        .append_events(&[event("mode", 3, "auto"), event("mode", 3, "manual")])
        .await
        .unwrap();

    let all = s
        .events
        .events(&dev("m-1"), Some("state"), usize::MAX)
        .await
        .unwrap();
    assert_eq!(all.len(), EVENT_HISTORY, "only the newest are kept");
    assert_eq!(
        (all[0].ts_ms, all[0].text.as_str()),
        (n - 1, format!("s{}", n - 1).as_str())
    );
    assert!(
        all.windows(2).all(|w| w[0].ts_ms > w[1].ts_ms),
        "newest first"
    );
    let mode = s
        .events
        .events(&dev("m-1"), Some("mode"), 10)
        .await
        .unwrap();
    assert_eq!(mode, vec![event("mode", 3, "manual")], "the last text wins");
    let newest = s.events.events(&dev("m-1"), None, 2).await.unwrap();
    assert_eq!(newest.len(), 2);
    assert!(
        s.events
            .events(&dev("m-2"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let removed = s.registry.delete_device(&dev("m-1"), true).await.unwrap();
    assert!(
        removed.contains(&("events".to_string(), EVENT_HISTORY as u64 + 1)),
        "{removed:?}"
    );
    assert!(
        s.events
            .events(&dev("m-1"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn the_audit_log_lists_newest_first_and_an_erasure_anonymises_it(backend: &impl Backend) {
    let s = backend.open();
    s.registry
        .create_device(NewDevice::new("a-1"))
        .await
        .unwrap();
    for action in ["device.create", "device.update"] {
        s.audit
            .record(NewAudit {
                actor: "admin".into(),
                action: action.into(),
                subject: Some("a-1".into()),
                detail: serde_json::json!({"n": 1}),
            })
            .await
            .unwrap();
    }
    let about = |subject: &str| AuditFilter {
        subject: Some(subject.into()),
        limit: 10,
        ..AuditFilter::default()
    };
    let entries = s.audit.audit(about("a-1")).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["device.update", "device.create"]);
    assert_eq!(entries[0].detail, serde_json::json!({"n": 1}));
    let updates = s
        .audit
        .audit(AuditFilter {
            action: Some("device.update".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(updates.len(), 1);
    // Paged: the entries before the newest one.
    let older = s
        .audit
        .audit(AuditFilter {
            before: Some(entries[0].id),
            ..about("a-1")
        })
        .await
        .unwrap();
    let actions: Vec<&str> = older.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["device.create"]);

    // Erasing the device records the erasure and keeps only a digest of its id, by which
    // its entries are still found.
    s.registry.delete_device(&dev("a-1"), true).await.unwrap();
    let entries = s.audit.audit(about("a-1")).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["device.erase", "device.update", "device.create"]);
    assert!(
        entries
            .iter()
            .all(|e| e.subject.is_none() && e.subject_digest.is_some()),
        "{entries:?}"
    );
}
