//! Health, the node's facts (`/api/v1/system`), metrics and the dashboard page.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use sentio_pipeline::Stats;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{MetricsReader, Viewer};

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// `GET /api/v1/system`: the version, since when the node runs, and where devices connect
/// over MQTT (ports; the host is the one the client reached the API at), and its edge id if it
/// is an edge.
pub async fn info(_: Viewer, State(s): State<AppState>) -> Json<Value> {
    let n = &s.node_info;
    let now = sentio_core::time::now_ms();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_ms": n.started_ms,
        "uptime_s": (now - n.started_ms).max(0) / 1000,
        "mqtt": {
            "port": n.mqtt.map(|a| a.port()),
            "tls_port": n.mqtts.map(|a| a.port()),
            "websocket_path": s.broker.as_ref().map(|_| "/mqtt"),
            "telemetry_topic": "devices/{id}/telemetry",
        },
        // This node's edge id when it is an edge (`/api/v1/uplink`), else null.
        "edge": s.uplink.as_ref().map(|u| u.edge_id.clone()),
    }))
}

/// Prometheus text format.
pub async fn metrics(
    _: MetricsReader,
    State(s): State<AppState>,
    listener: Option<axum::Extension<std::sync::Arc<crate::ListenerCounters>>>,
) -> impl IntoResponse {
    let st = &s.stats;
    let rows = [
        (
            "sentio_points_stored_total",
            "Points committed to the store.",
            Stats::get(&st.points_stored),
        ),
        (
            "sentio_rejections_total",
            "Payloads or parts refused, with a reason recorded on the device.",
            Stats::get(&st.rejections),
        ),
        (
            "sentio_store_failures_total",
            "Commits that failed; their points were not acknowledged.",
            Stats::get(&st.store_failures),
        ),
        (
            "sentio_points_scored_total",
            "Points scored by the anomaly detectors.",
            Stats::get(&st.points_scored),
        ),
        (
            "sentio_alerts_opened_total",
            "Alerts opened.",
            Stats::get(&st.alerts_opened),
        ),
        (
            "sentio_alerts_resolved_total",
            "Alerts resolved.",
            Stats::get(&st.alerts_resolved),
        ),
        (
            "sentio_bus_lagged_total",
            "Live events missed by slow stream subscribers.",
            Stats::get(&st.bus_lagged),
        ),
    ];
    let mut out = String::new();
    for (name, help, v) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    out.push_str(&super::retention::metrics(&s).await);
    out.push_str(&super::edges::metrics(&s).await);
    out.push_str(&super::notify::metrics(&s).await);
    out.push_str(&super::rules::metrics(&s).await);
    if let Some(b) = &s.broker {
        out.push_str(&super::broker::metrics(&b.counters()));
    }
    if let Some(axum::Extension(c)) = listener {
        out.push_str(&c.metrics());
    }
    out.push_str(&s.auth_throttle.metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
