//! `SeriesStore` on SQLite: appends go to the durable head (`head_log`, one packed blob per
//! commit and series, in commit order, see `head`); reads go over the head and the sealed chunks (see `read`).

use async_trait::async_trait;
use std::collections::HashMap;

use rusqlite::{Connection, params};
use sentio_core::{DeviceId, Point, SeriesKey};

use super::{Inner, SqliteStore, band, head, read, rollup};
use crate::{
    BandRow, RangeQuery, RangeResult, Resolution, Result, SeriesInfo, SeriesStore, StoreError,
};

/// The id of (device, metric), created on first use.
pub(super) fn series_id(
    inner: &Inner,
    conn: &Connection,
    device: &str,
    metric: &str,
) -> Result<i64> {
    if let Some(id) = inner.known_series(device, metric) {
        return Ok(id);
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
        .entry(device.to_string())
        .or_default()
        .insert(metric.to_string(), id);
    Ok(id)
}

/// Where one write put its points in one series: the first and last timestamp and how many.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub first: i64,
    pub last: i64,
    pub count: u32,
}

/// The series a write touched, by series id.
pub(super) type Spans = HashMap<i64, Span>;

/// Writes `points` to the head in one durable transaction, with `also` written in the same
/// transaction (the outbox record, an edge's progress); on success, the series are handed to
/// background work (`workset.rs`). A duplicate timestamp replaces the stored point.
pub(super) fn write_points(
    inner: &Inner,
    conn: &mut Connection,
    points: &[Point],
    also: impl FnOnce(&rusqlite::Transaction<'_>, &Spans) -> Result<()>,
) -> Result<()> {
    // The series appended to, with their oldest new timestamp: background work looks at
    // these (`workset.rs`).
    let mut spans: Spans = HashMap::new();
    let tx = conn.transaction()?;
    {
        // This commit's points, per series, in batch order.
        let runs = group_by_series(inner, &tx, points)?;
        // A point before this may land in a bucket already rolled up.
        let rolled = inner.rolled_max.load(std::sync::atomic::Ordering::Relaxed);
        // One blob per series under this commit's seq, in key order (seq, series).
        let seq = inner
            .head_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut head = head::Appender::new(&tx)?;
        for (sid, mut run) in runs {
            // The span counts the batch's points, duplicates included (the outbox's parts).
            let count = run.len() as u32;
            head::settle(&mut run);
            head.insert(sid, seq, &run)?;
            let (first, last) = (run[0].0, run[run.len() - 1].0);
            // Sorted: each late minute of the series is marked once, not once a point.
            if first < rolled {
                let mut last_marked = None;
                for &(ts, _) in run.iter().take_while(|p| p.0 < rolled) {
                    rollup::mark_late(&tx, sid, ts, &mut last_marked)?;
                }
            }
            spans.insert(sid, Span { first, last, count });
        }
    }
    let built = std::time::Instant::now();
    let committed = also(&tx, &spans).and_then(|()| Ok(tx.commit()?));
    tracing::debug!(
        target: "sentio_store::append",
        commit_us = built.elapsed().as_micros() as u64,
        "commit"
    );
    if let Err(e) = committed {
        // A failed commit (e.g. disk full) leaves no new series ids valid.
        inner
            .series_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        reload_series_ids(inner, conn)?;
        return Err(e);
    }
    let mut work = inner.workset();
    for (sid, span) in spans {
        work.appended(sid, span.first, span.last);
    }
    Ok(())
}

/// A batch's points per series: (series id, its (time, value) pairs).
type Runs = Vec<(i64, Vec<(i64, f64)>)>;

/// A batch's points grouped by series id (creating new series in `tx`), each group in batch
/// order, the groups in series id order. Points of one payload share their device's and
/// metric's `Arc<str>`, so a pair is looked up by name once per payload, not once per point.
fn group_by_series(
    inner: &Inner,
    tx: &rusqlite::Transaction<'_>,
    points: &[Point],
) -> Result<Runs> {
    let mut runs: Runs = Vec::new();
    // Series id → its run; (device, metric) by address → its run. The addresses stay valid
    // (and distinct per live string) while `points` is borrowed.
    let mut slot: HashMap<i64, usize> = HashMap::new();
    let mut by_address: HashMap<(usize, usize), usize> = HashMap::new();
    for p in points {
        let address = (
            p.device.as_str().as_ptr() as usize,
            p.metric.as_ptr() as usize,
        );
        let k = match by_address.get(&address) {
            Some(&k) => k,
            None => {
                let sid = series_id(inner, tx, p.device.as_str(), &p.metric)?;
                let k = *slot.entry(sid).or_insert_with(|| {
                    runs.push((sid, Vec::new()));
                    runs.len() - 1
                });
                by_address.insert(address, k);
                k
            }
        };
        runs[k].1.push((p.ts_ms, p.value));
    }
    runs.sort_unstable_by_key(|r| r.0);
    Ok(runs)
}

fn check_range(from_ms: i64, to_ms: i64) -> Result<()> {
    if to_ms <= from_ms {
        return Err(StoreError::InvalidQuery(format!(
            "`to` ({to_ms}) must be after `from` ({from_ms})"
        )));
    }
    Ok(())
}

#[async_trait]
impl SeriesStore for SqliteStore {
    async fn append(&self, points: &[Point]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points.to_vec();
        let asked = std::time::Instant::now();
        let stored = self
            .with_conn(move |inner, conn| {
                let locked = std::time::Instant::now();
                let r = write_points(inner, conn, &points, |tx, spans| {
                    // The edge's outbox: this batch, in the same transaction as its points.
                    if inner.outbox_on() {
                        super::outbox::record(tx, spans, inner.outbox_lane())?;
                    }
                    Ok(())
                });
                tracing::debug!(
                    target: "sentio_store::append",
                    points = points.len(),
                    lock_wait_us = locked.duration_since(asked).as_micros() as u64,
                    write_us = locked.elapsed().as_micros() as u64,
                    "append"
                );
                r
            })
            .await;
        self.inner.note_write(&stored);
        stored
    }

    async fn series(&self, device: &DeviceId) -> Result<Vec<SeriesInfo>> {
        let device = device.to_string();
        self.with_conn(move |_, conn| {
            let mut stmt =
                conn.prepare("SELECT id, metric FROM series WHERE device = ?1 ORDER BY metric")?;
            let ids = stmt
                .query_map([&device], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for (sid, metric) in ids {
                // A series whose raw points all expired still has its rollups' last value.
                let latest = match read::latest(conn, sid)? {
                    Some(l) => Some(l),
                    None => rollup::latest(conn, sid)?,
                };
                if let Some((ts, value)) = latest {
                    out.push(SeriesInfo {
                        metric,
                        latest_ts_ms: ts,
                        latest_value: value,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn metric_names(&self, device: &DeviceId) -> Result<Vec<String>> {
        let ids = self
            .inner
            .series_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = ids
            .get(device.as_str())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort_unstable();
        Ok(names)
    }

    async fn query(&self, q: RangeQuery) -> Result<RangeResult> {
        Ok(self.query_resolved(q).await?.0)
    }

    async fn downsample(
        &self,
        device: &DeviceId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
        points: usize,
    ) -> Result<RangeResult> {
        Ok(self
            .downsample_resolved(device, metric, from_ms, to_ms, points)
            .await?
            .0)
    }

    async fn query_resolved(&self, q: RangeQuery) -> Result<(RangeResult, Resolution)> {
        check_range(q.from_ms, q.to_ms)?;
        self.with_conn(move |inner, conn| {
            let Some(sid) = inner.known_series(q.device.as_str(), &q.metric) else {
                return Ok((RangeResult::default(), Resolution::Raw));
            };
            let limit = q.limit.max(1);
            match q.step {
                None => Ok((
                    read::raw(conn, sid, q.from_ms, q.to_ms, limit)?,
                    Resolution::Raw,
                )),
                Some(step) => rollup::aggregate(conn, sid, (q.from_ms, q.to_ms), step, limit),
            }
        })
        .await
    }

    async fn downsample_resolved(
        &self,
        device: &DeviceId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
        points: usize,
    ) -> Result<(RangeResult, Resolution)> {
        check_range(from_ms, to_ms)?;
        let (device, metric) = (device.to_string(), metric.to_string());
        self.with_conn(move |inner, conn| {
            let Some(sid) = inner.known_series(&device, &metric) else {
                return Ok((RangeResult::default(), Resolution::Raw));
            };
            rollup::downsample(conn, sid, (from_ms, to_ms), points)
        })
        .await
    }

    async fn rollups(
        &self,
        device: &DeviceId,
        metric: &str,
        resolution: Resolution,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::RollupRow>> {
        let (device, metric) = (device.to_string(), metric.to_string());
        self.with_conn(move |inner, conn| {
            let Some(sid) = inner.known_series(&device, &metric) else {
                return Ok(Vec::new());
            };
            rollup::export_rows(conn, resolution, sid, from_ms, limit)
        })
        .await
    }

    async fn save_bands(&self, bands: Vec<(SeriesKey, BandRow)>) -> Result<()> {
        if bands.is_empty() {
            return Ok(());
        }
        // Derived data, rewritten from the next save if lost: no fsync per save.
        self.with_conn(move |inner, conn| {
            super::without_fsync(conn, |conn| band::save(inner, conn, &bands))
        })
        .await
    }

    async fn bands(
        &self,
        series: &SeriesKey,
        from_ms: i64,
        to_ms: i64,
        buckets: usize,
    ) -> Result<Option<Vec<BandRow>>> {
        check_range(from_ms, to_ms)?;
        let series = series.clone();
        self.with_conn(move |inner, conn| {
            let Some(sid) = inner.known_series(series.device.as_str(), &series.metric) else {
                return Ok(None);
            };
            Ok(Some(band::read(conn, sid, (from_ms, to_ms), buckets)?))
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
                // A device's rows only while it is registered; a rule's label groups belong
                // to no one device.
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO detector_state (device, metric, state) \
                     SELECT ?1, ?2, ?3 WHERE ?1 = ?4 OR EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
                )?;
                for (d, m, s) in &states {
                    stmt.execute(params![d, m, s, sentio_core::keys::RULE_GROUP_STATE])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

pub(super) fn reload_series_ids(inner: &Inner, conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("SELECT id, device, metric FROM series")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
    let mut ids = inner.series_ids.lock().unwrap_or_else(|p| p.into_inner());
    for row in rows {
        let (id, device, metric): (i64, String, String) = row?;
        ids.entry(device).or_default().insert(metric, id);
    }
    Ok(())
}
