//! Rules that read the time of day: on a node whose `[rules] time_zone` is `Asia/Kolkata`
//! (UTC+5:30, no summer time), a rule naming the point's local hour, minute and weekday fires,
//! and one naming the same instant's UTC hour and minute does not.

use serde_json::json;

use crate::support::*;

const DEVICE: &str = "room-9";
const KOLKATA_MIN: i64 = 5 * 60 + 30;

/// (hour, minute, weekday with 1 = Monday) of `ts_ms` shifted by `offset_min`.
fn local(ts_ms: i64, offset_min: i64) -> (i64, i64, i64) {
    let minutes = ts_ms.div_euclid(60_000) + offset_min;
    let of_day = minutes.rem_euclid(1_440);
    // 1970-01-01 was a Thursday (4).
    let weekday = (minutes.div_euclid(1_440) + 3).rem_euclid(7) + 1;
    (of_day / 60, of_day % 60, weekday)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_reads_the_points_local_time_in_the_configured_zone() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.rules.time_zone = "Asia/Kolkata".into()).await;
    let secret = register(&node, DEVICE, "room").await;
    let ts = now_ms();
    let (h, m, wd) = local(ts, KOLKATA_MIN);
    let (uh, um, _) = local(ts, 0);
    for (id, condition) in [
        (
            "kolkata-now",
            format!("hour == {h} && minute == {m} && weekday == {wd} && temp > 0.0"),
        ),
        (
            "utc-now",
            format!("hour == {uh} && minute == {um} && temp > 0.0"),
        ),
    ] {
        let rule = json!({"id": id, "name": id, "selector": {"devices": [DEVICE], "metrics": ["temp"]},
            "condition": condition});
        let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
        assert_eq!(st, 201, "{body}");
    }
    let (st, body) =
        post_telemetry(&node, DEVICE, &secret, &[json!({"ts": ts, "temp": 21.5})]).await;
    assert_eq!(st, 200, "{body}");
    let fired = eventually(20, || async {
        let alerts = alerts_of(&node, DEVICE).await;
        alerts
            .iter()
            .any(|a| a["metric"] == "rule/kolkata-now")
            .then_some(alerts)
    })
    .await
    .expect("the rule naming the point's Kolkata time fires");
    assert!(
        !fired.iter().any(|a| a["metric"] == "rule/utc-now"),
        "the same instant's UTC time is not the zone's: {fired:?}"
    );
    node.shutdown().await;
}
