//! An edge whose uplink stays down raises one alert in the cloud (on `edge:<id>`), not one per
//! device behind it, and it resolves when the edge is back. Real processes and the fault
//! proxy (see `uplink`).

use std::time::Duration;

use serde_json::Value;

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{EDGE, Fleet, Pair};

/// The cloud's alerts about the edge itself, and how many of its own (not an edge's) are open.
async fn edge_alerts(pair: &Pair) -> (Vec<Value>, usize) {
    let (status, body) = api_at(&pair.cloud_http, "GET", "/api/v1/alerts", None).await;
    assert_eq!(status, 200, "{body}");
    let all = body["alerts"].as_array().unwrap().clone();
    let device = format!("edge:{EDGE}");
    let others = all
        .iter()
        .filter(|a| a["device"] != device.as_str() && a["edge"].is_null())
        .filter(|a| a["state"] != "resolved")
        .count();
    (
        all.into_iter()
            .filter(|a| a["device"] == device.as_str())
            .collect(),
        others,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_edge_raises_one_alert_resolved_when_it_is_back() {
    let _heavy = heavy().await;
    let pair = Pair::start_with_cloud(
        "ack_timeout = \"3s\"\nkeep_alive = \"5s\"",
        "[edges]\noffline_alert_after = \"3s\"",
    )
    .await;
    let fleet = Fleet::start(&pair, 3).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Online: nothing open (an edge slow to start may have had one, resolved since).
    let (before, others) = edge_alerts(&pair).await;
    assert!(
        before.iter().all(|a| a["state"] == "resolved") && others == 0,
        "online: no alert open: {before:?}"
    );
    let new_alerts = || async {
        let (alerts, others) = edge_alerts(&pair).await;
        let alerts: Vec<Value> = alerts
            .into_iter()
            .filter(|a| before.iter().all(|b| b["id"] != a["id"]))
            .collect();
        (alerts, others)
    };

    let cut = now_ms();
    pair.proxy.set(Fault::Cut);
    let raised = eventually(20, || async {
        let (alerts, _) = new_alerts().await;
        (!alerts.is_empty()).then_some(alerts)
    })
    .await
    .expect("the offline edge raised no alert");
    println!(
        "offline: alert raised {} ms after the cut: {}",
        now_ms() - cut,
        raised[0]["explanation"]["message"]
    );
    // Still one, however long it stays down, and none per device.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (alerts, others) = new_alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(others, 0, "no alert per device behind the edge");
    assert_eq!(alerts[0]["state"], "open", "{}", alerts[0]);
    assert_eq!(alerts[0]["explanation"]["kind"], "silence", "{}", alerts[0]);

    pair.proxy.set(Fault::Pass);
    let resolved = eventually(20, || async {
        let (alerts, _) = new_alerts().await;
        (alerts.len() == 1 && alerts[0]["state"] == "resolved").then_some(alerts)
    })
    .await;
    assert!(resolved.is_some(), "{:?}", new_alerts().await);
    let report = fleet.stop().await;
    pair.drained(60).await;
    // The backlog arriving raises nothing.
    let (alerts, others) = new_alerts().await;
    assert_eq!((alerts.len(), others), (1, 0), "{alerts:?}");
    pair.compare("offline alert, cut", &report)
        .await
        .assert_exactly_once();
}
