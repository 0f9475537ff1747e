//! The notifier task: silences, grouping and routing, from an alert that opened, was
//! acknowledged or resolved to outbox messages.
//!
//! **Grouping rule.** A silence alert is held, per device kind, for `group_wait` from the
//! first one held. When the wait ends, `group_min` or more held together become one
//! [`AlertGroup`] (saved, with its members) and one message per channel that a member is
//! routed to; fewer are notified one by one. Their resolutions are held the same way (a fleet
//! that comes back together is one message). Other alert kinds, and acknowledgements, are
//! never held.
//!
//! **Follow-ups.** An acknowledgement or a resolution goes to the channels the alert is routed
//! to now, unless the alert was silenced (it was never notified).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sentio_core::time::now_ms;
use sentio_core::{AlertKey, AlertKind, Channel, RuleAction, RuleId, Silence, Subject};
use sentio_pipeline::{Notice, NoticeEvent};
use sentio_store::{AlertGroup, NewMessage, Stores};
use tokio::sync::{Notify, mpsc};
use tracing::{error, info};

use crate::{NotifyConfig, message};

/// How often held silence alerts are looked at.
const TICK: Duration = Duration::from_millis(250);

/// The API's handle: tells the notifier that silences, channels or rules changed, and the
/// delivery task that messages may be due.
#[derive(Clone, Default)]
pub struct NotifyHandle {
    stale: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl NotifyHandle {
    /// Silences, channels or rules changed in the store: read them again before the next
    /// alert.
    pub fn reload(&self) {
        self.stale.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether a reload was asked for since the last call.
    fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::AcqRel)
    }

    /// Wakes the delivery task (new messages are queued).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until woken or `timeout` has passed.
    pub(crate) async fn woken(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}

/// Silence alerts of one device kind held for grouping.
struct Held {
    since_ms: i64,
    notices: Vec<Notice>,
}

/// See the module documentation.
pub struct Notifier {
    config: NotifyConfig,
    stores: Stores,
    handle: NotifyHandle,
    silences: Vec<Silence>,
    channels: Vec<Channel>,
    /// The channels each rule's `notify` actions name.
    rule_channels: HashMap<RuleId, Vec<String>>,
    /// Held silence alerts by what happened to them and device kind.
    held: BTreeMap<(NoticeEvent, Arc<str>), Held>,
}

impl Notifier {
    /// A notifier over `stores` (channels, silences, outbox, rules).
    pub fn new(config: NotifyConfig, stores: Stores, handle: NotifyHandle) -> Self {
        handle.stale.store(true, Ordering::Release);
        Self {
            config,
            stores,
            handle,
            silences: Vec::new(),
            channels: Vec::new(),
            rule_channels: HashMap::new(),
            held: BTreeMap::new(),
        }
    }

    /// Takes notices until the detect stage stops, then notifies whatever it still holds.
    pub async fn run(mut self, mut notices: mpsc::Receiver<Notice>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                n = notices.recv() => match n {
                    Some(n) => self.take(n).await,
                    None => break,
                },
                _ = tick.tick() => self.flush(now_ms(), false).await,
            }
        }
        self.flush(now_ms(), true).await;
    }

    /// Reads silences, channels and rules again if they changed.
    async fn refresh(&mut self) {
        if !self.handle.take_stale() {
            return;
        }
        let loaded = async {
            let silences = self.stores.notify.silences().await?;
            let channels = self.stores.notify.channels().await?;
            let rules = self.stores.rules.list_rules().await?;
            Ok::<_, sentio_store::StoreError>((silences, channels, rules))
        }
        .await;
        match loaded {
            Ok((silences, channels, rules)) => {
                self.silences = silences;
                self.channels = channels;
                self.rule_channels = rules
                    .into_iter()
                    .map(|r| {
                        let names = r
                            .actions
                            .iter()
                            .filter_map(|a| match a {
                                RuleAction::Notify { channel } => Some(channel.clone()),
                                _ => None,
                            })
                            .collect();
                        (r.id, names)
                    })
                    .collect();
            }
            Err(e) => {
                error!(error = %e, "could not load channels and silences");
                self.handle.stale.store(true, Ordering::Release);
            }
        }
    }

    async fn take(&mut self, n: Notice) {
        self.refresh().await;
        let now = now_ms();
        if n.event == NoticeEvent::Opened {
            if let Some(s) = self
                .silences
                .iter()
                .find(|s| s.active(now) && s.matcher.matches(&n.alert, &n.device_kind, &n.labels))
            {
                info!(alert = %n.alert.id, silence = s.id, "alert silenced: not notified");
                if let Err(e) = self
                    .stores
                    .notify
                    .mark_silenced(n.alert.id.get(), s.id)
                    .await
                {
                    error!(error = %e, "could not record a silence on an alert");
                }
                return;
            }
        } else if self.was_silenced(&n).await {
            return;
        }
        if n.alert.explanation.kind == AlertKind::Silence
            && self.config.group_min > 0
            && n.event != NoticeEvent::Acknowledged
        {
            self.held
                .entry((n.event, n.device_kind.clone()))
                .or_insert_with(|| Held {
                    since_ms: now,
                    notices: Vec::new(),
                })
                .notices
                .push(n);
            return;
        }
        let messages = self.alert_messages(&n, now);
        self.enqueue(messages).await;
    }

    /// Whether `n`'s alert was silenced when it opened (so nobody heard of it).
    async fn was_silenced(&self, n: &Notice) -> bool {
        if n.alert.silenced_by.is_some() {
            return true;
        }
        match self.stores.alerts.get_alert(n.alert.id.get()).await {
            Ok(stored) => stored.is_some_and(|a| a.silenced_by.is_some()),
            Err(e) => {
                error!(error = %e, alert = %n.alert.id, "could not read an alert: notified anyway");
                false
            }
        }
    }

    /// Notifies the held alerts whose wait has ended (all of them with `all`).
    async fn flush(&mut self, now: i64, all: bool) {
        let due: Vec<(NoticeEvent, Arc<str>)> = self
            .held
            .iter()
            .filter(|(_, h)| all || now - h.since_ms >= self.config.group_wait_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(held) = self.held.remove(&key) else {
                continue;
            };
            let (event, device_kind) = key;
            if held.notices.len() >= self.config.group_min && event == NoticeEvent::Opened {
                self.notify_group(&device_kind, held, now).await;
            } else if held.notices.len() >= self.config.group_min {
                self.notify_group_resolved(&device_kind, held, now).await;
            } else {
                let messages = held
                    .notices
                    .iter()
                    .flat_map(|n| self.alert_messages(n, now))
                    .collect();
                self.enqueue(messages).await;
            }
        }
    }

    async fn notify_group(&mut self, device_kind: &str, held: Held, now: i64) {
        let mut group = AlertGroup {
            id: 0,
            alert_kind: AlertKind::Silence,
            device_kind: device_kind.to_string(),
            opened_ms: held
                .notices
                .iter()
                .map(|n| n.alert.opened_ms)
                .min()
                .unwrap_or(now),
            members: held
                .notices
                .iter()
                .map(|n| (n.alert.id.get(), n.alert.device.clone()))
                .collect(),
        };
        group.id = match self.stores.notify.save_group(&group).await {
            Ok(id) => id,
            Err(e) => {
                error!(error = %e, "could not save an alert group");
                return;
            }
        };
        info!(
            group = group.id,
            device_kind,
            members = group.members.len(),
            "alerts grouped"
        );
        let body = message::group_opened(&group);
        self.notify_held(&held, message::group_msg_id(group.id), body, now)
            .await;
    }

    /// `held` resolved silence alerts of `device_kind`, many enough to be one message.
    async fn notify_group_resolved(&mut self, device_kind: &str, held: Held, now: i64) {
        let members: Vec<(i64, String)> = held
            .notices
            .iter()
            .map(|n| (n.alert.id.get(), n.alert.device.clone()))
            .collect();
        info!(
            device_kind,
            members = members.len(),
            "grouped alerts resolved"
        );
        let first = members.iter().map(|(id, _)| *id).min().unwrap_or_default();
        let body = message::group_resolved(device_kind, &members, now);
        self.notify_held(&held, message::group_resolved_msg_id(first), body, now)
            .await;
    }

    /// One message `msg_id` with `body` to every channel a member of `held` is routed to.
    async fn notify_held(&mut self, held: &Held, msg_id: String, body: String, now: i64) {
        let mut names: Vec<String> = held
            .notices
            .iter()
            .flat_map(|n| self.channels_for(n))
            .collect();
        names.sort();
        names.dedup();
        let messages = names
            .into_iter()
            .map(|channel| NewMessage {
                channel,
                msg_id: msg_id.clone(),
                body: body.clone(),
                created_ms: now,
            })
            .collect();
        self.enqueue(messages).await;
    }

    /// The channels `n` goes to: those whose route matches it, and those its rule names.
    fn channels_for(&self, n: &Notice) -> Vec<String> {
        let mut names: Vec<String> = self
            .channels
            .iter()
            .filter(|c| {
                c.route
                    .as_ref()
                    .is_some_and(|r| r.matches(&n.alert, &n.device_kind, &n.labels))
            })
            .map(|c| c.name.clone())
            .collect();
        if let Ok(AlertKey {
            subject: Subject::Rule(rule),
            ..
        }) = AlertKey::of(&n.alert)
            && let Some(extra) = self.rule_channels.get(&rule)
        {
            names.extend(extra.iter().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    fn alert_messages(&self, n: &Notice, now: i64) -> Vec<NewMessage> {
        let names = self.channels_for(n);
        if names.is_empty() {
            return Vec::new();
        }
        let (msg_id, body) = match n.event {
            NoticeEvent::Opened => (
                message::alert_msg_id(n.alert.id.get()),
                message::alert_opened(&n.alert),
            ),
            event => (
                message::alert_event_msg_id(n.alert.id.get(), event.as_str()),
                message::alert_changed(&n.alert, event.as_str(), now),
            ),
        };
        names
            .into_iter()
            .map(|channel| NewMessage {
                channel,
                msg_id: msg_id.clone(),
                body: body.clone(),
                created_ms: now,
            })
            .collect()
    }

    async fn enqueue(&self, messages: Vec<NewMessage>) {
        if messages.is_empty() {
            return;
        }
        match self.stores.notify.enqueue(messages).await {
            Ok(()) => self.handle.wake(),
            Err(e) => error!(error = %e, "could not queue notifications"),
        }
    }
}
