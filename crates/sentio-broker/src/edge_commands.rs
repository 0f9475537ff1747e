//! The cloud's end of commands sent down through an edge: the edge publishes where the
//! commands it got stand on `edges/<id>/up/commands` (upserts, as the registry and alerts);
//! each is applied to this node's command ([`Commands::from_edge`]: forward only, only for a
//! device that edge registered) before the tap returns, so the PUBACK means "recorded".
//! Going down is the command desk's (`edges/<id>/down/commands`, through the courier).
//!
//! **Invariant:** no PUBACK for a report not applied; an undecodable one is never
//! acknowledged and disconnects the edge.

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_pipeline::actuate::Commands;
use sentio_store::wire;
use tracing::debug;

use crate::clients::Clients;
use crate::uplink::{HeldPuback, refuse, sender};

/// Applies the command states in `event` from `edge` (the topic's edge id).
pub(crate) async fn apply(
    commands: &Commands,
    clients: &Clients,
    edge: &str,
    event: &ClientPublishEvent,
) -> PublishAction {
    let Some(edge) = sender(edge, event) else {
        return PublishAction::Handled;
    };
    let reported = match wire::decode_commands(&event.payload) {
        Ok(r) => r,
        Err(e) => return refuse(clients, event, &edge, "edge command states", &e).await,
    };
    let mut held = HeldPuback::new();
    let mut next = 0;
    while let Some(c) = reported.get(next) {
        match commands.from_edge(&edge, c).await {
            Ok(()) => next += 1,
            Err(e) => {
                let what = format!("the state of command {}", c.id);
                held.wait(&edge, &what, &e).await;
            }
        }
    }
    debug!(edge = %edge, commands = reported.len(), "edge command states applied");
    PublishAction::Handled
}
