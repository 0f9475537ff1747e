//! Personal API tokens on SQLite: a token's secret only as its keyed digest (bound to the
//! token's id), found by id; the user is read with the token at each request, so a disabled,
//! demoted, rescoped or deleted user's tokens follow at once (deleted: in the user's
//! transaction, by `ON DELETE CASCADE` and explicitly).

use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::time;

use super::SqliteStore;
use super::users::{UserRow, row_user};
use crate::user::{self, MAX_TOKENS_PER_USER, NewUserToken, Role, USER_TOKEN_PREFIX, UserToken};
use crate::{Result, StoreError, User, secret};

/// The keyed digest of a token's secret, bound to its id.
fn token_digest(key: &[u8; 32], id: &str, secret: &str) -> blake3::Hash {
    secret::digest(key, &format!("{USER_TOKEN_PREFIX}{id}"), secret)
}

fn validate(new: &NewUserToken, now_ms: i64) -> Result<()> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::InvalidQuery(
            "a token name has 1-100 printable characters".into(),
        ));
    }
    if new.expires_ms.is_some_and(|e| e <= now_ms) {
        return Err(StoreError::InvalidQuery("the expiry is in the past".into()));
    }
    Ok(())
}

/// A token row: id, user, name, role, created, expires.
type TokenRow = (String, String, String, String, i64, Option<i64>);

const TOKEN_COLUMNS: &str = "t.id, t.user, t.name, t.role, t.created_ms, t.expires_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn row_token((id, user, name, role, created_ms, expires_ms): TokenRow) -> Result<UserToken> {
    let role = role
        .parse::<Role>()
        .map_err(|_| StoreError::Corrupt(format!("role of token {id}: {role:?}")))?;
    Ok(UserToken {
        id,
        user,
        name,
        role,
        created_ms,
        expires_ms,
    })
}

fn read_tokens(conn: &Connection, user: &str) -> Result<Vec<UserToken>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM user_tokens t WHERE t.user = ?1 ORDER BY t.created_ms, t.id"
    ))?;
    let rows = stmt.query_map([user], token_row)?;
    rows.map(|r| row_token(r?)).collect()
}

impl SqliteStore {
    pub(super) async fn insert_user_token(&self, new: NewUserToken) -> Result<(UserToken, String)> {
        let now = time::now_ms();
        validate(&new, now)?;
        let mut id_bytes = [0u8; 8];
        getrandom::fill(&mut id_bytes)
            .expect("the operating system's random generator is unavailable");
        let token = UserToken {
            id: hex::encode(id_bytes),
            user: new.user,
            name: new.name.trim().to_string(),
            role: new.role,
            created_ms: now,
            expires_ms: new.expires_ms,
        };
        let password = secret::generate();
        let digest = token_digest(&self.inner.key, &token.id, &password);
        let t = token.clone();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let owner: Option<(String, bool)> = tx
                .query_row(
                    "SELECT role, disabled FROM users WHERE name = ?1",
                    [&t.user],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((role, disabled)) = owner else {
                return Err(StoreError::UnknownUser(t.user));
            };
            if disabled {
                return Err(StoreError::InvalidQuery(format!(
                    "user {} is disabled",
                    t.user
                )));
            }
            let role: Role = role.parse()?;
            if t.role > role {
                return Err(StoreError::InvalidQuery(format!(
                    "a token of {} may have the role {role} at most, not {}",
                    t.user, t.role
                )));
            }
            let held: i64 = tx.query_row(
                "SELECT COUNT(*) FROM user_tokens WHERE user = ?1",
                [&t.user],
                |r| r.get(0),
            )?;
            if held as usize >= MAX_TOKENS_PER_USER {
                return Err(StoreError::InvalidQuery(format!(
                    "{} has {MAX_TOKENS_PER_USER} tokens already; revoke one first",
                    t.user
                )));
            }
            let n = tx.execute(
                "INSERT OR IGNORE INTO user_tokens \
                 (id, user, name, role, digest, created_ms, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id,
                    t.user,
                    t.name,
                    t.role.as_str(),
                    digest.as_bytes().as_slice(),
                    t.created_ms,
                    t.expires_ms
                ],
            )?;
            if n == 0 {
                return Err(StoreError::DuplicateToken(t.name));
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok((token, password))
    }

    pub(super) async fn list_user_tokens(&self, user: &str) -> Result<Vec<UserToken>> {
        let user = user.to_string();
        self.with_conn(move |_, conn| read_tokens(conn, &user))
            .await
    }

    pub(super) async fn remove_user_token(&self, user: &str, id: &str) -> Result<UserToken> {
        let (user, id) = (user.to_string(), id.to_string());
        self.with_conn(move |_, conn| {
            let row = conn
                .query_row(
                    "DELETE FROM user_tokens WHERE id = ?1 AND user = ?2 \
                     RETURNING id, user, name, role, created_ms, expires_ms",
                    [&id, &user],
                    token_row,
                )
                .optional()?;
            row.map(row_token)
                .transpose()?
                .ok_or(StoreError::UnknownToken(id))
        })
        .await
    }

    pub(super) async fn user_token_user(
        &self,
        id: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<Option<(User, UserToken)>> {
        let (id, password) = (id.to_string(), password.to_string());
        self.with_conn(move |inner, conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS}, t.digest, \
                     u.name, u.role, u.created_ms, u.disabled, u.scope \
                     FROM user_tokens t JOIN users u ON u.name = t.user \
                     WHERE t.id = ?1 AND u.disabled = 0 \
                     AND (t.expires_ms IS NULL OR t.expires_ms > ?2)"
                ))?
                .query_row(params![id, now_ms], |r| {
                    let user: UserRow = (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?);
                    Ok((token_row(r)?, r.get::<_, Vec<u8>>(6)?, user))
                })
                .optional()?;
            let Some((token, digest, user)) = row else {
                return Ok(None);
            };
            let digest: [u8; 32] = digest
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("digest of user token {id}")))?;
            // Constant-time comparison (`blake3::Hash`'s `PartialEq`).
            if token_digest(&inner.key, &id, &password) != blake3::Hash::from_bytes(digest) {
                return Ok(None);
            }
            let token = row_token(token)?;
            Ok(Some((user::token_user(row_user(user)?, token.role), token)))
        })
        .await
    }
}
