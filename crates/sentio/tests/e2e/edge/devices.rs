//! An edge's device registry goes up: the cloud shows the edge's devices under it
//! (`"edge": <id>` in `/api/v1/devices`, `?edge=<id>`), also those created or relabelled while
//! the link was cut, and never takes over a device of its own. Real processes and the fault
//! proxy (see `uplink`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{EDGE, Pair};

async fn create(http: &str, id: &str, kind: &str, site: &str) {
    let (status, body) = api_at(
        http,
        "POST",
        "/api/v1/devices",
        Some(json!({"id": id, "kind": kind, "labels": {"site": site}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// The cloud's devices of the edge, by id.
async fn edge_devices(pair: &Pair) -> Vec<Value> {
    let (status, body) = api_at(
        &pair.cloud_http,
        "GET",
        &format!("/api/v1/devices?edge={EDGE}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["devices"].as_array().unwrap().clone()
}

fn find<'a>(devices: &'a [Value], id: &str) -> Option<&'a Value> {
    devices.iter().find(|d| d["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_registry_reaches_the_cloud_also_after_a_cut() {
    let _heavy = heavy().await;
    let pair = Pair::start("ack_timeout = \"3s\"\nkeep_alive = \"5s\"").await;
    // A device of the cloud's own, and one of the same id on the edge: the cloud keeps its own.
    create(&pair.cloud_http, "shared-1", "meter", "cloud").await;
    create(&pair.edge_http, "shared-1", "meter", "edge").await;
    create(&pair.edge_http, "pump-1", "pump", "north").await;
    let up = eventually(20, || async {
        let devices = edge_devices(&pair).await;
        find(&devices, "pump-1").cloned()
    })
    .await
    .expect("the edge's device did not reach the cloud");
    assert_eq!(up["edge"], EDGE, "{up}");
    assert_eq!(up["kind"], "pump", "{up}");
    assert_eq!(up["labels"]["site"], "north", "{up}");

    // While the link is cut: a new device, and a label changed.
    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(2)).await;
    create(&pair.edge_http, "late-1", "valve", "south").await;
    let (status, body) = api_at(
        &pair.edge_http,
        "PATCH",
        "/api/v1/devices/pump-1",
        Some(json!({"labels": {"site": "east"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(find(&edge_devices(&pair).await, "late-1").is_none());

    let restored = now_ms();
    pair.proxy.set(Fault::Pass);
    let devices = eventually(20, || async {
        let devices = edge_devices(&pair).await;
        (find(&devices, "late-1").is_some()
            && find(&devices, "pump-1").is_some_and(|d| d["labels"]["site"] == "east"))
        .then_some(devices)
    })
    .await
    .expect("what changed during the cut did not reach the cloud");
    println!(
        "registry: the cut's changes in the cloud {} ms after the link came back",
        now_ms() - restored
    );
    let late = find(&devices, "late-1").unwrap();
    assert_eq!(
        (late["edge"].clone(), late["kind"].clone()),
        (json!(EDGE), json!("valve"))
    );
    // The cloud's own device stays its own, and the filter keeps only the edge's.
    assert!(find(&devices, "shared-1").is_none(), "{devices:?}");
    let (_, own) = api_at(&pair.cloud_http, "GET", "/api/v1/devices/shared-1", None).await;
    assert_eq!(own["labels"]["site"], "cloud", "{own}");
    assert!(own.get("edge").is_none(), "{own}");
    let ids: Vec<&str> = devices.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (_, one) = api_at(&pair.cloud_http, "GET", "/api/v1/devices/late-1", None).await;
    assert_eq!(one["edge"], EDGE, "{one}");
    // The edge counts a message once its PUBACK is in (after the cloud applied it).
    let acked = eventually(20, || async {
        let u = pair.uplink().await;
        (u["records_acked"].as_u64().unwrap() >= 3).then_some(())
    })
    .await;
    assert!(acked.is_some(), "{}", pair.uplink().await);
}

/// The cloud's answer for its device `id`: status and body.
async fn cloud_device(pair: &Pair, id: &str) -> (u16, Value) {
    let (status, body) = api_at(
        &pair.cloud_http,
        "GET",
        &format!("/api/v1/devices/{id}"),
        None,
    )
    .await;
    (status, body)
}

async fn delete(http: &str, id: &str) {
    let (status, body) = api_at(http, "DELETE", &format!("/api/v1/devices/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_deleted_on_the_edge_is_deleted_in_the_cloud_also_across_a_cut_and_a_restart() {
    let _heavy = heavy().await;
    let toml = "ack_timeout = \"3s\"\nkeep_alive = \"5s\"";
    let mut pair = Pair::start(toml).await;
    for id in ["pump-1", "pump-2", "pump-3"] {
        create(&pair.edge_http, id, "pump", "north").await;
    }
    let all_up = eventually(20, || async {
        (edge_devices(&pair).await.len() == 3).then_some(())
    })
    .await;
    assert!(all_up.is_some(), "{:?}", edge_devices(&pair).await);

    // Deleted while linked.
    delete(&pair.edge_http, "pump-1").await;
    let gone = eventually(20, || async {
        (cloud_device(&pair, "pump-1").await.0 == 404).then_some(())
    })
    .await;
    assert!(gone.is_some(), "{:?}", cloud_device(&pair, "pump-1").await);

    // Deleted while the link is cut, and the edge restarted (kill -9) before it comes back:
    // nothing in memory carries the deletion, it still reaches the cloud.
    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(2)).await;
    delete(&pair.edge_http, "pump-2").await;
    pair.restart_edge_with(toml).await;
    assert_eq!(cloud_device(&pair, "pump-2").await.0, 200);
    pair.proxy.set(Fault::Pass);
    let deleted = eventually(30, || async {
        (cloud_device(&pair, "pump-2").await.0 == 404).then_some(())
    })
    .await;
    assert!(
        deleted.is_some(),
        "the deletion during the cut did not reach the cloud"
    );
    let left = edge_devices(&pair).await;
    let ids: Vec<&str> = left.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["pump-3"]);

    // An id deleted on the edge and created there again is the edge's device again.
    create(&pair.edge_http, "pump-1", "pump", "west").await;
    let back = eventually(20, || async {
        let (status, body) = cloud_device(&pair, "pump-1").await;
        (status == 200).then_some(body)
    })
    .await
    .expect("the re-created device did not reach the cloud");
    assert_eq!(
        (&back["edge"], &back["labels"]["site"]),
        (&json!(EDGE), &json!("west")),
        "{back}"
    );
    let (_, audit) = api_at(
        &pair.cloud_http,
        "GET",
        "/api/v1/audit?action=device.delete",
        None,
    )
    .await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let by_edge: Vec<&Value> = entries
        .iter()
        .filter(|e| e["actor"] == format!("edge:{EDGE}"))
        .collect();
    assert_eq!(by_edge.len(), 2, "{audit}");
}
