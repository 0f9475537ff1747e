//! Errors of the simulator.

use std::path::PathBuf;

/// What can stop [`crate::run`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration cannot work (e.g. QoS 3, zero interval, empty fleet, empty host).
    #[error("invalid simulator config: {0}")]
    InvalidConfig(String),
    /// The ground-truth file could not be written.
    #[error("cannot write ground truth to {path}: {source}")]
    GroundTruth {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Registering the fleet through a Sentio API failed.
    #[error("registering {device} at {api}: {reason}")]
    Register {
        /// The device being registered.
        device: String,
        /// The API's base URL.
        api: String,
        /// What the API (or the connection) said.
        reason: String,
    },
    /// A record could not be encoded as JSON.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}
