//! `/api/v1/rules`: create, list, get, replace, enable and disable, delete, operators and admins (a scoped caller refused); a rule
//! with bad syntax or an unknown name is refused with 422, the field, line and column.

use serde_json::json;

use crate::support::*;

fn co2_rule() -> serde_json::Value {
    json!({
        "id": "co2-high",
        "name": "CO2 high",
        "selector": {"kind": "room", "metrics": ["co2"]},
        "condition": "avg(\"co2\", \"10m\") > 1000",
        "clear": "co2 < 800",
        "for": "10m",
        "severity": "critical"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_created_listed_changed_deleted_and_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;

    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(co2_rule())).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["for_ms"], 600_000);
    assert_eq!(body["enabled"], true);
    assert_eq!(body["actions"], json!(["alert"]));
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(co2_rule())).await;
    assert_eq!(st, 409, "{body}");

    // Bad syntax and unknown names: 422 with the field and position.
    for (condition, clear, field, line, column, detail) in [
        ("co2 >", None, "condition", 1, 6, "Syntax error"),
        (
            "co2 > 1000 &&\n  humidty > 3",
            None,
            "condition",
            2,
            3,
            "unknown name humidty",
        ),
        (
            "co2 > 1",
            Some("co2 < 1 || rate(co2) > 2"),
            "clear",
            1,
            16,
            "unknown function rate",
        ),
        (
            "avg(\"temp\", \"5m\") > 1",
            None,
            "condition",
            1,
            5,
            "unknown metric \"temp\"",
        ),
    ] {
        let mut rule = co2_rule();
        rule["id"] = json!("bad");
        rule["condition"] = json!(condition);
        rule["clear"] = json!(clear);
        let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
        assert_eq!(st, 422, "{condition}: {body}");
        assert_eq!(body["error"], "invalid_rule", "{body}");
        assert_eq!(body["field"], field, "{body}");
        assert_eq!(
            (body["line"].clone(), body["column"].clone()),
            (json!(line), json!(column)),
            "{condition}: {body}"
        );
        assert!(body["detail"].as_str().unwrap().contains(detail), "{body}");
    }
    let mut rule = co2_rule();
    rule["id"] = json!("bad");
    rule["actions"] = json!(["webhook"]);
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(
        (st, body["field"].clone()),
        (422, json!("actions")),
        "{body}"
    );
    let (st, _) = api(&node, "GET", "/api/v1/rules/bad", None).await;
    assert_eq!(st, 404, "nothing refused was stored");

    // Admin only.
    let (st, _) = http(
        "GET",
        format!("http://{}/api/v1/rules", node.http_addr),
        None,
        None,
    )
    .await;
    assert_eq!(st, 401);

    let mut changed = co2_rule();
    changed["condition"] = json!("co2 > 1200");
    let (st, body) = api(&node, "PUT", "/api/v1/rules/co2-high", Some(changed)).await;
    assert_eq!(
        (st, body["condition"].clone()),
        (200, json!("co2 > 1200")),
        "{body}"
    );
    let mut broken = co2_rule();
    broken["condition"] = json!("co2 >> 1");
    let (st, body) = api(&node, "PUT", "/api/v1/rules/co2-high", Some(broken)).await;
    assert_eq!(st, 422, "{body}");
    let (st, body) = api(&node, "PUT", "/api/v1/rules/nope", Some(co2_rule())).await;
    assert_eq!(st, 404, "{body}");

    let (st, body) = api(&node, "POST", "/api/v1/rules/co2-high/disable", None).await;
    assert_eq!((st, body["enabled"].clone()), (200, json!(false)), "{body}");
    node.shutdown().await;

    // Rules are stored: a restart keeps them as they were.
    let node = start(dir.path()).await;
    let (st, body) = api(&node, "GET", "/api/v1/rules", None).await;
    assert_eq!(st, 200, "{body}");
    let rules = body["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{body}");
    assert_eq!(rules[0]["condition"], "co2 > 1200");
    assert_eq!(rules[0]["enabled"], false);
    let (st, body) = api(&node, "POST", "/api/v1/rules/co2-high/enable", None).await;
    assert_eq!((st, body["enabled"].clone()), (200, json!(true)), "{body}");
    let (st, body) = api(&node, "GET", "/api/v1/rules/co2-high", None).await;
    assert_eq!((st, body["enabled"].clone()), (200, json!(true)), "{body}");

    let (st, _) = api(&node, "DELETE", "/api/v1/rules/co2-high", None).await;
    assert_eq!(st, 200);
    let (st, _) = api(&node, "GET", "/api/v1/rules/co2-high", None).await;
    assert_eq!(st, 404);
    let (st, body) = api(&node, "GET", "/api/v1/rules", None).await;
    assert_eq!((st, body["rules"].clone()), (200, json!([])));
    node.shutdown().await;
}
