//! `TwinStore` on SQLite: one row per device that has a twin; each change is a read, a JSON
//! merge patch and a write in one transaction, so a version check cannot race.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use sentio_core::twin::merge_patch;
use sentio_core::{DeviceId, Twin};

use super::SqliteStore;
use crate::{DesiredChange, Result, StoreError, TwinStore};

/// A twin row: desired, reported, version, desired_ms, reported_ms.
type Row = (String, String, i64, Option<i64>, Option<i64>);

fn read(tx: &rusqlite::Connection, device: &str) -> Result<Twin> {
    let row: Option<Row> = tx
        .query_row(
            "SELECT desired, reported, version, desired_ms, reported_ms FROM twins WHERE device = ?1",
            [device],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((desired, reported, version, desired_ms, reported_ms)) = row else {
        return Ok(Twin::empty());
    };
    let json = |s: &str| {
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("twin of {device}: {e}")))
    };
    Ok(Twin {
        desired: json(&desired)?,
        reported: json(&reported)?,
        version: version as u64,
        desired_ms,
        reported_ms,
    })
}

fn write(tx: Transaction<'_>, device: &str, twin: &Twin) -> Result<()> {
    tx.execute(
        "INSERT INTO twins (device, desired, reported, version, desired_ms, reported_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device) DO UPDATE SET \
         desired = excluded.desired, reported = excluded.reported, version = excluded.version, \
         desired_ms = excluded.desired_ms, reported_ms = excluded.reported_ms",
        params![
            device,
            twin.desired.to_string(),
            twin.reported.to_string(),
            twin.version as i64,
            twin.desired_ms,
            twin.reported_ms,
        ],
    )?;
    tx.commit()?;
    Ok(())
}

#[async_trait]
impl TwinStore for SqliteStore {
    async fn twin(&self, device: &DeviceId) -> Result<Twin> {
        let device = device.to_string();
        self.with_conn(move |_, conn| read(conn, &device)).await
    }

    async fn patch_desired(
        &self,
        device: &DeviceId,
        expected: Option<u64>,
        patch: &serde_json::Value,
        max_bytes: usize,
        at_ms: i64,
    ) -> Result<DesiredChange> {
        let (device, patch) = (device.to_string(), patch.clone());
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut twin = read(&tx, &device)?;
            if expected.is_some_and(|v| v != twin.version) {
                return Ok(DesiredChange::VersionMismatch(twin.version));
            }
            merge_patch(&mut twin.desired, &patch);
            let size = twin.desired.to_string().len();
            if size > max_bytes {
                return Ok(DesiredChange::TooLarge(size));
            }
            twin.version += 1;
            twin.desired_ms = Some(at_ms);
            write(tx, &device, &twin)?;
            Ok(DesiredChange::Applied(twin))
        })
        .await
    }

    async fn patch_reported(
        &self,
        device: &DeviceId,
        patch: &serde_json::Value,
        max_bytes: usize,
        at_ms: i64,
    ) -> Result<Option<Twin>> {
        let (device, patch) = (device.to_string(), patch.clone());
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut twin = read(&tx, &device)?;
            merge_patch(&mut twin.reported, &patch);
            if twin.reported.to_string().len() > max_bytes {
                return Ok(None);
            }
            twin.reported_ms = Some(at_ms);
            write(tx, &device, &twin)?;
            Ok(Some(twin))
        })
        .await
    }
}
