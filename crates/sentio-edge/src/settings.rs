//! What the uplink needs to know: where the cloud is, who the edge is, and its bounds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sentio_core::EdgeId;

/// Why the uplink's settings are wrong; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The upstream URL is not one of `mqtt://`, `mqtts://`, `ws://`, `wss://` with a host.
    #[error("edge.upstream: {0}")]
    Upstream(String),
    /// The CA file for `mqtts://` or `wss://` cannot be used.
    #[error("edge.ca_file: {0}")]
    CaFile(String),
}

/// The cloud's broker: `mqtt://host:port` (port 1883 when left out), over TLS
/// `mqtts://host:port` (8883), or MQTT over WebSocket at the cloud's HTTP server:
/// `ws://host:port/path` (80) and, over TLS, `wss://host:port/path` (443); the path is
/// `/mqtt` when left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address; over TLS also the name the cloud's certificate must carry.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Over TLS (`mqtts://`, `wss://`).
    pub tls: bool,
    /// Over WebSocket (`ws://`, `wss://`): the path of the HTTP upgrade.
    pub ws_path: Option<String>,
}

/// The path of a cloud Sentio's MQTT-over-WebSocket endpoint.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

impl Upstream {
    /// Parses `mqtt://host[:port]`, `mqtts://host[:port]`, `ws://host[:port][/path]` or
    /// `wss://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, SettingsError> {
        let bad = |why: &str| Err(SettingsError::Upstream(format!("{url:?}: {why}")));
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad(
                "give mqtts://host:port (TLS), mqtt://host:port, or over WebSocket wss://host:port/mqtt (TLS) or ws://host:port/mqtt",
            );
        };
        let (tls, websocket, default_port) = match scheme {
            "mqtts" => (true, false, 8883),
            "mqtt" => (false, false, 1883),
            "wss" => (true, true, 443),
            "ws" => (false, true, 80),
            _ => {
                return bad(
                    "the scheme must be mqtts, mqtt, wss or ws (e.g. mqtts://host:8883, wss://host:443/mqtt)",
                );
            }
        };
        if rest.contains(['?', '#', '@']) {
            return bad(
                "no user, query or fragment: the credential goes in --upstream-secret-file",
            );
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let ws_path = match (websocket, path.trim_end_matches('/')) {
            (true, "") => Some(DEFAULT_WS_PATH.to_string()),
            (true, p) => Some(p.to_string()),
            (false, "") => None,
            (false, _) => return bad("a path is only for ws:// or wss://"),
        };
        // An IPv6 address is in brackets: `[::1]:8883`, `[::1]`.
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) if p.starts_with(':') => (h, Some(&p[1..])),
                _ => return bad("an IPv6 address goes in brackets: [::1]:8883"),
            },
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port.map(str::parse::<u16>) {
            None => default_port,
            Some(Ok(p)) if p > 0 => p,
            Some(_) => return bad("the port must be 1-65535"),
        };
        if host.is_empty() {
            return bad("no host");
        }
        Ok(Self {
            host: host.to_string(),
            port,
            tls,
            ws_path,
        })
    }
}

impl std::fmt::Display for Upstream {
    /// The URL again (for WebSocket, what the client requests).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.tls, self.ws_path.is_some()) {
            (true, false) => "mqtts",
            (false, false) => "mqtt",
            (true, true) => "wss",
            (false, true) => "ws",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)?;
        }
        f.write_str(self.ws_path.as_deref().unwrap_or(""))
    }
}

/// How to run the uplink.
#[derive(Debug, Clone)]
pub struct UplinkSettings {
    /// The cloud's broker.
    pub upstream: Upstream,
    /// The TLS client configuration, present exactly when `upstream` is `mqtts://` or
    /// `wss://` (built by [`UplinkSettings::new`]: there is no plaintext fallback).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// This edge's id, registered in the cloud (`POST /api/v1/edges`).
    pub edge_id: EdgeId,
    /// Its secret, given once by the cloud.
    pub secret: String,
    /// Batch parts published and not yet acknowledged, at most.
    pub in_flight: usize,
    /// Points read from the outbox at a time, at most (whole batches: at least one).
    pub read_points: usize,
    /// No acknowledgement at all for this long while something is in flight (timed from the
    /// later of the oldest message in flight and the last PUBACK) is taken as a dead link
    /// (reconnect): a slow cloud that keeps acknowledging is not.
    pub ack_timeout: Duration,
    /// MQTT keep-alive, at least 5 s (the client refuses less): a silent link is detected
    /// within about 1.5 times this.
    pub keep_alive: Duration,
    /// Longest wait between two connection attempts (the wait doubles from 100 ms).
    pub max_backoff: Duration,
    /// How often the outbox is looked at for new batches while the link is idle.
    pub poll: Duration,
    /// Most backlog points sent per second beside the live lane (0: no limit).
    pub backlog_rate: u64,
    /// Share of `in_flight` kept for the backlog while it is pending (at least one part), so
    /// it progresses however busy the live lane is.
    pub backlog_floor: f64,
    /// How long a live batch may wait for later ones to go in the same message (small
    /// commits coalesce: fewer headers on the wire); the backlog never waits.
    pub coalesce: Duration,
    /// Live points ready that are sent at once, without waiting out `coalesce`.
    pub coalesce_points: usize,
    /// What goes up: every point, or 1-minute rollups and the raw points around alerts (the
    /// node sets the store up to match: [`sentio_store::OutboxStore::record_rollups`]).
    pub policy: sentio_store::UplinkPolicy,
    /// With the aggregates policy: the raw points this long before and after each alert
    /// opens go up too (whole minutes).
    pub raw_around_alert: Duration,
}

impl UplinkSettings {
    /// Parts in flight the live lane may use while the backlog is pending: the floor share
    /// (at least one part) stays with the backlog, unless the window is a single part.
    pub fn live_window(&self) -> usize {
        let floor =
            ((self.in_flight as f64 * self.backlog_floor.clamp(0.0, 1.0)).ceil() as usize).max(1);
        self.in_flight.saturating_sub(floor).max(1)
    }
}

impl UplinkSettings {
    /// Defaults for the given cloud and identity; over TLS (`mqtts://` and `wss://` alike) the
    /// cloud is trusted by the certificates in `ca_file` (its CA or its own certificate), else
    /// by the public CAs.
    /// A CA file with a plaintext upstream is refused rather than ignored.
    pub fn new(
        upstream: Upstream,
        edge_id: EdgeId,
        secret: String,
        ca_file: Option<&Path>,
    ) -> Result<Self, SettingsError> {
        let tls = match (upstream.tls, ca_file) {
            (true, ca) => Some(crate::trust::client_config(ca)?),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(SettingsError::CaFile(
                    "a CA file is for TLS: give mqtts://host:port or wss://host:port/mqtt".into(),
                ));
            }
        };
        Ok(Self {
            upstream,
            tls,
            edge_id,
            secret,
            in_flight: 16,
            read_points: 20_000,
            ack_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            poll: Duration::from_millis(100),
            backlog_rate: 20_000,
            backlog_floor: 0.25,
            coalesce: Duration::from_millis(300),
            coalesce_points: 2_000,
            policy: sentio_store::UplinkPolicy::Raw,
            raw_around_alert: Duration::from_secs(300),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let ok = |u: &str, host: &str, port, tls, ws: Option<&str>| {
            let parsed = Upstream::parse(u).unwrap();
            assert_eq!(
                parsed,
                Upstream {
                    host: host.into(),
                    port,
                    tls,
                    ws_path: ws.map(str::to_string),
                },
                "{u}"
            );
            assert_eq!(Upstream::parse(&parsed.to_string()).unwrap(), parsed, "{u}");
        };
        ok("mqtt://cloud:1884", "cloud", 1884, false, None);
        ok("mqtt://cloud", "cloud", 1883, false, None);
        ok("mqtt://127.0.0.1:9/", "127.0.0.1", 9, false, None);
        ok("mqtt://[::1]:1883", "::1", 1883, false, None);
        ok("mqtts://cloud", "cloud", 8883, true, None);
        ok(
            "mqtts://cloud.example.org:9883",
            "cloud.example.org",
            9883,
            true,
            None,
        );
        ok("ws://cloud:8080/mqtt", "cloud", 8080, false, Some("/mqtt"));
        ok("ws://cloud", "cloud", 80, false, Some("/mqtt"));
        ok("wss://cloud/", "cloud", 443, true, Some("/mqtt"));
        ok("wss://cloud:443/mqtt", "cloud", 443, true, Some("/mqtt"));
        ok("wss://[::1]/x/mqtt/", "::1", 443, true, Some("/x/mqtt"));
        ok("mqtts://[fe80::1]", "fe80::1", 8883, true, None);
        assert_eq!(
            Upstream::parse("wss://cloud").unwrap().to_string(),
            "wss://cloud:443/mqtt"
        );
        for (bad, why) in [
            ("cloud:1883", "give mqtts://"),
            ("http://x", "the scheme must be"),
            ("https://x/mqtt", "the scheme must be"),
            ("tls://x:8883", "the scheme must be"),
            ("mqtt://", "no host"),
            ("mqtts://", "no host"),
            ("wss:///mqtt", "no host"),
            ("mqtt://x:0", "port"),
            ("mqtt://x:port", "port"),
            ("ws://x:99999/mqtt", "port"),
            ("mqtt://::1:1883", "port"),
            ("mqtt://[::1", "brackets"),
            ("mqtts://x:8883/mqtt", "a path is only for ws"),
            ("wss://x/mqtt?token=1", "no user, query"),
            ("wss://user:pw@x/mqtt", "no user, query"),
        ] {
            let e = Upstream::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("edge.upstream: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_backlog_keeps_its_floor_share_of_the_window() {
        let mut s = UplinkSettings::new(
            Upstream::parse("mqtt://cloud").unwrap(),
            EdgeId::parse("site-1").unwrap(),
            "s".into(),
            None,
        )
        .unwrap();
        for (in_flight, floor, live) in [
            (16, 0.25, 12),
            (16, 0.0, 15),
            (16, 1.0, 1),
            (4, 0.1, 3),
            (1, 0.5, 1),
        ] {
            (s.in_flight, s.backlog_floor) = (in_flight, floor);
            assert_eq!(s.live_window(), live, "{in_flight} x {floor}");
        }
    }

    #[test]
    fn tls_settings_exactly_for_mqtts() {
        let id = EdgeId::parse("site-1").unwrap();
        let new = |url: &str, ca: Option<&Path>| {
            UplinkSettings::new(Upstream::parse(url).unwrap(), id.clone(), "s".into(), ca)
        };
        assert!(new("mqtts://cloud", None).unwrap().tls.is_some());
        assert!(new("wss://cloud/mqtt", None).unwrap().tls.is_some());
        assert!(new("mqtt://cloud", None).unwrap().tls.is_none());
        assert!(new("ws://cloud/mqtt", None).unwrap().tls.is_none());
        for plain in ["mqtt://cloud", "ws://cloud/mqtt"] {
            let e = new(plain, Some(Path::new("ca.pem"))).unwrap_err();
            assert!(matches!(e, SettingsError::CaFile(_)), "{e}");
        }
    }
}
