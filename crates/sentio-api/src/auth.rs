//! Who is calling: the admin (bearer token) or a device (HTTP Basic with its secret).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;

use crate::{ApiError, AppState};

/// Proof that the request carries the admin token.
pub struct Admin;

/// The one route that takes the admin token in its query string: a browser cannot set headers
/// on a WebSocket request. Elsewhere a token in a URL would only end up in logs and histories.
pub(crate) const QUERY_TOKEN_ROUTE: &str = "/api/v1/stream";

/// Reads `token` from `?token=` in a query string.
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(|t| t.to_string())
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let from_query = query_token(parts.uri.query());
        if from_query.is_some() && parts.uri.path() != QUERY_TOKEN_ROUTE {
            return Err(ApiError::unauthorized(
                "?token= is only accepted on the WebSocket stream (/api/v1/stream); send Authorization: Bearer <admin token>",
            ));
        }
        let token = header.or(from_query);
        match token {
            Some(t) if AppState::token_digest(&t) == state.admin_token => Ok(Admin),
            Some(_) => Err(ApiError::unauthorized("the admin token is wrong")),
            None => Err(ApiError::unauthorized(
                "send Authorization: Bearer <admin token> (written to <data>/admin.token on first start)",
            )),
        }
    }
}

/// HTTP Basic credentials (`id:secret`).
pub struct Basic {
    pub user: String,
    pub password: String,
}

impl FromRequestParts<AppState> for Basic {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let missing =
            || ApiError::unauthorized("send HTTP Basic credentials: the device id and its secret");
        let encoded = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .ok_or_else(missing)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| missing())?;
        let text = String::from_utf8(decoded).map_err(|_| missing())?;
        let (user, password) = text.split_once(':').ok_or_else(missing)?;
        Ok(Basic {
            user: user.to_string(),
            password: password.to_string(),
        })
    }
}
