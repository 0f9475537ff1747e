//! Backup and restore of a whole data directory as one file, while a node runs.
//!
//! The backup is itself an SQLite database: a consistent snapshot of `sentio.db` taken with
//! `VACUUM INTO` (one read transaction, so it sees exactly the commits before it began, never
//! half of one, and does not block the running node's writer in WAL mode), plus two tables
//! added to the snapshot: `sentio_backup_files` with every other file of the data directory (the
//! broker's sessions, queues and retained messages, the admin token, TLS keys) and
//! `sentio_backup_meta`. The broker's files are copied as they are at that moment; a message
//! queued while the backup runs may be in it or not.
//!
//! Restore writes the snapshot back as `sentio.db` and the files beside it, into a data
//! directory that holds no database yet.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};

use crate::sqlite::DB_FILE;
use crate::{Result, StoreError};

/// Format version written into `sentio_backup_meta`.
const FORMAT: &str = "sentio-backup-1";

/// Files of the data directory that are never copied: the live database (snapshotted instead)
/// and the lock.
fn skipped(name: &str) -> bool {
    name == DB_FILE
        || name == format!("{DB_FILE}-wal")
        || name == format!("{DB_FILE}-shm")
        || name == format!("{DB_FILE}-journal")
        || name == "sentio.lock"
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a backup or restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Size of the database snapshot (bytes).
    pub database_bytes: u64,
    /// Other files copied.
    pub files: usize,
    /// Their total size (bytes).
    pub file_bytes: u64,
}

/// Writes a backup of the data directory `data` to `to` (which must not exist).
pub fn backup(data: &Path, to: &Path) -> Result<BackupReport> {
    let db = data.join(DB_FILE);
    if !db.exists() {
        return Err(StoreError::InvalidQuery(format!(
            "{} holds no Sentio database ({DB_FILE})",
            data.display()
        )));
    }
    if to.exists() {
        return Err(StoreError::InvalidQuery(format!(
            "{} already exists; choose a new file",
            to.display()
        )));
    }
    let tmp = partial(to);
    let _ = std::fs::remove_file(&tmp);
    let result = write_backup(&db, data, &tmp);
    match result {
        Ok(report) => {
            std::fs::rename(&tmp, to).map_err(io(to))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The file a backup is written to before it is complete.
fn partial(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}

fn write_backup(db: &Path, data: &Path, out: &Path) -> Result<BackupReport> {
    {
        let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.busy_timeout(std::time::Duration::from_secs(30))?;
        src.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
    }
    let database_bytes = std::fs::metadata(out).map_err(io(out))?.len();
    let mut conn = Connection::open(out)?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE sentio_backup_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE sentio_backup_files (path TEXT PRIMARY KEY, mode INTEGER NOT NULL,
                                           content BLOB NOT NULL);",
    )?;
    tx.execute(
        "INSERT INTO sentio_backup_meta (key, value) VALUES ('format', ?1), ('created_ms', ?2)",
        params![FORMAT, sentio_core::time::now_ms().to_string()],
    )?;
    let mut report = BackupReport {
        database_bytes,
        files: 0,
        file_bytes: 0,
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = data.join(&rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // A directory the broker removed meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let rel_path = rel.join(&name);
            if rel.as_os_str().is_empty() && skipped(&name.to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            if path == out || path == partial(out) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            if meta.is_dir() {
                stack.push(rel_path);
            } else if meta.is_file() {
                let content = match std::fs::read(&path) {
                    Ok(c) => c,
                    // A queued message delivered (and its file removed) while we walked.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(&path)(e)),
                };
                report.files += 1;
                report.file_bytes += content.len() as u64;
                tx.execute(
                    "INSERT INTO sentio_backup_files (path, mode, content) VALUES (?1, ?2, ?3)",
                    params![
                        rel_path.to_string_lossy(),
                        i64::from(file_mode(&meta)),
                        content
                    ],
                )?;
            }
        }
    }
    tx.commit()?;
    Ok(report)
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn file_mode(_: &std::fs::Metadata) -> u32 {
    0o600
}

/// Restores the backup `from` into the data directory `data`, which must not hold a database.
pub fn restore(from: &Path, data: &Path) -> Result<BackupReport> {
    if data.join(DB_FILE).exists() {
        return Err(StoreError::InvalidQuery(format!(
            "{} already holds a Sentio database; restore into a new data directory",
            data.display()
        )));
    }
    let files = {
        let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError::InvalidQuery(format!("{}: {e}", from.display())))?;
        let format: String = src
            .query_row(
                "SELECT value FROM sentio_backup_meta WHERE key = 'format'",
                [],
                |r| r.get(0),
            )
            .map_err(|_| {
                StoreError::InvalidQuery(format!("{} is not a Sentio backup", from.display()))
            })?;
        if format != FORMAT {
            return Err(StoreError::InvalidQuery(format!(
                "{} is a backup in format {format:?}; this Sentio reads {FORMAT:?}",
                from.display()
            )));
        }
        let mut stmt = src.prepare("SELECT path, mode, content FROM sentio_backup_files")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    std::fs::create_dir_all(data).map_err(io(data))?;
    let mut report = BackupReport {
        database_bytes: 0,
        files: 0,
        file_bytes: 0,
    };
    for (rel, mode, content) in files {
        let rel = Path::new(&rel);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(StoreError::Corrupt(format!(
                "backup names a file outside the data directory: {}",
                rel.display()
            )));
        }
        let path = data.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &content).map_err(io(&path))?;
        set_mode(&path, mode as u32)?;
        report.files += 1;
        report.file_bytes += content.len() as u64;
    }
    // The database last: a restore cut short leaves no database, so it can simply be rerun.
    let db = data.join(DB_FILE);
    let tmp = partial(&db);
    std::fs::copy(from, &tmp).map_err(io(&tmp))?;
    {
        let conn = Connection::open(&tmp)?;
        conn.execute_batch(
            "DROP TABLE sentio_backup_files; DROP TABLE sentio_backup_meta; VACUUM;",
        )?;
        // A restored directory is a new life of the node: its next open gives it a new
        // incarnation, so the cloud takes the batches it sends again (with sequence numbers it
        // may have used before the backup's time) as new, not as duplicates.
        conn.execute(
            "DELETE FROM meta WHERE key = ?1",
            [crate::sqlite::INCARNATION_KEY],
        )?;
    }
    report.database_bytes = std::fs::metadata(&tmp).map_err(io(&tmp))?.len();
    std::fs::rename(&tmp, &db).map_err(io(&db))?;
    Ok(report)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<()> {
    Ok(())
}
