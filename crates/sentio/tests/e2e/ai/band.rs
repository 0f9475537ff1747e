//! The AI engine's expected band through the API: points posted over HTTP, the band kept per
//! minute (saved with the detector state, so here at the restart) and read back: an anomaly's
//! value lies outside its minute's band, normal values inside theirs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::*;

const MIN: i64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anomaly_lies_outside_the_expected_band_and_normal_values_inside() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "boiler-1", "boiler").await;
    // Fifteen minutes at one point a second, a small wobble around 60; one spike to 90.
    let t0 = (now_ms() - 20 * MIN) / MIN * MIN;
    let n = 15 * 60;
    let spike = 12 * 60 + 30;
    let value = |i: i64| {
        if i == spike {
            90.0
        } else {
            60.0 + [0.0, 0.3, -0.2, 0.1, -0.3, 0.2][(i % 6) as usize]
        }
    };
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"ts": t0 + i * 1_000, "temp": value(i)}))
        .collect();
    for chunk in items.chunks(300) {
        let (st, body) = post_telemetry(&node, "boiler-1", &secret, chunk).await;
        assert_eq!(st, 200, "{body}");
    }
    // The spike raises an anomaly alert.
    wait_for_kind(&node, "boiler-1", "anomaly", 10).await;
    // The bands are saved with the detector state: at the latest when the node stops.
    node.shutdown().await;
    let node = start(dir.path()).await;

    let url = format!(
        "/api/v1/devices/boiler-1/series/temp/band?from={t0}&to={}&points=1000",
        t0 + n * 1_000
    );
    let (st, body) = api(&node, "GET", &url, None).await;
    assert_eq!(st, 200, "{body}");
    let bands: BTreeMap<i64, (f64, f64, f64)> = body["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let f = |k: usize| b[k].as_f64().unwrap();
            (b[0].as_i64().unwrap(), (f(1), f(2), f(3)))
        })
        .collect();
    // Every minute after the warm-up has its band, and one row per minute at this width.
    assert!(bands.len() >= 10 && bands.len() <= 15, "{body}");
    let spike_minute = (t0 + spike * 1_000) / MIN * MIN;
    for i in 0..n {
        let ts = t0 + i * 1_000;
        let Some(&(expected, lower, upper)) = bands.get(&(ts / MIN * MIN)) else {
            continue;
        };
        assert!(lower <= expected && expected <= upper, "{body}");
        let v = value(i);
        if i == spike {
            assert!(
                v > upper,
                "the spike {v} is outside its minute's band {lower}..{upper}"
            );
        } else {
            assert!(
                (lower..=upper).contains(&v),
                "normal value {v} at {i} is inside its minute's band {lower}..{upper}"
            );
        }
    }
    assert!(bands.contains_key(&spike_minute), "{body}");

    // Drawn at fewer buckets: at most that many; an unknown series or device is a 404.
    let (st, few) = api(&node, "GET", &url.replace("points=1000", "points=4"), None).await;
    assert_eq!(st, 200, "{few}");
    let rows = few["bands"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.len() <= 4, "{few}");
    for path in [
        "/api/v1/devices/boiler-1/series/nope/band",
        "/api/v1/devices/nobody/series/temp/band",
    ] {
        assert_eq!(api(&node, "GET", path, None).await.0, 404, "{path}");
    }
    let (st, _) = api(&node, "GET", &format!("{url}&step=1m"), None).await;
    assert_eq!(st, 400);
    node.shutdown().await;
}
