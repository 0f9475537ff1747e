//! The API and the page over HTTPS, with the MQTT over TLS certificate: a real HTTPS client
//! trusting the node's certificate reads `/health` and an admin route; plaintext HTTP on the
//! HTTPS port gets no answer; a socket that never starts its TLS handshake is closed at the
//! header timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::raw_http::read_until_closed;
use crate::support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Status and body of a GET over HTTPS, trusting only the certificate in `cert_pem`.
async fn https_get(url: String, cert_pem: Vec<u8>, auth: Option<String>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let roots: Vec<_> = ureq::tls::parse_pem(&cert_pem)
            .filter_map(|item| match item.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        assert!(!roots.is_empty(), "no certificate in the node's PEM file");
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .into();
        let mut req = agent.get(&url);
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().expect("HTTPS request");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_api_with_the_mqtt_certificate_and_bounds_its_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.mqtt.tls.enabled = true;
        c.http.tls.enabled = true;
        c.http.limits.header_timeout_ms = 1000;
    })
    .await;
    let (https, cert) = node.https.clone().expect("HTTPS listens");
    let (_, mqtt_fingerprint) = node.mqtt_tls.clone().expect("MQTT over TLS listens");
    assert_eq!(cert, dir.path().join("tls").join("mqtt-cert.pem"));
    let pem = std::fs::read(&cert).unwrap();
    let der = ureq::tls::parse_pem(&pem)
        .find_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c.der().to_vec()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        sentio_broker::certificate_fingerprint(&der),
        mqtt_fingerprint,
        "HTTPS and MQTT over TLS serve different certificates"
    );

    // A real HTTPS client that trusts only the node's certificate.
    let base = format!("https://127.0.0.1:{}", https.port());
    let (status, body) = https_get(format!("{base}/api/v1/health"), pem.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    let (status, body) = https_get(format!("{base}/api/v1/devices"), pem.clone(), bearer()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = https_get(format!("{base}/api/v1/devices"), pem.clone(), None).await;
    assert_eq!(status, 401);

    // Plaintext HTTP on the HTTPS port: no HTTP answer, the connection is closed.
    let mut s = TcpStream::connect(https).await.unwrap();
    s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "a plaintext request left the connection open");
    assert!(!got.contains("HTTP/1.1"), "plaintext answered: {got:?}");

    // A socket that never sends its ClientHello is closed at the header timeout.
    let mut silent = TcpStream::connect(https).await.unwrap();
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(6)).await;
    assert!(closed, "a silent TLS socket is still open after 6 s");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Plain HTTP stays available beside it.
    let (status, _) = http(
        "GET",
        format!("http://{}/api/v1/health", node.http_addr),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    node.shutdown().await;
}
