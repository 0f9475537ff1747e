//! Guessing a device's secret (or a token's password) over MQTT: failed CONNECTs are counted
//! per address (in `/metrics`) and on the device they name (recorded off the CONNECT path),
//! logged at most once per interval per address without the username or password, and an
//! address that fails `mqtt.limits.max_auth_failures` times is refused (CONNACK 0x97, its
//! credential not even checked) for `auth_backoff_s` seconds.

use std::time::Duration;

use crate::support::raw::connect_raw;
use crate::support::*;

/// CONNACK reason codes (MQTT 5).
const BAD_CREDENTIALS: u8 = 0x86;
const QUOTA_EXCEEDED: u8 = 0x97;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_counted_recorded_and_the_address_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.mqtt.limits.max_auth_failures = 3;
        c.mqtt.limits.auth_backoff_s = 2;
    })
    .await;
    let secret = register(&node, "pump-1", "pump").await;
    // Two wrong secrets for a registered device and one for an id that does not exist: the
    // same answer.
    for (i, user) in ["pump-1", "ghost-9", "pump-1"].into_iter().enumerate() {
        let (_, rc) = connect_raw(node.mqtt_addr, 5, &format!("g{i}"), user, "guess").await;
        assert_eq!(rc, BAD_CREDENTIALS, "{user}");
    }
    // The address is now refused, even with the right secret.
    let (_, rc) = connect_raw(node.mqtt_addr, 5, "ok", "pump-1", &secret).await;
    assert_eq!(rc, QUOTA_EXCEEDED, "the address backs off");
    let (_, rc) = connect_raw(node.mqtt_addr, 4, "ok", "pump-1", &secret).await;
    assert_eq!(rc, 0x03, "3.1.1: server unavailable");
    assert_eq!(
        metric_value(&node, "sentio_mqtt_auth_failures_total").await,
        3
    );
    assert_eq!(
        metric_value(&node, "sentio_mqtt_limited_total{limit=\"auth_backoff\"}").await,
        2
    );
    // The registered device has its two failures recorded (by the background recorder).
    let recorded = eventually(5, || async {
        let (_, d) = api(&node, "GET", "/api/v1/devices/pump-1", None).await;
        (d["rejected_count"] == 2).then_some(d)
    })
    .await;
    let d = recorded.expect("two refusals recorded on pump-1");
    assert!(
        d["last_rejection"]["reason"]
            .as_str()
            .unwrap()
            .contains("wrong secret"),
        "{d}"
    );
    // After the back-off, the right secret connects again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, rc) = connect_raw(node.mqtt_addr, 5, "ok", "pump-1", &secret).await;
    assert_eq!(rc, 0, "admitted after the back-off");
    node.shutdown().await;
}

/// With the defaults (10 failures per 60 s) on the real binary: twenty guesses give ten
/// refusals for the credential, then 0x97; the log holds one line for them, and never the
/// guessed password or the username.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_logged_once_per_interval_and_never_with_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mqtt, lines) = spawn_sentio_logging(dir.path());
    let mut codes = Vec::new();
    for i in 0..20 {
        let (_, rc) = connect_raw(mqtt, 5, &format!("g{i}"), "pump-7", "hunter2-guess").await;
        codes.push(rc);
    }
    assert_eq!(codes[..10], [BAD_CREDENTIALS; 10]);
    assert_eq!(codes[10..], [QUOTA_EXCEEDED; 10]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.lock().unwrap().clone();
    let all = lines.join("\n");
    let refusals = lines.iter().filter(|l| l.contains("MQTT connect")).count();
    assert_eq!(refusals, 1, "one line per address per interval:\n{all}");
    assert!(!all.contains("hunter2"), "the password is logged:\n{all}");
    assert!(!all.contains("pump-7"), "the username is logged:\n{all}");
}
