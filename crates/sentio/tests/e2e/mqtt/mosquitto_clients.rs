//! Debian's `mosquitto_pub` / `mosquitto_sub` (libmosquitto) as device clients, MQTT 5
//! and 3.1.1. Skipped with a notice where they are not installed (`scripts/services.sh` installs
//! them; CI runs it).

use std::process::Command;

use crate::support::*;

fn mosquitto_pub(
    port: u16,
    version: &str,
    user: &str,
    pass: &str,
    topic: &str,
    msg: &str,
) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            version,
            "-q",
            "1",
        ])
        .args(["-i", user, "-u", user, "-P", pass, "-t", topic, "-m", msg])
        .output()
        .expect("mosquitto_pub runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_publish_and_are_confined_to_their_topics() {
    if !have("mosquitto_pub") || !have("mosquitto_sub") {
        eprintln!("SKIPPED: mosquitto_pub/mosquitto_sub not installed (run scripts/services.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let secret = register(&node, "sensor-7", "room").await;
    let port = node.mqtt_addr.port();

    for (version, value) in [("mqttv5", "1.5"), ("mqttv311", "2.5")] {
        let out = tokio::task::spawn_blocking({
            let secret = secret.clone();
            move || {
                mosquitto_pub(
                    port,
                    version,
                    "sensor-7",
                    &secret,
                    "devices/sensor-7/telemetry",
                    &format!(r#"{{"lux": {value}}}"#),
                )
            }
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lux = eventually(5, || async {
        let p = points(&node, "sensor-7", "lux").await;
        (p.len() == 2).then_some(p)
    })
    .await
    .expect("both points stored");
    assert_eq!(lux.iter().map(|p| p.1).collect::<Vec<_>>(), [1.5, 2.5]);

    // Wrong secret: mosquitto_pub fails with the broker's refusal.
    let out = tokio::task::spawn_blocking(move || {
        mosquitto_pub(
            port,
            "mqttv5",
            "sensor-7",
            "wrong",
            "devices/sensor-7/telemetry",
            "{}",
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("bad user name or password") || err.contains("not authorized"),
        "{err}"
    );

    // Subscribing outside devices/<id>/commands/ is refused; inside it is granted.
    let sub = |filter: &'static str, secret: String| {
        tokio::task::spawn_blocking(move || {
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5"])
                .args([
                    "-i",
                    "sensor-7-sub",
                    "-u",
                    "sensor-7",
                    "-P",
                    &secret,
                    "-t",
                    filter,
                ])
                .args(["-W", "1", "-d"])
                .output()
                .expect("mosquitto_sub runs")
        })
    };
    let out = sub("devices/+/telemetry", secret.clone()).await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("denied") || text.contains("135"),
        "subscription should be refused: {text}"
    );
    let out = sub("devices/sensor-7/commands/#", secret.clone())
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("received SUBACK") && text.contains("Subscribed (mid: 1): 0"),
        "{text}"
    );
    node.shutdown().await;
}
