//! The embedded default: one SQLite database (`<data>/sentio.db`, WAL mode) holding the
//! registry, one row per point, alerts and detector state. The issue that deepens storage
//! replaces the row-per-point layout with compressed chunks behind the same traits.

mod alerts;
mod registry;
mod series;
mod tokens;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension};

use crate::{Result, StoreError};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "sentio.db";

/// The embedded store. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// One connection: SQLite serialises writers anyway, and readers of this first version are
    /// light. A std mutex (not tokio's) because it is only held inside blocking tasks.
    conn: Mutex<Connection>,
    /// Key of the secret digests, generated on first start and kept in `meta`.
    key: [u8; 32],
    /// Digests of every device's secret, so CONNECT never waits for the database.
    digests: RwLock<HashMap<String, blake3::Hash>>,
    /// Digests and ACLs of the API tokens by MQTT username, so CONNECT and PUBLISH never wait
    /// for the database.
    tokens: RwLock<tokens::TokenCache>,
    /// Series ids by (device, metric).
    series_ids: Mutex<HashMap<(String, String), i64>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path: PathBuf = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed transaction survives power loss, not only a killed process.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(include_str!("schema.sql"))?;

        let key = load_or_create_key(&conn)?;
        let mut digests = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT id, secret_digest FROM devices")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (id, d) = row?;
                let bytes: [u8; 32] = d
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("secret digest of {id}")))?;
                digests.insert(id, blake3::Hash::from_bytes(bytes));
            }
        }
        let mut series_ids = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT id, device, metric FROM series")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                let (id, device, metric) = row?;
                series_ids.insert((device, metric), id);
            }
        }
        let tokens = tokens::load(&conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                key,
                digests: RwLock::new(digests),
                tokens: RwLock::new(tokens),
                series_ids: Mutex::new(series_ids),
            }),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Inner, &mut Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&inner, &mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn load_or_create_key(conn: &Connection) -> Result<[u8; 32]> {
    let existing: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'secret_key'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(bytes) = existing {
        return bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("secret_key in meta".into()));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random generator is unavailable");
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('secret_key', ?1)",
        [key.as_slice()],
    )?;
    Ok(key)
}
