//! A signed-in user's own personal API tokens: `POST /api/v1/me/tokens` (the bearer shown this
//! once), `GET` (its tokens), `DELETE /api/v1/me/tokens/<id>` (revoke). A token acts for its user
//! with a role no stronger than the user's and the user's scope as it is at each request; a
//! disabled or deleted user's tokens stop at once. Only a session manages tokens (a token
//! cannot mint another). Every change is in the audit log, never with the secret.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sentio_core::time::{now_ms, parse_duration_ms};
use sentio_store::{NewUserToken, Role, USER_TOKEN_PREFIX};
use serde_json::{Value, json};

use crate::auth::{Actor, SignedIn};
use crate::dto::{CreateUserToken, CreatedUserToken, UserTokenView};
use crate::{ApiError, AppState};

/// `POST /api/v1/me/tokens` `{"name", "role"?, "expires_in"?}`: 201 with the bearer token;
/// 403 for a role above the user's, 400 for a bad name or expiry, 409 for a name it holds.
pub async fn create(
    SignedIn(user): SignedIn,
    State(s): State<AppState>,
    body: Result<Json<CreateUserToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedUserToken>), ApiError> {
    let Json(body) = body?;
    let role = body.role.map(Role::from).unwrap_or(user.role);
    if role > user.role {
        return Err(ApiError::forbidden(format!(
            "a token may have at most your role ({}), not {role}",
            user.role
        )));
    }
    let expires_ms = body
        .expires_in
        .as_deref()
        .map(|d| {
            parse_duration_ms(d)
                .map(|ms| now_ms().saturating_add(ms))
                .map_err(|e| ApiError::bad_request(format!("expires_in: {e}")))
        })
        .transpose()?;
    let (token, secret) = s
        .users
        .create_user_token(NewUserToken {
            user: user.name.clone(),
            name: body.name,
            role,
            expires_ms,
        })
        .await?;
    tracing::info!(user = %user.name, token = %token.id, role = %token.role, "personal token created");
    s.audit_by(
        &Actor::user(&user),
        "user_token.create",
        Some(&token.id),
        json!({"user": user.name, "name": token.name, "role": token.role.as_str(), "expires_ms": token.expires_ms}),
    )
    .await;
    let bearer = format!("{USER_TOKEN_PREFIX}{}:{secret}", token.id);
    Ok((
        StatusCode::CREATED,
        Json(CreatedUserToken {
            token: token.into(),
            bearer,
        }),
    ))
}

/// `GET /api/v1/me/tokens`: the caller's tokens, oldest first, without secrets.
pub async fn list(
    SignedIn(user): SignedIn,
    State(s): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let tokens: Vec<UserTokenView> = s
        .users
        .user_tokens(&user.name)
        .await?
        .into_iter()
        .map(UserTokenView::from)
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// `DELETE /api/v1/me/tokens/<id>`: revokes one of the caller's tokens (404 for another's).
pub async fn delete(
    SignedIn(user): SignedIn,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let token = s.users.delete_user_token(&user.name, &id).await?;
    tracing::info!(user = %user.name, token = %token.id, "personal token revoked");
    s.audit_by(
        &Actor::user(&user),
        "user_token.revoke",
        Some(&token.id),
        json!({"user": user.name, "name": token.name}),
    )
    .await;
    Ok(Json(json!({"id": token.id, "revoked": true})))
}
