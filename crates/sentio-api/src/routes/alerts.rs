//! Alerts with their explanations.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use sentio_core::time::format_time;
use sentio_core::{Alert, AlertId, AlertState};
use sentio_store::AlertFilter;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::dto::{AlertParams, FeedbackBody};
use crate::{ApiError, AppState};

pub async fn list(
    _: Admin,
    State(s): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let state = match p.state.as_deref() {
        None | Some("all") => None,
        Some(st) => Some(AlertState::parse(st).ok_or_else(|| {
            ApiError::bad_request(format!("unknown state {st:?}: use open, resolved or all"))
        })?),
    };
    let limit = p.limit.unwrap_or(500).clamp(1, 10_000);
    let alerts = s
        .alerts
        .list_alerts(AlertFilter {
            state,
            device: p.device,
            limit,
        })
        .await?;
    let alerts: Vec<Value> = alerts.iter().map(view).collect();
    Ok(Json(json!({ "alerts": alerts })))
}

/// An alert as JSON, with readable times beside the millisecond ones.
fn view(a: &Alert) -> Value {
    let mut v = serde_json::to_value(a).expect("alerts serialise");
    v["opened"] = json!(format_time(a.opened_ms));
    if let Some(r) = a.resolved_ms {
        v["resolved"] = json!(format_time(r));
    }
    v
}

fn alert_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| ApiError::bad_request(format!("alert id {id:?} is not a positive integer")))
}

pub async fn get(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = alert_id(&id)?;
    let a = s
        .alerts
        .get_alert(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    Ok(Json(view(&a)))
}

/// `POST /api/v1/alerts/{id}/feedback` `{"false_alarm": true, "note": "..."}`.
pub async fn feedback(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<FeedbackBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = alert_id(&id)?;
    let Json(body) = body?;
    if body.note.as_ref().is_some_and(|n| n.len() > 1_000) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_note",
            "note is longer than 1000 bytes",
        ));
    }
    let a = s
        .control
        .feedback(AlertId::new(id), body.false_alarm, body.note)
        .await?;
    let effect = a.feedback.as_ref().map(|f| f.effect.clone());
    Ok(Json(json!({ "alert": view(&a), "effect": effect })))
}

/// `GET /api/v1/limits`: the limits declared per device kind.
pub async fn limits(_: Admin, State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "limits": s.control.limits() }))
}
