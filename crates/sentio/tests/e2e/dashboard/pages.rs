//! Every page in a real browser (`tests/browser/pages.mjs`): sign in with a name and a
//! password, the fleet with its filters and coalesced live updates, a device's charts with
//! pan, zoom and alert markers, its command console and twin editor (a 412 shown), the alerts
//! (acknowledge, comment, silence the device, resolve,
//! false alarm), a rule created by the operator, a reload keeping the session, and a viewer at a phone's width seeing no write
//! button and no horizontal scroll.

use serde_json::{Value, json};

use super::{add_user, node_with_hot_pump_rule, run_browser, shots_dir};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_and_uses_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_hot_pump_rule(dir.path()).await;
    // Three devices of two kinds at two sites, with half an hour of readings each; pump-1
    // crosses its declared limit and a rule's condition (two open alerts) and reports a text
    // state.
    let now = now_ms();
    let mut secrets = Vec::new();
    for (id, kind, site) in [
        ("pump-1", "pump", "plant-a"),
        ("pump-2", "pump", "plant-b"),
        ("room-1", "room", "plant-a"),
    ] {
        let secret = register(&node, id, kind).await;
        let (st, body) = api(
            &node,
            "PATCH",
            &format!("/api/v1/devices/{id}"),
            Some(json!({"labels": {"site": site}})),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        let items: Vec<Value> = (0..30)
            .map(|i| {
                let temp = if id == "pump-1" && i == 29 {
                    95.0
                } else {
                    50.0 + (i % 5) as f64
                };
                json!({"ts": now - (30 - i) * 60_000, "temp": temp, "load": i})
            })
            .collect();
        let (st, body) = post_telemetry(&node, id, &secret, &items).await;
        assert_eq!(st, 200, "{body}");
        secrets.push((id, secret));
    }
    let (st, body) = post_telemetry(
        &node,
        "pump-1",
        &secrets[0].1,
        &[json!({"state": "running"})],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    wait_for_kind(&node, "pump-1", "limit", 30).await;
    wait_for_kind(&node, "pump-1", "rule", 30).await;

    let operator = add_user(&node, "olga", "operator").await;
    let viewer = add_user(&node, "vic", "viewer").await;
    let shots = shots_dir("pages");
    let ran = run_browser(
        "pages.mjs",
        &[
            ("SENTIO_URL", format!("http://{}", node.http_addr)),
            ("SENTIO_OPERATOR", format!("olga:{operator}")),
            ("SENTIO_VIEWER", format!("vic:{viewer}")),
            ("SENTIO_DEVICE", format!("pump-1:{}", secrets[0].1)),
            ("SENTIO_SHOTS", shots.display().to_string()),
        ],
    )
    .await;
    if ran {
        println!("screenshots: {}", shots.display());
        // The false alarm given in the browser reached the server.
        let alerts = alerts_of(&node, "pump-1").await;
        assert!(
            alerts.iter().any(|a| a["feedback"]["false_alarm"] == true),
            "{alerts:?}"
        );
        // The limit alert was acknowledged, commented and resolved by olga, and her silence
        // of the device holds, with its reason.
        let held = alerts
            .iter()
            .find(|a| a["explanation"]["kind"] == "limit" && a["acknowledged"].is_object())
            .expect("the limit alert");
        assert_eq!(held["state"], "resolved", "{held}");
        assert!(
            held["acknowledged"]["by"]
                .as_str()
                .unwrap()
                .contains("olga"),
            "{held}"
        );
        assert!(
            held["resolved_by"].as_str().unwrap().contains("olga"),
            "{held}"
        );
        let (st, body) = api(
            &node,
            "GET",
            &format!("/api/v1/alerts/{}/comments", held["id"]),
            None,
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(
            body["comments"][0]["text"], "Valve stuck; a fitter is on the way.",
            "{body}"
        );
        let (st, body) = api(&node, "GET", "/api/v1/silences", None).await;
        assert_eq!(st, 200, "{body}");
        let silence = &body["silences"][0];
        assert_eq!(silence["selector"]["devices"], json!(["pump-1"]), "{body}");
        assert_eq!(silence["reason"], "valve maintenance", "{body}");
        assert_eq!(silence["active"], true, "{body}");
        // The command sent from the console expired; the twin holds the last desired saved
        // (the 412 in between changed nothing).
        let (st, body) = api(&node, "GET", "/api/v1/devices/pump-1/commands", None).await;
        assert_eq!(st, 200, "{body}");
        let cmd = &body["commands"][0];
        assert_eq!(cmd["name"], "set_valve", "{body}");
        assert_eq!(cmd["params"], json!({"open": false}), "{body}");
        assert_eq!(cmd["state"], "expired", "{body}");
        let (st, twin) = api(&node, "GET", "/api/v1/devices/pump-1/twin", None).await;
        assert_eq!(st, 200, "{twin}");
        assert_eq!(
            twin["desired"],
            json!({"setpoint": 22, "mode": "eco"}),
            "{twin}"
        );
        assert_eq!(twin["version"], 3, "{twin}");
        // The operator's rule, created on the rules page.
        let (st, rule) = api(&node, "GET", "/api/v1/rules/warm", None).await;
        assert_eq!(
            (st, &rule["condition"]),
            (200, &json!("temp > 80")),
            "{rule}"
        );
    }
    node.shutdown().await;
}
