//! `UserStore` on SQLite: users with their Argon2id hashes, sessions by the keyed digest of
//! their ids. Hashing runs on a blocking thread before the connection is taken, so a login
//! never holds the database for the hash's tens of milliseconds.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::time;

use super::SqliteStore;
use crate::user::{self, NewUser, Role, Session, SessionSecrets, User};
use crate::{Result, StoreError, UserStore, secret};

/// The keyed digest a session is found by.
fn session_digest(key: &[u8; 32], id: &str) -> blake3::Hash {
    secret::digest(key, "session", id)
}

fn row_user(name: String, role: &str, created_ms: i64, disabled: bool) -> Result<User> {
    let role = role
        .parse::<Role>()
        .map_err(|_| StoreError::Corrupt(format!("role of user {name}: {role:?}")))?;
    Ok(User {
        name,
        role,
        created_ms,
        disabled,
    })
}

fn read_user(conn: &Connection, name: &str) -> Result<Option<(User, String)>> {
    let row = conn
        .prepare_cached(
            "SELECT role, created_ms, password_hash, disabled FROM users WHERE name = ?1",
        )?
        .query_row([name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })
        .optional()?;
    row.map(|(role, created, hash, disabled)| {
        Ok((row_user(name.to_string(), &role, created, disabled)?, hash))
    })
    .transpose()
}

/// Adds the `disabled` column to a database made before users could be disabled.
pub(super) fn add_disabled_column(conn: &Connection) -> Result<()> {
    super::add_column_if_missing(conn, "users", "disabled", "INTEGER NOT NULL DEFAULT 0")
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
        let password = new.password;
        let hash = blocking(move || user::hash_password(&password)).await??;
        let u = User {
            name: new.name,
            role: new.role,
            created_ms: time::now_ms(),
            disabled: false,
        };
        let out = u.clone();
        self.with_conn(move |_, conn| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO users (name, role, password_hash, created_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![u.name, u.role.as_str(), hash, u.created_ms],
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
                conn.prepare("SELECT name, role, created_ms, disabled FROM users ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (name, role, created, disabled) = row?;
                row_user(name, &role, created, disabled)
            })
            .collect()
        })
        .await
    }

    async fn set_role(&self, name: &str, role: Role) -> Result<User> {
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let n = conn.execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                params![name, role.as_str()],
            )?;
            match read_user(conn, &name)? {
                Some((u, _)) if n == 1 => Ok(u),
                _ => Err(StoreError::UnknownUser(name)),
            }
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
                    "SELECT u.name, u.role, u.created_ms, s.expires_ms, s.csrf_digest \
                     FROM sessions s JOIN users u ON u.name = s.user \
                     WHERE s.digest = ?1 AND s.expires_ms > ?2 AND u.disabled = 0",
                )?
                .query_row(params![digest.as_bytes().as_slice(), now_ms], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .optional()?;
            let Some((name, role, created, expires_ms, csrf)) = row else {
                return Ok(None);
            };
            let csrf: [u8; 32] = csrf
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("CSRF digest of a session of {name}")))?;
            Ok(Some(Session::new(
                row_user(name, &role, created, false)?,
                expires_ms,
                blake3::Hash::from_bytes(csrf),
            )))
        })
        .await
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
    fn a_user_table_from_before_disabling_gains_the_column_and_keeps_its_users_enabled() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, \
             password_hash TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO users VALUES ('ann', 'admin', 'h', 1);",
        )
        .unwrap();
        add_disabled_column(&conn).unwrap();
        // The next start finds the column and changes nothing.
        add_disabled_column(&conn).unwrap();
        let (ann, hash) = read_user(&conn, "ann").unwrap().unwrap();
        assert_eq!(
            (ann.role, ann.disabled, hash.as_str()),
            (Role::Admin, false, "h")
        );
    }
}
