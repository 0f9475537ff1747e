//! `GET /api/v1/devices/<id>/export` streams everything held about a device.

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_point_and_alert_of_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "meter-7", "meter").await;
    let _other = register(&node, "meter-8", "meter").await;
    // 25,000 readings of two metrics (more than one page of 10,000), then a jump for an alert.
    let n: i64 = 25_000;
    let t0 = sentio_core::time::now_ms() - n * 1_000;
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let power = if i < n - 300 { 100.0 } else { 400.0 } + (i % 7) as f64 * 0.25;
            let mut v = json!({"ts": t0 + i * 1_000, "power": power, "on": i % 2 == 0});
            if i == 5 {
                v["status"] = json!("calibrating");
            }
            v
        })
        .collect();
    for chunk in items.chunks(5_000) {
        let (st, body) = http(
            "POST",
            format!("http://{}/api/v1/devices/meter-7/telemetry", node.http_addr),
            basic("meter-7", &secret),
            Some(serde_json::to_vec(chunk).unwrap()),
        )
        .await;
        assert_eq!(st, 200, "{body}");
    }
    let alerted = eventually(30, || async {
        let (_, a) = api(&node, "GET", "/api/v1/alerts?device=meter-7", None).await;
        (!a["alerts"].as_array().unwrap().is_empty()).then_some(a)
    })
    .await;
    assert!(alerted.is_some(), "the jump raised an alert");

    let base = format!("http://{}/api/v1/devices", node.http_addr);
    let (st, ct, text) = get_text(format!("{base}/meter-7/export"), bearer()).await;
    assert_eq!(st, 200, "{text}");
    assert_eq!(ct, "application/x-ndjson");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines[0]["type"], "device");
    assert_eq!(lines[0]["id"], "meter-7");
    assert!(lines[0].get("secret").is_none(), "no secret in an export");
    let power: Vec<(i64, f64)> = lines
        .iter()
        .filter(|l| l["type"] == "point" && l["metric"] == "power")
        .map(|l| (l["ts_ms"].as_i64().unwrap(), l["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(power.len(), n as usize);
    for (i, (ts, v)) in power.iter().enumerate() {
        assert_eq!(*ts, items[i]["ts"].as_i64().unwrap());
        assert_eq!(*v, items[i]["power"].as_f64().unwrap());
    }
    let on = lines
        .iter()
        .filter(|l| l["type"] == "point" && l["metric"] == "on")
        .count();
    assert_eq!(on, n as usize);
    let events: Vec<&Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["text"], "calibrating");
    assert_eq!(events[0]["ts_ms"], t0 + 5_000);
    let alerts: Vec<&Value> = lines.iter().filter(|l| l["type"] == "alert").collect();
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|a| a["device"] == "meter-7"));
    assert!(!text.contains("meter-8"), "nothing of another device");

    let (st, ct, csv) = get_text(format!("{base}/meter-7/export?format=csv"), bearer()).await;
    assert_eq!(st, 200, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("metric,ts_ms,ts,value"));
    let first_power = csv.lines().find(|l| l.starts_with("power,")).unwrap();
    let cols: Vec<&str> = first_power.split(',').collect();
    assert_eq!(cols[1].parse::<i64>().unwrap(), t0);
    assert_eq!(cols[3].parse::<f64>().unwrap(), 100.0);
    assert_eq!(csv.lines().count(), 1 + 2 * n as usize);

    // Clear errors.
    let (st, _, body) = get_text(format!("{base}/nobody/export"), bearer()).await;
    assert_eq!(st, 404, "{body}");
    let (st, _, body) = get_text(format!("{base}/meter-7/export?format=xml"), bearer()).await;
    assert_eq!(st, 400, "{body}");
    let (st, _, _) = get_text(format!("{base}/meter-7/export"), None).await;
    assert_eq!(st, 401);

    // After erasure there is nothing left to export.
    let (st, body) = api(&node, "DELETE", "/api/v1/devices/meter-7?erase=true", None).await;
    assert_eq!(st, 200, "{body}");
    let (st, _, _) = get_text(format!("{base}/meter-7/export"), bearer()).await;
    assert_eq!(st, 404);
    node.shutdown().await;
}
