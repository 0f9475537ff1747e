//! Whether the store can take new data.

use super::{Backend, point};

pub async fn a_healthy_store_is_not_full_and_has_free_space(backend: &impl Backend) {
    let s = backend.open();
    assert!(!s.health.is_full());
    s.series.append(&[point("h-1", "t", 0, 1.0)]).await.unwrap();
    assert!(
        !s.health.is_full(),
        "a write that succeeds leaves it healthy"
    );
    assert!(s.health.probe_free_space(1 << 20).await);
    assert!(!s.health.is_full());
}
