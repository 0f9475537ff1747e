//! The delivery task: sends the outbox's due messages, one at a time, oldest first (a webhook,
//! an e-mail, or an MQTT message through the node's own broker); a success
//! removes the message, a failure schedules the next attempt (exponential back-off) or, past
//! `give_up_after`, gives it up. Failures are counted on the channel (`GET
//! /api/v1/channels`, `/metrics`).

use std::time::Duration;

use sentio_core::time::now_ms;
use sentio_core::{Channel, ChannelTarget};
use sentio_pipeline::actuate::CourierSlot;
use sentio_store::{NotifyStore, OutboxMessage};
use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::{DeliveryError, NotifyConfig, NotifyHandle, email, webhook};

/// How often the outbox is looked at when nothing wakes the task.
const POLL: Duration = Duration::from_millis(500);
/// Messages taken per look.
const BATCH: usize = 64;

/// Delivers until `shutdown` turns true (the message being sent is finished first).
pub async fn run(
    config: NotifyConfig,
    store: std::sync::Arc<dyn NotifyStore>,
    handle: NotifyHandle,
    courier: CourierSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        match round(&config, store.as_ref(), &courier, &shutdown).await {
            Ok(sent) if sent == BATCH => continue,
            Ok(_) => {}
            Err(e) => error!(error = %e, "notification outbox unreadable"),
        }
        tokio::select! {
            _ = handle.woken(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass over the due messages; returns how many were tried.
async fn round(
    config: &NotifyConfig,
    store: &dyn NotifyStore,
    courier: &CourierSlot,
    shutdown: &watch::Receiver<bool>,
) -> Result<usize, sentio_store::StoreError> {
    let due = store.due_messages(now_ms(), BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let channels = store.channels().await?;
    let n = due.len();
    for m in due {
        if *shutdown.borrow() {
            break;
        }
        let result = match channels.iter().find(|c| c.name == m.message.channel) {
            Some(c) => attempt(config, c, courier, &m).await,
            None => Err(DeliveryError::Config("the channel is gone".into())),
        };
        match result {
            Ok(()) => {
                debug!(channel = %m.message.channel, id = %m.message.msg_id, "notification delivered");
                store.delivered(m.id).await?;
            }
            Err(e) => {
                let now = now_ms();
                let retry = config.retry_at(m.message.created_ms, m.attempts + 1, now);
                warn!(channel = %m.message.channel, id = %m.message.msg_id, attempt = m.attempts + 1,
                      error = %e, given_up = retry.is_none(), "notification not delivered");
                store
                    .attempt_failed(m.id, &e.to_string(), now, retry)
                    .await?;
            }
        }
    }
    Ok(n)
}

async fn attempt(
    config: &NotifyConfig,
    channel: &Channel,
    courier: &CourierSlot,
    m: &OutboxMessage,
) -> Result<(), DeliveryError> {
    let timeout = Duration::from_millis(config.attempt_timeout_ms.max(1) as u64);
    match &channel.target {
        ChannelTarget::Webhook { url, secret } => {
            webhook::send(url, secret, &m.message.msg_id, &m.message.body, timeout).await
        }
        target @ ChannelTarget::Email { .. } => {
            email::send(target, &m.message.msg_id, &m.message.body, timeout).await
        }
        ChannelTarget::Mqtt { topic } => {
            let courier = courier
                .get()
                .ok_or_else(|| DeliveryError::Transport("the broker is not running yet".into()))?;
            // Routed by the node's broker once this returns (QoS 1, kept for persistent
            // sessions); a subscriber that is away misses it, as with any MQTT message.
            courier
                .publish(topic.clone(), m.message.body.clone().into_bytes(), false)
                .await;
            Ok(())
        }
    }
}
