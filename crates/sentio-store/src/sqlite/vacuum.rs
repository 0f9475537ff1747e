//! Giving freed pages back: the database uses `auto_vacuum = INCREMENTAL`, and each maintenance
//! pass returns free pages to the file system once there are enough of them, in bounded steps.
//! Sealing moves head rows into chunks about thirty times smaller, and retention and erasure
//! delete; without this the file keeps its largest size forever (after a burst, 24 B per point
//! on disk for 2.7 B per point in use).

use std::path::Path;

use rusqlite::Connection;

use crate::Result;

/// Free pages kept for reuse rather than returned: below this many, nothing is done.
const KEEP_FREE_PAGES: i64 = 256;
/// Most pages returned by one pass (a write transaction; 32 MiB at 4 KiB pages).
const PAGES_PER_PASS: i64 = 8192;

/// Makes `conn`'s database incremental-vacuum. A new database just takes the setting; an
/// existing one without it is rewritten once (`VACUUM`), which needs free disk space about the
/// size of the database: when that fails, the database stays as it was and works as before.
pub(super) fn enable_incremental(conn: &Connection, path: &Path) -> Result<()> {
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if mode == 2 {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        return Ok(()); // a new database: the setting takes effect with its first table
    }
    tracing::info!(
        path = %path.display(),
        "rewriting the database once so that freed pages go back to the file system"
    );
    if let Err(e) = conn.execute_batch("VACUUM") {
        tracing::warn!(error = %e, "could not rewrite the database; freed pages stay in the file");
    }
    Ok(())
}

/// Returns free pages to the file system when there are more than [`KEEP_FREE_PAGES`], at most
/// [`PAGES_PER_PASS`] at a time, then checkpoints: the moved pages leave the log and the file
/// is cut to its new length (else the log would hold them and the directory grow meanwhile).
pub(super) fn reclaim(conn: &Connection) -> Result<()> {
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    if free <= KEEP_FREE_PAGES {
        return Ok(());
    }
    let n = (free - KEEP_FREE_PAGES / 2).min(PAGES_PER_PASS);
    // The pragma frees one page per step: it is stepped to the end, not executed once.
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({n})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}
