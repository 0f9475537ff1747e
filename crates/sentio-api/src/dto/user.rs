//! User accounts and sessions on the wire.

use std::collections::BTreeMap;

use sentio_core::time::format_time;
use sentio_store::{Role, User, UserToken};
use serde::{Deserialize, Serialize};

/// What a user may do: `admin`, `operator` or `viewer`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// Everything.
    Admin,
    /// Reads and acts on alerts.
    Operator,
    /// Reads only.
    Viewer,
}

impl From<RoleDto> for Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Admin => Role::Admin,
            RoleDto::Operator => Role::Operator,
            RoleDto::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleDto::Admin,
            Role::Operator => RoleDto::Operator,
            Role::Viewer => RoleDto::Viewer,
        }
    }
}

/// `POST /api/v1/users` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub role: RoleDto,
    pub password: String,
    /// The devices the user may see and act on, as a label selector (`{"site": "plant-a"}`);
    /// absent or empty: the whole fleet. Refused on an admin.
    #[serde(default)]
    pub scope: BTreeMap<String, String>,
}

/// `PATCH /api/v1/users/<name>` body: a new role, a new password (which ends the user's
/// sessions), disabled (which ends them too) or enabled again; any of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    pub role: Option<RoleDto>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new scope; `{}` lifts it.
    #[serde(default)]
    pub scope: Option<BTreeMap<String, String>>,
}

/// A user as the API shows it (never a password or hash).
#[derive(Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: RoleDto,
    pub created: String,
    pub created_ms: i64,
    /// Cannot sign in (an admin disabled it).
    pub disabled: bool,
    /// The label selector of the devices it may see (`{}`: the whole fleet).
    pub scope: BTreeMap<String, String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            disabled: u.disabled,
            scope: u.scope.selector().clone(),
            created: format_time(u.created_ms),
            created_ms: u.created_ms,
            role: u.role.into(),
            name: u.name,
        }
    }
}

/// `POST /api/v1/me/tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserToken {
    pub name: String,
    /// At most the user's role; absent: the user's role.
    #[serde(default)]
    pub role: Option<RoleDto>,
    /// How long it works (`"30d"`, `"12h"`); absent: until revoked.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A personal API token as the API shows it (never its secret after creation).
#[derive(Debug, Serialize)]
pub struct UserTokenView {
    pub id: String,
    pub name: String,
    pub role: RoleDto,
    pub created: String,
    pub created_ms: i64,
    pub expires: Option<String>,
    pub expires_ms: Option<i64>,
}

impl From<UserToken> for UserTokenView {
    fn from(t: UserToken) -> Self {
        Self {
            role: t.role.into(),
            created: format_time(t.created_ms),
            created_ms: t.created_ms,
            expires: t.expires_ms.map(format_time),
            expires_ms: t.expires_ms,
            id: t.id,
            name: t.name,
        }
    }
}

/// `POST /api/v1/me/tokens` answer: the bearer token, shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedUserToken {
    pub token: UserTokenView,
    /// `Authorization: Bearer <this>`.
    pub bearer: String,
}

/// `POST /api/v1/session` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub name: String,
    pub password: String,
}

/// `POST /api/v1/session` answer (the session id itself is only in the cookie).
#[derive(Debug, Serialize)]
pub struct LoginAnswer {
    pub user: UserView,
    /// To send as `X-CSRF-Token` with every request that changes state.
    pub csrf_token: String,
    pub expires: String,
    pub expires_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::tests::check;

    #[test]
    fn users_and_logins() {
        let user = || User {
            name: "ann".into(),
            role: Role::Operator,
            created_ms: 1_700_000_000_000,
            disabled: false,
            scope: sentio_store::DeviceScope::parse("site=plant-a").unwrap(),
        };
        let view = r#"{"name":"ann","role":"operator","created":"2023-11-14T22:13:20Z","created_ms":1700000000000,"disabled":false,"scope":{"site":"plant-a"}}"#;
        check(UserView::from(user()), view);
        check(
            LoginAnswer {
                user: user().into(),
                csrf_token: "c5".into(),
                expires: format_time(1_700_000_000_000),
                expires_ms: 1_700_000_000_000,
            },
            &format!(
                r#"{{"user":{view},"csrf_token":"c5","expires":"2023-11-14T22:13:20Z","expires_ms":1700000000000}}"#
            ),
        );
        let body: CreateUser =
            serde_json::from_str(r#"{"name":"bob","role":"viewer","password":"p"}"#).unwrap();
        assert_eq!(Role::from(body.role), Role::Viewer);
        assert!(serde_json::from_str::<UpdateUser>(r#"{"role":"root"}"#).is_err());
        let reset: UpdateUser = serde_json::from_str(r#"{"password":"p"}"#).unwrap();
        assert!(reset.role.is_none() && reset.password.is_some());
        check(
            CreatedUserToken {
                token: UserToken {
                    id: "00ff".into(),
                    user: "ann".into(),
                    name: "grafana".into(),
                    role: Role::Viewer,
                    created_ms: 1_700_000_000_000,
                    expires_ms: None,
                }
                .into(),
                bearer: "pat:00ff:s3cret".into(),
            },
            r#"{"token":{"id":"00ff","name":"grafana","role":"viewer","created":"2023-11-14T22:13:20Z","created_ms":1700000000000,"expires":null,"expires_ms":null},"bearer":"pat:00ff:s3cret"}"#,
        );
    }
}
