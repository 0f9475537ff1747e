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
    // A user name that is not a device id names no device.
    let user = match DeviceId::parse(&creds.user) {
        Ok(u) if s.registry.verify_secret(&u, &creds.password) => u,
        parsed => {
            creds.wrong(&s);
            // Recorded off the request's path, so a known id and an unknown one are answered
            // alike (no database write to time).
            if let Ok(u) = parsed
                && s.registry.is_registered(&u)
            {
                let ingest = s.ingest.clone();
                tokio::spawn(async move {
                    ingest
                        .reject(&u, "HTTP telemetry refused: wrong secret")
                        .await;
                });
            }
            return Err(ApiError::unauthorized("unknown device or wrong secret"));
        }
    };
    if creds.user != id {
        let reason =
            format!("HTTP telemetry for device {id:?} refused: a device may post only its own");
        s.ingest.reject(&user, &reason).await;
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", reason));
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            let err = ApiError::from(r);
            s.ingest
                .reject(&user, &format!("HTTP telemetry refused: {}", err.detail))
                .await;
            return Err(err);
        }
    };
    // The path names the authenticated device itself (checked above).
    let accepted = s.ingest.payload(&user, &body, true).await?;
    Ok(Json(
        json!({"accepted": accepted.points, "events": accepted.events, "rejected": accepted.rejected}),
    ))
}
