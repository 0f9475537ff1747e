//! Users confined to devices by a label selector, and personal API tokens, through the front
//! door: two devices of different sites, a viewer and an operator scoped to one site. Lists,
//! reads, alerts, the query, the export and the live stream show only the scope's device; a
//! device or an alert of the other site answers 404 (as an unknown one), also for acting on it;
//! a personal token is never stronger than its user, reads with the user's scope, and stops
//! when revoked, when the user is disabled or deleted; every change is audited.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;
use sentio::node::Node;

const PASSWORD: &str = "a long enough password";

/// Registers `id` (kind `pump`) at `site`; returns its secret.
async fn register_at(node: &Node, id: &str, site: &str) -> String {
    let body = json!({"id": id, "kind": "pump", "labels": {"site": site}});
    let (st, body) = api(node, "POST", "/api/v1/devices", Some(body)).await;
    assert_eq!(st, 201, "{body}");
    body["secret"].as_str().unwrap().to_string()
}

/// Creates a user confined to `site=plant-a` and signs it in.
async fn scoped(node: &Node, name: &str, role: &str) -> Browser {
    let body =
        json!({"name": name, "role": role, "password": PASSWORD, "scope": {"site": "plant-a"}});
    let (st, body) = api(node, "POST", "/api/v1/users", Some(body)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["scope"], json!({"site": "plant-a"}));
    sign_in(node, name, PASSWORD).await
}

/// A call with a bearer token.
async fn with_token(node: &Node, bearer: &str, method: &str, path: &str) -> (u16, Value) {
    let url = format!("http://{}{path}", node.http_addr);
    http(method, url, Some(format!("Bearer {bearer}")), None).await
}

fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|d| d[field].as_str().unwrap().to_string())
        .collect()
}

/// The open rule alert of `device`.
async fn open_alert(node: &Node, device: &str) -> i64 {
    eventually(10, || async {
        alerts_of(node, device)
            .await
            .into_iter()
            .find(|a| a["state"] == "open")
            .and_then(|a| a["id"].as_i64())
    })
    .await
    .unwrap_or_else(|| panic!("an alert of {device}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_user_sees_and_acts_only_on_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let a_secret = register_at(&node, "pump-a", "plant-a").await;
    let b_secret = register_at(&node, "pump-b", "plant-b").await;
    let rule = json!({
        "id": "level-high", "name": "level high",
        "selector": {"kind": "pump", "metrics": ["level"]},
        "condition": "level > 100", "clear_for": "0s", "cool_down": "0s",
    });
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    let t0 = (sentio_core::time::now_ms() - 60_000) / 1_000 * 1_000;
    for (id, secret) in [("pump-a", &a_secret), ("pump-b", &b_secret)] {
        let (st, body) =
            post_telemetry(&node, id, secret, &[json!({"ts": t0, "level": 500.0})]).await;
        assert_eq!(st, 200, "{body}");
    }
    let (alert_a, alert_b) = (
        open_alert(&node, "pump-a").await,
        open_alert(&node, "pump-b").await,
    );

    let vic = scoped(&node, "vic", "viewer").await;
    let r = vic.call("GET", "/api/v1/devices", None).await;
    assert_eq!(ids(&r.body, "devices", "id"), ["pump-a"], "{}", r.body);
    for path in [
        "/api/v1/devices/pump-b",
        "/api/v1/devices/pump-b/series",
        "/api/v1/devices/pump-b/series/level",
        "/api/v1/devices/pump-b/series/level/band",
        "/api/v1/devices/pump-b/events",
        "/api/v1/devices/pump-b/export",
        "/api/v1/devices/pump-b/twin",
        "/api/v1/devices/pump-b/commands",
        &format!("/api/v1/alerts/{alert_b}"),
        &format!("/api/v1/alerts/{alert_b}/comments"),
    ] {
        let r = vic.call("GET", path, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(!r.body.to_string().contains("plant-b"), "{}", r.body);
    }
    for path in [
        "/api/v1/devices/pump-a",
        "/api/v1/devices/pump-a/series/level",
        "/api/v1/devices/pump-a/export",
        &format!("/api/v1/alerts/{alert_a}"),
    ] {
        let r = vic.call("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = vic.call("GET", "/api/v1/alerts?state=all", None).await;
    let listed: Vec<i64> = r.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [alert_a], "{}", r.body);
    let r = vic.call("GET", "/api/v1/alerts?device=pump-b", None).await;
    assert_eq!(
        (r.status, r.body["alerts"].as_array().unwrap().len()),
        (200, 0)
    );
    // The query: a label selector is narrowed to the scope, an id outside it is unknown.
    let q = |devices: Value| json!({"devices": devices, "metrics": ["level"], "from": t0 - 1, "to": t0 + 1});
    let r = vic
        .call(
            "POST",
            "/api/v1/query",
            Some(q(json!({"labels": {"site": "plant-b"}}))),
        )
        .await;
    assert_eq!(
        (r.status, r.body["series"].as_array().unwrap().len()),
        (200, 0),
        "{}",
        r.body
    );
    let r = vic
        .call(
            "POST",
            "/api/v1/query",
            Some(q(json!({"labels": {"kind-of": "any"}}))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = vic
        .call(
            "POST",
            "/api/v1/query",
            Some(q(json!({"ids": ["pump-a", "pump-b"]}))),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = vic
        .call(
            "POST",
            "/api/v1/query",
            Some(q(json!({"labels": {"site": "plant-a"}}))),
        )
        .await;
    assert_eq!(ids(&r.body, "series", "device"), ["pump-a"], "{}", r.body);
    // Fleet-wide pages stay closed.
    let r = vic.call("GET", "/api/v1/alert-groups", None).await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A scoped operator acts on its site's device and alert only; the others are unknown.
    let oscar = scoped(&node, "oscar", "operator").await;
    for (path, body) in [
        (format!("/api/v1/alerts/{alert_b}/ack"), None),
        (format!("/api/v1/alerts/{alert_b}/resolve"), None),
        (
            format!("/api/v1/alerts/{alert_b}/comments"),
            Some(json!({"text": "mine now"})),
        ),
        (
            format!("/api/v1/alerts/{alert_b}/feedback"),
            Some(json!({"false_alarm": true})),
        ),
        (
            "/api/v1/devices/pump-b/commands".into(),
            Some(json!({"name": "stop"})),
        ),
        (
            "/api/v1/silences".into(),
            Some(json!({"selector": {"devices": ["pump-b"]}, "for": "1h", "reason": "r"})),
        ),
    ] {
        let r = oscar.call("POST", &path, body).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let r = oscar
        .call(
            "PATCH",
            "/api/v1/devices/pump-b/twin",
            Some(json!({"speed": 1})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let (_, b) = api(&node, "GET", &format!("/api/v1/alerts/{alert_b}"), None).await;
    assert!(b["acknowledged"].is_null(), "{b}");
    let r = oscar
        .call("POST", &format!("/api/v1/alerts/{alert_a}/ack"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = oscar
        .call(
            "POST",
            "/api/v1/devices/pump-a/commands",
            Some(json!({"name": "stop"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A silence by label is confined to the scope; the admin's fleet-wide one is not shown.
    let r = oscar
        .call(
            "POST",
            "/api/v1/silences",
            Some(json!({"selector": {}, "for": "1h", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (st, fleet) = api(
        &node,
        "POST",
        "/api/v1/silences",
        Some(json!({"selector": {}, "for": "1h", "reason": "fleet"})),
    )
    .await;
    assert_eq!(st, 201, "{fleet}");
    let r = oscar.call("GET", "/api/v1/silences", None).await;
    let shown = r.body["silences"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{}", r.body);
    assert_eq!(
        shown[0]["selector"]["labels"],
        json!({"site": "plant-a"}),
        "{}",
        r.body
    );
    let r = oscar
        .call("DELETE", &format!("/api/v1/silences/{}", fleet["id"]), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = oscar
        .call("POST", "/api/v1/rules/level-high/test", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // An admin is never scoped.
    let body =
        json!({"name": "ann", "role": "admin", "password": PASSWORD, "scope": {"site": "plant-a"}});
    let (st, body) = api(&node, "POST", "/api/v1/users", Some(body)).await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = api(
        &node,
        "PATCH",
        "/api/v1/users/vic",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_of_a_scoped_user_carries_only_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let a_secret = register_at(&node, "pump-a", "plant-a").await;
    let b_secret = register_at(&node, "pump-b", "plant-b").await;
    let vic = scoped(&node, "vic", "viewer").await;
    let mut req = format!("ws://{}/api/v1/stream", node.http_addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Cookie", vic.cookie.parse().unwrap());
    req.headers_mut()
        .insert("Origin", vic.base.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    // pump-b's point is on the bus before pump-a's: were it sent, it would come first.
    for (id, secret, level) in [("pump-b", &b_secret, 2.0), ("pump-a", &a_secret, 1.0)] {
        let (st, body) = post_telemetry(&node, id, secret, &[json!({"level": level})]).await;
        assert_eq!(st, 200, "{body}");
    }
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        let mut devices = Vec::new();
        loop {
            let msg = ws.next().await.unwrap().unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if let Some(d) = v["device"].as_str() {
                devices.push(d.to_string());
                if v["type"] == "telemetry" && d == "pump-a" {
                    return devices;
                }
            }
        }
    })
    .await
    .expect("pump-a's telemetry on the stream");
    assert!(seen.iter().all(|d| d == "pump-a"), "{seen:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_token_is_no_stronger_than_its_user_and_stops_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register_at(&node, "pump-a", "plant-a").await;
    register_at(&node, "pump-b", "plant-b").await;
    let vic = scoped(&node, "vic", "viewer").await;

    let r = vic
        .call(
            "POST",
            "/api/v1/me/tokens",
            Some(json!({"name": "ops", "role": "operator"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = vic
        .call(
            "POST",
            "/api/v1/me/tokens",
            Some(json!({"name": "grafana", "expires_in": "30d"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["token"]["role"], "viewer");
    let bearer = r.body["bearer"].as_str().unwrap().to_string();
    let id = r.body["token"]["id"].as_str().unwrap().to_string();
    let secret = bearer.rsplit(':').next().unwrap().to_string();
    let r = vic.call("GET", "/api/v1/me/tokens", None).await;
    assert_eq!(ids(&r.body, "tokens", "id"), [id.as_str()]);
    assert!(
        !r.body.to_string().contains(&secret),
        "shown once: {}",
        r.body
    );
    let (st, body) = api(&node, "GET", "/api/v1/audit", None).await;
    assert_eq!(st, 200);
    assert!(
        !body.to_string().contains(&secret),
        "never audited with its secret"
    );

    // It reads with vic's scope and role.
    let (st, list) = with_token(&node, &bearer, "GET", "/api/v1/devices").await;
    assert_eq!(
        (st, ids(&list, "devices", "id")),
        (200, vec!["pump-a".to_string()])
    );
    let (st, _) = with_token(&node, &bearer, "GET", "/api/v1/devices/pump-b").await;
    assert_eq!(st, 404);
    let (st, _) = with_token(&node, &bearer, "POST", "/api/v1/devices/pump-a/commands").await;
    assert_eq!(st, 403, "a viewer's token changes nothing");
    let (st, _) = with_token(&node, &bearer, "POST", "/api/v1/me/tokens").await;
    assert_eq!(st, 403, "a token cannot mint tokens");
    let wrong = format!("pat:{id}:{}", "0".repeat(64));
    let (st, _) = with_token(&node, &wrong, "GET", "/api/v1/devices").await;
    assert_eq!(st, 401);
    // A new scope applies to the token at once.
    let (st, body) = api(
        &node,
        "PATCH",
        "/api/v1/users/vic",
        Some(json!({"scope": {"site": "plant-b"}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (_, list) = with_token(&node, &bearer, "GET", "/api/v1/devices").await;
    assert_eq!(ids(&list, "devices", "id"), ["pump-b"]);

    // Disabled, the user's tokens stop; enabled, they work again; revoked, for good.
    let (st, _) = api(
        &node,
        "PATCH",
        "/api/v1/users/vic",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        with_token(&node, &bearer, "GET", "/api/v1/devices").await.0,
        401
    );
    let (st, _) = api(
        &node,
        "PATCH",
        "/api/v1/users/vic",
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        with_token(&node, &bearer, "GET", "/api/v1/devices").await.0,
        200
    );
    let vic = sign_in(&node, "vic", PASSWORD).await;
    let r = vic
        .call("DELETE", &format!("/api/v1/me/tokens/{id}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        with_token(&node, &bearer, "GET", "/api/v1/devices").await.0,
        401
    );

    // Another's token is unknown to a user; a deleted user's tokens stop.
    let oscar = scoped(&node, "oscar", "operator").await;
    let r = oscar
        .call(
            "POST",
            "/api/v1/me/tokens",
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (oscar_bearer, oscar_id) = (
        r.body["bearer"].as_str().unwrap().to_string(),
        r.body["token"]["id"].as_str().unwrap().to_string(),
    );
    let (st, _) = with_token(&node, &oscar_bearer, "POST", "/api/v1/alerts/1/ack").await;
    assert_eq!(st, 403, "the token's viewer role, not oscar's operator");
    let r = vic
        .call("DELETE", &format!("/api/v1/me/tokens/{oscar_id}"), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let (st, _) = api(&node, "DELETE", "/api/v1/users/oscar", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        with_token(&node, &oscar_bearer, "GET", "/api/v1/devices")
            .await
            .0,
        401
    );

    let (_, audit) = api(&node, "GET", "/api/v1/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user_token.create",
        "user_token.revoke",
        "user.scope",
        "user.create",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    node.shutdown().await;
}
