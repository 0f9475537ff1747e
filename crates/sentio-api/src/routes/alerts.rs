//! Alerts with their explanations.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use sentio_core::{AlertId, AlertState};
use sentio_store::AlertFilter;

use crate::auth::{Operator, Viewer};
use crate::dto::{
    AlertList, AlertParams, AlertView, FeedbackAnswer, FeedbackBody, LimitList, LimitView,
};
use crate::{ApiError, AppState};

pub async fn list(
    _: Viewer,
    State(s): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
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
    Ok(Json(AlertList {
        alerts: alerts.iter().map(AlertView::from).collect(),
    }))
}

fn alert_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| ApiError::bad_request(format!("alert id {id:?} is not a positive integer")))
}

pub async fn get(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    let id = alert_id(&id)?;
    let a = s
        .alerts
        .get_alert(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    Ok(Json(AlertView::from(&a)))
}

/// `POST /api/v1/alerts/{id}/feedback` `{"false_alarm": true, "note": "..."}`, or
/// `{"new_normal": true}` for a device alert: its current state is learnt as normal.
pub async fn feedback(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<FeedbackBody>, JsonRejection>,
) -> Result<Json<FeedbackAnswer>, ApiError> {
    let id = alert_id(&id)?;
    let Json(body) = body?;
    if body.note.as_ref().is_some_and(|n| n.len() > 1_000) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_note",
            "note is longer than 1000 bytes",
        ));
    }
    let a = match (body.new_normal, body.false_alarm) {
        (true, None) => s.control.new_normal(AlertId::new(id), body.note).await?,
        (false, Some(false_alarm)) => {
            s.control
                .feedback(AlertId::new(id), false_alarm, body.note)
                .await?
        }
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_feedback",
                "give either false_alarm (true or false) or new_normal: true",
            ));
        }
    };
    tracing::info!(alert = id, by = %actor.0, "alert feedback");
    Ok(Json(FeedbackAnswer::from(&a)))
}

/// `GET /api/v1/limits`: the limits declared per device kind.
pub async fn limits(_: Viewer, State(s): State<AppState>) -> Json<LimitList> {
    Json(LimitList {
        limits: s.control.limits().iter().map(LimitView::from).collect(),
    })
}
