//! The publish tap: telemetry from the broker into the pipeline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mqtt5::QoS;
use mqtt5::broker::events::{
    BrokerEventHandler, ClientConnectEvent, ClientDisconnectEvent, ClientPublishEvent,
    ClientSubscribeEvent, ClientUnsubscribeEvent, MessageDeliveredEvent, PublishAction,
    RetainRequest, RetainedSetEvent, SubAckReasonCode,
};
use mqtt5::types::ReasonCode;
use sentio_core::{DeviceId, topic};
use sentio_pipeline::{Ingest, PipelineError};
use sentio_store::{DeviceRegistry, EdgeStore};
use tracing::{error, info, warn};

use crate::auth::is_device_user;
use crate::clients::Clients;
use crate::counters::Counters;
use crate::courier::Exchange;
use crate::limits::LimitState;

fn qos_index(qos: QoS) -> usize {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// Sends `devices/<id>/telemetry` payloads into the pipeline, tracks device presence and the
/// table of connected clients.
pub struct TelemetryTap {
    pub(crate) ingest: Ingest,
    pub(crate) registry: Arc<dyn DeviceRegistry>,
    pub(crate) edges: Arc<dyn EdgeStore>,
    pub(crate) reports: Arc<crate::uplink::EdgeReports>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) limits: Arc<LimitState>,
    pub(crate) exchange: Exchange,
}

impl BrokerEventHandler for TelemetryTap {
    fn on_client_connect<'a>(
        &'a self,
        event: ClientConnectEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let user = event.user_id.as_deref();
            let revoked = self.clients.connected(&event.client_id, user);
            self.limits.connected(
                &event.client_id,
                event.clean_start,
                event.session_expiry_interval,
            );
            // Counted even when closed below: its disconnect event uncounts it.
            if let Some(u) = user.filter(|u| is_device_user(u)) {
                self.ingest.presence().connected(u);
            }
            // A resumed session receives on its filters without a new SUBSCRIBE: a device
            // whose session covers its command topic gets its pending commands now.
            if !event.subscriptions.is_empty() {
                let filters: Vec<String> =
                    event.subscriptions.iter().map(|f| f.to_string()).collect();
                self.limits
                    .subscribed(&event.client_id, filters.iter().cloned());
                self.exchange.subscribed(user, &filters);
                self.clients.subscribed(&event.client_id, filters);
            }
            if revoked {
                // Revoked between its CONNECT and now: the revocation's sweep could not see it.
                info!(user = ?user, client_id = ?event.client_id, "closing a client whose credential was revoked while it connected");
                self.clients
                    .disconnect(&[event.client_id.to_string()])
                    .await;
            }
        })
    }

    fn on_client_subscribe<'a>(
        &'a self,
        event: ClientSubscribeEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let granted = event.subscriptions.iter().filter(|s| {
                matches!(
                    s.result,
                    SubAckReasonCode::GrantedQoS0
                        | SubAckReasonCode::GrantedQoS1
                        | SubAckReasonCode::GrantedQoS2
                )
            });
            let granted: Vec<String> = granted.map(|s| s.topic_filter.to_string()).collect();
            let over_quota = event
                .subscriptions
                .iter()
                .filter(|s| s.result == SubAckReasonCode::QuotaExceeded)
                .count();
            if over_quota > 0 {
                self.limits
                    .counters
                    .subscriptions_refused
                    .fetch_add(over_quota as u64, std::sync::atomic::Ordering::Relaxed);
                info!(client_id = ?event.client_id, refused = over_quota, max = self.limits.limits.max_subscriptions,
                    "SUBSCRIBE refused: the client holds its maximum of subscriptions (mqtt.limits.max_subscriptions)");
            }
            self.limits
                .subscribed(&event.client_id, granted.iter().cloned());
            let user = self.clients.username(&event.client_id);
            self.exchange.subscribed(user.as_deref(), &granted);
            self.clients.subscribed(&event.client_id, granted);
        })
    }

    fn on_message_delivered<'a>(
        &'a self,
        event: MessageDeliveredEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Counters::bump(&self.counters.acknowledged[qos_index(event.qos)]);
        if topic::exchange(&event.topic).is_some() {
            let user = self.clients.username(&event.client_id);
            self.exchange.acknowledged(user.as_deref(), &event.topic);
        }
        Box::pin(std::future::ready(()))
    }

    fn on_client_unsubscribe<'a>(
        &'a self,
        event: ClientUnsubscribeEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            self.clients
                .unsubscribed(&event.client_id, &event.topic_filters);
            self.limits
                .unsubscribed(&event.client_id, &event.topic_filters);
        })
    }

    fn on_client_disconnect<'a>(
        &'a self,
        event: ClientDisconnectEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            self.clients.disconnected(&event.client_id);
            self.limits.disconnected(&event.client_id);
            self.limits.retained.disconnected(&event.client_id);
            let Some(user) = event.user_id.as_deref() else {
                return;
            };
            if !is_device_user(user) {
                return;
            }
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
                && let Ok(device) = DeviceId::parse(user)
                && self.registry.is_registered(&device)
            {
                self.ingest
                    .reject(&device, &format!("disconnected by the broker: {why}"))
                    .await;
            }
        })
    }

    fn authorize_retained<'a>(
        &'a self,
        request: RetainRequest,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        let ok = self.limits.retained.admit(
            &request.client_id,
            request.user_id.as_deref(),
            &request.topic,
            request.payload_len,
        );
        Box::pin(std::future::ready(ok))
    }

    fn on_retained_set<'a>(
        &'a self,
        event: RetainedSetEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        self.limits.retained.stored(
            &event.topic,
            event.payload.len(),
            event.cleared,
            event.publisher.as_deref(),
        );
        Box::pin(std::future::ready(()))
    }

    fn on_client_publish<'a>(
        &'a self,
        event: ClientPublishEvent,
    ) -> Pin<Box<dyn Future<Output = PublishAction> + Send + 'a>> {
        Counters::bump(&self.counters.received[qos_index(event.qos)]);
        // Most PUBLISHes are only routed: no rate limit to wait for, no edge, telemetry or
        // subscriber queue to wait on. They are decided here, without the state of the full
        // path below (the store's and the edge's futures) allocated for each of them.
        if self.limits.limits.max_publish_rate == 0
            && topic::split_edge(&event.topic).is_none()
            && topic::telemetry_device(&event.topic).is_none()
            && self
                .limits
                .admit(&self.clients, &event.client_id, &event.topic)
                .is_none()
        {
            self.exchange
                .published(event.user_id.as_deref(), &event.topic, &event.payload);
            return Box::pin(std::future::ready(PublishAction::Continue));
        }
        Box::pin(async move {
            self.limits.throttle(&event.client_id).await;
            self.limits
                .before_route(&self.clients, &event.client_id, &event.topic)
                .await;
            match topic::split_edge(&event.topic) {
                Some((
                    edge,
                    tail @ (topic::UPLINK_POINTS | topic::UPLINK_BACKLOG | topic::UPLINK_ROLLUPS),
                )) => {
                    let lane = match tail {
                        topic::UPLINK_POINTS => sentio_store::Lane::Points,
                        topic::UPLINK_BACKLOG => sentio_store::Lane::Backlog,
                        _ => sentio_store::Lane::Rollups,
                    };
                    return crate::uplink::apply(
                        &self.edges,
                        &self.clients,
                        &self.counters,
                        (edge, lane),
                        &event,
                    )
                    .await;
                }
                Some((edge, tail @ (topic::UPLINK_REGISTRY | topic::UPLINK_ALERTS))) => {
                    let kind = if tail == topic::UPLINK_REGISTRY {
                        crate::uplink::Records::Registry
                    } else {
                        crate::uplink::Records::Alerts
                    };
                    return crate::uplink::apply_records(
                        &self.edges,
                        &self.clients,
                        (edge, kind),
                        &event,
                    )
                    .await;
                }
                Some((edge, topic::UPLINK_COMMANDS)) => {
                    return crate::edge_actuation::apply_commands(
                        &self.exchange.commands,
                        &self.clients,
                        edge,
                        &event,
                    )
                    .await;
                }
                Some((edge, topic::UPLINK_TWINS)) => {
                    return crate::edge_actuation::apply_twins(
                        &self.exchange.twins,
                        &self.clients,
                        edge,
                        &event,
                    )
                    .await;
                }
                Some((edge, topic::UPLINK_STATUS)) => {
                    return self.reports.report(&*self.edges, edge, &event).await;
                }
                Some((edge, topic::UPLINK_RESYNC)) => {
                    return crate::resync::apply(&self.edges, &self.clients, edge, &event).await;
                }
                _ => {}
            }
            let Some(device) = topic::telemetry_device(&event.topic) else {
                // Command replies and reported twins are recorded, and routed like any message.
                self.exchange
                    .published(event.user_id.as_deref(), &event.topic, &event.payload);
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
            let mut wait = std::time::Duration::from_millis(100);
            loop {
                match self.ingest.payload(&device, &event.payload, durable).await {
                    Ok(_) => return PublishAction::Continue,
                    // Refused payloads were recorded with their reason; they are not routed.
                    Err(PipelineError::Rejected(_)) => return PublishAction::Handled,
                    // The store failed (e.g. its disk is full). mqtt5 acknowledges whatever
                    // this returns, so a QoS 1/2 publish is held instead: retried until it is
                    // stored, the publisher waiting for its PUBACK meanwhile.
                    Err(e @ (PipelineError::StorageFull(_) | PipelineError::Store(_)))
                        if durable =>
                    {
                        warn!(device = %device, error = %e, retry_in = ?wait, "telemetry not stored yet; PUBACK held");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(5));
                    }
                    // Shutting down: never acknowledge what was not stored; the connection
                    // closes without a PUBACK and the publisher sends it again later.
                    Err(PipelineError::ShuttingDown) if durable => {
                        return std::future::pending().await;
                    }
                    Err(e) => {
                        error!(device = %device, error = %e, "telemetry not stored");
                        return PublishAction::Handled;
                    }
                }
            }
        })
    }
}
