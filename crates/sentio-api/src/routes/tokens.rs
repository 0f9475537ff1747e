//! Scoped API tokens: MQTT identities for integrations, confined to an ACL of topic filters.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sentio_core::acl::{self, AclRule};
use sentio_store::NewToken;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::dto::{AclRuleDto, CreateToken, CreatedToken, ScopeDto, TokenView};
use crate::{ApiError, AppState};

/// `POST /api/v1/tokens`: 201 with the password, shown only this once.
pub async fn create(
    _: Admin,
    State(s): State<AppState>,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let Json(body) = body?;
    for rule in &body.acl {
        acl::validate_filter(&rule.filter).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let (token, password) = s
        .tokens
        .create_token(NewToken {
            name: body.name,
            acl: body.acl.into_iter().map(AclRule::from).collect(),
            scopes: body.scopes.into_iter().map(Into::into).collect(),
        })
        .await?;
    tracing::info!(token = %token.id, name = %token.name, acl = ?token.acl, scopes = ?token.scopes, "API token created");
    s.audit(
        "token.create",
        Some(&token.id),
        json!({"name": token.name, "acl": token.acl.iter().map(AclRuleDto::from).collect::<Vec<_>>(),
               "scopes": token.scopes.iter().map(ScopeDto::from).collect::<Vec<_>>()}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: token.into(),
            password,
        }),
    ))
}

/// `GET /api/v1/tokens`: every token, without passwords.
pub async fn list(_: Admin, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tokens: Vec<TokenView> = s
        .tokens
        .list_tokens()
        .await?
        .into_iter()
        .map(TokenView::from)
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// `DELETE /api/v1/tokens/<id>`: revokes the token and closes its clients' connections.
pub async fn delete(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let token = s.tokens.delete_token(&id).await?;
    let disconnected = match &s.broker {
        Some(b) => b.revoke(&token.username).await,
        None => 0,
    };
    tracing::info!(token = %token.id, name = %token.name, disconnected, "API token revoked");
    s.audit(
        "token.revoke",
        Some(&token.id),
        json!({"name": token.name, "disconnected_clients": disconnected}),
    )
    .await;
    Ok(Json(
        json!({"id": token.id, "revoked": true, "disconnected_clients": disconnected}),
    ))
}
