//! `AlertStore` on SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};
use sentio_core::{Alert, AlertId, AlertState, Feedback};

use super::SqliteStore;
use crate::{AlertFilter, AlertStore, Result, StoreError, stored_form};

/// The columns of one `alerts` row, before the JSON ones are parsed.
struct AlertRow {
    id: i64,
    device: String,
    metric: String,
    state: String,
    opened_ms: i64,
    last_anomaly_ms: i64,
    resolved_ms: Option<i64>,
    anomalous_points: i64,
    explanation: String,
    peak: String,
    feedback: Option<String>,
}

fn alert_from_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        device: r.get(1)?,
        metric: r.get(2)?,
        state: r.get(3)?,
        opened_ms: r.get(4)?,
        last_anomaly_ms: r.get(5)?,
        resolved_ms: r.get(6)?,
        anomalous_points: r.get(7)?,
        explanation: r.get(8)?,
        peak: r.get(9)?,
        feedback: r.get(10)?,
    })
}

fn finish(row: AlertRow) -> Result<Alert> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of alert {}", row.id));
    Ok(Alert {
        state: AlertState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
        explanation: stored_form::read_explanation(&row.explanation)
            .map_err(|_| corrupt("explanation"))?,
        peak: stored_form::read_explanation(&row.peak).map_err(|_| corrupt("peak"))?,
        feedback: match &row.feedback {
            Some(f) => Some(stored_form::read_feedback(f).map_err(|_| corrupt("feedback"))?),
            None => None,
        },
        id: AlertId::new(row.id),
        device: row.device,
        metric: row.metric,
        opened_ms: row.opened_ms,
        last_anomaly_ms: row.last_anomaly_ms,
        resolved_ms: row.resolved_ms,
        anomalous_points: row.anomalous_points as u64,
    })
}

const SELECT_ALERT: &str = "SELECT id, device, metric, state, opened_ms, last_anomaly_ms, \
     resolved_ms, anomalous_points, explanation, peak, f.feedback FROM alerts \
     LEFT JOIN alert_feedback f ON f.alert_id = alerts.id";

#[async_trait]
impl AlertStore for SqliteStore {
    async fn get_alert(&self, id: i64) -> Result<Option<Alert>> {
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare(&format!("{SELECT_ALERT} WHERE id = ?1"))?;
            let row = stmt.query_map([id], alert_from_row)?.next().transpose()?;
            row.map(finish).transpose()
        })
        .await
    }

    async fn save_feedback(&self, id: i64, feedback: &Feedback) -> Result<()> {
        let json = stored_form::feedback_json(feedback);
        self.with_conn(move |_, conn| {
            conn.execute(
                "INSERT INTO alert_feedback (alert_id, feedback) VALUES (?1, ?2) \
                 ON CONFLICT (alert_id) DO UPDATE SET feedback = excluded.feedback",
                params![id, json],
            )?;
            Ok(())
        })
        .await
    }

    async fn save_alert(&self, alert: &Alert) -> Result<i64> {
        let a = alert.clone();
        self.with_conn(move |_, conn| {
            let explanation = stored_form::explanation_json(&a.explanation);
            let peak = stored_form::explanation_json(&a.peak);
            let id = a.id.is_saved().then_some(a.id.get());
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
            let mut stmt = conn.prepare(&format!(
                "{SELECT_ALERT} WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR device = ?2) \
                     ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![filter.state.map(|s| s.as_str()), filter.device, limit],
                alert_from_row,
            )?;
            rows.map(|r| finish(r?)).collect()
        })
        .await
    }
}
