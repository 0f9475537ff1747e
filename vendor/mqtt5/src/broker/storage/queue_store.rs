//! SENTIO-PATCH: queued and in-flight messages of persistent sessions in one `fjall` database
//! (an LSM tree with a checksummed, group-committed journal) instead of one JSON file per
//! message. A write-out batch becomes one atomic fjall batch and one `fdatasync` serves every
//! acknowledgement waiting on it; fjall's own compaction drops acknowledged entries, and its
//! journal replay at start is bounded by its journal size.
//!
//! Keys are `u16 BE length ‖ client id ‖ suffix`, so one client's entries are one prefix:
//! queued messages have the sequence number (`u64 BE`, so they iterate in queue order), in-flight
//! messages the direction byte and packet id. Values are the same compact JSON the files held.

use super::write_behind::{InflightKey, WriteBatch};
use super::{InflightDirection, InflightMessage, QueuedMessage};
use crate::error::{MqttError, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use tracing::warn;

/// Directory of the database inside the broker's storage directory.
pub(super) const QUEUE_STORE_DIR: &str = "queue-store";
/// fjall's smallest journal budget: its journals are flushed into tables beyond this.
const MAX_JOURNALING_BYTES: u64 = 64 * 1024 * 1024;
/// Block cache: entries are read once, at start or on reconnect.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

fn store_error(what: &str, e: impl std::fmt::Display) -> MqttError {
    MqttError::Io(format!("queue store: {what}: {e}"))
}

fn client_prefix(client_id: &str) -> Vec<u8> {
    let id = client_id.as_bytes();
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + id.len() + 9);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(&id[..usize::from(len)]);
    key
}

fn queue_key(client_id: &str, seq: u64) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn inflight_key((client_id, packet_id, direction): &InflightKey) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.push(match direction {
        InflightDirection::Inbound => 0,
        InflightDirection::Outbound => 1,
    });
    key.extend_from_slice(&packet_id.to_be_bytes());
    key
}

/// The client id and sequence number of a queue key.
fn parse_queue_key(key: &[u8]) -> Option<(String, u64)> {
    let len = usize::from(u16::from_be_bytes([*key.first()?, *key.get(1)?]));
    let id = key.get(2..2 + len)?;
    let seq = key.get(2 + len..2 + len + 8)?;
    Some((
        String::from_utf8(id.to_vec()).ok()?,
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// Queued and in-flight messages of every client, durable once `sync` returns.
pub(super) struct QueueStore {
    db: Database,
    queues: Keyspace,
    inflight: Keyspace,
}

impl QueueStore {
    /// Opens (or creates) the database in `dir`, replaying its journal.
    pub(super) fn open(dir: &Path) -> Result<Self> {
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .max_journaling_size(MAX_JOURNALING_BYTES)
            .cache_size(CACHE_BYTES)
            .open()
            .map_err(|e| store_error(&format!("cannot open {}", dir.display()), e))?;
        let queues = db
            .keyspace("queues", KeyspaceCreateOptions::default)
            .map_err(|e| store_error("cannot open the queues keyspace", e))?;
        let inflight = db
            .keyspace("inflight", KeyspaceCreateOptions::default)
            .map_err(|e| store_error("cannot open the inflight keyspace", e))?;
        Ok(Self {
            db,
            queues,
            inflight,
        })
    }

    /// Applies one write-out batch atomically: in-flight clears, in-flight rows, then queue rows
    /// (an ack-carrying delete of a queued message and the in-flight copy that replaced it land
    /// together or not at all). The data reaches the OS; `sync` makes it durable.
    pub(super) fn apply(&self, batch: WriteBatch) -> Result<()> {
        let mut out = self.db.batch();
        for client_id in &batch.cleared_inflight {
            for item in self.inflight.prefix(client_prefix(client_id)) {
                let key = item
                    .key()
                    .map_err(|e| store_error("cannot list in-flight messages", e))?;
                out.remove(&self.inflight, key);
            }
        }
        for (key, entry) in &batch.inflight {
            let key = inflight_key(key);
            match entry {
                Some(message) => out.insert(&self.inflight, key, encode(&**message)?),
                None => out.remove(&self.inflight, key),
            }
        }
        for ((client_id, seq), entry) in &batch.queue {
            let key = queue_key(client_id, *seq);
            match entry {
                Some(message) => out.insert(&self.queues, key, encode(&**message)?),
                None => out.remove(&self.queues, key),
            }
        }
        out.commit()
            .map_err(|e| store_error("cannot commit a batch", e))?;
        self.db
            .persist(PersistMode::Buffer)
            .map_err(|e| store_error("cannot write the journal", e))
    }

    /// Makes everything applied so far durable (one `fdatasync` of the journal).
    pub(super) fn sync(&self) -> Result<()> {
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|e| store_error("cannot sync the journal", e))
    }

    /// Every queued message, in key order (client, then sequence number).
    pub(super) fn queued(&self) -> Result<Vec<(String, u64, QueuedMessage)>> {
        let mut out = Vec::new();
        for item in self.queues.iter() {
            let (key, value) = item
                .into_inner()
                .map_err(|e| store_error("cannot read queued messages", e))?;
            let Some((client_id, seq)) = parse_queue_key(&key) else {
                warn!("queue store: skipping a malformed key");
                continue;
            };
            match serde_json::from_slice::<QueuedMessage>(&value) {
                Ok(message) => out.push((client_id, seq, message)),
                Err(e) => warn!(client_id, seq, "queue store: skipping an unreadable message: {e}"),
            }
        }
        Ok(out)
    }

    /// The in-flight messages of one client.
    pub(super) fn inflight(&self, client_id: &str) -> Result<Vec<InflightMessage>> {
        self.inflight_matching(Some(client_id))
    }

    /// The in-flight messages of every client.
    pub(super) fn all_inflight(&self) -> Result<Vec<InflightMessage>> {
        self.inflight_matching(None)
    }

    fn inflight_matching(&self, client_id: Option<&str>) -> Result<Vec<InflightMessage>> {
        let iter = match client_id {
            Some(id) => self.inflight.prefix(client_prefix(id)),
            None => self.inflight.iter(),
        };
        let mut out = Vec::new();
        for item in iter {
            let (_, value) = item
                .into_inner()
                .map_err(|e| store_error("cannot read in-flight messages", e))?;
            match serde_json::from_slice::<InflightMessage>(&value) {
                Ok(message) => out.push(message),
                Err(e) => warn!("queue store: skipping an unreadable in-flight message: {e}"),
            }
        }
        Ok(out)
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| store_error("cannot serialize a message", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_round_trip_and_order_by_sequence_within_a_client() {
        let a = queue_key("dev-1", 5);
        let b = queue_key("dev-1", 300);
        assert!(a < b);
        assert_eq!(parse_queue_key(&b), Some(("dev-1".to_string(), 300)));
        // A client id that is a prefix of another never shares its key prefix.
        assert!(!queue_key("dev-10", 1).starts_with(&client_prefix("dev-1")));
    }
}
