//! Broker errors.

use std::net::SocketAddr;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Another program holds the port; the second field names the configuration key that chooses it.
    #[error("MQTT port {port} is already in use on {ip} (choose another with {key})", port = .0.port(), ip = .0.ip(), key = .1)]
    PortInUse(SocketAddr, &'static str),
    /// The address could not be bound.
    #[error("cannot listen for MQTT on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The broker's state directory.
    #[error("cannot use the broker state directory {0}: {1}")]
    Storage(String, std::io::Error),
    /// The TLS certificate or key could not be used or generated.
    #[error("MQTT over TLS: {0}")]
    Tls(String),
    /// The embedded broker refused to start or stopped with an error.
    #[error("MQTT broker: {0}")]
    Start(String),
}
