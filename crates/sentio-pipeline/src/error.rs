//! Pipeline errors.

/// Why the pipeline could not take or process something.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed (disk full, I/O); the points were not acknowledged.
    #[error("storage failed: {0}")]
    Store(#[from] sentio_store::StoreError),
    /// The store's disk is full: nothing was stored or acknowledged; retry once space returns.
    #[error("the store is full (no space left on its disk): {0}")]
    StorageFull(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The thing asked about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be applied as asked.
    #[error("{0}")]
    Invalid(String),
    /// A bound was reached (e.g. open commands per device); retry once some are done.
    #[error("{0}")]
    TooMany(String),
    /// A change made against a version that is no longer current; the current version.
    #[error("the version is now {0}")]
    VersionMismatch(u64),
    /// The result would be larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// A stage's thread could not be started.
    #[error("could not start a pipeline stage: {0}")]
    StageThread(#[from] std::io::Error),
    /// Nothing in the payload could be accepted.
    #[error("nothing accepted: {0}")]
    Rejected(String),
}
