//! Twins through the edge: a desired change made on the cloud for a device of the edge goes
//! down to the edge (`edges/<id>/down/twins`), which applies it once per cloud version and
//! publishes it retained to the device; what the device reports comes back up
//! (`up/twins`) and the cloud's twin shows it. Also when the device was offline, the uplink
//! cut and the cloud restarted meanwhile, and across a restart of the edge; nothing applied
//! twice. The edge's own API may not change a desired state the cloud sets (409). Real
//! processes and the fault proxy (see `uplink`).

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{EDGE, Pair, get_when};

const DEVICE: &str = "lamp-7";
const EDGE_TOML: &str = "ack_timeout = \"3s\"\nkeep_alive = \"5s\"";

/// The device on the edge, subscribed to its desired twin: the client and what it gets.
async fn connect(
    pair: &Pair,
    secret: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Value)>) {
    let filter = format!("devices/{DEVICE}/twin/desired");
    pair.listening_device(DEVICE, secret, &filter).await
}

/// The next desired document the device gets.
async fn next_desired(rx: &mut mpsc::UnboundedReceiver<(String, Value)>) -> Value {
    let (topic, body) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no desired twin reached the device")
        .unwrap();
    assert_eq!(topic, format!("devices/{DEVICE}/twin/desired"));
    body
}

async fn report(client: &AsyncClient, doc: Value) {
    let topic = format!("devices/{DEVICE}/twin/reported");
    client
        .publish(topic, QoS::AtLeastOnce, false, doc.to_string())
        .await
        .unwrap();
}

fn twin_path() -> String {
    format!("/api/v1/devices/{DEVICE}/twin")
}

/// PATCHes desired on the node at `http`: the status and the twin.
async fn set_desired(http: &str, desired: Value) -> (u16, Value) {
    api_at(
        http,
        "PATCH",
        &twin_path(),
        Some(json!({ "desired": desired })),
    )
    .await
}

/// The twin on the node at `http` once `done` holds for it.
async fn twin_when(http: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    get_when(http, &twin_path(), secs, done).await
}

/// Waits until the edge's uplink has connected more than `before` times and is up.
async fn reconnected(pair: &Pair, before: u64) {
    eventually(60, || async {
        let u = pair.uplink().await;
        (u["connected"] == true && u["connects"].as_u64() > Some(before)).then_some(())
    })
    .await
    .expect("the edge did not reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_change_on_the_cloud_reaches_the_edge_device_and_its_report_comes_back_across_outages_and_restarts()
 {
    let _heavy = heavy().await;
    let mut pair = Pair::start(EDGE_TOML).await;
    let secret = pair.register_device(DEVICE).await;
    eventually(30, || async {
        let path = format!("/api/v1/devices/{DEVICE}");
        let (status, body) = api_at(&pair.cloud_http, "GET", &path, None).await;
        (status == 200 && body["edge"] == EDGE).then_some(())
    })
    .await
    .expect("the edge's device did not reach the cloud");

    // Online: down through the edge, retained to the device; its report back on the cloud.
    let (client, mut rx) = connect(&pair, &secret).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    let (status, twin) = set_desired(&pair.cloud_http, json!({"light": "on"})).await;
    assert_eq!(status, 200, "{twin}");
    let got = next_desired(&mut rx).await;
    let down_ms = sent.elapsed().as_millis();
    assert_eq!(got, json!({"version": 1, "desired": {"light": "on"}}));
    let sent = Instant::now();
    report(&client, json!({"light": "on", "temp": 21.5})).await;
    let cloud = twin_when(&pair.cloud_http, 20, |t| t["reported"]["light"] == "on").await;
    println!(
        "edge twin: desired set on the cloud -> device {down_ms} ms; device report -> cloud {} ms",
        sent.elapsed().as_millis()
    );
    assert_eq!(
        cloud["reported"],
        json!({"light": "on", "temp": 21.5}),
        "{cloud}"
    );
    assert_eq!(
        (cloud["delta"].clone(), cloud["version"].clone()),
        (json!({}), json!(1))
    );

    // The cloud sets this device's desired state: the edge's own API may not.
    let (status, refused) = set_desired(&pair.edge_http, json!({"light": "off"})).await;
    assert_eq!(status, 409, "{refused}");

    // The device offline: the change waits on the edge, in its twin.
    client.disconnect().await.unwrap();
    drop(rx);
    let (status, _) = set_desired(&pair.cloud_http, json!({"level": 3})).await;
    assert_eq!(status, 200);
    let on_edge = twin_when(&pair.edge_http, 20, |t| t["version"] == 2).await;
    assert_eq!(
        on_edge["desired"],
        json!({"light": "on", "level": 3}),
        "{on_edge}"
    );
    assert_eq!(on_edge["cloud_version"], 2, "{on_edge}");

    // The uplink cut, a change on the cloud, the cloud killed and restarted, the link back:
    // the edge gets the change when it subscribes again.
    pair.proxy.set(Fault::Cut);
    eventually(30, || async {
        (pair.uplink().await["connected"] == false).then_some(())
    })
    .await
    .expect("the edge did not see the cut");
    let (status, _) = set_desired(&pair.cloud_http, json!({"level": 4})).await;
    assert_eq!(status, 200);
    pair.restart_cloud_after(|_| {}).await;
    let (_, held) = api_at(&pair.edge_http, "GET", &twin_path(), None).await;
    assert_eq!(held["version"], 2, "nothing crossed the cut link: {held}");
    pair.proxy.set(Fault::Pass);
    let on_edge = twin_when(&pair.edge_http, 60, |t| t["version"] == 3).await;
    assert_eq!(
        on_edge["desired"],
        json!({"light": "on", "level": 4}),
        "{on_edge}"
    );

    // A restart of the edge: the cloud sends the document again, the edge applies it once.
    pair.restart_edge_with(EDGE_TOML).await;
    reconnected(&pair, 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let on_edge = twin_when(&pair.edge_http, 5, |_| true).await;
    assert_eq!(
        (on_edge["version"].clone(), on_edge["cloud_version"].clone()),
        (json!(3), json!(3)),
        "{on_edge}"
    );

    // The device back: the latest document, once; its report reaches the cloud.
    let (client, mut rx) = connect(&pair, &secret).await;
    let got = next_desired(&mut rx).await;
    assert_eq!(
        got,
        json!({"version": 3, "desired": {"light": "on", "level": 4}})
    );
    report(&client, json!({"level": 4})).await;
    let cloud = twin_when(&pair.cloud_http, 20, |t| t["reported"]["level"] == 4).await;
    assert_eq!(
        cloud["reported"],
        json!({"light": "on", "temp": 21.5, "level": 4}),
        "{cloud}"
    );
    assert_eq!(
        (cloud["delta"].clone(), cloud["version"].clone()),
        (json!({}), json!(3))
    );

    // The cloud killed once more while the device listens: the re-sent document changes
    // nothing on the edge and reaches the device no second time.
    let before = pair.uplink().await["connects"].as_u64().unwrap();
    pair.restart_cloud_after(|_| {}).await;
    reconnected(&pair, before).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        rx.try_recv().is_err(),
        "a re-sent desired twin reached the device again"
    );
    let on_edge = twin_when(&pair.edge_http, 5, |_| true).await;
    assert_eq!(on_edge["version"], 3, "{on_edge}");
    let cloud = twin_when(&pair.cloud_http, 20, |t| t["reported"]["level"] == 4).await;
    assert_eq!(cloud["desired"], on_edge["desired"], "{cloud}");
    client.disconnect().await.unwrap();
}
