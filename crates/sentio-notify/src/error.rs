//! Why a delivery failed.

/// Why a delivery attempt failed (recorded as the channel's last error).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver answered, but not with 2xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("{0}")]
    Transport(String),
    /// The channel's settings cannot work (a bad secret or address).
    #[error("channel misconfigured: {0}")]
    Config(String),
    /// The SMTP server refused or failed.
    #[error("SMTP: {0}")]
    Smtp(String),
}
