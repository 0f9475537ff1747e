//! One alert's life as people handle it: a rule's alert opens (deduplicated while its
//! condition holds), a viewer may read but not act (403), an operator acknowledges it
//! (announced on the live stream), comments on it and resolves it; each step is in the audit
//! log, and a resolved alert cannot be acknowledged or resolved again (409).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::*;

/// Reads the stream until an alert event for alert `id` in `state`.
async fn stream_alert<S>(ws: &mut S, id: &Value, state: &str) -> Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let msg = ws.next().await.unwrap().unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if v["type"] == "alert" && v["alert"]["id"] == *id && v["alert"]["state"] == state {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a live {state} event for alert {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_acknowledge_comment_and_resolve_viewers_only_read() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-1", "room").await;
    let rule = json!({"id": "co2-high", "name": "CO2 high", "severity": "critical",
                      "selector": {"kind": "room", "metrics": ["co2"]}, "condition": "co2 > 1000"});
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    let t0 = now_ms();
    let items: Vec<Value> = (0..3)
        .map(|i| json!({"ts": t0 + i, "co2": 1_200}))
        .collect();
    assert_eq!(
        post_telemetry(&node, "room-1", &secret, &items).await.0,
        200
    );
    let alert = wait_for_kind(&node, "room-1", "rule", 10).await;
    assert_eq!(
        alerts_of(&node, "room-1").await.len(),
        1,
        "one alert per condition"
    );
    assert_eq!(alert["state"], "open");
    assert_eq!(alert["severity"], "critical");
    let id = alert["id"].clone();
    let path = |action: &str| format!("/api/v1/alerts/{id}/{action}");

    let vic = signed_in(&node, "vic", "viewer").await;
    let olga = signed_in(&node, "olga", "operator").await;
    for action in ["ack", "resolve"] {
        assert_eq!(
            vic.call("POST", &path(action), None).await.status,
            403,
            "{action}"
        );
    }
    let r = vic
        .call("POST", &path("comments"), Some(json!({"text": "hm"})))
        .await;
    assert_eq!(r.status, 403);

    let url = format!("ws://{}/api/v1/stream?token={TOKEN}", node.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let r = olga.call("POST", &path("ack"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["state"], "acknowledged");
    assert_eq!(r.body["acknowledged"]["by"], "user:olga");
    let live = stream_alert(&mut ws, &id, "acknowledged").await;
    assert_eq!(live["alert"]["acknowledged"]["by"], "user:olga");
    // A second acknowledgement keeps the first.
    let r = api(&node, "POST", &path("ack"), None).await;
    assert_eq!(
        (r.0, &r.1["acknowledged"]["by"]),
        (200, &json!("user:olga"))
    );
    let (_, acked) = api(&node, "GET", "/api/v1/alerts?state=acknowledged", None).await;
    assert_eq!(acked["alerts"].as_array().unwrap().len(), 1, "{acked}");

    let r = olga
        .call(
            "POST",
            &path("comments"),
            Some(json!({"text": "fan checked"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = olga
        .call("POST", &path("comments"), Some(json!({"text": " "})))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = vic.call("GET", &path("comments"), None).await;
    assert_eq!(r.body["comments"][0]["author"], "user:olga");
    assert_eq!(r.body["comments"][0]["text"], "fan checked");

    // Still alerting: the open alert absorbs the points, no second alert.
    let more: Vec<Value> = (3..6)
        .map(|i| json!({"ts": t0 + i, "co2": 1_300}))
        .collect();
    assert_eq!(post_telemetry(&node, "room-1", &secret, &more).await.0, 200);
    let r = olga.call("POST", &path("resolve"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["state"], "resolved");
    assert_eq!(r.body["resolved_by"], "user:olga");
    stream_alert(&mut ws, &id, "resolved").await;
    assert_eq!(olga.call("POST", &path("resolve"), None).await.status, 409);
    assert_eq!(olga.call("POST", &path("ack"), None).await.status, 409);
    let (_, one) = api(&node, "GET", &format!("/api/v1/alerts/{id}"), None).await;
    assert_eq!(one["state"], "resolved");
    assert_eq!(one["acknowledged"]["by"], "user:olga");
    assert_eq!(one["comments"].as_array().unwrap().len(), 1);
    assert_eq!(alerts_of(&node, "room-1").await.len(), 1);

    let (_, audit) = api(&node, "GET", "/api/v1/audit?limit=50", None).await;
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("alert."))
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("alert.resolve", "user:olga"),
            ("alert.comment", "user:olga"),
            ("alert.acknowledge", "admin"),
            ("alert.acknowledge", "user:olga"),
        ],
        "{audit}"
    );
    node.shutdown().await;
}
