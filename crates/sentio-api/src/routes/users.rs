//! User accounts (admin only): create with a password (never a default one) and optionally a
//! device scope, list, change a role or scope, remove. Every change is in the audit log, never
//! with a password.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sentio_store::{DeviceScope, NewUser, Role, User};
use serde_json::{Value, json};

use crate::auth::{Actor, Admin};
use crate::dto::{CreateUser, UpdateUser, UserView};
use crate::{ApiError, AppState};

/// `POST /api/v1/users` `{"name", "role", "password"}`: 201; 400 for a bad name or a password
/// under 12 characters, 409 for a taken name.
pub async fn create(
    Admin(actor): Admin,
    State(s): State<AppState>,
    body: Result<Json<CreateUser>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let Json(body) = body?;
    let user = s
        .users
        .create_user(NewUser {
            name: body.name,
            role: body.role.into(),
            password: body.password,
            scope: DeviceScope::new(body.scope)?,
        })
        .await?;
    tracing::info!(user = %user.name, role = %user.role, scope = %user.scope, "user created");
    s.audit_by(
        &actor,
        "user.create",
        Some(&user.name),
        json!({"role": user.role.as_str(), "scope": user.scope.selector()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// `GET /api/v1/users`: every user, by name.
pub async fn list(_: Admin, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users: Vec<UserView> = s
        .users
        .list_users()
        .await?
        .into_iter()
        .map(UserView::from)
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `GET /api/v1/users/<name>`.
pub async fn show(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = s
        .users
        .get_user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))?;
    Ok(Json(user.into()))
}

/// `PATCH /api/v1/users/<name>` `{"role"?, "password"?, "scope"?, "disabled"?}`: a new role or
/// scope applies to the user's sessions and tokens at once; a new password (a reset) or `"disabled": true` ends them all (a
/// disabled user cannot sign in until `"disabled": false`). 400 for none of them or a short
/// password.
pub async fn update(
    Admin(actor): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<UpdateUser>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    let Json(body) = body?;
    let mut user = None;
    let scope = body.scope.map(DeviceScope::new).transpose()?;
    // A scope is lifted before a new role (a scoped user made admin), set after it (an admin
    // made a scoped operator).
    let lift_first = scope.as_ref().is_some_and(DeviceScope::is_fleet);
    if let Some(scope) = scope.clone().filter(|_| lift_first) {
        user = Some(set_scope(&s, &actor, &name, scope).await?);
    }
    if let Some(password) = &body.password {
        let u = s.users.set_password(&name, password).await?;
        tracing::info!(user = %u.name, "user password reset");
        s.audit_by(&actor, "user.password", Some(&u.name), json!({}))
            .await;
        user = Some(u);
    }
    if let Some(role) = body.role {
        let u = s.users.set_role(&name, Role::from(role)).await?;
        tracing::info!(user = %u.name, role = %u.role, "user role changed");
        s.audit_by(
            &actor,
            "user.role",
            Some(&u.name),
            json!({"role": u.role.as_str()}),
        )
        .await;
        user = Some(u);
    }
    if let Some(scope) = scope.filter(|_| !lift_first) {
        user = Some(set_scope(&s, &actor, &name, scope).await?);
    }
    if let Some(disabled) = body.disabled {
        let u = s.users.set_disabled(&name, disabled).await?;
        tracing::info!(user = %u.name, disabled, "user disabled or enabled");
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        s.audit_by(&actor, action, Some(&u.name), json!({})).await;
        user = Some(u);
    }
    user.map(|u| Json(u.into()))
        .ok_or_else(|| ApiError::bad_request("give a role, a password, a scope or disabled"))
}

/// Sets a user's scope, audited.
async fn set_scope(
    s: &AppState,
    actor: &Actor,
    name: &str,
    scope: DeviceScope,
) -> Result<User, ApiError> {
    let u = s.users.set_scope(name, scope).await?;
    tracing::info!(user = %u.name, scope = %u.scope, "user scope changed");
    s.audit_by(
        actor,
        "user.scope",
        Some(&u.name),
        json!({"scope": u.scope.selector()}),
    )
    .await;
    Ok(u)
}

/// `DELETE /api/v1/users/<name>`: the user and every session of it.
pub async fn delete(
    Admin(actor): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = s.users.delete_user(&name).await?;
    tracing::info!(user = %user.name, "user removed");
    s.audit_by(
        &actor,
        "user.delete",
        Some(&user.name),
        json!({"role": user.role.as_str()}),
    )
    .await;
    Ok(Json(json!({"name": user.name, "deleted": true})))
}
