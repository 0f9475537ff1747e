//! What the uplink needs to know: where the cloud is, who the edge is, and its bounds.

use std::time::Duration;

use sentio_core::EdgeId;

/// Why the uplink's settings are wrong; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The upstream URL is not `mqtt://host:port`.
    #[error("edge.upstream: {0}")]
    Upstream(String),
}

/// The cloud's broker: `mqtt://host:port` (port 1883 when left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Upstream {
    /// Parses `mqtt://host[:port]`.
    pub fn parse(url: &str) -> Result<Self, SettingsError> {
        let bad = |why: &str| Err(SettingsError::Upstream(format!("{url:?}: {why}")));
        let Some(rest) = url.strip_prefix("mqtt://") else {
            if url.starts_with("mqtts://") {
                return bad(
                    "MQTT over TLS to the cloud is not supported yet; use mqtt:// (over a VPN or a TLS tunnel)",
                );
            }
            return bad("give mqtt://host:port");
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => return bad("the port must be 1-65535"),
            },
            _ => (rest, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return bad("no host");
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

/// How to run the uplink.
#[derive(Debug, Clone)]
pub struct UplinkSettings {
    /// The cloud's broker.
    pub upstream: Upstream,
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
}

impl UplinkSettings {
    /// Defaults for the given cloud and identity.
    pub fn new(upstream: Upstream, edge_id: EdgeId, secret: String) -> Self {
        Self {
            upstream,
            edge_id,
            secret,
            in_flight: 16,
            read_points: 20_000,
            ack_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            poll: Duration::from_millis(100),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let ok = |u: &str, host: &str, port| {
            assert_eq!(
                Upstream::parse(u).unwrap(),
                Upstream {
                    host: host.into(),
                    port
                },
                "{u}"
            )
        };
        ok("mqtt://cloud:1884", "cloud", 1884);
        ok("mqtt://cloud", "cloud", 1883);
        ok("mqtt://127.0.0.1:9/", "127.0.0.1", 9);
        ok("mqtt://[::1]:1883", "::1", 1883);
        for bad in [
            "cloud:1883",
            "http://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:port",
            "mqtts://x:8883",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
