//! The routes the dashboard's admin pages added: `GET /api/v1/system` (where devices connect,
//! for the provisioning examples), the storage's parts, a password reset and disabling a user
//! by an admin (`PATCH /api/v1/users/<name>` with `password` or `disabled`, each ending the
//! user's sessions) and the audit log paged with `before`.

use crate::support::*;
use serde_json::{Value, json};

/// The ids of an audit answer's entries, in its order.
fn ids(log: &Value) -> Vec<i64> {
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_facts_a_password_reset_a_disabled_user_and_the_audit_log_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;

    // Any signed-in user reads where devices connect: this node's MQTT port.
    let vic = signed_in(&node, "vic", "viewer").await;
    let r = vic.call("GET", "/api/v1/system", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mqtt"]["port"], node.mqtt_addr.port(), "{}", r.body);
    assert_eq!(r.body["mqtt"]["telemetry_topic"], "devices/{id}/telemetry");
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(r.body["uptime_s"].as_i64().unwrap() >= 0, "{}", r.body);
    // The storage in its parts: the database and the broker's folder, within the whole.
    let r = vic.call("GET", "/api/v1/storage", None).await;
    let parts = &r.body["parts"];
    assert!(parts["database"].as_u64().unwrap() > 0, "{}", r.body);
    let sum: u64 = ["database", "log", "broker", "other"]
        .iter()
        .map(|k| parts[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, r.body["bytes"].as_u64().unwrap(), "{}", r.body);
    let (st, _, _) = get_text(format!("http://{}/api/v1/system", node.http_addr), None).await;
    assert_eq!(st, 401, "not without credentials");

    // A reset: the old password and every session end; the new one signs in. Neither a role
    // nor a password is a 400; a short password too; a viewer may not reset anyone.
    let base = format!("http://{}", node.http_addr);
    let path = "/api/v1/users/vic";
    let r = vic
        .call(
            "PATCH",
            path,
            Some(json!({"password": "vic's own new password"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let (st, body) = api(&node, "PATCH", path, Some(json!({}))).await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = api(&node, "PATCH", path, Some(json!({"password": "short"}))).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(vic.call("GET", "/api/v1/devices", None).await.status, 200);
    let (st, body) = api(
        &node,
        "PATCH",
        path,
        Some(json!({"password": "a brand new long password", "role": "operator"})),
    )
    .await;
    assert_eq!(
        (st, body["role"].as_str()),
        (200, Some("operator")),
        "{body}"
    );
    assert_eq!(vic.call("GET", "/api/v1/devices", None).await.status, 401);
    let old = login_at(&base, "vic", "a long enough password", None).await;
    assert_eq!(old.status, 401, "{}", old.body);
    let new = login_at(&base, "vic", "a brand new long password", None).await;
    assert_eq!(new.status, 200, "{}", new.body);
    assert_eq!(new.body["user"]["role"], "operator");

    // Disabled: her session ends and she cannot sign in; enabled again, she can.
    let cookie = new.set_cookies[0].split_once("; ").unwrap().0.to_string();
    let session = || {
        http_with(
            "GET",
            format!("{base}/api/v1/session"),
            vec![("Cookie".into(), cookie.clone())],
            None,
            None,
        )
    };
    assert_eq!(session().await.status, 200);
    let (st, body) = api(&node, "PATCH", path, Some(json!({"disabled": true}))).await;
    assert_eq!(
        (st, body["disabled"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(session().await.status, 401);
    let refused = login_at(&base, "vic", "a brand new long password", None).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let (st, body) = api(&node, "PATCH", path, Some(json!({"disabled": false}))).await;
    assert_eq!(
        (st, body["disabled"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let back = login_at(&base, "vic", "a brand new long password", None).await;
    assert_eq!(back.status, 200, "{}", back.body);

    // The audit log in pages of two, newest first: each page starts below the last id seen,
    // and together they are the whole log once, never with a password.
    for id in ["p-1", "p-2", "p-3"] {
        register(&node, id, "pump").await;
    }
    let (_, all) = api(&node, "GET", "/api/v1/audit", None).await;
    let all = ids(&all);
    assert!(all.len() >= 6, "{all:?}");
    let mut paged = Vec::new();
    let mut before = String::new();
    loop {
        let (st, page) = api(
            &node,
            "GET",
            &format!("/api/v1/audit?limit=2{before}"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{page}");
        let page = ids(&page);
        let Some(last) = page.last() else { break };
        before = format!("&before={last}");
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let (_, log) = api(&node, "GET", "/api/v1/audit?action=user.password", None).await;
    assert_eq!(log["entries"][0]["subject"], "vic", "{log}");
    let (_, log) = api(&node, "GET", "/api/v1/audit?action=user.disable", None).await;
    assert_eq!(log["entries"][0]["subject"], "vic", "{log}");
    assert!(!log.to_string().contains("brand new"), "{log}");
    node.shutdown().await;
}
