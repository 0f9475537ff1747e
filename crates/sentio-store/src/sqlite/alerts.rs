//! `AlertStore` on SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};
use sentio_core::{Ack, Alert, AlertId, AlertState, Comment, Feedback};

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
    ack_by: Option<String>,
    ack_ms: Option<i64>,
    resolved_by: Option<String>,
    silenced_by: Option<i64>,
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
        ack_by: r.get(11)?,
        ack_ms: r.get(12)?,
        resolved_by: r.get(13)?,
        silenced_by: r.get(14)?,
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
        ack: match (row.ack_by, row.ack_ms) {
            (Some(by), Some(at_ms)) => Some(Ack { by, at_ms }),
            _ => None,
        },
        resolved_by: row.resolved_by,
        silenced_by: row.silenced_by,
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
     resolved_ms, anomalous_points, explanation, peak, f.feedback, h.ack_by, h.ack_ms, \
     h.resolved_by, h.silenced_by FROM alerts \
     LEFT JOIN alert_feedback f ON f.alert_id = alerts.id \
     LEFT JOIN alert_handling h ON h.alert_id = alerts.id";

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

    async fn acknowledge(&self, id: i64, ack: &Ack) -> Result<Option<Ack>> {
        let ack = ack.clone();
        self.with_conn(move |_, conn| {
            let known: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE id = ?1)",
                [id],
                |r| r.get(0),
            )?;
            if !known {
                return Ok(None);
            }
            conn.execute(
                "INSERT INTO alert_handling (alert_id, ack_by, ack_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (alert_id) DO UPDATE SET ack_by = coalesce(ack_by, excluded.ack_by), \
                 ack_ms = coalesce(ack_ms, excluded.ack_ms)",
                params![id, ack.by, ack.at_ms],
            )?;
            let held = conn.query_row(
                "SELECT ack_by, ack_ms FROM alert_handling WHERE alert_id = ?1",
                [id],
                |r| {
                    Ok(Ack {
                        by: r.get(0)?,
                        at_ms: r.get(1)?,
                    })
                },
            )?;
            Ok(Some(held))
        })
        .await
    }

    async fn set_resolved_by(&self, id: i64, by: &str) -> Result<()> {
        let by = by.to_string();
        self.with_conn(move |_, conn| {
            conn.execute(
                "INSERT INTO alert_handling (alert_id, resolved_by) VALUES (?1, ?2) \
                 ON CONFLICT (alert_id) DO UPDATE SET resolved_by = excluded.resolved_by",
                params![id, by],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_comment(&self, id: i64, comment: &Comment) -> Result<bool> {
        let c = comment.clone();
        self.with_conn(move |_, conn| {
            let n = conn.execute(
                "INSERT INTO alert_comments (alert_id, author, at_ms, text) \
                 SELECT id, ?2, ?3, ?4 FROM alerts WHERE id = ?1",
                params![id, c.author, c.at_ms, c.text],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn comments(&self, id: i64) -> Result<Vec<Comment>> {
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT author, at_ms, text FROM alert_comments WHERE alert_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok(Comment {
                    author: r.get(0)?,
                    at_ms: r.get(1)?,
                    text: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn save_alert(&self, alert: &Alert) -> Result<i64> {
        let a = alert.clone();
        self.with_conn(move |_, conn| write_alert(conn, &a)).await
    }

    async fn save_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<i64>> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let ids = alerts
                .iter()
                .map(|a| write_alert(&tx, a))
                .collect::<Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(ids)
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
                     AND (?4 IS NULL OR (h.ack_by IS NOT NULL) = ?4) ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.state.map(|s| s.as_str()),
                    filter.device,
                    limit,
                    filter.acknowledged
                ],
                alert_from_row,
            )?;
            rows.map(|r| finish(r?)).collect()
        })
        .await
    }
}

/// Inserts `a` (unsaved) or updates its changing fields; returns its id.
pub(super) fn write_alert(conn: &rusqlite::Connection, a: &Alert) -> Result<i64> {
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
}
