//! People: user accounts with a [`Role`], their passwords and their browser sessions.
//!
//! A password is kept only as an Argon2id hash (PHC string, parameters [`ARGON2_M_KIB`],
//! [`ARGON2_T`], [`ARGON2_P`]: OWASP's minimum), never in clear. A session is a random 256-bit
//! id given to the browser; the store keeps only its keyed BLAKE3 digest (as device secrets,
//! [`crate::secret`]) with an expiry, and the digest of the session's CSRF token.
//!
//! A user may be confined to devices by a [`DeviceScope`] (a label selector); an admin never is
//! (it edits users, its own scope included). A personal API token ([`UserToken`]) acts for its
//! user with a role no stronger than the user's (the lower of the two at each request) and the
//! user's scope as it is now: it can never be wider than its user.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Result, StoreError, labels};

/// Argon2id memory cost in KiB (19 MiB).
pub const ARGON2_M_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_T: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_P: u32 = 1;
/// Longest user name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Fewest characters of a password.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most characters of a password (hashing cost stays bounded).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// What a user may do. Ordered: each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// A viewer who also acts on alerts (feedback, acknowledge).
    Operator,
    /// Everything: devices, tokens, users, retention.
    Admin,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(StoreError::InvalidQuery(format!(
                "unknown role {other:?}: admin, operator or viewer"
            ))),
        }
    }
}

/// The devices a user may see and act on: those whose labels hold every pair of the selector
/// (`site=plant-a,line=2`: AND), matched by [`labels::matches`]. Empty: the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceScope(BTreeMap<String, String>);

impl DeviceScope {
    /// The whole fleet (no restriction).
    pub fn fleet() -> Self {
        Self::default()
    }

    /// A scope from label pairs, each checked as a device label is.
    pub fn new(selector: BTreeMap<String, String>) -> Result<Self> {
        labels::validate(&selector)?;
        Ok(Self(selector))
    }

    /// Reads `site=plant-a,line=2` (pairs joined by commas; an empty text is the whole fleet).
    pub fn parse(text: &str) -> Result<Self> {
        let mut selector = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(StoreError::InvalidQuery(format!(
                    "scope {pair:?} is not key=value (e.g. site=plant-a)"
                )));
            };
            if selector
                .insert(k.trim().to_string(), v.trim().to_string())
                .is_some()
            {
                return Err(StoreError::InvalidQuery(format!(
                    "scope names the label {:?} twice",
                    k.trim()
                )));
            }
        }
        Self::new(selector)
    }

    /// Whether this is the whole fleet.
    pub fn is_fleet(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a device with these labels is within the scope.
    pub fn admits(&self, device_labels: &BTreeMap<String, String>) -> bool {
        labels::matches(device_labels, &self.0)
    }

    /// The label pairs.
    pub fn selector(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// A selector asked for within this scope: both sets of pairs, or `None` when they
    /// contradict each other (no device can be in both).
    pub fn narrow(&self, asked: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
        let mut both = asked.clone();
        for (k, v) in &self.0 {
            if both
                .insert(k.clone(), v.clone())
                .is_some_and(|old| old != *v)
            {
                return None;
            }
        }
        Some(both)
    }
}

impl std::fmt::Display for DeviceScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// An admin edits users (its own scope included), so a scope on an admin could not hold: it
/// is refused.
pub(crate) fn validate_scope(role: Role, scope: &DeviceScope) -> Result<()> {
    if role == Role::Admin && !scope.is_fleet() {
        return Err(StoreError::InvalidQuery(
            "an admin is not scoped (it can edit users); give the user the operator or viewer role, or no scope".into(),
        ));
    }
    Ok(())
}

/// A user account (never with its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Unique name, 1-64 of `A-Z a-z 0-9 . _ @ -`.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Disabled by an admin: it cannot sign in and has no session.
    pub disabled: bool,
    /// The devices it may see and act on.
    pub scope: DeviceScope,
}

/// The bearer form of a personal API token starts with this: `pat:<id>:<secret>`.
pub const USER_TOKEN_PREFIX: &str = "pat:";
/// Most personal API tokens of one user.
pub const MAX_TOKENS_PER_USER: usize = 20;

/// A personal API token (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserToken {
    /// Random id (16 hex digits).
    pub id: String,
    /// Its user.
    pub user: String,
    /// A name the user chose, unique among its tokens.
    pub name: String,
    /// The most it may do; at each request the lower of this and the user's role.
    pub role: Role,
    /// Creation time (ms).
    pub created_ms: i64,
    /// When it stops working (ms), if ever.
    pub expires_ms: Option<i64>,
}

/// What is needed to create a personal API token.
#[derive(Debug, Clone)]
pub struct NewUserToken {
    /// Its user.
    pub user: String,
    /// 1-100 printable characters, unique among the user's tokens.
    pub name: String,
    /// At most the user's role (refused otherwise).
    pub role: Role,
    /// When it stops working (ms), if ever.
    pub expires_ms: Option<i64>,
}

/// The user a live personal token acts for, as of the request: the user's scope, and the lower
/// of the token's and the user's roles.
pub fn token_user(mut user: User, token_role: Role) -> User {
    user.role = user.role.min(token_role);
    user
}

/// What is needed to create a user (validated by the store, the password hashed there).
#[derive(Clone)]
pub struct NewUser {
    /// Unique name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The password in clear, at least [`MIN_PASSWORD_CHARS`] characters.
    pub password: String,
    /// The devices it may see and act on (none for an admin).
    pub scope: DeviceScope,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A live session, found by its id.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user signed in, with the role it has now.
    pub user: User,
    /// When the session ends (ms).
    pub expires_ms: i64,
    /// Digest of the session's CSRF token.
    csrf_digest: blake3::Hash,
}

impl Session {
    /// A session read back from the store.
    pub(crate) fn new(user: User, expires_ms: i64, csrf_digest: blake3::Hash) -> Self {
        Self {
            user,
            expires_ms,
            csrf_digest,
        }
    }

    /// Constant-time check of a request's CSRF token against this session's.
    pub fn csrf_matches(&self, token: &str) -> bool {
        csrf_digest(token) == self.csrf_digest
    }
}

/// A new session's secrets, shown once: the id goes in the cookie, the CSRF token in the
/// `X-CSRF-Token` header of every state-changing request.
#[derive(Clone)]
pub struct SessionSecrets {
    /// The session id (256 random bits, hex).
    pub id: String,
    /// The CSRF token ([`csrf_token`] of the id).
    pub csrf: String,
    /// When the session ends (ms).
    pub expires_ms: i64,
}

/// A session's CSRF token, derived from its id (hex): the page that holds the session can ask
/// for it again after a reload (`GET /api/v1/session`, with the cookie), while another site's
/// page, which can neither read the cookie nor the answer, cannot know it. One-way: the token
/// does not give the session id back.
pub fn csrf_token(session_id: &str) -> String {
    blake3::derive_key("sentio 2026-12 session csrf token", session_id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Digest of a CSRF token (a 256-bit value out of a random id needs no key).
pub(crate) fn csrf_digest(token: &str) -> blake3::Hash {
    blake3::hash(token.as_bytes())
}

/// Checks a user name.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidQuery(
            "a user name has 1-64 of A-Z a-z 0-9 . _ @ -".into(),
        ))
    }
}

/// Checks a new password's length.
pub fn validate_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(StoreError::InvalidQuery(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(StoreError::InvalidQuery(format!(
            "a password has at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .expect("the Argon2 parameters are valid");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// The Argon2id hash (PHC string) of `password` with a fresh salt. Slow on purpose (tens of
/// milliseconds): call it off the async threads.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random generator is unavailable");
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .to_string())
}

/// Whether `password` matches a stored PHC hash (its own parameters are used). `None` (no
/// such user) still costs one hash, so an unknown name takes as long as a wrong password.
pub(crate) fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let Some(stored) = stored else {
        let _ = hash_password(password);
        return false;
    };
    PasswordHash::new(stored)
        .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies_only_its_password() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("correct horse batterY", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
    }

    #[test]
    fn the_csrf_token_is_the_session_s_alone_and_does_not_give_its_id_back() {
        let (a, b) = ("ab".repeat(32), "ac".repeat(32));
        assert_eq!(csrf_token(&a), csrf_token(&a), "asked again after a reload");
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert_eq!(csrf_token(&a).len(), 64, "256 bits, hex");
        assert!(!csrf_token(&a).contains(&a[..16]));
        assert_ne!(csrf_digest(&csrf_token(&a)), blake3::hash(a.as_bytes()));
    }

    #[test]
    fn names_passwords_and_roles_are_checked() {
        for (name, ok) in [
            ("ann", true),
            ("a.b_c@d-e", true),
            ("", false),
            ("a b", false),
        ] {
            assert_eq!(validate_name(name).is_ok(), ok, "{name:?}");
        }
        assert!(validate_password("short").is_err());
        assert!(validate_password("twelve chars").is_ok());
        assert_eq!("operator".parse::<Role>().unwrap(), Role::Operator);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    use crate::labels::tests::map;

    #[test]
    fn a_scope_admits_only_devices_holding_all_its_labels() {
        let scope = DeviceScope::parse(" site=plant-a , line=2").unwrap();
        assert_eq!(scope.to_string(), "line=2,site=plant-a");
        assert_eq!(DeviceScope::parse(&scope.to_string()).unwrap(), scope);
        assert!(scope.admits(&map(&[("site", "plant-a"), ("line", "2"), ("x", "y")])));
        assert!(!scope.admits(&map(&[("site", "plant-a")])), "AND, not OR");
        assert!(!scope.admits(&map(&[("site", "plant-b"), ("line", "2")])));
        assert!(!scope.admits(&BTreeMap::new()));
        let fleet = DeviceScope::parse("").unwrap();
        assert!(fleet.is_fleet() && fleet.admits(&BTreeMap::new()));
        for bad in ["site", "site=a,site=b", "a b=c", "site=a\nb"] {
            assert!(DeviceScope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_selector_asked_within_a_scope_is_narrowed_never_widened() {
        let scope = DeviceScope::parse("site=plant-a").unwrap();
        assert_eq!(
            scope.narrow(&map(&[("line", "2")])),
            Some(map(&[("line", "2"), ("site", "plant-a")]))
        );
        assert_eq!(scope.narrow(&map(&[("site", "plant-b")])), None);
        assert_eq!(
            scope.narrow(&map(&[("site", "plant-a")])),
            Some(map(&[("site", "plant-a")]))
        );
        assert_eq!(
            DeviceScope::fleet().narrow(&map(&[("site", "plant-b")])),
            Some(map(&[("site", "plant-b")]))
        );
    }

    #[test]
    fn an_admin_is_never_scoped_and_a_token_never_outranks_its_user() {
        let scope = DeviceScope::parse("site=plant-a").unwrap();
        assert!(validate_scope(Role::Admin, &scope).is_err());
        assert!(validate_scope(Role::Admin, &DeviceScope::fleet()).is_ok());
        assert!(validate_scope(Role::Operator, &scope).is_ok());
        let vic = User {
            name: "vic".into(),
            role: Role::Viewer,
            created_ms: 0,
            disabled: false,
            scope: scope.clone(),
        };
        let acting = token_user(vic.clone(), Role::Admin);
        assert_eq!((acting.role, acting.scope), (Role::Viewer, scope));
        let op = User {
            role: Role::Operator,
            ..vic
        };
        assert_eq!(token_user(op, Role::Viewer).role, Role::Viewer);
    }
}
