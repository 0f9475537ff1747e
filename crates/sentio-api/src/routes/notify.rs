//! Silences (Operator; read by viewers), notification channels (Admin) and alert groups.
//! Every change is audited and handed to the notifier at once
//! ([`sentio_notify::NotifyHandle::reload`]).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sentio_core::time::now_ms;
use sentio_store::NewSilence;
use serde_json::json;

use crate::auth::{Admin, Operator, Viewer};
use crate::dto::{
    ChannelBody, ChannelList, ChannelView, GroupList, GroupView, SilenceBody, SilenceList,
    SilenceView,
};
use crate::{ApiError, AppState};

fn invalid(error: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error, detail)
}

/// `GET /api/v1/silences`: every silence, newest first, with whether it mutes now.
pub async fn silences(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
) -> Result<Json<SilenceList>, ApiError> {
    let now = now_ms();
    Ok(Json(SilenceList {
        silences: s
            .notify
            .silences()
            .await?
            .iter()
            .filter(|x| actor.covers(x))
            .map(|x| SilenceView::at(x, now))
            .collect(),
    }))
}

/// `POST /api/v1/silences` `{"selector", "until" | "for", "reason"}` → 201.
pub async fn create_silence(
    Operator(actor): Operator,
    State(s): State<AppState>,
    body: Result<Json<SilenceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let Json(body) = body?;
    let now = now_ms();
    let until_ms = body
        .until_ms(now)
        .map_err(|e| invalid("invalid_silence", e))?;
    if body.reason.trim().is_empty() || body.reason.len() > 1_000 {
        return Err(invalid("invalid_silence", "reason: 1 to 1,000 bytes"));
    }
    let reason = body.reason.trim().to_string();
    let matcher = body
        .selector
        .into_matcher()
        .map_err(|e| invalid("invalid_silence", format!("selector: {e}")))?;
    let matcher = actor.confine(&s, matcher).await?;
    let silence = s
        .notify
        .create_silence(NewSilence {
            matcher,
            until_ms,
            reason,
            author: actor.name.clone(),
            created_ms: now,
        })
        .await?;
    s.notifier.reload();
    s.audit_by(
        &actor,
        "silence.create",
        Some(&silence.id.to_string()),
        json!({"until_ms": until_ms, "reason": silence.reason}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(SilenceView::at(&silence, now))))
}

/// `DELETE /api/v1/silences/<id>`.
pub async fn delete_silence(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let theirs = s
        .notify
        .silences()
        .await?
        .iter()
        .any(|x| x.id == id && actor.covers(x));
    if !theirs || !s.notify.delete_silence(id).await? {
        return Err(ApiError::not_found(format!("no silence {id}")));
    }
    s.notifier.reload();
    s.audit_by(&actor, "silence.delete", Some(&id.to_string()), json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/channels`: every channel with its delivery counters and last error.
pub async fn channels(_: Admin, State(s): State<AppState>) -> Result<Json<ChannelList>, ApiError> {
    let stats = s.notify.channel_stats().await?;
    Ok(Json(ChannelList {
        channels: s
            .notify
            .channels()
            .await?
            .iter()
            .map(|c| ChannelView::new(c, stats.iter().find(|x| x.name == c.name), false))
            .collect(),
    }))
}

/// `POST /api/v1/channels`: creates (201, with the webhook secret) or replaces (200) a channel
/// by name.
pub async fn put_channel(
    Admin(actor): Admin,
    State(s): State<AppState>,
    body: Result<Json<ChannelBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    let Json(body) = body?;
    let channel = body
        .into_channel(sentio_notify::webhook::new_secret)
        .map_err(|e| invalid("invalid_channel", e))?;
    let created = s.notify.put_channel(&channel).await?;
    s.notifier.reload();
    s.audit_by(
        &actor,
        if created {
            "channel.create"
        } else {
            "channel.update"
        },
        Some(&channel.name),
        json!({"type": channel.target.type_name()}),
    )
    .await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ChannelView::new(&channel, None, true))))
}

/// `DELETE /api/v1/channels/<name>`: with its undelivered messages.
pub async fn delete_channel(
    Admin(actor): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !s.notify.delete_channel(&name).await? {
        return Err(ApiError::not_found(format!("no channel {name:?}")));
    }
    s.notifier.reload();
    s.audit_by(&actor, "channel.delete", Some(&name), json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/alert-groups`: the newest 100 groups.
pub async fn groups(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
) -> Result<Json<GroupList>, ApiError> {
    actor.fleet_wide()?;
    Ok(Json(GroupList {
        groups: s
            .notify
            .groups(100)
            .await?
            .iter()
            .map(GroupView::from)
            .collect(),
    }))
}

/// The channels' counters for `/metrics`.
pub(crate) async fn metrics(s: &AppState) -> String {
    let Ok(stats) = s.notify.channel_stats().await else {
        return String::new();
    };
    let mut out = String::new();
    for (name, help, kind, value) in [
        (
            "sentio_notify_delivered_total",
            "Notifications a channel accepted.",
            "counter",
            0,
        ),
        (
            "sentio_notify_pending",
            "Notifications waiting for an attempt.",
            "gauge",
            1,
        ),
        (
            "sentio_notify_failed",
            "Notifications given up.",
            "gauge",
            2,
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for c in &stats {
            let v = [c.delivered, c.pending, c.failed][value];
            out.push_str(&format!("{name}{{channel=\"{}\"}} {v}\n", c.name));
        }
    }
    out
}
