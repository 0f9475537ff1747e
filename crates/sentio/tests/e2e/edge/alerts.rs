//! An edge's alerts go up: raised on the edge while the link is cut, they show in the cloud's
//! `/api/v1/alerts` once it is back, attributed to the edge (`"edge": <id>`), and an
//! acknowledgement on the edge follows them. Real processes and the fault proxy (see `uplink`).

use std::time::Duration;

use serde_json::Value;

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{EDGE, Fleet, Pair};

async fn alerts(http: &str) -> Vec<Value> {
    let (status, body) = api_at(http, "GET", "/api/v1/alerts", None).await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_raised_on_a_cut_edge_reach_the_cloud_attributed_to_it() {
    let _heavy = heavy().await;
    // Every reading of `a` crosses this limit: a limit alert per device, on the edge.
    let pair =
        Pair::start("ack_timeout = \"3s\"\nkeep_alive = \"5s\"\n[ai]\nlimits = [\"sensor.a<=-1\"]")
            .await;
    pair.proxy.set(Fault::Cut);
    let fleet = Fleet::start(&pair, 2).await;
    let raised = eventually(30, || async {
        let on_edge: Vec<Value> = alerts(&pair.edge_http)
            .await
            .into_iter()
            .filter(|a| a["explanation"]["kind"] == "limit")
            .collect();
        (on_edge.len() == 2).then_some(on_edge)
    })
    .await
    .expect("the edge raised no limit alerts");
    // Acknowledged on the edge while the link is down.
    let first = raised[0]["id"].as_i64().unwrap();
    let (status, body) = api_at(
        &pair.edge_http,
        "POST",
        &format!("/api/v1/alerts/{first}/ack"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        alerts(&pair.cloud_http).await.is_empty(),
        "nothing crosses a cut link"
    );

    let restored = now_ms();
    pair.proxy.set(Fault::Pass);
    let up = eventually(30, || async {
        let cloud: Vec<Value> = alerts(&pair.cloud_http)
            .await
            .into_iter()
            .filter(|a| a["edge"] == EDGE && a["explanation"]["kind"] == "limit")
            .collect();
        (cloud.len() == 2 && cloud.iter().any(|a| a["state"] == "acknowledged")).then_some(cloud)
    })
    .await;
    let Some(up) = up else {
        panic!("not in the cloud: {:?}", alerts(&pair.cloud_http).await);
    };
    println!(
        "alerts: the edge's {} alerts in the cloud {} ms after the link came back",
        up.len(),
        now_ms() - restored
    );
    for a in &up {
        let on_edge = raised.iter().find(|e| e["device"] == a["device"]).unwrap();
        assert_eq!(a["opened_ms"], on_edge["opened_ms"], "{a}");
        assert_eq!(
            a["explanation"]["detector"],
            on_edge["explanation"]["detector"]
        );
    }
    let acked = up.iter().find(|a| a["state"] == "acknowledged").unwrap();
    assert_eq!(acked["device"], raised[0]["device"], "{acked}");
    // Once, however often the edge sends them again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again: Vec<Value> = alerts(&pair.cloud_http)
        .await
        .into_iter()
        .filter(|a| a["edge"] == EDGE)
        .collect();
    let limit = again
        .iter()
        .filter(|a| a["explanation"]["kind"] == "limit")
        .count();
    assert_eq!(limit, 2, "{again:?}");
    let (_, one) = api_at(
        &pair.cloud_http,
        "GET",
        &format!("/api/v1/alerts/{}", acked["id"]),
        None,
    )
    .await;
    assert_eq!(one["edge"], EDGE, "{one}");
    let _ = fleet.stop().await;
}
