//! `AuditStore` on SQLite: an append-only table of who changed what. An erasure anonymises the
//! device's earlier entries in the same transaction as the erasure itself (`registry.rs`).

use async_trait::async_trait;
use rusqlite::{Transaction, params};

use super::SqliteStore;
use crate::{AuditEntry, AuditFilter, AuditStore, NewAudit, Result};

/// The keyed digest that stands for an erased device's id in the audit log.
pub(super) fn subject_digest(key: &[u8; 32], id: &str) -> String {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"audit-subject\0");
    h.update(id.as_bytes());
    h.finalize().to_hex().to_string()
}

/// Appends an entry inside `tx`.
pub(super) fn insert(tx: &Transaction<'_>, e: &NewAudit, digest: Option<&str>) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (ts_ms, actor, action, subject, subject_digest, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            sentio_core::time::now_ms(),
            e.actor,
            e.action,
            e.subject,
            digest,
            e.detail.to_string()
        ],
    )?;
    Ok(())
}

/// Replaces `id` by its digest in every earlier entry about it (an erasure).
pub(super) fn anonymise(tx: &Transaction<'_>, id: &str, digest: &str) -> Result<u64> {
    Ok(tx.execute(
        "UPDATE audit SET subject = NULL, subject_digest = ?2 WHERE subject = ?1",
        params![id, digest],
    )? as u64)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record(&self, entry: NewAudit) -> Result<()> {
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            insert(&tx, &entry, None)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        self.with_conn(move |inner, conn| {
            let digest = filter
                .subject
                .as_deref()
                .map(|s| subject_digest(&inner.key, s));
            let mut stmt = conn.prepare_cached(
                "SELECT id, ts_ms, actor, action, subject, subject_digest, detail FROM audit \
                 WHERE (?1 IS NULL OR action = ?1) \
                   AND (?2 IS NULL OR subject = ?2 OR subject_digest = ?3) \
                   AND (?5 IS NULL OR id < ?5) \
                 ORDER BY id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![
                    filter.action,
                    filter.subject,
                    digest,
                    filter.limit as i64,
                    filter.before
                ],
                |r| {
                    let detail: String = r.get(6)?;
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        ts_ms: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        subject: r.get(4)?,
                        subject_digest: r.get(5)?,
                        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
