//! `TokenStore` on SQLite: scoped API tokens, their digests and ACLs cached in memory.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sentio_core::acl::{self, AclRule};
use sentio_core::time;

use super::SqliteStore;
use crate::{
    ApiToken, NewToken, Result, Scope, StoreError, TOKEN_USERNAME_PREFIX, TokenStore, secret,
};

/// Most rules in one token's ACL.
pub const MAX_RULES: usize = 100;

/// What the hot path needs of a live token, by MQTT username.
pub(super) struct CachedToken {
    digest: blake3::Hash,
    acl: Arc<[AclRule]>,
    scopes: Arc<[Scope]>,
}

pub(super) type TokenCache = HashMap<String, CachedToken>;

fn username(id: &str) -> String {
    format!("{TOKEN_USERNAME_PREFIX}{id}")
}

fn parse_acl(id: &str, text: &str) -> Result<Vec<AclRule>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("ACL of token {id}: {e}")))
}

fn parse_scopes(id: &str, text: &str) -> Result<Vec<Scope>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("scopes of token {id}: {e}")))
}

/// Reads every token's digest, ACL and scopes at start.
pub(super) fn load(conn: &Connection) -> Result<TokenCache> {
    // A database made before tokens had scopes.
    super::add_column_if_missing(conn, "api_tokens", "scopes", "TEXT NOT NULL DEFAULT '[]'")?;
    let mut stmt = conn.prepare("SELECT id, acl, secret_digest, scopes FROM api_tokens")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut cache = TokenCache::new();
    for row in rows {
        let (id, acl, digest, scopes) = row?;
        let bytes: [u8; 32] = digest
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("secret digest of token {id}")))?;
        cache.insert(
            username(&id),
            CachedToken {
                digest: blake3::Hash::from_bytes(bytes),
                acl: parse_acl(&id, &acl)?.into(),
                scopes: parse_scopes(&id, &scopes)?.into(),
            },
        );
    }
    Ok(cache)
}

/// Each scope once, in a stable order.
fn dedup(mut scopes: Vec<Scope>) -> Vec<Scope> {
    scopes.sort_by_key(|s| *s as u8);
    scopes.dedup();
    scopes
}

fn validate(new: &NewToken) -> Result<()> {
    let invalid = |m: String| Err(StoreError::InvalidQuery(m));
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return invalid("a token name has 1-100 printable characters".into());
    }
    if new.acl.is_empty() && new.scopes.is_empty() {
        return invalid(
            "the ACL is empty: give at least one {\"filter\", \"rights\"} rule, or a scope".into(),
        );
    }
    if new.acl.len() > MAX_RULES {
        return invalid(format!("the ACL has more than {MAX_RULES} rules"));
    }
    for rule in &new.acl {
        acl::validate_filter(&rule.filter).map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    }
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_token(&self, new: NewToken) -> Result<(ApiToken, String)> {
        validate(&new)?;
        let mut id_bytes = [0u8; 8];
        getrandom::fill(&mut id_bytes)
            .expect("the operating system's random generator is unavailable");
        let id = hex::encode(id_bytes);
        let token = ApiToken {
            username: username(&id),
            name: new.name.trim().to_string(),
            acl: new.acl,
            scopes: dedup(new.scopes),
            created_ms: time::now_ms(),
            id,
        };
        let password = secret::generate();
        let digest = secret::digest(&self.inner.key, &token.username, &password);
        let t = token.clone();
        self.with_conn(move |inner, conn| {
            let acl = serde_json::to_string(&t.acl).expect("ACL serialises");
            let scopes = serde_json::to_string(&t.scopes).expect("scopes serialise");
            let n = conn.execute(
                "INSERT OR IGNORE INTO api_tokens (id, name, acl, secret_digest, created_ms, scopes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.id,
                    t.name,
                    acl,
                    digest.as_bytes().as_slice(),
                    t.created_ms,
                    scopes
                ],
            )?;
            if n == 0 {
                return Err(StoreError::DuplicateToken(t.name));
            }
            inner
                .tokens
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    t.username.clone(),
                    CachedToken {
                        digest,
                        acl: t.acl.clone().into(),
                        scopes: t.scopes.clone().into(),
                    },
                );
            Ok(())
        })
        .await?;
        Ok((token, password))
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.with_conn(|_, conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, acl, created_ms, scopes FROM api_tokens ORDER BY created_ms, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            rows.map(|row| {
                let (id, name, acl, created_ms, scopes) = row?;
                Ok(ApiToken {
                    username: username(&id),
                    acl: parse_acl(&id, &acl)?,
                    scopes: parse_scopes(&id, &scopes)?,
                    id,
                    name,
                    created_ms,
                })
            })
            .collect()
        })
        .await
    }

    async fn delete_token(&self, id: &str) -> Result<ApiToken> {
        let id = id.to_string();
        self.with_conn(move |inner, conn| {
            let row = conn
                .query_row(
                    "DELETE FROM api_tokens WHERE id = ?1 RETURNING name, acl, created_ms, scopes",
                    [&id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((name, acl, created_ms, scopes)) = row else {
                return Err(StoreError::UnknownToken(id));
            };
            let token = ApiToken {
                username: username(&id),
                acl: parse_acl(&id, &acl)?,
                scopes: parse_scopes(&id, &scopes)?,
                id,
                name,
                created_ms,
            };
            inner
                .tokens
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&token.username);
            Ok(token)
        })
        .await
    }

    fn verify_token(&self, username: &str, password: &str) -> Option<Arc<[AclRule]>> {
        let tokens = self.inner.tokens.read().unwrap_or_else(|p| p.into_inner());
        let cached = tokens.get(username)?;
        secret::verify(&self.inner.key, username, password, &cached.digest)
            .then(|| cached.acl.clone())
    }

    fn token_scopes(&self, username: &str, password: &str) -> Option<Arc<[Scope]>> {
        let tokens = self.inner.tokens.read().unwrap_or_else(|p| p.into_inner());
        let cached = tokens.get(username)?;
        secret::verify(&self.inner.key, username, password, &cached.digest)
            .then(|| cached.scopes.clone())
    }

    fn token_acl(&self, username: &str) -> Option<Arc<[AclRule]>> {
        self.inner
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(username)
            .map(|c| c.acl.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_table_from_before_scopes_gains_the_column_and_keeps_its_tokens() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE api_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
             acl TEXT NOT NULL, secret_digest BLOB NOT NULL, created_ms INTEGER NOT NULL) \
             WITHOUT ROWID;
             INSERT INTO api_tokens VALUES ('00ff', 'old', '[]', zeroblob(32), 1);",
        )
        .unwrap();
        let cache = load(&conn).unwrap();
        assert!(cache[&username("00ff")].scopes.is_empty());
        // Loading again (the next start) finds the column and changes nothing.
        assert_eq!(load(&conn).unwrap().len(), 1);
    }
}
