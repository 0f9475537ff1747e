//! Scoped API tokens through the front door — created over HTTP, used by real MQTT
//! 3.1.1 and 5 clients (rumqttc), confined to their ACL, revoked with their clients closed; a
//! token with the read-only `metrics` scope reads `/metrics` over HTTP and nothing else.

use std::time::Duration;

use crate::support::*;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as ConnectReturnCode5, Packet as Packet5};
use rumqttc::v5::mqttbytes::v5::{PubAckReason, SubscribeReasonCode as SubCode5};
use rumqttc::v5::{AsyncClient as Client5, ConnectionError as ConnError5, MqttOptions as Options5};
use rumqttc::{ConnectReturnCode, ConnectionError, Packet, QoS, SubscribeReasonCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_publishes_and_subscribes_inside_its_acl_and_revocation_closes_its_clients() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let acl = json!([{"filter": "mqtt-load/#", "rights": "both"}]);
    let (id, user, pass) = create_token(&node, "bench", acl.clone()).await;
    assert!(user.starts_with("token:"), "{user}");

    // The list shows it, never its password.
    let (status, list) = api(&node, "GET", "/api/v1/tokens", None).await;
    assert_eq!(status, 200, "{list}");
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{list}");
    assert_eq!(tokens[0]["id"], id.as_str());
    assert_eq!(tokens[0]["username"], user.as_str());
    assert_eq!(tokens[0]["acl"], acl);
    assert!(tokens[0].get("password").is_none(), "{list}");
    assert!(!list.to_string().contains(&pass));

    // Subscribe inside the ACL: granted; outside it: refused (3.1.1 has one failure code).
    let (sub, mut sub_el) = mqtt_connect(&node, "bench-sub", &user, &pass)
        .await
        .unwrap();
    sub.subscribe("mqtt-load/+/x", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = next_v3(&mut sub_el, |p| match p {
        Packet::SubAck(a) => Some(a.return_codes.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    sub.subscribe("devices/#", QoS::AtLeastOnce).await.unwrap();
    let codes = next_v3(&mut sub_el, |p| match p {
        Packet::SubAck(a) => Some(a.return_codes.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Failure]);

    // Publish inside the ACL from a second client: acknowledged and delivered.
    let (publ, mut pub_el) = mqtt_connect(&node, "bench-pub", &user, &pass)
        .await
        .unwrap();
    publish_acked(&publ, &mut pub_el, "mqtt-load/run1/x", b"hello".to_vec())
        .await
        .unwrap();
    let got = next_v3(&mut sub_el, |p| match p {
        Packet::Publish(p) => Some((p.topic.clone(), p.payload.to_vec())),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(got, ("mqtt-load/run1/x".to_string(), b"hello".to_vec()));

    // Wrong password and unknown token: refused.
    for (u, p) in [
        (user.as_str(), "wrong"),
        ("token:0000000000000000", pass.as_str()),
    ] {
        match mqtt_connect(&node, "bench-bad", u, p).await {
            Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)) => {}
            other => panic!("{u}: expected a refusal, got {:?}", other.map(|_| ())),
        }
    }

    // Revoke: both connections are closed, and a reconnect is refused.
    let (status, body) = api(&node, "DELETE", &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disconnected_clients"], 2, "{body}");
    for el in [&mut sub_el, &mut pub_el] {
        let closed = next_v3(el, |_| None::<()>).await;
        assert!(
            closed.is_err(),
            "the connection stays open after revocation"
        );
    }
    match mqtt_connect(&node, "bench-sub", &user, &pass).await {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)) => {}
        other => panic!(
            "expected a refusal after revocation, got {:?}",
            other.map(|_| ())
        ),
    }
    let (status, body) = api(&node, "GET", "/api/v1/tokens", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["tokens"], json!([]));
    let (status, body) = api(&node, "DELETE", &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 404, "{body}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_refusals_outside_the_acl_carry_reason_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (_, user, pass) = create_token(
        &node,
        "dashboard",
        json!([{"filter": "site/+/temp", "rights": "subscribe"},
               {"filter": "cmd/#", "rights": "publish"}]),
    )
    .await;
    let (c, mut el) = mqtt5_connect(&node, "dash-1", Some((&user, &pass)))
        .await
        .expect("CONNACK");

    // Subscribe: inside (also as a shared subscription) granted; outside refused with 0x87.
    c.subscribe("site/+/temp", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    c.subscribe(
        "$share/g1/site/a/temp",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    )
    .await
    .unwrap();
    c.subscribe("site/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    c.subscribe("cmd/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut codes = Vec::new();
    while codes.len() < 4 {
        codes.push(
            next_v5(&mut el, |p| match p {
                Packet5::SubAck(a) => Some(a.return_codes[0]),
                _ => None,
            })
            .await
            .unwrap(),
        );
    }
    use rumqttc::v5::mqttbytes::QoS as Q5;
    assert_eq!(
        codes,
        vec![
            SubCode5::Success(Q5::AtLeastOnce),
            SubCode5::Success(Q5::AtLeastOnce),
            SubCode5::NotAuthorized,
            SubCode5::NotAuthorized,
        ]
    );

    // Publish: inside the publish rule acknowledged; to a subscribe-only topic or elsewhere
    // refused with PUBACK 0x87.
    for (topic, want) in [
        ("cmd/pump-1/start", PubAckReason::Success),
        ("site/a/temp", PubAckReason::NotAuthorized),
        ("devices/x/telemetry", PubAckReason::NotAuthorized),
    ] {
        c.publish(topic, Q5::AtLeastOnce, false, b"1".to_vec())
            .await
            .unwrap();
        let reason = next_v5(&mut el, |p| match p {
            Packet5::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await
        .unwrap();
        assert_eq!(reason, want, "{topic}");
    }

    // A wrong password: CONNACK 0x86.
    let mut o = Options5::new("dash-2", "127.0.0.1", node.mqtt_addr.port());
    o.set_credentials(user.as_str(), "wrong");
    let (_c2, mut el2) = Client5::new(o, 10);
    match tokio::time::timeout(Duration::from_secs(5), el2.poll())
        .await
        .unwrap()
    {
        Err(ConnError5::ConnectionRefused(ConnectReturnCode5::BadUserNamePassword)) => {}
        other => panic!("expected CONNACK 0x86, got {other:?}"),
    }
    node.shutdown().await;
}

/// Deny entries win: a token allowed `#` except `secret/#` publishes and subscribes under
/// `a/`, but not under `secret/` (PUBACK/SUBACK 0x87), nor subscribes to a filter that could
/// receive `secret/...` (`#`, `+/x`). `#` does not reach `$`-topics for publish or subscribe: a
/// token names `$SYS/#` to use them. The deny entry is listed and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_entries_win_and_dollar_topics_must_be_named() {
    use crate::support::wire::{Conn, Connect};
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let acl = json!([{"filter": "#", "rights": "both"},
                     {"filter": "secret/#", "rights": "both", "deny": true}]);
    let (_, user, pass) = create_token(&node, "all-but-secret", acl.clone()).await;
    let (_, user2, pass2) =
        create_token(&node, "all", json!([{"filter": "#", "rights": "both"}])).await;
    let (_, user3, pass3) = create_token(
        &node,
        "all-and-sys",
        json!([{"filter": "#", "rights": "both"}, {"filter": "$SYS/#", "rights": "both"}]),
    )
    .await;
    let (_, list) = api(&node, "GET", "/api/v1/tokens", None).await;
    let listed = list["tokens"].as_array().unwrap();
    assert!(listed.iter().any(|t| t["acl"] == acl), "{list}");
    node.shutdown().await;
    // The stored ACLs load again (also those stored before deny entries existed: no field).
    let node = start(dir.path()).await;
    let addr = node.mqtt_addr;

    let mut c = Conn::ok(addr, &Connect::new(5, "deny-1", &user, &pass)).await;
    assert_eq!(c.publish1("a/b", false, 1, b"1").await, 0);
    assert_eq!(c.publish1("secret/x", false, 2, b"1").await, 0x87);
    assert_eq!(c.publish1("secret", false, 3, b"1").await, 0x87);
    let (codes, _) = c
        .subscribe(
            4,
            &[
                ("a/#", 1),
                ("secret/x", 1),
                ("#", 1),
                ("+/x", 1),
                ("$share/g/secret/#", 1),
            ],
            &[],
        )
        .await;
    assert_eq!(codes, [1, 0x87, 0x87, 0x87, 0x87]);

    for (id, user, pass, want_pub, want_sub) in [
        ("dollar-all", &user2, &pass2, 0x87, 0x87),
        ("dollar-named", &user3, &pass3, 0, 1),
    ] {
        let mut c = Conn::ok(addr, &Connect::new(5, id, user, pass)).await;
        assert_eq!(c.publish1("$SYS/x", false, 1, b"1").await, want_pub, "{id}");
        let (codes, _) = c.subscribe(2, &[("$SYS/x", 1)], &[]).await;
        assert_eq!(codes, [want_sub], "{id}");
        assert_eq!(c.publish1("a/b", false, 3, b"1").await, 0, "{id}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_requests_are_refused_with_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let ok_acl = json!([{"filter": "a/#", "rights": "publish"}]);
    for (body, status) in [
        (
            json!({"name": "x", "acl": [{"filter": "a/#", "rights": "write"}]}),
            422,
        ),
        (
            json!({"name": "x", "acl": [{"filter": "a/#/b", "rights": "both"}]}),
            400,
        ),
        (
            json!({"name": "x", "acl": [{"filter": "a+", "rights": "both"}]}),
            400,
        ),
        (
            json!({"name": "x", "acl": [{"filter": "$share/g/a", "rights": "both"}]}),
            400,
        ),
        (json!({"name": "x", "acl": []}), 400),
        (json!({"name": "", "acl": ok_acl}), 400),
        // Neither MQTT rules nor a scope: nothing to do with it.
        (json!({"name": "x"}), 400),
        // Scopes only read; there is no admin scope.
        (json!({"name": "x", "scopes": ["admin"]}), 422),
        (json!({"name": "x", "acl": ok_acl, "admin": true}), 422),
    ] {
        let (s, b) = api(&node, "POST", "/api/v1/tokens", Some(body.clone())).await;
        assert_eq!(s, status, "{body} -> {b}");
        assert!(b["error"].is_string() && b["detail"].is_string(), "{b}");
    }
    create_token(&node, "one", ok_acl.clone()).await;
    let (s, b) = api(
        &node,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "one", "acl": ok_acl})),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"], "conflict");
    let (s, _) = http(
        "GET",
        format!("http://{}/api/v1/tokens", node.http_addr),
        None,
        None,
    )
    .await;
    assert_eq!(s, 401);
    let (s, b) = api(&node, "DELETE", "/api/v1/tokens/nope", None).await;
    assert_eq!(s, 404, "{b}");
    node.shutdown().await;
}

/// A token with the `metrics` scope (and no MQTT rules) reads `/metrics` with
/// `Authorization: Bearer token:<id>:<password>`, and is refused (403) everywhere else; once
/// revoked it reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_reads_metrics_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (st, t) = api(
        &node,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "prometheus", "scopes": ["metrics"]})),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["scopes"], json!(["metrics"]), "{t}");
    let bearer = Some(format!(
        "Bearer {}:{}",
        t["username"].as_str().unwrap(),
        t["password"].as_str().unwrap()
    ));
    let base = format!("http://{}", node.http_addr);
    let (st, _, text) = get_text(format!("{base}/metrics"), bearer.clone()).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("sentio_points_stored_total"), "{text}");

    // Nothing that changes state, and nothing else to read.
    let body = |v: serde_json::Value| Some(v.to_string().into_bytes());
    for (method, path, b) in [
        ("POST", "/api/v1/devices", body(json!({"id": "sneaky-1"}))),
        (
            "PUT",
            "/api/v1/retention",
            body(json!({"global": "1h", "force": true})),
        ),
        (
            "POST",
            "/api/v1/tokens",
            body(json!({"name": "more", "scopes": ["metrics"]})),
        ),
        (
            "DELETE",
            &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
            None,
        ),
        ("GET", "/api/v1/devices", None),
    ] {
        let (st, answer) = http(method, format!("{base}{path}"), bearer.clone(), b).await;
        assert_eq!(st, 403, "{method} {path}: {answer}");
    }
    let (_, devices) = api(&node, "GET", "/api/v1/devices", None).await;
    assert_eq!(devices["devices"], json!([]), "{devices}");
    let (_, tokens) = api(&node, "GET", "/api/v1/tokens", None).await;
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1, "{tokens}");

    // A wrong password is no token at all; a revoked token reads nothing.
    let wrong = Some(format!("Bearer {}:nope", t["username"].as_str().unwrap()));
    let (st, _, _) = get_text(format!("{base}/metrics"), wrong).await;
    assert_eq!(st, 401);
    let path = format!("/api/v1/tokens/{}", t["id"].as_str().unwrap());
    let (st, b) = api(&node, "DELETE", &path, None).await;
    assert_eq!(st, 200, "{b}");
    let (st, _, _) = get_text(format!("{base}/metrics"), bearer).await;
    assert_eq!(st, 401);
    node.shutdown().await;
}
