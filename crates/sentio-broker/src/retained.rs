//! Retained messages, bounded per identity and by the data directory's disk budget.
//!
//! mqtt5 keeps every retained message a client sends (upstream bounds only the node's count
//! and one message's size). Sentio asks first, through the patched hook
//! `BrokerEventHandler::authorize_retained` (`vendor/mqtt5`, SENTIO-PATCH): a retained PUBLISH
//! with a payload is refused (PUBACK/PUBREC 0x97, quota exceeded; a 3.1.1 client gets its plain
//! ack, and the message is neither retained nor routed) when
//!
//! - the identity it is charged to would hold more than `mqtt.limits.max_retained_messages` or
//!   `max_retained_bytes` (payload bytes), or
//! - it would grow the broker's state while the data directory is at its disk budget
//!   (`store.disk_budget`): broker state never makes the store evict telemetry, so new retained
//!   data is what gives way.
//!
//! Clearing a retained message (an empty payload) is never asked, always works and releases
//! its share at once. A CONNECT whose will would be retained is checked the same way (mqtt5
//! asks nothing when it publishes a will): refused with CONNACK 0x97 (3.1.1: 0x03).
//!
//! **Who is charged.** A topic under `devices/<id>/` is charged to device `<id>`, whoever
//! published it (a device can publish only there; an operator's token writing a device's topic
//! uses that device's share); any other topic to the identity that published it (`token:<id>`,
//! or `anonymous`). The ledger is rebuilt at start from the stored messages: device topics as
//! above, other topics charged to no one until they are set again. A retained message that
//! expires (MQTT 5 message expiry) keeps its share until its topic is cleared or set again, or
//! the node restarts.
//!
//! **Accuracy.** The check and the store are two steps of mqtt5 (the tap runs in between), so
//! an identity publishing on several connections at once may pass its bound by one message per
//! connection (at most `max_connections_per_device`); a publish the ledger admitted is charged
//! only once mqtt5 has stored it (`on_retained_set`, matched by client id and topic).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sentio_core::topic;
use tracing::warn;

/// Default most retained messages charged to one identity.
pub const DEFAULT_MAX_RETAINED_MESSAGES: usize = 100;
/// Default most retained payload bytes charged to one identity (1 MiB).
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 1 << 20;

/// The identity an anonymous client's retained messages are charged to.
const ANONYMOUS: &str = "anonymous";
/// At most one refusal warning per interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Why a retained message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetainRefusal {
    /// The identity holds its maximum of retained messages.
    Count(usize),
    /// The identity's retained payloads would pass their byte bound.
    Bytes(usize),
    /// The data directory is at its disk budget.
    DiskBudget,
}

impl RetainRefusal {
    fn why(self) -> String {
        match self {
            Self::Count(max) => format!(
                "its identity holds {max} retained messages (mqtt.limits.max_retained_messages)"
            ),
            Self::Bytes(max) => format!(
                "its identity's retained payloads would pass {max} bytes (mqtt.limits.max_retained_bytes)"
            ),
            Self::DiskBudget => {
                "the data directory is at its disk budget (store.disk_budget): new retained data is refused rather than evicting telemetry".to_string()
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    messages: usize,
    bytes: usize,
}

/// A stored retained message: who it is charged to (`None`: restored, not a device's topic),
/// and its payload size.
#[derive(Debug, Clone)]
struct Held {
    owner: Option<String>,
    bytes: usize,
}

#[derive(Default)]
struct Book {
    topics: HashMap<String, Held>,
    usage: HashMap<String, Usage>,
    /// Client id → the (topic, owner) of its admitted retained PUBLISH not yet stored. A
    /// connection handles one PUBLISH at a time, so one slot per client id.
    admitted: HashMap<String, (String, String)>,
    /// Refusals not yet reported in a warning, and when the last warning was.
    unwarned: u64,
    warned_at: Option<Instant>,
}

impl Book {
    fn release(&mut self, topic: &str) -> Option<Held> {
        let held = self.topics.remove(topic)?;
        if let Some(owner) = &held.owner
            && let Some(u) = self.usage.get_mut(owner)
        {
            u.messages = u.messages.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(held.bytes);
            if u.messages == 0 {
                self.usage.remove(owner);
            }
        }
        Some(held)
    }

    fn hold(&mut self, topic: &str, owner: Option<String>, bytes: usize) {
        self.release(topic);
        if let Some(owner) = &owner {
            let u = self.usage.entry(owner.clone()).or_default();
            u.messages += 1;
            u.bytes += bytes;
        }
        self.topics.insert(topic.to_string(), Held { owner, bytes });
    }
}

/// The data directory's size against its budget, as last measured by the node, plus the
/// retained bytes admitted since.
#[derive(Debug, Default)]
struct DiskRoom {
    /// Budget in bytes (0: none).
    budget: AtomicU64,
    /// Live bytes of the data directory at the last measurement.
    used: AtomicU64,
    /// Retained payload bytes stored since that measurement.
    since: AtomicU64,
}

impl DiskRoom {
    fn fits(&self, growth: usize) -> bool {
        let budget = self.budget.load(Ordering::Relaxed);
        budget == 0
            || self
                .used
                .load(Ordering::Relaxed)
                .saturating_add(self.since.load(Ordering::Relaxed))
                .saturating_add(growth as u64)
                <= budget
    }
}

/// Retained messages per identity, and the refusals.
#[derive(Default)]
pub(crate) struct RetainedLedger {
    max_messages: usize,
    max_bytes: usize,
    book: Mutex<Book>,
    disk: DiskRoom,
    /// Retained PUBLISHes refused at an identity's bound.
    pub refused_quota: AtomicU64,
    /// Retained PUBLISHes refused at the disk budget.
    pub refused_disk: AtomicU64,
}

/// The identity charged for `topic` published by `user` (`None`: anonymous).
fn charged_to(user: Option<&str>, topic: &str) -> String {
    match topic::device_of(topic) {
        Some(device) => device.to_string(),
        None => user.unwrap_or(ANONYMOUS).to_string(),
    }
}

impl RetainedLedger {
    /// `max_messages` and `max_bytes` per identity (0: no bound).
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            max_messages,
            max_bytes,
            ..Self::default()
        }
    }

    /// Charges the retained messages found in storage at start.
    pub(crate) fn restore(&self, stored: impl IntoIterator<Item = (String, usize)>) {
        let mut book = self.lock();
        for (topic, bytes) in stored {
            let owner = topic::device_of(&topic).map(str::to_string);
            book.hold(&topic, owner, bytes);
        }
    }

    /// The node's latest measurement of the data directory (live bytes) and its budget.
    pub(crate) fn set_disk_usage(&self, used: u64, budget: Option<u64>) {
        self.disk.used.store(used, Ordering::Relaxed);
        self.disk.since.store(0, Ordering::Relaxed);
        self.disk
            .budget
            .store(budget.unwrap_or(0), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `client_id` (authenticated as `user`) may retain `bytes` of payload on
    /// `topic`; a refusal is counted and logged at most once per interval.
    pub(crate) fn admit(
        &self,
        client_id: &str,
        user: Option<&str>,
        topic: &str,
        bytes: usize,
    ) -> bool {
        self.check(client_id, user, topic, bytes, true)
    }

    /// Whether a CONNECT whose will retains `bytes` on `topic` fits `user`'s share now (mqtt5
    /// asks nothing when it publishes a will, so a retained will is checked at CONNECT and
    /// charged when stored); a refusal is counted and logged like [`Self::admit`]'s.
    pub(crate) fn admit_will(
        &self,
        client_id: &str,
        user: Option<&str>,
        topic: &str,
        bytes: usize,
    ) -> bool {
        self.check(client_id, user, topic, bytes, false)
    }

    fn check(
        &self,
        client_id: &str,
        user: Option<&str>,
        topic: &str,
        bytes: usize,
        publishing: bool,
    ) -> bool {
        let owner = charged_to(user, topic);
        let mut book = self.lock();
        let refusal = self.refusal(&book, &owner, topic, bytes);
        let Some(refusal) = refusal else {
            if publishing {
                book.admitted
                    .insert(client_id.to_string(), (topic.to_string(), owner));
            }
            return true;
        };
        let counter = match refusal {
            RetainRefusal::DiskBudget => &self.refused_disk,
            _ => &self.refused_quota,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        book.unwarned += 1;
        let now = Instant::now();
        if book
            .warned_at
            .is_none_or(|t| now.duration_since(t) >= WARN_INTERVAL)
        {
            let refused = std::mem::take(&mut book.unwarned);
            book.warned_at = Some(now);
            drop(book);
            let what = if publishing {
                "retained PUBLISH"
            } else {
                "CONNECT with a retained will"
            };
            warn!(client_id = ?client_id, identity = ?owner, topic = ?topic, bytes, refused,
                "{what} refused (0x97): {} (refusals since the last such line: {refused})",
                refusal.why());
        }
        false
    }

    fn refusal(
        &self,
        book: &Book,
        owner: &str,
        topic: &str,
        bytes: usize,
    ) -> Option<RetainRefusal> {
        let previous = book.topics.get(topic);
        // What the owner would hold with this message in place of the topic's current one.
        let mut usage = book.usage.get(owner).copied().unwrap_or_default();
        match previous {
            Some(held) if held.owner.as_deref() == Some(owner) => {
                usage.bytes = usage.bytes.saturating_sub(held.bytes);
            }
            _ => usage.messages += 1,
        }
        usage.bytes += bytes;
        if self.max_messages > 0 && usage.messages > self.max_messages {
            return Some(RetainRefusal::Count(self.max_messages));
        }
        if self.max_bytes > 0 && usage.bytes > self.max_bytes {
            return Some(RetainRefusal::Bytes(self.max_bytes));
        }
        // Replacing a message by one no larger does not grow the broker's state.
        let growth = bytes.saturating_sub(previous.map_or(0, |h| h.bytes));
        if growth > 0 && !self.disk.fits(growth) {
            return Some(RetainRefusal::DiskBudget);
        }
        None
    }

    /// mqtt5 stored (`cleared`: removed) the retained message of `topic`, set by `publisher`.
    pub(crate) fn stored(&self, topic: &str, bytes: usize, cleared: bool, publisher: Option<&str>) {
        let mut book = self.lock();
        let admitted = publisher
            .and_then(|c| book.admitted.remove_entry(c))
            .and_then(|(client, (t, owner))| {
                if t == topic {
                    Some(owner)
                } else {
                    // Not this topic's: keep it for its own store.
                    book.admitted.insert(client, (t, owner));
                    None
                }
            });
        if cleared {
            book.release(topic);
            return;
        }
        // A will or a bridge: charged by the topic alone.
        let owner = admitted.or_else(|| topic::device_of(topic).map(str::to_string));
        book.hold(topic, owner, bytes);
        self.disk.since.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `client_id`'s connection ended: an admitted PUBLISH that was not stored is forgotten.
    pub(crate) fn disconnected(&self, client_id: &str) {
        self.lock().admitted.remove(client_id);
    }

    /// Retained messages and payload bytes charged to `identity`.
    #[cfg(test)]
    fn usage(&self, identity: &str) -> (usize, usize) {
        let u = self.lock().usage.get(identity).copied().unwrap_or_default();
        (u.messages, u.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits and stores, as mqtt5 does for an admitted publish.
    fn publish(l: &RetainedLedger, user: &str, topic: &str, bytes: usize) -> bool {
        let ok = l.admit("c1", Some(user), topic, bytes);
        if ok {
            l.stored(topic, bytes, false, Some("c1"));
        }
        ok
    }

    #[test]
    fn bounds_count_and_bytes_per_identity_and_clearing_releases() {
        let l = RetainedLedger::new(2, 100);
        assert!(publish(&l, "d1", "devices/d1/a", 40));
        assert!(publish(&l, "d1", "devices/d1/b", 40));
        // A third topic: over the count.
        assert!(!publish(&l, "d1", "devices/d1/c", 1));
        // Replacing one of its own: same count, bytes checked against the replaced size.
        assert!(publish(&l, "d1", "devices/d1/a", 60));
        assert!(!publish(&l, "d1", "devices/d1/a", 61));
        assert_eq!(l.usage("d1"), (2, 100));
        // Another identity is unaffected.
        assert!(publish(&l, "d2", "devices/d2/a", 100));
        // Clearing releases at once.
        l.stored("devices/d1/a", 0, true, Some("c1"));
        assert_eq!(l.usage("d1"), (1, 40));
        assert!(publish(&l, "d1", "devices/d1/c", 50));
        assert_eq!(l.refused_quota.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn device_topics_are_charged_to_the_device_other_topics_to_the_publisher() {
        let l = RetainedLedger::new(0, 0);
        assert!(publish(&l, "token:ops", "devices/d1/commands/led", 5));
        assert!(publish(&l, "token:ops", "site/hall", 7));
        assert!(l.admit("c2", None, "public/x", 3));
        l.stored("public/x", 3, false, Some("c2"));
        assert_eq!(l.usage("d1"), (1, 5));
        assert_eq!(l.usage("token:ops"), (1, 7));
        assert_eq!(l.usage(ANONYMOUS), (1, 3));
        // Restored at start: device topics charged to the device, others to no one.
        let r = RetainedLedger::new(0, 0);
        r.restore([
            ("devices/d1/s".to_string(), 9),
            ("site/hall".to_string(), 4),
        ]);
        assert_eq!((r.usage("d1"), r.lock().usage.len()), ((1, 9), 1));
    }

    #[test]
    fn at_the_disk_budget_only_growth_is_refused() {
        let l = RetainedLedger::new(0, 0);
        assert!(publish(&l, "d1", "devices/d1/a", 10));
        l.set_disk_usage(1_000, Some(1_000));
        assert!(!publish(&l, "d1", "devices/d1/b", 1));
        // No larger than the message it replaces: no growth.
        assert!(publish(&l, "d1", "devices/d1/a", 10));
        l.set_disk_usage(990, Some(1_000));
        assert!(publish(&l, "d1", "devices/d1/b", 10));
        // The bytes stored since the measurement count.
        assert!(!publish(&l, "d1", "devices/d1/c", 1));
        l.set_disk_usage(5_000, None);
        assert!(publish(&l, "d1", "devices/d1/c", 1));
        assert_eq!(l.refused_disk.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_retained_will_is_checked_at_connect_and_charged_when_published() {
        let l = RetainedLedger::new(1, 0);
        assert!(publish(&l, "d1", "devices/d1/a", 5));
        assert!(!l.admit_will("c2", Some("d1"), "devices/d1/will", 5));
        assert!(
            l.admit_will("c2", Some("d1"), "devices/d1/a", 5),
            "replaces its own"
        );
        // Published by the broker: no publisher, charged by its topic.
        l.stored("devices/d2/will", 7, false, None);
        assert_eq!(l.usage("d2"), (1, 7));
        assert_eq!(l.refused_quota.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_admitted_publish_is_charged_only_once_stored() {
        let l = RetainedLedger::new(1, 0);
        assert!(l.admit("c1", Some("d1"), "devices/d1/a", 5));
        // Not stored (the tap refused the payload): nothing charged.
        l.disconnected("c1");
        assert_eq!(l.usage("d1"), (0, 0));
        assert!(publish(&l, "d1", "devices/d1/b", 5));
        assert!(!publish(&l, "d1", "devices/d1/c", 5));
    }
}
