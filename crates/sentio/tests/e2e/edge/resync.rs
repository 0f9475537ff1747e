//! Re-sync by hourly digests (`POST /api/v1/edges/<id>/resync`): real processes and the fault
//! proxy (see `uplink`). A device sends hours of a 1 Hz series to the edge with past
//! timestamps (so that the hours close on both sides within the test); once the cloud holds
//! them, a re-sync compares every hour and sends nothing. Then the cloud loses a range of the
//! series (stopped, rows deleted from its database file, restarted, as a lost disk region
//! would): a re-sync finds exactly the hours that lost points, sends their raw points again,
//! and afterwards the cloud holds every point of the edge once, and its hourly rollups agree
//! (a further re-sync finds nothing).
//!
//! An edge with the aggregates policy re-sends an hour as its minutes (replacing the cloud's
//! minutes of that hour) and the raw points around its alerts in it.
//!
//! `SENTIO_RESYNC_HOURS` (default 6) sets the hours sent, of which all but the first two and
//! the last two lose points: `SENTIO_RESYNC_HOURS=28` re-syncs a day (BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::{Value, json};

use crate::support::fault_proxy::Fault;
use crate::support::*;

use super::uplink::Pair;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const DEVICE: &str = "dev-0";
const METRIC: &str = "t";
/// Readings per message (the payload is a batch, under rumqttc's 10 KiB packet limit).
const PER_MESSAGE: i64 = 200;

fn hours() -> i64 {
    std::env::var("SENTIO_RESYNC_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(6)
        .max(6)
}

/// A sensor-like reading at `ts` (two decimals).
fn reading(ts: i64) -> f64 {
    let t = ts as f64 / 1_000.0;
    ((21.0 + 2.0 * (t / 900.0).sin() + 0.05 * (t * 7.3).sin()) * 100.0).round() / 100.0
}

/// Publishes `value` of every second of `[from, to)` as the edge's device and waits until the
/// edge acknowledged every message.
async fn publish(pair: &Pair, (from, to): (i64, i64), value: impl Fn(i64) -> f64) {
    let (client, acked) = pair.counted_device(DEVICE, 64).await;
    let mut messages = 0u64;
    let mut ts = from;
    while ts < to {
        let batch: Vec<Value> = (0..PER_MESSAGE)
            .map(|i| ts + i * 1_000)
            .filter(|t| *t < to)
            .map(|t| json!({"ts": t, METRIC: value(t)}))
            .collect();
        client
            .publish(
                format!("devices/{DEVICE}/telemetry"),
                QoS::AtLeastOnce,
                false,
                Value::Array(batch).to_string(),
            )
            .await
            .unwrap();
        messages += 1;
        ts += PER_MESSAGE * 1_000;
    }
    let all = eventually(60, || async {
        (acked.load(Ordering::Relaxed) >= messages).then_some(())
    })
    .await;
    assert!(all.is_some(), "the edge did not acknowledge every message");
}

/// Every point of the series, read a page at a time.
async fn series(http: &str) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    let mut from = 0i64;
    loop {
        let path = format!("/api/v1/devices/{DEVICE}/series/{METRIC}?from={from}&limit=50000");
        let (status, body) = api_at(http, "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        for p in body["points"].as_array().unwrap() {
            out.insert(p[0].as_i64().unwrap(), p[1].as_f64().unwrap());
        }
        match body["next"].as_i64() {
            Some(next) => from = next,
            None => return out,
        }
    }
}

/// Starts a re-sync (retried while the edge reconnects) and waits until it is done.
async fn resync(pair: &Pair) -> Value {
    let path = format!("/api/v1/edges/{}/resync", super::uplink::EDGE);
    let started = eventually(60, || async {
        let (status, body) = api_at(&pair.cloud_http, "POST", &path, None).await;
        (status == 202).then_some(body)
    })
    .await
    .expect("the cloud did not start a re-sync");
    assert_eq!(started["state"], "running", "{started}");
    let done = eventually(120, || async {
        let run = pair.cloud_edge().await["resync"].clone();
        (run["id"] == started["id"] && run["state"] != "running").then_some(run)
    })
    .await;
    let Some(run) = done else {
        panic!("not done: {}", pair.cloud_edge().await);
    };
    assert_eq!(run["state"], "done", "{run}");
    run
}

/// Re-syncs until the cloud has rolled every hour up (a run compares only hours closed on
/// both sides), at most a minute; returns the last run.
async fn resync_all(pair: &Pair, hours: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let run = resync(pair).await;
        if run["hours_compared"].as_i64() >= Some(hours) || Instant::now() > deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// The cloud's database in `data` (stopped) and the id of the series in it.
fn cloud_series(data: &std::path::Path) -> (rusqlite::Connection, i64) {
    let c = rusqlite::Connection::open(data.join("sentio.db")).unwrap();
    let sid = c
        .query_row(
            "SELECT id FROM series WHERE device = ?1 AND metric = ?2",
            [DEVICE, METRIC],
            |r| r.get(0),
        )
        .unwrap();
    (c, sid)
}

/// Deletes from the cloud's database every raw blob (`head_log`) and chunk of the series overlapping
/// `[from, to)`, and the rollups of the hours they reached; returns the hours lost
/// (`[lo, hi)`, whole hours).
fn lose(data: &std::path::Path, (from, to): (i64, i64)) -> (i64, i64) {
    let (c, sid) = cloud_series(data);
    let (lo, hi): (i64, i64) = c
        .query_row(
            "SELECT min(a), max(b) FROM ( \
               SELECT first_ts a, last_ts b FROM head_log WHERE series_id = ?1 AND first_ts < ?3 AND last_ts >= ?2 \
               UNION ALL SELECT start_ts, end_ts FROM chunks WHERE series_id = ?1 AND start_ts < ?3 AND end_ts >= ?2)",
            [sid, from, to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    c.execute(
        "DELETE FROM head_log WHERE series_id = ?1 AND first_ts < ?3 AND last_ts >= ?2",
        [sid, from, to],
    )
    .unwrap();
    c.execute(
        "DELETE FROM chunks WHERE series_id = ?1 AND start_ts < ?3 AND end_ts >= ?2",
        [sid, from, to],
    )
    .unwrap();
    let (lo, hi) = (lo.div_euclid(HOUR) * HOUR, (hi.div_euclid(HOUR) + 1) * HOUR);
    for table in ["rollup_1m", "rollup_1h"] {
        c.execute(
            &format!("DELETE FROM {table} WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3"),
            [sid, lo, hi],
        )
        .unwrap();
    }
    c.execute(
        "DELETE FROM rollup_1m_days WHERE series_id = ?1 AND day < ?3 AND day + ?4 > ?2",
        [sid, lo, hi, DAY],
    )
    .unwrap();
    (lo, hi)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_cloud_lost_hours_a_resync_sends_them_again_once_and_nothing_else() {
    let _heavy = heavy().await;
    let hours = hours();
    let mut pair = Pair::start("ack_timeout = \"3s\"\n[pipeline]\nlate_window = \"none\"").await;
    // Whole hours, well closed (rollups settle minutes behind now).
    let t0 = (now_ms() - (hours + 1) * HOUR).div_euclid(HOUR) * HOUR;
    let end = t0 + hours * HOUR;
    publish(&pair, (t0, end), reading).await;
    let accepted = (hours * 3_600) as usize;
    pair.drained(60).await;
    let on_edge = series(&pair.edge_http).await;
    assert_eq!(on_edge.len(), accepted);

    // Everything present: every hour compared, none differs, nothing is sent.
    let clean = resync_all(&pair, hours).await;
    println!("resync, nothing lost: {clean}");
    assert_eq!(clean["hours_compared"], hours, "{clean}");
    assert_eq!(
        (&clean["hours_differing"], &clean["points_resent"]),
        (&json!(0), &json!(0)),
        "{clean}"
    );

    // The cloud loses the points of all but the first two and the last two hours (and of the
    // hours its chunks reach into). Restarted with the link cut, it still shows the edge's
    // policy (kept, not waiting for the edge's next report).
    let mut lost = (0, 0);
    pair.proxy.set(Fault::Cut);
    pair.restart_cloud_after(|data| lost = lose(data, (t0 + 2 * HOUR, end - 2 * HOUR)))
        .await;
    let edge = pair.cloud_edge().await;
    assert_eq!(
        (&edge["connected"], &edge["policy"]),
        (&json!(false), &json!("raw")),
        "{edge}"
    );
    pair.proxy.set(Fault::Pass);
    let in_cloud = series(&pair.cloud_http).await;
    let (lo, hi) = (lost.0.max(t0), lost.1.min(end));
    let lost_hours = (hi - lo) / HOUR;
    let held_in = |m: &BTreeMap<i64, f64>| m.range(lo..hi).count();
    println!(
        "resync: the cloud lost {} of {accepted} points ({lost_hours} hours)",
        accepted - in_cloud.len()
    );
    assert!(in_cloud.len() < accepted && held_in(&in_cloud) < held_in(&on_edge));
    assert!(lost_hours < hours, "some hours are intact: {lost:?}");

    let bytes_before = pair.proxy.bytes_up();
    let started = Instant::now();
    let run = resync_all(&pair, hours).await;
    let took = started.elapsed();
    let bytes = pair.proxy.bytes_up() - bytes_before;
    let resent = held_in(&on_edge) as u64;
    println!(
        "resync after the loss: {run}; {resent} points of {lost_hours} hours re-sent in {:.1} s \
         with {bytes} bytes edge -> cloud at the socket ({:.2} B/point)",
        took.as_secs_f64(),
        bytes as f64 / resent as f64
    );
    assert_eq!(run["hours_compared"], hours, "{run}");
    assert_eq!(run["hours_differing"], lost_hours, "{run}");
    assert_eq!(run["points_resent"], resent, "{run}");

    // Every point of the edge once, with its value: counts and sums equal.
    let in_cloud = series(&pair.cloud_http).await;
    let duplicated = run["points_resent"].as_u64().unwrap() as i64
        - (in_cloud.len() as i64 - (accepted as i64 - resent as i64));
    let lost_now = on_edge.keys().filter(|t| !in_cloud.contains_key(t)).count();
    println!(
        "resync: accepted {accepted}, stored in the cloud {}, duplicated {duplicated}, lost {lost_now}",
        in_cloud.len()
    );
    assert_eq!(in_cloud, on_edge, "the cloud holds the edge's points");
    assert_eq!((duplicated, lost_now), (0, 0));

    // Its rollups recomputed from them, not counted twice: a further re-sync finds nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let again = loop {
        let again = resync(&pair).await;
        if again["hours_differing"] == 0 || Instant::now() > deadline {
            break again;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    assert_eq!(
        (
            &again["hours_compared"],
            &again["hours_differing"],
            &again["points_resent"]
        ),
        (&json!(hours), &json!(0), &json!(0)),
        "{again}"
    );
    let (_, audit) = api_at(
        &pair.cloud_http,
        "GET",
        "/api/v1/audit?action=edge.resync",
        None,
    )
    .await;
    assert!(audit.to_string().contains("edge.resync"), "{audit}");
}

/// Per minute of `[from, to)` on `http`: count, sum, min and max of the series.
async fn minutes(http: &str, range: (i64, i64)) -> Vec<Vec<(i64, f64)>> {
    let mut out = Vec::new();
    for agg in ["count", "sum", "min", "max"] {
        out.push(
            super::aggregates::per_minute(http, DEVICE, METRIC, range, agg)
                .await
                .0,
        );
    }
    out
}

/// In the cloud's database, doubles the count and sum of the minute at `minute` and adds them
/// to its hour (a wrong row, as a bad write would leave).
fn corrupt_minute(data: &std::path::Path, minute: i64) {
    let (c, sid) = cloud_series(data);
    let (count, sum): (i64, f64) = c
        .query_row(
            "SELECT count, sum FROM rollup_1m WHERE series_id = ?1 AND bucket = ?2",
            rusqlite::params![sid, minute],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    c.execute(
        "UPDATE rollup_1m SET count = count + ?3, sum = sum + ?4 WHERE series_id = ?1 AND bucket = ?2",
        rusqlite::params![sid, minute, count, sum],
    )
    .unwrap();
    let n = c
        .execute(
            "UPDATE rollup_1h SET count = count + ?3, sum = sum + ?4 WHERE series_id = ?1 AND bucket = ?2",
            rusqlite::params![sid, minute.div_euclid(HOUR) * HOUR, count, sum],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregates_edge_resync_replaces_the_cloud_minutes_of_the_hours_that_differ() {
    let _heavy = heavy().await;
    let hours = 2;
    let mut pair = Pair::start(
        "policy = \"aggregates\"\nraw_around_alert = \"1m\"\nack_timeout = \"3s\"\n\
         [pipeline]\nlate_window = \"none\"",
    )
    .await;
    let t0 = (now_ms() - (hours + 1) * HOUR).div_euclid(HOUR) * HOUR;
    let end = t0 + hours * HOUR;
    // A spike in the second hour: an anomaly alert, whose raw points go up too.
    let spike = (t0 + HOUR + 20 * 60_000, t0 + HOUR + 20 * 60_000 + 10_000);
    publish(&pair, (t0, end), |t| {
        if (spike.0..spike.1).contains(&t) {
            500.0
        } else {
            reading(t)
        }
    })
    .await;
    // Every closed minute in the cloud as on the edge, and the raw points around the alert.
    let on_edge = eventually(120, || async {
        let edge = minutes(&pair.edge_http, (t0, end)).await;
        let u = pair.uplink().await;
        (edge[0].len() == (hours * 60) as usize
            && minutes(&pair.cloud_http, (t0, end)).await == edge
            && u["pending_points"] == 0
            && u["rollups"]["pending_points"] == 0)
            .then_some(edge)
    })
    .await
    .expect("the cloud never held the edge's minutes");
    let raw_held = eventually(30, || async {
        let raw = series(&pair.cloud_http).await;
        raw.range(spike.0..spike.1).next().is_some().then_some(raw)
    })
    .await
    .expect("the raw points around the alert never reached the cloud");
    let clean = resync_all(&pair, hours).await;
    println!("aggregates resync, nothing lost: {clean}");
    assert_eq!(
        (
            &clean["hours_compared"],
            &clean["hours_differing"],
            &clean["rollup_rows_resent"]
        ),
        (&json!(hours), &json!(0), &json!(0)),
        "{clean}"
    );

    // The cloud loses the second hour (its minutes, its hour, the raw points around the
    // alert) and holds one minute of the first wrong; the policy it shows survives.
    pair.proxy.set(Fault::Cut);
    let wrong = t0 + 30 * 60_000;
    pair.restart_cloud_after(|data| {
        assert_eq!(
            lose(data, (t0 + HOUR, t0 + 2 * HOUR)),
            (t0 + HOUR, t0 + 2 * HOUR)
        );
        corrupt_minute(data, wrong);
    })
    .await;
    assert_eq!(pair.cloud_edge().await["policy"], "aggregates");
    let damaged = minutes(&pair.cloud_http, (t0, end)).await;
    assert_ne!(damaged, on_edge);
    let hour = t0 + HOUR..t0 + 2 * HOUR;
    assert_eq!(
        series(&pair.cloud_http).await.range(hour.clone()).count(),
        0
    );
    pair.proxy.set(Fault::Pass);

    let run = resync_all(&pair, hours).await;
    println!("aggregates resync after the loss: {run}");
    assert_eq!(run["hours_compared"], hours, "{run}");
    assert_eq!(run["hours_differing"], 2, "{run}");
    assert_eq!(run["rollup_rows_resent"], 120, "{run}");
    assert_eq!(run["points_resent"], raw_held.range(hour).count(), "{run}");
    // The cloud's minutes are the edge's again (replaced, not added to), and so are the raw
    // points around the alert.
    assert_eq!(minutes(&pair.cloud_http, (t0, end)).await, on_edge);
    assert_eq!(series(&pair.cloud_http).await, raw_held);
    let again = resync(&pair).await;
    assert_eq!(
        (&again["hours_differing"], &again["rollup_rows_resent"]),
        (&json!(0), &json!(0)),
        "{again}"
    );
}
