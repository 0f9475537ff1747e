//! Store errors, the same for every backend: a caller matches on what went wrong (a duplicate,
//! an unknown id, a full disk), never on the backend's own error type.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A device with this id is already registered.
    #[error("device {0:?} already exists")]
    DuplicateDevice(String),
    /// No such device.
    #[error("device {0:?} not found")]
    UnknownDevice(String),
    /// An API token with this name already exists.
    #[error("a token named {0:?} already exists")]
    DuplicateToken(String),
    /// No such API token.
    #[error("token {0:?} not found")]
    UnknownToken(String),
    /// A user with this name already exists.
    #[error("a user named {0:?} already exists")]
    DuplicateUser(String),
    /// No such user.
    #[error("user {0:?} not found")]
    UnknownUser(String),
    /// An edge with this id is already registered.
    #[error("edge {0:?} already exists")]
    DuplicateEdge(String),
    /// No such edge.
    #[error("edge {0:?} not found")]
    UnknownEdge(String),
    /// The request itself is invalid (bad range, bad step...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The store's disk (or file system quota) is full: nothing was half written, and new data
    /// cannot be taken until space returns. Carries the backend's message.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The backend refused for another reason (corruption, I/O, a lost connection); the
    /// backend's own error is the source.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Files around the database (data directory, permissions).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Stored JSON that could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A chunk could not be encoded (empty, unsorted or repeated timestamps).
    #[error("chunk codec: {0}")]
    Codec(String),
    /// A blocking task was cancelled (shutdown).
    #[error("store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether the store refused because its disk (or file system quota) is full: new data
    /// cannot be taken until space returns, and nothing was half written.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Self::StorageFull(_) => true,
            Self::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// A backend error with its source kept.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}
