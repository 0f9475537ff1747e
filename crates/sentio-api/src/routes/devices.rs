//! The device registry.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sentio_core::{DeviceId, topic};
use sentio_store::{DeviceUpdate, NewDevice};
use serde_json::{Value, json};

use crate::auth::{Admin, Viewer};
use crate::dto::{
    CreateDevice, CreatedDevice, DeleteParams, DeviceListParams, DeviceView, UpdateDevice,
};
use crate::{ApiError, AppState};

/// The device id in a path; a string that cannot be a device id names no device (404, as an
/// unknown one).
fn known_id(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(id).map_err(|_| ApiError::not_found(format!("device {id:?} not found")))
}

pub async fn create(
    _: Admin,
    State(s): State<AppState>,
    body: Result<Json<CreateDevice>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedDevice>), ApiError> {
    let Json(body) = body?;
    let id = DeviceId::parse(&body.id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if body.name.as_deref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::bad_request("name is longer than 200 characters"));
    }
    let (device, secret) = s
        .registry
        .create_device(NewDevice {
            id: id.to_string(),
            name: body.name,
            kind: body.kind,
            labels: body.labels,
        })
        .await?;
    tracing::info!(device = %device.id, "device registered");
    s.audit(
        "device.create",
        Some(&device.id),
        json!({"kind": device.kind, "labels": device.labels.len()}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedDevice {
            telemetry_topic: topic::telemetry(&id),
            mqtt_username: device.id.clone(),
            id: device.id,
            secret,
        }),
    ))
}

/// `GET /api/v1/devices[?edge=<id>]`: every device (or the devices of one edge), each with
/// its edge when an edge's registry brought it.
pub async fn list(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    params: Result<Query<DeviceListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params?;
    let edges = s.edges.device_edges().await?;
    let devices: Vec<DeviceView> = actor
        .devices(&s)
        .await?
        .into_iter()
        .map(|d| {
            let (online, seen) = s.presence.status(&d.id);
            let edge = edges.get(&d.id).cloned();
            DeviceView {
                edge,
                ..DeviceView::new(d, online, seen)
            }
        })
        .filter(|d| params.edge.is_none() || d.edge == params.edge)
        .collect();
    Ok(Json(json!({ "devices": devices })))
}

pub async fn show(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let d = s
        .registry
        .get_device(&known_id(&id)?)
        .await?
        .filter(|d| actor.sees(&d.labels))
        .ok_or_else(|| ApiError::not_found(format!("device {id:?} not found")))?;
    let (online, seen) = s.presence.status(&d.id);
    let edge = s.edges.device_edges().await?.remove(&d.id);
    Ok(Json(DeviceView {
        edge,
        ..DeviceView::new(d, online, seen)
    }))
}

pub async fn delete(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<DeleteParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params?;
    let device = known_id(&id)?;
    let removed = s.registry.delete_device(&device, params.erase).await?;
    // Its credential is gone: its MQTT connections go too (else they would go on publishing,
    // and receive the commands of a device registered later under the same id).
    let disconnected = revoke(&s, &id).await;
    s.presence.forget(&id);
    // The detectors drop what they learnt, so it is not saved again.
    s.control.forget(&device).await?;
    s.twins.forget(&device).await;
    tracing::info!(device = %id, erase = params.erase, ?removed, disconnected, "device deleted");
    let removed: serde_json::Map<String, Value> =
        removed.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(Json(
        json!({"id": id, "erased": params.erase, "removed": removed, "disconnected_clients": disconnected}),
    ))
}

/// Closes the MQTT connections of a device whose credential changed; how many were closed.
async fn revoke(s: &AppState, device: &str) -> usize {
    match &s.broker {
        Some(b) => b.revoke(device).await,
        None => 0,
    }
}

/// `POST /api/v1/devices/<id>/secret`: issues a new secret (shown once); the old one stops
/// working, and the device's MQTT connections are closed.
pub async fn rotate_secret(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let secret = s.registry.rotate_secret(&known_id(&id)?).await?;
    // Connections made with the old secret are closed; the device reconnects with the new one.
    let disconnected = revoke(&s, &id).await;
    tracing::info!(device = %id, disconnected, "device secret rotated");
    s.audit(
        "device.rotate_secret",
        Some(&id),
        json!({"disconnected_clients": disconnected}),
    )
    .await;
    Ok(Json(
        json!({"id": id, "secret": secret, "disconnected_clients": disconnected}),
    ))
}

/// `PATCH /api/v1/devices/<id>`: renames the device and sets (`"key": "value"`) or removes
/// (`"key": null`) labels; the other labels are kept. Returns the device as changed.
pub async fn update(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<UpdateDevice>, JsonRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let Json(body) = body?;
    if body.kind.is_some() {
        return Err(ApiError::bad_request(
            "`kind` cannot be changed: the detectors compare a device with the peers of its kind; register a new device instead",
        ));
    }
    if body.name.is_none() && body.labels.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give `name` and/or `labels` ({\"key\": \"value\"} sets, {\"key\": null} removes)",
        ));
    }
    let d = s
        .registry
        .update_device(
            &known_id(&id)?,
            DeviceUpdate {
                name: body.name,
                labels: body.labels,
            },
        )
        .await?;
    tracing::info!(device = %d.id, labels = ?d.labels, "device updated");
    s.audit(
        "device.update",
        Some(&d.id),
        json!({"labels": d.labels.keys().collect::<Vec<_>>()}),
    )
    .await;
    let (online, seen) = s.presence.status(&d.id);
    Ok(Json(DeviceView::new(d, online, seen)))
}
