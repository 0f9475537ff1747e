//! The file's pages: their size, chosen when the database is created, and giving freed ones
//! back. The database uses `auto_vacuum = INCREMENTAL`, and each maintenance pass returns free
//! pages to the file system once there are enough of them, in bounded steps. Sealing moves
//! head rows into chunks about thirty times smaller, and retention and erasure delete; without
//! this the file keeps its largest size forever (after a burst, 24 B per point on disk for
//! 2.7 B per point in use).

use std::path::Path;

use rusqlite::Connection;

use crate::Result;

/// Page size of a new database. A sealed chunk row is ~1.1-1.2 KB: a 4 KiB page holds three
/// (84 % used, 1.35 B per point for 1.14 of payload), an 8 KiB page six or seven (91 %).
/// Larger pages would pack chunks a little tighter but make every small commit (an append of
/// a few points, a presence touch) write more to the log.
pub(super) const PAGE_SIZE: i64 = 8192;
/// Free bytes kept for reuse rather than returned: below this, nothing is done.
const KEEP_FREE_BYTES: i64 = 1 << 20;
/// Most bytes returned by one pass (a write transaction).
const BYTES_PER_PASS: i64 = 32 << 20;

/// Gives a new database [`PAGE_SIZE`] pages. Must run before anything reads or writes the file
/// (SQLite fixes the size with the first write, and a database in WAL mode keeps its size for
/// good). An existing database keeps the size it was made with: rewriting it (`VACUUM` after
/// leaving WAL mode) would hold the start for minutes on a large file and need its size again
/// in free disk space, for a few percent of the chunks' pages.
pub(super) fn set_page_size(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    Ok(())
}

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

/// Returns free pages to the file system when they hold more than [`KEEP_FREE_BYTES`], at most
/// [`BYTES_PER_PASS`] at a time, then checkpoints: the moved pages leave the log and the file
/// is cut to its new length (else the log would hold them and the directory grow meanwhile).
pub(super) fn reclaim(conn: &Connection) -> Result<()> {
    // Run at every maintenance pass: cached statements, not re-parsed pragmas.
    let pragma =
        |sql: &str| -> Result<i64> { Ok(conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?) };
    let (free, page) = (
        pragma("PRAGMA freelist_count")?,
        pragma("PRAGMA page_size")?,
    );
    let keep = KEEP_FREE_BYTES / page.max(512);
    if free <= keep {
        return Ok(());
    }
    let n = (free - keep / 2).min(BYTES_PER_PASS / page.max(512));
    // The pragma frees one page per step: it is stepped to the end, not executed once.
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({n})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{DB_FILE, SqliteStore};

    fn page_size(store: &SqliteStore) -> i64 {
        let conn = store.inner.conn.lock().unwrap();
        conn.pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_database_takes_the_page_size_and_an_older_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            page_size(&SqliteStore::open(dir.path()).unwrap()),
            PAGE_SIZE
        );
        assert_eq!(
            page_size(&SqliteStore::open(dir.path()).unwrap()),
            PAGE_SIZE
        );

        // A data directory made with 4 KiB pages (WAL mode, as every earlier version left it)
        // opens as it is, with its data.
        let old = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(old.path().join(DB_FILE)).unwrap();
            c.pragma_update(None, "page_size", 4096).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                 INSERT INTO meta (key, value) VALUES ('kept', x'01');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(old.path()).unwrap();
        assert_eq!(page_size(&store), 4096);
        let kept: Vec<u8> = store
            .inner
            .conn
            .lock()
            .unwrap()
            .query_row("SELECT value FROM meta WHERE key = 'kept'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, vec![1]);
    }
}
