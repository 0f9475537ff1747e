//! Commands to a device: `POST /api/v1/devices/<id>/commands` (operators) keeps one and
//! delivers it over MQTT; `GET .../commands` lists them with their states, newest first;
//! `GET .../commands/<cid>` shows one.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sentio_core::{CommandId, DeviceId};
use sentio_pipeline::actuate::NewCommand;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Actor, Operator, Viewer};
use crate::dto::{CommandBody, CommandDto, CommandList};
use crate::{ApiError, AppState};

/// Most commands listed at once (and the default).
const MAX_LIST: usize = 1_000;

/// A registered device within the caller's scope, or 404.
pub(crate) async fn registered(
    s: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<DeviceId, ApiError> {
    let device = DeviceId::parse(id).map_err(|e| ApiError::not_found(e.to_string()))?;
    if s.registry.get_device(&device).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id:?} not found")));
    }
    actor.admit(s, &device).await?;
    Ok(device)
}

/// `POST /api/v1/devices/<id>/commands`: 201 with the command (pending, or further along if
/// the device answered at once); 404 unknown device, 422 bad name or ttl, 429 when the device
/// has its maximum of open commands.
pub async fn send(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CommandBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CommandDto>), ApiError> {
    let Json(body) = body?;
    let device = registered(&s, &actor, &id).await?;
    let ttl_ms = body.ttl.as_ref().map(|t| t.ms()).transpose()?;
    let command = s
        .commands
        .send(
            &device,
            NewCommand {
                name: body.name,
                params: body.params,
                ttl_ms,
            },
        )
        .await?;
    s.audit_by(
        &actor,
        "command.sent",
        Some(device.as_str()),
        json!({"command": command.id.as_str(), "name": command.name, "expires_ms": command.expires_ms}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CommandDto::from(&command))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<usize>,
}

/// `GET /api/v1/devices/<id>/commands[?limit=]`: newest first (default and at most 1,000).
pub async fn list(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<CommandList>, ApiError> {
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(MAX_LIST);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_LIST}"
        )));
    }
    let device = registered(&s, &actor, &id).await?;
    let commands = s.commands.list(&device, limit).await?;
    Ok(Json(CommandList {
        commands: commands.iter().map(CommandDto::from).collect(),
    }))
}

/// `GET /api/v1/devices/<id>/commands/<cid>`.
pub async fn get(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<CommandDto>, ApiError> {
    let device = registered(&s, &actor, &id).await?;
    let missing = || ApiError::not_found(format!("device {id:?} has no command {cid:?}"));
    let cid = CommandId::parse(&cid).map_err(|_| missing())?;
    let command = s.commands.get(&device, &cid).await?.ok_or_else(missing)?;
    Ok(Json(CommandDto::from(&command)))
}
