//! Crash safety through the front door: the real `sentio` binary ingests QoS 1 telemetry, is
//! killed with SIGKILL mid-stream, and after a restart every point whose PUBACK the client saw is
//! stored. (A PUBACK is only sent after the commit; see ARCHITECTURE.md.)

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

/// Starts `sentio serve` on port 0 and reads the bound addresses from its log.
fn spawn_node(data: &std::path::Path) -> (Child, String, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args([
            "serve",
            "--mqtt",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data)
        .env("SENTIO_ADMIN_TOKEN", TOKEN)
        .env("SENTIO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sentio starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains("Sentio is running") {
                let field = |name: &str| {
                    let strip = |s: &str| {
                        s.replace("\u{1b}[3m", "")
                            .replace("\u{1b}[0m", "")
                            .replace("\u{1b}[2m", "")
                    };
                    let clean = strip(&line);
                    clean
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_string))
                        .unwrap()
                };
                let _ = tx.send((field("mqtt"), field("http")));
                sent = true;
            }
        }
    });
    let (mqtt, http) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("node announces its ports");
    let port = mqtt.rsplit_once(':').unwrap().1.parse().unwrap();
    (child, http, port)
}

async fn api_at(
    http_addr: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    http(
        method,
        format!("http://{http_addr}{path}"),
        bearer(),
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_point_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, http_addr, port) = spawn_node(dir.path());
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

    let (mut child, http_addr, _) = spawn_node(dir.path());
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
