//! How the uplink reaches the cloud's broker: the MQTT client's options for the upstream's
//! carrier. `mqtt://` is plain TCP, `mqtts://` TLS, `ws://` MQTT over WebSocket at the
//! cloud's HTTP server (`/mqtt`), `wss://` the same inside TLS, for sites that allow only
//! 443. Both TLS forms use the one [`UplinkSettings::tls`] configuration (`trust`).
//!
//! **Invariant:** a TLS upstream without a TLS configuration gets no options at all, so the
//! uplink never connects to it in plaintext.

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

use crate::UplinkSettings;

/// The client options for `s.upstream` with the client id `client_id`, its transport set
/// (the rest is the link's); an error when a TLS upstream lacks its TLS configuration.
pub(crate) fn mqtt_options(s: &UplinkSettings, client_id: String) -> Result<MqttOptions, String> {
    let up = &s.upstream;
    let tls = match (up.tls, &s.tls) {
        (true, Some(config)) => Some(TlsConfiguration::Rustls(config.clone())),
        (true, None) => return Err(format!("{up} without a TLS configuration: not connecting")),
        (false, _) => None,
    };
    let mut o = match &up.ws_path {
        // rumqttc takes the whole URL as the address of a WebSocket, and its port from it.
        Some(_) => MqttOptions::new(client_id, up.to_string(), up.port),
        None => MqttOptions::new(client_id, up.host.clone(), up.port),
    };
    o.set_transport(match (up.ws_path.is_some(), tls) {
        (false, None) => Transport::Tcp,
        (false, Some(tls)) => Transport::tls_with_config(tls),
        (true, None) => Transport::Ws,
        (true, Some(tls)) => Transport::wss_with_config(tls),
    });
    Ok(o)
}

/// Why a connection attempt failed, from the client's error `e`; a failed TLS handshake
/// (`mqtts://`, or `wss://` where it shows as a WebSocket I/O error) says what to check.
pub(crate) fn connect_failed(s: &UplinkSettings, e: &str) -> String {
    let handshake = e.contains("TLS") || e.contains("certificate");
    if s.upstream.tls && handshake {
        format!(
            "TLS to the cloud failed (is edge.ca_file / --upstream-ca its certificate or CA, \
             and {:?} a name in it?): {e}",
            s.upstream.host
        )
    } else {
        format!("connect: {e}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rumqttc::v5::AsyncClient;
    use sentio_core::EdgeId;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::Upstream;

    fn settings(url: &str) -> UplinkSettings {
        let upstream = Upstream::parse(url).unwrap();
        UplinkSettings::new(upstream, EdgeId::parse("site-1").unwrap(), "s".into(), None).unwrap()
    }

    #[test]
    fn each_scheme_gets_its_transport() {
        let transport = |url: &str| {
            mqtt_options(&settings(url), "c".into())
                .unwrap()
                .transport()
        };
        assert!(matches!(transport("mqtt://cloud"), Transport::Tcp));
        assert!(matches!(
            transport("mqtts://cloud"),
            Transport::Tls(TlsConfiguration::Rustls(_))
        ));
        assert!(matches!(transport("ws://cloud:8080/mqtt"), Transport::Ws));
        assert!(matches!(
            transport("wss://cloud/mqtt"),
            Transport::Wss(TlsConfiguration::Rustls(_))
        ));
        let o = mqtt_options(&settings("wss://cloud/mqtt"), "c".into()).unwrap();
        assert_eq!(o.broker_address(), ("wss://cloud:443/mqtt".into(), 443));
    }

    #[test]
    fn a_tls_upstream_without_tls_settings_gets_no_options() {
        for url in ["wss://cloud/mqtt", "mqtts://cloud"] {
            let mut s = settings(url);
            s.tls = None;
            let e = mqtt_options(&s, "c".into()).unwrap_err();
            assert!(e.contains("without a TLS configuration"), "{e}");
        }
    }

    /// What a `wss://` client sends first on the socket: a TLS ClientHello (record type 22),
    /// never the plaintext HTTP upgrade (`GET /mqtt`).
    #[tokio::test]
    async fn wss_opens_with_tls_never_plaintext() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let o = mqtt_options(
            &settings(&format!("wss://127.0.0.1:{port}/mqtt")),
            "c".into(),
        );
        let (_client, mut el) = AsyncClient::new(o.unwrap(), 4);
        let poll = tokio::spawn(async move { el.poll().await.map(|_| ()) });
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut first = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut first))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first[0], 22, "a TLS handshake record, got {first:?}");
        assert_ne!(&first, b"GET ");
        poll.abort();
    }
}
