//! A tiny disk budget on an edge whose uplink is cut: it degrades rather than loses. Real
//! processes and the fault proxy (see `uplink`); devices publish minutes of full-precision
//! readings with past timestamps (so the minutes close and are rolled up on the edge), the
//! first minutes while linked, the rest while cut; the edge is then restarted (SIGKILL) with a
//! disk budget its data does not fit. Delivered raw points go first, then undelivered ones are
//! degraded to their minute rollups; the counts satisfy accepted = delivered + degraded +
//! dropped + pending on the edge, before and after its restart, and one `edge_budget` alert is
//! open. Once the link is back the cloud holds every delivered point once and the rollups of
//! the degraded minutes, and the alert.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use serde_json::{Value, json};

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::aggregates::per_minute;
use super::uplink::{EDGE, METRICS, Pair, series};

const MINUTE: i64 = 60_000;
const DEVICES: usize = 12;

/// Device `d`'s reading of metric `m` at `ts`: full precision (about 8 bytes a point sealed),
/// so the raw points are most of the edge's database.
fn reading(d: usize, m: usize, ts: i64) -> f64 {
    let x = (((d * 2 + m) as u64) << 48 ^ ts as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 11) as f64 / (1u64 << 53) as f64 * 100.0 * 1e6).round() / 1e6
}

/// The devices' MQTT clients to the edge.
struct Devices(Vec<(AsyncClient, EventLoop)>);

impl Devices {
    async fn connect(pair: &Pair) -> Self {
        let mut out = Vec::new();
        for d in 0..DEVICES {
            out.push(pair.new_device(&format!("dev-{d}"), 128).await);
        }
        Self(out)
    }

    /// Publishes every second of `[from, to)` for every device, a minute per message (QoS 1),
    /// and waits for the edge's acknowledgements; returns the points accepted.
    async fn publish(&mut self, (from, to): (i64, i64)) -> u64 {
        let mut accepted = 0;
        for (d, (client, el)) in self.0.iter_mut().enumerate() {
            let messages = (to - from).div_euclid(MINUTE);
            for start in (from..to).step_by(MINUTE as usize) {
                let batch: Vec<Value> = (start..(start + MINUTE).min(to))
                    .step_by(1_000)
                    .map(|ts| json!({"ts": ts, "a": reading(d, 0, ts), "b": reading(d, 1, ts)}))
                    .collect();
                accepted += 2 * batch.len() as u64;
                client
                    .publish(
                        format!("devices/dev-{d}/telemetry"),
                        QoS::AtLeastOnce,
                        false,
                        Value::Array(batch).to_string(),
                    )
                    .await
                    .unwrap();
            }
            let mut acked = 0;
            let done = tokio::time::timeout(Duration::from_secs(120), async {
                while acked < messages {
                    match el.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                        Ok(_) => {}
                        // Idle since the last phase: the next poll connects again (and sends
                        // what is unacknowledged again).
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
            .await;
            assert!(done.is_ok(), "dev-{d}: {acked} of {messages} acknowledged");
        }
        accepted
    }
}

/// The edge's counts per lane (`/api/v1/uplink`), each checked against the identity.
fn balanced(u: &Value) -> Value {
    let c = u["counts"].clone();
    for lane in ["points", "backlog", "rollups"] {
        let l = &c[lane];
        let n = |k: &str| l[k].as_u64().unwrap();
        assert_eq!(
            n("accepted"),
            n("delivered") + n("degraded") + n("dropped") + n("pending"),
            "{lane}: {c}"
        );
    }
    c
}

/// Sums a field over the raw lanes.
fn raw(c: &Value, k: &str) -> u64 {
    c["points"][k].as_u64().unwrap() + c["backlog"][k].as_u64().unwrap()
}

/// The open (or any) `edge_budget` alert on the edge's own device, on node `http`.
async fn budget_alert(http: &str) -> Option<Value> {
    let (_, body) = api_at(http, "GET", "/api/v1/alerts", None).await;
    body["alerts"]
        .as_array()?
        .iter()
        .find(|a| {
            a["device"] == format!("edge:{EDGE}") && a["explanation"]["detector"] == "edge_budget"
        })
        .cloned()
}

/// The edge's storage (`/api/v1/storage`).
async fn storage(http: &str) -> Value {
    let (status, s) = api_at(http, "GET", "/api/v1/storage", None).await;
    assert_eq!(status, 200, "{s}");
    s
}

/// Bytes the edge's database file holds, less its free pages: what the budget counts once
/// its log is emptied into it (as the budget pass does first).
async fn live_bytes(http: &str) -> u64 {
    let s = storage(http).await;
    let n = |v: &Value| v.as_u64().unwrap();
    n(&s["parts"]["database"]) - n(&s["free_bytes"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_tiny_disk_budget_a_cut_off_edge_degrades_to_rollups_and_counts_every_point() {
    let _heavy = heavy().await;
    let toml = "ack_timeout = \"3s\"\n[pipeline]\nlate_window = \"none\"";
    let mut pair = Pair::start(toml).await;
    // Minutes well closed on the edge (its rollups settle 5 minutes behind now).
    let t0 = (now_ms() - 50 * MINUTE).div_euclid(MINUTE) * MINUTE;
    let (cut_at, end) = (t0 + 6 * MINUTE, t0 + 42 * MINUTE);

    // Linked: the first minutes reach the cloud.
    let mut devices = Devices::connect(&pair).await;
    let mut accepted = devices.publish((t0, cut_at)).await;
    pair.drained(60).await;
    // Cut: the rest stays on the edge, where its minutes close and are rolled up.
    pair.proxy.set(Fault::Cut);
    accepted += devices.publish((cut_at, end)).await;
    drop(devices);
    let settled = eventually(60, || async {
        let u = pair.uplink().await;
        (u["connected"] == false && raw(&u["counts"], "accepted") == accepted).then_some(u)
    })
    .await;
    assert!(settled.is_some(), "not accepted: {}", pair.uplink().await);
    // Two maintenance passes (every 5 s): sealed and rolled up.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let live = live_bytes(&pair.edge_http).await;

    // Restarted (SIGKILL) with a budget its data does not fit.
    let budget = live * 3 / 4;
    pair.restart_edge_with(&format!("{toml}\n[store]\ndisk_budget = \"{budget}B\""))
        .await;
    let degraded = eventually(90, || async {
        let u = pair.uplink().await;
        let c = balanced(&u);
        (raw(&c, "degraded") > 0 && raw(&c, "accepted") == accepted).then_some(c)
    })
    .await;
    assert!(
        degraded.is_some(),
        "nothing degraded: {}",
        pair.uplink().await
    );
    let alert = eventually(30, || budget_alert(&pair.edge_http)).await;
    let alert = alert.expect("no edge_budget alert on the edge");
    assert_eq!(alert["state"], "open", "{alert}");
    // Let the pass finish (under the budget again, or nothing left to degrade).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let during = balanced(&pair.uplink().await);
    let after_bytes = live_bytes(&pair.edge_http).await;

    // The link returns: what is left, and the degraded minutes' rollups, go up.
    pair.proxy.set(Fault::Pass);
    let drained = eventually(90, || async {
        let u = pair.uplink().await;
        let c = balanced(&u);
        (u["connected"] == true && raw(&c, "pending") == 0 && c["rollups"]["pending"] == 0)
            .then_some(c)
    })
    .await;
    let Some(c) = drained else {
        panic!("not drained: {}", pair.uplink().await)
    };
    let (delivered, degraded, dropped) = (
        raw(&c, "delivered"),
        raw(&c, "degraded"),
        raw(&c, "dropped"),
    );
    assert_eq!(delivered + degraded + dropped, accepted, "{c}");
    assert!(degraded > 0, "{c}");

    // The cloud: every delivered point once, with its value; nothing degraded or dropped as raw.
    let (mut stored, mut wrong) = (0u64, 0u64);
    let mut cloud_minutes: BTreeMap<i64, u64> = BTreeMap::new();
    for d in 0..DEVICES {
        let device = format!("dev-{d}");
        for (m, metric) in METRICS.iter().enumerate() {
            let points = series(&pair.cloud_http, &device, metric).await;
            stored += points.len() as u64;
            wrong += points
                .iter()
                .filter(|(ts, v)| **v != reading(d, m, **ts))
                .count() as u64;
            // Per minute, the cloud answers as the edge does: its own points' rollups where it
            // got them, the edge's rollups for the degraded minutes.
            let (edge, _) = per_minute(&pair.edge_http, &device, metric, (t0, end), "count").await;
            let (cloud, _) =
                per_minute(&pair.cloud_http, &device, metric, (t0, end), "count").await;
            assert_eq!(cloud, edge, "{device}/{metric} per minute");
            for (b, n) in cloud {
                *cloud_minutes.entry(b).or_default() += n as u64;
            }
        }
    }
    let counted: u64 = cloud_minutes.values().sum();
    let applied = pair.cloud_edge().await["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["lane"] != "rollups")
        .map(|p| p["points"].as_u64().unwrap())
        .sum::<u64>();
    let duplicated = applied.saturating_sub(stored);
    let lost = delivered.saturating_sub(stored);
    println!(
        "edge budget: accepted {accepted}, delivered {delivered}, degraded {degraded} (in {} \
         minute rollup rows), dropped {dropped}; the edge's database {live} -> {after_bytes} \
         bytes under a budget of {budget}; the cloud stored {stored} raw points, duplicated \
         {duplicated}, lost {lost}, wrong {wrong}, and its minutes count {counted} points",
        c["rollups"]["delivered"],
    );
    assert_eq!((wrong, duplicated, lost), (0, 0, 0));
    assert_eq!(
        stored, delivered,
        "the cloud holds exactly the delivered raw points"
    );
    assert_eq!(
        counted,
        accepted - dropped,
        "the minutes count every point kept once"
    );
    assert!(
        during["rollups"]["accepted"].as_u64().unwrap() > 0,
        "{during}"
    );

    // The alert went up with the edge's others.
    let in_cloud = eventually(30, || budget_alert(&pair.cloud_http)).await;
    assert!(
        in_cloud.is_some(),
        "the edge_budget alert did not reach the cloud"
    );
    let reported = eventually(30, || async {
        let e = pair.cloud_edge().await;
        (e["reported"]["degraded_points"].as_u64() == Some(degraded)).then_some(())
    })
    .await;
    assert!(reported.is_some(), "{}", pair.cloud_edge().await);
}
