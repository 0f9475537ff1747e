//! Alerts with their explanations, and how people handle them: acknowledge, resolve, comment
//! (Operator; each recorded in the audit log, state changes announced on the live stream).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use sentio_core::{AlertId, AlertState, Comment};
use sentio_store::AlertFilter;

use crate::auth::{Actor, Operator, Viewer};
use crate::dto::{
    AlertList, AlertParams, AlertView, CommentBody, CommentDto, CommentList, FeedbackAnswer,
    FeedbackBody, LimitList, LimitView,
};
use crate::{ApiError, AppState};

pub async fn list(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    let Query(p) = params?;
    let (state, acknowledged) = match p.state.as_deref() {
        None | Some("all") => (None, None),
        Some("acknowledged") => (Some(AlertState::Open), Some(true)),
        Some(st) => (
            Some(AlertState::parse(st).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown state {st:?}: use open, acknowledged, resolved or all"
                ))
            })?),
            None,
        ),
    };
    let limit = p.limit.unwrap_or(500).clamp(1, 10_000);
    let alerts = actor
        .alerts(
            &s,
            AlertFilter {
                state,
                device: p.device,
                acknowledged,
                limit,
            },
        )
        .await?;
    let edges = s.edges.alert_edges().await?;
    Ok(Json(AlertList {
        alerts: alerts
            .iter()
            .map(|a| AlertView {
                edge: edges.get(&a.id.get()).cloned(),
                ..AlertView::from(a)
            })
            .collect(),
    }))
}

fn alert_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| ApiError::bad_request(format!("alert id {id:?} is not a positive integer")))
}

pub async fn get(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    let id = alert_id(&id)?;
    let a = actor.alert(&s, id).await?;
    let mut view = AlertView::from(&a);
    view.comments = Some(comment_list(&s, id).await?.comments);
    view.edge = s.edges.alert_edges().await?.remove(&id);
    Ok(Json(view))
}

async fn comment_list(s: &AppState, id: i64) -> Result<CommentList, ApiError> {
    Ok(CommentList {
        comments: s
            .alerts
            .comments(id)
            .await?
            .iter()
            .map(CommentDto::from)
            .collect(),
    })
}

/// `POST /api/v1/alerts/{id}/ack`: the caller takes charge of the open alert (the first
/// acknowledgement stays); 409 once resolved.
pub async fn ack(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    transition(actor, s, &id, Transition::Acknowledge).await
}

/// `POST /api/v1/alerts/{id}/resolve`: the caller resolves the open alert now; 409 once
/// resolved.
pub async fn resolve(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    transition(actor, s, &id, Transition::Resolve).await
}

/// What an operator does to an open alert.
#[derive(Clone, Copy)]
enum Transition {
    Acknowledge,
    Resolve,
}

/// Checks the caller may see the alert, applies `to` as the caller and audits it.
async fn transition(
    actor: Actor,
    s: AppState,
    id: &str,
    to: Transition,
) -> Result<Json<AlertView>, ApiError> {
    let id = alert_id(id)?;
    actor.alert(&s, id).await?;
    let (a, action) = match to {
        Transition::Acknowledge => (
            s.control
                .acknowledge(AlertId::new(id), actor.name.clone())
                .await?,
            "alert.acknowledge",
        ),
        Transition::Resolve => (
            s.control
                .resolve(AlertId::new(id), actor.name.clone())
                .await?,
            "alert.resolve",
        ),
    };
    s.audit_by(&actor, action, Some(&id.to_string()), serde_json::json!({}))
        .await;
    Ok(Json(AlertView::from(&a)))
}

/// `GET /api/v1/alerts/{id}/comments`: the comments, oldest first.
pub async fn comments(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CommentList>, ApiError> {
    let id = alert_id(&id)?;
    actor.alert(&s, id).await?;
    Ok(Json(comment_list(&s, id).await?))
}

/// `POST /api/v1/alerts/{id}/comments` `{"text"}` → 201 with every comment.
pub async fn comment(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CommentBody>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<CommentList>), ApiError> {
    let id = alert_id(&id)?;
    actor.alert(&s, id).await?;
    let Json(body) = body?;
    let text = body.text.trim();
    if text.is_empty() || text.len() > Comment::MAX_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_comment",
            format!("text must be 1 to {} bytes", Comment::MAX_BYTES),
        ));
    }
    let comment = Comment {
        author: actor.name.clone(),
        at_ms: sentio_core::time::now_ms(),
        text: text.to_string(),
    };
    if !s.alerts.add_comment(id, &comment).await? {
        return Err(ApiError::not_found(format!("no alert {id}")));
    }
    s.audit_by(
        &actor,
        "alert.comment",
        Some(&id.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(comment_list(&s, id).await?),
    ))
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
    actor.alert(&s, id).await?;
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
    tracing::info!(alert = id, by = %actor.name, "alert feedback");
    Ok(Json(FeedbackAnswer::from(&a)))
}

/// `GET /api/v1/limits`: the limits declared per device kind.
pub async fn limits(_: Viewer, State(s): State<AppState>) -> Json<LimitList> {
    Json(LimitList {
        limits: s.control.limits().iter().map(LimitView::from).collect(),
    })
}
