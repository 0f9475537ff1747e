//! Time series of a device.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use sentio_core::{DeviceId, SeriesKey};
use sentio_store::{Agg, RangeQuery};
use serde_json::{Value, json};

use crate::auth::Viewer;
use crate::dto::RangeParams;
use crate::{ApiError, AppState};

/// Default and largest number of points in one answer.
const DEFAULT_LIMIT: usize = 10_000;
const MAX_LIMIT: usize = 100_000;

fn device_id(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The device of a series path and the asked range (default the last hour).
fn device_and_range(id: &str, p: &RangeParams) -> Result<(DeviceId, i64, i64), ApiError> {
    let (from, to) = p.range(3_600_000)?;
    Ok((device_id(id)?, from, to))
}

pub async fn list(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let device = device_id(&id)?;
    if s.registry.get_device(&device).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id:?} not found")));
    }
    actor.admit(&s, &device).await?;
    let series: Vec<Value> = s
        .series
        .series(&device)
        .await?
        .into_iter()
        .map(|i| {
            json!({
                "metric": i.metric,
                "latest": {"ts_ms": i.latest_ts_ms, "ts": sentio_core::time::format_time(i.latest_ts_ms), "value": i.latest_value},
            })
        })
        .collect();
    Ok(Json(json!({"device": id, "series": series})))
}

pub async fn range(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path((id, metric)): Path<(String, String)>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let (device, from, to) = device_and_range(&id, &p)?;
    actor.admit(&s, &device).await?;
    let step = super::query::parse_step(p.step.as_deref(), p.agg.as_deref())?;
    let result = match p.points {
        Some(_) if step.is_some() => {
            return Err(ApiError::bad_request(
                "`points` draws the range for a chart; it cannot be combined with `step`",
            ));
        }
        Some(n) if !(2..=MAX_LIMIT).contains(&n) => {
            return Err(ApiError::bad_request(format!(
                "points must be 2..={MAX_LIMIT}"
            )));
        }
        Some(n) => {
            s.series
                .downsample_resolved(&device, &metric, from, to, n)
                .await?
        }
        None => range_points(&s, device, &metric, (from, to), step, p.limit).await?,
    };
    let (result, resolution) = result;
    let mut body = json!({
        "device": id,
        "metric": metric,
        "from": from,
        "to": to,
        "points": result.points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
        "resolution": resolution.as_str(),
    });
    if let Some(next) = result.next {
        body["next"] = json!(next);
    }
    Ok(Json(body))
}

/// Buckets of a band answer when `points` is not given: a chart's width in pixels, roughly.
const DEFAULT_BAND_BUCKETS: usize = 500;

/// `GET /api/v1/devices/<id>/series/<metric>/band`: the AI engine's expected value and normal
/// range over `[from, to)` (default the last hour), per bucket of whole minutes, at most
/// `points` buckets; `[bucket_ms, expected, lower, upper]` each, only where points were scored.
pub async fn band(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path((id, metric)): Path<(String, String)>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let (device, from, to) = device_and_range(&id, &p)?;
    actor.admit(&s, &device).await?;
    if p.step.is_some() || p.agg.is_some() || p.limit.is_some() {
        return Err(ApiError::bad_request(
            "a band is drawn at `points` buckets; `step`, `agg` and `limit` do not apply",
        ));
    }
    let n = p.points.unwrap_or(DEFAULT_BAND_BUCKETS);
    if !(1..=MAX_LIMIT).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "points must be 1..={MAX_LIMIT}"
        )));
    }
    let series = SeriesKey::new(device, metric.as_str().into());
    let Some(bands) = s.series.bands(&series, from, to, n).await? else {
        return Err(ApiError::not_found(format!("series {series} not found")));
    };
    Ok(Json(json!({
        "device": id,
        "metric": metric,
        "from": from,
        "to": to,
        "bands": bands
            .iter()
            .map(|b| json!([b.bucket_ms, b.expected, b.lower, b.upper]))
            .collect::<Vec<_>>(),
    })))
}

/// Raw points or step aggregates, paginated.
async fn range_points(
    s: &AppState,
    device: DeviceId,
    metric: &str,
    (from, to): (i64, i64),
    step: Option<(i64, Agg)>,
    limit: Option<usize>,
) -> Result<(sentio_store::RangeResult, sentio_store::Resolution), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_LIMIT}"
        )));
    }
    Ok(s.series
        .query_resolved(RangeQuery {
            device,
            metric: metric.to_string(),
            from_ms: from,
            to_ms: to,
            step,
            limit,
        })
        .await?)
}
