//! A series drawn for a chart through the HTTP API (`points=N`), min/max per bucket.

use crate::support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_series_drawn_at_n_points_keeps_its_extremes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "dev-1", "room").await;
    let t0 = sentio_core::time::now_ms() / 1000 * 1000 - 3_600_000;
    // An hour at 1 s: a slow wave, one spike up and one dip down.
    let value = |i: i64| match i {
        1234 => 99.0,
        2345 => -50.0,
        _ => ((20.0 + (i as f64 / 300.0).sin()) * 100.0).round() / 100.0,
    };
    for part in 0..4 {
        let batch: Vec<_> = (part * 900..(part + 1) * 900)
            .map(|i| json!({"ts": t0 + i * 1000, "t": value(i)}))
            .collect();
        let (status, body) = http(
            "POST",
            format!("http://{}/api/v1/devices/dev-1/telemetry", node.http_addr),
            basic("dev-1", &secret),
            Some(json!(batch).to_string().into_bytes()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let path = |q: &str| {
        format!(
            "/api/v1/devices/dev-1/series/t?from={t0}&to={}&{q}",
            t0 + 3_600_000
        )
    };

    let (status, body) = api(&node, "GET", &path("points=100"), None).await;
    assert_eq!(status, 200, "{body}");
    let pts: Vec<(i64, f64)> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert!(pts.len() > 50 && pts.len() <= 100, "{} points", pts.len());
    assert!(pts.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
    assert!(pts.contains(&(t0 + 1_234_000, 99.0)), "the spike is drawn");
    assert!(pts.contains(&(t0 + 2_345_000, -50.0)), "the dip is drawn");
    assert!(
        pts.iter()
            .all(|&(t, v)| (t - t0) % 1000 == 0 && v == value((t - t0) / 1000))
    );
    assert!(body.get("next").is_none());

    // Fewer points than asked: every point.
    let (status, body) = api(
        &node,
        "GET",
        &format!(
            "/api/v1/devices/dev-1/series/t?from={t0}&to={}&points=20",
            t0 + 10_000
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["points"].as_array().unwrap().len(), 10);

    for bad in ["points=1", "points=1000000", "points=100&step=1m"] {
        let (status, body) = api(&node, "GET", &path(bad), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    node.shutdown().await;
}
