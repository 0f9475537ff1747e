//! `POST /api/v1/edges/<id>/resync`: the cloud sends its hourly digests of the edge's series
//! down to the edge (`edges/<id>/down/resync`), the edge compares them with its own and sends
//! every hour that differs again as its policy sends it (raw points; or minute rollups, which
//! replace the cloud's minutes of the hour, and the raw points around alerts) (see
//! `sentio_store::resync`); progress and result in `GET /api/v1/edges/<id>` (`resync`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sentio_core::topic;
use sentio_store::{ResyncRequest, edge_username};
use serde_json::json;

use super::edges::{connected, edge_id};
use crate::auth::Admin;
use crate::dto::{ResyncRange, ResyncView};
use crate::{ApiError, AppState};

/// 202 with the run, `running` until the edge's last part is applied.
pub async fn start(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    range: Result<Query<ResyncRange>, QueryRejection>,
) -> Result<(StatusCode, Json<ResyncView>), ApiError> {
    let Query(range) = range?;
    let id = edge_id(&id)?;
    if s.edges.get_edge(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("edge {id:?} not found")));
    }
    let (from, to) = (
        range.from.unwrap_or(0),
        range
            .to
            .unwrap_or_else(|| sentio_core::time::now_ms() + sentio_store::resync::HOUR_MS),
    );
    if to <= from {
        return Err(ApiError::bad_request(format!(
            "`to` ({to}) must be after `from` ({from})"
        )));
    }
    let conflict = |why: String| ApiError::new(StatusCode::CONFLICT, "conflict", why);
    let Some(broker) = s.broker.as_ref().filter(|_| connected(&s, &id)) else {
        return Err(conflict(format!(
            "edge {id} is not connected: a re-sync needs its uplink up"
        )));
    };
    // The request is not kept for an edge that is not subscribed (yet: it subscribes just
    // after connecting).
    let down = topic::downlink_resync(&id);
    let user = edge_username(&id);
    if !broker
        .clients()
        .iter()
        .any(|c| c.username.as_deref() == Some(user.as_str()) && c.subscriptions.contains(&down))
    {
        return Err(conflict(format!(
            "edge {id} is connected but not subscribed to {down}: retry in a moment (or update the edge)"
        )));
    }
    let cloud = s.edges.hour_digests(Some(&id), from, to).await?;
    let hours: u64 = cloud.iter().map(|c| c.hours.len() as u64).sum();
    if hours > s.edge_resync_max_hours {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            format!(
                "{hours} series-hours in range, more than edges.resync_max_hours ({}): give a narrower from/to",
                s.edge_resync_max_hours
            ),
        ));
    }
    let run = s.edges.start_resync(&id, from, to).await?;
    let request = ResyncRequest {
        id: run.id,
        from,
        to,
        max_hours: s.edge_resync_max_hours,
        cloud,
    };
    broker.send_resync(&id, request.encode()).await;
    tracing::info!(edge = %id, run = run.id, from, to, cloud_hours = hours, "re-sync asked");
    s.audit(
        "edge.resync",
        Some(id.as_str()),
        json!({"run": run.id, "from_ms": from, "to_ms": to}),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(ResyncView::from(&run))))
}
