//! Twins: `desired` changes by JSON merge patch (with an optional version check) and is then
//! published retained on `devices/<id>/twin/desired` as `{"version", "desired"}`, so a device
//! that was offline gets the latest on subscribing; `reported` changes by the device's merge
//! patches on `devices/<id>/twin/reported`. Both documents are capped in size.
//!
//! Through an edge: in a cloud, a device an edge registered (`EdgeStore::edge_of_device`) gets
//! its desired document, whole and with its version, on `edges/<edge>/down/twins` instead, and
//! again each time the edge subscribes there or reports an older version; its reported
//! document comes up from the edge ([`Twins::from_edge`], forward only by the report's time).
//! On the edge, the cloud's document is applied once per cloud version
//! ([`Twins::adopt_desired`]) and published retained to the device as any desired change; from
//! then on the cloud is the source of that device's desired state: a local change (the edge's
//! API, an edge rule's `set_desired`) is refused with a conflict.

use std::sync::Arc;

use sentio_core::time::now_ms;
use sentio_core::{DeviceId, EdgeId, Twin, topic};
use sentio_store::wire::{self, DesiredRecord, ReportedRecord};
use sentio_store::{DesiredChange, EdgeStore, TwinStore};
use tokio::sync::{Mutex, mpsc};
use tracing::{info, warn};

use super::CourierSlot;
use crate::detect::Command as DetectCommand;
use crate::{Bus, Event, PipelineError};

/// Largest desired or reported document, in bytes of JSON (32 KiB).
pub const DEFAULT_MAX_TWIN_BYTES: usize = 32 * 1024;

/// The twin desk. Cheap to clone.
#[derive(Clone)]
pub struct Twins {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn TwinStore>,
    /// Which devices live under an edge.
    edges: Arc<dyn EdgeStore>,
    bus: Arc<dyn Bus>,
    courier: CourierSlot,
    max_bytes: usize,
    /// Held while the desired document is read and published, so that the retained message
    /// left last is the newest version.
    publishing: Mutex<()>,
    /// The detect stage, told of every change (rules read `twin.desired`, `twin.reported`).
    detect: mpsc::Sender<DetectCommand>,
}

impl Twins {
    pub(crate) fn new(
        (store, edges): (Arc<dyn TwinStore>, Arc<dyn EdgeStore>),
        bus: Arc<dyn Bus>,
        courier: CourierSlot,
        max_bytes: usize,
        detect: mpsc::Sender<DetectCommand>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                edges,
                bus,
                courier,
                max_bytes,
                publishing: Mutex::new(()),
                detect,
            }),
        }
    }

    /// A device's twin.
    pub async fn get(&self, device: &DeviceId) -> Result<Twin, PipelineError> {
        Ok(self.inner.store.twin(device).await?)
    }

    /// Merges `patch` (a JSON object) into the desired document if the twin is at version
    /// `expected` (when given), and publishes the result retained.
    /// [`PipelineError::VersionMismatch`] for a stale version, [`PipelineError::TooLarge`]
    /// beyond the size cap.
    pub async fn patch_desired(
        &self,
        device: &DeviceId,
        expected: Option<u64>,
        patch: &serde_json::Value,
    ) -> Result<Twin, PipelineError> {
        if !patch.is_object() {
            return Err(PipelineError::Invalid(
                "a desired change is a JSON object (a merge patch: null removes a member)".into(),
            ));
        }
        let change = self
            .inner
            .store
            .patch_desired(device, expected, patch, self.inner.max_bytes, now_ms())
            .await?;
        let twin = match change {
            DesiredChange::Applied(twin) => twin,
            DesiredChange::VersionMismatch(current) => {
                return Err(PipelineError::VersionMismatch(current));
            }
            DesiredChange::TooLarge(size) => return Err(self.too_large(size)),
            DesiredChange::SetUpstream(v) => {
                return Err(PipelineError::Conflict(format!(
                    "the desired state of {device} is set by the cloud this edge links to (its \
                     version {v} here); change it there"
                )));
            }
        };
        self.changed(device, &twin).await;
        self.publish_desired(device).await;
        Ok(twin)
    }

    /// The device reported on `devices/<id>/twin/reported`: a JSON object merged into its
    /// reported document. Anything else, or a document past the cap, is refused with a reason.
    pub async fn reported(&self, device: &DeviceId, payload: &[u8]) -> Result<Twin, PipelineError> {
        let patch: serde_json::Value = serde_json::from_slice(payload)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| {
                PipelineError::Invalid("twin/reported takes a JSON object (a merge patch)".into())
            })?;
        let twin = self
            .inner
            .store
            .patch_reported(device, &patch, self.inner.max_bytes, now_ms())
            .await?
            .ok_or_else(|| self.too_large(payload.len()))?;
        self.changed(device, &twin).await;
        Ok(twin)
    }

    /// The device was deleted: its retained desired twin is cleared from the broker (its twin
    /// row goes with an erasure).
    pub async fn forget(&self, device: &DeviceId) {
        if let Some(courier) = self.inner.courier.get() {
            let _order = self.inner.publishing.lock().await;
            courier
                .publish(topic::twin_desired(device), Vec::new(), true)
                .await;
        }
    }

    /// On an edge: the cloud sent `record` down; applied once per cloud version, then
    /// published retained to the device. `Ok(false)` for a version applied already.
    pub async fn adopt_desired(&self, record: &DesiredRecord) -> Result<bool, PipelineError> {
        let device = &record.device;
        let Some(twin) = self
            .inner
            .store
            .apply_upstream_desired(device, record.version, &record.desired, now_ms())
            .await?
        else {
            return Ok(false);
        };
        info!(%device, cloud_version = record.version, version = twin.version, "desired twin from the cloud applied");
        self.changed(device, &twin).await;
        self.publish_desired(device).await;
        Ok(true)
    }

    /// In a cloud: edge `edge` reports a device's reported document; applied when the device
    /// is that edge's and the report is not older than the one held. When the edge holds an
    /// older desired version than this node, the desired document goes down again.
    pub async fn from_edge(
        &self,
        edge: &EdgeId,
        record: &ReportedRecord,
    ) -> Result<(), PipelineError> {
        let device = &record.device;
        if self.inner.edges.edge_of_device(device).await?.as_ref() != Some(edge) {
            return Ok(());
        }
        if let Some(at) = record.reported_ms
            && let Some(twin) = self
                .inner
                .store
                .set_reported(device, &record.reported, at)
                .await?
        {
            self.changed(device, &twin).await;
        }
        let version = self.inner.store.twin(device).await?.version;
        if version > record.desired_version.unwrap_or(0) {
            self.publish_desired(device).await;
        }
        Ok(())
    }

    /// Edge `edge` subscribed to its `down/twins`: the desired documents of its devices go
    /// down (again).
    pub async fn edge_subscribed(&self, edge: &EdgeId) {
        for device in super::devices_of(&*self.inner.edges, edge, "their twins").await {
            self.publish_desired(&device).await;
        }
    }

    /// Publishes every desired document again (as [`Twins::publish_desired`]): at start, since
    /// a crash may have left the broker's retained copy older than the store's.
    pub async fn republish_desired(&self) {
        match self.inner.store.devices_with_desired().await {
            Ok(devices) => {
                for device in devices {
                    self.publish_desired(&device).await;
                }
            }
            Err(e) => warn!(error = %e, "desired twins not published again at start"),
        }
    }

    /// Publishes the device's current desired document: retained on its own topic, or, for a
    /// device under an edge, down to the edge if it is connected (never version 0: nothing
    /// was asked).
    async fn publish_desired(&self, device: &DeviceId) {
        let Some(courier) = self.inner.courier.get() else {
            return;
        };
        let edge = match self.inner.edges.edge_of_device(device).await {
            Ok(e) => e,
            Err(e) => {
                warn!(%device, error = %e, "the device's edge not read; desired twin not published");
                return;
            }
        };
        if edge.as_ref().is_some_and(|e| !courier.edge_connected(e)) {
            return;
        }
        let _order = self.inner.publishing.lock().await;
        let twin = match self.inner.store.twin(device).await {
            Ok(twin) => twin,
            Err(e) => {
                warn!(%device, error = %e, "desired twin not published");
                return;
            }
        };
        match edge {
            Some(edge) if twin.version > 0 => {
                let record = DesiredRecord {
                    device: device.clone(),
                    version: twin.version,
                    desired: twin.desired,
                };
                let payload = wire::encode_desired(std::slice::from_ref(&record));
                courier
                    .publish(topic::downlink_twins(&edge), payload, false)
                    .await;
            }
            Some(_) => {}
            None => {
                courier
                    .publish(topic::twin_desired(device), twin.desired_payload(), true)
                    .await;
            }
        }
    }

    fn too_large(&self, size: usize) -> PipelineError {
        PipelineError::TooLarge(format!(
            "the twin document would be {size} bytes; at most {} (twins.max_bytes)",
            self.inner.max_bytes
        ))
    }

    async fn changed(&self, device: &DeviceId, twin: &Twin) {
        let told = DetectCommand::TwinChanged {
            device: device.clone(),
            twin: Box::new(twin.clone()),
        };
        // Only at shutdown is the detect stage gone; nothing is left to judge then.
        let _ = self.inner.detect.send(told).await;
        self.inner.bus.publish(Event::Twin {
            device: device.to_string(),
            twin: Box::new(twin.clone()),
        });
    }
}
