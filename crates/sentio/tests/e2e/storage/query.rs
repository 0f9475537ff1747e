//! Device labels, `POST /api/v1/query` over several series (by id or label selector),
//! the `rate` aggregate, and the late-point window (late points merged into sealed chunks,
//! older ones refused with a reason), all through the front door.

use crate::support::*;
use serde_json::{Value, json};

async fn create(node: &sentio::node::Node, id: &str, labels: Value) -> String {
    let (st, b) = api(
        node,
        "POST",
        "/api/v1/devices",
        Some(json!({"id": id, "kind": "meter", "labels": labels})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    b["secret"].as_str().unwrap().to_string()
}

async fn post_points(node: &sentio::node::Node, id: &str, secret: &str, items: &[Value]) -> Value {
    let mut last = Value::Null;
    for part in items.chunks(2_000) {
        let (st, b) = post_telemetry(node, id, secret, part).await;
        assert_eq!(st, 200, "{b}");
        last = b;
    }
    last
}

async fn query(node: &sentio::node::Node, body: Value) -> (u16, Value) {
    api(node, "POST", "/api/v1/query", Some(body)).await
}

fn pts(series: &Value) -> Vec<(i64, f64)> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

fn names(r: &Value) -> Vec<(String, String)> {
    r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["device"].as_str().unwrap().to_string(),
                s["metric"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_set_at_creation_changed_by_patch_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    create(&node, "m-1", json!({"site": "plant-a", "line": "2"})).await;
    let (_, d) = api(&node, "GET", "/api/v1/devices/m-1", None).await;
    assert_eq!(d["labels"], json!({"site": "plant-a", "line": "2"}));

    // PATCH: set one, remove one, add one, rename; the rest is kept.
    let (st, d) = api(
        &node,
        "PATCH",
        "/api/v1/devices/m-1",
        Some(
            json!({"name": "Meter one", "labels": {"site": "plant-b", "line": null, "floor": "1"}}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["labels"], json!({"site": "plant-b", "floor": "1"}));
    let (_, d) = api(&node, "GET", "/api/v1/devices/m-1", None).await;
    assert_eq!(d["labels"], json!({"site": "plant-b", "floor": "1"}));
    assert_eq!(d["name"], "Meter one");
    let (_, list) = api(&node, "GET", "/api/v1/devices", None).await;
    assert_eq!(list["devices"][0]["labels"]["site"], "plant-b");

    // Refusals, each with a reason; nothing changed by them.
    for (path, body, status, says) in [
        (
            "/api/v1/devices/m-1",
            json!({"labels": {"bad key": "x"}}),
            400,
            "label key",
        ),
        ("/api/v1/devices/m-1", json!({"kind": "pump"}), 400, "kind"),
        ("/api/v1/devices/m-1", json!({}), 400, "nothing to change"),
        (
            "/api/v1/devices/m-1",
            json!({"labels": {"a": 1}}),
            422,
            "labels",
        ),
        (
            "/api/v1/devices/nobody",
            json!({"labels": {"a": "b"}}),
            404,
            "nobody",
        ),
    ] {
        let (st, b) = api(&node, "PATCH", path, Some(body.clone())).await;
        assert_eq!(st, status, "{body} -> {b}");
        assert!(b["detail"].as_str().unwrap().contains(says), "{b}");
    }
    let (st, b) = api(
        &node,
        "POST",
        "/api/v1/devices",
        Some(json!({"id": "m-2", "labels": {"site": "x\ny"}})),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    let (_, d) = api(&node, "GET", "/api/v1/devices/m-1", None).await;
    assert_eq!(d["labels"], json!({"site": "plant-b", "floor": "1"}));

    // Labels survive a restart (they live in the registry).
    node.shutdown().await;
    let node = start(dir.path()).await;
    let (_, d) = api(&node, "GET", "/api/v1/devices/m-1", None).await;
    assert_eq!(d["labels"], json!({"site": "plant-b", "floor": "1"}));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_answers_several_series_by_id_or_label_selector() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let a1 = create(&node, "a-1", json!({"site": "plant-a", "line": "1"})).await;
    let a2 = create(&node, "a-2", json!({"site": "plant-a", "line": "2"})).await;
    let b1 = create(&node, "b-1", json!({"site": "plant-b"})).await;

    // Ten minutes of 1 s points: `energy` counts up (a counter), `temp` wobbles.
    let t0 = (now_ms() - 3_600_000) / 60_000 * 60_000;
    let n = 600i64;
    let items = |k: f64| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"ts": t0 + i * 1000, "energy": k * i as f64, "temp": 20.0 + k + (i % 7) as f64}))
            .collect()
    };
    post_points(&node, "a-1", &a1, &items(1.0)).await;
    post_points(&node, "b-1", &b1, &items(3.0)).await;
    // a-2 over MQTT, QoS 1 (acknowledged once stored).
    let (client, mut el) = mqtt_connect(&node, "a-2", "a-2", &a2).await.unwrap();
    for part in items(2.0).chunks(200) {
        publish_acked(
            &client,
            &mut el,
            "devices/a-2/telemetry",
            serde_json::to_vec(part).unwrap(),
        )
        .await
        .unwrap();
    }
    let (from, to) = (t0, t0 + n * 1000);

    // By label selector: plant-a's two devices, one metric, raw.
    let (st, r) = query(
        &node,
        json!({"devices": {"labels": {"site": "plant-a"}}, "metrics": ["temp"], "from": from, "to": to}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        names(&r),
        [("a-1".into(), "temp".into()), ("a-2".into(), "temp".into())]
    );
    let a2_temp = pts(&r["series"][1]);
    assert_eq!(a2_temp.len(), n as usize);
    assert_eq!(a2_temp[3], (t0 + 3000, 25.0));

    // By ids, two metrics, with the `rate` aggregate per minute: the counter's slope per
    // second, and the same answer as the single-series endpoint.
    let (st, r) = query(
        &node,
        json!({"devices": {"ids": ["b-1", "a-1"]}, "metrics": ["energy", "temp"],
               "from": sentio_core::time::format_time(from), "to": to, "step": "1m", "agg": "rate"}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        names(&r),
        [
            ("b-1".into(), "energy".into()),
            ("b-1".into(), "temp".into()),
            ("a-1".into(), "energy".into()),
            ("a-1".into(), "temp".into())
        ]
    );
    let rate = pts(&r["series"][0]);
    assert_eq!(rate.len(), 10, "{r}");
    assert!(
        rate.iter().all(|&(_, v)| (v - 3.0).abs() < 1e-9),
        "{rate:?}"
    );
    assert_eq!(pts(&r["series"][2])[0], (t0, 1.0));
    let (st, one) = api(
        &node,
        "GET",
        &format!("/api/v1/devices/b-1/series/energy?from={from}&to={to}&step=1m&agg=rate"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(pts(&one), rate);

    // Every metric of the selected devices when `metrics` is left out; chart drawing with
    // `points`; pagination per series with `limit`.
    let (st, r) = query(
        &node,
        json!({"devices": {"labels": {"site": "plant-b"}}, "from": from, "to": to, "points": 50}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        names(&r),
        [
            ("b-1".into(), "energy".into()),
            ("b-1".into(), "temp".into())
        ]
    );
    let drawn = pts(&r["series"][0]);
    assert!(drawn.len() <= 50 && drawn.len() >= 40, "{}", drawn.len());
    assert_eq!(drawn[0], (t0, 0.0));
    let (st, r) = query(
        &node,
        json!({"devices": {"ids": ["a-1"]}, "metrics": ["energy"], "from": from, "to": to, "limit": 100}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(pts(&r["series"][0]).len(), 100);
    assert_eq!(r["series"][0]["next"], t0 + 100_000);

    // A selector matching nothing, and a metric a device does not have: empty, not errors.
    let (st, r) = query(
        &node,
        json!({"devices": {"labels": {"site": "moon"}}, "metrics": ["temp"]}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["series"], json!([]));
    let (st, r) = query(
        &node,
        json!({"devices": {"ids": ["a-1"]}, "metrics": ["nope"], "from": from}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["series"][0]["points"], json!([]));

    // Bad bodies: 400 with a reason (unknown devices: 404).
    let many: Vec<String> = (0..101).map(|i| format!("d-{i}")).collect();
    for (body, status, says) in [
        (json!({"metrics": ["temp"]}), 400, "devices"),
        (
            json!({"devices": {"ids": ["a-1"], "labels": {"site": "plant-a"}}}),
            400,
            "exactly one",
        ),
        (json!({"devices": {}}), 400, "exactly one"),
        (json!({"devices": {"ids": []}}), 400, "empty"),
        (json!({"devices": {"ids": many}}), 400, "at most 100"),
        (json!({"devices": {"ids": ["a-1", "ghost"]}}), 404, "ghost"),
        (
            json!({"devices": {"ids": ["a-1"]}, "step": "1m", "agg": "median"}),
            400,
            "rate",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "agg": "avg"}),
            400,
            "needs a `step`",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "step": "1m", "points": 10}),
            400,
            "cannot be combined",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "from": 10, "to": 5}),
            400,
            "after",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "from": "yesterday"}),
            400,
            "from",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "metrics": ["a/b"]}),
            400,
            "invalid",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "limit": 2_000_000}),
            400,
            "limit",
        ),
        (
            json!({"devices": {"ids": ["a-1"]}, "colour": "red"}),
            400,
            "unknown field",
        ),
    ] {
        let (st, b) = query(&node, body.clone()).await;
        assert_eq!(st, status, "{body} -> {b}");
        assert!(
            b["detail"].as_str().unwrap().contains(says),
            "{body} -> {b}"
        );
    }
    // More than 100 series through a selector: 3 devices × 40 metrics.
    let metrics: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let (st, b) = query(
        &node,
        json!({"devices": {"labels": {"site": "plant-a"}}, "metrics": metrics}),
    )
    .await;
    assert_eq!(st, 200, "80 series are allowed: {b}");
    let metrics: Vec<String> = (0..51).map(|i| format!("m{i}")).collect();
    let (st, b) = query(
        &node,
        json!({"devices": {"labels": {"site": "plant-a"}}, "metrics": metrics}),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("more than 100 series"),
        "{b}"
    );
    node.shutdown().await;
}

/// Points of `late-1`'s series `v` at `ts` still waiting to be sealed, asked through the
/// store's traits of a store opened beside the node on its data directory.
async fn unsealed(data: &std::path::Path, ts: i64) -> u64 {
    use sentio_store::Maintenance;
    let store = sentio_store::SqliteStore::open(data).unwrap();
    let device = sentio_core::DeviceId::parse("late-1").unwrap();
    store
        .unsealed_points(&device, "v", ts, ts + 1)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_points_inside_the_window_merge_into_sealed_chunks_and_older_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.pipeline.late_window = sentio::config::SpanOrNone(Some(3 * 3_600_000))
    })
    .await;
    let secret = create(&node, "late-1", json!({})).await;

    // Two hours of 1 s points with every other second missing, ending now: the node's sealer
    // (every 5 s) puts all but the newest 10 minutes into chunks.
    let t0 = (now_ms() - 2 * 3_600_000) / 1000 * 1000;
    let items: Vec<Value> = (0..3_600i64)
        .map(|i| json!({"ts": t0 + i * 2000, "v": i as f64}))
        .collect();
    post_points(&node, "late-1", &secret, &items).await;
    let (dup_ts, new_ts) = (t0 + 1000 * 2000, t0 + 1000 * 2000 + 1000);
    let sealed = eventually(60, || async {
        (unsealed(dir.path(), dup_ts).await == 0).then_some(())
    })
    .await;
    assert!(sealed.is_some(), "the sealer sealed the first hours");

    // A late duplicate (replaces the value) and a late point between two sealed ones, over
    // MQTT; acknowledged once stored, and read back at once, merged with the chunk.
    let (client, mut el) = mqtt_connect(&node, "late-1", "late-1", &secret)
        .await
        .unwrap();
    let late = json!([{"ts": dup_ts, "v": -1.0}, {"ts": new_ts, "v": -2.0}]);
    publish_acked(
        &client,
        &mut el,
        "devices/late-1/telemetry",
        late.to_string().into_bytes(),
    )
    .await
    .unwrap();
    let (st, r) = query(
        &node,
        json!({"devices": {"ids": ["late-1"]}, "metrics": ["v"], "from": dup_ts - 2000, "to": dup_ts + 4001}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let want = vec![
        (dup_ts - 2000, 999.0),
        (dup_ts, -1.0),
        (new_ts, -2.0),
        (dup_ts + 2000, 1001.0),
        (dup_ts + 4000, 1002.0),
    ];
    assert_eq!(pts(&r["series"][0]), want);

    // The sealer merges them into the chunk (no head rows left), and the answer stays.
    let merged = eventually(60, || async {
        let a = unsealed(dir.path(), dup_ts).await;
        let b = unsealed(dir.path(), new_ts).await;
        (a == 0 && b == 0).then_some(())
    })
    .await;
    assert!(merged.is_some(), "late points merged into the sealed chunk");
    let (_, r) = query(
        &node,
        json!({"devices": {"ids": ["late-1"]}, "metrics": ["v"], "from": dup_ts - 2000, "to": dup_ts + 4001}),
    )
    .await;
    assert_eq!(pts(&r["series"][0]), want);
    let (_, all) = query(
        &node,
        json!({"devices": {"ids": ["late-1"]}, "metrics": ["v"], "from": t0, "step": "1d", "agg": "count"}),
    )
    .await;
    let total: f64 = pts(&all["series"][0]).iter().map(|p| p.1).sum();
    assert_eq!(total, 3_601.0, "every point once: {all}");

    // Beyond the window: refused with the reason, over HTTP (422 when nothing is left, the
    // reason listed beside what was accepted otherwise) and recorded on the device.
    let too_old = now_ms() - 3 * 3_600_000 - 60_000;
    let (st, b) = http(
        "POST",
        format!("http://{}/api/v1/devices/late-1/telemetry", node.http_addr),
        basic("late-1", &secret),
        Some(json!({"ts": too_old, "v": 5.0}).to_string().into_bytes()),
    )
    .await;
    assert_eq!(st, 422, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("late-point window"),
        "{b}"
    );
    let b = post_points(
        &node,
        "late-1",
        &secret,
        &[
            json!({"ts": too_old, "v": 5.0}),
            json!({"ts": now_ms() - 1000, "v": 6.0}),
        ],
    )
    .await;
    assert_eq!(b["accepted"], 1, "{b}");
    assert!(
        b["rejected"][0]
            .as_str()
            .unwrap()
            .contains("older than the late-point window (10800 s)"),
        "{b}"
    );
    // Over MQTT: the refusal lands in the device's rejection log, the point nowhere.
    let before = api(&node, "GET", "/api/v1/devices/late-1", None).await.1["rejected_count"]
        .as_u64()
        .unwrap();
    publish_acked(
        &client,
        &mut el,
        "devices/late-1/telemetry",
        json!({"ts": too_old + 1, "v": 7.0})
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();
    let (_, d) = api(&node, "GET", "/api/v1/devices/late-1", None).await;
    assert_eq!(d["rejected_count"].as_u64().unwrap(), before + 1, "{d}");
    assert!(
        d["last_rejection"]["reason"]
            .as_str()
            .unwrap()
            .contains("late-point window"),
        "{d}"
    );
    let (_, r) = query(
        &node,
        json!({"devices": {"ids": ["late-1"]}, "metrics": ["v"], "from": too_old - 10, "to": too_old + 10}),
    )
    .await;
    assert_eq!(r["series"][0]["points"], json!([]));
    node.shutdown().await;
}

/// A range from the earliest time there is (`from=i64::MIN`) or to the latest answers the
/// points in it, raw, in steps and drawn for a chart, instead of overflowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_from_the_earliest_time_answers_its_points() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = create(&node, "far-1", json!({})).await;
    let t0 = now_ms() / 60_000 * 60_000 - 10 * 60_000;
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"ts": t0 + i * 60_000, "v": i as f64}))
        .collect();
    post_points(&node, "far-1", &secret, &items).await;
    let (min, max) = (i64::MIN, i64::MAX);
    for (q, want) in [
        (format!("from={min}&to={max}"), 10),
        (format!("from={min}"), 10),
        (format!("from={min}&to={max}&step=1m&agg=count"), 10),
        (format!("from={min}&to={max}&step=1h&agg=sum"), 1),
        (format!("from={min}&to={max}&points=100"), 10),
        (format!("from={min}&to={max}&points=2"), 2),
    ] {
        let path = format!("/api/v1/devices/far-1/series/v?{q}");
        let (st, b) = api(&node, "GET", &path, None).await;
        assert_eq!(st, 200, "{q}: {b}");
        let n = b["points"].as_array().unwrap().len();
        assert!(
            n == want || (q.contains("step=1h") && n == 2),
            "{q}: {n} points, wanted {want}: {b}"
        );
    }
    let (st, b) = query(
        &node,
        json!({"devices": {"ids": ["far-1"]}, "from": min, "to": max, "step": "1m", "agg": "max"}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(pts(&b["series"][0]).len(), 10, "{b}");
    node.shutdown().await;
}
