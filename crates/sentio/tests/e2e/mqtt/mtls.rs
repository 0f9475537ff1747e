//! Optional mutual TLS (`serve --tls-client-ca FILE`). A client certificate signed by
//! the configured CA whose CN is a registered device id authenticates as that device without a
//! password (ACL still `devices/<id>/...`); another CA's certificate fails the handshake; an
//! unregistered CN is refused at CONNECT with "not authorized"; clients without a certificate
//! keep using their password; without `--tls-client-ca` a certificate alone gets nowhere.
//! Certificates are made with rcgen; the client is rumqttc with a rustls (ring) configuration.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sentio::node::Node;

/// A certificate authority that signs client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A client certificate with subject CN `cn` signed by `ca`: (cert PEM, key PEM).
fn client_cert(ca: &Ca, cn: &str) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn start_mtls(dir: &Path, client_ca: Option<&Ca>) -> Node {
    let ca_file = client_ca.map(|ca| {
        let path = dir.join("client-ca.pem");
        std::fs::write(&path, &ca.pem).unwrap();
        path
    });
    start_with(dir, |c| {
        c.mqtt.tls.enabled = true;
        c.mqtt.tls.client_ca = ca_file;
    })
    .await
}

/// rustls client configuration trusting the node's generated server certificate, optionally
/// presenting a client certificate.
fn client_tls(node_dir: &Path, identity: Option<&(String, String)>) -> TlsConfiguration {
    let server_cert = std::fs::read(node_dir.join("tls/mqtt-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&server_cert) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConfiguration::Rustls(Arc::new(config))
}

/// MQTT 3.1.1 over TLS: connected, or the error (handshake failure or refused CONNECT).
async fn tls_connect(
    node: &Node,
    tls: TlsConfiguration,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let (addr, _) = node.mqtt_tls.clone().expect("TLS listener");
    let mut o = MqttOptions::new(client_id, "127.0.0.1", addr.port());
    o.set_transport(Transport::Tls(tls));
    if let Some((user, pass)) = credentials {
        o.set_credentials(user, pass);
    }
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut el) = AsyncClient::new(o, 100);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .expect("an answer within 5 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, el)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certificate_from_the_configured_ca_replaces_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (ca("Sentio test devices CA"), ca("Somebody else's CA"));
    let node = start_mtls(dir.path(), Some(&ours)).await;
    let secret = register(&node, "pump-7", "pump").await;
    register(&node, "pump-8", "pump").await;

    // CN = pump-7, signed by our CA, no username or password: authenticated as pump-7.
    let pump7 = client_cert(&ours, "pump-7");
    let (client, mut el) = tls_connect(&node, client_tls(dir.path(), Some(&pump7)), "p7", None)
        .await
        .expect("the certificate authenticates the device");
    publish_acked(
        &client,
        &mut el,
        "devices/pump-7/telemetry",
        br#"{"bearing_temp": 64.0}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(points(&node, "pump-7", "bearing_temp").await[0].1, 64.0);
    // Its ACL is the device's: not another device's topics.
    client
        .subscribe("devices/pump-8/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Incoming(Packet::SubAck(a)) => break a.return_codes,
            _ => continue,
        }
    };
    assert_eq!(codes, vec![SubscribeReasonCode::Failure]);
    let (_, clients) = api(&node, "GET", "/api/v1/broker/clients", None).await;
    assert!(
        clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == "p7" && c["username"] == "pump-7"),
        "{clients}"
    );

    // The same certificate claiming another device's username: refused.
    match tls_connect(
        &node,
        client_tls(dir.path(), Some(&pump7)),
        "p7b",
        Some(("pump-8", "whatever")),
    )
    .await
    {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)) => {}
        other => panic!("a certificate for pump-7 used as pump-8: {:?}", other.err()),
    }

    // CN of an unregistered device, signed by our CA: refused at CONNECT, "not authorized".
    let ghost = client_cert(&ours, "ghost-1");
    match tls_connect(&node, client_tls(dir.path(), Some(&ghost)), "g", None).await {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)) => {}
        other => panic!("unregistered CN: {:?}", other.err()),
    }

    // The same over MQTT 5: CONNACK reason code "Not authorized" (0x87).
    {
        use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as Code5, Packet as Packet5};
        use rumqttc::v5::{AsyncClient as Client5, ConnectionError as Err5, Event as Event5};
        let (addr, _) = node.mqtt_tls.clone().unwrap();
        let mut o = rumqttc::v5::MqttOptions::new("g5", "127.0.0.1", addr.port());
        o.set_transport(Transport::Tls(client_tls(dir.path(), Some(&ghost))));
        let (_c, mut el) = Client5::new(o, 10);
        let refused = loop {
            match tokio::time::timeout(Duration::from_secs(5), el.poll())
                .await
                .expect("an answer within 5 s")
            {
                Ok(Event5::Incoming(Packet5::ConnAck(_))) => panic!("unregistered CN connected"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(refused, Err5::ConnectionRefused(Code5::NotAuthorized)),
            "{refused:?}"
        );
    }

    // CN = pump-7 signed by another CA: refused during the TLS handshake (no CONNACK at all).
    let forged = client_cert(&theirs, "pump-7");
    match tls_connect(&node, client_tls(dir.path(), Some(&forged)), "f", None).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            panic!("got as far as CONNECT ({code:?}): the handshake should have failed")
        }
        Err(_) => {}
        Ok(_) => panic!("a certificate from another CA was accepted"),
    }

    // No certificate: the password still works on the same listener, and is still checked.
    tls_connect(
        &node,
        client_tls(dir.path(), None),
        "pw",
        Some(("pump-7", &secret)),
    )
    .await
    .expect("password authentication alongside certificates");
    match tls_connect(
        &node,
        client_tls(dir.path(), None),
        "pw2",
        Some(("pump-7", "no")),
    )
    .await
    {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)) => {}
        other => panic!("wrong password over TLS: {:?}", other.err()),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_ca_a_certificate_alone_does_not_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("Sentio test devices CA");
    let node = start_mtls(dir.path(), None).await;
    let secret = register(&node, "pump-7", "pump").await;
    let pump7 = client_cert(&ours, "pump-7");
    // The server asks for no certificate, so the client sends none and CONNECT has no username.
    match tls_connect(&node, client_tls(dir.path(), Some(&pump7)), "p7", None).await {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)) => {}
        other => panic!("certificate without --tls-client-ca: {:?}", other.err()),
    }
    tls_connect(
        &node,
        client_tls(dir.path(), None),
        "pw",
        Some(("pump-7", &secret)),
    )
    .await
    .expect("password authentication as before");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ca_without_the_tls_listener_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca("x").pem).unwrap();
    let mut c = node_config(&dir.path().join("data"));
    c.mqtt.tls.client_ca = Some(ca_file);
    let err = try_start(c).await.err().expect("refused");
    assert!(err.to_string().contains("mqtt.tls.client_ca"), "{err}");

    // A file without a certificate: named in the error.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut c = node_config(&dir.path().join("data2"));
    c.mqtt.tls.enabled = true;
    c.mqtt.tls.client_ca = Some(bad);
    let err = try_start(c).await.err().expect("refused");
    assert!(format!("{err:#}").contains("bad.pem"), "{err:#}");
}

/// The same with another TLS stack: Debian's `mosquitto_pub` (OpenSSL) with `--cert/--key` and
/// no username. Skipped with a notice where it is not installed (`scripts/services.sh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_authenticates_with_its_certificate() {
    if !have("mosquitto_pub") {
        eprintln!("SKIPPED: mosquitto_pub not installed (run scripts/services.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (ca("Sentio test devices CA"), ca("Somebody else's CA"));
    let node = start_mtls(dir.path(), Some(&ours)).await;
    register(&node, "pump-7", "pump").await;
    let port = node.mqtt_tls.clone().unwrap().0.port();
    let publish = |who: &str, (cert, key): (String, String), value: f64| {
        let (cert_file, key_file) = (
            dir.path().join(format!("{who}-cert.pem")),
            dir.path().join(format!("{who}-key.pem")),
        );
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        let mut cmd = std::process::Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
            .arg("--cafile")
            .arg(dir.path().join("tls/mqtt-cert.pem"))
            .arg("--cert")
            .arg(&cert_file)
            .arg("--key")
            .arg(&key_file)
            .args(["-i", who, "-q", "1", "-t", "devices/pump-7/telemetry"])
            .args(["-m", &format!("{{\"vibration\": {value}}}")]);
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let out = publish("ours", client_cert(&ours, "pump-7"), 0.5).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = publish("theirs", client_cert(&theirs, "pump-7"), 9.0).await;
    assert!(
        !out.status.success(),
        "another CA's certificate was accepted"
    );
    let stored: Vec<f64> = points(&node, "pump-7", "vibration")
        .await
        .into_iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(stored, vec![0.5]);
    node.shutdown().await;
}
