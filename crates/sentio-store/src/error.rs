//! Store errors.

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
    /// The request itself is invalid (bad range, bad step...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The database refused (disk full, corruption, I/O).
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
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
            Self::Database(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            Self::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }
}
