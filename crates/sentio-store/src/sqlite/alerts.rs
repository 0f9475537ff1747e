//! `AlertStore` on SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};
use sentio_core::{Alert, AlertState};

use super::SqliteStore;
use crate::{AlertFilter, AlertStore, Result, StoreError};

fn alert_from_row(r: &Row<'_>) -> rusqlite::Result<(Alert, String, String, String)> {
    Ok((
        Alert {
            id: r.get(0)?,
            device: r.get(1)?,
            metric: r.get(2)?,
            state: AlertState::Open,
            opened_ms: r.get(4)?,
            last_anomaly_ms: r.get(5)?,
            resolved_ms: r.get(6)?,
            anomalous_points: r.get::<_, i64>(7)? as u64,
            explanation: placeholder(),
            peak: placeholder(),
        },
        r.get(3)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn placeholder() -> sentio_core::Explanation {
    sentio_core::Explanation {
        detector: String::new(),
        expected: 0.0,
        lower: 0.0,
        upper: 0.0,
        observed: 0.0,
        score: 0.0,
        message: String::new(),
    }
}

fn finish(row: (Alert, String, String, String)) -> Result<Alert> {
    let (mut a, state, explanation, peak) = row;
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of alert {}", a.id));
    a.state = AlertState::parse(&state).ok_or_else(|| corrupt("state"))?;
    a.explanation = serde_json::from_str(&explanation).map_err(|_| corrupt("explanation"))?;
    a.peak = serde_json::from_str(&peak).map_err(|_| corrupt("peak"))?;
    Ok(a)
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn save_alert(&self, alert: &Alert) -> Result<i64> {
        let a = alert.clone();
        self.with_conn(move |_, conn| {
            let explanation = serde_json::to_string(&a.explanation).expect("serialise");
            let peak = serde_json::to_string(&a.peak).expect("serialise");
            let id = if a.id == 0 { None } else { Some(a.id) };
            conn.execute(
                "INSERT INTO alerts (id, device, metric, state, opened_ms, last_anomaly_ms, \
                 resolved_ms, anomalous_points, explanation, peak) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                 last_anomaly_ms = excluded.last_anomaly_ms, resolved_ms = excluded.resolved_ms, \
                 anomalous_points = excluded.anomalous_points, peak = excluded.peak",
                params![
                    id,
                    a.device,
                    a.metric,
                    a.state.as_str(),
                    a.opened_ms,
                    a.last_anomaly_ms,
                    a.resolved_ms,
                    a.anomalous_points as i64,
                    explanation,
                    peak
                ],
            )?;
            Ok(id.unwrap_or_else(|| conn.last_insert_rowid()))
        })
        .await
    }

    async fn list_alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>> {
        self.with_conn(move |_, conn| {
            let limit = if filter.limit == 0 {
                1000
            } else {
                filter.limit
            } as i64;
            let mut stmt = conn.prepare(
                "SELECT id, device, metric, state, opened_ms, last_anomaly_ms, resolved_ms, \
                 anomalous_points, explanation, peak FROM alerts \
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR device = ?2) \
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![filter.state.map(|s| s.as_str()), filter.device, limit],
                alert_from_row,
            )?;
            rows.map(|r| finish(r?)).collect()
        })
        .await
    }
}
