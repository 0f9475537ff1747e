//! What the detect stage tells the notifier: every alert that opened, was acknowledged or
//! resolved, with what routing needs to know of its device. A bounded channel, not the bus: the bus drops for a slow listener,
//! and a notification must not be lost (the detect stage waits instead).

use std::collections::BTreeMap;
use std::sync::Arc;

use sentio_core::Alert;
use tokio::sync::mpsc;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeEvent {
    /// It opened.
    Opened,
    /// A person acknowledged it.
    Acknowledged,
    /// It resolved: its condition ended, or a person resolved it.
    Resolved,
}

impl NoticeEvent {
    /// `opened`, `acknowledged` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

/// An alert that opened, was acknowledged or resolved (saved, with its id).
#[derive(Debug, Clone)]
pub struct Notice {
    /// What happened.
    pub event: NoticeEvent,
    /// The alert after it happened.
    pub alert: Alert,
    /// Its device's kind.
    pub device_kind: Arc<str>,
    /// Its device's labels.
    pub labels: BTreeMap<String, String>,
}

/// The sending side, handed to [`crate::Pipeline::start`].
pub type NoticeSender = mpsc::Sender<Notice>;
