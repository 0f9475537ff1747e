//! MQTT over TLS with the self-signed certificate generated on first start, driven by
//! Debian's `mosquitto_pub` / `mosquitto_sub` (OpenSSL) with `--cafile`. Skipped with a notice
//! where they are not installed (`scripts/services.sh` installs them; CI runs it).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;
use sentio::node::Node;
use serde_json::json;

/// mosquitto_pub/sub over TLS to 127.0.0.1:`port`; `cafile` None = no trust anchor given.
fn tls_client(tool: &str, port: u16, cafile: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5"]);
    if let Some(ca) = cafile {
        cmd.arg("--cafile").arg(ca);
    } else {
        // The system trust store, which does not know a self-signed certificate.
        cmd.args(["--capath", "/etc/ssl/certs"]);
    }
    cmd.args(args).output().expect("the mosquitto client runs")
}

async fn start_with_tls(dir: &Path) -> Node {
    start_with(dir, |c| c.mqtt.tls.enabled = true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_tls_with_the_generated_certificate() {
    if !have("mosquitto_pub") || !have("mosquitto_sub") {
        eprintln!("SKIPPED: mosquitto_pub/mosquitto_sub not installed (run scripts/services.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_tls(dir.path()).await;
    let (tls_addr, fingerprint) = node.mqtt_tls.clone().expect("TLS listener");
    assert_ne!(tls_addr.port(), node.mqtt_addr.port());
    let cert = dir.path().join("tls/mqtt-cert.pem");
    assert!(
        cert.is_file(),
        "the generated certificate is in <data>/tls/"
    );
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");

    let (_, user, pass) =
        create_token(&node, "tls", json!([{"filter": "tls/#", "rights": "both"}])).await;
    let port = tls_addr.port();

    // A subscriber over TLS waits for one message; a publisher over TLS sends it.
    let sub = std::thread::spawn({
        let (cert, user, pass) = (cert.clone(), user.clone(), pass.clone());
        move || {
            tls_client(
                "mosquitto_sub",
                port,
                Some(&cert),
                &[
                    "-u", &user, "-P", &pass, "-t", "tls/#", "-C", "1", "-W", "10", "-q", "1",
                ],
            )
        }
    });
    let mut published = None;
    for _ in 0..50 {
        // Until the subscriber is in (it is listed with its subscription).
        let (_, clients) = api(&node, "GET", "/api/v1/broker/clients", None).await;
        if clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["subscriptions"] == json!(["tls/#"]))
        {
            let out = tokio::task::spawn_blocking({
                let (cert, user, pass) = (cert.clone(), user.clone(), pass.clone());
                move || {
                    tls_client(
                        "mosquitto_pub",
                        port,
                        Some(&cert),
                        &[
                            "-u", &user, "-P", &pass, "-t", "tls/a", "-m", "over-tls", "-q", "1",
                        ],
                    )
                }
            })
            .await
            .unwrap();
            published = Some(out);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let published = published.expect("the TLS subscriber connected and subscribed");
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let sub = tokio::task::spawn_blocking(move || sub.join().unwrap())
        .await
        .unwrap();
    assert!(
        sub.status.success(),
        "{}",
        String::from_utf8_lossy(&sub.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&sub.stdout).trim(), "over-tls");

    // A client that does not trust the certificate is refused by its own TLS check; credentials
    // are still checked over TLS.
    let untrusted = tokio::task::spawn_blocking({
        let (user, pass) = (user.clone(), pass.clone());
        move || {
            tls_client(
                "mosquitto_pub",
                port,
                None,
                &["-u", &user, "-P", &pass, "-t", "tls/a", "-m", "x"],
            )
        }
    })
    .await
    .unwrap();
    assert!(!untrusted.status.success());
    let wrong = tokio::task::spawn_blocking({
        let (cert, user) = (cert.clone(), user.clone());
        move || {
            tls_client(
                "mosquitto_pub",
                port,
                Some(&cert),
                &["-u", &user, "-P", "wrong", "-t", "tls/a", "-m", "x"],
            )
        }
    })
    .await
    .unwrap();
    assert!(!wrong.status.success());
    node.shutdown().await;

    // A restart reuses the certificate: same fingerprint.
    let node = start_with_tls(dir.path()).await;
    assert_eq!(node.mqtt_tls.clone().unwrap().1, fingerprint);
    node.shutdown().await;
}

/// A TLS port that cannot be listened on stops the node with an error naming the address and
/// the bind's own error: whether another program holds it, or it is the node's own plain
/// MQTT port (which passes the check for other programs and then fails in the broker; it
/// used to say only "the TLS listener has no address").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_port_that_cannot_be_listened_on_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = taken.local_addr().unwrap();
    let mut c = node_config(dir.path());
    c.mqtt.tls.enabled = true;
    c.mqtt.tls.listen = held;
    let msg = format!("{:#}", try_start(c).await.err().expect("TLS port taken"));
    assert!(
        msg.contains(&held.port().to_string()) && msg.contains("mqtt.tls.listen"),
        "{msg}"
    );
    drop(taken);

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let both = free.local_addr().unwrap();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let mut c = node_config(dir.path());
    c.mqtt.listen = both;
    c.mqtt.tls.enabled = true;
    c.mqtt.tls.listen = both;
    let msg = format!(
        "{:#}",
        try_start(c).await.err().expect("TLS on the MQTT port")
    );
    assert!(
        msg.contains(&format!("cannot listen for MQTT over TLS on {both}"))
            && msg.contains("in use"),
        "{msg}"
    );
}
