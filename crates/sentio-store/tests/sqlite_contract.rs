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

/// An edge with the aggregates policy and its cloud, two stores.
#[tokio::test]
async fn an_aggregates_edge_sends_each_rolled_minute_once_and_the_cloud_answers_from_it() {
    contract::edges::an_aggregates_edge_sends_each_rolled_minute_once_and_the_cloud_answers_from_it(
        &Sqlite::new(),
        &Sqlite::new(),
    )
    .await;
}

/// A restored backup is a new life of the node: a new incarnation, the same outbox.
#[tokio::test]
async fn a_restored_backup_is_a_new_incarnation_with_the_same_outbox() {
    use sentio_store::{BatchSeq, Lane, OutboxStore, SeriesStore};
    let dir = tempfile::tempdir().unwrap();
    let (data, restored, file) = (
        dir.path().join("data"),
        dir.path().join("restored"),
        dir.path().join("backup.db"),
    );
    let (before, pending) = {
        let store = SqliteStore::open(&data).unwrap();
        store.enable_outbox();
        store
            .append(&[contract::point("d1", "m", 1_000, 1.5)])
            .await
            .unwrap();
        let status = store.outbox_status().await.unwrap();
        let pending = store
            .outbox_batches(Lane::Backlog, BatchSeq(0), 10, 100)
            .await
            .unwrap();
        (status, pending)
    };
    sentio_store::backup(&data, &file).unwrap();
    sentio_store::restore(&file, &restored).unwrap();
    let again = SqliteStore::open(&data)
        .unwrap()
        .outbox_status()
        .await
        .unwrap();
    assert_eq!(
        again.incarnation, before.incarnation,
        "a reopen is the same life"
    );
    let store = SqliteStore::open(&restored).unwrap();
    let after = store.outbox_status().await.unwrap();
    assert_ne!(after.incarnation, before.incarnation);
    assert_eq!((after.acked, after.last), (before.acked, before.last));
    assert_eq!(
        store
            .outbox_batches(Lane::Backlog, BatchSeq(0), 10, 100)
            .await
            .unwrap(),
        pending
    );
}
