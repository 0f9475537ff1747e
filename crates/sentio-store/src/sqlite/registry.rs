//! `DeviceRegistry` on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use sentio_core::{DeviceId, time};

use super::SqliteStore;
use crate::{Device, DeviceRegistry, DeviceUpdate, NewDevice, Result, StoreError, labels, secret};

const DEVICE_COLUMNS: &str = "id, name, kind, labels, created_ms, last_seen_ms, rejected_count, \
                              last_rejection, last_rejection_ms";

fn device_from_row(r: &Row<'_>) -> rusqlite::Result<(Device, String)> {
    let labels: String = r.get(3)?;
    Ok((
        Device {
            id: r.get(0)?,
            name: r.get(1)?,
            kind: r.get(2)?,
            labels: Default::default(),
            created_ms: r.get(4)?,
            last_seen_ms: r.get(5)?,
            rejected_count: r.get::<_, i64>(6)? as u64,
            last_rejection: r.get(7)?,
            last_rejection_ms: r.get(8)?,
        },
        labels,
    ))
}

fn finish(pair: (Device, String)) -> Result<Device> {
    let (mut d, labels) = pair;
    d.labels = serde_json::from_str(&labels)
        .map_err(|e| StoreError::Corrupt(format!("labels of {}: {e}", d.id)))?;
    Ok(d)
}

#[async_trait]
impl DeviceRegistry for SqliteStore {
    async fn create_device(&self, new: NewDevice) -> Result<(Device, String)> {
        let id = DeviceId::parse(&new.id)
            .map_err(|e| StoreError::InvalidQuery(e.to_string()))?
            .to_string();
        labels::validate(&new.labels)?;
        if let Some(kind) = &new.kind {
            labels::validate_kind(kind)?;
        }
        if let Some(name) = &new.name {
            labels::validate_name(name)?;
        }
        let secret = secret::generate();
        let digest = secret::digest(&self.inner.key, &id, &secret);
        let device = Device {
            name: new.name.unwrap_or_else(|| id.clone()),
            kind: new.kind.unwrap_or_else(|| "device".into()),
            labels: new.labels,
            created_ms: time::now_ms(),
            last_seen_ms: None,
            rejected_count: 0,
            last_rejection: None,
            last_rejection_ms: None,
            id,
        };
        let d = device.clone();
        self.with_conn(move |inner, conn| {
            let labels = serde_json::to_string(&d.labels).expect("labels serialise");
            // Ids that differ only in case would look like one device to a person (and to a
            // case-insensitive file system or topic tool): the first one holds the id.
            let same_but_case: Option<String> = conn
                .query_row(
                    "SELECT id FROM devices WHERE id = ?1 COLLATE NOCASE LIMIT 1",
                    params![d.id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(existing) = same_but_case {
                return Err(StoreError::DuplicateDevice(existing));
            }
            let n = conn.execute(
                "INSERT OR IGNORE INTO devices (id, name, kind, labels, secret_digest, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    d.id,
                    d.name,
                    d.kind,
                    labels,
                    digest.as_bytes().as_slice(),
                    d.created_ms
                ],
            )?;
            if n == 0 {
                return Err(StoreError::DuplicateDevice(d.id));
            }
            inner
                .digests
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.id.clone(), digest);
            Ok(())
        })
        .await?;
        Ok((device, secret))
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>> {
        let id = id.to_string();
        self.with_conn(move |_, conn| {
            conn.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                [&id],
                device_from_row,
            )
            .optional()?
            .map(finish)
            .transpose()
        })
        .await
    }

    async fn list_devices(&self) -> Result<Vec<Device>> {
        self.with_conn(|_, conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY id"))?;
            let rows = stmt.query_map([], device_from_row)?;
            rows.map(|r| finish(r?)).collect()
        })
        .await
    }

    async fn delete_device(&self, id: &DeviceId, erase: bool) -> Result<Vec<(String, u64)>> {
        let id = id.to_string();
        self.with_conn(move |inner, conn| {
            let tx = conn.transaction()?;
            let mut removed = Vec::new();
            let n = tx.execute("DELETE FROM devices WHERE id = ?1", [&id])?;
            if n == 0 {
                return Err(StoreError::UnknownDevice(id));
            }
            removed.push(("devices".to_string(), n as u64));
            if erase {
                // Points are counted over both tiers: head points and the points of the chunks.
                let head = super::head::erase_device(&tx, &id)?;
                let (chunks, sealed): (i64, i64) = tx.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM chunks \
                     WHERE series_id IN (SELECT id FROM series WHERE device = ?1)",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                tx.execute(
                    "DELETE FROM chunks WHERE series_id IN (SELECT id FROM series WHERE device = ?1)",
                    [&id],
                )?;
                removed.push(("points".into(), head as u64 + sealed as u64));
                removed.push(("chunks".into(), chunks as u64));
                let packed: i64 = tx.query_row(
                    "SELECT COALESCE(SUM(rows), 0) FROM rollup_1m_days WHERE series_id IN \
                     (SELECT id FROM series WHERE device = ?1)",
                    [&id],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "DELETE FROM rollup_1m_days WHERE series_id IN \
                     (SELECT id FROM series WHERE device = ?1)",
                    [&id],
                )?;
                let mut rollups = packed as u64;
                for table in [
                    "rollup_1m",
                    "rollup_1h",
                    "band_1m",
                    "rollup_dirty",
                    "series_marks",
                    "edge_rollup_cover",
                ] {
                    let n = tx.execute(
                        &format!(
                            "DELETE FROM {table} WHERE series_id IN \
                             (SELECT id FROM series WHERE device = ?1)"
                        ),
                        [&id],
                    )?;
                    if table.starts_with("rollup_1") {
                        rollups += n as u64;
                    }
                }
                removed.push(("rollups".into(), rollups));
                let series = tx.execute("DELETE FROM series WHERE device = ?1", [&id])?;
                removed.push(("series".into(), series as u64));
                for table in ["alert_feedback", "alert_handling", "alert_comments"] {
                    tx.execute(
                        &format!(
                            "DELETE FROM {table} WHERE alert_id IN \
                             (SELECT id FROM alerts WHERE device = ?1)"
                        ),
                        [&id],
                    )?;
                }
                super::notify::erase_device(&tx, &id)?;
                let alerts = tx.execute("DELETE FROM alerts WHERE device = ?1", [&id])?;
                removed.push(("alerts".into(), alerts as u64));
                let states = tx.execute("DELETE FROM detector_state WHERE device = ?1", [&id])?;
                removed.push(("detector_states".into(), states as u64));
                let events = tx.execute("DELETE FROM events WHERE device = ?1", [&id])?;
                removed.push(("events".into(), events as u64));
                let commands = tx.execute("DELETE FROM commands WHERE device = ?1", [&id])?;
                removed.push(("commands".into(), commands as u64));
                let twins = tx.execute("DELETE FROM twins WHERE device = ?1", [&id])?;
                removed.push(("twins".into(), twins as u64));
            }
            // The audit record, in the same transaction: an erasure keeps only a keyed digest
            // of the id, here and in the device's earlier entries.
            let detail: serde_json::Map<String, serde_json::Value> = removed
                .iter()
                .map(|(k, n)| (k.clone(), serde_json::Value::from(*n)))
                .collect();
            if erase {
                let digest = super::audit::subject_digest(&inner.key, &id);
                super::audit::anonymise(&tx, &id, &digest)?;
                let entry = crate::NewAudit {
                    actor: "admin".into(),
                    action: "device.erase".into(),
                    subject: None,
                    detail: serde_json::json!({ "removed": detail }),
                };
                super::audit::insert(&tx, &entry, Some(&digest))?;
            } else {
                let entry = crate::NewAudit {
                    actor: "admin".into(),
                    action: "device.delete".into(),
                    subject: Some(id.clone()),
                    detail: serde_json::json!({ "removed": detail, "data_kept": true }),
                };
                super::audit::insert(&tx, &entry, None)?;
            }
            tx.commit()?;
            inner
                .digests
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if erase {
                let gone = inner
                    .series_ids
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                let mut work = inner.workset();
                for sid in gone.iter().flat_map(|m| m.values()) {
                    work.remove(*sid);
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn rotate_secret(&self, id: &DeviceId) -> Result<String> {
        let id = id.to_string();
        let secret = secret::generate();
        let digest = secret::digest(&self.inner.key, &id, &secret);
        self.with_conn(move |inner, conn| {
            let n = conn.execute(
                "UPDATE devices SET secret_digest = ?2 WHERE id = ?1",
                params![id, digest.as_bytes().as_slice()],
            )?;
            if n == 0 {
                return Err(StoreError::UnknownDevice(id));
            }
            inner
                .digests
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, digest);
            Ok(())
        })
        .await?;
        Ok(secret)
    }

    fn verify_secret(&self, id: &DeviceId, secret: &str) -> bool {
        let id = id.as_str();
        let digests = self.inner.digests.read().unwrap_or_else(|p| p.into_inner());
        match digests.get(id) {
            Some(stored) => secret::verify(&self.inner.key, id, secret, stored),
            None => false,
        }
    }

    fn is_registered(&self, id: &DeviceId) -> bool {
        self.inner
            .digests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id.as_str())
    }

    async fn touch(&self, seen: &[(DeviceId, i64)]) -> Result<()> {
        let seen = seen.to_vec();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE devices SET last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?2) WHERE id = ?1",
                )?;
                for (id, ts) in &seen {
                    stmt.execute(params![id.as_str(), ts])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn record_rejection(&self, id: &DeviceId, ts_ms: i64, reason: &str) -> Result<()> {
        let (id, reason) = (id.to_string(), reason.chars().take(500).collect::<String>());
        self.with_conn(move |_, conn| {
            conn.execute(
                "UPDATE devices SET rejected_count = rejected_count + 1, last_rejection = ?2, \
                 last_rejection_ms = ?3 WHERE id = ?1",
                params![id, reason, ts_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn update_device(&self, id: &DeviceId, update: DeviceUpdate) -> Result<Device> {
        if let Some(name) = &update.name {
            labels::validate_name(name)?;
        }
        for (k, v) in &update.labels {
            labels::validate_pair(k, v.as_deref().unwrap_or(""))?;
        }
        let id = id.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut device = tx
                .query_row(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                    [&id],
                    device_from_row,
                )
                .optional()?
                .map(finish)
                .transpose()?
                .ok_or(StoreError::UnknownDevice(id))?;
            if let Some(name) = update.name {
                device.name = name;
            }
            labels::apply(&mut device.labels, &update.labels);
            labels::validate(&device.labels)?;
            let encoded = serde_json::to_string(&device.labels).expect("labels serialise");
            tx.execute(
                "UPDATE devices SET name = ?2, labels = ?3 WHERE id = ?1",
                params![device.id, device.name, encoded],
            )?;
            tx.commit()?;
            Ok(device)
        })
        .await
    }

    async fn devices_with_labels(
        &self,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Device>> {
        for (k, v) in selector {
            labels::validate_pair(k, v)?;
        }
        let selector = selector.clone();
        self.with_conn(move |_, conn| {
            // Valid keys hold no `"`, so each is a safe quoted JSON path member.
            let mut sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE 1");
            let mut args: Vec<String> = Vec::with_capacity(selector.len() * 2);
            for (k, v) in &selector {
                sql.push_str(&format!(
                    " AND json_extract(labels, ?{}) IS ?{}",
                    args.len() + 1,
                    args.len() + 2
                ));
                args.push(format!("$.\"{k}\""));
                args.push(v.clone());
            }
            sql.push_str(" ORDER BY id");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(&args), device_from_row)?;
            let devices = rows.map(|r| finish(r?)).collect::<Result<Vec<_>>>()?;
            // The database's JSON reading is trusted only as a prefilter.
            Ok(devices
                .into_iter()
                .filter(|d| labels::matches(&d.labels, &selector))
                .collect())
        })
        .await
    }
}
