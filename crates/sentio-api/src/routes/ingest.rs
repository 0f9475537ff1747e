//! HTTP telemetry ingest: the same payload as MQTT, authenticated with the device's secret.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sentio_core::DeviceId;
use serde_json::{Value, json};

use crate::auth::Basic;
use crate::{ApiError, AppState};

pub async fn telemetry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    creds: Basic,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    if !s.registry.verify_secret(&creds.user, &creds.password) {
        if s.registry.is_registered(&creds.user) {
            s.ingest
                .reject(&creds.user, "HTTP telemetry refused: wrong secret")
                .await;
        }
        return Err(ApiError::unauthorized("unknown device or wrong secret"));
    }
    if creds.user != id {
        let reason =
            format!("HTTP telemetry for device {id:?} refused: a device may post only its own");
        s.ingest.reject(&creds.user, &reason).await;
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", reason));
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            let err = ApiError::from(r);
            s.ingest
                .reject(&id, &format!("HTTP telemetry refused: {}", err.detail))
                .await;
            return Err(err);
        }
    };
    let device = DeviceId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let accepted = s.ingest.payload(&device, &body, true).await?;
    Ok(Json(
        json!({"accepted": accepted.points, "events": accepted.events, "rejected": accepted.rejected}),
    ))
}
