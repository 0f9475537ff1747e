//! `POST /api/v1/query`: several series in one request, devices named by id or chosen by a
//! label selector, each series answered through the same range, step-aggregate and chart paths
//! as `GET /api/v1/devices/<id>/series/<metric>`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use sentio_core::DeviceId;
use sentio_core::telemetry::valid_metric;
use sentio_core::time::{now_ms, parse_duration_ms, parse_time};
use sentio_store::{Agg, RangeQuery, RangeResult};
use serde_json::{Value, json};

use crate::auth::{Actor, Viewer};
use crate::dto::{DeviceSelector, QueryBody};
use crate::{ApiError, AppState};

/// Most series (device × metric pairs) in one request.
pub const MAX_SERIES: usize = 100;
/// Most points one request may ask for over all its series (`limit` or `points` × series).
pub const MAX_POINTS: usize = 1_000_000;
/// Points per series when no `limit` is given (less when many series share the budget).
const DEFAULT_LIMIT: usize = 10_000;

/// Reads `step` and `agg` (default `avg`) into a bucket width and an aggregation.
pub fn parse_step(step: Option<&str>, agg: Option<&str>) -> Result<Option<(i64, Agg)>, ApiError> {
    match (step, agg) {
        (None, None) => Ok(None),
        (Some(step), agg) => {
            let step = parse_duration_ms(step).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let name = agg.unwrap_or("avg");
            let agg = Agg::parse(name).ok_or_else(|| {
                ApiError::bad_request(format!("unknown agg {name:?}: use {}", Agg::NAMES))
            })?;
            Ok(Some((step, agg)))
        }
        (None, Some(_)) => Err(ApiError::bad_request("`agg` needs a `step`, e.g. step=1m")),
    }
}

/// A time given as milliseconds or as an RFC 3339 string.
fn time_arg(name: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("`{name}` must be whole milliseconds, got {n}"))
        }),
        Value::String(s) => {
            parse_time(s).map_err(|e| ApiError::bad_request(format!("`{name}`: {e}")))
        }
        other => Err(ApiError::bad_request(format!(
            "`{name}` must be milliseconds or an RFC 3339 string, got {other}"
        ))),
    }
}

/// The devices a selector names, by id, within the caller's scope; unknown ids (and those
/// outside the scope, alike) are an error naming them.
async fn select_devices(
    s: &AppState,
    actor: &Actor,
    sel: DeviceSelector,
) -> Result<Vec<String>, ApiError> {
    match (sel.ids, sel.labels) {
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(ApiError::bad_request("`devices.ids` is empty"));
            }
            if ids.len() > MAX_SERIES {
                return Err(ApiError::bad_request(format!(
                    "`devices.ids` names {} devices; at most {MAX_SERIES} per request",
                    ids.len()
                )));
            }
            let mut out: Vec<String> = Vec::with_capacity(ids.len());
            let mut unknown = Vec::new();
            for id in ids {
                let device =
                    DeviceId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
                if !s.registry.is_registered(&device) || actor.admit(s, &device).await.is_err() {
                    unknown.push(id);
                } else if !out.contains(&id) {
                    out.push(id);
                }
            }
            if !unknown.is_empty() {
                return Err(ApiError::not_found(format!(
                    "devices not found: {}",
                    unknown.join(", ")
                )));
            }
            Ok(out)
        }
        (None, Some(labels)) => {
            if labels.is_empty() {
                return Err(ApiError::bad_request(
                    "`devices.labels` is empty: name at least one label, e.g. {\"site\": \"plant-a\"}",
                ));
            }
            Ok(actor
                .devices_with_labels(s, &labels)
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect())
        }
        _ => Err(ApiError::bad_request(
            "`devices` takes exactly one of `ids` (a list of device ids) and `labels` (a label selector)",
        )),
    }
}

pub async fn query(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    body: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(q) = body.map_err(|r| match r.status() {
        // A body that is JSON but not a query is the caller's mistake like any other.
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::bad_request(format!(
            "{}; see README.md for the query body",
            r.body_text()
        )),
        _ => ApiError::from(r),
    })?;
    let to = match &q.to {
        Some(t) => time_arg("to", t)?,
        None => now_ms() + 1,
    };
    let from = match &q.from {
        Some(f) => time_arg("from", f)?,
        None => to.saturating_sub(3_600_000),
    };
    if to <= from {
        return Err(ApiError::bad_request("`to` must be after `from`"));
    }
    let step = parse_step(q.step.as_deref(), q.agg.as_deref())?;
    if q.points.is_some() && step.is_some() {
        return Err(ApiError::bad_request(
            "`points` draws each series for a chart; it cannot be combined with `step`",
        ));
    }
    if q.points.is_some() && q.limit.is_some() {
        return Err(ApiError::bad_request(
            "`points` and `limit` cannot be combined: a chart answer is never paginated",
        ));
    }
    if let Some(metrics) = &q.metrics {
        if metrics.is_empty() {
            return Err(ApiError::bad_request(
                "`metrics` is empty: name at least one, or leave it out for every metric",
            ));
        }
        if let Some(bad) = metrics.iter().find(|m| !valid_metric(m)) {
            return Err(ApiError::bad_request(format!(
                "metric name {:?} is invalid",
                bad.chars().take(80).collect::<String>()
            )));
        }
    }

    // The (device, metric) pairs, devices by id, metrics as given (or each device's own).
    let devices = select_devices(&s, &actor, q.devices).await?;
    let mut pairs: Vec<(DeviceId, String)> = Vec::new();
    for id in &devices {
        let device = DeviceId::parse(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let metrics: Vec<String> = match &q.metrics {
            Some(m) => {
                let mut seen = Vec::with_capacity(m.len());
                for name in m {
                    if !seen.contains(name) {
                        seen.push(name.clone());
                    }
                }
                seen
            }
            None => s
                .series
                .series(&device)
                .await?
                .into_iter()
                .map(|i| i.metric)
                .collect(),
        };
        for metric in metrics {
            pairs.push((device.clone(), metric));
        }
        if pairs.len() > MAX_SERIES {
            break;
        }
    }
    if pairs.len() > MAX_SERIES {
        return Err(ApiError::bad_request(format!(
            "the request selects more than {MAX_SERIES} series (device × metric); narrow the devices or name fewer metrics"
        )));
    }
    let n = pairs.len().max(1);
    let per_series = match (q.points, q.limit) {
        (Some(p), _) => p,
        (None, Some(l)) => l,
        (None, None) => DEFAULT_LIMIT.min(MAX_POINTS / n),
    };
    if per_series == 0 || per_series.saturating_mul(n) > MAX_POINTS {
        let what = if q.points.is_some() {
            "points"
        } else {
            "limit"
        };
        return Err(ApiError::bad_request(format!(
            "`{what}` must be 1..={} for {n} series (at most {MAX_POINTS} points per request)",
            MAX_POINTS / n
        )));
    }
    if q.points.is_some_and(|p| p < 2) {
        return Err(ApiError::bad_request("`points` must be at least 2"));
    }

    let mut series = Vec::with_capacity(pairs.len());
    for (device, metric) in pairs {
        // The resolved variants answer from the rollups where raw points have expired.
        let (r, resolution): (RangeResult, _) = match q.points {
            Some(p) => {
                s.series
                    .downsample_resolved(&device, &metric, from, to, p)
                    .await?
            }
            None => {
                s.series
                    .query_resolved(RangeQuery {
                        device: device.clone(),
                        metric: metric.clone(),
                        from_ms: from,
                        to_ms: to,
                        step,
                        limit: per_series,
                    })
                    .await?
            }
        };
        let mut one = json!({
            "device": device.as_str(),
            "metric": metric,
            "points": r.points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
            "resolution": resolution.as_str(),
        });
        if let Some(next) = r.next {
            one["next"] = json!(next);
        }
        series.push(one);
    }
    let mut body = json!({"from": from, "to": to, "series": series});
    if let Some((step, agg)) = step {
        body["step_ms"] = json!(step);
        body["agg"] = json!(format!("{agg:?}").to_lowercase());
    }
    Ok(Json(body))
}
