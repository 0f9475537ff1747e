//! `GET /api/v1/devices/<id>/series/<metric>/forecast?horizon=2h[&step=1m][&history=7d]`: a
//! forecast with 95 % prediction intervals (MSTL + AutoETS, `sentio_ai::forecast`) fitted on the
//! series' recent history, averaged per `step`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sentio_core::DeviceId;
use sentio_core::time::{now_ms, parse_duration_ms};
use sentio_store::{Agg, RangeQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Viewer;
use crate::{ApiError, AppState};

/// Most forecast steps in one answer.
const MAX_STEPS: i64 = 2_000;
/// Most history steps fitted.
const MAX_HISTORY_STEPS: i64 = 20_000;

#[derive(Debug, Deserialize)]
pub struct ForecastParams {
    horizon: Option<String>,
    step: Option<String>,
    history: Option<String>,
}

pub async fn forecast(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path((id, metric)): Path<(String, String)>,
    params: Result<Query<ForecastParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let device = DeviceId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if s.registry.get_device(&device).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id:?} not found")));
    }
    actor.admit(&s, &device).await?;
    let bad = |e: sentio_core::CoreError| ApiError::bad_request(e.to_string());
    let horizon = parse_duration_ms(p.horizon.as_deref().unwrap_or("1h")).map_err(bad)?;
    // Default step: 1/60 of the horizon, at least one second.
    let step = match &p.step {
        Some(st) => parse_duration_ms(st).map_err(bad)?,
        None => (horizon / 60).max(1_000),
    };
    if horizon / step > MAX_STEPS {
        return Err(ApiError::bad_request(format!(
            "horizon/step is {} steps; at most {MAX_STEPS} (use a larger step)",
            horizon / step
        )));
    }
    let history = match &p.history {
        Some(h) => parse_duration_ms(h).map_err(bad)?,
        None => (step * MAX_HISTORY_STEPS).min(7 * 86_400_000),
    }
    .min(step * MAX_HISTORY_STEPS);
    let to = now_ms() + 1;
    let result = s
        .series
        .query(RangeQuery {
            device,
            metric: metric.clone(),
            from_ms: to - history,
            to_ms: to,
            step: Some((step, Agg::Avg)),
            limit: MAX_HISTORY_STEPS as usize,
        })
        .await?;
    let n = result.points.len();
    let points =
        tokio::task::spawn_blocking(move || sentio_ai::try_forecast(&result.points, horizon, step))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "cannot_forecast",
                    format!("{e} ({n} history steps of {step} ms for {id}/{metric})"),
                )
            })?;
    Ok(Json(json!({
        "device": id,
        "metric": metric,
        "model": "MSTL + AutoETS (augurs), 95 % prediction interval",
        "horizon_ms": horizon,
        "step_ms": step,
        "history_steps": n,
        "points": points.iter().map(|f| json!({
            "ts_ms": f.ts_ms, "value": f.value, "lower": f.lower, "upper": f.upper,
        })).collect::<Vec<_>>(),
    })))
}
