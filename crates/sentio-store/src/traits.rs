//! The seams: what the rest of Sentio may ask of a store. Nothing above these traits may assume
//! SQLite. Every backend passes the same contract tests (`tests/contract/`), written once
//! against these traits.

use std::sync::Arc;

use async_trait::async_trait;
use sentio_core::acl::AclRule;
use sentio_core::{
    Alert, Command, CommandId, CommandState, DeviceId, Point, Rule, RuleId, SeriesKey, TextEvent,
    Twin,
};

use crate::user::{
    DeviceScope, NewUser, NewUserToken, Role, Session, SessionSecrets, User, UserToken,
};
use crate::{
    AlertFilter, AlertGroup, ApiToken, AuditEntry, AuditFilter, BandRow, ChannelStats, Device,
    DeviceUpdate, MaintenanceReport, NewAudit, NewDevice, NewMessage, NewSilence, NewToken,
    OutboxMessage, RangeQuery, RangeResult, Resolution, Result, RetentionPolicy, RollupRow, Scope,
    SeriesInfo, StorageStatus,
};

/// Devices and their credentials.
#[async_trait]
pub trait DeviceRegistry: Send + Sync {
    /// Registers a device; returns it with its new secret (shown once, stored only as a digest).
    async fn create_device(&self, new: NewDevice) -> Result<(Device, String)>;
    /// One device.
    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>>;
    /// All devices, by id.
    async fn list_devices(&self) -> Result<Vec<Device>>;
    /// Removes the device and its credential. With `erase`, also every point, series, alert and
    /// detector state of it. Returns what was removed, by kind, or `UnknownDevice`.
    async fn delete_device(&self, id: &DeviceId, erase: bool) -> Result<Vec<(String, u64)>>;
    /// Replaces a device's secret with a new one, returned once.
    async fn rotate_secret(&self, id: &DeviceId) -> Result<String>;
    /// Constant-time check of a device's secret. Hot path (every CONNECT): answered from memory.
    fn verify_secret(&self, id: &DeviceId, secret: &str) -> bool;
    /// Whether the device is registered. Answered from memory.
    fn is_registered(&self, id: &DeviceId) -> bool;
    /// Records when devices were last seen.
    async fn touch(&self, seen: &[(DeviceId, i64)]) -> Result<()>;
    /// Records that part of what a device sent was refused, and why.
    async fn record_rejection(&self, id: &DeviceId, ts_ms: i64, reason: &str) -> Result<()>;
    /// Renames a device and sets or removes labels, atomically; returns the device as changed,
    /// or `UnknownDevice`. The resulting labels are validated ([`crate::labels::validate`]).
    async fn update_device(&self, id: &DeviceId, update: DeviceUpdate) -> Result<Device>;
    /// Devices whose labels hold every pair of `selector`, by id.
    async fn devices_with_labels(
        &self,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Device>>;
}

/// Time series.
#[async_trait]
pub trait SeriesStore: Send + Sync {
    /// Stores points durably: when this returns `Ok`, the points survive a crash. A point with
    /// the same series and timestamp as a stored one replaces it.
    async fn append(&self, points: &[Point]) -> Result<()>;
    /// Every metric of a device with its latest value.
    async fn series(&self, device: &DeviceId) -> Result<Vec<SeriesInfo>>;
    /// The names of every series the store holds for a device, with or without points left
    /// (cheap: what the pipeline counts against the per-device series limit).
    async fn metric_names(&self, device: &DeviceId) -> Result<Vec<String>>;
    /// Raw or aggregated points of one series.
    async fn query(&self, q: RangeQuery) -> Result<RangeResult>;
    /// One series over `[from_ms, to_ms)` drawn at about `points` points for a chart, keeping
    /// its shape (per time bucket, the lowest and the highest point, in time order); every point
    /// when the range holds no more than `points`.
    async fn downsample(
        &self,
        device: &DeviceId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
        points: usize,
    ) -> Result<RangeResult>;
    /// As [`SeriesStore::query`], saying which resolution answered: a step aggregate over a
    /// range whose raw points have expired is answered from the rollups.
    async fn query_resolved(&self, q: RangeQuery) -> Result<(RangeResult, Resolution)> {
        Ok((self.query(q).await?, Resolution::Raw))
    }
    /// As [`SeriesStore::downsample`], saying which resolution answered (rollups where raw
    /// points have expired).
    async fn downsample_resolved(
        &self,
        device: &DeviceId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
        points: usize,
    ) -> Result<(RangeResult, Resolution)> {
        let r = self
            .downsample(device, metric, from_ms, to_ms, points)
            .await?;
        Ok((r, Resolution::Raw))
    }
    /// Rollup rows (1-minute or 1-hour) of one series from `from_ms` on, at most `limit`, in
    /// bucket order (export; a store without rollups has none).
    async fn rollups(
        &self,
        _device: &DeviceId,
        _metric: &str,
        _resolution: Resolution,
        _from_ms: i64,
        _limit: usize,
    ) -> Result<Vec<RollupRow>> {
        Ok(Vec::new())
    }
    /// Adds the AI engine's bands of scored points, per series and 1-minute bucket, to those
    /// kept ([`BandRow::merge`] with a bucket's earlier parts). Bands of a series the store
    /// does not hold (its device was deleted) or older than its 1-minute rollups' expiry are
    /// dropped; kept bands expire with the 1-minute rollups and are erased with the device.
    async fn save_bands(&self, bands: Vec<(SeriesKey, BandRow)>) -> Result<()>;
    /// The bands of one series over `[from_ms, to_ms)` in bucket order, merged into buckets of
    /// whole minutes so that there are at most `buckets` of them; `None` for a series the
    /// store does not hold.
    async fn bands(
        &self,
        series: &SeriesKey,
        from_ms: i64,
        to_ms: i64,
        buckets: usize,
    ) -> Result<Option<Vec<BandRow>>>;
    /// Saved detector state of every series, as `(device, metric, state)`.
    async fn load_detector_states(&self) -> Result<Vec<(String, String, String)>>;
    /// Saves detector states (opaque JSON) so a restart needs no relearning.
    async fn save_detector_states(&self, states: Vec<(String, String, String)>) -> Result<()>;
}

/// Alerts.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Inserts (id 0) or updates an alert; returns its id.
    async fn save_alert(&self, alert: &Alert) -> Result<i64>;
    /// Inserts or updates each alert, in order, in one transaction (one commit for all of a
    /// batch's alerts); returns their ids in the same order.
    async fn save_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<i64>>;
    /// Alerts matching the filter, newest first.
    async fn list_alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>>;
    /// One alert, with its feedback.
    async fn get_alert(&self, id: i64) -> Result<Option<Alert>>;
    /// Records (or replaces) a user's feedback on an alert.
    async fn save_feedback(&self, id: i64, feedback: &sentio_core::Feedback) -> Result<()>;
    /// Records who acknowledged alert `id` (the first acknowledgement stays); returns the
    /// acknowledgement in force, `None` for an unknown alert.
    async fn acknowledge(
        &self,
        id: i64,
        ack: &sentio_core::Ack,
    ) -> Result<Option<sentio_core::Ack>>;
    /// Records who resolved alert `id` by hand (its state is saved with [`Self::save_alert`]).
    async fn set_resolved_by(&self, id: i64, by: &str) -> Result<()>;
    /// Adds a comment to alert `id`; `false` for an unknown alert.
    async fn add_comment(&self, id: i64, comment: &sentio_core::Comment) -> Result<bool>;
    /// The comments on alert `id`, oldest first.
    async fn comments(&self, id: i64) -> Result<Vec<sentio_core::Comment>>;
}

/// Text readings (`"state": "running"`), kept as events: the latest per metric and a bounded
/// history, not series.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores events durably (as [`SeriesStore::append`]: survived a crash once `Ok`). The same
    /// device, metric and timestamp keeps the last text; per device and metric only the newest
    /// [`crate::EVENT_HISTORY`] are kept.
    async fn append_events(&self, events: &[TextEvent]) -> Result<()>;
    /// A device's events, newest first, of one metric or all, at most `limit`.
    async fn events(
        &self,
        device: &DeviceId,
        metric: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextEvent>>;
}

/// Scoped API tokens (MQTT identities for integrations).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates a token; returns it with its password (shown once, stored only as a digest).
    /// The name must be unique and the ACL valid and not empty.
    async fn create_token(&self, new: NewToken) -> Result<(ApiToken, String)>;
    /// All tokens, oldest first (no passwords).
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    /// Revokes a token; returns it, or `UnknownToken`.
    async fn delete_token(&self, id: &str) -> Result<ApiToken>;
    /// Constant-time check of a token's MQTT credentials; on success, its ACL. Hot path (every
    /// CONNECT): answered from memory.
    fn verify_token(&self, username: &str, password: &str) -> Option<Arc<[AclRule]>>;
    /// The ACL of a live token by its MQTT username, `None` once revoked. Hot path (every
    /// PUBLISH of a token's client): answered from memory.
    fn token_acl(&self, username: &str) -> Option<Arc<[AclRule]>>;
    /// Constant-time check of a token's credentials presented over HTTP; on success, its
    /// scopes (possibly none). Answered from memory.
    fn token_scopes(&self, username: &str, password: &str) -> Option<Arc<[Scope]>>;
}

/// The audit log: who changed what. Erasing a device anonymises its entries (the
/// [`DeviceRegistry::delete_device`] implementation records the erasure itself, in the same
/// transaction).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry.
    async fn record(&self, entry: NewAudit) -> Result<()>;
    /// Entries, newest first.
    async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>>;
}

/// People: user accounts with roles, and their browser sessions ([`crate::user`]). Passwords
/// are kept only as Argon2id hashes, sessions only as digests of their ids.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user (name and password checked, the password hashed); `DuplicateUser` if the
    /// name is taken.
    async fn create_user(&self, new: NewUser) -> Result<User>;
    /// One user.
    async fn get_user(&self, name: &str) -> Result<Option<User>>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Changes a user's role (its sessions have the new role at once); `UnknownUser`; refused
    /// (`InvalidQuery`) to make a scoped user an admin.
    async fn set_role(&self, name: &str, role: Role) -> Result<User>;
    /// Sets a user's device scope (its sessions and tokens have it at once); `UnknownUser`;
    /// refused (`InvalidQuery`) on an admin.
    async fn set_scope(&self, name: &str, scope: DeviceScope) -> Result<User>;
    /// Sets a user's password (checked, hashed) and ends every session of it; `UnknownUser`.
    async fn set_password(&self, name: &str, password: &str) -> Result<User>;
    /// Disables a user (it cannot sign in, and every session of it ends) or enables it again;
    /// `UnknownUser`.
    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<User>;
    /// Removes a user and every session of it; `UnknownUser`.
    async fn delete_user(&self, name: &str) -> Result<User>;
    /// The user if `password` is its password; `None` for a wrong password or an unknown name
    /// (which take the same time).
    async fn check_password(&self, name: &str, password: &str) -> Result<Option<User>>;
    /// Opens a session of `name` lasting `ttl_ms`; its secrets are returned once.
    async fn create_session(&self, name: &str, ttl_ms: i64) -> Result<SessionSecrets>;
    /// The live session with this id as of `now_ms` (`None` if unknown or expired).
    async fn session(&self, id: &str, now_ms: i64) -> Result<Option<Session>>;
    /// Ends a session; whether it existed.
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// Creates a personal API token of an enabled user, with a role at most the user's;
    /// returns it with its secret (shown once, kept only as a keyed digest). `UnknownUser`,
    /// `DuplicateToken` (its name among the user's), `InvalidQuery` (name, role, expiry,
    /// more than [`crate::user::MAX_TOKENS_PER_USER`]).
    async fn create_user_token(&self, new: NewUserToken) -> Result<(UserToken, String)>;
    /// A user's personal API tokens, oldest first (expired ones too, until revoked).
    async fn user_tokens(&self, user: &str) -> Result<Vec<UserToken>>;
    /// Revokes one of `user`'s tokens; `UnknownToken` if it has none with this id.
    async fn delete_user_token(&self, user: &str, id: &str) -> Result<UserToken>;
    /// Who a personal token acts for as of `now_ms`: its user with the lower of the two roles
    /// and the user's scope ([`crate::user::token_user`]), and the token. `None` for a wrong
    /// secret, an unknown or expired token, or a disabled or deleted user.
    async fn user_token_caller(
        &self,
        id: &str,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<(User, UserToken)>>;
}

/// Retention, rollups and the disk budget.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// The retention policy in force (the default until one is set).
    async fn retention(&self) -> Result<RetentionPolicy>;
    /// Replaces the retention policy (validated, kept in the store); the next maintenance
    /// pass applies it.
    async fn set_retention(&self, policy: RetentionPolicy) -> Result<()>;
    /// One bounded maintenance pass as of `now_ms`: rollups of what arrived, late points folded
    /// in, expired raw points and rollups removed, the oldest raw points removed while over the
    /// disk budget. Short transactions; call again while `more`.
    async fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport>;
    /// Size on disk against the budget.
    async fn storage(&self) -> Result<StorageStatus>;
}

/// The store's background upkeep, which the node runs every few seconds: what a backend needs
/// done besides answering requests.
#[async_trait]
pub trait Maintenance: RetentionStore {
    /// Sets the disk budget of the store's data (`None`: no budget); the next maintenance pass
    /// keeps to it ([`RetentionStore::maintain`]), counting the store's own files only: other
    /// files in the data directory (the broker's state) are never a reason to remove points.
    fn set_disk_budget(&self, bytes: Option<u64>);
    /// Stops background work for good: a [`Maintenance::seal_round`] or
    /// [`Maintenance::maintenance_round`] running now returns at its next safe point (between
    /// transactions: nothing half done, every stored point kept), within moments whatever the
    /// number of series, and later rounds (and [`RetentionStore::maintain`] passes) return at
    /// once with nothing done; the work resumes when the store is opened again. The node calls
    /// it when it stops. Appends and reads are not affected.
    fn interrupt(&self);
    /// Moves recently written points into their long-term form (the embedded store seals its
    /// head into compressed chunks), in bounded steps that yield between them, until nothing is
    /// ready. Reads answer the same before and after. A backend without such a form does
    /// nothing.
    async fn seal_round(&self) -> Result<()>;
    /// How many points of one series over `[from_ms, to_ms)` still wait for
    /// [`Maintenance::seal_round`]; always 0 for a backend that writes points in their
    /// long-term form at once.
    async fn unsealed_points(
        &self,
        device: &DeviceId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<u64>;
    /// Runs maintenance passes ([`RetentionStore::maintain`]) as of now until one has nothing
    /// more to do, yielding between them.
    async fn maintenance_round(&self) -> Result<()> {
        loop {
            let report = self.maintain(sentio_core::time::now_ms()).await?;
            // An interrupted store reports no more work (see `Maintenance::interrupt`).
            if !report.more {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Whether the store can take new data. The store alone owns its "disk full" state: every
/// layer above (ingest, HTTP, MQTT, metrics) asks [`StorageHealth::is_full`] instead of keeping
/// a flag of its own.
#[async_trait]
pub trait StorageHealth: Send + Sync {
    /// Whether the store's disk is full: a write of new data ([`SeriesStore::append`],
    /// [`EventStore::append_events`]) failed with [`crate::StoreError::StorageFull`], and
    /// neither such a write nor [`StorageHealth::probe_free_space`] has succeeded since. Hot
    /// path (every MQTT 5 publish): answered from memory.
    fn is_full(&self) -> bool;
    /// Whether `bytes` are free for the store's data again, checked without touching stored
    /// data (the embedded store writes, syncs and removes a file of that size). When they are,
    /// the store is no longer full.
    async fn probe_free_space(&self, bytes: usize) -> bool;
}

/// Users' rules, kept whole: the detect stage compiles them, the API validates them first.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Creates or replaces the rule with `rule.id`; `true` if it was new.
    async fn put_rule(&self, rule: &Rule) -> Result<bool>;
    /// One rule.
    async fn get_rule(&self, id: &RuleId) -> Result<Option<Rule>>;
    /// Every rule, by id.
    async fn list_rules(&self) -> Result<Vec<Rule>>;
    /// Removes a rule; `false` if there was none.
    async fn delete_rule(&self, id: &RuleId) -> Result<bool>;
}

/// Commands to devices: kept from acceptance to their end, and after it as history, so that a
/// restart loses none and an offline device gets them when it comes back.
#[async_trait]
pub trait CommandStore: Send + Sync {
    /// Keeps a new pending command, unless its device already has `max_open` open ones
    /// (pending or delivered): then nothing is stored and the answer is `false`.
    async fn add_command(&self, command: &Command, max_open: usize) -> Result<bool>;
    /// One command of a device.
    async fn get_command(&self, device: &DeviceId, id: &CommandId) -> Result<Option<Command>>;
    /// A device's commands, newest first, at most `limit`.
    async fn list_commands(&self, device: &DeviceId, limit: usize) -> Result<Vec<Command>>;
    /// A device's pending commands, oldest first: the order they are delivered in.
    async fn pending_commands(&self, device: &DeviceId) -> Result<Vec<Command>>;
    /// Moves a pending command to delivered; the command as it is now if it changed.
    async fn mark_delivered(
        &self,
        device: &DeviceId,
        id: &CommandId,
        at_ms: i64,
    ) -> Result<Option<Command>>;
    /// Records the device's first reply: an open command ends in `state` (succeeded or
    /// failed); an expired one stays expired with the reply recorded (a late reply). The
    /// command as it is now if anything changed.
    async fn record_reply(
        &self,
        device: &DeviceId,
        id: &CommandId,
        state: CommandState,
        reply: &serde_json::Value,
        at_ms: i64,
    ) -> Result<Option<Command>>;
    /// Expires every open command whose time ran out by `now_ms`; those commands.
    async fn expire_commands(&self, now_ms: i64) -> Result<Vec<Command>>;
    /// On an edge: keeps a command the cloud sent down, pending, under the cloud's id, marked
    /// as the cloud's (no bound: the cloud bounded it); `false` when its id is known already.
    async fn adopt_command(&self, command: &Command) -> Result<bool>;
    /// The newest commands adopted from the cloud ([`CommandStore::adopt_command`]), newest
    /// first, at most `limit` (what an edge reports up; its own commands stay on the edge).
    async fn upstream_commands(&self, limit: usize) -> Result<Vec<Command>>;
}

/// What became of a change to a twin's desired document.
#[derive(Debug, Clone, PartialEq)]
pub enum DesiredChange {
    /// Applied: the twin now, its version bumped.
    Applied(Twin),
    /// Not applied: the twin's version is not the one the change was made against; the
    /// current version.
    VersionMismatch(u64),
    /// Not applied: the document would be larger than allowed; its size in bytes.
    TooLarge(usize),
    /// Not applied: on an edge, the cloud sets this device's desired state
    /// ([`Twin::upstream_version`]); the cloud's version applied last.
    SetUpstream(u64),
}

/// Devices' twins: desired and reported documents, the desired one versioned.
#[async_trait]
pub trait TwinStore: Send + Sync {
    /// A device's twin ([`Twin::empty`] if it has none yet).
    async fn twin(&self, device: &DeviceId) -> Result<Twin>;
    /// Applies a JSON merge patch to the desired document, in one transaction, if the
    /// twin's version is `expected` (when given) and the result is at most `max_bytes` of JSON.
    async fn patch_desired(
        &self,
        device: &DeviceId,
        expected: Option<u64>,
        patch: &serde_json::Value,
        max_bytes: usize,
        at_ms: i64,
    ) -> Result<DesiredChange>;
    /// Applies a JSON merge patch to the reported document (a device reports what changed);
    /// `None` (nothing changed) when the result would exceed `max_bytes`.
    async fn patch_reported(
        &self,
        device: &DeviceId,
        patch: &serde_json::Value,
        max_bytes: usize,
        at_ms: i64,
    ) -> Result<Option<Twin>>;
    /// On an edge: takes the cloud's desired document at the cloud's `version`, whole, if it
    /// is newer than the one applied last ([`Twin::upstream_version`]); the local version
    /// moves past both. `None` (nothing changed) for a version applied already.
    async fn apply_upstream_desired(
        &self,
        device: &DeviceId,
        version: u64,
        desired: &serde_json::Value,
        at_ms: i64,
    ) -> Result<Option<Twin>>;
    /// In a cloud: the reported document as an edge's device reported it at `at_ms` (the
    /// edge's whole document), unless the twin holds a later report; `None` when nothing
    /// changed.
    async fn set_reported(
        &self,
        device: &DeviceId,
        reported: &serde_json::Value,
        at_ms: i64,
    ) -> Result<Option<Twin>>;
    /// The twins that were reported or that the cloud set, most recently changed first, at
    /// most `limit` (what an edge reports up).
    async fn recent_twins(&self, limit: usize) -> Result<Vec<(DeviceId, Twin)>>;
    /// The devices whose desired document was ever set (version above 0).
    async fn devices_with_desired(&self) -> Result<Vec<DeviceId>>;
}

/// The edge's outbox ([`crate::edge`]): committed batches waiting for the cloud's
/// acknowledgement. No second copy of the points: a batch names its points, which are read
/// back from the series when it is sent.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// From now on every [`SeriesStore::append`] records its batch, with the next
    /// [`crate::BatchSeq`], in the same transaction as its points. Off by default (a node that
    /// is not an edge keeps no outbox).
    fn enable_outbox(&self);
    /// From now on every recorded batch goes to `lane` ([`crate::Lane::Backlog`] until the
    /// uplink first says otherwise): the uplink sets the live lane while it is connected and
    /// the backlog lane while it is not. A batch keeps its lane for ever.
    fn set_outbox_lane(&self, lane: crate::Lane);
    /// Up to `max_batches` batches of `lane` after `after`, in sequence order, stopping after
    /// the batch that reaches `max_points` points.
    async fn outbox_batches(
        &self,
        lane: crate::Lane,
        after: crate::BatchSeq,
        max_batches: usize,
        max_points: usize,
    ) -> Result<Vec<crate::OutboxBatch>>;
    /// Records that the cloud holds every batch of `lane` up to `seq`, and forgets those
    /// batches (their points stay). Never goes backwards.
    async fn outbox_acked(&self, lane: crate::Lane, seq: crate::BatchSeq) -> Result<()>;
    /// What is pending and since when.
    async fn outbox_status(&self) -> Result<crate::OutboxStatus>;
    /// Per lane: points accepted, delivered, degraded and dropped under the disk budget, and
    /// pending (kept across restarts; [`crate::LaneCounts::balanced`] always holds).
    async fn outbox_counts(&self) -> Result<crate::OutboxCounts>;
    /// Whether each rollup transaction of the store records its minutes as a batch of
    /// [`crate::Lane::Rollups`], in that transaction (the aggregates policy); kept in the
    /// database, off by default.
    async fn record_rollups(&self, on: bool) -> Result<()>;
    /// The raw points around alert `alert` (ids increasing): every point of `device`'s series
    /// in `[from, to)` as one batch of [`crate::Lane::Points`], with the alert recorded as
    /// done in the same transaction, once the device's data has passed `to` (a point at or
    /// after it) or, with `settled`, regardless. [`crate::WindowRecorded::Done`], and nothing
    /// recorded, for an alert at or before the last one done ([`OutboxStore::windows_done`]).
    async fn record_window(
        &self,
        alert: sentio_core::AlertId,
        device: &sentio_core::DeviceId,
        (from, to): (i64, i64),
        settled: bool,
    ) -> Result<crate::WindowRecorded>;
    /// The last alert whose raw points [`OutboxStore::record_window`] recorded (0: none).
    async fn windows_done(&self) -> Result<i64>;
    /// Up to `max_batches` batches of [`crate::Lane::Rollups`] after `after`, in sequence
    /// order, with their rows as stored now; acknowledged with `outbox_acked`.
    async fn outbox_rollups(
        &self,
        after: crate::BatchSeq,
        max_batches: usize,
    ) -> Result<Vec<crate::RollupBatch>>;
}

/// Edge nodes registered in the cloud, and what the cloud has applied of their batches.
#[async_trait]
pub trait EdgeStore: Send + Sync {
    /// Registers an edge; returns it with its secret (shown once, stored only as a digest).
    /// `DuplicateEdge` if the id is taken.
    async fn create_edge(&self, id: &sentio_core::EdgeId) -> Result<(crate::Edge, String)>;
    /// One edge with its progress.
    async fn get_edge(&self, id: &sentio_core::EdgeId) -> Result<Option<crate::Edge>>;
    /// Every edge, by id.
    async fn list_edges(&self) -> Result<Vec<crate::Edge>>;
    /// Constant-time check of an edge's secret. Hot path (every CONNECT): answered from memory.
    fn verify_edge(&self, id: &sentio_core::EdgeId, secret: &str) -> bool;
    /// Keeps what the edge reports it sends up ([`crate::Edge::policy`]); nothing for an
    /// unknown edge.
    async fn set_edge_policy(
        &self,
        id: &sentio_core::EdgeId,
        policy: crate::UplinkPolicy,
    ) -> Result<()>;
    /// Applies batches (parts of batches) exactly once, in order: the points of every new one
    /// and the edges' progress (edge, incarnation, lane, seq, part) are committed in one
    /// transaction, durably; one whose (seq, part) is not after the progress already recorded
    /// (or after an earlier one of the same call) is [`crate::Applied::Duplicate`] and writes
    /// nothing. One verdict per batch.
    async fn apply_uplink(&self, batches: Vec<crate::UplinkBatch>) -> Result<Vec<crate::Applied>>;
    /// Applies rollups batches exactly once, in order, like [`EdgeStore::apply_uplink`]: the
    /// rows of every new one (replacing the minute's row; the hours refreshed from them) and
    /// the edge's progress in [`crate::Lane::Rollups`] in one transaction; reads answer those
    /// minutes from the rollups from then on.
    async fn apply_rollups(
        &self,
        batches: Vec<crate::UplinkRollups>,
    ) -> Result<Vec<crate::Applied>>;
    /// Creates or updates the devices of edge `edge`'s registry (name, kind, labels) in this
    /// node's registry, marked as the edge's, in one transaction; an id that is already a
    /// device of this node or of another edge is left alone (a conflict). Applying the same
    /// records again changes nothing.
    async fn apply_registry(
        &self,
        edge: &sentio_core::EdgeId,
        devices: Vec<crate::wire::RegistryRecord>,
    ) -> Result<crate::RegistryApplied>;
    /// Deletes this node's devices of edge `edge` whose ids are not in `kept` (the edge
    /// deleted them) as this node's own deletion does (the device and its credential; its data
    /// kept), audited as `device.delete` by the edge, in one transaction; returns how many. An
    /// edge that creates the id again registers it again.
    async fn remove_edge_devices(
        &self,
        edge: &sentio_core::EdgeId,
        kept: Vec<String>,
    ) -> Result<u64>;
    /// The edge of every device an edge registered here, by device id.
    async fn device_edges(&self) -> Result<std::collections::HashMap<String, String>>;
    /// The edge that registered `device` here, if one did (its commands go down through it).
    async fn edge_of_device(&self, device: &DeviceId) -> Result<Option<sentio_core::EdgeId>>;
    /// Creates or updates this node's copy of each of edge `edge`'s alerts (keyed by the
    /// edge's alert id, with its state, acknowledgement and resolution), in one transaction;
    /// the same alerts again change nothing. Returns how many were applied.
    async fn apply_alerts(
        &self,
        edge: &sentio_core::EdgeId,
        alerts: Vec<sentio_core::Alert>,
    ) -> Result<u64>;
    /// The edge of every alert an edge sent here, by this node's alert id.
    async fn alert_edges(&self) -> Result<std::collections::HashMap<i64, String>>;
    /// Hourly digests (count and sum per closed hour, from the 1-hour rollups) of the series
    /// in `[from, to)`: of edge `edge`'s devices, or of every series with `None` (on an edge).
    async fn hour_digests(
        &self,
        edge: Option<&sentio_core::EdgeId>,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::SeriesHours>>;
    /// Starts a re-sync run of `edge` over `[from, to)` (a running one of the edge is marked
    /// failed: replaced).
    async fn start_resync(
        &self,
        edge: &sentio_core::EdgeId,
        from: i64,
        to: i64,
    ) -> Result<crate::ResyncRun>;
    /// Applies a part of a run exactly once: its points (the same timestamp is the same point)
    /// and the run's progress in one transaction; a part already applied, or of a run that is
    /// not running, is [`crate::Applied::Duplicate`] and writes nothing.
    async fn apply_resync(
        &self,
        edge: &sentio_core::EdgeId,
        part: crate::ResyncPart,
    ) -> Result<crate::Applied>;
    /// The edge's latest re-sync run.
    async fn last_resync(&self, edge: &sentio_core::EdgeId) -> Result<Option<crate::ResyncRun>>;
}

/// Notifications: silences, channels, the outbox that delivers to them, and grouped alerts.
/// The outbox is durable: a queued message is delivered after a restart, and a delivered one
/// is never offered again.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Creates a silence.
    async fn create_silence(&self, new: NewSilence) -> Result<sentio_core::Silence>;
    /// Every silence, expired ones too, newest first.
    async fn silences(&self) -> Result<Vec<sentio_core::Silence>>;
    /// Deletes a silence; `false` when there was none.
    async fn delete_silence(&self, id: i64) -> Result<bool>;
    /// Records that alert `alert_id` was not notified because of silence `silence_id`.
    async fn mark_silenced(&self, alert_id: i64, silence_id: i64) -> Result<()>;
    /// Creates or replaces a channel by name (its counters stay); `true` when created.
    async fn put_channel(&self, channel: &sentio_core::Channel) -> Result<bool>;
    /// Every channel, by name.
    async fn channels(&self) -> Result<Vec<sentio_core::Channel>>;
    /// Deletes a channel and its queued messages; `false` when there was none.
    async fn delete_channel(&self, name: &str) -> Result<bool>;
    /// Each channel's counters, by name.
    async fn channel_stats(&self) -> Result<Vec<ChannelStats>>;
    /// Queues messages, in one transaction; a message for an unknown channel is dropped.
    async fn enqueue(&self, messages: Vec<NewMessage>) -> Result<()>;
    /// Up to `limit` messages due at `now_ms`, oldest first.
    async fn due_messages(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxMessage>>;
    /// Message `id` was accepted: it leaves the outbox and counts as delivered.
    async fn delivered(&self, id: i64) -> Result<()>;
    /// An attempt at message `id` failed at `at_ms` with `error`: it is tried again at
    /// `retry_at`, or, with `None`, given up (kept as failed).
    async fn attempt_failed(
        &self,
        id: i64,
        error: &str,
        at_ms: i64,
        retry_at: Option<i64>,
    ) -> Result<()>;
    /// Saves a group of alerts; returns its id.
    async fn save_group(&self, group: &AlertGroup) -> Result<i64>;
    /// The newest `limit` groups, newest first.
    async fn groups(&self, limit: usize) -> Result<Vec<AlertGroup>>;
}
