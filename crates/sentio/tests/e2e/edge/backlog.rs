//! After an outage: points committed while the link was down form the backlog lane, drained
//! beside the live lane at the configured rate, while live points go up first. Real processes
//! and the fault proxy (see `uplink`); the cloud ends up with every point exactly once.

use std::time::Duration;

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{EDGE, Fleet, Pair, cloud_latest, series};

/// Backlog points per second the edge may send (the fleet makes 400 points/s).
const RATE: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_live_points_go_first_and_the_backlog_drains_at_its_rate() {
    let _heavy = heavy().await;
    let pair = Pair::start(&format!(
        "ack_timeout = \"3s\"\nkeep_alive = \"5s\"\nbacklog_rate = {RATE}\nbacklog_floor = 0.25"
    ))
    .await;
    let fleet = Fleet::start(&pair, 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cloud_latest(&pair).await > 0, "live data reaches the cloud");

    let cut_at = now_ms();
    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = pair.uplink().await;
    let backlog = during["backlog"]["pending_points"].as_u64().unwrap();
    assert!(backlog > 1_500, "the outage's points are backlog: {during}");
    assert_eq!(during["backlog"]["rate_limit"], RATE, "{during}");

    let restored = now_ms();
    pair.proxy.set(Fault::Pass);
    // Live points committed after the link came back reach the cloud...
    let live = eventually(15, || async {
        (cloud_latest(&pair).await > restored).then_some(now_ms())
    })
    .await
    .expect("live data did not flow again");
    // ...while the backlog is still on its way: points of the outage are missing in the
    // cloud, and the edge still holds them as backlog.
    let on_edge = series(&pair.edge_http, "dev-0", "a").await;
    let in_cloud = series(&pair.cloud_http, "dev-0", "a").await;
    let outage = |m: &std::collections::BTreeMap<i64, f64>| {
        m.range(cut_at + 1_000..restored - 1_000).count()
    };
    let after = pair.uplink().await;
    println!(
        "backlog: live current {} ms after the link came back; then {} of the outage's {} points \
         of dev-0/a in the cloud, {} backlog points pending",
        live - restored,
        outage(&in_cloud),
        outage(&on_edge),
        after["backlog"]["pending_points"]
    );
    assert!(
        outage(&in_cloud) < outage(&on_edge),
        "live points arrived before the backlog"
    );
    assert!(
        after["backlog"]["pending_points"].as_u64().unwrap() > 0,
        "{after}"
    );

    // The drain rate is shown on both nodes and in /metrics, and bounded by the setting.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let draining = pair.uplink().await;
    let rate = draining["backlog"]["drain_rate"].as_u64().unwrap();
    assert!(rate > 0 && rate <= RATE * 3 / 2, "{draining}");
    let shown = eventually(10, || async {
        let e = pair.cloud_edge().await;
        (e["reported"]["backlog_drain_rate"].as_u64() > Some(0)).then_some(e)
    })
    .await
    .expect("the cloud shows the edge's backlog draining");
    println!("backlog: the cloud shows {}", shown["reported"]);
    let (_, _, metrics) = get_text(format!("http://{}/metrics", pair.edge_http), bearer()).await;
    assert!(
        metrics.contains("sentio_uplink_backlog_drain_points_per_second "),
        "{metrics}"
    );
    let (_, _, cloud_metrics) =
        get_text(format!("http://{}/metrics", pair.cloud_http), bearer()).await;
    assert!(
        cloud_metrics.contains(&format!("sentio_edge_backlog_points{{edge=\"{EDGE}\"}} ")),
        "{cloud_metrics}"
    );

    let report = fleet.stop().await;
    pair.drained(60).await;
    let drained = now_ms();
    println!(
        "backlog: {backlog} points drained in about {:.1} s after the link came back (limit {RATE}/s)",
        (drained - restored) as f64 / 1000.0
    );
    pair.compare("backlog after an 8 s cut", &report)
        .await
        .assert_exactly_once();
}
