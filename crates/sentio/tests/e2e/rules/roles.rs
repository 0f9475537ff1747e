//! Who manages rules: an operator creates, lists, reads, replaces, disables, enables, replays
//! and deletes one (each change in the audit log); a viewer is refused every
//! rule route with 403; so is an operator scoped to a site (rules are fleet-wide).

use serde_json::json;

use crate::support::*;

const PASSWORD: &str = "a long enough password";

fn rule(name: &str) -> serde_json::Value {
    json!({"id": "hot", "name": name, "selector": {"kind": "pump", "metrics": ["temp"]}, "condition": "temp > 90"})
}

/// Every rule route, as (method, path, body).
fn routes() -> Vec<(&'static str, &'static str, Option<serde_json::Value>)> {
    vec![
        ("POST", "/api/v1/rules", Some(rule("Hot pump"))),
        ("GET", "/api/v1/rules", None),
        ("GET", "/api/v1/rules/hot", None),
        ("PUT", "/api/v1/rules/hot", Some(rule("Hot pump, edited"))),
        ("POST", "/api/v1/rules/hot/disable", None),
        ("POST", "/api/v1/rules/hot/enable", None),
        ("POST", "/api/v1/rules/hot/test", None),
        ("GET", "/api/v1/rules/hot/traces", None),
        ("DELETE", "/api/v1/rules/hot", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_rules_and_a_viewer_or_scoped_operator_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register(&node, "pump-1", "pump").await;
    let vic = signed_in(&node, "vic", "viewer").await;
    let body = json!({"name": "oscar", "role": "operator", "password": PASSWORD, "scope": {"site": "plant-a"}});
    let (st, body) = api(&node, "POST", "/api/v1/users", Some(body)).await;
    assert_eq!(st, 201, "{body}");
    let oscar = sign_in(&node, "oscar", PASSWORD).await;
    let olga = signed_in(&node, "olga", "operator").await;

    // Before the rule exists and while it does, the viewer and the scoped operator get 403.
    for refused in [&vic, &oscar] {
        for (method, path, body) in routes() {
            let r = refused.call(method, path, body).await;
            assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        }
    }
    for (method, path, body) in routes() {
        let r = olga.call(method, path, body).await;
        let want = if (method, path) == ("POST", "/api/v1/rules") {
            201
        } else {
            200
        };
        assert_eq!(r.status, want, "olga: {method} {path}: {}", r.body);
        if path == "/api/v1/rules/hot" && method == "PUT" {
            assert_eq!(r.body["name"], "Hot pump, edited", "{}", r.body);
        }
        if method == "GET" && path == "/api/v1/rules/hot" {
            assert_eq!(r.body["status"], "ok", "{}", r.body);
            // Now it exists: still refused to the viewer and the scoped operator.
            for refused in [&vic, &oscar] {
                for (m, p, b) in routes() {
                    let r = refused.call(m, p, b).await;
                    assert_eq!(r.status, 403, "{m} {p}: {}", r.body);
                }
            }
        }
    }
    let (st, body) = api(&node, "GET", "/api/v1/rules/hot", None).await;
    assert_eq!(st, 404, "deleted by olga: {body}");
    let (st, audit) = api(&node, "GET", "/api/v1/audit?limit=50", None).await;
    assert_eq!(st, 200, "{audit}");
    for action in [
        "rule.create",
        "rule.update",
        "rule.disable",
        "rule.enable",
        "rule.delete",
    ] {
        assert!(
            audit["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action && e["actor"] == "user:olga"),
            "{action} by olga: {audit}"
        );
    }
    node.shutdown().await;
}
