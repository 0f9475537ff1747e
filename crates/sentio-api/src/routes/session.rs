//! Login and logout: `POST /api/v1/session` checks a user's password (under the login
//! throttle) and sets the session cookie; `GET` says who the cookie's session is (for a page
//! reloaded, with its CSRF token again); `DELETE` ends the session.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sentio_core::time::format_time;
use serde_json::json;

use crate::auth::{Actor, RequestFrom, Viewer};
use crate::dto::{Login, LoginAnswer};
use crate::headers::same_origin;
use crate::{ApiError, AppState, session};

/// `POST /api/v1/session` `{"name", "password"}`: the session cookie and the CSRF token; 401
/// for a wrong name or password, 429 past the allowance of the address or the name.
pub async fn login(
    State(s): State<AppState>,
    from: RequestFrom,
    headers: HeaderMap,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, ApiError> {
    // A login form posted from another site's page would sign the browser in as someone else.
    if same_origin(&headers) == Some(false) {
        return Err(ApiError::csrf(
            "a login from a page of another origin is refused",
        ));
    }
    let Json(body) = body?;
    s.login_throttle
        .check(from.peer, &body.name)
        .map_err(ApiError::too_many_attempts)?;
    let Some(user) = s.users.check_password(&body.name, &body.password).await? else {
        s.login_throttle.failed(from.peer, &body.name);
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    let ttl = s.session_ttl_ms;
    let secrets = s
        .users
        .create_session(&user.name, i64::try_from(ttl).unwrap_or(i64::MAX))
        .await?;
    let actor = Actor::user(&user);
    s.audit_by(&actor, "session.login", Some(&user.name), json!({}))
        .await;
    let answer = LoginAnswer {
        user: user.into(),
        csrf_token: secrets.csrf.clone(),
        expires: format_time(secrets.expires_ms),
        expires_ms: secrets.expires_ms,
    };
    Ok((
        [(
            header::SET_COOKIE,
            session::set_cookie(&secrets, ttl, from.https),
        )],
        Json(answer),
    )
        .into_response())
}

/// `GET /api/v1/session`: the cookie's session: its user and role, its CSRF token and when
/// it ends; 401 without a live session (a bearer token is no session). A GET changes
/// nothing, and another site's page cannot read the answer (no CORS), so the token stays with
/// this node's page.
pub async fn whoami(
    State(s): State<AppState>,
    from: RequestFrom,
    headers: HeaderMap,
) -> Result<Json<LoginAnswer>, ApiError> {
    let Some(id) = session::cookie(&headers, from.https) else {
        return Err(ApiError::unauthorized(
            "no session cookie; log in (POST /api/v1/session)",
        ));
    };
    let Some(found) = s.users.session(&id, sentio_core::time::now_ms()).await? else {
        return Err(ApiError::unauthorized(
            "the session has ended or expired; log in again (POST /api/v1/session)",
        ));
    };
    Ok(Json(LoginAnswer {
        user: found.user.into(),
        csrf_token: sentio_store::csrf_token(&id),
        expires: format_time(found.expires_ms),
        expires_ms: found.expires_ms,
    }))
}

/// `DELETE /api/v1/session`: ends the caller's session (its cookie no longer works anywhere)
/// and clears the cookie.
pub async fn logout(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    from: RequestFrom,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = session::cookie(&headers, from.https)
        && s.users.delete_session(&id).await?
    {
        s.audit_by(&actor, "session.logout", None, json!({})).await;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::clear_cookie(from.https))],
    )
        .into_response())
}
