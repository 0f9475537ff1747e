//! `GET /api/v1/devices/<id>/events[?metric=&limit=]`: a device's text readings, newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use sentio_core::DeviceId;
use sentio_core::time::format_time;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Viewer;
use crate::{ApiError, AppState};

/// Default number of events returned.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    metric: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let device = DeviceId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > sentio_store::EVENT_HISTORY {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={}",
            sentio_store::EVENT_HISTORY
        )));
    }
    if s.registry.get_device(&device).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id:?} not found")));
    }
    actor.admit(&s, &device).await?;
    let events: Vec<Value> = s
        .events
        .events(&device, p.metric.as_deref(), limit)
        .await?
        .into_iter()
        .map(|e| json!({"metric": &*e.metric, "ts_ms": e.ts_ms, "ts": format_time(e.ts_ms), "text": e.text}))
        .collect();
    Ok(Json(json!({"device": id, "events": events})))
}
