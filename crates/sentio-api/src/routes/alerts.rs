//! Alerts with their explanations.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use sentio_core::AlertState;
use sentio_core::time::format_time;
use sentio_store::AlertFilter;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::dto::AlertParams;
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
    let alerts: Vec<Value> = alerts
        .into_iter()
        .map(|a| {
            let mut v = serde_json::to_value(&a).expect("alerts serialise");
            v["opened"] = json!(format_time(a.opened_ms));
            if let Some(r) = a.resolved_ms {
                v["resolved"] = json!(format_time(r));
            }
            v
        })
        .collect();
    Ok(Json(json!({ "alerts": alerts })))
}
