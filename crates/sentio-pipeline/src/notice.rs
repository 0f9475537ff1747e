//! What the detect stage tells the notifier: every alert that opened, with what routing needs
//! to know of its device. A bounded channel, not the bus: the bus drops for a slow listener,
//! and a notification must not be lost (the detect stage waits instead).

use std::collections::BTreeMap;
use std::sync::Arc;

use sentio_core::Alert;
use tokio::sync::mpsc;

/// An alert that opened (saved, with its id).
#[derive(Debug, Clone)]
pub struct Notice {
    /// The alert as it opened.
    pub alert: Alert,
    /// Its device's kind.
    pub device_kind: Arc<str>,
    /// Its device's labels.
    pub labels: BTreeMap<String, String>,
}

/// The sending side, handed to [`crate::Pipeline::start`].
pub type NoticeSender = mpsc::Sender<Notice>;
