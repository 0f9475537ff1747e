//! A disk that is actually full. The node's data directory is on a small tmpfs that a
//! filler file fills up: HTTP ingest is refused with 507, an MQTT 5 publish gets an error
//! PUBACK, an MQTT 3.1.1 publish gets no PUBACK until its points are stored; once the filler is
//! gone, ingest works again and every point acknowledged before is readable, also after a
//! restart. Needs root (mount); skipped with a notice otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason};
use rumqttc::v5::{AsyncClient as Client5, Event as Event5, EventLoop as EventLoop5};
use serde_json::{Value, json};

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Tmpfs> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk test did not run"
        );
        return None;
    }
    Some(Tmpfs(dir.to_path_buf()))
}

/// Writes zeros into `path` until the file system is full, then gives back `leave` bytes.
fn fill(path: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for block in [1 << 20, 4096, 512] {
        let buf = vec![0u8; block];
        while f.write_all(&buf).is_ok() && f.sync_all().is_ok() {}
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
}

/// Publishes at QoS 1 over MQTT 5 and returns the PUBACK's reason.
async fn publish_v5(client: &Client5, el: &mut EventLoop5, payload: Value) -> PubAckReason {
    client
        .publish(
            "devices/meter-1/telemetry",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            payload.to_string().into_bytes(),
        )
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll()).await {
            Ok(Ok(Event5::Incoming(Packet5::PubAck(ack)))) => return ack.reason,
            Ok(Ok(_)) => {}
            other => panic!("MQTT 5 PUBACK: {other:?}"),
        }
    }
}

async fn post(node: &sentio::node::Node, secret: &str, batch: &[(i64, f64)]) -> (u16, Value) {
    let body: Vec<Value> = batch
        .iter()
        .map(|(t, v)| json!({"ts": t, "e": v}))
        .collect();
    post_telemetry(node, "meter-1", secret, &body).await
}

/// Every raw point of meter-1's `e`, page by page.
async fn stored(node: &sentio::node::Node) -> std::collections::BTreeMap<i64, f64> {
    let mut out = std::collections::BTreeMap::new();
    let mut from = 0;
    loop {
        let (st, body) = api(
            node,
            "GET",
            &format!("/api/v1/devices/meter-1/series/e?from={from}&limit=100000"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{body}");
        for p in body["points"].as_array().unwrap() {
            out.insert(p[0].as_i64().unwrap(), p[1].as_f64().unwrap());
        }
        match body["next"].as_i64() {
            Some(n) => from = n,
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_data_loses_nothing_acknowledged_and_recovers() {
    let _heavy = heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = mount_tmpfs(&mnt, "8m") else {
        return;
    };
    let data = mnt.join("data");
    let node = start(&data).await;
    let secret = register(&node, "meter-1", "meter").await;
    // Keep-alive 30 s: the event loop is not polled while the disk fills.
    let (v5, mut v5_el) = mqtt5_connect_with(&node, "meter-v5", Some(("meter-1", &secret)), |o| {
        o.set_keep_alive(Duration::from_secs(30));
    })
    .await
    .expect("MQTT 5 connect");
    let (v3, mut v3_el) = mqtt_connect(&node, "meter-v3", "meter-1", &secret)
        .await
        .unwrap();

    // Points acknowledged before the disk fills, and while it fills (a little room is left).
    let t0 = sentio_core::time::now_ms() - 3_600_000;
    let mut acked: Vec<(i64, f64)> = Vec::new();
    let mut n = 0i64;
    while n < 20_000 {
        let batch: Vec<(i64, f64)> = (n..n + 1000)
            .map(|i| (t0 + i * 10, (i as f64) * 0.25))
            .collect();
        n += 1000;
        let (st, body) = post(&node, &secret, &batch).await;
        assert_eq!(st, 200, "{body}");
        acked.extend(batch);
    }
    fill(&mnt.join("filler"), 256 * 1024);
    // Ingest until the store refuses: 507.
    let refusal = loop {
        let batch: Vec<(i64, f64)> = (n..n + 1000)
            .map(|i| (t0 + i * 10, (i as f64) * 0.25))
            .collect();
        n += 1000;
        let (st, body) = post(&node, &secret, &batch).await;
        match st {
            200 => acked.extend(batch),
            507 => break body,
            _ => panic!("unexpected answer while the disk fills: {st} {body}"),
        }
        assert!(n < 5_000_000, "never refused on a full disk");
    };
    assert!(
        acked.len() > 20_000,
        "some points went in while the disk filled"
    );
    assert_eq!(refusal["error"], "insufficient_storage", "{refusal}");
    assert!(refusal["detail"].as_str().unwrap().contains("full"));
    let (_, st) = api(&node, "GET", "/api/v1/storage", None).await;
    assert_eq!(st["disk_full"], true, "{st}");

    // MQTT 5: an error PUBACK, nothing stored.
    let v5_ts = t0 - 5_000;
    let reason = publish_v5(&v5, &mut v5_el, json!({"ts": v5_ts, "e": -1.0})).await;
    assert_eq!(reason, PubAckReason::NotAuthorized);
    assert_eq!(metric_value(&node, "sentio_store_disk_full").await, 1);
    assert!(metric_value(&node, "sentio_store_full_refusals_total").await >= 1);
    // MQTT 3.1.1 cannot be told: its PUBACK is held until the point is stored (retried, at
    // the latest once the filler is gone, below).
    let v3_ts = t0 - 10_000;
    v3.publish(
        "devices/meter-1/telemetry",
        rumqttc::QoS::AtLeastOnce,
        false,
        json!({"ts": v3_ts, "e": -3.0}).to_string().into_bytes(),
    )
    .await
    .unwrap();
    let held = tokio::spawn(async move {
        loop {
            match v3_el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return v3_el,
                Ok(_) => {}
                Err(e) => panic!("3.1.1 connection: {e}"),
            }
        }
    });
    let before = stored(&node).await;
    assert!(!before.contains_key(&v5_ts), "refused, so not stored");
    for (t, v) in &acked {
        assert_eq!(before.get(t), Some(v), "acknowledged point {t} readable");
    }

    // Space returns: ingest works again, the held 3.1.1 PUBACK arrives with its point stored.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let more: Vec<(i64, f64)> = (0..100).map(|i| (t0 - 20_000 - i, 7.0)).collect();
    let (st, body) = post(&node, &secret, &more).await;
    assert_eq!(st, 200, "{body}");
    acked.extend(&more);
    let _v3_el = tokio::time::timeout(Duration::from_secs(60), held)
        .await
        .expect("the held PUBACK arrives once space returns")
        .unwrap();
    acked.push((v3_ts, -3.0));
    let reason = publish_v5(&v5, &mut v5_el, json!({"ts": v5_ts, "e": -1.0})).await;
    assert_eq!(reason, PubAckReason::Success);
    acked.push((v5_ts, -1.0));
    let (_, st) = api(&node, "GET", "/api/v1/storage", None).await;
    assert_eq!(st["disk_full"], false, "{st}");
    assert_eq!(metric_value(&node, "sentio_store_disk_full").await, 0);

    let after = stored(&node).await;
    for (t, v) in &acked {
        assert_eq!(after.get(t), Some(v), "acknowledged point {t} readable");
    }
    drop((v5, v3));
    node.shutdown().await;

    // No corruption: a restarted node reads every acknowledged point.
    let node = start(&data).await;
    let again = stored(&node).await;
    assert_eq!(again.len(), after.len());
    for (t, v) in &acked {
        assert_eq!(again.get(t), Some(v), "after restart: point {t}");
    }
    node.shutdown().await;
}
