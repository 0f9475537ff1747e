//! Where Sentio keeps things: the device registry, the time series, alerts and detector state.
//!
//! Everything above this crate talks to the traits ([`DeviceRegistry`], [`SeriesStore`],
//! [`AlertStore`], [`EventStore`], [`TokenStore`], [`UserStore`], [`AuditStore`], [`RetentionStore`],
//! [`RuleStore`], [`CommandStore`], [`TwinStore`], and for
//! the node [`Maintenance`] and [`StorageHealth`]), usually bundled as [`Stores`], never to
//! SQLite: the embedded default ([`SqliteStore`]) lives here, and a scale-out backend
//! (PostgreSQL) will implement the same traits and pass the same contract tests
//! (`tests/contract/`). Errors are one neutral [`StoreError`] for every backend; a full disk is
//! [`StoreError::StorageFull`], and the store alone keeps the "disk full" state
//! ([`StorageHealth::is_full`]). Device secrets are stored only as keyed BLAKE3 digests
//! ([`secret`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use sentio_core::DeviceId;
//! use sentio_store::{DeviceRegistry, NewDevice, SqliteStore};
//! let dir = std::env::temp_dir().join(format!("sentio-doc-{}", std::process::id()));
//! let store = SqliteStore::open(&dir).unwrap();
//! let (dev, secret) = store.create_device(NewDevice::new("pump-1")).await.unwrap();
//! let id = DeviceId::parse("pump-1").unwrap();
//! assert!(store.verify_secret(&id, &secret));
//! assert!(!store.verify_secret(&id, "guess"));
//! # drop(dev); std::fs::remove_dir_all(&dir).ok();
//! # });
//! ```

#![deny(missing_docs)]

mod backup;
pub mod chunk;
pub mod edge;
mod error;
pub mod labels;
mod model;
pub mod resync;
pub mod secret;
mod sqlite;
mod stored_form;
mod stores;
mod traits;
pub mod user;
pub mod wire;

pub use backup::{BackupReport, backup, restore};
pub use edge::{
    Applied, BatchSeq, EDGE_USERNAME_PREFIX, Edge, EdgeProgress, Incarnation, Lane, LaneCounts,
    LaneStatus, OutboxBatch, OutboxCounts, OutboxStatus, PART_POINTS, RegistryApplied, RollupBatch,
    SeriesRollups, UplinkBatch, UplinkPolicy, UplinkRollups, WindowRecorded, edge_username,
};
pub use error::StoreError;
pub use model::{
    Agg, AlertFilter, AlertGroup, ApiToken, AuditEntry, AuditFilter, BandRow, ChannelStats, Device,
    DeviceUpdate, MaintenanceReport, NewAudit, NewDevice, NewMessage, NewSilence, NewToken,
    OutboxMessage, RAW_RETENTION_FLOOR_MS, RangeQuery, RangeResult, Resolution, RetentionPolicy,
    RollupRow, Scope, SeriesInfo, StorageStatus, TOKEN_USERNAME_PREFIX,
};
pub use resync::{
    Compared, HourKey, HourSum, ResyncFigures, ResyncPart, ResyncRequest, ResyncRun, ResyncState,
    SeriesHours,
};
pub use sqlite::{DB_FILE, DiskUsage, RollupStats, SealPolicy, SealReport, SqliteStore, TierStats};
pub use stores::Stores;
pub use traits::{
    AlertStore, AuditStore, CommandStore, DesiredChange, DeviceRegistry, EdgeStore, EventStore,
    Maintenance, NotifyStore, OutboxStore, RetentionStore, RuleStore, SeriesStore, StorageHealth,
    TokenStore, TwinStore, UserStore,
};
pub use user::{
    DeviceScope, NewUser, NewUserToken, Role, Session, SessionSecrets, USER_TOKEN_PREFIX, User,
    UserToken, csrf_token,
};

/// Events kept per device and metric (older ones are dropped as new ones arrive).
pub const EVENT_HISTORY: usize = 1_000;

/// Result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
