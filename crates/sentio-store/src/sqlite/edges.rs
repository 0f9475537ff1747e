//! `EdgeStore` on SQLite: edges with their secret digests (cached in memory for CONNECT), and
//! `edge_progress`, written in the same transaction as the points of each applied batch
//! (`series::write_points`), so a batch is applied exactly once whatever crashes between the
//! commit and the acknowledgement.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::EdgeId;

use super::{Inner, SqliteStore, resync, rollup, series};
use crate::edge::{
    Applied, BatchSeq, EDGE_USERNAME_PREFIX, Edge, EdgeProgress, Incarnation, Lane,
    RegistryApplied, UplinkBatch, UplinkPolicy, UplinkRollups,
};
use crate::wire::RegistryRecord;
use crate::{EdgeStore, Result, StoreError, secret};
use sentio_core::{Alert, AlertId, DeviceId};

/// What the secret digest of an edge is computed over: its username, so that an edge and a
/// device of the same id never share a digest.
fn digest_id(id: &EdgeId) -> String {
    format!("{EDGE_USERNAME_PREFIX}{id}")
}

/// Every edge's secret digest, loaded at open.
pub(super) fn load_digests(
    conn: &Connection,
) -> Result<std::collections::HashMap<String, blake3::Hash>> {
    let mut stmt = conn.prepare("SELECT id, secret_digest FROM edges")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (id, d) = row?;
        let bytes: [u8; 32] = d
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("secret digest of edge {id}")))?;
        out.insert(id, blake3::Hash::from_bytes(bytes));
    }
    Ok(out)
}

fn progress_of(conn: &Connection, id: &str) -> Result<Vec<EdgeProgress>> {
    let mut stmt = conn.prepare_cached(
        "SELECT incarnation, lane, seq, part, points, updated_ms FROM edge_progress \
         WHERE edge = ?1 ORDER BY updated_ms DESC",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (inc, lane, seq, part, points, updated_ms) = row?;
        let corrupt = || StoreError::Corrupt(format!("progress of edge {id}"));
        out.push(EdgeProgress {
            incarnation: Incarnation(inc.try_into().map_err(|_| corrupt())?),
            lane: Lane::parse(&lane).ok_or_else(corrupt)?,
            seq: BatchSeq(seq),
            part: part as u32,
            points: points as u64,
            updated_ms,
        });
    }
    Ok(out)
}

/// `UnknownEdge` unless `edge` is registered here.
fn known_edge(conn: &Connection, edge: &str) -> Result<()> {
    let known: Option<i64> = conn
        .query_row("SELECT 1 FROM edges WHERE id = ?1", [edge], |r| r.get(0))
        .optional()?;
    match known {
        Some(_) => Ok(()),
        None => Err(StoreError::UnknownEdge(edge.to_string())),
    }
}

fn edge_row(conn: &Connection, id: &EdgeId) -> Result<Option<Edge>> {
    let row: Option<(i64, Option<String>)> = conn
        .query_row(
            "SELECT created_ms, policy FROM edges WHERE id = ?1",
            [id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((created_ms, policy)) = row else {
        return Ok(None);
    };
    Ok(Some(Edge {
        id: id.clone(),
        created_ms,
        progress: progress_of(conn, id.as_str())?,
        policy: policy.as_deref().and_then(UplinkPolicy::parse),
    }))
}

impl Inner {
    fn edge_digest(&self, id: &EdgeId) -> Option<blake3::Hash> {
        self.edge_digests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id.as_str())
            .copied()
    }
}

#[async_trait]
impl EdgeStore for SqliteStore {
    async fn create_edge(&self, id: &EdgeId) -> Result<(Edge, String)> {
        let secret = secret::generate();
        let digest = secret::digest(&self.inner.key, &digest_id(id), &secret);
        let id = id.clone();
        let edge = self
            .with_conn(move |inner, conn| {
                let created_ms = sentio_core::time::now_ms();
                let n = conn.execute(
                    "INSERT OR IGNORE INTO edges (id, secret_digest, created_ms) VALUES (?1, ?2, ?3)",
                    params![id.as_str(), digest.as_bytes().as_slice(), created_ms],
                )?;
                if n == 0 {
                    return Err(StoreError::DuplicateEdge(id.to_string()));
                }
                inner
                    .edge_digests
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), digest);
                Ok(Edge {
                    id,
                    created_ms,
                    progress: Vec::new(),
                    policy: None,
                })
            })
            .await?;
        Ok((edge, secret))
    }

    async fn get_edge(&self, id: &EdgeId) -> Result<Option<Edge>> {
        let id = id.clone();
        self.with_conn(move |_, conn| edge_row(conn, &id)).await
    }

    async fn list_edges(&self) -> Result<Vec<Edge>> {
        self.with_conn(move |_, conn| {
            let ids: Vec<String> = conn
                .prepare("SELECT id FROM edges ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let id = EdgeId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.extend(edge_row(conn, &id)?);
            }
            Ok(out)
        })
        .await
    }

    fn verify_edge(&self, id: &EdgeId, secret: &str) -> bool {
        // An unknown edge costs the same digest as a known one.
        let stored = self.inner.edge_digest(id);
        let candidate = secret::digest(&self.inner.key, &digest_id(id), secret);
        stored.is_some_and(|s| s == candidate)
    }

    async fn set_edge_policy(&self, id: &EdgeId, policy: UplinkPolicy) -> Result<()> {
        let id = id.clone();
        let set = self
            .with_conn(move |_, conn| {
                conn.execute(
                    "UPDATE edges SET policy = ?2 WHERE id = ?1",
                    params![id.as_str(), policy.as_str()],
                )?;
                Ok(())
            })
            .await;
        self.inner.note_write(&set);
        set
    }

    async fn apply_uplink(&self, batches: Vec<UplinkBatch>) -> Result<Vec<Applied>> {
        let applied = self
            .with_conn(move |inner, conn| {
                // The connection is held for the whole check and write: no other writer can
                // apply the same batch between them.
                let mut progress = Progress::default();
                let mut verdicts = Vec::with_capacity(batches.len());
                let mut points = Vec::new();
                for b in &batches {
                    let key: Key = (b.edge.to_string(), b.incarnation.0, b.lane.as_str());
                    let v = progress.admit(conn, key, (b.seq.0, b.part), b.points.len())?;
                    if v == Applied::Stored {
                        points.extend(b.points.iter().cloned());
                    }
                    verdicts.push(v);
                }
                if progress.is_empty() {
                    return Ok(verdicts);
                }
                series::write_points(inner, conn, &points, |tx, _| progress.record(tx))?;
                Ok(verdicts)
            })
            .await;
        self.inner.note_write(&applied);
        applied
    }

    async fn hour_digests(
        &self,
        edge: Option<&EdgeId>,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::SeriesHours>> {
        let edge = edge.cloned();
        self.with_conn(move |_, conn| resync::hour_digests(conn, edge.as_ref(), from, to))
            .await
    }

    async fn start_resync(&self, edge: &EdgeId, from: i64, to: i64) -> Result<crate::ResyncRun> {
        let edge = edge.clone();
        self.with_conn(move |_, conn| resync::start(conn, &edge, from, to))
            .await
    }

    async fn apply_resync(&self, edge: &EdgeId, part: crate::ResyncPart) -> Result<Applied> {
        let edge = edge.clone();
        let applied = self
            .with_conn(move |inner, conn| resync::apply(inner, conn, &edge, &part))
            .await;
        self.inner.note_write(&applied);
        applied
    }

    async fn last_resync(&self, edge: &EdgeId) -> Result<Option<crate::ResyncRun>> {
        let edge = edge.clone();
        self.with_conn(move |_, conn| resync::last(conn, &edge))
            .await
    }

    async fn apply_rollups(&self, batches: Vec<UplinkRollups>) -> Result<Vec<Applied>> {
        let applied = self
            .with_conn(move |inner, conn| {
                let applied = apply_rollups_tx(inner, conn, &batches);
                if applied.is_err() {
                    // A rolled-back transaction leaves no new series ids valid.
                    inner
                        .series_ids
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                    series::reload_series_ids(inner, conn)?;
                }
                applied
            })
            .await;
        self.inner.note_write(&applied);
        applied
    }

    async fn apply_registry(
        &self,
        edge: &EdgeId,
        devices: Vec<RegistryRecord>,
    ) -> Result<RegistryApplied> {
        let edge = edge.to_string();
        let applied = self
            .with_conn(move |_, conn| {
                let tx = conn.transaction()?;
                known_edge(&tx, &edge)?;
                let mut out = RegistryApplied::default();
                let now = sentio_core::time::now_ms();
                for d in devices {
                    let owner: Option<String> = tx
                        .query_row(
                            "SELECT edge FROM edge_devices WHERE device = ?1",
                            [&d.id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let exists: Option<i64> = tx
                        .query_row("SELECT 1 FROM devices WHERE id = ?1", [&d.id], |r| r.get(0))
                        .optional()?;
                    let labels = serde_json::to_string(&d.labels)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    match (exists, owner.as_deref()) {
                        (Some(_), Some(o)) if o == edge => {
                            tx.execute(
                                "UPDATE devices SET name = ?2, kind = ?3, labels = ?4 WHERE id = ?1",
                                params![d.id, d.name, d.kind, labels],
                            )?;
                        }
                        (Some(_), _) => {
                            out.conflicts += 1;
                            continue;
                        }
                        (None, _) => {
                            // Its devices talk to the edge: no secret here that anyone holds.
                            let mut digest = [0u8; 32];
                            getrandom::fill(&mut digest).map_err(|e| {
                                StoreError::Corrupt(format!("random generator: {e}"))
                            })?;
                            tx.execute(
                                "INSERT INTO devices (id, name, kind, labels, secret_digest, created_ms) \
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                params![d.id, d.name, d.kind, labels, digest.as_slice(), now],
                            )?;
                            tx.execute(
                                "INSERT INTO edge_devices (device, edge) VALUES (?1, ?2) \
                                 ON CONFLICT (device) DO UPDATE SET edge = excluded.edge",
                                params![d.id, edge],
                            )?;
                        }
                    }
                    out.applied += 1;
                }
                tx.commit()?;
                Ok(out)
            })
            .await;
        self.inner.note_write(&applied);
        applied
    }

    async fn remove_edge_devices(&self, edge: &EdgeId, kept: Vec<String>) -> Result<u64> {
        let edge = edge.to_string();
        let removed = self
            .with_conn(move |inner, conn| {
                let kept: std::collections::HashSet<String> = kept.into_iter().collect();
                let tx = conn.transaction()?;
                known_edge(&tx, &edge)?;
                let held: Vec<String> = tx
                    .prepare_cached(
                        "SELECT e.device FROM edge_devices e JOIN devices d ON d.id = e.device \
                         WHERE e.edge = ?1 ORDER BY e.device",
                    )?
                    .query_map([&edge], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let gone: Vec<String> = held.into_iter().filter(|d| !kept.contains(d)).collect();
                for id in &gone {
                    tx.execute("DELETE FROM devices WHERE id = ?1", [id])?;
                    let entry = crate::NewAudit {
                        actor: format!("{EDGE_USERNAME_PREFIX}{edge}"),
                        action: "device.delete".into(),
                        subject: Some(id.clone()),
                        detail: serde_json::json!({
                            "removed": {"devices": 1},
                            "data_kept": true,
                            "edge": edge,
                        }),
                    };
                    super::audit::insert(&tx, &entry, None)?;
                }
                tx.commit()?;
                let mut digests = inner.digests.write().unwrap_or_else(|p| p.into_inner());
                for id in &gone {
                    digests.remove(id);
                }
                Ok(gone.len() as u64)
            })
            .await;
        self.inner.note_write(&removed);
        removed
    }

    async fn apply_alerts(&self, edge: &EdgeId, alerts: Vec<Alert>) -> Result<u64> {
        let edge = edge.to_string();
        let applied = self
            .with_conn(move |_, conn| {
                let tx = conn.transaction()?;
                known_edge(&tx, &edge)?;
                let mut n = 0u64;
                for mut a in alerts {
                    let theirs = a.id.get();
                    let ours: Option<i64> = tx
                        .query_row(
                            "SELECT alert_id FROM edge_alerts WHERE edge = ?1 AND edge_alert_id = ?2",
                            params![edge, theirs],
                            |r| r.get(0),
                        )
                        .optional()?;
                    a.id = ours.map_or(AlertId::UNSAVED, AlertId::new);
                    let id = super::alerts::write_alert(&tx, &a)?;
                    tx.execute(
                        "INSERT INTO edge_alerts (edge, edge_alert_id, alert_id) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (edge, edge_alert_id) DO NOTHING",
                        params![edge, theirs, id],
                    )?;
                    let (ack_by, ack_ms) = a.ack.map(|k| (k.by, k.at_ms)).unzip();
                    if ack_by.is_some() || a.resolved_by.is_some() {
                        tx.execute(
                            "INSERT INTO alert_handling (alert_id, ack_by, ack_ms, resolved_by) \
                             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (alert_id) DO UPDATE SET \
                             ack_by = excluded.ack_by, ack_ms = excluded.ack_ms, \
                             resolved_by = excluded.resolved_by",
                            params![id, ack_by, ack_ms, a.resolved_by],
                        )?;
                    }
                    n += 1;
                }
                tx.commit()?;
                Ok(n)
            })
            .await;
        self.inner.note_write(&applied);
        applied
    }

    async fn alert_edges(&self) -> Result<HashMap<i64, String>> {
        self.with_conn(move |_, conn| {
            let rows = conn
                .prepare_cached("SELECT alert_id, edge FROM edge_alerts")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn edge_of_device(&self, device: &DeviceId) -> Result<Option<EdgeId>> {
        let device = device.to_string();
        self.with_conn(move |_, conn| {
            let edge: Option<String> = conn
                .prepare_cached("SELECT edge FROM edge_devices WHERE device = ?1")?
                .query_row([device], |r| r.get(0))
                .optional()?;
            Ok(edge.and_then(|e| EdgeId::parse(&e).ok()))
        })
        .await
    }

    async fn device_edges(&self) -> Result<HashMap<String, String>> {
        self.with_conn(move |_, conn| {
            let rows = conn
                .prepare_cached("SELECT device, edge FROM edge_devices")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}

/// [`EdgeStore::apply_rollups`] in one transaction: the new batches' rows and the progress.
fn apply_rollups_tx(
    inner: &Inner,
    conn: &mut Connection,
    batches: &[UplinkRollups],
) -> Result<Vec<Applied>> {
    let mut progress = Progress::default();
    let mut verdicts = Vec::with_capacity(batches.len());
    let mut touched = Vec::new();
    let tx = conn.transaction()?;
    for b in batches {
        let key: Key = (b.edge.to_string(), b.incarnation.0, Lane::Rollups.as_str());
        let rows: usize = b.series.iter().map(|s| s.rows.len()).sum();
        let v = progress.admit(&tx, key, (b.seq.0, 0), rows)?;
        if v == Applied::Stored {
            for s in &b.series {
                let sid = series::series_id(inner, &tx, s.device.as_str(), &s.metric)?;
                rollup::write_edge_minutes(&tx, sid, &s.rows)?;
                touched.push((sid, s.rows.first().map_or(i64::MAX, |r| r.bucket_ms)));
            }
        }
        verdicts.push(v);
    }
    if !progress.is_empty() {
        progress.record(&tx)?;
        tx.commit()?;
        rollups_written(inner, &touched);
    }
    Ok(verdicts)
}

/// Hands series whose rows an edge wrote (with their first bucket) to maintenance
/// (`workset.rs`): a series that holds only an edge's rollups expires with the rollup
/// retention like any other, also one created since this node started.
pub(super) fn rollups_written(inner: &Inner, touched: &[(i64, i64)]) {
    let mut work = inner.workset();
    for &(sid, first) in touched {
        work.written_around_the_head(sid, first);
    }
}

/// An edge's incarnation and lane.
type Key = (String, [u8; 16], &'static str);

/// What one apply has seen of each edge's progress, and what it will record.
#[derive(Default)]
struct Progress {
    /// Per key: the last (seq, part) applied, stored or in this apply.
    done: HashMap<Key, (i64, u32)>,
    /// Per key: the progress to record and the points (rows) it adds.
    new: HashMap<Key, (i64, u32, i64)>,
}

impl Progress {
    /// Whether the batch part `at` of `key` is new (then counted as applied), or a duplicate.
    fn admit(&mut self, conn: &Connection, key: Key, at: (i64, u32), n: usize) -> Result<Applied> {
        if !self.done.contains_key(&key) {
            known_edge(conn, &key.0)?;
            let row: Option<(i64, u32)> = conn
                .query_row(
                    "SELECT seq, part FROM edge_progress WHERE edge = ?1 AND incarnation = ?2 AND lane = ?3",
                    params![key.0, key.1.as_slice(), key.2],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            self.done.insert(key.clone(), row.unwrap_or((i64::MIN, 0)));
        }
        let last = self.done.get_mut(&key).expect("inserted above");
        if at <= *last {
            return Ok(Applied::Duplicate);
        }
        *last = at;
        let p = self.new.entry(key).or_insert((0, 0, 0));
        (p.0, p.1, p.2) = (at.0, at.1, p.2 + n as i64);
        Ok(Applied::Stored)
    }

    fn is_empty(&self) -> bool {
        self.new.is_empty()
    }

    /// Writes the new progress (in the transaction of what it applied).
    fn record(&self, tx: &rusqlite::Transaction<'_>) -> Result<()> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO edge_progress (edge, incarnation, lane, seq, part, points, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (edge, incarnation, lane) DO UPDATE SET seq = excluded.seq, \
             part = excluded.part, points = points + excluded.points, \
             updated_ms = excluded.updated_ms",
        )?;
        let now = sentio_core::time::now_ms();
        for ((edge, inc, lane), (seq, part, n)) in &self.new {
            stmt.execute(params![edge, inc.as_slice(), lane, seq, part, n, now])?;
        }
        Ok(())
    }
}
