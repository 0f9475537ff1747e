//! [`Stores`]: every seam of one backend as a trait object, so that the node wires a backend
//! in once and the contract tests take any backend the same way.

use std::sync::Arc;

use crate::{
    AlertStore, AuditStore, CommandStore, DeviceRegistry, EdgeStore, EventStore, Maintenance,
    NotifyStore, OutboxStore, RetentionStore, RuleStore, SeriesStore, StorageHealth, TokenStore,
    TwinStore, UserStore,
};

/// Every trait of one store backend, as trait objects sharing that backend. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    /// Devices and their credentials.
    pub registry: Arc<dyn DeviceRegistry>,
    /// Time series.
    pub series: Arc<dyn SeriesStore>,
    /// Alerts.
    pub alerts: Arc<dyn AlertStore>,
    /// Text events.
    pub events: Arc<dyn EventStore>,
    /// Scoped API tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// User accounts and sessions.
    pub users: Arc<dyn UserStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Retention, rollups and the disk budget.
    pub retention: Arc<dyn RetentionStore>,
    /// Background upkeep (sealing, maintenance rounds, the disk budget).
    pub maintenance: Arc<dyn Maintenance>,
    /// Whether the store can take new data.
    pub health: Arc<dyn StorageHealth>,
    /// Users' rules.
    pub rules: Arc<dyn RuleStore>,
    /// Commands to devices.
    pub commands: Arc<dyn CommandStore>,
    /// Devices' twins.
    pub twins: Arc<dyn TwinStore>,
    /// The edge's outbox.
    pub outbox: Arc<dyn OutboxStore>,
    /// Edge nodes registered here (cloud side).
    pub edges: Arc<dyn EdgeStore>,
    /// Silences, notification channels and their outbox.
    pub notify: Arc<dyn NotifyStore>,
}

impl Stores {
    /// Every seam of `backend`, which implements them all.
    pub fn of<B>(backend: Arc<B>) -> Self
    where
        B: DeviceRegistry
            + SeriesStore
            + AlertStore
            + EventStore
            + TokenStore
            + UserStore
            + AuditStore
            + Maintenance
            + StorageHealth
            + RuleStore
            + CommandStore
            + TwinStore
            + OutboxStore
            + EdgeStore
            + NotifyStore
            + 'static,
    {
        Self {
            registry: backend.clone(),
            series: backend.clone(),
            alerts: backend.clone(),
            events: backend.clone(),
            tokens: backend.clone(),
            users: backend.clone(),
            audit: backend.clone(),
            retention: backend.clone(),
            maintenance: backend.clone(),
            health: backend.clone(),
            rules: backend.clone(),
            commands: backend.clone(),
            twins: backend.clone(),
            outbox: backend.clone(),
            edges: backend.clone(),
            notify: backend,
        }
    }
}
