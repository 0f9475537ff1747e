//! Acting on devices: [`Commands`] (kept in the store, delivered over MQTT when the device
//! subscribes, moved through their states by its PUBACK, its reply and their time to live)
//! and [`Twins`] (desired and reported documents, the desired one published retained).
//!
//! The pipeline does not know the broker: it publishes through a [`Courier`], which the broker
//! gives once it is bound ([`CourierSlot::attach`]), and the broker calls the desks back when a
//! device subscribes, acknowledges, replies or reports. Until a courier is attached, commands
//! wait as pending and desired changes are stored only; nothing is lost.

mod commands;
mod twins;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use sentio_core::{DeviceId, EdgeId};
use sentio_store::EdgeStore;
use tracing::warn;

pub use commands::{CommandLimits, Commands, NewCommand};
pub use twins::{DEFAULT_MAX_TWIN_BYTES, Twins};

/// The way out to devices: publishes into the node's own MQTT broker.
pub trait Courier: Send + Sync {
    /// Publishes `payload` on `topic` at QoS 1 as the node itself (no client, no ACL), retained
    /// if asked; returns once the broker has routed it.
    fn publish<'a>(
        &'a self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    /// Whether `device` has a live connection now.
    fn is_connected(&self, device: &DeviceId) -> bool;
    /// Whether edge `edge` (its uplink) has a live connection now.
    fn edge_connected(&self, edge: &sentio_core::EdgeId) -> bool;
}

/// Where the courier goes once the broker is bound; shared by both desks. Cheap to clone.
#[derive(Clone, Default)]
pub struct CourierSlot(Arc<OnceLock<Arc<dyn Courier>>>);

impl CourierSlot {
    /// Gives the desks their way out (once; a second courier is ignored).
    pub fn attach(&self, courier: Arc<dyn Courier>) {
        let _ = self.0.set(courier);
    }

    /// The courier, once the broker is bound.
    pub fn get(&self) -> Option<&Arc<dyn Courier>> {
        self.0.get()
    }
}

/// The devices edge `edge` registered here; none (logged: `what` goes at the edge's next
/// subscribe) when they cannot be read.
pub(crate) async fn devices_of(edges: &dyn EdgeStore, edge: &EdgeId, what: &str) -> Vec<DeviceId> {
    match edges.device_edges().await {
        Ok(devices) => devices
            .into_iter()
            .filter(|(_, owner)| owner == edge.as_str())
            .filter_map(|(device, _)| DeviceId::parse(&device).ok())
            .collect(),
        Err(e) => {
            warn!(%edge, error = %e, "the edge's devices not read; {what} go at its next subscribe");
            Vec::new()
        }
    }
}
