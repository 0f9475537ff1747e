//! Retention of raw points and rollups, and the size of the store against its disk budget.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use sentio_core::time::{DURATION_UNITS, parse_duration_ms, spell_duration_ms};
use sentio_store::{RAW_RETENTION_FLOOR_MS, RetentionPolicy, StorageStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, Viewer};
use crate::{ApiError, AppState};

/// `PUT /api/v1/retention`: durations such as `"7d"`, `"36h"`; what is left out keeps its
/// default (raw 7d, 1m rollups 90d, 1h rollups 730d). Raw retention below one hour needs
/// `"force": true`; `kinds` and `devices` name registered devices' kinds and ids.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    global: Option<String>,
    #[serde(default)]
    kinds: BTreeMap<String, String>,
    #[serde(default)]
    devices: BTreeMap<String, String>,
    #[serde(default)]
    rollups: BTreeMap<String, String>,
    /// Accept a raw retention below [`RAW_RETENTION_FLOOR_MS`].
    #[serde(default)]
    force: bool,
}

/// A duration in the largest whole unit: `7d`, `36h`, `90m`, `15s`, `250ms`.
fn format_duration(ms: i64) -> String {
    for (unit, w) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % w == 0 {
            return format!("{}{unit}", ms / w);
        }
    }
    format!("{ms}ms")
}

fn duration(what: &str, s: &str) -> Result<i64, ApiError> {
    parse_duration_ms(s)
        .map_err(|e| ApiError::bad_request(format!("{what}: {e}; {DURATION_UNITS}")))
}

/// A raw retention: a duration of at least the floor, unless `force`.
fn raw_duration(what: &str, s: &str, force: bool) -> Result<i64, ApiError> {
    let ms = duration(what, s)?;
    if ms < RAW_RETENTION_FLOOR_MS && !force {
        return Err(ApiError::bad_request(format!(
            "{what}: {} is {}, below the floor of {} for raw points (send \"force\": true to keep them that briefly); {DURATION_UNITS}",
            s.trim(),
            spell_duration_ms(ms),
            format_duration(RAW_RETENTION_FLOOR_MS),
        )));
    }
    Ok(ms)
}

/// Refuses a device id that is not registered and a kind that no registered device has: a
/// typo would otherwise be kept and silently apply to nothing.
async fn check_known(s: &AppState, b: &RetentionBody) -> Result<(), ApiError> {
    if b.kinds.is_empty() && b.devices.is_empty() {
        return Ok(());
    }
    let devices = s.registry.list_devices().await?;
    let ids: BTreeSet<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    let kinds: BTreeSet<&str> = devices.iter().map(|d| d.kind.as_str()).collect();
    if let Some(id) = b.devices.keys().find(|id| !ids.contains(id.as_str())) {
        return Err(ApiError::bad_request(format!(
            "device {id:?} is not registered"
        )));
    }
    if let Some(kind) = b.kinds.keys().find(|k| !kinds.contains(k.as_str())) {
        let known: Vec<&str> = kinds.into_iter().collect();
        return Err(ApiError::bad_request(format!(
            "kind {kind:?} is no registered device's kind (kinds: {})",
            known.join(", ")
        )));
    }
    Ok(())
}

fn view(p: &RetentionPolicy) -> Value {
    let map = |m: &BTreeMap<String, i64>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), format_duration(*v)))
            .collect()
    };
    json!({
        "global": format_duration(p.raw_ms),
        "kinds": map(&p.kinds),
        "devices": map(&p.devices),
        "rollups": {"1m": format_duration(p.rollup_1m_ms), "1h": format_duration(p.rollup_1h_ms)},
    })
}

pub async fn get(_: Admin, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&s.retention.retention().await?)))
}

pub async fn put(
    _: Admin,
    State(s): State<AppState>,
    body: Result<Json<RetentionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let mut p = RetentionPolicy::default();
    if let Some(g) = &b.global {
        p.raw_ms = raw_duration("global", g, b.force)?;
    }
    for (kind, d) in &b.kinds {
        let ms = raw_duration(&format!("kind {kind:?}"), d, b.force)?;
        p.kinds.insert(kind.clone(), ms);
    }
    for (device, d) in &b.devices {
        let ms = raw_duration(&format!("device {device:?}"), d, b.force)?;
        p.devices.insert(device.clone(), ms);
    }
    check_known(&s, &b).await?;
    for (res, d) in &b.rollups {
        let ms = duration(&format!("rollup {res:?}"), d)?;
        match res.as_str() {
            "1m" => p.rollup_1m_ms = ms,
            "1h" => p.rollup_1h_ms = ms,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown rollup {other:?}: use \"1m\" or \"1h\""
                )));
            }
        }
    }
    s.retention.set_retention(p.clone()).await?;
    tracing::info!(policy = %view(&p), "retention policy changed");
    s.audit("retention.set", None, view(&p)).await;
    Ok(Json(view(&p)))
}

fn storage_view(st: &StorageStatus) -> Value {
    json!({
        "bytes": st.bytes,
        "free_bytes": st.free_bytes,
        "budget_bytes": st.budget_bytes,
        "over_budget": st.over_budget,
        "budget_evicted_points": st.budget_evicted_points,
        "parts": {
            "database": st.database_bytes,
            "log": st.log_bytes,
            "broker": st.broker_bytes,
            "other": st.bytes.saturating_sub(st.database_bytes + st.log_bytes + st.broker_bytes),
        },
    })
}

/// `GET /api/v1/storage`: the data directory's size, its budget, and whether the disk is full.
pub async fn storage(_: Viewer, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let st = s.retention.storage().await?;
    let mut v = storage_view(&st);
    v["disk_full"] = json!(s.ingest.storage_full());
    Ok(Json(v))
}

/// The store's lines of `/metrics`.
pub async fn metrics(s: &AppState) -> String {
    let st = match s.retention.storage().await {
        Ok(st) => st,
        Err(e) => {
            tracing::warn!(error = %e, "store size unavailable for /metrics");
            return String::new();
        }
    };
    let gauges = [
        (
            "sentio_store_bytes",
            "Bytes of the data directory on disk (database, its log, broker state).",
            st.bytes,
        ),
        (
            "sentio_store_free_bytes",
            "Bytes inside the database file free for reuse.",
            st.free_bytes,
        ),
        (
            "sentio_store_budget_bytes",
            "The disk budget of the data directory (0: none).",
            st.budget_bytes.unwrap_or(0),
        ),
        (
            "sentio_store_over_budget",
            "1 while the data directory is over 95 % of its budget and the oldest raw points are removed.",
            u64::from(st.over_budget),
        ),
        (
            "sentio_store_disk_full",
            "1 while the store's disk is full and new data is refused.",
            u64::from(s.ingest.storage_full()),
        ),
    ];
    let mut out = String::new();
    for (name, help, v) in gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        ));
    }
    let name = "sentio_store_budget_evicted_points_total";
    out.push_str(&format!(
        "# HELP {name} Raw points removed to stay within the disk budget.\n# TYPE {name} counter\n{name} {}\n",
        st.budget_evicted_points
    ));
    let name = "sentio_store_full_refusals_total";
    out.push_str(&format!(
        "# HELP {name} Telemetry refused up front because the store's disk was full.\n# TYPE {name} counter\n{name} {}\n",
        sentio_pipeline::Stats::get(&s.stats.storage_full_refusals)
    ));
    let name = "sentio_series_limit_refusals_total";
    out.push_str(&format!(
        "# HELP {name} New metrics refused because their device had reached pipeline.max_series_per_device.\n# TYPE {name} counter\n{name} {}\n",
        sentio_pipeline::Stats::get(&s.stats.series_limit_refusals)
    ));
    out
}
