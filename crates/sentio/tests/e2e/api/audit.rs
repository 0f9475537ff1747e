//! The audit log: admin actions are recorded in `GET /api/v1/audit`; a
//! GDPR erasure is recorded without the device's data, and the device's earlier entries keep
//! only a keyed digest of its id, so `?device=<id>` still proves the erasure.

use crate::support::*;
use serde_json::{Value, json};

const DEVICE: &str = "audited-pump-41";

fn actions(body: &Value) -> Vec<String> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_and_erasures_are_audited_without_the_erased_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, DEVICE, "pump").await;
    let now = sentio_core::time::now_ms();
    let (st, b) = http(
        "POST",
        format!(
            "http://{}/api/v1/devices/{DEVICE}/telemetry",
            node.http_addr
        ),
        basic(DEVICE, &secret),
        Some(
            json!([{"ts": now - 1000, "rpm": 1450.0}, {"ts": now, "rpm": 1460.0}])
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, token) = api(
        &node,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "grafana", "acl": [{"filter": "devices/#", "rights": "subscribe"}]})),
    )
    .await;
    assert_eq!(st, 201, "{token}");
    let token_id = token["id"].as_str().unwrap();
    let (st, _) = api(&node, "DELETE", &format!("/api/v1/tokens/{token_id}"), None).await;
    assert_eq!(st, 200);

    let (st, log) = api(&node, "GET", "/api/v1/audit", None).await;
    assert_eq!(st, 200, "{log}");
    assert_eq!(
        actions(&log),
        ["token.revoke", "token.create", "device.create"],
        "{log}"
    );
    assert_eq!(log["entries"][2]["subject"], DEVICE, "{log}");
    assert_eq!(log["entries"][0]["subject"], token_id, "{log}");
    assert!(
        !log.to_string()
            .contains(token["password"].as_str().unwrap()),
        "the audit log must not hold a token's password: {log}"
    );

    // Erase: the erasure is recorded with what was removed, not with the data or the id.
    let (st, erased) = api(
        &node,
        "DELETE",
        &format!("/api/v1/devices/{DEVICE}?erase=true"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{erased}");
    let (st, mine) = api(
        &node,
        "GET",
        &format!("/api/v1/audit?device={DEVICE}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{mine}");
    assert_eq!(actions(&mine), ["device.erase", "device.create"], "{mine}");
    let erase = &mine["entries"][0];
    assert_eq!(
        erase["removed"],
        Value::Null,
        "counts live under detail: {erase}"
    );
    assert_eq!(erase["detail"]["removed"]["points"], 2, "{erase}");
    assert_eq!(erase["subject"], Value::Null, "{erase}");
    let digest = erase["subject_digest"]
        .as_str()
        .expect("a digest of the id");
    assert_eq!(mine["entries"][1]["subject_digest"], digest, "{mine}");
    assert_eq!(mine["entries"][1]["subject"], Value::Null, "{mine}");
    let (_, all) = api(&node, "GET", "/api/v1/audit?limit=1000", None).await;
    assert!(
        !all.to_string().contains(DEVICE),
        "the erased id stays in the log: {all}"
    );
    let (_, other) = api(&node, "GET", "/api/v1/audit?device=another-device", None).await;
    assert_eq!(actions(&other), Vec::<String>::new(), "{other}");
    let (_, only) = api(&node, "GET", "/api/v1/audit?action=device.erase", None).await;
    assert_eq!(actions(&only), ["device.erase"], "{only}");

    // Bad requests get a clear error.
    for bad in [
        "/api/v1/audit?limit=0",
        "/api/v1/audit?limit=x",
        "/api/v1/audit?who=me",
    ] {
        let (st, b) = api(&node, "GET", bad, None).await;
        assert_eq!(st, 400, "{bad}: {b}");
        assert!(b["detail"].is_string(), "{b}");
    }
    // Without the admin token: refused.
    let (st, _) = http(
        "GET",
        format!("http://{}/api/v1/audit", node.http_addr),
        None,
        None,
    )
    .await;
    assert_eq!(st, 401);

    // The log survives a restart.
    node.shutdown().await;
    let node = start(dir.path()).await;
    let (_, again) = api(
        &node,
        "GET",
        &format!("/api/v1/audit?device={DEVICE}"),
        None,
    )
    .await;
    assert_eq!(
        actions(&again),
        ["device.erase", "device.create"],
        "{again}"
    );
    node.shutdown().await;
}
