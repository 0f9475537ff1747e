//! The node's own way into its broker ([`sentio_pipeline::actuate::Courier`]): commands and
//! desired twins are routed as if published by the node (no client, so no ACL, no quota), and
//! the device exchange (PUBACKs of commands, replies, reported twins, subscriptions to the
//! command topic) is handed back to the pipeline's desks ([`Exchange`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mqtt5::QoS;
use mqtt5::packet::publish::PublishPacket;
use sentio_core::topic::{self, Exchange as Topic};
use sentio_core::{CommandId, DeviceId, EdgeId, acl};
use sentio_pipeline::Ingest;
use sentio_pipeline::actuate::{Commands, Courier, Twins};

use crate::clients::Clients;

/// Publishes into the broker through its router.
pub(crate) struct BrokerCourier {
    /// Holds the router weakly (see [`Clients::router`]).
    pub(crate) clients: Arc<Clients>,
}

impl Courier for BrokerCourier {
    fn publish<'a>(
        &'a self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Some(router) = self.clients.router() else {
                return;
            };
            let packet = PublishPacket::new(topic, payload, QoS::AtLeastOnce).with_retain(retain);
            router.route_message(&packet, None).await;
        })
    }

    fn is_connected(&self, device: &DeviceId) -> bool {
        self.clients.identity_connected(device.as_str())
    }

    fn edge_connected(&self, edge: &EdgeId) -> bool {
        self.clients
            .identity_connected(&sentio_store::edge_username(edge))
    }
}

/// The pipeline's desks, as the tap hands them what devices do. Every call is spawned: the
/// client's packets are not held while the store is written.
#[derive(Clone)]
pub(crate) struct Exchange {
    pub(crate) commands: Commands,
    pub(crate) twins: Twins,
    pub(crate) ingest: Ingest,
}

/// `device`, when the identity `user` is that device.
fn own(user: Option<&str>, device: &str) -> Option<DeviceId> {
    (user == Some(device))
        .then(|| DeviceId::parse(device).ok())
        .flatten()
}

impl Exchange {
    /// A device published on `topic`: a command reply or a reported twin is recorded.
    pub(crate) fn published(&self, user: Option<&str>, topic: &str, payload: &[u8]) {
        let Some((device, kind)) = topic::exchange(topic) else {
            return;
        };
        let Some(device) = own(user, device) else {
            return;
        };
        let payload = payload.to_vec();
        match kind {
            Topic::Reply(cid) => {
                let Ok(id) = CommandId::parse(cid) else {
                    return;
                };
                let commands = self.commands.clone();
                tokio::spawn(async move { commands.replied(&device, &id, &payload).await });
            }
            Topic::Reported => {
                let (twins, ingest) = (self.twins.clone(), self.ingest.clone());
                tokio::spawn(async move {
                    if let Err(e) = twins.reported(&device, &payload).await {
                        ingest.reject(&device, &format!("twin/reported: {e}")).await;
                    }
                });
            }
            Topic::Command(_) | Topic::Desired => {}
        }
    }

    /// A client acknowledged a message on `topic`: a device's own command is delivered.
    pub(crate) fn acknowledged(&self, user: Option<&str>, topic: &str) {
        if let Some((device, Topic::Command(cid))) = topic::exchange(topic)
            && let Some(device) = own(user, device)
            && let Ok(id) = CommandId::parse(cid)
        {
            let commands = self.commands.clone();
            tokio::spawn(async move { commands.delivered(&device, &id).await });
        }
    }

    /// A device was granted `filters`: if one covers its command topics, its pending
    /// commands go out (again), in order. An edge granted its `down/commands`: the pending
    /// commands of its devices go down (again); its `down/twins`: their desired twins.
    pub(crate) fn subscribed(&self, user: Option<&str>, filters: &[String]) {
        if let Some(edge) = user.and_then(crate::auth::edge_of) {
            let Ok(edge) = EdgeId::parse(edge) else {
                return;
            };
            let granted = |probe: String| filters.iter().any(|f| acl::matches(f, &probe));
            if granted(topic::downlink_commands(&edge)) {
                let (commands, edge) = (self.commands.clone(), edge.clone());
                tokio::spawn(async move { commands.edge_subscribed(&edge).await });
            }
            if granted(topic::downlink_twins(&edge)) {
                let twins = self.twins.clone();
                tokio::spawn(async move { twins.edge_subscribed(&edge).await });
            }
            return;
        }
        let Some(device) = user.and_then(|u| DeviceId::parse(u).ok()) else {
            return;
        };
        // Any command id stands for all: a filter either covers the level or it does not.
        let probe = topic::command(&device, &CommandId::parse("c").expect("valid"));
        if filters.iter().any(|f| acl::matches(f, &probe)) {
            let commands = self.commands.clone();
            tokio::spawn(async move { commands.subscribed(&device).await });
        }
    }
}
