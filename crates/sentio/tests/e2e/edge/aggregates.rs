//! The aggregates policy: an edge sends each closed minute's rollup per series and the raw
//! points around each alert it raises, not every point. Real processes and the fault proxy
//! (see `uplink`); a fleet of 1 Hz series published with past timestamps (so that minutes
//! close within the test), the link cut while half of them arrive, then restored: the cloud
//! holds every closed minute once with the edge's count and sum, answers per minute from them
//! (`"resolution": "1m"`), holds the raw points around the edge's alert, and the bytes per
//! point at the socket are printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use serde_json::json;

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::{Pair, series};

const MINUTE: i64 = 60_000;

/// Devices publishing `a` and `b` once a second (device time).
const DEVICES: usize = 8;

/// Sensor-like readings of device `d` at `ts`: a slow wave in two decimals, one in one
/// decimal; `a` is 500 (over its limit of 100) during `spike`.
fn reading(d: usize, ts: i64, spike: (i64, i64)) -> (f64, f64) {
    let t = ts as f64 / 1_000.0;
    let a = if d == 0 && (spike.0..spike.1).contains(&ts) {
        500.0
    } else {
        ((21.0 + 2.0 * (t / 900.0 + d as f64).sin() + 0.05 * (t * 7.3).sin()) * 100.0).round()
            / 100.0
    };
    let b = ((45.0 + 5.0 * (t / 1_200.0 + d as f64).cos()) * 10.0).round() / 10.0;
    (a, b)
}

/// Connected devices of the edge.
struct Devices(Vec<(String, AsyncClient, Arc<AtomicU64>)>);

impl Devices {
    async fn connect(pair: &Pair) -> Self {
        let mut out = Vec::new();
        for i in 0..DEVICES {
            let id = format!("dev-{i}");
            let (client, acked) = pair.counted_device(&id, 64).await;
            out.push((id, client, acked));
        }
        Self(out)
    }

    /// Publishes every second of `[from, to)` for every device at QoS 1 and waits for every
    /// acknowledgement; returns the points accepted.
    async fn publish(&self, (from, to): (i64, i64), spike: (i64, i64)) -> u64 {
        let before: u64 = self.0.iter().map(|d| d.2.load(Ordering::Relaxed)).sum();
        let mut sent = 0u64;
        let mut ts = from;
        while ts < to {
            for (d, (id, client, _)) in self.0.iter().enumerate() {
                let (a, b) = reading(d, ts, spike);
                client
                    .publish(
                        format!("devices/{id}/telemetry"),
                        QoS::AtLeastOnce,
                        false,
                        json!({"ts": ts, "a": a, "b": b}).to_string(),
                    )
                    .await
                    .unwrap();
                sent += 1;
            }
            ts += 1_000;
        }
        let all = eventually(120, || async {
            let acked: u64 = self.0.iter().map(|d| d.2.load(Ordering::Relaxed)).sum();
            (acked - before >= sent).then_some(())
        })
        .await;
        assert!(all.is_some(), "the edge did not acknowledge every publish");
        sent * 2
    }
}

/// Per minute of `[from, to)`: `agg` of a series, and the resolution it came from.
pub(super) async fn per_minute(
    http: &str,
    device: &str,
    metric: &str,
    (from, to): (i64, i64),
    agg: &str,
) -> (Vec<(i64, f64)>, String) {
    let (status, body) = api_at(
        http,
        "GET",
        &format!(
            "/api/v1/devices/{device}/series/{metric}?from={from}&to={to}&step=1m&agg={agg}&limit=10000"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let points = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    (points, body["resolution"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregates_edge_sends_each_closed_minute_once_and_the_raw_points_around_its_alert() {
    let _heavy = heavy().await;
    let pair = Pair::start(
        "policy = \"aggregates\"\nraw_around_alert = \"1m\"\nack_timeout = \"3s\"\n\
         [pipeline]\nlate_window = \"none\"\n[ai]\nlimits = [\"sensor.a<=100\"]",
    )
    .await;
    let devices = Devices::connect(&pair).await;
    // Minutes well closed on the edge (its rollups settle 5 minutes behind now).
    let t0 = (now_ms() - 45 * MINUTE).div_euclid(MINUTE) * MINUTE;
    let (cut_at, end) = (t0 + 15 * MINUTE, t0 + 38 * MINUTE);
    let spike = (t0 + 5 * MINUTE + 20_000, t0 + 5 * MINUTE + 30_000);

    // Linked: the first quarter of an hour, with an alert in it.
    let mut accepted = devices.publish((t0, cut_at), spike).await;
    // The alert, and the whole minutes from one before it opened to one after.
    let alert = eventually(60, || async {
        let (_, body) = api_at(&pair.edge_http, "GET", "/api/v1/alerts", None).await;
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["device"] == "dev-0" && a["metric"] == "a")
            .cloned()
    })
    .await
    .expect("the edge raised no alert on dev-0's a");
    let opened = alert["opened_ms"].as_i64().unwrap();
    let window = (
        (opened - MINUTE).div_euclid(MINUTE) * MINUTE,
        ((opened + MINUTE).div_euclid(MINUTE) + 1) * MINUTE,
    );

    // Cut: the rest arrives at the edge, and its minutes close there.
    pair.proxy.set(Fault::Cut);
    accepted += devices.publish((cut_at, end), spike).await;
    let closed_rows = (DEVICES * 2) as u64 * ((end - cut_at) / MINUTE) as u64;
    let pending = eventually(60, || async {
        let u = pair.uplink().await;
        (u["connected"] == false && u["rollups"]["pending_points"].as_u64()? >= closed_rows)
            .then_some(u)
    })
    .await;
    assert!(pending.is_some(), "not rolled up: {}", pair.uplink().await);
    // Two more maintenance passes (every 5 s): the last minutes' final rows too.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (bytes_before, restored) = (pair.proxy.bytes_up(), now_ms());
    pair.proxy.set(Fault::Pass);
    let drained = eventually(60, || async {
        let u = pair.uplink().await;
        (u["connected"] == true && u["rollups"]["pending_points"] == 0 && u["pending_points"] == 0)
            .then_some(())
    })
    .await;
    assert!(drained.is_some(), "not drained: {}", pair.uplink().await);
    let drain_bytes = pair.proxy.bytes_up() - bytes_before;
    let drain_ms = now_ms() - restored;

    // Every closed minute once, with the edge's count and sum; answered from the rollups.
    let (mut minutes, mut counted) = (0u64, 0u64);
    for d in 0..DEVICES {
        let device = format!("dev-{d}");
        for metric in ["a", "b"] {
            for agg in ["count", "sum", "min", "max"] {
                let (edge, _) = per_minute(&pair.edge_http, &device, metric, (t0, end), agg).await;
                let (cloud, res) =
                    per_minute(&pair.cloud_http, &device, metric, (t0, end), agg).await;
                assert_eq!(res, "1m", "{device}/{metric}");
                assert_eq!(cloud, edge, "{device}/{metric} {agg} per minute");
                if agg == "count" {
                    minutes += cloud.len() as u64;
                    counted += cloud.iter().map(|c| c.1 as u64).sum::<u64>();
                }
            }
        }
    }
    let expected_minutes = (DEVICES * 2) as u64 * ((end - t0) / MINUTE) as u64;
    assert_eq!(minutes, expected_minutes, "every closed minute, once");
    assert_eq!(
        counted, accepted,
        "the minutes count every accepted point once"
    );
    let edge = pair.cloud_edge().await;
    assert_eq!(edge["policy"], "aggregates", "{edge}");

    // The raw points around the alert: in the cloud as on the edge.
    for metric in ["a", "b"] {
        let on_edge: Vec<(i64, f64)> = series(&pair.edge_http, "dev-0", metric)
            .await
            .into_iter()
            .filter(|(t, _)| (window.0..window.1).contains(t))
            .collect();
        let in_cloud: Vec<(i64, f64)> = series(&pair.cloud_http, "dev-0", metric)
            .await
            .into_iter()
            .filter(|(t, _)| (window.0..window.1).contains(t))
            .collect();
        assert_eq!(on_edge.len() as i64, (window.1 - window.0) / 1_000);
        assert_eq!(in_cloud, on_edge, "dev-0/{metric} around the alert");
    }
    // Raw points elsewhere stay on the edge (unless another alert's window holds them).
    let raw_in_cloud: usize = {
        let mut n = 0;
        for d in 0..DEVICES {
            for metric in ["a", "b"] {
                n += series(&pair.cloud_http, &format!("dev-{d}"), metric)
                    .await
                    .len();
            }
        }
        n
    };

    let total = pair.proxy.bytes_up();
    let drained_points = (DEVICES * 2) as u64 * ((end - cut_at) / 1_000) as u64;
    // The rollups' own packets (the edge counts each PUBLISH as framed on the socket), over
    // every point they summarise.
    let rollup_bytes = pair.uplink().await["rollups"]["packet_bytes"]
        .as_u64()
        .unwrap();
    let per_point = rollup_bytes as f64 / accepted as f64;
    println!(
        "aggregates: accepted {accepted}, in the cloud's minutes {counted} ({minutes} minutes), \
         duplicated 0, lost {}; raw points in the cloud {raw_in_cloud} (around alerts); \
         rollups' packets {rollup_bytes} bytes, {per_point:.3} B/point; at the socket edge -> \
         cloud {total} bytes in all (alerts, raw points around them, status reports included), \
         {:.3} B/point; after the cut the outage's {drained_points} points drained in \
         {drain_ms} ms with {drain_bytes} bytes at the socket, {:.3} B/point",
        accepted - counted,
        total as f64 / accepted as f64,
        drain_bytes as f64 / drained_points as f64,
    );
    assert!(
        per_point <= 0.2,
        "{rollup_bytes} bytes for {accepted} points"
    );
    assert!(
        rollup_bytes < total,
        "the rollups' packets went through the proxy"
    );
}
