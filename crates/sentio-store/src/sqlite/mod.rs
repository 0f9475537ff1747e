//! The embedded default: one SQLite database (`<data>/sentio.db`, WAL mode) holding the
//! registry, the time series in two tiers, alerts and detector state.
//!
//! Series tiers: `head_log` is the durable head (per committed append and series, one packed
//! blob of recent points in commit order, written by `append`, acknowledged after the commit,
//! indexed per series in the connection's in-memory `temp.head_index`; `head.rs`); `chunks`
//! holds sealed, pco-compressed runs of ~1,000 points with their statistics. The sealer ([`SqliteStore::seal_some`]) moves old head points into
//! chunks, one transaction per step of many series; every read merges both tiers, the head winning on equal
//! timestamps.

mod alerts;
mod audit;
mod band;
mod budget_chain;
mod cached_tx;
mod commands;
mod edges;
mod events;
mod head;
mod health;
mod notify;
mod outbox;
mod outbox_counts;
mod read;
mod registry;
mod resync;
mod retention;
mod rollup;
mod rollup_pack;
mod rules;
mod seal;
mod series;
mod tokens;
mod twins;
mod user_tokens;
mod users;
mod vacuum;
mod workset;

pub(crate) use outbox::INCARNATION_KEY;
pub use retention::RollupStats;
pub use seal::{SealPolicy, SealReport, TierStats};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, RwLock};

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
    /// Foreground calls (`with_conn`: appends, queries) waiting for `conn`: the maintenance
    /// pass gives it up to them between its steps (`retention.rs` `Batch`).
    conn_waiters: AtomicUsize,
    /// Notified when the last waiting foreground call has taken `conn`: background work
    /// waiting to let it in (`Inner::lock`) sleeps on it instead of polling.
    let_in: (Mutex<()>, Condvar),
    /// Key of the secret digests, generated on first start and kept in `meta`.
    key: [u8; 32],
    /// Digests of every device's secret, so CONNECT never waits for the database.
    digests: RwLock<HashMap<String, blake3::Hash>>,
    /// The database file.
    path: PathBuf,
    /// Series ids by device, then metric (looked up without allocating on the ingest path).
    series_ids: Mutex<SeriesIds>,
    /// When head points are sealed into chunks.
    seal: SealPolicy,
    /// The series the sealer looked at last (it goes round them in id order).
    seal_cursor: Mutex<i64>,
    /// Digests and ACLs of the API tokens by MQTT username, so CONNECT and PUBLISH never wait
    /// for the database.
    tokens: RwLock<tokens::TokenCache>,
    /// The latest `rolled_until` of any series: an append before it may land in a bucket
    /// already rolled up, and marks it for recomputation (`rollup.rs`).
    rolled_max: AtomicI64,
    /// The commit seq of the newest head blob (`head.rs`): the next append takes the one after.
    head_seq: AtomicI64,
    /// The series the maintenance pass looked at last.
    maint_cursor: Mutex<i64>,
    /// The series background work must look at (`workset.rs`).
    workset: Mutex<workset::Workset>,
    /// Disk budget of the data directory in bytes (0: none).
    budget: AtomicU64,
    /// Whether the data directory is over the budget's high mark.
    over_budget: AtomicBool,
    /// Raw points removed to stay within the budget since start.
    evicted: AtomicU64,
    /// Whether the disk is full: a write of new data was refused for lack of space and none
    /// has succeeded since (`health.rs`).
    full: AtomicBool,
    /// Whether background work was told to stop ([`crate::Maintenance::interrupt`]): sealing
    /// and maintenance return at their next safe point, between transactions.
    interrupted: AtomicBool,
    /// Whether appends record their batch in the edge's outbox (`outbox.rs`).
    outbox: AtomicBool,
    /// Whether they record it in the backlog lane (else the live one; `outbox.rs`).
    outbox_backlog: AtomicBool,
    /// This data directory's incarnation (`outbox.rs`).
    incarnation: crate::edge::Incarnation,
    /// Digests of every edge's secret, so an edge's CONNECT never waits for the database.
    edge_digests: RwLock<HashMap<String, blake3::Hash>>,
}

/// Size of the database on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// The database file and its write-ahead log.
    pub file_bytes: u64,
    /// Pages inside the file that are free for reuse (e.g. head rows already sealed).
    pub free_bytes: u64,
}

/// Bytes of the database file at `path` and its write-ahead log.
pub(crate) fn database_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// Series ids by device, then metric.
type SeriesIds = HashMap<String, HashMap<String, i64>>;

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`, with the default sealing policy.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, SealPolicy::default())
    }

    /// Opens (creating if needed) the store in `dir`.
    pub fn open_with(dir: &Path, seal: SealPolicy) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path: PathBuf = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        // First of all: a new file takes its page size only before anything reads it.
        vacuum::set_page_size(&conn)?;
        // Before WAL: a new file takes `auto_vacuum` only while its header is unwritten.
        vacuum::enable_incremental(&conn, &path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed transaction survives power loss, not only a killed process.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted content (an erased device, expired points) is overwritten with zeros, not
        // left readable in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The bundled SQLite is built with STAT4, which marks a statement whose plan might
        // depend on a bound value (any `ts >= ?`) as expired whenever that value is bound
        // again: every cached range statement was re-parsed at every use (a quarter of the
        // maintenance pass's CPU). The query-planner stability guarantee turns that off; our
        // plans come from the schema's indexes, not from statistics.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        // Room for every statement the store prepares, with room to grow (~140 today; the
        // default 16 was evicting them).
        conn.set_prepared_statement_cache_capacity(256);
        // The log is truncated back to this after a checkpoint, not kept at its largest.
        conn.pragma_update(None, "journal_size_limit", 32 << 20)?;
        conn.execute_batch(include_str!("schema.sql"))?;
        let blobs = head::open_index(&mut conn)?;
        let head_seq = head::last_seq(&conn)?;
        tracing::debug!(blobs, "indexed the head");

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
        let mut series_ids = SeriesIds::new();
        {
            let mut stmt = conn.prepare("SELECT id, device, metric FROM series")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                let (id, device, metric) = row?;
                series_ids.entry(device).or_default().insert(metric, id);
            }
        }
        let workset = workset::Workset::all(series_ids.values().flat_map(|m| m.values().copied()));
        let tokens = tokens::load(&conn)?;
        users::add_missing_columns(&conn)?;
        outbox::add_lane_column(&conn)?;
        commands::add_upstream_column(&conn)?;
        twins::add_upstream_column(&conn)?;
        resync::add_rollup_rows_column(&conn)?;
        add_column_if_missing(&conn, "edges", "policy", "TEXT")?;
        outbox_counts::seed(&conn)?;
        let incarnation = outbox::load_or_create_incarnation(&conn)?;
        let edge_digests = edges::load_digests(&conn)?;
        let rolled_max: Option<i64> =
            conn.query_row("SELECT MAX(rolled_until) FROM series_marks", [], |r| {
                r.get(0)
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                conn_waiters: AtomicUsize::new(0),
                let_in: (Mutex::new(()), Condvar::new()),
                path,
                key,
                digests: RwLock::new(digests),
                tokens: RwLock::new(tokens),
                series_ids: Mutex::new(series_ids),
                seal,
                seal_cursor: Mutex::new(i64::MIN),
                rolled_max: AtomicI64::new(rolled_max.unwrap_or(i64::MIN)),
                head_seq: AtomicI64::new(head_seq),
                maint_cursor: Mutex::new(i64::MIN),
                workset: Mutex::new(workset),
                budget: AtomicU64::new(0),
                over_budget: AtomicBool::new(false),
                evicted: AtomicU64::new(0),
                full: AtomicBool::new(false),
                interrupted: AtomicBool::new(false),
                outbox: AtomicBool::new(false),
                outbox_backlog: AtomicBool::new(true),
                incarnation,
                edge_digests: RwLock::new(edge_digests),
            }),
        })
    }

    /// Moves the write-ahead log into the database file (and empties the log), then says how
    /// big the files are. For benchmarks and operators; SQLite checkpoints on its own too.
    pub async fn checkpoint(&self) -> Result<DiskUsage> {
        self.with_conn(|inner, conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            let pragma = |name: &str| -> Result<u64> {
                Ok(conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))? as u64)
            };
            let free_bytes = pragma("freelist_count")? * pragma("page_size")?;
            Ok(DiskUsage {
                file_bytes: database_bytes(&inner.path),
                free_bytes,
            })
        })
        .await
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Inner, &mut Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .conn_waiters
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            if inner
                .conn_waiters
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                == 1
            {
                inner.foreground_in();
            }
            let held = std::time::Instant::now();
            let r = f(&inner, &mut conn);
            note_hold::<F>(held);
            r
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Holds of the connection at least this long are logged (debug, target
/// `sentio_store::hold`), with who held it: what an append waiting for the connection waited
/// behind.
const LONG_HOLD: std::time::Duration = std::time::Duration::from_millis(5);

/// Logs a hold of the connection that began at `held` if it was long, naming the holder by
/// the type of its closure (its function's path).
fn note_hold<F>(held: std::time::Instant) {
    let took = held.elapsed();
    if took >= LONG_HOLD {
        tracing::debug!(
            target: "sentio_store::hold",
            held_us = took.as_micros() as u64,
            by = std::any::type_name::<F>(),
            "long hold of the connection"
        );
    }
}

/// Adds `column` (with its SQL declaration `decl`) to `table` of a database made before the
/// column existed; nothing when it has it.
fn add_column_if_missing(conn: &Connection, table: &str, column: &str, decl: &str) -> Result<()> {
    let has: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )?;
    if has == 0 {
        conn.execute(
            &format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"),
            [],
        )?;
    }
    Ok(())
}

impl Inner {
    /// Whether background work must return at its next safe point (the node is stopping).
    fn interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The series background work must look at.
    fn workset(&self) -> std::sync::MutexGuard<'_, workset::Workset> {
        self.workset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of (device, metric), if the series exists.
    fn known_series(&self, device: &str, metric: &str) -> Option<i64> {
        self.series_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device)
            .and_then(|m| m.get(metric))
            .copied()
    }
}

/// Runs `f` with `synchronous = NORMAL` (WAL mode: no fsync of its own), then back to `FULL`.
/// For transactions that only derive or move data already committed (sealing, rollups,
/// retention): a power cut loses at most that transaction, redone later, and the next
/// acknowledged append's fsync covers it. The pragmas are cached statements, not re-prepared.
fn without_fsync<R>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<R>,
) -> Result<R> {
    conn.prepare_cached("PRAGMA synchronous = NORMAL")?
        .execute([])?;
    let r = f(conn);
    conn.prepare_cached("PRAGMA synchronous = FULL")?
        .execute([])?;
    r
}

/// SQLite's errors, made neutral: a full disk (`SQLITE_FULL`) is [`StoreError::StorageFull`],
/// anything else [`StoreError::Backend`] with the SQLite error as its source. (The conversion
/// lets the backend use `?`; nothing outside this crate sees a SQLite type.)
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                Self::StorageFull(e.to_string())
            }
            _ => Self::backend(e),
        }
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
