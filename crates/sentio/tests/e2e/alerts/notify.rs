//! Notifications through the front door: a webhook receiver that fails (500) and then
//! recovers, with a Sentio restart in between, gets every notification exactly once, each
//! signed (the signature is checked here with its own HMAC); a silence mutes an alert that is
//! still recorded; a rule's `notify` action mails its channel through an SMTP server started in
//! the test; 200 devices going quiet at once raise one grouped notification (and one when they are
//! back); an MQTT channel
//! and a webhook hear an alert open, acknowledged and resolved (a silenced one: nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sentio::config::{Config, Span};
use serde_json::{Value, json};

use crate::support::receivers::{Hook, SmtpServer, WebhookReceiver};
use crate::support::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Retries every 200 ms to 1 s, so that a test sees several.
fn fast_retries(c: &mut Config) {
    c.notify.retry_first = Span(200);
    c.notify.retry_max = Span(1_000);
}

/// Checks the Standard Webhooks signature of `h` with `SECRET`.
fn signed(h: &Hook) -> bool {
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", h.id, h.timestamp, h.body);
    let Some(sig) = h.signature.strip_prefix("v1,") else {
        return false;
    };
    let Ok(tag) = STANDARD.decode(sig) else {
        return false;
    };
    ring::hmac::verify(&key, signed.as_bytes(), &tag).is_ok()
}

async fn channel(node: &sentio::node::Node, body: Value) -> Value {
    let (st, v) = api(node, "POST", "/api/v1/channels", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    v
}

async fn co2_rule(node: &sentio::node::Node, actions: Value) {
    let rule = json!({"id": "co2-high", "name": "CO2 high", "actions": actions,
                      "selector": {"kind": "room", "metrics": ["co2"]}, "condition": "co2 > 1000"});
    let (st, body) = api(node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
}

async fn co2_high(node: &sentio::node::Node, device: &str, secret: &str) {
    let (st, body) = post_telemetry(node, device, secret, &[json!({"co2": 1_200})]).await;
    assert_eq!(st, 200, "{body}");
}

async fn hook_channel(node: &sentio::node::Node) -> Value {
    let (_, list) = api(node, "GET", "/api/v1/channels", None).await;
    list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hook")
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_gets_every_notification_once_and_signed_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start(true).await;
    let node = start_with(dir.path(), fast_retries).await;
    let created = channel(
        &node,
        json!({"name": "hook", "webhook": {"url": hook.url, "secret": SECRET}, "route": {}}),
    )
    .await;
    assert_eq!(
        created["webhook"]["secret"], SECRET,
        "shown once, at creation"
    );
    co2_rule(&node, json!(["alert"])).await;
    let rooms = ["room-1", "room-2", "room-3"];
    for room in rooms {
        let secret = register(&node, room, "room").await;
        co2_high(&node, room, &secret).await;
    }
    // The receiver fails: every notification waits, retried, and the channel says why.
    let failing = eventually(20, || async {
        let c = hook_channel(&node).await;
        let tried: BTreeMap<String, usize> =
            hook.hooks().iter().fold(BTreeMap::new(), |mut m, h| {
                *m.entry(h.id.clone()).or_default() += 1;
                m
            });
        (c["pending"] == 3 && tried.len() == 3 && tried.values().all(|&n| n >= 2)).then_some(c)
    })
    .await
    .unwrap_or_else(|| panic!("retried: {:?} {}", hook.hooks().len(), "3 pending"));
    assert_eq!(failing["last_error"], "HTTP 500", "{failing}");
    assert!(
        failing
            .get("webhook")
            .is_some_and(|w| w.get("secret").is_none()),
        "{failing}"
    );
    let (_, _, metrics) = get_text(format!("http://{}/metrics", node.http_addr), bearer()).await;
    assert!(
        metrics.contains("sentio_notify_pending{channel=\"hook\"} 3"),
        "{metrics}"
    );

    // A restart while they wait; then the receiver recovers.
    node.shutdown().await;
    hook.set_failing(false);
    let node = start_with(dir.path(), fast_retries).await;
    let delivered = eventually(20, || async {
        let c = hook_channel(&node).await;
        (c["delivered"] == 3 && c["pending"] == 0).then_some(c)
    })
    .await;
    assert!(delivered.is_some(), "{:?}", hook_channel(&node).await);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let hooks = hook.hooks();
    assert!(
        hooks.iter().all(signed),
        "every attempt is signed: {hooks:?}"
    );
    let mut accepted: Vec<&Hook> = hooks.iter().filter(|h| h.status == 204).collect();
    accepted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        accepted.len(),
        3,
        "each exactly once after success: {hooks:?}"
    );
    let mut devices: Vec<String> = Vec::new();
    for h in &accepted {
        let body: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(body["type"], "alert.opened");
        assert_eq!(h.id, format!("alert-{}", body["data"]["id"]));
        devices.push(body["data"]["device"].as_str().unwrap().to_string());
    }
    devices.sort();
    assert_eq!(devices, rooms);
    let ids: std::collections::HashSet<&str> = accepted.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_mutes_a_notification_and_a_rule_mails_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start(false).await;
    let smtp = SmtpServer::start().await;
    let node = start(dir.path()).await;
    channel(
        &node,
        json!({"name": "hook", "webhook": {"url": hook.url, "secret": SECRET}, "route": {}}),
    )
    .await;
    channel(
        &node,
        json!({"name": "mail", "email": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
               "from": "sentio@example.org", "to": ["ops@example.org"]}}),
    )
    .await;
    co2_rule(&node, json!(["alert", {"notify": "mail"}])).await;
    let vic = signed_in(&node, "vic", "viewer").await;
    let olga = signed_in(&node, "olga", "operator").await;
    let silence =
        json!({"selector": {"devices": ["room-2"]}, "for": "1h", "reason": "maintenance"});
    assert_eq!(
        vic.call("POST", "/api/v1/silences", Some(silence.clone()))
            .await
            .status,
        403
    );
    assert_eq!(vic.call("GET", "/api/v1/channels", None).await.status, 403);
    let r = olga.call("POST", "/api/v1/silences", Some(silence)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["author"], "user:olga");
    let silence_id = r.body["id"].clone();
    let listed = vic.call("GET", "/api/v1/silences", None).await;
    assert_eq!(listed.body["silences"][0]["id"], silence_id);

    for room in ["room-1", "room-2"] {
        let secret = register(&node, room, "room").await;
        co2_high(&node, room, &secret).await;
    }
    let muted = wait_for_kind(&node, "room-2", "rule", 10).await;
    let heard = wait_for_kind(&node, "room-1", "rule", 10).await;
    let arrived = eventually(10, || async {
        (hook.hooks().len() == 1 && smtp.mails().len() == 1).then_some(())
    })
    .await;
    assert!(arrived.is_some(), "{:?} {:?}", hook.hooks(), smtp.mails());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let hooks = hook.hooks();
    assert_eq!(
        hooks.len(),
        1,
        "the silenced alert is not notified: {hooks:?}"
    );
    assert_eq!(hooks[0].id, format!("alert-{}", heard["id"]));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["<ops@example.org>"]);
    assert!(
        mails[0].data.contains("Subject: Sentio: [warning] rule"),
        "{}",
        mails[0].data
    );
    assert!(mails[0].data.contains("room-1"), "{}", mails[0].data);
    let (_, muted) = api(
        &node,
        "GET",
        &format!("/api/v1/alerts/{}", muted["id"]),
        None,
    )
    .await;
    assert_eq!(
        muted["silenced_by"], silence_id,
        "recorded, shown as silenced"
    );
    assert_eq!(muted["state"], "open");
    // Nobody heard of it opening, so nobody hears of it resolving either.
    let r = olga
        .call(
            "POST",
            &format!("/api/v1/alerts/{}/resolve", muted["id"]),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(hook.hooks().len(), 1, "{:?}", hook.hooks());
    assert_eq!(smtp.mails().len(), 1);

    let path = format!("/api/v1/silences/{silence_id}");
    assert_eq!(vic.call("DELETE", &path, None).await.status, 403);
    assert_eq!(olga.call("DELETE", &path, None).await.status, 204);
    assert_eq!(olga.call("DELETE", &path, None).await.status, 404);
    node.shutdown().await;
}

/// Every device of `fleet` (id, secret) posts `power`, eight at a time.
async fn report_all(node: &sentio::node::Node, fleet: &[(String, String)], power: i64) {
    let posts = fleet
        .chunks(fleet.len().div_ceil(8))
        .map(|chunk| async move {
            for (id, secret) in chunk {
                let (st, _) = post_telemetry(node, id, secret, &[json!({"power": power})]).await;
                assert_eq!(st, 200);
            }
        });
    futures_util::future::join_all(posts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_going_quiet_and_coming_back_raise_one_grouped_notification_each() {
    let _heavy = heavy().await;
    const DEVICES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start(false).await;
    // Long enough for the last of 200 devices to fall silent too, on a loaded machine.
    let node = start_with(dir.path(), |c| c.notify.group_wait = Span(8_000)).await;
    channel(
        &node,
        json!({"name": "hook", "webhook": {"url": hook.url, "secret": SECRET},
               "route": {"alert_kinds": ["silence"]}}),
    )
    .await;
    let mut fleet = Vec::new();
    for i in 0..DEVICES {
        let id = format!("meter-{i}");
        let secret = register(&node, &id, "meter").await;
        fleet.push((id, secret));
    }
    // Every device reports twelve times (its cadence is learnt), then all go quiet together.
    for round in 0..12 {
        report_all(&node, &fleet, 100 + round).await;
    }
    let grouped = eventually(60, || async {
        hook.hooks()
            .into_iter()
            .find(|h| h.body.contains("alert.group"))
    })
    .await
    .expect("one grouped notification");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 1, "one notification, not {}", hooks.len());
    assert!(signed(&grouped));
    let body: Value = serde_json::from_str(&grouped.body).unwrap();
    assert_eq!(body["data"]["count"], DEVICES, "{body}");
    assert_eq!(body["data"]["device_kind"], "meter");
    let (_, groups) = api(&node, "GET", "/api/v1/alert-groups", None).await;
    assert_eq!(groups["groups"].as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(
        groups["groups"][0]["members"].as_array().unwrap().len(),
        DEVICES
    );
    let (_, open) = api(&node, "GET", "/api/v1/alerts?state=open&limit=1000", None).await;
    let silent = open["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["explanation"]["kind"] == "silence")
        .count();
    assert_eq!(silent, DEVICES, "every member is still its own alert");

    // The fleet comes back together: one message says so, not 200.
    report_all(&node, &fleet, 100).await;
    let back = eventually(60, || async {
        hook.hooks()
            .into_iter()
            .find(|h| h.body.contains("alert.group.resolved"))
    })
    .await
    .expect("one grouped resolution");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    assert_eq!(hook.hooks().len(), 2, "{:?}", hook.hooks().len());
    let body: Value = serde_json::from_str(&back.body).unwrap();
    assert_eq!(body["data"]["count"], DEVICES, "{body}");
    node.shutdown().await;
}

/// The bodies `hook` accepted, by message id.
fn accepted_bodies(hook: &WebhookReceiver) -> BTreeMap<String, Value> {
    hook.hooks()
        .into_iter()
        .filter(|h| h.status == 204)
        .map(|h| (h.id, serde_json::from_str(&h.body).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_channel_and_a_webhook_hear_an_alert_open_acknowledged_and_resolved() {
    use rumqttc::{Packet, QoS};
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start(false).await;
    let node = start(dir.path()).await;
    for bad in ["ops/#", "$SYS/alerts", "devices/room-1/commands/c1", ""] {
        let (st, v) = api(
            &node,
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "bus", "mqtt": {"topic": bad}})),
        )
        .await;
        assert_eq!(st, 422, "{bad:?}: {v}");
        assert!(v.to_string().contains("mqtt.topic"), "{v}");
    }
    let bus = channel(
        &node,
        json!({"name": "bus", "mqtt": {"topic": "ops/alerts"}, "route": {}}),
    )
    .await;
    assert_eq!(bus["type"], "mqtt");
    assert_eq!(bus["mqtt"]["topic"], "ops/alerts");
    channel(
        &node,
        json!({"name": "hook", "webhook": {"url": hook.url, "secret": SECRET}, "route": {}}),
    )
    .await;
    // An integration listens on the channel's topic with a token of its own.
    let (_, user, pass) = create_token(
        &node,
        "ops",
        json!([{"filter": "ops/#", "rights": "subscribe"}]),
    )
    .await;
    let (listener, mut el) = mqtt_connect(&node, "ops-listener", &user, &pass)
        .await
        .unwrap();
    listener
        .subscribe("ops/alerts", QoS::AtLeastOnce)
        .await
        .unwrap();
    next_v3(&mut el, |p| matches!(p, Packet::SubAck(_)).then_some(()))
        .await
        .unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = heard.clone();
    let listening = tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let rumqttc::Event::Incoming(Packet::Publish(p)) = ev {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&p.payload).unwrap());
            }
        }
    });

    let rule = json!({"id": "co2-high", "name": "CO2 high", "actions": ["alert"],
                      "selector": {"kind": "room", "metrics": ["co2"]},
                      "condition": "co2 > 1000", "clear_for": "1s"});
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    let secret = register(&node, "room-1", "room").await;
    co2_high(&node, "room-1", &secret).await;
    let alert = wait_for_kind(&node, "room-1", "rule", 10).await;
    let id = alert["id"].as_i64().unwrap();
    let olga = signed_in(&node, "olga", "operator").await;
    let r = olga
        .call("POST", &format!("/api/v1/alerts/{id}/ack"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Back to normal for longer than `clear_for`: the rule's alert resolves by itself.
    for _ in 0..2 {
        let (st, _) = post_telemetry(&node, "room-1", &secret, &[json!({"co2": 500})]).await;
        assert_eq!(st, 200);
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    let (st, _) = post_telemetry(&node, "room-1", &secret, &[json!({"co2": 500})]).await;
    assert_eq!(st, 200);

    let want = [
        format!("alert-{id}"),
        format!("alert-{id}-acknowledged"),
        format!("alert-{id}-resolved"),
    ];
    let hooks = eventually(15, || async {
        let got = accepted_bodies(&hook);
        want.iter().all(|w| got.contains_key(w)).then_some(got)
    })
    .await
    .unwrap_or_else(|| panic!("webhook heard {:?}", hook.hooks()));
    assert_eq!(hooks.len(), 3, "{hooks:?}");
    assert_eq!(hooks[&want[0]]["type"], "alert.opened");
    let acked = &hooks[&want[1]];
    assert_eq!(acked["type"], "alert.acknowledged");
    assert_eq!(acked["data"]["acknowledged_by"], "user:olga", "{acked}");
    let resolved = &hooks[&want[2]];
    assert_eq!(resolved["type"], "alert.resolved");
    assert!(
        resolved["data"]["resolved_ms"].as_i64().is_some(),
        "{resolved}"
    );
    assert!(
        resolved["summary"].as_str().unwrap().contains("resolved"),
        "{resolved}"
    );

    let on_bus = eventually(10, || async {
        let got = heard.lock().unwrap().clone();
        (got.len() >= 3).then_some(got)
    })
    .await
    .unwrap_or_else(|| panic!("the MQTT channel carried {:?}", heard.lock().unwrap()));
    let kinds: Vec<&str> = on_bus.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["alert.opened", "alert.acknowledged", "alert.resolved"],
        "in order"
    );
    assert!(on_bus.iter().all(|b| b["data"]["id"] == id));
    let (_, list) = api(&node, "GET", "/api/v1/channels", None).await;
    let bus = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bus")
        .unwrap()
        .clone();
    assert_eq!(bus["delivered"], 3, "{bus}");
    listening.abort();
    node.shutdown().await;
}
