//! `StorageHealth` on SQLite: the store marks itself full when a write of new data fails with
//! `SQLITE_FULL` (or an I/O "no space" error) and clears the mark itself when such a write
//! succeeds again or a probe file of the asked size fits in the data directory.

use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{Inner, SqliteStore};
use crate::{Result, StorageHealth};

/// Name of the probe file written into the data directory while the disk is full.
const PROBE_FILE: &str = ".space-probe";

impl Inner {
    /// Notes how a write of new data went: a refusal for lack of space marks the store full,
    /// a success clears the mark. Other failures say nothing about space.
    pub(super) fn note_write<R>(&self, result: &Result<R>) {
        match result {
            Ok(_) => self.clear_full(),
            Err(e) if e.is_storage_full() => self.full.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
    }

    fn clear_full(&self) {
        if self.full.swap(false, Ordering::Relaxed) {
            tracing::info!("the store takes data again (disk space returned)");
        }
    }
}

#[async_trait]
impl StorageHealth for SqliteStore {
    fn is_full(&self) -> bool {
        self.inner.full.load(Ordering::Relaxed)
    }

    /// Writes, syncs and removes a file of `bytes` in the data directory. A small database
    /// write would prove little, since SQLite reuses the space of its write-ahead log.
    async fn probe_free_space(&self, bytes: usize) -> bool {
        let inner = self.inner.clone();
        let probe = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let path = inner.data_dir().join(PROBE_FILE);
            let written = std::fs::File::create(&path).and_then(|mut f| {
                f.write_all(&vec![0u8; bytes])?;
                f.sync_all()
            });
            let _ = std::fs::remove_file(&path);
            let free = written.is_ok();
            if free {
                inner.clear_full();
            }
            free
        });
        probe.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sentio_core::{DeviceId, Point};

    use super::*;
    use crate::{SeriesStore, StoreError};

    fn points(from: i64, n: i64) -> Vec<Point> {
        let device = DeviceId::parse("d1").unwrap();
        (from..from + n)
            .map(|i| Point {
                device: device.clone(),
                metric: Arc::from("t"),
                ts_ms: i * 1000,
                value: i as f64,
            })
            .collect()
    }

    /// Sets the largest size the database file may grow to, in pages.
    fn max_pages(store: &SqliteStore, pages: i64) {
        let conn = store.inner.lock();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
    }

    #[tokio::test]
    async fn a_write_refused_for_space_marks_the_store_full_until_a_write_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.append(&points(0, 10)).await.unwrap();
        assert!(!store.is_full());
        // A database that may not grow behaves as a full disk: SQLITE_FULL.
        let used: i64 = {
            let conn = store.inner.lock();
            conn.query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap()
        };
        max_pages(&store, used);
        let err = store.append(&points(10, 50_000)).await.unwrap_err();
        assert!(matches!(err, StoreError::StorageFull(_)), "{err:?}");
        assert!(err.is_storage_full());
        assert!(store.is_full());
        // Other failures say nothing about space.
        let bad = store.query(crate::RangeQuery {
            device: DeviceId::parse("d1").unwrap(),
            metric: "t".into(),
            from_ms: 10,
            to_ms: 0,
            step: None,
            limit: 10,
        });
        assert!(bad.await.is_err());
        assert!(store.is_full());

        max_pages(&store, 1 << 30);
        store.append(&points(10, 50_000)).await.unwrap();
        assert!(!store.is_full(), "a good write clears the mark");
    }

    #[tokio::test]
    async fn a_probe_that_fits_clears_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.inner.full.store(true, Ordering::Relaxed);
        assert!(store.probe_free_space(1 << 16).await);
        assert!(!store.is_full());
        assert!(
            !dir.path().join(PROBE_FILE).exists(),
            "the probe is removed"
        );
    }
}
