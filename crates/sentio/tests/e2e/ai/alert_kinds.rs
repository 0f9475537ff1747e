//! The alerts beyond a series' own detectors, through the front door: declared limits
//! with time-to-threshold (predictive) alerts, silence against a device's learnt cadence, and a
//! user's false-alarm mark that resolves the alert and makes its detector less sensitive.

use std::time::Duration;

use crate::support::*;
use sentio::node::Node;
use serde_json::{Value, json};

/// Posts `items` (telemetry objects with `ts`) for `device` in batches of 1,000.
async fn post_all(node: &Node, device: &str, secret: &str, items: &[Value]) {
    for chunk in items.chunks(1000) {
        let (st, body) = post_telemetry(node, device, secret, chunk).await;
        assert_eq!(st, 200, "{body}");
    }
}

/// A little deterministic wobble, as a sensor's noise.
fn wobble(i: i64) -> f64 {
    ((i * 7919) % 13) as f64 * 0.02
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_limit_is_predicted_before_it_is_crossed() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.ai.limits = vec!["boiler.temp<=90".parse().unwrap()];
    })
    .await;

    let (st, l) = api(&node, "GET", "/api/v1/limits", None).await;
    assert_eq!(st, 200, "{l}");
    assert_eq!(l["limits"][0]["kind"], "boiler");
    assert_eq!(l["limits"][0]["metric"], "temp");
    assert_eq!(l["limits"][0]["upper"], 90.0);

    let secret = register(&node, "boiler-1", "boiler").await;
    // 20 minutes flat around 45 °C, then a steady rise of 3 °C a minute, at 1 s, ending now.
    let n: i64 = 1_200 + 960;
    let t0 = sentio_core::time::now_ms() - n * 1_000;
    let value = |i: i64| {
        let rise = if i < 1_200 {
            0.0
        } else {
            0.05 * (i - 1_200) as f64
        };
        45.0 + rise + wobble(i)
    };
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"ts": t0 + i * 1_000, "temp": value(i)}))
        .collect();
    let crossing_ms = t0 + (0..n).find(|&i| value(i) > 90.0).unwrap() * 1_000;
    post_all(&node, "boiler-1", &secret, &items).await;

    let limit = wait_for_kind(&node, "boiler-1", "limit", 30).await;
    let predictive = wait_for_kind(&node, "boiler-1", "predictive", 5).await;
    assert_eq!(limit["opened_ms"], crossing_ms, "{limit}");
    assert_eq!(limit["explanation"]["detector"], "declared-limit");
    let predicted_at = predictive["opened_ms"].as_i64().unwrap();
    assert!(
        predicted_at < crossing_ms - 60_000,
        "predicted at {predicted_at}, only {} s before the crossing",
        (crossing_ms - predicted_at) / 1000
    );
    let p = &predictive["explanation"]["prediction"];
    assert_eq!(p["limit"], 90.0, "{predictive}");
    let expected = p["expected_ms"].as_i64().unwrap();
    assert!(expected > predicted_at, "{predictive}");
    assert_eq!(predictive["explanation"]["detector"], "forecast");
    assert!(
        predictive["explanation"]["message"]
            .as_str()
            .unwrap()
            .contains("forecast to reach its limit 90"),
        "{predictive}"
    );

    // A declared limit does not learn: marking its alert as a false alarm is refused clearly.
    let id = limit["id"].as_i64().unwrap();
    let (st, e) = api(
        &node,
        "POST",
        &format!("/api/v1/alerts/{id}/feedback"),
        Some(json!({"false_alarm": true})),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("ai.limits"), "{e}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_alarm_resolves_the_alert_and_lowers_the_sensitivity() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "tank-1", "tank").await;
    // Ten minutes of a quiet level, then a jump that holds.
    let n: i64 = 900;
    let t0 = sentio_core::time::now_ms() - n * 1_000;
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let v = if i < 600 { 50.0 } else { 80.0 } + wobble(i);
            json!({"ts": t0 + i * 1_000, "level": v})
        })
        .collect();
    post_all(&node, "tank-1", &secret, &items).await;
    let alert = wait_for_kind(&node, "tank-1", "anomaly", 30).await;
    let id = alert["id"].as_i64().unwrap();

    // Bad requests get clear errors and change nothing.
    for (path, body, status) in [
        (
            "/api/v1/alerts/abc/feedback",
            json!({"false_alarm": true}),
            400,
        ),
        (
            "/api/v1/alerts/999999/feedback",
            json!({"false_alarm": true}),
            404,
        ),
        (
            &format!("/api/v1/alerts/{id}/feedback") as &str,
            json!({"false": 1}),
            422,
        ),
    ] {
        let (st, e) = api(&node, "POST", path, Some(body)).await;
        assert_eq!(st, status, "{path}: {e}");
        assert!(e["error"].is_string(), "{e}");
    }
    let (st, e) = api(&node, "GET", "/api/v1/alerts/999999", None).await;
    assert_eq!(st, 404, "{e}");

    let (st, r) = api(
        &node,
        "POST",
        &format!("/api/v1/alerts/{id}/feedback"),
        Some(json!({"false_alarm": true, "note": "tank was refilled"})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let effect = r["effect"].as_str().unwrap();
    assert!(effect.contains("less sensitive"), "{effect}");
    assert_eq!(r["alert"]["state"], "resolved", "{r}");

    let (st, a) = api(&node, "GET", &format!("/api/v1/alerts/{id}"), None).await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["state"], "resolved");
    assert_eq!(a["feedback"]["false_alarm"], true);
    assert_eq!(a["feedback"]["note"], "tank was refilled");
    assert_eq!(a["feedback"]["effect"], effect);

    let (st, e) = api(
        &node,
        "POST",
        &format!("/api/v1/alerts/{id}/feedback"),
        Some(json!({"false_alarm": true})),
    )
    .await;
    assert_eq!(st, 409, "{e}");

    // The lowered sensitivity is kept with the detector's state across a restart.
    node.shutdown().await;
    let node = start(dir.path()).await;
    let (st, a) = api(&node, "GET", &format!("/api/v1/alerts/{id}"), None).await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["feedback"]["false_alarm"], true);
    let (st, e) = api(
        &node,
        "POST",
        &format!("/api/v1/alerts/{id}/feedback"),
        Some(json!({"false_alarm": true})),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_falls_silent_is_alerted_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "meter-1", "meter").await;
    // A live device reporting every 200 ms.
    for i in 0..15 {
        post_all(
            &node,
            "meter-1",
            &secret,
            &[json!({"power": 100.0 + i as f64})],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        alerts_of(&node, "meter-1").await.is_empty(),
        "no alert while it reports"
    );
    // Silent: the threshold is max(6 intervals, 1 interval + 10 s) = about 10.2 s.
    let silent = wait_for_kind(&node, "meter-1", "silence", 20).await;
    assert_eq!(silent["metric"], "*");
    assert_eq!(silent["state"], "open");
    assert_eq!(silent["explanation"]["detector"], "cadence");
    let observed = silent["explanation"]["observed"].as_f64().unwrap();
    assert!(observed > 10.0, "{silent}");
    assert!(
        silent["explanation"]["message"]
            .as_str()
            .unwrap()
            .contains("usually reports every"),
        "{silent}"
    );
    // It reports again: the silence alert resolves.
    post_all(&node, "meter-1", &secret, &[json!({"power": 120.0})]).await;
    let id = silent["id"].as_i64().unwrap();
    let resolved = eventually(10, || async {
        let (_, a) = api(&node, "GET", &format!("/api/v1/alerts/{id}"), None).await;
        (a["state"] == "resolved").then_some(a)
    })
    .await;
    assert!(resolved.is_some(), "the silence alert resolves");
    node.shutdown().await;
}

/// A tiny seeded generator in [-0.5, 0.5).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_between_metrics_and_peers_of_a_kind_are_watched() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let pumps = ["pump-1", "pump-2", "pump-3", "pump-4"];
    let mut secrets = Vec::new();
    for p in pumps {
        secrets.push(register(&node, p, "pump").await);
    }
    // Each pump's current and vibration follow its own wandering load; the casing temperature
    // of all four follows the hall's shared swing of ±3 °C with a fixed offset per pump.
    let offsets = [0.0, 1.5, -0.8, 0.4];
    let (warm, fault) = (1_500i64, 120i64);
    let t0 = sentio_core::time::now_ms() - (warm + fault) * 1_000;
    let mut seed = 7u64;
    let mut loads = [1.0f64; 4];
    let mut batches: Vec<Vec<Value>> = vec![Vec::new(); 4];
    for t in 0..warm + fault {
        let shared = 21.0 + 3.0 * (t as f64 / 300.0).sin();
        for i in 0..4 {
            loads[i] = (loads[i] + 0.05 * lcg(&mut seed)).clamp(0.6, 1.4);
            let mut current = 12.0 * loads[i] + 0.05 * lcg(&mut seed);
            let vibration = 2.0 * loads[i] + 0.02 * lcg(&mut seed);
            let mut casing = shared + offsets[i] + 0.1 * lcg(&mut seed);
            if i == 3 && t >= warm {
                // pump-4: current rises 10 % without the vibration that should go with it,
                // and its casing runs 0.8 °C warmer than usual next to its peers.
                current *= 1.1;
                casing += 0.8;
            }
            batches[i].push(json!({
                "ts": t0 + t * 1_000,
                "motor_current": current,
                "vibration_rms": vibration,
                "casing_temp": casing,
            }));
        }
        // Interleave the pumps five seconds at a time, close to how live devices arrive (peers
        // are compared on their latest readings).
        if t % 5 == 4 || t == warm + fault - 1 {
            for i in 0..4 {
                let items = std::mem::take(&mut batches[i]);
                post_all(&node, pumps[i], &secrets[i], &items).await;
            }
        }
    }

    let relation = wait_for_kind(&node, "pump-4", "relation", 30).await;
    let metric = relation["metric"].as_str().unwrap();
    assert!(
        metric == "motor_current~vibration_rms" || metric == "vibration_rms~motor_current",
        "{relation}"
    );
    assert!(
        relation["opened_ms"].as_i64().unwrap() >= t0 + warm * 1_000,
        "{relation}"
    );
    let contributors = relation["explanation"]["contributors"].as_array().unwrap();
    assert_eq!(contributors.len(), 2, "{relation}");
    assert!(
        relation["explanation"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer move together"),
        "{relation}"
    );

    let peer = wait_for_kind(&node, "pump-4", "peer", 10).await;
    assert_eq!(peer["metric"], "casing_temp", "{peer}");
    assert!(
        peer["opened_ms"].as_i64().unwrap() >= t0 + warm * 1_000,
        "{peer}"
    );
    assert!(
        peer["explanation"]["message"]
            .as_str()
            .unwrap()
            .contains("peers of kind pump"),
        "{peer}"
    );

    // A batch that opens and then escalates an alert stores it once.
    let all = alerts_of(&node, "pump-4").await;
    let mut seen = std::collections::HashSet::new();
    for a in &all {
        let key = (
            a["metric"].to_string(),
            a["explanation"]["kind"].to_string(),
            a["opened_ms"].as_i64(),
        );
        assert!(seen.insert(key), "stored twice: {a}");
    }

    // The healthy pumps raised no relation or peer alert.
    for p in &pumps[..3] {
        let noisy: Vec<Value> = alerts_of(&node, p)
            .await
            .into_iter()
            .filter(|a| {
                a["explanation"]["kind"] == "relation" || a["explanation"]["kind"] == "peer"
            })
            .collect();
        assert!(noisy.is_empty(), "{p}: {noisy:?}");
    }
    node.shutdown().await;
}
