//! `run` against a minimal in-process MQTT 3.1.1 broker: credentials, payloads, refusals with
//! back-off, reconnection after the broker drops a connection, and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::{ConnAck, ConnectReturnCode, Packet, PubAck, QoS};
use sentio_sim::{FleetSpec, SimConfig, SimError, SimReport, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Policy {
    /// Accept clients whose username is their client id and whose password matches `secret`.
    Accept,
    /// Refuse every connection with "bad user name or password".
    RefuseAll,
    /// Accept, but close each of the first `n` connections after its third publish.
    DropFirst(usize),
}

#[derive(Default, Debug)]
struct Log {
    /// (client id, username, password) of every CONNECT.
    connects: Vec<(String, Option<String>, Option<String>)>,
    /// (topic, payload) of every PUBLISH.
    publishes: Vec<(String, Vec<u8>)>,
    disconnects: usize,
}

struct FakeBroker {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

fn secret(id: &str) -> String {
    format!("secret-of-{id}")
}

impl FakeBroker {
    async fn start(policy: Policy) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        tokio::spawn(async move {
            let mut index = 0;
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(socket, policy, index, shared.clone()));
                index += 1;
            }
        });
        Self { addr, log }
    }

    fn config(&self, spec: FleetSpec) -> SimConfig {
        let mut config = SimConfig::new(self.addr.ip().to_string(), self.addr.port(), spec);
        config.interval = Duration::from_millis(100);
        config.credentials = spec
            .devices()
            .into_iter()
            .map(|d| (d.id.clone(), secret(&d.id)))
            .collect::<HashMap<_, _>>();
        config
    }
}

async fn send(socket: &mut TcpStream, packet: Packet) {
    let mut out = BytesMut::new();
    packet.write(&mut out, 1 << 20).unwrap();
    let _ = socket.write_all(&out).await;
}

async fn serve(mut socket: TcpStream, policy: Policy, index: usize, log: Arc<Mutex<Log>>) {
    let mut buf = BytesMut::new();
    let mut publishes = 0;
    loop {
        let packet = match Packet::read(&mut buf, 1 << 20) {
            Ok(p) => p,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                match socket.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
            Err(e) => panic!("malformed packet: {e:?}"),
        };
        match packet {
            Packet::Connect(c) => {
                let (user, pass) = match &c.login {
                    Some(l) => (
                        Some(l.username.clone()).filter(|u| !u.is_empty()),
                        Some(l.password.clone()).filter(|p| !p.is_empty()),
                    ),
                    None => (None, None),
                };
                let ok = match policy {
                    Policy::RefuseAll => false,
                    _ => {
                        user.as_deref() == Some(c.client_id.as_str())
                            && pass.as_deref() == Some(secret(&c.client_id).as_str())
                    }
                };
                log.lock()
                    .unwrap()
                    .connects
                    .push((c.client_id.clone(), user, pass));
                let code = if ok {
                    ConnectReturnCode::Success
                } else {
                    ConnectReturnCode::BadUserNamePassword
                };
                send(&mut socket, Packet::ConnAck(ConnAck::new(code, false))).await;
                if !ok {
                    return;
                }
            }
            Packet::Publish(p) => {
                log.lock()
                    .unwrap()
                    .publishes
                    .push((p.topic.clone(), p.payload.to_vec()));
                if p.qos == QoS::AtLeastOnce {
                    send(&mut socket, Packet::PubAck(PubAck::new(p.pkid))).await;
                }
                publishes += 1;
                if let Policy::DropFirst(n) = policy
                    && index < n
                    && publishes == 3
                {
                    return; // drops the TCP connection
                }
            }
            Packet::PingReq => send(&mut socket, Packet::PingResp).await,
            Packet::Disconnect => {
                log.lock().unwrap().disconnects += 1;
                return;
            }
            _ => {}
        }
    }
}

fn small_fleet() -> FleetSpec {
    FleetSpec {
        seed: 9,
        rooms: 1,
        pumps: 1,
        wearables: 1,
    }
}

async fn run_for(config: SimConfig, limit: Duration) -> SimReport {
    tokio::time::timeout(limit, run(config, std::future::pending()))
        .await
        .expect("run ends by itself when its duration is over")
        .expect("run succeeds")
}

#[tokio::test]
async fn publishes_json_telemetry_per_device_with_credentials() {
    let broker = FakeBroker::start(Policy::Accept).await;
    let mut config = broker.config(small_fleet());
    config.duration = Some(Duration::from_millis(1500));
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let report = run_for(config, Duration::from_secs(10)).await;

    assert_eq!(report.devices, 3);
    assert_eq!(report.errors(), 0, "{report:?}");
    assert_eq!(report.connections, 3, "{report:?}");
    assert!(report.messages_published >= 3 * 8, "{report:?}");
    // Each device also reported its twin once, when it connected.
    assert_eq!(report.answers_published, 3, "{report:?}");
    let all = report.messages_published + report.answers_published;
    assert_eq!(report.messages_sent, all);
    assert_eq!(report.messages_acked, all);

    // The broker reads the final DISCONNECTs asynchronously.
    for _ in 0..50 {
        if broker.log.lock().unwrap().disconnects == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = broker.log.lock().unwrap();
    let mut ids: Vec<&str> = log.connects.iter().map(|c| c.0.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["pump-1", "room-1", "wearable-1"]);
    for (id, user, pass) in &log.connects {
        assert_eq!(user.as_deref(), Some(id.as_str()));
        assert_eq!(pass.as_deref(), Some(secret(id).as_str()));
    }
    let (reports, telemetry): (Vec<_>, Vec<_>) = log
        .publishes
        .iter()
        .partition(|(topic, _)| topic.ends_with("/twin/reported"));
    assert_eq!(telemetry.len() as u64, report.messages_published);
    assert_eq!(reports.len(), 3);
    let (_, room) = reports
        .iter()
        .find(|(topic, _)| topic == "devices/room-1/twin/reported")
        .expect("room-1 reported");
    let room: serde_json::Value = serde_json::from_slice(room).unwrap();
    assert_eq!(room["lights"], "auto", "{room}");
    assert_eq!(log.disconnects, 3, "graceful DISCONNECT per device");
    let mut points = 0;
    for (topic, payload) in telemetry {
        let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
        points += json.as_object().unwrap().len() as u64 - 1;
        let ts = json["ts"].as_i64().expect("ts in ms");
        assert!(
            ts >= before_ms && ts < before_ms + 10_000,
            "wall-clock ts {ts}"
        );
        let key = match topic.as_str() {
            "devices/room-1/telemetry" => "co2",
            "devices/pump-1/telemetry" => "bearing_temp",
            "devices/wearable-1/telemetry" => "heart_rate",
            other => panic!("unexpected topic {other}"),
        };
        assert!(json[key].is_f64(), "{key} in {json}");
    }
    assert_eq!(report.points_published, points);
}

#[tokio::test]
async fn no_password_is_sent_for_a_device_without_a_secret() {
    let broker = FakeBroker::start(Policy::Accept).await;
    let spec = FleetSpec {
        seed: 1,
        rooms: 1,
        pumps: 0,
        wearables: 0,
    };
    let mut config = broker.config(spec);
    config.credentials.clear();
    config.duration = Some(Duration::from_millis(400));
    let report = run_for(config, Duration::from_secs(10)).await;
    // The fake broker wants the secret, so the device is refused; it saw no password.
    assert!(report.connections_refused >= 1, "{report:?}");
    let log = broker.log.lock().unwrap();
    assert_eq!(
        log.connects[0],
        ("room-1".to_owned(), Some("room-1".to_owned()), None)
    );
}

#[tokio::test]
async fn refused_connections_back_off_instead_of_spinning() {
    let broker = FakeBroker::start(Policy::RefuseAll).await;
    let spec = FleetSpec {
        seed: 1,
        rooms: 0,
        pumps: 1,
        wearables: 0,
    };
    let mut config = broker.config(spec);
    config.duration = Some(Duration::from_millis(2500));
    let report = run_for(config, Duration::from_secs(10)).await;
    // Attempts at about 0, 0.5, 1.5 s (back-off 0.5 s, 1 s, 2 s ...).
    assert!((2..=4).contains(&report.connections_refused), "{report:?}");
    assert_eq!(report.connections, 0);
    assert_eq!(report.messages_published, 0);
    // Ticking starts after at most 2 s of waiting for connections; every reading is dropped.
    assert!(report.ticks >= 3, "{report:?}");
    assert_eq!(report.messages_dropped, report.ticks, "{report:?}");
    assert_eq!(
        broker.log.lock().unwrap().connects.len() as u64,
        report.connections_refused
    );
}

#[tokio::test]
async fn reconnects_after_the_broker_drops_the_connection() {
    let broker = FakeBroker::start(Policy::DropFirst(1)).await;
    let spec = FleetSpec {
        seed: 1,
        rooms: 0,
        pumps: 0,
        wearables: 1,
    };
    let mut config = broker.config(spec);
    config.duration = Some(Duration::from_millis(2500));
    let report = run_for(config, Duration::from_secs(10)).await;
    assert_eq!(report.connections, 2, "{report:?}");
    assert!(report.connection_errors >= 1, "{report:?}");
    let log = broker.log.lock().unwrap();
    assert_eq!(log.connects.len(), 2);
    assert!(
        log.publishes.len() > 6,
        "publishing resumed: {}",
        log.publishes.len()
    );
}

#[tokio::test]
async fn stops_when_the_shutdown_future_completes() {
    let broker = FakeBroker::start(Policy::Accept).await;
    let config = broker.config(small_fleet());
    let started = Instant::now();
    let report = run(config, tokio::time::sleep(Duration::from_millis(700)))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!((3..=9).contains(&report.ticks), "{report:?}");
    assert_eq!(report.errors(), 0);
}

#[tokio::test]
async fn rejects_an_invalid_config() {
    let mut config = SimConfig::new("127.0.0.1", 1883, small_fleet());
    config.qos = 3;
    let err = run(config, std::future::pending()).await.unwrap_err();
    assert!(matches!(err, SimError::InvalidConfig(_)), "{err}");
}

#[tokio::test]
async fn run_can_be_spawned_on_the_runtime() {
    let broker = FakeBroker::start(Policy::Accept).await;
    let mut config = broker.config(small_fleet());
    config.duration = Some(Duration::from_millis(300));
    // `tokio::spawn` requires the future to be Send + 'static, as the platform's tests need.
    let handle = tokio::spawn(run(config, async {}));
    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.ticks, 0, "shutdown already complete: no tick");
}
