//! Helpers for end-to-end tests: a whole node on port 0, and real clients.
#![allow(dead_code)]

pub mod raw;

use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
use sentio::config::Config;
use sentio::node::Node;
use serde_json::Value;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// A node's configuration on loopback, ports chosen by the OS, no admin token configured.
pub fn loopback_config(data: &Path) -> Config {
    Config::loopback(data)
}

/// Starts a node on loopback with the test admin token.
pub async fn start(data: &Path) -> Node {
    let mut c = loopback_config(data);
    c.http.admin_token = Some(TOKEN.into());
    Node::start(c).await.expect("node starts")
}

/// An HTTP call; returns status and JSON body (Null when the body is not JSON).
pub async fn http(
    method: &str,
    url: String,
    auth: Option<String>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let method = method.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let req = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        let req = match &auth {
            Some(a) => req.header("Authorization", a),
            None => req,
        };
        let req = req
            .header("Content-Type", "application/json")
            .body(body.unwrap_or_default())
            .unwrap();
        let mut resp = agent.run(req).expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

pub fn bearer() -> Option<String> {
    Some(format!("Bearer {TOKEN}"))
}

pub fn basic(user: &str, pass: &str) -> Option<String> {
    use base64::Engine;
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    ))
}

/// Admin API call.
pub async fn api(node: &Node, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http(
        method,
        format!("http://{}{path}", node.http_addr),
        bearer(),
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

/// Registers a device and returns its secret.
pub async fn register(node: &Node, id: &str, kind: &str) -> String {
    let (status, body) = api(
        node,
        "POST",
        "/api/v1/devices",
        Some(serde_json::json!({"id": id, "kind": kind})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().unwrap().to_string()
}

/// A connected MQTT 3.1.1 client (rumqttc), or the connection error the broker gave.
pub async fn mqtt_connect(
    node: &Node,
    client_id: &str,
    user: &str,
    pass: &str,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", node.mqtt_addr.port());
    o.set_credentials(user, pass);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut el) = AsyncClient::new(o, 100);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("CONNACK within 5 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, el)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Publishes at QoS 1 and waits for the PUBACK (or the connection error).
pub async fn publish_acked(
    client: &AsyncClient,
    el: &mut EventLoop,
    topic: &str,
    payload: Vec<u8>,
) -> Result<(), ConnectionError> {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("PUBACK within 5 s")
        {
            Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Polls `f` until it returns Some, for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Raw points of a series over all time.
pub async fn points(node: &Node, device: &str, metric: &str) -> Vec<(i64, f64)> {
    let (status, body) = api(
        node,
        "GET",
        &format!("/api/v1/devices/{device}/series/{metric}?from=0"),
        None,
    )
    .await;
    if status == 404 {
        return vec![];
    }
    assert_eq!(status, 200, "{body}");
    body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// Starts the real `sentio serve` binary on port 0 and reads the bound addresses from its log:
/// (child, HTTP address, MQTT port). With `fsize_limit_kb`, the process may not write a file
/// larger than that (`ulimit -f`, with SIGXFSZ ignored so writes fail with EFBIG as on a full
/// disk); `prlimit --pid` lifts it later.
pub fn spawn_sentio(
    data: &std::path::Path,
    fsize_limit_kb: Option<u64>,
) -> (std::process::Child, String, u16) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_sentio");
    let mut cmd = match fsize_limit_kb {
        None => Command::new(bin),
        Some(kb) => {
            let mut c = Command::new("bash");
            c.args([
                "-c",
                &format!("trap '' XFSZ; ulimit -f {kb}; exec \"$0\" \"$@\""),
                bin,
            ]);
            c
        }
    };
    let mut child = cmd
        .args([
            "serve",
            "--mqtt",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            // Not the default 8883: tests run in parallel.
            "--mqtt-tls",
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

/// An admin API call to a node started with [`spawn_sentio`].
pub async fn api_at(
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

/// The value of one sample line of `/metrics` (e.g. `sentio_store_bytes`).
pub async fn metric_value(node: &Node, sample: &str) -> u64 {
    let url = format!("http://{}/metrics", node.http_addr);
    let text = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .get(&url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}
