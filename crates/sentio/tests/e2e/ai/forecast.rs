//! Forecasts with prediction intervals through the API.

use crate::support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_of_a_seasonal_series_has_ordered_intervals_after_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "boiler-1", "boiler").await;
    // Two days at one point per minute: a daily cycle plus a slow rise, ending now.
    let now = sentio_core::time::now_ms();
    let n = 2 * 24 * 60;
    let t0 = now - n as i64 * 60_000;
    let items: Vec<_> = (0..n)
        .map(|i| {
            let day = (i as f64 / (24.0 * 60.0)) * std::f64::consts::TAU;
            json!({"ts": t0 + i as i64 * 60_000, "temp": 60.0 + 5.0 * day.sin() + i as f64 * 0.001})
        })
        .collect();
    for chunk in items.chunks(1000) {
        let (st, body) = http(
            "POST",
            format!(
                "http://{}/api/v1/devices/boiler-1/telemetry",
                node.http_addr
            ),
            basic("boiler-1", &secret),
            Some(serde_json::to_vec(chunk).unwrap()),
        )
        .await;
        assert_eq!(st, 200, "{body}");
    }
    let (st, f) = api(
        &node,
        "GET",
        "/api/v1/devices/boiler-1/series/temp/forecast?horizon=2h&step=5m",
        None,
    )
    .await;
    assert_eq!(st, 200, "{f}");
    let pts = f["points"].as_array().unwrap();
    assert_eq!(pts.len(), 24, "{f}");
    let mut last = t0 + (n as i64 - 1) * 60_000 - 300_000;
    for p in pts {
        let (ts, v, lo, hi) = (
            p["ts_ms"].as_i64().unwrap(),
            p["value"].as_f64().unwrap(),
            p["lower"].as_f64().unwrap(),
            p["upper"].as_f64().unwrap(),
        );
        assert!(ts > last, "{p}");
        last = ts;
        assert!(lo <= v && v <= hi, "{p}");
        // The cycle spans 55..65 (+ ~3 of trend): a sane forecast stays near it.
        assert!(v > 50.0 && v < 75.0, "{p}");
    }

    // Too little history: a clear 422, not an empty answer.
    let (_st, _) = api(
        &node,
        "POST",
        "/api/v1/devices",
        Some(json!({"id": "new-1"})),
    )
    .await;
    let (st, e) = api(
        &node,
        "GET",
        "/api/v1/devices/new-1/series/temp/forecast",
        None,
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"], "cannot_forecast");
    let (st, _) = api(
        &node,
        "GET",
        "/api/v1/devices/nope/series/temp/forecast",
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = api(
        &node,
        "GET",
        "/api/v1/devices/boiler-1/series/temp/forecast?horizon=30d&step=1s",
        None,
    )
    .await;
    assert_eq!(st, 400);
    node.shutdown().await;
}
