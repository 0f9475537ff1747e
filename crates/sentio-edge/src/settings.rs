//! What the uplink needs to know: where the cloud is, who the edge is, and its bounds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sentio_core::EdgeId;

/// Why the uplink's settings are wrong; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The upstream URL is not `mqtt://host:port` or `mqtts://host:port`.
    #[error("edge.upstream: {0}")]
    Upstream(String),
    /// The CA file for `mqtts://` cannot be used.
    #[error("edge.ca_file: {0}")]
    CaFile(String),
}

/// The cloud's broker: `mqtt://host:port` (port 1883 when left out) or, over TLS,
/// `mqtts://host:port` (port 8883).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address; over TLS also the name the cloud's certificate must carry.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// MQTT over TLS (`mqtts://`).
    pub tls: bool,
}

impl Upstream {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub fn parse(url: &str) -> Result<Self, SettingsError> {
        let bad = |why: &str| Err(SettingsError::Upstream(format!("{url:?}: {why}")));
        let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (rest, true, 8883)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (rest, false, 1883)
        } else {
            return bad("give mqtts://host:port (TLS) or mqtt://host:port");
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => return bad("the port must be 1-65535"),
            },
            _ => (rest, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return bad("no host");
        }
        Ok(Self {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// How to run the uplink.
#[derive(Debug, Clone)]
pub struct UplinkSettings {
    /// The cloud's broker.
    pub upstream: Upstream,
    /// The TLS client configuration, present exactly when `upstream` is `mqtts://` (built by
    /// [`UplinkSettings::new`]: there is no plaintext fallback).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// This edge's id, registered in the cloud (`POST /api/v1/edges`).
    pub edge_id: EdgeId,
    /// Its secret, given once by the cloud.
    pub secret: String,
    /// Batch parts published and not yet acknowledged, at most.
    pub in_flight: usize,
    /// Points read from the outbox at a time, at most (whole batches: at least one).
    pub read_points: usize,
    /// A part not acknowledged within this is taken as a dead link (reconnect).
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
    /// Defaults for the given cloud and identity; over TLS the cloud is trusted by the
    /// certificates in `ca_file` (its CA or its own certificate), else by the public CAs.
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
                    "a CA file is for MQTT over TLS: give mqtts://host:port".into(),
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
        let ok = |u: &str, host: &str, port, tls| {
            let parsed = Upstream::parse(u).unwrap();
            assert_eq!(
                parsed,
                Upstream {
                    host: host.into(),
                    port,
                    tls
                },
                "{u}"
            );
            assert_eq!(Upstream::parse(&parsed.to_string()).unwrap(), parsed, "{u}");
        };
        ok("mqtt://cloud:1884", "cloud", 1884, false);
        ok("mqtt://cloud", "cloud", 1883, false);
        ok("mqtt://127.0.0.1:9/", "127.0.0.1", 9, false);
        ok("mqtt://[::1]:1883", "::1", 1883, false);
        ok("mqtts://cloud", "cloud", 8883, true);
        ok(
            "mqtts://cloud.example.org:9883",
            "cloud.example.org",
            9883,
            true,
        );
        for bad in [
            "cloud:1883",
            "http://x",
            "mqtt://",
            "mqtts://",
            "mqtt://x:0",
            "mqtt://x:port",
            "tls://x:8883",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
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
        assert!(new("mqtt://cloud", None).unwrap().tls.is_none());
        let e = new("mqtt://cloud", Some(Path::new("ca.pem"))).unwrap_err();
        assert!(matches!(e, SettingsError::CaFile(_)), "{e}");
    }
}
