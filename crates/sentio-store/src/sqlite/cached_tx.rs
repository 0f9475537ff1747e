//! A write transaction whose statements are the connection's cached ones: rusqlite's
//! `Connection::transaction` parses them again at every use (`execute_batch`), which the
//! background work (a step per series) pays thousands of times a round. Same contract as
//! rusqlite's deferred transaction: dropped without [`CachedTx::commit`], it undoes its writes.
//!
//! It is a savepoint: on a connection with no transaction open it is a transaction of its own
//! (`SAVEPOINT` then behaves as `BEGIN DEFERRED`, `RELEASE` as `COMMIT`); inside an open one (the
//! maintenance pass's batch, `retention.rs`) it is nested, so a step that fails undoes only
//! itself and its "commit" becomes durable with the enclosing transaction.

use std::ops::Deref;

use rusqlite::Connection;

use crate::Result;

/// An open transaction on a connection; derefs to the connection for the statements in it.
pub(super) struct CachedTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> CachedTx<'c> {
    /// Begins a deferred transaction (as `Connection::transaction` does), or a nested one
    /// inside the transaction already open.
    pub(super) fn begin(conn: &'c mut Connection) -> Result<Self> {
        conn.prepare_cached("SAVEPOINT background_step")?
            .execute([])?;
        Ok(Self { conn, open: true })
    }

    /// Commits it (nested: keeps its writes in the enclosing transaction).
    pub(super) fn commit(mut self) -> Result<()> {
        self.conn
            .prepare_cached("RELEASE background_step")?
            .execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Deref for CachedTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for CachedTx<'_> {
    fn drop(&mut self) {
        // Not committed (an error on the way, or a failed COMMIT): undo what it wrote. A
        // failed rollback leaves SQLite to roll back itself once the statement errors out.
        if self.open && !self.conn.is_autocommit() {
            let rolled_back = self
                .conn
                .prepare_cached("ROLLBACK TO background_step")
                .and_then(|mut s| s.execute([]))
                .and_then(|_| self.conn.prepare_cached("RELEASE background_step"))
                .and_then(|mut s| s.execute([]));
            if let Err(e) = rolled_back {
                tracing::warn!(error = %e, "rolling back a background transaction failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_committed_transaction_keeps_its_writes_and_a_dropped_one_undoes_them() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let tx = CachedTx::begin(&mut conn).unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&conn), 1);
        {
            let tx = CachedTx::begin(&mut conn).unwrap();
            tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
            assert!(!tx.is_autocommit(), "inside a transaction");
        }
        assert_eq!(count(&conn), 1, "dropped without commit: rolled back");
        assert!(conn.is_autocommit());
        // The cached statements are reused: a second round works the same.
        let tx = CachedTx::begin(&mut conn).unwrap();
        tx.execute("INSERT INTO t VALUES (3)", []).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn inside_an_open_transaction_a_failed_step_undoes_only_itself() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let tx = CachedTx::begin(&mut conn).unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.commit().unwrap();
        assert!(
            !conn.is_autocommit(),
            "the enclosing transaction is still open"
        );
        {
            let tx = CachedTx::begin(&mut conn).unwrap();
            tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
        }
        assert!(
            !conn.is_autocommit(),
            "a dropped step leaves the enclosing one open"
        );
        assert_eq!(
            count(&conn),
            1,
            "the dropped step is undone, the kept one stays"
        );
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(
            count(&conn),
            0,
            "a nested step is durable only with its enclosing one"
        );
    }
}
