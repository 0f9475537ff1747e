//! Crash safety through the front door: the real `sentio` binary ingests QoS 1 telemetry, is
//! killed with SIGKILL mid-stream, and after a restart every point whose PUBACK the client saw is
//! stored. (A PUBACK is only sent after the commit; see ARCHITECTURE.md.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_point_survives_kill_9() {
    let _heavy = heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, http_addr, port) = spawn_sentio(dir.path(), None);
    let (st, body) = api_at(
        &http_addr,
        "POST",
        "/api/v1/devices",
        Some(serde_json::json!({"id": "crash-1"})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();

    let mut o = MqttOptions::new("crash-1", "127.0.0.1", port);
    o.set_credentials("crash-1", &secret);
    o.set_inflight(50);
    let (client, mut el) = AsyncClient::new(o, 1000);
    // 20 points per message, consecutive timestamps.
    let t0 = sentio_core::time::now_ms() - 3_600_000;
    let per_msg = 20i64;
    let publisher = tokio::spawn({
        let client = client.clone();
        async move {
            for m in 0..100_000i64 {
                let batch: Vec<_> = (0..per_msg)
                    .map(|k| serde_json::json!({"ts": t0 + m * per_msg + k, "v": (m * per_msg + k) as f64}))
                    .collect();
                let payload = serde_json::to_vec(&batch).unwrap();
                if client
                    .publish(
                        "devices/crash-1/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    // The n-th outgoing publish is message n; a PUBACK for its packet id acknowledges it.
    let mut sent = 0i64;
    let mut inflight: HashMap<u16, i64> = HashMap::new();
    let mut acked: Vec<i64> = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll()).await {
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                inflight.insert(pkid, sent);
                sent += 1;
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                if let Some(m) = inflight.remove(&ack.pkid) {
                    acked.push(m);
                }
                if !killed && (acked.len() >= 2000 || started.elapsed() > Duration::from_secs(20)) {
                    // SIGKILL: no shutdown, no flush.
                    child.kill().unwrap();
                    child.wait().unwrap();
                    killed = true;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    publisher.abort();
    assert!(
        killed && acked.len() >= 2000,
        "only {} messages acknowledged",
        acked.len()
    );

    let (mut child, http_addr, _) = spawn_sentio(dir.path(), None);
    let mut stored = std::collections::HashSet::new();
    let mut from = 0i64;
    loop {
        let (st, body) = api_at(
            &http_addr,
            "GET",
            &format!(
                "/api/v1/devices/crash-1/series/v?from={from}&to={}&limit=100000",
                t0 + 10_000_000
            ),
            None,
        )
        .await;
        assert_eq!(st, 200, "{body}");
        for p in body["points"].as_array().unwrap() {
            stored.insert(p[0].as_i64().unwrap());
        }
        match body["next"].as_i64() {
            Some(n) => from = n,
            None => break,
        }
    }
    let missing: Vec<i64> = acked
        .iter()
        .flat_map(|m| (0..per_msg).map(move |k| t0 + m * per_msg + k))
        .filter(|ts| !stored.contains(ts))
        .collect();
    eprintln!(
        "kill -9: {} messages ({} points) acknowledged before the kill, {} points stored after restart, {} missing",
        acked.len(),
        acked.len() as i64 * per_msg,
        stored.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged points lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
