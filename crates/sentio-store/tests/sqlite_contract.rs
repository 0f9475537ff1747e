//! The store contract (`contract/`) on the embedded store: every test goes through the traits
//! only, as it would for any other backend.

mod contract;

use std::sync::Arc;

use sentio_store::{SqliteStore, Stores};

/// A fresh embedded store in a temporary directory.
struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl contract::Backend for Sqlite {
    fn open(&self) -> Stores {
        Stores::of(Arc::new(SqliteStore::open(self.0.path()).unwrap()))
    }
}

contract::store_contract!(Sqlite::new());
