//! `UserStore` on SQLite: users with their Argon2id hashes, sessions by the keyed digest of
//! their ids. Hashing runs on a blocking thread before the connection is taken, so a login
//! never holds the database for the hash's tens of milliseconds.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::time;

use super::SqliteStore;
use crate::user::{
    self, DeviceScope, NewUser, NewUserToken, Role, Session, SessionSecrets, User, UserToken,
};
use crate::{Result, StoreError, UserStore, secret};

/// The keyed digest a session is found by.
fn session_digest(key: &[u8; 32], id: &str) -> blake3::Hash {
    secret::digest(key, "session", id)
}

/// A user row as read: name, role, creation, disabled, scope (JSON).
pub(super) type UserRow = (String, String, i64, bool, String);

/// The columns of a [`UserRow`], for a `SELECT` on `users`.
pub(super) const USER_COLUMNS: &str = "name, role, created_ms, disabled, scope";

/// Reads a [`UserRow`] from the first five columns of a row.
pub(super) fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

pub(super) fn row_user((name, role, created_ms, disabled, scope): UserRow) -> Result<User> {
    let role = role
        .parse::<Role>()
        .map_err(|_| StoreError::Corrupt(format!("role of user {name}: {role:?}")))?;
    let scope: DeviceScope = serde_json::from_str(&scope)
        .map_err(|e| StoreError::Corrupt(format!("scope of user {name}: {e}")))?;
    Ok(User {
        name,
        role,
        created_ms,
        disabled,
        scope,
    })
}

fn read_user(conn: &Connection, name: &str) -> Result<Option<(User, String)>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = ?1"
        ))?
        .query_row([name], |r| Ok((user_row(r)?, r.get::<_, String>(5)?)))
        .optional()?;
    row.map(|(row, hash)| Ok((row_user(row)?, hash)))
        .transpose()
}

/// Adds the columns of users made before users could be disabled or scoped.
pub(super) fn add_missing_columns(conn: &Connection) -> Result<()> {
    super::add_column_if_missing(conn, "users", "disabled", "INTEGER NOT NULL DEFAULT 0")?;
    super::add_column_if_missing(conn, "users", "scope", "TEXT NOT NULL DEFAULT '{}'")
}

fn scope_json(scope: &DeviceScope) -> String {
    serde_json::to_string(scope).expect("a scope serialises")
}

/// Runs a slow, CPU-bound step (hashing) off the async threads.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: NewUser) -> Result<User> {
        user::validate_name(&new.name)?;
        user::validate_password(&new.password)?;
        user::validate_scope(new.role, &new.scope)?;
        let password = new.password;
        let hash = blocking(move || user::hash_password(&password)).await??;
        let u = User {
            name: new.name,
            role: new.role,
            created_ms: time::now_ms(),
            disabled: false,
            scope: new.scope,
        };
        let out = u.clone();
        self.with_conn(move |_, conn| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO users (name, role, password_hash, created_ms, scope) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    u.name,
                    u.role.as_str(),
                    hash,
                    u.created_ms,
                    scope_json(&u.scope)
                ],
            )?;
            if n == 0 {
                return Err(StoreError::DuplicateUser(u.name));
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn get_user(&self, name: &str) -> Result<Option<User>> {
        let name = name.to_string();
        self.with_conn(move |_, conn| Ok(read_user(conn, &name)?.map(|(u, _)| u)))
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.with_conn(|_, conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
            let rows = stmt.query_map([], user_row)?;
            rows.map(|row| row_user(row?)).collect()
        })
        .await
    }

    async fn set_role(&self, name: &str, role: Role) -> Result<User> {
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let Some((u, _)) = read_user(&tx, &name)? else {
                return Err(StoreError::UnknownUser(name));
            };
            user::validate_scope(role, &u.scope)?;
            tx.execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                params![name, role.as_str()],
            )?;
            tx.commit()?;
            Ok(User { role, ..u })
        })
        .await
    }

    async fn set_scope(&self, name: &str, scope: DeviceScope) -> Result<User> {
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let Some((u, _)) = read_user(&tx, &name)? else {
                return Err(StoreError::UnknownUser(name));
            };
            user::validate_scope(u.role, &scope)?;
            tx.execute(
                "UPDATE users SET scope = ?2 WHERE name = ?1",
                params![name, scope_json(&scope)],
            )?;
            tx.commit()?;
            Ok(User { scope, ..u })
        })
        .await
    }

    async fn set_password(&self, name: &str, password: &str) -> Result<User> {
        user::validate_password(password)?;
        let password = password.to_string();
        let hash = blocking(move || user::hash_password(&password)).await??;
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let Some((u, _)) = read_user(&tx, &name)? else {
                return Err(StoreError::UnknownUser(name));
            };
            tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, hash],
            )?;
            tx.execute("DELETE FROM sessions WHERE user = ?1", [&name])?;
            tx.commit()?;
            Ok(u)
        })
        .await
    }

    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<User> {
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE users SET disabled = ?2 WHERE name = ?1",
                params![name, disabled],
            )?;
            if n == 0 {
                return Err(StoreError::UnknownUser(name));
            }
            if disabled {
                tx.execute("DELETE FROM sessions WHERE user = ?1", [&name])?;
            }
            let user = read_user(&tx, &name)?.map(|(u, _)| u);
            tx.commit()?;
            user.ok_or(StoreError::UnknownUser(name))
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<User> {
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let Some((u, _)) = read_user(&tx, &name)? else {
                return Err(StoreError::UnknownUser(name));
            };
            tx.execute("DELETE FROM sessions WHERE user = ?1", [&name])?;
            tx.execute("DELETE FROM user_tokens WHERE user = ?1", [&name])?;
            tx.execute("DELETE FROM users WHERE name = ?1", [&name])?;
            tx.commit()?;
            Ok(u)
        })
        .await
    }

    async fn check_password(&self, name: &str, password: &str) -> Result<Option<User>> {
        let found = {
            let name = name.to_string();
            self.with_conn(move |_, conn| read_user(conn, &name))
                .await?
        };
        let password = password.to_string();
        blocking(move || {
            let ok = user::verify_password(&password, found.as_ref().map(|(_, h)| h.as_str()));
            found.filter(|(u, _)| ok && !u.disabled).map(|(u, _)| u)
        })
        .await
    }

    async fn create_session(&self, name: &str, ttl_ms: i64) -> Result<SessionSecrets> {
        let id = secret::generate();
        let secrets = SessionSecrets {
            csrf: user::csrf_token(&id),
            id,
            expires_ms: time::now_ms().saturating_add(ttl_ms),
        };
        let (name, s) = (name.to_string(), secrets.clone());
        self.with_conn(move |inner, conn| {
            let tx = conn.transaction()?;
            // Expired sessions go as new ones come, so the table holds live ones only.
            tx.execute(
                "DELETE FROM sessions WHERE expires_ms <= ?1",
                [time::now_ms()],
            )?;
            match read_user(&tx, &name)? {
                None => return Err(StoreError::UnknownUser(name)),
                Some((u, _)) if u.disabled => {
                    return Err(StoreError::InvalidQuery(format!("user {name} is disabled")));
                }
                Some(_) => {}
            }
            tx.execute(
                "INSERT INTO sessions (digest, user, csrf_digest, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    session_digest(&inner.key, &s.id).as_bytes().as_slice(),
                    name,
                    user::csrf_digest(&s.csrf).as_bytes().as_slice(),
                    s.expires_ms
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok(secrets)
    }

    async fn session(&self, id: &str, now_ms: i64) -> Result<Option<Session>> {
        let id = id.to_string();
        self.with_conn(move |inner, conn| {
            let digest = session_digest(&inner.key, &id);
            let row = conn
                .prepare_cached(
                    "SELECT u.name, u.role, u.created_ms, u.disabled, u.scope, s.expires_ms, \
                     s.csrf_digest FROM sessions s JOIN users u ON u.name = s.user \
                     WHERE s.digest = ?1 AND s.expires_ms > ?2 AND u.disabled = 0",
                )?
                .query_row(params![digest.as_bytes().as_slice(), now_ms], |r| {
                    Ok((user_row(r)?, r.get::<_, i64>(5)?, r.get::<_, Vec<u8>>(6)?))
                })
                .optional()?;
            let Some((row, expires_ms, csrf)) = row else {
                return Ok(None);
            };
            let csrf: [u8; 32] = csrf.try_into().map_err(|_| {
                StoreError::Corrupt(format!("CSRF digest of a session of {}", row.0))
            })?;
            Ok(Some(Session::new(
                row_user(row)?,
                expires_ms,
                blake3::Hash::from_bytes(csrf),
            )))
        })
        .await
    }

    async fn create_user_token(&self, new: NewUserToken) -> Result<(UserToken, String)> {
        self.insert_user_token(new).await
    }

    async fn user_tokens(&self, user: &str) -> Result<Vec<UserToken>> {
        self.list_user_tokens(user).await
    }

    async fn delete_user_token(&self, user: &str, id: &str) -> Result<UserToken> {
        self.remove_user_token(user, id).await
    }

    async fn user_token_caller(
        &self,
        id: &str,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<(User, UserToken)>> {
        self.user_token_user(id, secret, now_ms).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.with_conn(move |inner, conn| {
            let digest = session_digest(&inner.key, &id);
            Ok(conn.execute(
                "DELETE FROM sessions WHERE digest = ?1",
                [digest.as_bytes().as_slice()],
            )? == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_table_from_before_disabling_and_scopes_gains_the_columns_and_keeps_its_users() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, \
             password_hash TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO users VALUES ('ann', 'admin', 'h', 1);",
        )
        .unwrap();
        add_missing_columns(&conn).unwrap();
        // The next start finds the columns and changes nothing.
        add_missing_columns(&conn).unwrap();
        let (ann, hash) = read_user(&conn, "ann").unwrap().unwrap();
        assert_eq!(
            (ann.role, ann.disabled, ann.scope.is_fleet(), hash.as_str()),
            (Role::Admin, false, true, "h")
        );
    }
}
