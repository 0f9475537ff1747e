//! `SeriesStore` on SQLite: one row per point, keyed by (series, ts).

use async_trait::async_trait;
use rusqlite::{Connection, params};
use sentio_core::{DeviceId, Point};

use super::{Inner, SqliteStore};
use crate::{Agg, RangeQuery, RangeResult, Result, SeriesInfo, SeriesStore, StoreError};

/// The id of (device, metric), created on first use.
fn series_id(inner: &Inner, conn: &Connection, device: &str, metric: &str) -> Result<i64> {
    let key = (device.to_string(), metric.to_string());
    if let Some(id) = inner
        .series_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(*id);
    }
    conn.execute(
        "INSERT OR IGNORE INTO series (device, metric) VALUES (?1, ?2)",
        params![device, metric],
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM series WHERE device = ?1 AND metric = ?2",
        params![device, metric],
        |r| r.get(0),
    )?;
    inner
        .series_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, id);
    Ok(id)
}

#[async_trait]
impl SeriesStore for SqliteStore {
    async fn append(&self, points: &[Point]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points.to_vec();
        self.with_conn(move |inner, conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO points (series_id, ts, value) VALUES (?1, ?2, ?3)",
                )?;
                for p in &points {
                    let sid = series_id(inner, &tx, p.device.as_str(), &p.metric)?;
                    stmt.execute(params![sid, p.ts_ms, p.value])?;
                }
            }
            if let Err(e) = tx.commit() {
                // A failed commit (e.g. disk full) leaves no new series ids valid.
                inner
                    .series_ids
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                reload_series_ids(inner, conn)?;
                return Err(e.into());
            }
            Ok(())
        })
        .await
    }

    async fn series(&self, device: &DeviceId) -> Result<Vec<SeriesInfo>> {
        let device = device.to_string();
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare(
                "SELECT s.metric, p.ts, p.value FROM series s \
                 JOIN points p ON p.series_id = s.id \
                 AND p.ts = (SELECT MAX(ts) FROM points WHERE series_id = s.id) \
                 WHERE s.device = ?1 ORDER BY s.metric",
            )?;
            let rows = stmt.query_map([&device], |r| {
                Ok(SeriesInfo {
                    metric: r.get(0)?,
                    latest_ts_ms: r.get(1)?,
                    latest_value: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn query(&self, q: RangeQuery) -> Result<RangeResult> {
        if q.to_ms <= q.from_ms {
            return Err(StoreError::InvalidQuery(format!(
                "`to` ({}) must be after `from` ({})",
                q.to_ms, q.from_ms
            )));
        }
        self.with_conn(move |inner, conn| {
            let key = (q.device.to_string(), q.metric.clone());
            let sid = inner
                .series_ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .copied();
            let Some(sid) = sid else {
                return Ok(RangeResult::default());
            };
            let limit = q.limit.max(1);
            let mut points = Vec::new();
            match q.step {
                None => {
                    let mut stmt = conn.prepare_cached(
                        "SELECT ts, value FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 \
                         ORDER BY ts LIMIT ?4",
                    )?;
                    let rows = stmt.query_map(
                        params![sid, q.from_ms, q.to_ms, limit as i64 + 1],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    for row in rows {
                        points.push(row?);
                    }
                }
                Some((step, agg)) => {
                    let expr = match agg {
                        Agg::Avg => "AVG(value)",
                        Agg::Min => "MIN(value)",
                        Agg::Max => "MAX(value)",
                        Agg::Sum => "SUM(value)",
                        Agg::Count => "COUNT(*)",
                        // SQLite returns the other columns of the row that holds MIN/MAX(ts).
                        Agg::First => "value, MIN(ts)",
                        Agg::Last => "value, MAX(ts)",
                    };
                    let sql = format!(
                        "SELECT (ts / ?4) * ?4 AS bucket, {expr} FROM points \
                         WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 \
                         GROUP BY bucket ORDER BY bucket LIMIT ?5"
                    );
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let rows = stmt.query_map(
                        params![sid, q.from_ms, q.to_ms, step, limit as i64 + 1],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)),
                    )?;
                    for row in rows {
                        points.push(row?);
                    }
                }
            }
            let next = if points.len() > limit {
                points.pop().map(|(ts, _)| ts)
            } else {
                None
            };
            Ok(RangeResult { points, next })
        })
        .await
    }

    async fn load_detector_states(&self) -> Result<Vec<(String, String, String)>> {
        self.with_conn(|_, conn| {
            let mut stmt = conn.prepare("SELECT device, metric, state FROM detector_state")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn save_detector_states(&self, states: Vec<(String, String, String)>) -> Result<()> {
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO detector_state (device, metric, state) \
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
                )?;
                for (d, m, s) in &states {
                    stmt.execute(params![d, m, s])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn reload_series_ids(inner: &Inner, conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("SELECT id, device, metric FROM series")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
    let mut ids = inner.series_ids.lock().unwrap_or_else(|p| p.into_inner());
    for row in rows {
        let (id, device, metric) = row?;
        ids.insert((device, metric), id);
    }
    Ok(())
}
