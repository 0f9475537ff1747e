//! Notifications: who hears about an alert, and how it reaches them.
//!
//! The detect stage hands every alert that opens to the [`Notifier`] (a bounded channel of
//! `sentio_pipeline::Notice`s). The notifier drops what an active silence covers (recording
//! the silence on the alert), holds silence alerts for `group_wait` so that a fleet going
//! quiet at once becomes one grouped alert, routes each alert to the channels whose route
//! matches it and to those its rule's `notify` actions name, and writes one message per
//! channel to the store's outbox. The [`deliver`] task sends due outbox messages (a signed
//! webhook, [`webhook`], or an e-mail, [`email`]) and retries a failure with exponential
//! back-off until `give_up_after`; the outbox is in the store, so a restart loses nothing,
//! and a delivered message leaves it in the transaction that counts it, so it is never sent
//! again (a crash between the receiver's answer and that commit can repeat it once: the
//! receiver dedupes by `webhook-id`).

mod config;
pub mod deliver;
pub mod email;
mod error;
pub mod message;
mod notifier;
pub mod webhook;

pub use config::NotifyConfig;
pub use error::DeliveryError;
pub use notifier::{Notifier, NotifyHandle};
