//! `run` against a real MQTT broker named by `SENTIO_TEST_MQTT=host:port` (skipped when unset).
//! Optional `SENTIO_TEST_MQTT_SECRETS=room-1=s1,pump-1=s2` supplies device secrets.

use std::time::Duration;

use sentio_sim::{FleetSpec, SimConfig, run};

#[tokio::test]
async fn publishes_to_a_real_broker_for_three_seconds() {
    let Ok(target) = std::env::var("SENTIO_TEST_MQTT") else {
        eprintln!("skipped: set SENTIO_TEST_MQTT=host:port to run against a real MQTT broker");
        return;
    };
    let (host, port) = target
        .rsplit_once(':')
        .expect("SENTIO_TEST_MQTT is host:port");
    let port: u16 = port.parse().expect("port is a number");
    let spec = FleetSpec {
        seed: 1,
        rooms: 1,
        pumps: 1,
        wearables: 1,
    };
    let mut config = SimConfig::new(host, port, spec);
    config.duration = Some(Duration::from_secs(3));
    if let Ok(secrets) = std::env::var("SENTIO_TEST_MQTT_SECRETS") {
        config.credentials = secrets
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
    }
    let report = run(config, std::future::pending()).await.expect("run");
    eprintln!("{report:?}");
    assert_eq!(report.devices, 3);
    assert_eq!(report.connections, 3, "{report:?}");
    assert_eq!(report.errors(), 0, "{report:?}");
    // 3 s at 1 Hz: the first tick is immediate, so 3 or 4 ticks, minus connection set-up.
    assert!(report.messages_published >= 6, "{report:?}");
    assert_eq!(report.messages_acked, report.messages_sent, "{report:?}");
}
