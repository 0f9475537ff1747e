//! A device's twin: `GET /api/v1/devices/<id>/twin` (with an `ETag` of its version) and
//! `PATCH` (operators) with a JSON merge patch of the desired document. `If-Match: "<version>"`
//! makes the change conditional: of two writers from the same version, the second gets 412
//! with the current version. Without `If-Match` the change applies to whatever is current
//! (a merge patch of distinct members does not lose the other writer's change).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::commands::registered;
use crate::auth::{Operator, Viewer};
use crate::dto::TwinDto;
use crate::{ApiError, AppState};

fn answer(twin: &sentio_core::Twin) -> Response {
    let mut resp = Json(TwinDto::from(twin)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", twin.version)) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// `If-Match`: `"3"` (or `3`, `W/"3"`) → `Some(3)`; absent or `*` → `None`.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "If-Match must be the twin's version as its ETag gives it (\"3\"), not {text:?}"
        ))
    })
}

/// `GET /api/v1/devices/<id>/twin`.
pub async fn get(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let device = registered(&s, &actor, &id).await?;
    Ok(answer(&s.twins.get(&device).await?))
}

/// `PATCH /api/v1/devices/<id>/twin`: `{"desired": {...}}` or the merge patch itself; 412
/// stale `If-Match`, 413 beyond the size cap, 422 not a JSON object.
pub async fn patch(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let device = registered(&s, &actor, &id).await?;
    let expected = if_match(&headers)?;
    let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("a JSON object: {e}"),
        )
    })?;
    let patch = match body {
        serde_json::Value::Object(mut m) if m.len() == 1 && m.contains_key("desired") => {
            m.remove("desired").unwrap_or_default()
        }
        other => other,
    };
    let twin = s.twins.patch_desired(&device, expected, &patch).await?;
    s.audit_by(
        &actor,
        "twin.desired_changed",
        Some(device.as_str()),
        json!({"version": twin.version, "patch": patch}),
    )
    .await;
    Ok(answer(&twin))
}
