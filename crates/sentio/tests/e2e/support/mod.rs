//! Helpers for the end-to-end tests, in one place: a whole node on port 0 (in process, or the
//! real `sentio` binary), real HTTP and MQTT clients, and a lock for the few heavy tests.

pub mod fault_proxy;
pub mod raw;
pub mod raw_http;
pub mod receivers;
pub mod wire;

use std::path::Path;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::v5::{
    AsyncClient as Client5, ConnectionError as ConnError5, Event as Event5, EventLoop as Loop5,
    MqttOptions as Options5,
};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
use sentio::config::Config;
use sentio::node::Node;
use serde_json::{Value, json};

pub use sentio_core::time::now_ms;

pub const TOKEN: &str = "test-admin-token-0123456789abcdefghij";

/// A node's configuration on loopback, ports chosen by the OS, no admin token configured.
/// The one place that builds a node's configuration for the tests.
pub fn node_config(data: &Path) -> Config {
    Config::loopback(data)
}

/// Starts a node on loopback with the test admin token and the configuration that `configure`
/// changed (e.g. `|c| c.mqtt.max_connections = 1`).
pub async fn start_with(data: &Path, configure: impl FnOnce(&mut Config)) -> Node {
    let mut c = node_config(data);
    c.http.admin_token = Some(TOKEN.into());
    configure(&mut c);
    try_start(c).await.expect("node starts")
}

/// Starts a node from a configuration (from [`node_config`]): the node, or the error that
/// stopped it. The one place that starts an in-process node.
pub async fn try_start(config: Config) -> anyhow::Result<Node> {
    Node::start(config).await
}

/// Starts a node on loopback with the test admin token.
pub async fn start(data: &Path) -> Node {
    start_with(data, |_| {}).await
}

/// Serialises the heavy tests (the real binary killed with SIGKILL, a full tmpfs, fuzzing,
/// floods, long replays): they run one at a time, beside the light ones. Hold the guard for
/// the whole test.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// [`heavy`] for a test that is not async.
pub fn heavy_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.blocking_lock()
}

/// A tokio mutex: it is held across awaits and is not poisoned when a test fails.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether a command-line tool is installed (it runs with `--help`).
pub fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--help")
        .output()
        .is_ok()
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

/// Status, content type and body of a GET (bodies up to 100 MiB).
pub async fn get_text(url: String, auth: Option<String>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.get(&url);
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().expect("HTTP request");
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(100 * 1024 * 1024)
            .read_to_string()
            .unwrap();
        (status, ct, text)
    })
    .await
    .unwrap()
}

/// The test admin token as an `Authorization` header.
pub fn bearer() -> Option<String> {
    Some(format!("Bearer {TOKEN}"))
}

/// HTTP basic authentication as an `Authorization` header.
pub fn basic(user: &str, pass: &str) -> Option<String> {
    use base64::Engine;
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    ))
}

/// Admin API call.
pub async fn api(node: &Node, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    api_at(&node.http_addr.to_string(), method, path, body).await
}

/// An admin API call to the node at `http_addr` (e.g. one started with [`spawn_sentio`]).
pub async fn api_at(
    http_addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    http(
        method,
        format!("http://{http_addr}{path}"),
        bearer(),
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

/// Posts telemetry `items` (JSON objects, with or without `ts`) for `device` over HTTP with
/// its secret; returns the status and the JSON answer.
pub async fn post_telemetry(
    node: &Node,
    device: &str,
    secret: &str,
    items: &[Value],
) -> (u16, Value) {
    http(
        "POST",
        format!(
            "http://{}/api/v1/devices/{device}/telemetry",
            node.http_addr
        ),
        basic(device, secret),
        Some(serde_json::to_vec(items).unwrap()),
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

/// Creates an MQTT token; returns (id, username, password). The answer must echo the name and
/// the ACL.
pub async fn create_token(node: &Node, name: &str, acl: Value) -> (String, String, String) {
    create_token_at(&node.http_addr.to_string(), name, acl).await
}

/// [`create_token`] on the node at `http_addr`.
pub async fn create_token_at(http_addr: &str, name: &str, acl: Value) -> (String, String, String) {
    let (status, body) = api_at(
        http_addr,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": name, "acl": acl})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for key in ["id", "name", "username", "password", "acl"] {
        assert!(body.get(key).is_some(), "{key} missing from {body}");
    }
    assert_eq!(body["name"], name);
    assert_eq!(body["acl"], acl);
    (
        body["id"].as_str().unwrap().to_string(),
        body["username"].as_str().unwrap().to_string(),
        body["password"].as_str().unwrap().to_string(),
    )
}

/// A token allowed to publish and subscribe under `load/#`; returns (username, password).
pub async fn load_token(node: &Node) -> (String, String) {
    load_token_at(&node.http_addr.to_string()).await
}

/// [`load_token`] on the node at `http_addr`.
pub async fn load_token_at(http_addr: &str) -> (String, String) {
    let (_, user, pass) = create_token_at(
        http_addr,
        "load",
        json!([{"filter": "load/#", "rights": "both"}]),
    )
    .await;
    (user, pass)
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

/// Polls an MQTT 3.1.1 event loop until `want` picks an incoming packet, for up to 5 s.
pub async fn next_v3<T>(
    el: &mut EventLoop,
    mut want: impl FnMut(&Packet) -> Option<T>,
) -> Result<T, ConnectionError> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("an answer within 5 s")?;
        if let Event::Incoming(p) = ev
            && let Some(t) = want(&p)
        {
            return Ok(t);
        }
    }
}

/// An MQTT 5 client (rumqttc v5) with optional credentials that has its CONNACK, or the
/// connection error the broker gave.
pub async fn mqtt5_connect(
    node: &Node,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(Client5, Loop5), ConnError5> {
    mqtt5_connect_with(node, client_id, credentials, |_| {}).await
}

/// [`mqtt5_connect`] with options that `configure` changed (the keep-alive is 10 s unless it
/// changes it).
pub async fn mqtt5_connect_with(
    node: &Node,
    client_id: &str,
    credentials: Option<(&str, &str)>,
    configure: impl FnOnce(&mut Options5),
) -> Result<(Client5, Loop5), ConnError5> {
    let mut o = Options5::new(client_id, "127.0.0.1", node.mqtt_addr.port());
    if let Some((user, pass)) = credentials {
        o.set_credentials(user, pass);
    }
    o.set_keep_alive(Duration::from_secs(10));
    configure(&mut o);
    let (client, mut el) = Client5::new(o, 100);
    next_v5(&mut el, |p| matches!(p, Packet5::ConnAck(_)).then_some(()))
        .await
        .map(|()| (client, el))
}

/// Polls an MQTT 5 event loop until `want` picks an incoming packet, for up to 5 s.
pub async fn next_v5<T>(
    el: &mut Loop5,
    mut want: impl FnMut(&Packet5) -> Option<T>,
) -> Result<T, ConnError5> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("an answer within 5 s")?;
        if let Event5::Incoming(p) = ev
            && let Some(t) = want(&p)
        {
            return Ok(t);
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
    points_at(&node.http_addr.to_string(), device, metric).await
}

/// [`points`] of the node at `http_addr` (up to 100,000).
pub async fn points_at(http_addr: &str, device: &str, metric: &str) -> Vec<(i64, f64)> {
    let (status, body) = api_at(
        http_addr,
        "GET",
        &format!("/api/v1/devices/{device}/series/{metric}?from=0&limit=100000"),
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
    spawn_sentio_with(data, fsize_limit_kb, &[])
}

/// [`spawn_sentio`] with more arguments for `sentio serve` (e.g. `--upstream ...`; a
/// `--mqtt-tls ADDR` among them replaces the default TLS listener on a free port).
pub fn spawn_sentio_with(
    data: &std::path::Path,
    fsize_limit_kb: Option<u64>,
    extra: &[&str],
) -> (std::process::Child, String, u16) {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_sentio");
    let cmd = match fsize_limit_kb {
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
    launch_sentio(cmd, data, extra)
}

/// [`spawn_sentio_with`] run by `wrapper` (a command and its arguments, given the `sentio`
/// binary and its arguments after them, e.g. `["faketime", "-f", "+1h"]`).
pub fn spawn_sentio_under(
    wrapper: &[&str],
    data: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, String, u16) {
    let mut cmd = std::process::Command::new(wrapper[0]);
    cmd.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_sentio"));
    launch_sentio(cmd, data, extra)
}

/// Runs `cmd` (which starts `sentio`) as `serve` on port 0 of `data` with `extra` arguments,
/// and reads the bound addresses from its log.
fn launch_sentio(
    mut cmd: std::process::Command,
    data: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, String, u16) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    cmd.args(["serve", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    if !extra.contains(&"--mqtt-tls") {
        // Not the default 8883: tests run in parallel.
        cmd.args(["--mqtt-tls", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .arg("--data")
        .arg(data)
        .args(extra)
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

/// Starts the real `sentio serve` on port 0 and keeps every line it logs; returns the child,
/// the MQTT address and the lines so far (updated live).
pub fn spawn_sentio_logging(
    data: &std::path::Path,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args(["serve", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--no-mqtt-tls", "--data"])
        .arg(data)
        .env("SENTIO_ADMIN_TOKEN", TOKEN)
        .env("SENTIO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sentio starts");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (lines, tx) = (lines.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(out);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_string();
                if line.contains("Sentio is running") {
                    let clean = line
                        .replace("\u{1b}[3m", "")
                        .replace("\u{1b}[0m", "")
                        .replace("\u{1b}[2m", "");
                    if let Some(mqtt) = clean
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("mqtt="))
                    {
                        let _ = tx.send(mqtt.to_string());
                    }
                }
                lines.lock().unwrap().push(line);
                buf.clear();
            }
        });
    }
    let mqtt = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the node announces its ports");
    (child, mqtt.parse().unwrap(), lines)
}

/// The value of one sample line of `/metrics` (e.g. `sentio_store_bytes`).
pub async fn metric_value(node: &Node, sample: &str) -> u64 {
    let url = format!("http://{}/metrics", node.http_addr);
    let (status, _, text) = get_text(url, bearer()).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// The device's alerts, newest first.
pub async fn alerts_of(node: &Node, device: &str) -> Vec<Value> {
    let (st, body) = api(
        node,
        "GET",
        &format!("/api/v1/alerts?device={device}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body["alerts"].as_array().unwrap().clone()
}

/// The device's alerts of one kind (`anomaly`, `device`, ...), newest first.
pub async fn alerts_of_kind(node: &Node, device: &str, kind: &str) -> Vec<Value> {
    alerts_of(node, device)
        .await
        .into_iter()
        .filter(|a| a["explanation"]["kind"] == kind)
        .collect()
}

/// Waits until the device has an alert of `kind`, and returns it.
pub async fn wait_for_kind(node: &Node, device: &str, kind: &str, secs: u64) -> Value {
    let found = eventually(secs, || async {
        alerts_of(node, device)
            .await
            .into_iter()
            .find(|a| a["explanation"]["kind"] == kind)
    })
    .await;
    match found {
        Some(a) => a,
        None => {
            let seen: Vec<String> = alerts_of(node, device)
                .await
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {}",
                        a["explanation"]["kind"], a["metric"], a["explanation"]["message"]
                    )
                })
                .collect();
            panic!("no {kind} alert on {device} within {secs} s; it has: {seen:#?}")
        }
    }
}

/// An HTTP answer with its `Set-Cookie` headers.
pub struct Reply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: Value,
}

/// An HTTP call with any headers (cookies, `Origin`, `X-CSRF-Token`, ...); over HTTPS when
/// given the PEM certificate to trust.
pub async fn http_with(
    method: &str,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    trust_pem: Option<Vec<u8>>,
) -> Reply {
    let method = method.to_string();
    tokio::task::spawn_blocking(move || {
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(pem) = trust_pem {
            let roots: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item.unwrap() {
                    ureq::tls::PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                    .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        let mut req = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url)
            .header("Content-Type", "application/json");
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut resp = agent.run(req.body(body).unwrap()).expect("HTTP request");
        let set_cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Reply {
            status,
            set_cookies,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    })
    .await
    .unwrap()
}

/// A signed-in browser: its cookie, its CSRF token and the node's origin.
pub struct Browser {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Browser {
    /// A request as this node's page sends it: cookie, `Origin` and `X-CSRF-Token`.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(
            method,
            path,
            body,
            &[("Origin", &self.base), ("X-CSRF-Token", &self.csrf)],
        )
        .await
    }

    /// A request with the cookie and only the given extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut headers = vec![("Cookie".to_string(), self.cookie.clone())];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        http_with(method, format!("{}{path}", self.base), headers, body, None).await
    }
}

/// `POST /api/v1/session` at `base` with a name and password.
pub async fn login_at(base: &str, name: &str, password: &str, trust: Option<Vec<u8>>) -> Reply {
    http_with(
        "POST",
        format!("{base}/api/v1/session"),
        vec![("Origin".into(), base.into())],
        Some(json!({"name": name, "password": password})),
        trust,
    )
    .await
}

/// Creates user `name` with `role` on `node` and signs it in over plain HTTP.
pub async fn signed_in(node: &Node, name: &str, role: &str) -> Browser {
    let password = "a long enough password";
    let (st, body) = api(
        node,
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": role, "password": password})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    sign_in(node, name, password).await
}

/// Signs user `name` in on `node` over plain HTTP.
pub async fn sign_in(node: &Node, name: &str, password: &str) -> Browser {
    let base = format!("http://{}", node.http_addr);
    let r = login_at(&base, name, password, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (pair, _) = r.set_cookies[0].split_once("; ").unwrap();
    Browser {
        base,
        cookie: pair.to_string(),
        csrf: r.body["csrf_token"].as_str().unwrap().to_string(),
    }
}
