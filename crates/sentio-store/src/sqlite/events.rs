//! `EventStore` on SQLite: one row per text event, pruned to the newest per device and metric.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::params;
use sentio_core::{DeviceId, TextEvent};

use super::SqliteStore;
use crate::{EVENT_HISTORY, EventStore, Result};

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_events(&self, events: &[TextEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        let stored = self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut touched = BTreeSet::new();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO events (device, metric, ts, text) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for e in &events {
                    insert.execute(params![e.device.as_str(), &*e.metric, e.ts_ms, e.text])?;
                    touched.insert((e.device.as_str(), &*e.metric));
                }
                let mut prune = tx.prepare_cached(
                    "DELETE FROM events WHERE device = ?1 AND metric = ?2 AND ts < \
                     (SELECT ts FROM events WHERE device = ?1 AND metric = ?2 \
                      ORDER BY ts DESC LIMIT 1 OFFSET ?3)",
                )?;
                for (device, metric) in touched {
                    prune.execute(params![device, metric, (EVENT_HISTORY - 1) as i64])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await;
        self.inner.note_write(&stored);
        stored
    }

    async fn events(
        &self,
        device: &DeviceId,
        metric: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextEvent>> {
        let device = device.clone();
        let metric = metric.map(str::to_string);
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT metric, ts, text FROM events WHERE device = ?1 \
                 AND (?2 IS NULL OR metric = ?2) ORDER BY ts DESC, metric LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![device.as_str(), metric, limit.min(i64::MAX as usize) as i64],
                |r| {
                    Ok(TextEvent {
                        device: device.clone(),
                        metric: Arc::from(r.get::<_, String>(0)?),
                        ts_ms: r.get(1)?,
                        text: r.get(2)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
