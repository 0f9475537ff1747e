//! `TwinStore` on SQLite: one row per device that has a twin; each change is a read, a JSON
//! merge patch and a write in one transaction, so a version check cannot race.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use sentio_core::twin::merge_patch;
use sentio_core::{DeviceId, Twin};

use super::SqliteStore;
use crate::{DesiredChange, Result, StoreError, TwinStore};

/// A twin row: desired, reported, version, desired_ms, reported_ms, upstream_version.
type Row = (String, String, i64, Option<i64>, Option<i64>, Option<i64>);

const COLUMNS: &str = "desired, reported, version, desired_ms, reported_ms, upstream_version";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn twin(device: &str, row: Row) -> Result<Twin> {
    let (desired, reported, version, desired_ms, reported_ms, upstream_version) = row;
    let json = |s: &str| {
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("twin of {device}: {e}")))
    };
    Ok(Twin {
        desired: json(&desired)?,
        reported: json(&reported)?,
        version: version as u64,
        desired_ms,
        reported_ms,
        upstream_version: upstream_version.map(|v| v as u64),
    })
}

fn read(tx: &rusqlite::Connection, device: &str) -> Result<Twin> {
    let found: Option<Row> = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM twins WHERE device = ?1"),
            [device],
            row,
        )
        .optional()?;
    found.map_or_else(|| Ok(Twin::empty()), |r| twin(device, r))
}

/// Adds `upstream_version` to a database made before twins came down from a cloud.
pub(super) fn add_upstream_column(conn: &rusqlite::Connection) -> Result<()> {
    super::add_column_if_missing(conn, "twins", "upstream_version", "INTEGER")
}

fn write(tx: Transaction<'_>, device: &str, twin: &Twin) -> Result<()> {
    tx.execute(
        "INSERT INTO twins (device, desired, reported, version, desired_ms, reported_ms, \
         upstream_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (device) DO UPDATE \
         SET desired = excluded.desired, reported = excluded.reported, \
         version = excluded.version, desired_ms = excluded.desired_ms, \
         reported_ms = excluded.reported_ms, upstream_version = excluded.upstream_version",
        params![
            device,
            twin.desired.to_string(),
            twin.reported.to_string(),
            twin.version as i64,
            twin.desired_ms,
            twin.reported_ms,
            twin.upstream_version.map(|v| v as i64),
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
            if let Some(upstream) = twin.upstream_version {
                return Ok(DesiredChange::SetUpstream(upstream));
            }
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

    async fn apply_upstream_desired(
        &self,
        device: &DeviceId,
        version: u64,
        desired: &serde_json::Value,
        at_ms: i64,
    ) -> Result<Option<Twin>> {
        let (device, desired) = (device.to_string(), desired.clone());
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut twin = read(&tx, &device)?;
            if twin.upstream_version.is_some_and(|v| v >= version) {
                return Ok(None);
            }
            twin.desired = desired;
            // The device sees the cloud's version when the edge never changed it on its own.
            twin.version = (twin.version + 1).max(version);
            twin.upstream_version = Some(version);
            twin.desired_ms = Some(at_ms);
            write(tx, &device, &twin)?;
            Ok(Some(twin))
        })
        .await
    }

    async fn set_reported(
        &self,
        device: &DeviceId,
        reported: &serde_json::Value,
        at_ms: i64,
    ) -> Result<Option<Twin>> {
        let (device, reported) = (device.to_string(), reported.clone());
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut twin = read(&tx, &device)?;
            let later = twin.reported_ms.is_some_and(|t| t > at_ms);
            if later || (twin.reported_ms == Some(at_ms) && twin.reported == reported) {
                return Ok(None);
            }
            twin.reported = reported;
            twin.reported_ms = Some(at_ms);
            write(tx, &device, &twin)?;
            Ok(Some(twin))
        })
        .await
    }

    async fn recent_twins(&self, limit: usize) -> Result<Vec<(DeviceId, Twin)>> {
        self.with_conn(move |_, conn| {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, device FROM twins \
                 WHERE reported_ms IS NOT NULL OR upstream_version IS NOT NULL \
                 ORDER BY max(coalesce(reported_ms, 0), coalesce(desired_ms, 0)) DESC LIMIT ?1"
            ))?;
            let rows = st
                .query_map([limit as i64], |r| Ok((r.get(6)?, row(r)?)))?
                .collect::<rusqlite::Result<Vec<(String, Row)>>>()?;
            rows.into_iter()
                .map(|(device, r)| {
                    let id = DeviceId::parse(&device)
                        .map_err(|e| StoreError::Corrupt(format!("twin of {device}: {e}")))?;
                    Ok((id, twin(&device, r)?))
                })
                .collect()
        })
        .await
    }

    async fn devices_with_desired(&self) -> Result<Vec<DeviceId>> {
        self.with_conn(move |_, conn| {
            let mut st = conn.prepare_cached("SELECT device FROM twins WHERE version > 0")?;
            let ids = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            ids.iter()
                .map(|d| {
                    DeviceId::parse(d).map_err(|e| StoreError::Corrupt(format!("twin of {d}: {e}")))
                })
                .collect()
        })
        .await
    }
}
