//! Commands: accepted into the store (bounded per device), then published on
//! `devices/<id>/commands/<cid>` when the device is connected, and again, in acceptance order,
//! each time it subscribes to its command topic (so after being offline, and after a restart
//! of the node). States move forward only: pending → delivered (its PUBACK) → succeeded |
//! failed (its reply), or expired (the time to live, checked every second); a reply after
//! expiry is recorded. Delivery is at least once: a device that reconnects before
//! acknowledging may get a command twice and recognises it by its id.
//!
//! A device an edge registered here (`EdgeStore::edge_of_device`) is not connected here: its
//! pending commands go down to its edge on `edges/<edge>/down/commands` instead, again each
//! time the edge subscribes there; the edge creates each once under this node's id
//! ([`Commands::adopt`]) and delivers it, and the states it reports up are applied here
//! ([`Commands::from_edge`]), forward only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sentio_core::time::now_ms;
use sentio_core::{Command, CommandId, CommandState, DeviceId, EdgeId, topic};
use sentio_store::{CommandStore, EdgeStore};
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use super::CourierSlot;
use crate::{Bus, Event, PipelineError};

/// Bounds of commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLimits {
    /// Open (pending or delivered) commands one device may have; beyond, sending is refused.
    pub max_open_per_device: usize,
    /// Time to live of a command sent without one (ms).
    pub default_ttl_ms: i64,
    /// Longest time to live accepted (ms).
    pub max_ttl_ms: i64,
}

impl Default for CommandLimits {
    fn default() -> Self {
        Self {
            max_open_per_device: 100,
            default_ttl_ms: 3_600_000,
            max_ttl_ms: 7 * 86_400_000,
        }
    }
}

/// Longest command name, in bytes.
const MAX_NAME_LEN: usize = 128;

/// A command as asked for, before it is accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommand {
    /// What to do.
    pub name: String,
    /// Its arguments.
    pub params: serde_json::Value,
    /// Its time to live (ms); `None`: [`CommandLimits::default_ttl_ms`].
    pub ttl_ms: Option<i64>,
}

/// The command desk. Cheap to clone.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CommandStore>,
    /// Which devices live under an edge.
    edges: Arc<dyn EdgeStore>,
    bus: Arc<dyn Bus>,
    courier: CourierSlot,
    limits: CommandLimits,
    /// The pending commands published to each device since it last subscribed (not sent
    /// again until it subscribes again). Held across a device's publishes, so they go out in
    /// order.
    sent: Mutex<HashMap<DeviceId, HashSet<CommandId>>>,
}

/// A fresh command id: 16 random bytes in hex after `c-`.
fn new_id() -> CommandId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    CommandId::parse(&format!("c-{hex}")).expect("a valid id")
}

impl Commands {
    pub(crate) fn new(
        store: Arc<dyn CommandStore>,
        edges: Arc<dyn EdgeStore>,
        bus: Arc<dyn Bus>,
        courier: CourierSlot,
        limits: CommandLimits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                edges,
                bus,
                courier,
                limits,
                sent: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Checks and keeps a command for `device` (which the caller knows is registered), and
    /// publishes it at once if the device is connected. [`PipelineError::TooMany`] when the
    /// device has its maximum of open commands, [`PipelineError::Invalid`] for a bad name or
    /// time to live.
    pub async fn send(&self, device: &DeviceId, new: NewCommand) -> Result<Command, PipelineError> {
        let limits = self.inner.limits;
        if new.name.is_empty() || new.name.len() > MAX_NAME_LEN {
            return Err(PipelineError::Invalid(format!(
                "name: give the command a name of 1-{MAX_NAME_LEN} bytes"
            )));
        }
        let ttl_ms = new.ttl_ms.unwrap_or(limits.default_ttl_ms);
        if ttl_ms <= 0 || ttl_ms > limits.max_ttl_ms {
            return Err(PipelineError::Invalid(format!(
                "ttl: between 1 ms and {} (commands.max_ttl)",
                sentio_core::time::spell_duration_ms(limits.max_ttl_ms)
            )));
        }
        let now = now_ms();
        let command = Command {
            id: new_id(),
            device: device.clone(),
            name: new.name,
            params: new.params,
            created_ms: now,
            expires_ms: now.saturating_add(ttl_ms),
            state: CommandState::Pending,
            delivered_ms: None,
            replied_ms: None,
            reply: None,
        };
        if !self
            .inner
            .store
            .add_command(&command, limits.max_open_per_device)
            .await?
        {
            return Err(PipelineError::TooMany(format!(
                "device {device} already has {} open commands (commands.max_open_per_device); \
                 wait for them to be answered or to expire",
                limits.max_open_per_device
            )));
        }
        self.changed(&command);
        self.push(device, false).await;
        Ok(command)
    }

    /// A device's commands, newest first, at most `limit`.
    pub async fn list(
        &self,
        device: &DeviceId,
        limit: usize,
    ) -> Result<Vec<Command>, PipelineError> {
        Ok(self.inner.store.list_commands(device, limit).await?)
    }

    /// One command of a device.
    pub async fn get(
        &self,
        device: &DeviceId,
        id: &CommandId,
    ) -> Result<Option<Command>, PipelineError> {
        Ok(self.inner.store.get_command(device, id).await?)
    }

    /// The device subscribed to a filter covering its command topic: its pending commands
    /// go out again, in order.
    pub async fn subscribed(&self, device: &DeviceId) {
        self.push(device, true).await;
    }

    /// The device acknowledged (PUBACK) the command published on its topic. Its state changes
    /// before it leaves the sent set, so a push in between cannot see it pending and unsent,
    /// and send it again.
    pub async fn delivered(&self, device: &DeviceId, id: &CommandId) {
        match self.inner.store.mark_delivered(device, id, now_ms()).await {
            Ok(Some(c)) => self.changed(&c),
            Ok(None) => {}
            Err(e) => warn!(%device, command = %id, error = %e, "command delivery not recorded"),
        }
        self.forget_sent(device, id).await;
    }

    /// The device replied on `devices/<id>/commands/<cid>/reply`.
    pub async fn replied(&self, device: &DeviceId, id: &CommandId, payload: &[u8]) {
        let (state, reply) = sentio_core::command::reply_outcome(payload);
        match self
            .inner
            .store
            .record_reply(device, id, state, &reply, now_ms())
            .await
        {
            Ok(Some(c)) => self.changed(&c),
            Ok(None) => {
                info!(%device, command = %id, "reply to an unknown or already answered command ignored")
            }
            Err(e) => warn!(%device, command = %id, error = %e, "command reply not recorded"),
        }
        self.forget_sent(device, id).await;
    }

    /// Edge `edge` subscribed to its `down/commands`: the pending commands of its devices go
    /// down (again), each device's in order.
    pub async fn edge_subscribed(&self, edge: &EdgeId) {
        for device in super::devices_of(&*self.inner.edges, edge, "its commands").await {
            self.push(&device, true).await;
        }
    }

    /// On an edge: a command the cloud sent down for one of this node's devices is kept under
    /// the cloud's id, pending, and delivered like any other. A command already known (sent
    /// again) changes nothing; `false` then.
    pub async fn adopt(&self, mut command: Command) -> Result<bool, PipelineError> {
        command.state = CommandState::Pending;
        (command.delivered_ms, command.replied_ms, command.reply) = (None, None, None);
        // The cloud already bounded the device's open commands.
        if !self.inner.store.adopt_command(&command).await? {
            return Ok(false);
        }
        info!(device = %command.device, command = %command.id, "command from the cloud kept");
        self.changed(&command);
        self.push(&command.device, false).await;
        Ok(true)
    }

    /// On the cloud: edge `edge` reports where a command of one of its devices stands; its
    /// delivery and its reply are applied here (forward only: the store's own rules, as if
    /// the device had answered here). Reports about other devices are ignored.
    pub async fn from_edge(&self, edge: &EdgeId, reported: &Command) -> Result<(), PipelineError> {
        let device = &reported.device;
        if self.inner.edges.edge_of_device(device).await?.as_ref() != Some(edge) {
            return Ok(());
        }
        let store = &self.inner.store;
        if let Some(at) = reported.delivered_ms
            && let Some(c) = store.mark_delivered(device, &reported.id, at).await?
        {
            self.changed(&c);
        }
        if let (Some(reply), Some(at)) = (&reported.reply, reported.replied_ms) {
            let state = match reported.state {
                s @ (CommandState::Succeeded | CommandState::Failed) => s,
                _ => sentio_core::command::reply_outcome(reply.to_string().as_bytes()).0,
            };
            if let Some(c) = store
                .record_reply(device, &reported.id, state, reply, at)
                .await?
            {
                self.changed(&c);
            }
        }
        if reported.delivered_ms.is_some() || reported.state != CommandState::Pending {
            self.forget_sent(device, &reported.id).await;
        }
        Ok(())
    }

    /// Expires commands whose time ran out, every second, until `shutdown`.
    pub(crate) async fn run_expiry(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            match self.inner.store.expire_commands(now_ms()).await {
                Ok(expired) => {
                    for c in &expired {
                        self.forget_sent(&c.device, &c.id).await;
                        self.changed(c);
                    }
                }
                Err(e) => warn!(error = %e, "expiring commands failed; retried in a second"),
            }
        }
    }

    /// Publishes the device's pending commands not yet sent to it (all of them after it
    /// subscribed again), oldest first, if it is connected.
    /// For a device under an edge: down to the edge, if the edge is connected.
    async fn push(&self, device: &DeviceId, resubscribed: bool) {
        let Some(courier) = self.inner.courier.get() else {
            return;
        };
        let edge = match self.inner.edges.edge_of_device(device).await {
            Ok(e) => e,
            Err(e) => {
                warn!(%device, error = %e, "the device's edge not read; its commands go at its next subscribe");
                return;
            }
        };
        let connected = match &edge {
            Some(edge) => courier.edge_connected(edge),
            None => courier.is_connected(device),
        };
        if !connected {
            return;
        }
        let mut sent = self.inner.sent.lock().await;
        if resubscribed {
            sent.remove(device);
        }
        let pending = match self.inner.store.pending_commands(device).await {
            Ok(p) => p,
            Err(e) => {
                warn!(%device, error = %e, "pending commands not read; sent at its next subscribe");
                return;
            }
        };
        let now = now_ms();
        for c in pending.into_iter().filter(|c| c.expires_ms > now) {
            if sent.entry(device.clone()).or_default().insert(c.id.clone()) {
                let (to, payload) = match &edge {
                    Some(edge) => (
                        topic::downlink_commands(edge),
                        sentio_store::wire::encode_commands(std::slice::from_ref(&c)),
                    ),
                    None => (topic::command(device, &c.id), c.payload()),
                };
                courier.publish(to, payload, false).await;
            }
        }
    }

    async fn forget_sent(&self, device: &DeviceId, id: &CommandId) {
        let mut sent = self.inner.sent.lock().await;
        if let Some(ids) = sent.get_mut(device) {
            ids.remove(id);
            if ids.is_empty() {
                sent.remove(device);
            }
        }
    }

    fn changed(&self, command: &Command) {
        self.inner.bus.publish(Event::Command {
            command: Box::new(command.clone()),
        });
    }
}
