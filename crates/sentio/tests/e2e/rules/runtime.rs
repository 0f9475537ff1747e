//! A rule at run time: a rule whose expression fails (a twin member missing) is `failing` with
//! the reason in `/api/v1/rules` and counted in `/metrics` while another rule on the same
//! points still fires; it is `ok` again once it evaluates; each rule's traces (opened,
//! resolved, failed), its failure count and its failing reason are answered newest first and
//! survive a restart.

use serde_json::{Value, json};

use crate::support::*;
use sentio::node::Node;

async fn rule(node: &Node, id: &str) -> Value {
    let (st, body) = api(node, "GET", &format!("/api/v1/rules/{id}"), None).await;
    assert_eq!(st, 200, "{body}");
    body
}

async fn traces(node: &Node, id: &str) -> Vec<Value> {
    let (st, body) = api(node, "GET", &format!("/api/v1/rules/{id}/traces"), None).await;
    assert_eq!(st, 200, "{body}");
    body["traces"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rule_is_shown_and_counted_while_another_fires_and_traces_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "room-1", "room").await;
    for (id, condition) in [
        ("co2-high", "co2 > 1000"),
        // No `fan` in the reported twin: an error whenever co2 > 1000 does not decide it.
        ("fan-check", "twin.reported.fan == \"low\" && co2 > 1000"),
    ] {
        let body = json!({
            "id": id,
            "name": id,
            "selector": {"kind": "room", "metrics": ["co2"]},
            "condition": condition,
            "clear_for": "0s",
            "cool_down": "0s",
        });
        let (st, body) = api(&node, "POST", "/api/v1/rules", Some(body)).await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["status"], "ok", "{body}");
    }

    let t0 = (sentio_core::time::now_ms() - 60_000) / 1_000 * 1_000;
    let (st, body) = post_telemetry(
        &node,
        "room-1",
        &secret,
        &[json!({"ts": t0, "co2": 1_200.0})],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let failing = eventually(10, || async {
        let r = rule(&node, "fan-check").await;
        (r["status"] == "failing").then_some(r)
    })
    .await
    .expect("fan-check is failing");
    assert!(
        failing["failing"]["reason"]
            .as_str()
            .unwrap()
            .contains("fan"),
        "{failing}"
    );
    assert_eq!(failing["failing"]["device"], "room-1", "{failing}");
    assert_eq!(failing["failures"], 1, "{failing}");
    // The other rule fired on the same point.
    let open = eventually(10, || async {
        alerts_of(&node, "room-1")
            .await
            .into_iter()
            .find(|a| a["metric"] == "rule/co2-high" && a["state"] == "open")
    })
    .await;
    assert!(open.is_some(), "co2-high still fires");
    let (st, list) = api(&node, "GET", "/api/v1/rules", None).await;
    assert_eq!(st, 200);
    let status: Vec<(&str, &str)> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status, [("co2-high", "ok"), ("fan-check", "failing")]);
    assert_eq!(
        metric_value(&node, "sentio_rule_failures_total{rule=\"fan-check\"}").await,
        1
    );
    assert_eq!(
        metric_value(&node, "sentio_rule_failures_total{rule=\"co2-high\"}").await,
        0
    );
    assert_eq!(metric_value(&node, "sentio_rules_failing").await, 1);

    // Below 1000 both evaluate: co2-high resolves, fan-check is ok again (its count stays).
    let (st, body) = post_telemetry(
        &node,
        "room-1",
        &secret,
        &[json!({"ts": t0 + 1_000, "co2": 900.0})],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let ok = eventually(10, || async {
        let r = rule(&node, "fan-check").await;
        (r["status"] == "ok").then_some(r)
    })
    .await
    .expect("fan-check is ok again");
    assert_eq!(ok["failures"], 1, "{ok}");
    assert!(ok.get("failing").is_none(), "{ok}");
    assert_eq!(metric_value(&node, "sentio_rules_failing").await, 0);

    let expected = eventually(10, || async {
        let t = traces(&node, "co2-high").await;
        (t.len() == 2).then_some(t)
    })
    .await
    .expect("two traces: opened, resolved");
    let decisions: Vec<(&str, i64)> = expected
        .iter()
        .map(|t| {
            (
                t["decision"].as_str().unwrap(),
                t["ts_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [("resolved", t0 + 1_000), ("opened", t0)],
        "newest first"
    );
    assert_eq!(expected[1]["inputs"]["co2"], 1_200.0);
    assert_eq!(expected[1]["device"], "room-1");
    assert_eq!(
        expected[1]["actions"],
        json!(["open a warning alert on room-1"])
    );
    let failed = traces(&node, "fan-check").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["decision"], "failed");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("fan"),
        "{failed:?}"
    );

    // Failing again, then a restart: the traces, the reason and the count survive it.
    let (st, body) = post_telemetry(
        &node,
        "room-1",
        &secret,
        &[json!({"ts": t0 + 2_000, "co2": 1_300.0})],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    eventually(10, || async {
        let r = rule(&node, "fan-check").await;
        (r["failures"] == 2 && r["status"] == "failing").then_some(())
    })
    .await
    .expect("fan-check fails a second time");
    let expected = traces(&node, "co2-high").await;
    let failed = traces(&node, "fan-check").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    node.shutdown().await;
    let node = start(dir.path()).await;
    assert_eq!(traces(&node, "co2-high").await, expected, "after a restart");
    assert_eq!(traces(&node, "fan-check").await, failed, "after a restart");
    let r = rule(&node, "fan-check").await;
    assert_eq!(r["status"], "failing", "after a restart: {r}");
    assert_eq!(r["failures"], 2, "after a restart: {r}");
    assert_eq!(r["failing"]["ts_ms"], t0 + 2_000, "{r}");
    assert!(
        r["failing"]["reason"].as_str().unwrap().contains("fan"),
        "{r}"
    );
    assert_eq!(
        metric_value(&node, "sentio_rule_failures_total{rule=\"fan-check\"}").await,
        2
    );
    assert_eq!(metric_value(&node, "sentio_rules_failing").await, 1);
    node.shutdown().await;
}
