//! Retention through the API (`/api/v1/retention`), rollups answering a range whose
//! raw points expired (with `"resolution"` in the answer), and the store's size and budget in
//! `/api/v1/storage` and `/metrics`. The node's own maintenance loop (every 5 s, real time)
//! does the work; the test waits for it with `eventually`.

use crate::support::*;
use serde_json::{Value, json};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_set_per_kind_and_device_and_rollups_answer_where_raw_expired() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.store.disk_budget = Some(sentio::config::ByteSize(50_000_000_000))
    })
    .await;

    let (st, p) = api(&node, "GET", "/api/v1/retention", None).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        p,
        json!({"global": "7d", "kinds": {}, "devices": {}, "rollups": {"1m": "90d", "1h": "730d"}})
    );
    // Kinds and devices of a policy are registered ones.
    register(&node, "pump-1", "pump").await;
    let policy = json!({"global": "2d", "kinds": {"pump": "30d"}, "devices": {"pump-1": "90d"}});
    let (st, p) = api(&node, "PUT", "/api/v1/retention", Some(policy)).await;
    assert_eq!(st, 200, "{p}");
    let (_, p) = api(&node, "GET", "/api/v1/retention", None).await;
    assert_eq!(
        p,
        json!({"global": "2d", "kinds": {"pump": "30d"}, "devices": {"pump-1": "90d"},
               "rollups": {"1m": "90d", "1h": "730d"}})
    );
    for bad in [
        json!({"global": "soon"}),
        json!({"global": "0d"}),
        json!({"rollups": {"5m": "10d"}}),
        json!({"devices": {"pump-1": "800d"}}),
        json!({"global": "7d", "forever": true}),
    ] {
        let (st, b) = api(&node, "PUT", "/api/v1/retention", Some(bad.clone())).await;
        assert!(st == 400 || st == 422, "{bad}: {st} {b}");
        assert!(b["detail"].is_string(), "{b}");
    }

    // A room (global 2 days) and a pump (its kind: 30 days), each with two hours of points 5 days
    // ago (inside the default 7-day late window, beyond the room's 2 days) at one a minute, and
    // one point now.
    let now = sentio_core::time::now_ms();
    let old = (now - 5 * DAY) / HOUR * HOUR;
    for (id, kind) in [("room-1", "room"), ("pump-2", "pump")] {
        let secret = register(&node, id, kind).await;
        let mut batch: Vec<Value> = (0..120)
            .map(|i| json!({"ts": old + i * MIN, "t": i as f64}))
            .collect();
        batch.push(json!({"ts": now, "t": 1.0}));
        let (st, b) = http(
            "POST",
            format!("http://{}/api/v1/devices/{id}/telemetry", node.http_addr),
            basic(id, &secret),
            Some(json!(batch).to_string().into_bytes()),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }
    let series = |id: &str, q: &str| {
        format!(
            "/api/v1/devices/{id}/series/t?from={old}&to={}&{q}",
            old + 2 * HOUR
        )
    };
    // The room's old raw points expire; its hours are answered from the rollups.
    let hours = eventually(60, || async {
        let (_, raw) = api(&node, "GET", &series("room-1", "limit=1000"), None).await;
        if !raw["points"].as_array()?.is_empty() {
            return None;
        }
        let (st, b) = api(&node, "GET", &series("room-1", "step=1h&agg=count"), None).await;
        assert_eq!(st, 200, "{b}");
        Some(b)
    })
    .await
    .expect("the room's raw points expire within a minute");
    assert_eq!(hours["resolution"], "1h", "{hours}");
    assert_eq!(hours["points"], json!([[old, 60.0], [old + HOUR, 60.0]]));
    let (_, sum) = api(&node, "GET", &series("room-1", "step=30m&agg=sum"), None).await;
    assert_eq!(sum["resolution"], "1m", "{sum}");
    let want: Vec<Value> = (0..4)
        .map(|k| {
            json!([
                old + k * 30 * MIN,
                (k * 30..k * 30 + 30).sum::<i64>() as f64
            ])
        })
        .collect();
    assert_eq!(sum["points"], json!(want));
    let (_, chart) = api(&node, "GET", &series("room-1", "points=20"), None).await;
    assert_eq!(chart["resolution"], "1m", "{chart}");
    let values: Vec<f64> = chart["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert!(values.contains(&0.0) && values.contains(&119.0), "{chart}");

    // The export holds the rollups (all that is left of the old points).
    let (st, ct, text) = get_text(
        format!("http://{}/api/v1/devices/room-1/export", node.http_addr),
        bearer(),
    )
    .await;
    assert_eq!(st, 200, "{text}");
    assert!(
        ct.starts_with("application/x-ndjson") || ct.contains("json"),
        "{ct}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hour_rows: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["type"] == "rollup"
                && l["resolution"] == "1h"
                && l["bucket_ms"].as_i64() < Some(now - DAY)
        })
        .collect();
    assert_eq!(hour_rows.len(), 2, "{text}");
    assert_eq!(hour_rows[0]["count"], 60);
    assert_eq!(hour_rows[0]["metric"], "t");
    assert!(
        !lines
            .iter()
            .any(|l| l["type"] == "point" && l["ts_ms"].as_i64() < Some(now - DAY))
    );

    // The pump's kind keeps 30 days: its raw points are still there, answered raw.
    let (_, raw) = api(&node, "GET", &series("pump-2", "limit=1000"), None).await;
    assert_eq!(raw["points"].as_array().unwrap().len(), 120);
    let (_, agg) = api(&node, "GET", &series("pump-2", "step=1h&agg=count"), None).await;
    assert_eq!(agg["resolution"], "raw");
    assert_eq!(agg["points"], json!([[old, 60.0], [old + HOUR, 60.0]]));

    // The store's size against its budget.
    let (st, s) = api(&node, "GET", "/api/v1/storage", None).await;
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["budget_bytes"], 50_000_000_000u64);
    assert_eq!(
        (s["over_budget"].clone(), s["disk_full"].clone()),
        (json!(false), json!(false))
    );
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!(metric_value(&node, "sentio_store_bytes").await > 0);
    assert_eq!(
        metric_value(&node, "sentio_store_budget_bytes").await,
        50_000_000_000
    );
    assert_eq!(metric_value(&node, "sentio_store_over_budget").await, 0);
    node.shutdown().await;

    // The policy is kept in the store; a configured global retention replaces its global part.
    let restart = |raw_days: i64| {
        start_with(dir.path(), move |c| {
            c.store.retention.raw = Some(sentio::config::Span(raw_days * DAY))
        })
    };
    let node = restart(3).await;
    let (_, p) = api(&node, "GET", "/api/v1/retention", None).await;
    assert_eq!(p["global"], "3d");
    assert_eq!(p["kinds"], json!({"pump": "30d"}));
    assert_eq!(metric_value(&node, "sentio_store_budget_bytes").await, 0);
    // A retention changed through the API is kept across restarts with the same configuration...
    let (st, _) = api(
        &node,
        "PUT",
        "/api/v1/retention",
        Some(json!({"global": "5d", "kinds": {"pump": "30d"}})),
    )
    .await;
    assert_eq!(st, 200);
    node.shutdown().await;
    let node = restart(3).await;
    let (_, p) = api(&node, "GET", "/api/v1/retention", None).await;
    assert_eq!(
        p["global"], "5d",
        "the configuration overwrote the API's change"
    );
    node.shutdown().await;
    // ...until the configured value changes.
    let node = restart(4).await;
    let (_, p) = api(&node, "GET", "/api/v1/retention", None).await;
    assert_eq!(p["global"], "4d");
    assert_eq!(p["kinds"], json!({"pump": "30d"}));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn careless_retention_is_refused_and_the_units_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    register(&node, "pump-1", "pump").await;
    let room = register(&node, "room-1", "room").await;
    // A hundred points of the last ten minutes: a raw retention of a minute would delete most.
    let now = now_ms();
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"ts": now - 600_000 + i * 6_000, "t": i as f64}))
        .collect();
    assert_eq!(post_telemetry(&node, "room-1", &room, &items).await.0, 200);

    let units = "m (minutes)";
    let cases = [
        // (body, status, words the answer holds)
        (
            json!({"global": "1ms"}),
            400,
            vec!["1 millisecond", "force", units],
        ),
        (
            json!({"global": "1m"}),
            400,
            vec![
                "1m is 1 minute",
                "below the floor of 1h",
                "months are not a unit: write 30d",
            ],
        ),
        (json!({"global": "59m"}), 400, vec!["59 minutes", "force"]),
        (json!({"global": "3599s"}), 400, vec!["floor"]),
        (
            json!({"kinds": {"pump": "30m"}}),
            400,
            vec!["kind \"pump\"", "30 minutes"],
        ),
        (
            json!({"devices": {"pump-1": "10s"}}),
            400,
            vec!["device \"pump-1\"", "10 seconds"],
        ),
        (
            json!({"global": "1mo"}),
            400,
            vec!["1mo", units, "write 30d"],
        ),
        (json!({"global": "1M"}), 400, vec![units]),
        (json!({"global": "1m", "force": "yes"}), 422, vec![]),
        (
            json!({"devices": {"pump-9": "30d"}}),
            400,
            vec!["\"pump-9\" is not registered"],
        ),
        (
            json!({"kinds": {"pumps": "30d"}}),
            400,
            vec!["\"pumps\" is no registered device's kind", "pump, room"],
        ),
        (json!({"global": "1h"}), 200, vec![]),
        (json!({"global": "30m", "force": true}), 200, vec![]),
        (
            json!({"kinds": {"pump": "30d"}, "devices": {"room-1": "2d"}}),
            200,
            vec![],
        ),
    ];
    let mut accepted = json!(null);
    for (body, status, words) in cases {
        let (st, b) = api(&node, "PUT", "/api/v1/retention", Some(body.clone())).await;
        assert_eq!(st, status, "{body}: {b}");
        if st == 200 {
            accepted = b;
            continue;
        }
        let detail = b["detail"].as_str().unwrap_or_default();
        for w in words {
            assert!(detail.contains(w), "{body}: wanted {w:?} in {detail:?}");
        }
        // A refused policy changes nothing.
        let (_, now_policy) = api(&node, "GET", "/api/v1/retention", None).await;
        if !accepted.is_null() {
            assert_eq!(now_policy, accepted, "{body}");
        }
    }
    assert_eq!(accepted["devices"], json!({"room-1": "2d"}));
    assert_eq!(points(&node, "room-1", "t").await.len(), 100);
    node.shutdown().await;

    // The configuration keeps to the same floor.
    let mut config = node_config(dir.path());
    config.http.admin_token = Some(TOKEN.into());
    config.store.retention.raw = Some(sentio::config::Span(60_000));
    let Err(e) = try_start(config).await else {
        panic!("a raw retention of one minute in the configuration was accepted");
    };
    let said = format!("{e:#}");
    for w in [
        "store.retention.raw",
        "1m is 1 minute",
        "months are not a unit",
    ] {
        assert!(said.contains(w), "wanted {w:?} in {said}");
    }
}

/// A chart over a range whose start has expired draws each part from the finest tier that
/// holds it: the rollups where raw points expired, the raw points (exact times) where they
/// remain, even where those are rolled up as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_across_raw_expiry_draws_the_raw_points_that_remain() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (st, p) = api(
        &node,
        "PUT",
        "/api/v1/retention",
        Some(json!({"global": "2d"})),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    let secret = register(&node, "room-9", "room").await;
    let now = sentio_core::time::now_ms();
    let old = (now - 5 * DAY) / HOUR * HOUR;
    // Two old hours at one a minute (they expire), and 30 recent minutes at one every 7 s,
    // 20 to 50 minutes ago (rolled up as well as kept raw), with a spike off the minute grid.
    let recent = (now - 50 * MIN) / 1000 * 1000;
    let spike = recent + 1234 * 7_000 / 10 + 7;
    let mut batch: Vec<Value> = (0..120)
        .map(|i| json!({"ts": old + i * MIN, "t": i as f64}))
        .collect();
    batch.extend((0..(30 * 60 / 7)).map(|i| json!({"ts": recent + i * 7_000, "t": 50.0})));
    batch.push(json!({"ts": spike, "t": 999.0}));
    let (st, b) = http(
        "POST",
        format!("http://{}/api/v1/devices/room-9/telemetry", node.http_addr),
        basic("room-9", &secret),
        Some(json!(batch).to_string().into_bytes()),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let old_range = format!(
        "/api/v1/devices/room-9/series/t?from={old}&to={}&limit=1000",
        old + 2 * HOUR
    );
    // Expired old points, and the recent minutes rolled up.
    eventually(60, || async {
        let (_, raw) = api(&node, "GET", &old_range, None).await;
        if !raw["points"].as_array()?.is_empty() {
            return None;
        }
        let (_, rolled) = api(
            &node,
            "GET",
            &format!(
                "/api/v1/devices/room-9/series/t?from={old}&to={}&step=1m&agg=count",
                recent + 30 * MIN
            ),
            None,
        )
        .await;
        // The minute of the last recent point (whatever the second `recent` falls on).
        let last_point = recent + (30 * 60 / 7 - 1) * 7_000;
        let last = rolled["points"].as_array()?.last()?[0].as_i64()?;
        (rolled["resolution"] == "1m" && last >= last_point / MIN * MIN).then_some(())
    })
    .await
    .expect("the old raw points expire and the recent minutes are rolled up within a minute");
    for n in [100, 2000] {
        let chart = format!(
            "/api/v1/devices/room-9/series/t?from={old}&to={}&points={n}",
            now + MIN
        );
        let (st, chart) = api(&node, "GET", &chart, None).await;
        assert_eq!(st, 200, "{chart}");
        let pts: Vec<(i64, f64)> = chart["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        assert!(
            pts.contains(&(spike, 999.0)),
            "points={n}: the spike is not drawn at its time {spike}: {chart}"
        );
        assert!(
            pts.iter()
                .filter(|(t, _)| *t >= recent)
                .all(|(t, v)| ((t - recent) % 7_000 == 0 && *v == 50.0) || *t == spike),
            "points={n}: recent points not drawn raw: {chart}"
        );
        assert!(
            pts.iter().any(|&(t, v)| t < old + 2 * HOUR && v == 119.0),
            "points={n}: the expired part is not drawn from its rollups: {chart}"
        );
    }
    // From the earliest time there is, across the rollups: no overflow in their buckets.
    for q in ["step=1h&agg=count", "step=1m&agg=max", "points=100"] {
        let path = format!(
            "/api/v1/devices/room-9/series/t?from={}&to={}&{q}",
            i64::MIN,
            now + MIN
        );
        let (st, b) = api(&node, "GET", &path, None).await;
        assert_eq!(st, 200, "{q}: {b}");
        let values: Vec<f64> = b["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .collect();
        assert!(
            values.iter().any(|v| *v > 0.0) && values.len() >= 2,
            "{q}: {b}"
        );
    }
    node.shutdown().await;
}
