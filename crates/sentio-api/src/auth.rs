//! Who is calling: the admin (bearer token), an API token with a read-only scope (bearer
//! `token:<id>:<password>`, e.g. `metrics`), a signed-in user (session cookie, [`crate::session`])
//! with a [`Role`], a user's personal API token (bearer `pat:<id>:<secret>`: its user, with the
//! lower of the two roles and the user's scope), or a device (HTTP Basic with its secret). Wrong bearer tokens and wrong
//! device secrets are counted per address ([`crate::auth_throttle`]); an unknown session is
//! not (256 random bits cannot be guessed, and a page still polling with an expired cookie
//! must not lock its address out).
//!
//! The role extractors: [`Viewer`] (reads), [`Operator`] (also acts on alerts), [`Admin`]
//! (everything): the admin token passes all three, a user those its role reaches, an API token
//! none (its scopes only read `/metrics`, [`MetricsReader`]). Each yields an [`Actor`] carrying
//! the caller's device scope, which routes check through [`crate::scope`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use sentio_store::{DeviceScope, Role, Scope, TOKEN_USERNAME_PREFIX, USER_TOKEN_PREFIX, User};

use crate::listener::Transport;
use crate::{ApiError, AppState, session};

/// Who did something, as the audit log names it (`admin`, the admin token, or
/// `user:<name>`), and the devices it may see and act on.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `admin` or `user:<name>`.
    pub name: String,
    /// The caller's device scope (the whole fleet for the admin token and admins).
    pub scope: DeviceScope,
}

impl Actor {
    /// The admin token: the whole fleet.
    pub fn admin() -> Self {
        Self {
            name: "admin".into(),
            scope: DeviceScope::fleet(),
        }
    }

    /// A user, with its scope.
    pub fn user(u: &User) -> Self {
        Self {
            name: format!("user:{}", u.name),
            scope: u.scope.clone(),
        }
    }
}

/// Proof that the request carries the admin token or comes from an admin user.
pub struct Admin(pub Actor);

/// Proof that the request may act on alerts: the admin token, or an operator or admin user.
pub struct Operator(pub Actor);

/// Proof that the request may read: the admin token, or any user.
pub struct Viewer(pub Actor);

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

/// Proof that the request carries the admin token or an API token with the `metrics` scope:
/// it may read `/metrics` and nothing else.
pub struct MetricsReader;

/// Who presented valid credentials.
enum Caller {
    Admin,
    /// An API token (`token:<id>:<password>`) with its scopes.
    Token(std::sync::Arc<[Scope]>),
    /// A signed-in user (its session's CSRF check already passed for a change of state), or
    /// a user's personal token (`token`: its id) acting with the lower of the two roles.
    User {
        user: User,
        token: Option<String>,
    },
}

/// Splits `token:<id>:<password>` into the token's MQTT username and its password.
fn api_token(bearer: &str) -> Option<(&str, &str)> {
    let rest = bearer.strip_prefix(TOKEN_USERNAME_PREFIX)?;
    let (id, password) = rest.split_once(':')?;
    Some((&bearer[..TOKEN_USERNAME_PREFIX.len() + id.len()], password))
}

/// Splits `pat:<id>:<secret>` into the personal token's id and secret.
fn user_token(bearer: &str) -> Option<(&str, &str)> {
    bearer.strip_prefix(USER_TOKEN_PREFIX)?.split_once(':')
}

/// The caller's address.
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Whether the request came over HTTPS.
fn https(parts: &Parts) -> bool {
    parts.extensions.get::<Transport>().is_some_and(|t| t.https)
}

/// The caller's address, if it is within its guessing allowance; `429` when it is over.
fn within_allowance(parts: &Parts, state: &AppState) -> Result<Option<IpAddr>, ApiError> {
    let peer = peer(parts);
    if let Some(ip) = peer
        && let Err(wait_s) = state.auth_throttle.check(&ip)
    {
        return Err(ApiError::too_many_attempts(wait_s));
    }
    Ok(peer)
}

/// Checks the bearer token, or else the session cookie, under the address's guessing
/// allowance: a wrong token counts against the address, and an address over its allowance
/// gets `429` whatever it sends.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
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
    let peer = within_allowance(parts, state)?;
    let Some(token) = header.or(from_query) else {
        return session_caller(parts, state).await;
    };
    if AppState::token_digest(&token) == state.admin_token {
        return Ok(Caller::Admin);
    }
    if let Some((username, password)) = api_token(&token)
        && let Some(scopes) = state.tokens.token_scopes(username, password)
    {
        return Ok(Caller::Token(scopes));
    }
    if let Some((id, secret)) = user_token(&token)
        && let Some((user, t)) = state
            .users
            .user_token_caller(id, secret, sentio_core::time::now_ms())
            .await?
    {
        return Ok(Caller::User {
            user,
            token: Some(t.id),
        });
    }
    if let Some(ip) = peer {
        state.auth_throttle.failed(ip);
    }
    Err(ApiError::unauthorized("the admin token is wrong"))
}

/// The user of the request's session cookie; for a change of state, only with the CSRF check
/// passed.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some(id) = session::cookie(&parts.headers, https(parts)) else {
        return Err(ApiError::unauthorized(
            "send Authorization: Bearer <admin token> (written to <data>/admin.token on first start), or log in (POST /api/v1/session)",
        ));
    };
    let Some(found) = state
        .users
        .session(&id, sentio_core::time::now_ms())
        .await?
    else {
        return Err(ApiError::unauthorized(
            "the session has ended or expired; log in again (POST /api/v1/session)",
        ));
    };
    if session::changes_state(&parts.method) {
        session::check_csrf(parts, &found)?;
    }
    Ok(Caller::User {
        user: found.user,
        token: None,
    })
}

/// The actor if the caller's role reaches `needed`; `403` otherwise.
fn require(caller: Caller, needed: Role) -> Result<Actor, ApiError> {
    match caller {
        Caller::Admin => Ok(Actor::admin()),
        Caller::User { user, .. } if user.role >= needed => Ok(Actor::user(&user)),
        Caller::User { user, .. } => Err(ApiError::forbidden(format!(
            "the role {} may not do this; it needs {needed}",
            user.role
        ))),
        Caller::Token(_) => Err(ApiError::forbidden(
            "an API token may only do what its scopes allow (metrics: GET /metrics); this needs the admin token",
        )),
    }
}

macro_rules! role_extractor {
    ($name:ident, $role:expr) => {
        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                Ok($name(require(authenticate(parts, state).await?, $role)?))
            }
        }
    };
}

role_extractor!(Admin, Role::Admin);
role_extractor!(Operator, Role::Operator);
role_extractor!(Viewer, Role::Viewer);

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Caller::Token(scopes) if scopes.contains(&Scope::Metrics) => Ok(MetricsReader),
            Caller::Token(_) => Err(ApiError::forbidden(
                "this API token has no metrics scope; create one with \"scopes\": [\"metrics\"]",
            )),
            caller => require(caller, Role::Admin).map(|_| MetricsReader),
        }
    }
}

/// Proof that the request comes from a signed-in user's session (not a token: a token cannot
/// mint or revoke tokens), with its user as now.
pub struct SignedIn(pub User);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Caller::User { user, token: None } => Ok(SignedIn(user)),
            Caller::User { token: Some(_), .. } => Err(ApiError::forbidden(
                "a personal token cannot manage tokens; sign in (POST /api/v1/session)",
            )),
            _ => Err(ApiError::forbidden(
                "personal tokens belong to users; sign in as one (POST /api/v1/session)",
            )),
        }
    }
}

/// Where a request came from: its address and whether over HTTPS.
pub struct RequestFrom {
    /// The caller's address.
    pub peer: Option<IpAddr>,
    /// Served over TLS.
    pub https: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestFrom {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            peer: peer(parts),
            https: https(parts),
        })
    }
}

/// HTTP Basic credentials (`id:secret`), from an address within its guessing allowance (the
/// same one as bearer tokens: an address over it gets `429` whatever it sends).
pub struct Basic {
    pub user: String,
    pub password: String,
    /// The caller's address, to count a wrong secret against ([`Basic::wrong`]).
    peer: Option<IpAddr>,
}

impl Basic {
    /// The secret was wrong (or the device unknown): counts against the caller's address.
    pub fn wrong(&self, state: &AppState) {
        if let Some(ip) = self.peer {
            state.auth_throttle.failed(ip);
        }
    }
}

impl FromRequestParts<AppState> for Basic {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = within_allowance(parts, state)?;
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
            peer,
        })
    }
}
