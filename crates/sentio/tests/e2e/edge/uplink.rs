//! Store-and-forward under real faults: a cloud node and an edge node (real `sentio`
//! processes) with the fault proxy between them, and a fleet publishing to the edge over MQTT
//! (QoS 1). Whatever the fault (a cut link, a black hole, the edge or the cloud killed with
//! SIGKILL), the cloud ends up holding every point the edge acknowledged, exactly once, with
//! the same values; each test prints points accepted, stored, duplicated and lost.

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::*;

pub(super) const EDGE: &str = "site-1";
pub(super) const METRICS: [&str; 2] = ["a", "b"];

/// A cloud node, an edge node linked to it through a fault proxy, and their directory.
pub(super) struct Pair {
    cloud: Child,
    pub(super) cloud_http: String,
    edge: Child,
    pub(super) edge_http: String,
    edge_mqtt: u16,
    pub(super) proxy: FaultProxy,
    dir: tempfile::TempDir,
    edge_args: Vec<String>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.edge.kill();
        let _ = self.cloud.kill();
        let _ = self.edge.wait();
        let _ = self.cloud.wait();
    }
}

/// How the edge reaches the cloud's broker (always through the fault proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `mqtt://` to the plain listener.
    Plain,
    /// `mqtts://` to the TLS listener, pinning the cloud's generated certificate.
    Tls,
    /// `mqtts://` to the TLS listener, trusting a certificate that is not the cloud's (same
    /// names, another key).
    TlsWrongCa,
    /// `ws://` to the cloud's HTTP server (`/mqtt`).
    WebSocket,
    /// `wss://` to the cloud's HTTPS server (`/mqtt`), pinning its generated certificate.
    SecureWebSocket,
    /// `wss://` as above, trusting a certificate that is not the cloud's.
    SecureWebSocketWrongCa,
}

/// A free TCP port on loopback (for a listener the node must be told in advance).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pair {
    /// Starts both nodes over plain MQTT; `edge_toml` goes into the edge's `sentio.toml`.
    pub(super) async fn start(edge_toml: &str) -> Self {
        Self::start_linked(edge_toml, Link::Plain).await
    }

    /// Starts both nodes, the edge linked to the cloud as `link` says.
    async fn start_linked(edge_toml: &str, link: Link) -> Self {
        Self::start_configured(edge_toml, "", link).await
    }

    /// Starts both nodes over plain MQTT; `cloud_toml` is the cloud's `sentio.toml`.
    pub(super) async fn start_with_cloud(edge_toml: &str, cloud_toml: &str) -> Self {
        Self::start_configured(edge_toml, cloud_toml, Link::Plain).await
    }

    async fn start_configured(edge_toml: &str, cloud_toml: &str, link: Link) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cloud_data, edge_data) = (dir.path().join("cloud"), dir.path().join("edge"));
        std::fs::create_dir_all(&cloud_data).unwrap();
        std::fs::write(cloud_data.join("sentio.toml"), cloud_toml).unwrap();
        let (tls_port, https_port) = (free_port(), free_port());
        let mut cloud_args = vec!["--mqtt-tls".into(), format!("127.0.0.1:{tls_port}")];
        if matches!(link, Link::SecureWebSocket | Link::SecureWebSocketWrongCa) {
            cloud_args.extend(["--https".into(), format!("127.0.0.1:{https_port}")]);
        }
        let (cloud, cloud_http, plain_mqtt) =
            spawn_blocking_sentio(cloud_data.clone(), cloud_args).await;
        let http_port = cloud_http.parse::<std::net::SocketAddr>().unwrap().port();
        let (cloud_mqtt, scheme, path) = match link {
            Link::Plain => (plain_mqtt, "mqtt", ""),
            Link::Tls | Link::TlsWrongCa => (tls_port, "mqtts", ""),
            Link::WebSocket => (http_port, "ws", "/mqtt"),
            Link::SecureWebSocket | Link::SecureWebSocketWrongCa => (https_port, "wss", "/mqtt"),
        };
        let created = super::create_edge(&cloud_http, EDGE).await;
        let secret_file = dir.path().join("edge.secret");
        std::fs::write(&secret_file, created["secret"].as_str().unwrap()).unwrap();
        let proxy = FaultProxy::start(([127, 0, 0, 1], cloud_mqtt).into()).await;
        std::fs::create_dir_all(&edge_data).unwrap();
        std::fs::write(
            edge_data.join("sentio.toml"),
            format!("[edge]\n{edge_toml}\n"),
        )
        .unwrap();
        let mut edge_args: Vec<String> = vec![
            "--upstream".into(),
            format!("{scheme}://{}{path}", proxy.addr),
            "--edge-id".into(),
            EDGE.into(),
            "--upstream-secret-file".into(),
            secret_file.display().to_string(),
        ];
        let ca = match link {
            Link::Plain | Link::WebSocket => None,
            // The cloud generated its self-signed certificate on start.
            Link::Tls | Link::SecureWebSocket => Some(cloud_data.join("tls/mqtt-cert.pem")),
            Link::TlsWrongCa | Link::SecureWebSocketWrongCa => {
                let other = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                ])
                .unwrap();
                let path = dir.path().join("not-the-cloud.pem");
                std::fs::write(&path, other.cert.pem()).unwrap();
                Some(path)
            }
        };
        if let Some(ca) = ca {
            edge_args.extend(["--upstream-ca".into(), ca.display().to_string()]);
        }
        let (edge, edge_http, edge_mqtt) =
            spawn_blocking_sentio(edge_data, edge_args.clone()).await;
        Self {
            cloud,
            cloud_http,
            edge,
            edge_http,
            edge_mqtt,
            proxy,
            dir,
            edge_args,
        }
    }

    /// Kills the edge with SIGKILL and starts it again on the same data directory.
    pub(super) async fn kill_and_restart_edge(&mut self) {
        self.restart_edge_in(self.edge_dir(), &[]).await;
    }

    /// The edge's data directory (as started).
    pub(super) fn edge_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("edge")
    }

    /// The edge's process id.
    pub(super) fn edge_pid(&self) -> u32 {
        self.edge.id()
    }

    /// Kills the edge with SIGKILL and starts it with the same arguments on `data` (its own
    /// directory, or one a backup was restored into), run by `wrapper` unless it is empty
    /// (e.g. `["faketime", "-f", "+1h"]`).
    pub(super) async fn restart_edge_in(&mut self, data: std::path::PathBuf, wrapper: &[&str]) {
        self.edge.kill().unwrap();
        self.edge.wait().unwrap();
        let args = self.edge_args.clone();
        let wrapper: Vec<String> = wrapper.iter().map(|w| w.to_string()).collect();
        let (edge, http, mqtt) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match wrapper.is_empty() {
                true => spawn_sentio_with(&data, None, &args),
                false => {
                    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
                    spawn_sentio_under(&wrapper, &data, &args)
                }
            }
        })
        .await
        .unwrap();
        (self.edge, self.edge_http, self.edge_mqtt) = (edge, http, mqtt);
    }

    /// Rewrites the edge's `sentio.toml` (`edge_toml` under `[edge]`, as at start) and restarts
    /// it with SIGKILL.
    pub(super) async fn restart_edge_with(&mut self, edge_toml: &str) {
        let file = self.dir.path().join("edge").join("sentio.toml");
        std::fs::write(file, format!("[edge]\n{edge_toml}\n")).unwrap();
        self.kill_and_restart_edge().await;
    }

    /// Kills the cloud with SIGKILL and starts it again; the proxy forwards to its new port.
    async fn kill_and_restart_cloud(&mut self) {
        self.cloud.kill().unwrap();
        self.cloud.wait().unwrap();
        let (cloud, http, mqtt) =
            spawn_blocking_sentio(self.dir.path().join("cloud"), vec![]).await;
        (self.cloud, self.cloud_http) = (cloud, http);
        self.proxy.set_upstream(([127, 0, 0, 1], mqtt).into());
    }

    /// Kills the cloud with SIGKILL, lets `edit` change its data directory while it is down,
    /// and starts it again; the proxy forwards to its new port.
    pub(super) async fn restart_cloud_after(&mut self, edit: impl FnOnce(&std::path::Path)) {
        self.cloud.kill().unwrap();
        self.cloud.wait().unwrap();
        let data = self.dir.path().join("cloud");
        edit(&data);
        let (cloud, http, mqtt) = spawn_blocking_sentio(data, vec![]).await;
        (self.cloud, self.cloud_http) = (cloud, http);
        self.proxy.set_upstream(([127, 0, 0, 1], mqtt).into());
    }

    /// Registers a device `id` (kind `sensor`) on the edge and opens its MQTT client to the
    /// edge's broker (not yet polled), with room for `queue` requests.
    pub(super) async fn new_device(&self, id: &str, queue: usize) -> (AsyncClient, EventLoop) {
        let secret = self.register_device(id).await;
        self.device_client(id, &secret, queue)
    }

    /// Registers a device `id` (kind `sensor`) on the edge; its secret.
    pub(super) async fn register_device(&self, id: &str) -> String {
        let (status, body) = api_at(
            &self.edge_http,
            "POST",
            "/api/v1/devices",
            Some(json!({"id": id, "kind": "sensor"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().unwrap().to_string()
    }

    /// An MQTT client (not yet polled) of the edge's device `id`, with room for `queue`
    /// requests.
    pub(super) fn device_client(
        &self,
        id: &str,
        secret: &str,
        queue: usize,
    ) -> (AsyncClient, EventLoop) {
        let mut o = MqttOptions::new(id, "127.0.0.1", self.edge_mqtt);
        o.set_credentials(id, secret);
        o.set_keep_alive(Duration::from_secs(10));
        AsyncClient::new(o, queue)
    }

    /// The edge's device `id` connected and subscribed to `filter`: its client and what it
    /// receives (topic, JSON body), its connection running in a task of its own.
    pub(super) async fn listening_device(
        &self,
        id: &str,
        secret: &str,
        filter: &str,
    ) -> (
        AsyncClient,
        tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    ) {
        let (client, mut el) = self.device_client(id, secret, 64);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((p.topic, body)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        (client, rx)
    }

    /// A device of the edge (see [`Pair::new_device`]) whose connection runs in a task of its
    /// own, counting the PUBACKs it gets.
    pub(super) async fn counted_device(
        &self,
        id: &str,
        queue: usize,
    ) -> (AsyncClient, Arc<AtomicU64>) {
        let (client, mut el) = self.new_device(id, queue).await;
        let acked = Arc::new(AtomicU64::new(0));
        let count = acked.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        (client, acked)
    }

    /// The cloud's view of the edge (`GET /api/v1/edges/<id>`).
    pub(super) async fn cloud_edge(&self) -> Value {
        let path = format!("/api/v1/edges/{EDGE}");
        let (status, body) = api_at(&self.cloud_http, "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub(super) async fn uplink(&self) -> Value {
        let (status, body) = api_at(&self.edge_http, "GET", "/api/v1/uplink", None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the edge has nothing pending (the cloud acknowledged everything).
    pub(super) async fn drained(&self, secs: u64) {
        let done = eventually(secs, || async {
            let u = self.uplink().await;
            (u["pending_points"] == 0 && u["connected"] == true).then_some(())
        })
        .await;
        assert!(done.is_some(), "not drained: {}", self.uplink().await);
    }

    /// Compares every series on the edge and in the cloud; prints and returns the counts.
    pub(super) async fn compare(&self, test: &str, fleet: &FleetReport) -> Counts {
        let mut counts = Counts {
            accepted: fleet.points_acked,
            ..Counts::default()
        };
        for device in &fleet.devices {
            for metric in METRICS {
                let on_edge = series(&self.edge_http, device, metric).await;
                let in_cloud = series(&self.cloud_http, device, metric).await;
                counts.on_edge += on_edge.len() as u64;
                counts.stored += in_cloud.len() as u64;
                for (ts, v) in &on_edge {
                    match in_cloud.get(ts) {
                        None => counts.lost += 1,
                        Some(c) => assert_eq!(c, v, "{device}/{metric} at {ts}: another value"),
                    }
                }
            }
        }
        let edge = self.cloud_edge().await;
        // Points applied (every incarnation, kept with the progress) beyond those held: a
        // batch applied twice would count its points twice.
        counts.duplicated = edge["points"]
            .as_u64()
            .unwrap()
            .saturating_sub(counts.stored);
        let bytes = self.proxy.bytes_up();
        println!(
            "{test}: accepted {} (on the edge {}), stored in the cloud {}, duplicated {}, lost {}; \
             {bytes} bytes edge -> cloud at the socket, {:.2} B/point",
            counts.accepted,
            counts.on_edge,
            counts.stored,
            counts.duplicated,
            counts.lost,
            bytes as f64 / counts.stored.max(1) as f64
        );
        counts
    }
}

#[derive(Debug, Default)]
pub(super) struct Counts {
    accepted: u64,
    on_edge: u64,
    stored: u64,
    duplicated: u64,
    lost: u64,
}

impl Counts {
    pub(super) fn assert_exactly_once(&self) {
        assert_eq!(
            self.on_edge, self.accepted,
            "the edge holds what it acknowledged"
        );
        assert_eq!((self.lost, self.duplicated), (0, 0), "{self:?}");
        assert_eq!(self.stored, self.accepted, "{self:?}");
    }
}

/// `spawn_sentio_with` off the runtime's threads (it blocks until the node is up).
async fn spawn_blocking_sentio(
    data: std::path::PathBuf,
    args: Vec<String>,
) -> (Child, String, u16) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_sentio_with(&data, None, &args)
    })
    .await
    .unwrap()
}

/// Every point of a series, by timestamp.
pub(super) async fn series(http: &str, device: &str, metric: &str) -> BTreeMap<i64, f64> {
    points_at(http, device, metric).await.into_iter().collect()
}

/// The answer of `GET path` on the node at `http` once `done` holds for it (polled every
/// 100 ms for `secs`).
pub(super) async fn get_when(
    http: &str,
    path: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..secs * 10 {
        let (status, body) = api_at(http, "GET", path, None).await;
        if status == 200 && done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET {path} at {http}: {last}");
}

/// A fleet publishing to the edge over MQTT at QoS 1, every 20 ms per device, two metrics per
/// payload, with increasing timestamps.
pub(super) struct Fleet {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    devices: Vec<String>,
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
}

pub(super) struct FleetReport {
    devices: Vec<String>,
    points_acked: u64,
}

impl Fleet {
    pub(super) async fn start(pair: &Pair, n: usize) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let (published, acked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut tasks = Vec::new();
        let mut devices = Vec::new();
        for i in 0..n {
            let id = format!("dev-{i}");
            let (client, mut el) = pair.new_device(&id, 10).await;
            let ack = acked.clone();
            tasks.push(tokio::spawn(async move {
                // The device's connection: counts the PUBACKs (two points each).
                loop {
                    match el.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            ack.fetch_add(2, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            }));
            let (mut rx, sent) = (stop_rx.clone(), published.clone());
            let topic = format!("devices/{id}/telemetry");
            tasks.push(tokio::spawn(async move {
                let mut ts = now_ms();
                let mut k = 0u64;
                while !*rx.borrow_and_update() {
                    ts = (ts + 1).max(now_ms());
                    let payload =
                        json!({"ts": ts, "a": k as f64 + 0.25, "b": (k % 97) as f64 * 0.5});
                    if client
                        .publish(&topic, QoS::AtLeastOnce, false, payload.to_string())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    sent.fetch_add(2, Ordering::Relaxed);
                    k += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        _ = rx.changed() => {}
                    }
                }
                let _ = client.disconnect().await;
            }));
            devices.push(id);
        }
        Self {
            stop,
            tasks,
            devices,
            published,
            acked,
        }
    }

    /// Stops publishing and waits until every publish is acknowledged by the edge.
    pub(super) async fn stop(self) -> FleetReport {
        let _ = self.stop.send(true);
        let (published, acked) = (self.published.clone(), self.acked.clone());
        let all = eventually(30, || async {
            (acked.load(Ordering::Relaxed) >= published.load(Ordering::Relaxed)).then_some(())
        })
        .await;
        assert!(all.is_some(), "the edge did not acknowledge every publish");
        for t in self.tasks {
            t.abort();
        }
        FleetReport {
            devices: self.devices,
            points_acked: self.acked.load(Ordering::Relaxed),
        }
    }
}

/// The newest timestamp of `dev-0`'s metric `a` in the cloud.
pub(super) async fn cloud_latest(pair: &Pair) -> i64 {
    series(&pair.cloud_http, "dev-0", "a")
        .await
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_uplink_loses_and_doubles_nothing_and_live_data_resumes() {
    let _heavy = heavy().await;
    // The outage (20 s) is longer than the cloud's late-point window (5 s): the edge's backlog
    // is never refused by it.
    let pair = Pair::start_with_cloud(
        "ack_timeout = \"3s\"\nkeep_alive = \"5s\"",
        "[pipeline]\nlate_window = \"5s\"\n",
    )
    .await;
    let fleet = Fleet::start(&pair, 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cloud_latest(&pair).await > 0, "live data reaches the cloud");

    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = pair.uplink().await;
    assert_eq!(during["connected"], false, "{during}");
    assert!(
        during["pending_points"].as_u64().unwrap() > 1_000,
        "{during}"
    );
    assert!(
        during["oldest_pending_age_ms"].as_i64().unwrap() > 10_000,
        "{during}"
    );

    let restored = now_ms();
    pair.proxy.set(Fault::Pass);
    let live = eventually(15, || async {
        (cloud_latest(&pair).await > restored).then_some(())
    })
    .await;
    assert!(live.is_some(), "live data did not flow again");
    println!(
        "cut: live data current again {} ms after the link came back",
        now_ms() - restored
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = fleet.stop().await;
    pair.drained(60).await;
    pair.compare("cut 20 s", &report)
        .await
        .assert_exactly_once();
    // The cloud shows the edge's own account of its outbox: connected, nothing pending.
    let shown = eventually(10, || async {
        let e = pair.cloud_edge().await;
        (e["connected"] == true && e["reported"]["pending_points"] == 0).then_some(e)
    })
    .await;
    let shown = shown.expect("the cloud does not show the edge's outbox");
    // A healthy edge's clock: within the limit, off by no more than the report's delay.
    assert_eq!(shown["clock_ok"], true, "{shown}");
    let skew = shown["clock_skew_ms"]
        .as_i64()
        .expect("the edge reports its clock");
    assert!(skew.abs() < 2_000, "{shown}");
    println!("cut: a healthy edge's clock skew as the cloud sees it: {skew} ms");
    let (_, _, metrics) = get_text(format!("http://{}/metrics", pair.edge_http), bearer()).await;
    assert!(
        metrics.contains("sentio_uplink_pending_points 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sentio_uplink_link_losses_total "),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_during_an_outage_loses_nothing_after_its_restart() {
    let _heavy = heavy().await;
    let mut pair = Pair::start("ack_timeout = \"3s\"\nkeep_alive = \"5s\"").await;
    let fleet = Fleet::start(&pair, 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let report = fleet.stop().await;
    let before = pair.uplink().await;
    assert!(before["pending_points"].as_u64().unwrap() > 0, "{before}");

    pair.kill_and_restart_edge().await;
    let after = pair.uplink().await;
    assert_eq!(
        after["pending_points"], before["pending_points"],
        "the outbox survived kill -9"
    );
    assert_eq!(
        after["incarnation"], before["incarnation"],
        "a restart is the same life"
    );
    pair.proxy.set(Fault::Pass);
    pair.drained(60).await;
    pair.compare("edge kill -9 mid-outage", &report)
        .await
        .assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_uplink_is_detected_and_nothing_is_marked_delivered() {
    under_a_black_hole(Link::Plain, "mqtt://").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_websocket_uplink_is_detected_and_nothing_is_marked_delivered() {
    under_a_black_hole(Link::WebSocket, "ws://").await;
}

/// The link black-holed (packets taken, never answered) while a fleet publishes: the edge
/// notices, marks nothing delivered meanwhile, and delivers every point once afterwards.
async fn under_a_black_hole(link: Link, scheme: &str) {
    let _heavy = heavy().await;
    let pair = Pair::start_linked("ack_timeout = \"2s\"\nkeep_alive = \"5s\"", link).await;
    assert!(
        pair.uplink().await["upstream"]
            .as_str()
            .unwrap()
            .starts_with(scheme)
    );
    let fleet = Fleet::start(&pair, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.proxy.set(Fault::BlackHole);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = pair.uplink().await;
    let detected = eventually(15, || async {
        let u = pair.uplink().await;
        (u["connected"] == false && u["link_losses"].as_u64().unwrap() > 0).then_some(u)
    })
    .await
    .unwrap_or_else(|| panic!("a black hole went unnoticed: {first}"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = pair.uplink().await;
    println!(
        "black hole ({scheme}): detected ({}); then {later}",
        detected["last_error"]
    );
    // Nothing acknowledged while the cloud could not answer: the acknowledged seq stays, the
    // pending points grow.
    assert_eq!(later["acked_seq"], detected["acked_seq"], "{later}");
    assert!(
        later["pending_points"].as_u64() > detected["pending_points"].as_u64(),
        "{later}"
    );
    pair.proxy.set(Fault::Pass);
    let report = fleet.stop().await;
    pair.drained(60).await;
    pair.compare(&format!("black hole ({scheme})"), &report)
        .await
        .assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_killed_while_batches_flow_applies_each_once() {
    let _heavy = heavy().await;
    let mut pair = Pair::start("ack_timeout = \"3s\"\nkeep_alive = \"5s\"").await;
    let fleet = Fleet::start(&pair, 4).await;
    // A backlog, then the cloud killed while it drains: some batch is committed and not yet
    // acknowledged at the kill, and is sent again.
    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(5)).await;
    pair.proxy.set(Fault::Delay(Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_millis(700)).await;
    pair.kill_and_restart_cloud().await;
    pair.proxy.set(Fault::Pass);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = fleet.stop().await;
    pair.drained(60).await;
    let (_, _, metrics) = get_text(format!("http://{}/metrics", pair.cloud_http), bearer()).await;
    let duplicates = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sentio_edge_batches_total{result=\"duplicate\"} "))
        .unwrap_or("?")
        .to_string();
    println!(
        "cloud kill -9: batches acknowledged again without being applied after the restart: {duplicates}"
    );
    pair.compare("cloud kill -9 while draining", &report)
        .await
        .assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uplink_over_tls_pinning_the_cloud_certificate_delivers_each_point_once() {
    across_a_cut(Link::Tls, "mqtts://").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uplink_over_websocket_delivers_each_point_once_across_a_cut() {
    across_a_cut(Link::WebSocket, "ws://").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uplink_over_websocket_in_tls_delivers_each_point_once_across_a_cut() {
    across_a_cut(Link::SecureWebSocket, "wss://").await;
}

/// A fleet on the edge, the link over `link` (its URL starting with `scheme`) cut for 5 s:
/// the new session resumes from the acknowledged batch, every point is in the cloud once.
async fn across_a_cut(link: Link, scheme: &str) {
    let _heavy = heavy().await;
    let pair = Pair::start_linked("ack_timeout = \"3s\"\nkeep_alive = \"5s\"", link).await;
    let fleet = Fleet::start(&pair, 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        cloud_latest(&pair).await > 0,
        "live data reaches the cloud over {scheme}"
    );
    pair.proxy.set(Fault::Cut);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = pair.uplink().await;
    assert_eq!(during["connected"], false, "{during}");
    pair.proxy.set(Fault::Pass);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = fleet.stop().await;
    pair.drained(60).await;
    let u = pair.uplink().await;
    assert!(u["upstream"].as_str().unwrap().starts_with(scheme), "{u}");
    assert!(u["connects"].as_u64().unwrap() >= 2, "{u}");
    pair.compare(&format!("over {scheme}, cut 5 s"), &report)
        .await
        .assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uplink_over_tls_with_the_wrong_certificate_delivers_nothing_and_says_why() {
    with_the_wrong_certificate(Link::TlsWrongCa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uplink_over_websocket_in_tls_with_the_wrong_certificate_delivers_nothing() {
    with_the_wrong_certificate(Link::SecureWebSocketWrongCa).await;
}

/// The edge trusts a certificate that is not the cloud's: no connection, not even in
/// plaintext, nothing delivered, everything kept, and the reason shown.
async fn with_the_wrong_certificate(link: Link) {
    let _heavy = heavy().await;
    let pair = Pair::start_linked("ack_timeout = \"3s\"\nkeep_alive = \"5s\"", link).await;
    let fleet = Fleet::start(&pair, 2).await;
    let refused = eventually(15, || async {
        let u = pair.uplink().await;
        (u["link_losses"].as_u64().unwrap() > 0 && u["last_error"].is_string()).then_some(u)
    })
    .await
    .expect("the failed TLS handshake is shown");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = fleet.stop().await;
    let u = pair.uplink().await;
    println!("wrong CA ({link:?}): {}", u["last_error"]);
    let why = u["last_error"].as_str().unwrap();
    assert!(
        why.contains("TLS to the cloud failed") && why.contains("certificate"),
        "{refused}"
    );
    assert_eq!(u["connected"], false, "{u}");
    assert_eq!(
        u["connects"], 0,
        "never connected, not even in plaintext: {u}"
    );
    assert_eq!(u["points_acked"], 0, "{u}");
    assert_eq!(
        u["pending_points"].as_u64().unwrap(),
        report.points_acked,
        "everything the edge accepted is kept: {u}"
    );
    // The cloud holds nothing from this edge.
    for device in &report.devices {
        assert!(series(&pair.cloud_http, device, "a").await.is_empty());
    }
    let edge = pair.cloud_edge().await;
    assert_eq!(edge["points"], 0, "{edge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_live_points_cost_at_most_four_bytes_each_in_the_uplink_messages() {
    let _heavy = heavy().await;
    let pair = Pair::start("ack_timeout = \"3s\"\nkeep_alive = \"5s\"").await;
    let fleet = Fleet::start(&pair, 4).await;
    // Past the connection and the registry going up: live data (and the edge's alerts).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = |u: Value| {
        (
            u["bytes_sent"].as_u64().unwrap(),
            u["points_acked"].as_u64().unwrap(),
        )
    };
    let socket0 = pair.proxy.bytes_up();
    let (payload0, points0) = counts(pair.uplink().await);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let socket1 = pair.proxy.bytes_up();
    let (payload1, points1) = counts(pair.uplink().await);
    let lag = now_ms() - cloud_latest(&pair).await;
    let points = (points1 - points0).max(1) as f64;
    let (payload, socket) = (
        (payload1 - payload0) as f64 / points,
        (socket1 - socket0) as f64 / points,
    );
    println!(
        "steady live uplink, 4 devices, 8 s: {points} points; the points messages' payload \
         {payload:.2} B/point; everything edge -> cloud at the socket (MQTT framing, status \
         reports, alert records) {socket:.2} B/point; the cloud {lag} ms behind"
    );
    assert!(points > 1_000.0, "live points flow");
    assert!(payload <= 4.0, "{payload:.2} B/point");
    assert!(lag < 3_000, "live data {lag} ms behind");
    let report = fleet.stop().await;
    pair.drained(60).await;
    pair.compare("steady live", &report)
        .await
        .assert_exactly_once();
}
