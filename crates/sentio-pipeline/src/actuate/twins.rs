//! Twins: `desired` changes by JSON merge patch (with an optional version check) and is then
//! published retained on `devices/<id>/twin/desired` as `{"version", "desired"}`, so a device
//! that was offline gets the latest on subscribing; `reported` changes by the device's merge
//! patches on `devices/<id>/twin/reported`. Both documents are capped in size.

use std::sync::Arc;

use sentio_core::time::now_ms;
use sentio_core::{DeviceId, Twin, topic};
use sentio_store::{DesiredChange, TwinStore};
use tokio::sync::{Mutex, mpsc};
use tracing::warn;

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
        store: Arc<dyn TwinStore>,
        bus: Arc<dyn Bus>,
        courier: CourierSlot,
        max_bytes: usize,
        detect: mpsc::Sender<DetectCommand>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
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

    /// Publishes the device's current desired document, retained.
    async fn publish_desired(&self, device: &DeviceId) {
        let Some(courier) = self.inner.courier.get() else {
            return;
        };
        let _order = self.inner.publishing.lock().await;
        match self.inner.store.twin(device).await {
            Ok(twin) => {
                courier
                    .publish(topic::twin_desired(device), twin.desired_payload(), true)
                    .await;
            }
            Err(e) => warn!(%device, error = %e, "desired twin not published"),
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
