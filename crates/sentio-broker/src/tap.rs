//! The publish tap: telemetry from the broker into the pipeline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mqtt5::QoS;
use mqtt5::broker::events::{
    BrokerEventHandler, ClientConnectEvent, ClientDisconnectEvent, ClientPublishEvent,
    PublishAction,
};
use mqtt5::types::ReasonCode;
use sentio_core::{DeviceId, topic};
use sentio_pipeline::{Ingest, PipelineError};
use sentio_store::DeviceRegistry;
use tracing::error;

/// Sends `devices/<id>/telemetry` payloads into the pipeline and tracks presence.
pub struct TelemetryTap {
    ingest: Ingest,
    registry: Arc<dyn DeviceRegistry>,
}

impl TelemetryTap {
    pub fn new(ingest: Ingest, registry: Arc<dyn DeviceRegistry>) -> Self {
        Self { ingest, registry }
    }
}

impl BrokerEventHandler for TelemetryTap {
    fn on_client_connect<'a>(
        &'a self,
        event: ClientConnectEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(user) = event.user_id.as_deref() {
                self.ingest.presence().connected(user);
            }
        })
    }

    fn on_client_disconnect<'a>(
        &'a self,
        event: ClientDisconnectEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Some(user) = event.user_id.as_deref() else {
                return;
            };
            self.ingest.presence().disconnected(user);
            let why = match event.reason {
                ReasonCode::PacketTooLarge => Some("packet larger than the broker's maximum"),
                ReasonCode::MalformedPacket => Some("malformed MQTT packet"),
                ReasonCode::ProtocolError => Some("MQTT protocol error"),
                ReasonCode::ReceiveMaximumExceeded => {
                    Some("too many unacknowledged QoS 1/2 publishes")
                }
                ReasonCode::QuotaExceeded => Some("quota exceeded"),
                _ => None,
            };
            if let Some(why) = why
                && self.registry.is_registered(user)
            {
                self.ingest
                    .reject(user, &format!("disconnected by the broker: {why}"))
                    .await;
            }
        })
    }

    fn on_client_publish<'a>(
        &'a self,
        event: ClientPublishEvent,
    ) -> Pin<Box<dyn Future<Output = PublishAction> + Send + 'a>> {
        Box::pin(async move {
            let Some(device) = topic::telemetry_device(&event.topic) else {
                return PublishAction::Continue;
            };
            // The ACL has already confined the publisher to its own topics; this also covers a
            // user id that is not a valid device id.
            if event.user_id.as_deref() != Some(device) {
                return PublishAction::Handled;
            }
            let Ok(device) = DeviceId::parse(device) else {
                return PublishAction::Handled;
            };
            // QoS 1/2: the PUBACK (sent after this returns) means the points are on disk.
            let durable = event.qos != QoS::AtMostOnce;
            match self.ingest.payload(&device, &event.payload, durable).await {
                Ok(_) => PublishAction::Continue,
                // Refused payloads were recorded with their reason; they are not routed.
                Err(PipelineError::Rejected(_)) => PublishAction::Handled,
                Err(e) => {
                    error!(device = %device, error = %e, "telemetry not stored");
                    PublishAction::Handled
                }
            }
        })
    }
}
