use crate::broker::events::{
    ClientPublishEvent, MessageDeliveredEvent, PublishAction, RetainRequest,
};
use crate::broker::storage::{
    InflightDirection, InflightMessage, InflightPhase, QueueHandle, QueuedMessage, StorageBackend,
};
use crate::error::{MqttError, Result};
use crate::packet::disconnect::DisconnectPacket;
use crate::packet::puback::PubAckPacket;

/// SENTIO-PATCH: deferred PUBACKs beyond which they are flushed and sent without waiting for
/// the read buffer to run dry.
const MAX_DEFERRED_ACKS: usize = 4096;
/// SENTIO-PATCH: how long deferred PUBACKs may wait while the event handler holds the next
/// PUBLISH before they are flushed and sent anyway.
const DEFERRED_ACK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(2);
use crate::packet::pubcomp::PubCompPacket;
use crate::packet::publish::PublishPacket;
use crate::packet::pubrec::PubRecPacket;
use crate::packet::pubrel::PubRelPacket;
use crate::packet::Packet;
use crate::protocol::v5::properties::{PropertyId, PropertyValue};
use crate::protocol::v5::reason_codes::ReasonCode;
use crate::transport::packet_io::{encode_packet_to_buffer, has_buffered_packet};
use crate::QoS;
use crate::Transport;
use std::sync::Arc;
use tracing::{debug, warn};

#[cfg(feature = "opentelemetry")]
use crate::telemetry::propagation;

use crate::broker::router::RoutableMessage;

use super::{ClientHandler, EventIds, InflightPublish};

/// SENTIO-PATCH: a delivery batch's buffer is written out once it holds this much.
const COALESCED_WRITE_AT: usize = 64 * 1024;

impl ClientHandler {
    #[cfg(feature = "opentelemetry")]
    pub(super) async fn route_with_trace_context(
        &self,
        publish: &PublishPacket,
        client_id: &str,
    ) -> Result<()> {
        let user_props = propagation::extract_user_properties(&publish.properties);
        if let Some(span_context) = propagation::extract_trace_context(&user_props) {
            use opentelemetry::trace::TraceContextExt;
            use tracing::Instrument;
            use tracing_opentelemetry::OpenTelemetrySpanExt;

            let parent_cx =
                opentelemetry::Context::current().with_remote_span_context(span_context);
            let span = tracing::info_span!("broker_publish");
            let _ = span.set_parent(parent_cx);

            self.route_publish(publish, Some(client_id))
                .instrument(span)
                .await;
        } else {
            self.route_publish(publish, Some(client_id)).await;
        }
        Ok(())
    }

    pub(super) async fn handle_publish(&mut self, mut publish: PublishPacket) -> Result<()> {
        // SENTIO-PATCH: the shared id (no `String` copied per PUBLISH).
        let ids = self.event_ids();
        let client_id = Arc::clone(&ids.client_id);

        // SENTIO-PATCH: a QoS 1/2 PUBLISH must carry a non-zero packet id [MQTT-2.3.1-1];
        // upstream acknowledged packet id 0. A protocol error: DISCONNECT 0x82 (MQTT 5; a
        // 3.1.1 connection is just closed) and the connection ends.
        if publish.qos != QoS::AtMostOnce && publish.packet_id.unwrap_or(0) == 0 {
            warn!(client_id = ?client_id, "QoS 1/2 PUBLISH with packet id 0: protocol error");
            self.disconnect_reason = Some(ReasonCode::ProtocolError);
            let disconnect = DisconnectPacket::new(ReasonCode::ProtocolError);
            self.write_to_client(Packet::Disconnect(disconnect)).await?;
            return Err(MqttError::ProtocolError(
                "QoS 1/2 PUBLISH with packet identifier 0 [MQTT-2.3.1-1]".to_string(),
            ));
        }

        self.check_receive_maximum(&client_id, &publish).await?;
        // SENTIO-PATCH: an invalid topic alias (0, above the maximum, or unknown with an empty
        // topic) gets DISCONNECT 0x94 Topic Alias invalid before the connection closes (§4.13,
        // §3.3.2.3.4); upstream closed it without one. An empty topic without an alias is a
        // plain protocol error (0x82). A 3.1.1 connection is just closed (`write_to_client`).
        if let Err((reason, err)) = self.resolve_topic_alias(&mut publish) {
            warn!(client_id = ?client_id, reason = ?reason, "{err}");
            self.disconnect_reason = Some(reason);
            self.write_to_client(Packet::Disconnect(DisconnectPacket::new(reason)))
                .await?;
            return Err(err);
        }
        Self::validate_publish_properties(&publish)?;

        let payload_size = publish.payload.len();
        self.stats.publish_received(payload_size);

        let authorized = self
            .auth_provider
            .authorize_publish(&client_id, self.user_id.as_deref(), &publish.topic_name)
            .await;

        if !authorized {
            warn!(
                // SENTIO-PATCH: the client-supplied topic escaped (`?`), not raw.
                "Client {client_id} (user: {:?}) not authorized to publish to topic: {:?}",
                self.user_id, publish.topic_name
            );
            return self.send_not_authorized_response(&publish).await;
        }

        if (publish.qos as u8) > self.config.maximum_qos {
            debug!(
                "Client {client_id} sent QoS {} but max is {}",
                publish.qos as u8, self.config.maximum_qos
            );
            return self.send_qos_not_supported_response(&publish).await;
        }

        if publish.retain && !publish.payload.is_empty() {
            if let Some(err) = self.check_retained_limits(&publish, &client_id).await? {
                return err;
            }
        }

        // SENTIO-PATCH: upstream appends `x-mqtt-sender` and `x-mqtt-client-id` user
        // properties here; MQTT 5 forwards user properties unaltered [MQTT-3.3.2-17], and they
        // would show every subscriber who published, so Sentio leaves them out.

        if !self
            .resource_monitor
            .can_send_message(&client_id, payload_size)
            .await
        {
            warn!("Message from {client_id} dropped due to rate limit");
            return self.send_rate_limit_response(&publish).await;
        }

        let hook = self.fire_publish_event(&publish, ids);
        // SENTIO-PATCH: the event handler may hold this PUBLISH (back-pressure, a full store);
        // acks deferred for earlier PUBLISHes must not wait behind it.
        let action = if self.deferred_acks.is_empty() {
            hook.await
        } else {
            // SENTIO-PATCH: polled once first: a hook that decides at once (most PUBLISHes)
            // arms no timer.
            let mut hook = std::pin::pin!(hook);
            match std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(hook.as_mut(), cx))
            })
            .await
            {
                std::task::Poll::Ready(action) => action,
                std::task::Poll::Pending => tokio::select! {
                    action = &mut hook => action,
                    () = tokio::time::sleep(DEFERRED_ACK_PATIENCE) => {
                        self.send_deferred_acks().await?;
                        hook.await
                    }
                },
            }
        };
        match action {
            PublishAction::Continue => self.route_publish_by_qos(publish, &client_id).await,
            PublishAction::Handled => self.complete_qos_handshake(publish).await,
            PublishAction::Transform(modified) => {
                self.route_publish_by_qos(modified, &client_id).await
            }
        }
    }

    /// SENTIO-PATCH: queued-message writes issued so far by the storage (0 without one).
    fn queue_writes_issued(&self) -> u64 {
        self.storage
            .as_ref()
            .map_or(0, |storage| storage.queue_writes_issued())
    }

    /// SENTIO-PATCH: whether queued-message writes were issued since `issued`.
    fn queue_writes_since(&self, issued: u64) -> bool {
        self.queue_writes_issued() != issued
    }

    /// SENTIO-PATCH: flushes the queued writes once if a held ack waits for it, then sends
    /// every held ack, in order, in one write.
    pub(super) async fn send_deferred_acks(&mut self) -> Result<()> {
        if self.deferred_acks.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.acks_need_flush) {
            if let Some(storage) = &self.storage {
                storage.flush_queue_writes().await;
            }
        }
        let mut bytes = bytes::BytesMut::with_capacity(self.deferred_acks.len() * 8);
        for mut ack in std::mem::take(&mut self.deferred_acks) {
            if self.shape_for_client(&mut ack) {
                self.encode_within_client_max(&mut ack, &mut bytes)?;
            }
        }
        self.write_bytes(&bytes).await
    }

    /// SENTIO-PATCH: holds `ack` until the next flush (`send_deferred_acks`), which it then
    /// needs; at `MAX_DEFERRED_ACKS` held, flushes and sends them now.
    async fn defer_ack(&mut self, ack: Packet) -> Result<()> {
        self.acks_need_flush = true;
        self.hold_ack(ack).await
    }

    /// SENTIO-PATCH: adds `ack` to the held ones; at `MAX_DEFERRED_ACKS` held, sends them.
    async fn hold_ack(&mut self, ack: Packet) -> Result<()> {
        self.deferred_acks.push(ack);
        if self.deferred_acks.len() >= MAX_DEFERRED_ACKS {
            self.send_deferred_acks().await?;
        }
        Ok(())
    }

    /// SENTIO-PATCH: an acknowledgement that needs no flush of its own. Held behind deferred
    /// ones so that acks leave in the order their PUBLISHes came [MQTT-4.6.0-2] (refusals
    /// included), and held while a further whole packet is already buffered: the acks of one
    /// read's PUBLISHes leave together in one write, once the buffer runs dry (the packet
    /// loop's first step), instead of one write, a syscall, each. Sent at once otherwise.
    async fn send_ack(&mut self, ack: Packet) -> Result<()> {
        if self.deferred_acks.is_empty()
            && !has_buffered_packet(&self.read_buffer, self.config.max_packet_size)
        {
            self.write_to_client(ack).await
        } else {
            self.hold_ack(ack).await
        }
    }

    async fn check_receive_maximum(
        &mut self,
        client_id: &str,
        publish: &PublishPacket,
    ) -> Result<()> {
        if publish.qos != QoS::AtMostOnce
            && self.inflight_publishes.len() >= usize::from(self.server_receive_maximum)
        {
            warn!(
                client_id = %client_id,
                inflight = self.inflight_publishes.len(),
                server_receive_maximum = self.server_receive_maximum,
                "Receive maximum exceeded"
            );
            let disconnect = DisconnectPacket::new(ReasonCode::ReceiveMaximumExceeded);
            self.write_to_client(Packet::Disconnect(disconnect)).await?;
            return Err(MqttError::ProtocolError(
                "Client exceeded server receive maximum".to_string(),
            ));
        }
        Ok(())
    }

    /// SENTIO-PATCH: the error comes with the DISCONNECT reason code it calls for.
    fn resolve_topic_alias(
        &mut self,
        publish: &mut PublishPacket,
    ) -> std::result::Result<(), (ReasonCode, MqttError)> {
        let invalid = |m: String| (ReasonCode::TopicAliasInvalid, MqttError::ProtocolError(m));
        if let Some(alias) = publish.properties.get_topic_alias() {
            if alias == 0 || alias > self.config.topic_alias_maximum {
                return Err(invalid(format!(
                    "Invalid topic alias: {alias} (maximum: {})",
                    self.config.topic_alias_maximum
                )));
            }

            if publish.topic_name.is_empty() {
                if let Some(topic) = self.topic_aliases.get(&alias) {
                    publish.topic_name.clone_from(topic);
                } else {
                    return Err(invalid(format!("Topic alias {alias} not found")));
                }
            } else {
                self.topic_aliases.insert(alias, publish.topic_name.clone());
            }
            publish.properties.remove_topic_alias();
        } else if publish.topic_name.is_empty() {
            return Err((
                ReasonCode::ProtocolError,
                MqttError::ProtocolError("Empty topic name without topic alias".to_string()),
            ));
        }
        Ok(())
    }

    fn validate_publish_properties(publish: &PublishPacket) -> Result<()> {
        if publish.properties.get_subscription_identifier().is_some() {
            return Err(MqttError::ProtocolError(
                "PUBLISH from client must not contain Subscription Identifier [MQTT-3.3.4-6]"
                    .to_string(),
            ));
        }

        // SENTIO-PATCH: the error (logged by the listener as "Client handler error: {e}")
        // carries the topic escaped, not raw.
        crate::validate_topic_name(&publish.topic_name)
            .map_err(|_| MqttError::InvalidTopicName(format!("{:?}", publish.topic_name)))?;

        if let Some(PropertyValue::Utf8String(response_topic)) =
            publish.properties.get(PropertyId::ResponseTopic)
        {
            crate::validate_topic_name(response_topic)
                .map_err(|_| MqttError::InvalidTopicName(format!("{response_topic:?}")))?;
        }
        Ok(())
    }

    async fn route_publish_by_qos(
        &mut self,
        publish: PublishPacket,
        client_id: &str,
    ) -> Result<()> {
        match publish.qos {
            QoS::AtMostOnce => {
                #[cfg(feature = "opentelemetry")]
                self.route_with_trace_context(&publish, client_id).await?;
                #[cfg(not(feature = "opentelemetry"))]
                self.route_publish(&publish, Some(client_id)).await;
            }
            QoS::AtLeastOnce => {
                let issued = self.queue_writes_issued();
                #[cfg(feature = "opentelemetry")]
                self.route_with_trace_context(&publish, client_id).await?;
                #[cfg(not(feature = "opentelemetry"))]
                self.route_publish(&publish, Some(client_id)).await;
                let mut puback = PubAckPacket::new(publish.packet_id.unwrap());
                puback.reason_code = ReasonCode::Success;
                // SENTIO-PATCH: a PUBLISH that queued something for a persistent session is
                // acknowledged only once that is on disk; instead of one flush per PUBLISH, the
                // ack waits (with every later one, to keep them in order) until the handler
                // has no further whole packet buffered, then one flush serves them all.
                if self.queue_writes_since(issued) {
                    self.defer_ack(Packet::PubAck(puback)).await?;
                } else {
                    self.send_ack(Packet::PubAck(puback)).await?;
                }
            }
            QoS::ExactlyOnce => {
                let packet_id = publish.packet_id.unwrap();
                if let Some(ref storage) = self.storage {
                    let inflight = InflightMessage::from_publish(
                        &publish,
                        client_id.to_string(),
                        InflightDirection::Inbound,
                        InflightPhase::AwaitingPubrel,
                    );
                    if let Err(e) = storage.store_inflight_message(inflight).await {
                        debug!("failed to persist inbound inflight {packet_id}: {e}");
                    }
                }
                self.inflight_publishes
                    .insert(packet_id, InflightPublish::Pending(publish));
                let mut pubrec = PubRecPacket::new(packet_id);
                pubrec.reason_code = ReasonCode::Success;
                // SENTIO-PATCH: after PUBREC the publisher never sends this PUBLISH again, so
                // the inbound inflight copy is on disk before the PUBREC: it waits for the
                // next flush, shared with every ack deferred until then (as QoS 1 PUBACKs).
                if self.storage.is_some() {
                    self.defer_ack(Packet::PubRec(pubrec)).await?;
                } else {
                    self.send_ack(Packet::PubRec(pubrec)).await?;
                }
            }
        }
        Ok(())
    }

    async fn complete_qos_handshake(&mut self, publish: PublishPacket) -> Result<()> {
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let mut puback = PubAckPacket::new(publish.packet_id.unwrap());
                puback.reason_code = ReasonCode::Success;
                self.send_ack(Packet::PubAck(puback)).await?;
            }
            QoS::ExactlyOnce => {
                let packet_id = publish.packet_id.unwrap();
                self.inflight_publishes
                    .insert(packet_id, InflightPublish::Handled);
                let mut pubrec = PubRecPacket::new(packet_id);
                pubrec.reason_code = ReasonCode::Success;
                self.send_ack(Packet::PubRec(pubrec)).await?;
            }
        }
        Ok(())
    }

    async fn send_not_authorized_response(&mut self, publish: &PublishPacket) -> Result<()> {
        if publish.qos == QoS::AtMostOnce {
            return Ok(());
        }
        match publish.qos {
            QoS::AtLeastOnce => {
                let mut puback = PubAckPacket::new(publish.packet_id.unwrap());
                puback.reason_code = ReasonCode::NotAuthorized;
                if self.request_problem_information {
                    puback
                        .properties
                        .set_reason_string("Not authorized to publish".to_string());
                }
                debug!("Sending PUBACK with NotAuthorized");
                self.send_ack(Packet::PubAck(puback)).await?;
            }
            QoS::ExactlyOnce => {
                let mut pubrec = PubRecPacket::new(publish.packet_id.unwrap());
                pubrec.reason_code = ReasonCode::NotAuthorized;
                if self.request_problem_information {
                    pubrec
                        .properties
                        .set_reason_string("Not authorized to publish".to_string());
                }
                debug!("Sending PUBREC with NotAuthorized");
                self.send_ack(Packet::PubRec(pubrec)).await?;
            }
            QoS::AtMostOnce => {}
        }
        Ok(())
    }

    async fn send_qos_not_supported_response(&mut self, publish: &PublishPacket) -> Result<()> {
        if let Some(packet_id) = publish.packet_id {
            match publish.qos {
                QoS::AtLeastOnce => {
                    let mut puback = PubAckPacket::new(packet_id);
                    puback.reason_code = ReasonCode::QoSNotSupported;
                    if self.request_problem_information {
                        puback.properties.set_reason_string(format!(
                            "QoS {} not supported (maximum: {})",
                            publish.qos as u8, self.config.maximum_qos
                        ));
                    }
                    self.send_ack(Packet::PubAck(puback)).await?;
                }
                QoS::ExactlyOnce => {
                    let mut pubrec = PubRecPacket::new(packet_id);
                    pubrec.reason_code = ReasonCode::QoSNotSupported;
                    if self.request_problem_information {
                        pubrec.properties.set_reason_string(format!(
                            "QoS {} not supported (maximum: {})",
                            publish.qos as u8, self.config.maximum_qos
                        ));
                    }
                    self.send_ack(Packet::PubRec(pubrec)).await?;
                }
                QoS::AtMostOnce => {}
            }
        }
        Ok(())
    }

    async fn check_retained_limits(
        &mut self,
        publish: &PublishPacket,
        client_id: &str,
    ) -> Result<Option<Result<()>>> {
        let max_size = self.router.max_retained_message_size();
        if max_size > 0 && publish.payload.len() > max_size {
            let len = publish.payload.len();
            debug!("Client {client_id} retained message too large ({len} > {max_size})");
            return Ok(Some(
                self.send_quota_exceeded_response(publish, "Retained message too large")
                    .await,
            ));
        }

        // SENTIO-PATCH: the event handler's own bound (per identity, disk room).
        if let Some(ref handler) = self.config.event_handler {
            let request = RetainRequest {
                client_id: Arc::from(client_id),
                user_id: self.user_id.as_deref().map(Arc::from),
                topic: Arc::from(publish.topic_name.as_str()),
                payload_len: publish.payload.len(),
            };
            if !handler.authorize_retained(request).await {
                return Ok(Some(
                    self.send_quota_exceeded_response(publish, "Retained message quota exceeded")
                        .await,
                ));
            }
        }

        if self.router.retained_store_full(&publish.topic_name).await {
            let max = self.router.max_retained_messages();
            let count = self.router.retained_count().await;
            debug!("Client {client_id} retained message limit exceeded ({count}/{max})");
            return Ok(Some(
                self.send_quota_exceeded_response(publish, "Retained message limit exceeded")
                    .await,
            ));
        }
        Ok(None)
    }

    async fn send_quota_exceeded_response(
        &mut self,
        publish: &PublishPacket,
        reason: &str,
    ) -> Result<()> {
        if publish.qos == QoS::AtMostOnce {
            return Ok(());
        }
        match publish.qos {
            QoS::AtLeastOnce => {
                let mut puback = PubAckPacket::new(publish.packet_id.unwrap());
                puback.reason_code = ReasonCode::QuotaExceeded;
                if self.request_problem_information {
                    puback.properties.set_reason_string(reason.to_string());
                }
                self.send_ack(Packet::PubAck(puback)).await?;
            }
            QoS::ExactlyOnce => {
                let mut pubrec = PubRecPacket::new(publish.packet_id.unwrap());
                pubrec.reason_code = ReasonCode::QuotaExceeded;
                if self.request_problem_information {
                    pubrec.properties.set_reason_string(reason.to_string());
                }
                self.send_ack(Packet::PubRec(pubrec)).await?;
            }
            QoS::AtMostOnce => {}
        }
        Ok(())
    }

    async fn send_rate_limit_response(&mut self, publish: &PublishPacket) -> Result<()> {
        if publish.qos == QoS::AtMostOnce {
            return Ok(());
        }
        match publish.qos {
            QoS::AtLeastOnce => {
                let mut puback = PubAckPacket::new(publish.packet_id.unwrap());
                puback.reason_code = ReasonCode::QuotaExceeded;
                if self.request_problem_information {
                    puback
                        .properties
                        .set_reason_string("Rate limit exceeded".to_string());
                }
                self.send_ack(Packet::PubAck(puback)).await?;
            }
            QoS::ExactlyOnce => {
                let mut pubrec = PubRecPacket::new(publish.packet_id.unwrap());
                pubrec.reason_code = ReasonCode::QuotaExceeded;
                if self.request_problem_information {
                    pubrec
                        .properties
                        .set_reason_string("Rate limit exceeded".to_string());
                }
                self.send_ack(Packet::PubRec(pubrec)).await?;
            }
            QoS::AtMostOnce => {}
        }
        Ok(())
    }

    /// SENTIO-PATCH: the connection's ids for events, made on first use and again only when
    /// the user id changed (re-authentication).
    pub(super) fn event_ids(&mut self) -> EventIds {
        let client_id = self.client_id.as_deref().unwrap_or_default();
        let user_id = self.user_id.as_deref();
        match &self.event_ids {
            Some(ids) if *ids.client_id == *client_id && ids.user_id.as_deref() == user_id => {
                ids.clone()
            }
            _ => {
                let ids = EventIds {
                    client_id: Arc::from(client_id),
                    user_id: user_id.map(Arc::from),
                };
                self.event_ids = Some(ids.clone());
                ids
            }
        }
    }

    /// SENTIO-PATCH: the event is built now and the returned future owns what it needs (not
    /// `self`), so the caller can send deferred acks while the handler holds this PUBLISH.
    fn fire_publish_event(
        &self,
        publish: &PublishPacket,
        ids: EventIds,
    ) -> impl std::future::Future<Output = PublishAction> + Send + 'static {
        let event = self.config.event_handler.clone().map(|handler| {
            let response_topic = publish
                .properties
                .get(PropertyId::ResponseTopic)
                .and_then(|v| {
                    if let PropertyValue::Utf8String(s) = v {
                        Some(Arc::from(s.as_str()))
                    } else {
                        None
                    }
                });

            let correlation_data = publish
                .properties
                .get(PropertyId::CorrelationData)
                .and_then(|v| {
                    if let PropertyValue::BinaryData(b) = v {
                        Some(b.clone())
                    } else {
                        None
                    }
                });

            let event = ClientPublishEvent {
                client_id: ids.client_id,
                user_id: ids.user_id,
                topic: Arc::from(publish.topic_name.as_str()),
                payload: publish.payload.clone(),
                qos: publish.qos,
                retain: publish.retain,
                packet_id: publish.packet_id,
                response_topic,
                correlation_data,
            };
            (handler, event)
        });
        async move {
            match event {
                Some((handler, event)) => handler.on_client_publish(event).await,
                None => PublishAction::Continue,
            }
        }
    }

    pub(super) async fn handle_puback(&mut self, puback: &PubAckPacket) {
        // SENTIO-PATCH: the acknowledged message's topic goes into the delivered event.
        if let Some(sent) = self.outbound_inflight.remove(&puback.packet_id) {
            if let Some(storage) = self.outbound_inflight_storage() {
                if let Err(e) = storage
                    .remove_inflight_message(
                        self.client_id.as_ref().unwrap(),
                        puback.packet_id,
                        InflightDirection::Outbound,
                    )
                    .await
                {
                    debug!(
                        "failed to remove outbound inflight {}: {e}",
                        puback.packet_id
                    );
                }
            }
            tracing::trace!(
                packet_id = puback.packet_id,
                inflight = self.outbound_inflight.len(),
                "Released outbound flow control quota on PUBACK"
            );

            if self.config.event_handler.is_some() && self.client_id.is_some() {
                let client_id = self.event_ids().client_id;
                if let Some(ref handler) = self.config.event_handler {
                    let event = MessageDeliveredEvent {
                        client_id,
                        packet_id: puback.packet_id,
                        qos: QoS::AtLeastOnce,
                        topic: Arc::from(sent.topic_name.as_str()),
                    };
                    handler.on_message_delivered(event).await;
                }
            }

            self.forget_inflight_order(puback.packet_id);
            self.notify_queue();
        }
    }

    /// Handles a PUBREC from a subscriber for an outbound `QoS` 2 message.
    ///
    /// Per `[MQTT-4.3.3-4]` a PUBREL is sent only for a Reason Code below `0x80`. A PUBREC
    /// with a Reason Code of `0x80` or greater terminates the exchange: the in-flight entry
    /// is dropped, the outbound quota freed, queued messages drained, and no PUBREL is sent.
    pub(super) async fn handle_pubrec(&mut self, pubrec: PubRecPacket) -> Result<()> {
        if pubrec.reason_code.is_error() {
            if self.outbound_inflight.remove(&pubrec.packet_id).is_some() {
                if let Some(storage) = self.outbound_inflight_storage() {
                    if let Err(e) = storage
                        .remove_inflight_message(
                            self.client_id.as_ref().unwrap(),
                            pubrec.packet_id,
                            InflightDirection::Outbound,
                        )
                        .await
                    {
                        debug!(
                            "failed to remove rejected outbound inflight {}: {e}",
                            pubrec.packet_id
                        );
                    }
                }
                self.forget_inflight_order(pubrec.packet_id);
                self.awaiting_pubcomp.remove(&pubrec.packet_id);
                self.notify_queue();
            }
            return Ok(());
        }

        if let Some(publish) = self.outbound_inflight.get(&pubrec.packet_id) {
            self.awaiting_pubcomp.insert(pubrec.packet_id);
            if let Some(storage) = self.outbound_inflight_storage() {
                let inflight = InflightMessage::from_publish(
                    publish,
                    self.client_id.as_ref().unwrap().clone(),
                    InflightDirection::Outbound,
                    InflightPhase::AwaitingPubcomp,
                );
                if let Err(e) = storage.store_inflight_message(inflight).await {
                    debug!(
                        "failed to update inflight phase for {}: {e}",
                        pubrec.packet_id
                    );
                }
            }
        }
        let mut pub_rel = PubRelPacket::new(pubrec.packet_id);
        pub_rel.reason_code = ReasonCode::Success;
        self.write_to_client(Packet::PubRel(pub_rel)).await
    }

    pub(super) async fn handle_pubrel(&mut self, pubrel: PubRelPacket) -> Result<()> {
        let mut queued = false;
        let reason_code = if let Some(entry) = self.inflight_publishes.remove(&pubrel.packet_id) {
            let client_id = self.client_id.as_ref().unwrap();

            if let Some(ref storage) = self.storage {
                if let Err(e) = storage
                    .remove_inflight_message(
                        client_id,
                        pubrel.packet_id,
                        InflightDirection::Inbound,
                    )
                    .await
                {
                    debug!(
                        "failed to remove inbound inflight {}: {e}",
                        pubrel.packet_id
                    );
                }
            }

            if let InflightPublish::Pending(publish) = entry {
                let issued = self.queue_writes_issued();
                #[cfg(feature = "opentelemetry")]
                self.route_with_trace_context(&publish, client_id).await?;
                #[cfg(not(feature = "opentelemetry"))]
                self.route_publish(&publish, Some(client_id)).await;
                // SENTIO-PATCH: what routing queued for persistent sessions is on disk before
                // the PUBCOMP; the PUBCOMP waits for the next shared flush.
                queued = self.queue_writes_since(issued);
            }

            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };

        let pubcomp = Packet::PubComp(PubCompPacket::new_with_reason(
            pubrel.packet_id,
            reason_code,
        ));
        if queued {
            self.defer_ack(pubcomp).await
        } else {
            self.send_ack(pubcomp).await
        }
    }

    pub(super) async fn handle_pubcomp(&mut self, pubcomp: &PubCompPacket) {
        // SENTIO-PATCH: the acknowledged message's topic goes into the delivered event.
        if let Some(sent) = self.outbound_inflight.remove(&pubcomp.packet_id) {
            if let Some(storage) = self.outbound_inflight_storage() {
                if let Err(e) = storage
                    .remove_inflight_message(
                        self.client_id.as_ref().unwrap(),
                        pubcomp.packet_id,
                        InflightDirection::Outbound,
                    )
                    .await
                {
                    debug!(
                        "failed to remove outbound inflight {}: {e}",
                        pubcomp.packet_id
                    );
                }
            }
            tracing::trace!(
                packet_id = pubcomp.packet_id,
                inflight = self.outbound_inflight.len(),
                "Released outbound flow control quota on PUBCOMP"
            );

            if self.config.event_handler.is_some() && self.client_id.is_some() {
                let client_id = self.event_ids().client_id;
                if let Some(ref handler) = self.config.event_handler {
                    let event = MessageDeliveredEvent {
                        client_id,
                        packet_id: pubcomp.packet_id,
                        qos: QoS::ExactlyOnce,
                        topic: Arc::from(sent.topic_name.as_str()),
                    };
                    handler.on_message_delivered(event).await;
                }
            }

            self.forget_inflight_order(pubcomp.packet_id);
            self.awaiting_pubcomp.remove(&pubcomp.packet_id);
            self.notify_queue();
        }
    }

    pub(super) async fn send_routable(&mut self, routable: RoutableMessage) -> Result<()> {
        self.pending_target_flow = routable.target_flow;
        let result = self.send_publish(*routable.publish).await;
        self.pending_target_flow = None;
        result
    }

    pub(super) async fn send_publish(&mut self, mut publish: PublishPacket) -> Result<()> {
        publish.protocol_version = self.protocol_version;
        if publish.qos != QoS::AtMostOnce {
            debug_assert!(
                self.outbound_inflight.len() < usize::from(self.window),
                "QoS>0 send outside the outbound window"
            );
            let reusable = publish.packet_id.is_some_and(|id| {
                id != 0
                    && !self.outbound_inflight.contains_key(&id)
                    && !self.inflight_publishes.contains_key(&id)
            });
            if !reusable {
                publish.packet_id = Some(self.next_packet_id());
            }
        }

        let payload_size = publish.payload.len();
        tracing::debug!(
            topic = %publish.topic_name,
            qos = ?publish.qos,
            retain = publish.retain,
            payload_len = payload_size,
            packet_id = ?publish.packet_id,
            "Sending PUBLISH to client"
        );
        let qos = publish.qos;
        // SENTIO-PATCH: inside a delivery batch the PUBLISH is encoded straight into the
        // batch's buffer (no copy through `write_buffer`), and the topic is borrowed from the
        // packet rather than cloned for the write.
        let packet = Packet::Publish(publish);
        let max_size = self.client_max_packet_size;
        let encoded = match self.batch_buffer() {
            Some(coalesced) => {
                let start = coalesced.len();
                encode_packet_to_buffer(&packet, coalesced)?;
                let encoded = coalesced.len() - start;
                if max_size.is_some_and(|max| encoded > max as usize) {
                    coalesced.truncate(start);
                }
                encoded
            }
            None => {
                self.write_buffer.clear();
                encode_packet_to_buffer(&packet, &mut self.write_buffer)?;
                self.write_buffer.len()
            }
        };
        if let Some(max) = max_size {
            if encoded > max as usize {
                debug!(
                    packet_size = encoded,
                    max_packet_size = max,
                    "Discarding PUBLISH exceeding client Maximum Packet Size"
                );
                return Ok(());
            }
        }
        let Packet::Publish(publish) = packet else {
            unreachable!("encoded a PUBLISH")
        };
        let tracked = publish.packet_id.filter(|_| qos != QoS::AtMostOnce);
        if let Some(packet_id) = tracked {
            if let Some(storage) = self.outbound_inflight_storage() {
                let inflight = InflightMessage::from_publish(
                    &publish,
                    self.client_id.as_ref().unwrap().clone(),
                    InflightDirection::Outbound,
                    InflightPhase::AwaitingPubrec,
                );
                if let Err(e) = storage.store_inflight_message(inflight).await {
                    debug!("failed to persist outbound inflight {packet_id}: {e}");
                }
            }
            // SENTIO-PATCH: an id is sent only when it is not in flight (see above), so it is
            // not in `inflight_order` either: no linear `retain` before the push.
            debug_assert!(!self.inflight_order.contains(&packet_id));
            self.inflight_order.push_back(packet_id);
        }
        // SENTIO-PATCH: a PUBLISH that only joins the batch's buffer writes nothing, so it
        // needs no write deadline (the batch's one write has its own, `write_coalesced`);
        // making one read the clock for every PUBLISH of a batch.
        let written = if self.batch_takes_without_writing() {
            Ok(Ok(()))
        } else {
            let write_timeout = self.write_timeout();
            tokio::time::timeout(
                write_timeout,
                self.write_publish_bytes(&publish.topic_name, qos),
            )
            .await
            .map_err(|_| {
                warn!(
                    topic = ?publish.topic_name, // SENTIO-PATCH: escaped, not raw
                    timeout = ?write_timeout,
                    "Transport write stalled; treating the client as gone"
                );
                MqttError::Timeout
            })
        };
        // In flight from here whether or not the write went through: a connection that fails
        // here hands it back to its session queue (`drop_unsent`, the takeover re-queue).
        if let Some(packet_id) = tracked {
            self.outbound_inflight.insert(packet_id, publish);
        }
        written??;
        self.stats.publish_sent(payload_size);
        Ok(())
    }

    /// SENTIO-PATCH: removes an acknowledged id from the send order. Acks mostly come in the
    /// order the PUBLISHes went out, so the id is usually at the front; upstream scanned the
    /// whole window (`VecDeque::retain`) per ack.
    fn forget_inflight_order(&mut self, packet_id: u16) {
        if self.inflight_order.front() == Some(&packet_id) {
            self.inflight_order.pop_front();
        } else if let Some(at) = self.inflight_order.iter().position(|id| *id == packet_id) {
            self.inflight_order.remove(at);
        }
    }

    /// SENTIO-PATCH: the buffer a delivery batch collects its PUBLISHes in (see
    /// `send_lane_batch`); QUIC writes each PUBLISH to its own stream instead.
    fn batch_buffer(&mut self) -> Option<&mut bytes::BytesMut> {
        if cfg!(all(not(target_arch = "wasm32"), feature = "transport-quic")) {
            return None;
        }
        self.coalesced.as_mut()
    }

    /// SENTIO-PATCH: whether `write_publish_bytes` would only leave the PUBLISH in the batch
    /// buffer (below the 64 KiB at which it writes the buffer out).
    fn batch_takes_without_writing(&self) -> bool {
        !cfg!(all(not(target_arch = "wasm32"), feature = "transport-quic"))
            && self
                .coalesced
                .as_ref()
                .is_some_and(|coalesced| coalesced.len() < COALESCED_WRITE_AT)
    }

    /// Wakes this handler's drain; every trigger goes through the queue's Notify.
    pub(super) fn notify_queue(&self) {
        if let Some(queue) = &self.queue {
            queue.notify();
        }
    }

    /// One drain batch: at most `min(free window, drain_batch)` messages from the front of
    /// the session queue, only when the QoS>0 lane is empty (it is older than the queue).
    /// Re-arms itself through the Notify when anything is left, so the socket is serviced in
    /// between batches.
    pub(super) async fn drain_backlog(&mut self) -> Result<()> {
        // SENTIO-PATCH: the batch's PUBLISHes go out in one write (see `send_lane_batch`).
        self.coalesced = Some(bytes::BytesMut::new());
        let drained = self.drain_backlog_coalesced().await;
        let written = self.write_coalesced().await;
        drained.and(written)
    }

    async fn drain_backlog_coalesced(&mut self) -> Result<()> {
        let Some(queue) = self.queue.clone() else {
            return Ok(());
        };
        if queue.count() == 0 || !self.qos1_lane_is_empty() {
            return Ok(());
        }
        let free = usize::from(self.window).saturating_sub(self.outbound_inflight.len());
        if free == 0 {
            return Ok(());
        }
        // SENTIO-PATCH: each message's queue file is deleted only after its outbound inflight
        // copy has been issued (by `send_routable`), so a kill -9 never finds it in neither.
        let batch = queue
            .take_keeping_files(free.min(self.config.drain_batch.max(1)))
            .await;
        let started = tokio::time::Instant::now();
        let budget = self.batch_time_budget();
        let mut pending = batch.into_iter();
        while let Some((seq, message)) = pending.next() {
            if self.being_displaced() {
                queue.forget_taken(seq);
                self.held.push(message);
                self.held.extend(pending.map(|(seq, message)| {
                    queue.forget_taken(seq);
                    message
                }));
                return Ok(());
            }
            let routable = RoutableMessage {
                target_flow: message.target_flow,
                publish: Box::new(message.to_publish_packet()),
            };
            let sent = self.send_routable(routable).await;
            queue.forget_taken(seq);
            if let Err(e) = sent {
                self.held.extend(pending.map(|(seq, message)| {
                    queue.forget_taken(seq);
                    message
                }));
                return Err(e);
            }
            if started.elapsed() > budget {
                // Forgotten first: where the re-queue reuses a sequence number, its write
                // replaces the pending delete; the writer writes before it deletes.
                let rest: Vec<QueuedMessage> = pending
                    .map(|(seq, message)| {
                        queue.forget_taken(seq);
                        message
                    })
                    .collect();
                queue.requeue_front_in_epoch(rest, self.queue_epoch);
                break;
            }
        }
        queue.finish_drain();
        if queue.count() > 0 {
            queue.notify();
        }
        Ok(())
    }

    #[cfg(all(not(target_arch = "wasm32"), feature = "transport-quic"))]
    fn build_server_stream_manager(
        &self,
    ) -> crate::broker::server_stream_manager::ServerStreamManager {
        let conn = self.quic_connection.clone().unwrap();
        let manager = crate::broker::server_stream_manager::ServerStreamManager::new(
            conn,
            self.protocol_version,
            self.config.max_packet_size,
        )
        .with_strategy(self.server_delivery_strategy);
        let manager = match self.read_share.as_ref() {
            Some(share) => manager.with_read_budget(share.budget().clone()),
            None => manager,
        };
        match self.quic_packet_tx.clone() {
            Some(tx) => manager.with_packet_tx(tx),
            None => manager,
        }
    }

    #[cfg(all(not(target_arch = "wasm32"), feature = "transport-quic"))]
    async fn write_publish_bytes(&mut self, topic: &str, qos: QoS) -> Result<()> {
        use crate::broker::config::ServerDeliveryStrategy;

        if self.quic_connection.is_some() {
            if let Some(flow_id) = self.pending_target_flow {
                if self.server_stream_manager.is_none() {
                    self.server_stream_manager = Some(self.build_server_stream_manager());
                }
                return self
                    .server_stream_manager
                    .as_mut()
                    .unwrap()
                    .write_publish_to_flow(flow_id, &self.write_buffer)
                    .await;
            }
            if self.server_delivery_strategy == ServerDeliveryStrategy::ControlOnly {
                return self.transport.write(&self.write_buffer).await;
            }
            if self.server_stream_manager.is_none() {
                self.server_stream_manager = Some(self.build_server_stream_manager());
            }
            self.server_stream_manager
                .as_mut()
                .unwrap()
                .write_publish(topic, &self.write_buffer, qos)
                .await
        } else {
            self.transport.write(&self.write_buffer).await
        }
    }

    #[cfg(any(target_arch = "wasm32", not(feature = "transport-quic")))]
    async fn write_publish_bytes(&mut self, _topic: &str, _qos: QoS) -> Result<()> {
        // SENTIO-PATCH: inside a delivery batch the bytes were encoded into `coalesced` and
        // are written once (64 KiB at most at a time).
        if let Some(coalesced) = self.coalesced.as_mut() {
            if coalesced.len() >= COALESCED_WRITE_AT {
                self.transport.write(&coalesced[..]).await?;
                coalesced.clear();
            }
            return Ok(());
        }
        self.transport.write(&self.write_buffer).await
    }

    /// Reloads the session's persisted inflight state after a restart: unacknowledged
    /// publishes go back to the front of the queue and are re-sent as duplicates through the
    /// normal window, outbound exactly-once messages awaiting completion get their release
    /// packet again, and inbound exactly-once state is restored so a repeated publish is not
    /// delivered twice.
    pub(super) async fn load_persisted_inflight(&mut self, queue: &QueueHandle) -> Result<()> {
        let (Some(storage), Some(client_id)) = (self.storage.clone(), self.client_id.clone())
        else {
            return Ok(());
        };
        let mut inflights = match storage.get_inflight_messages(&client_id).await {
            Ok(msgs) => msgs,
            Err(e) => {
                warn!("failed to load inflight messages for {client_id}: {e}");
                return Ok(());
            }
        };
        inflights.sort_by_key(|msg| (msg.stored_at_secs, msg.packet_id));

        let mut requeue = Vec::new();
        for msg in inflights {
            match msg.direction {
                InflightDirection::Outbound => match msg.phase {
                    InflightPhase::AwaitingPubrec => {
                        let mut queued = QueuedMessage::new(
                            msg.to_publish_packet(),
                            client_id.clone(),
                            msg.qos,
                            Some(msg.packet_id),
                        );
                        queued.dup = true;
                        requeue.push(queued);
                    }
                    InflightPhase::AwaitingPubcomp => {
                        let publish = msg.to_publish_packet();
                        self.inflight_order.push_back(msg.packet_id);
                        self.outbound_inflight.insert(msg.packet_id, publish);
                        self.awaiting_pubcomp.insert(msg.packet_id);
                        let mut pubrel = PubRelPacket::new(msg.packet_id);
                        pubrel.reason_code = ReasonCode::Success;
                        self.write_to_client(Packet::PubRel(pubrel)).await?;
                    }
                    InflightPhase::AwaitingPubrel => {}
                },
                InflightDirection::Inbound => {
                    let publish = msg.to_publish_packet();
                    self.inflight_publishes
                        .insert(msg.packet_id, InflightPublish::Pending(publish));
                }
            }
        }
        if !requeue.is_empty() {
            let packet_ids: Vec<u16> = requeue.iter().filter_map(|m| m.packet_id).collect();
            debug!(
                client_id = %client_id,
                count = requeue.len(),
                "Re-queued persisted inflight messages for redelivery"
            );
            queue.requeue_front_in_epoch(requeue, self.queue_epoch);
            for packet_id in packet_ids {
                if let Err(e) = storage
                    .remove_inflight_message(&client_id, packet_id, InflightDirection::Outbound)
                    .await
                {
                    debug!("failed to remove reloaded inflight {packet_id}: {e}");
                }
            }
        }
        self.advance_packet_id_past_inflight();
        Ok(())
    }
}
