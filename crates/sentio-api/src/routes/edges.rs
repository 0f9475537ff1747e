//! Edge nodes: in the cloud, the registry of edges and how far each was applied
//! (`/api/v1/edges`); on an edge, its own outbox and link (`/api/v1/uplink`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sentio_broker::EdgeReport;
use sentio_core::{EdgeId, topic};
use sentio_store::{Edge, edge_username};
use serde_json::{Value, json};

use crate::auth::{Admin, Viewer};
use crate::dto::{CreateEdge, CreatedEdge, EdgeView, UplinkView};
use crate::{ApiError, AppState};

pub(super) fn edge_id(id: &str) -> Result<EdgeId, ApiError> {
    EdgeId::parse(id).map_err(|e| ApiError::bad_request(e.to_string().replace("device", "edge")))
}

/// The edge as shown: whether it is connected to this node's broker now, what it last
/// reported of its outbox, and its last re-sync.
async fn view(s: &AppState, e: &Edge) -> Result<EdgeView, ApiError> {
    let mut v = view_now(s, e);
    v.resync = s.edges.last_resync(&e.id).await?.as_ref().map(Into::into);
    Ok(v)
}

/// Whether `e` is connected to this node's broker now.
pub(super) fn connected(s: &AppState, e: &EdgeId) -> bool {
    let user = edge_username(e);
    s.broker.as_ref().is_some_and(|b| {
        b.clients()
            .iter()
            .any(|c| c.username.as_deref() == Some(user.as_str()))
    })
}

fn view_now(s: &AppState, e: &Edge) -> EdgeView {
    let connected = connected(s, &e.id);
    let report = s.broker.as_ref().and_then(|b| b.edge_report(e.id.as_str()));
    EdgeView::new(e, connected, report.as_ref(), s.edge_clock_skew_limit_ms)
}

/// `POST /api/v1/edges`: 201 with the edge's secret, shown only this once.
pub async fn create(
    _: Admin,
    State(s): State<AppState>,
    body: Result<Json<CreateEdge>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedEdge>), ApiError> {
    let Json(body) = body?;
    let id = edge_id(&body.id)?;
    let (edge, secret) = s.edges.create_edge(&id).await?;
    tracing::info!(edge = %edge.id, "edge registered");
    s.audit("edge.create", Some(edge.id.as_str()), json!({}))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEdge {
            mqtt_username: edge_username(&edge.id),
            uplink_topic: topic::uplink_points(&edge.id),
            id: edge.id.to_string(),
            secret,
        }),
    ))
}

/// `GET /api/v1/edges`: every edge with its progress.
pub async fn list(_: Admin, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut edges: Vec<EdgeView> = Vec::new();
    for e in s.edges.list_edges().await? {
        edges.push(view(&s, &e).await?);
    }
    Ok(Json(json!({ "edges": edges })))
}

/// `GET /api/v1/edges/<id>`.
pub async fn show(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EdgeView>, ApiError> {
    let id = edge_id(&id)?;
    let edge = s
        .edges
        .get_edge(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("edge {id:?} not found")))?;
    Ok(Json(view(&s, &edge).await?))
}

/// `GET /api/v1/uplink`: this edge's outbox and link; 404 on a node that is not an edge.
pub async fn uplink(_: Viewer, State(s): State<AppState>) -> Result<Json<UplinkView>, ApiError> {
    let Some(u) = &s.uplink else {
        return Err(ApiError::not_found(
            "this node is not an edge (sentio serve --upstream mqtt://HOST:PORT --edge-id ID)",
        ));
    };
    let outbox = u.outbox.outbox_status().await?;
    let mut view = UplinkView::now(
        u.edge_id.clone(),
        u.upstream.clone(),
        &outbox,
        &u.state.snapshot(),
    );
    view.counts = Some((&u.outbox.outbox_counts().await?).into());
    Ok(Json(view))
}

/// The `/metrics` families of edges: in the cloud, each edge's reported backlog; on an edge,
/// its uplink.
pub async fn metrics(s: &AppState) -> String {
    let mut out = cloud_metrics(s).await;
    out.push_str(&uplink_metrics(s).await);
    out.push_str(&super::edge_budget::metrics(s).await);
    out
}

/// A per-edge gauge: its name, its help and its value in a report.
type Family = (&'static str, &'static str, fn(&EdgeReport) -> u64);

/// Per edge (those that reported since start): its backlog and how fast it drains.
async fn cloud_metrics(s: &AppState) -> String {
    let Some(broker) = &s.broker else {
        return String::new();
    };
    let Ok(edges) = s.edges.list_edges().await else {
        return String::new();
    };
    let reports: Vec<(String, EdgeReport)> = edges
        .iter()
        .filter_map(|e| Some((e.id.to_string(), broker.edge_report(e.id.as_str())?)))
        .collect();
    if reports.is_empty() {
        return String::new();
    }
    let families: [Family; 3] = [
        (
            "sentio_edge_pending_points",
            "Points the edge reported committed and not yet acknowledged by this node.",
            |r| r.pending_points,
        ),
        (
            "sentio_edge_backlog_points",
            "Of those, points in the edge's backlog lane (committed while its link was down).",
            |r| r.backlog_points,
        ),
        (
            "sentio_edge_backlog_drain_points_per_second",
            "Backlog points of the edge acknowledged per second lately.",
            |r| r.backlog_drain_rate,
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (id, r) in &reports {
            out.push_str(&format!("{name}{{edge=\"{id}\"}} {}\n", value(r)));
        }
    }
    out
}

/// The uplink's families (an edge only).
async fn uplink_metrics(s: &AppState) -> String {
    let Some(u) = &s.uplink else {
        return String::new();
    };
    let Ok(o) = u.outbox.outbox_status().await else {
        return String::new();
    };
    let l = u.state.snapshot();
    let now = sentio_core::time::now_ms();
    let rows: [(&str, &str, &str, u64); 12] = [
        (
            "sentio_uplink_connected",
            "gauge",
            "1 while the uplink to the cloud is up.",
            u64::from(l.connected),
        ),
        (
            "sentio_uplink_pending_points",
            "gauge",
            "Points committed here and not yet acknowledged by the cloud.",
            o.pending_points,
        ),
        (
            "sentio_uplink_pending_batches",
            "gauge",
            "Batches committed here and not yet acknowledged by the cloud.",
            o.pending_batches,
        ),
        (
            "sentio_uplink_backlog_points",
            "gauge",
            "Of those, points in the backlog lane (committed while the link was down).",
            o.backlog.pending_points,
        ),
        (
            "sentio_uplink_backlog_drain_points_per_second",
            "gauge",
            "Backlog points acknowledged by the cloud per second lately.",
            l.backlog_drain_rate,
        ),
        (
            "sentio_uplink_backlog_rate_limit_points_per_second",
            "gauge",
            "Most backlog points sent per second (edge.backlog_rate; 0: no limit).",
            l.backlog_rate_limit,
        ),
        (
            "sentio_uplink_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest batch not yet acknowledged (0: none).",
            o.oldest_pending_ms
                .map_or(0, |t| ((now - t).max(0) / 1000) as u64),
        ),
        (
            "sentio_uplink_acked_seq",
            "gauge",
            "Every batch up to this seq is held by the cloud.",
            o.acked.0.max(0) as u64,
        ),
        (
            "sentio_uplink_points_acked_total",
            "counter",
            "Points acknowledged by the cloud since start.",
            l.points_acked,
        ),
        (
            "sentio_uplink_bytes_sent_total",
            "counter",
            "Batch payload bytes published to the cloud since start (resends included).",
            l.bytes_sent,
        ),
        (
            "sentio_uplink_link_losses_total",
            "counter",
            "Uplink connections lost or dropped since start.",
            l.link_losses,
        ),
        (
            "sentio_uplink_ack_timeouts_total",
            "counter",
            "Uplink connections dropped because the cloud did not acknowledge in time.",
            l.ack_timeouts,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, v) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    out
}
