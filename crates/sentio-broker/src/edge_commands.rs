//! The cloud's end of commands sent down through an edge: the edge publishes where the
//! commands it got stand on `edges/<id>/up/commands` (upserts, as the registry and alerts);
//! each is applied to this node's command ([`Commands::from_edge`]: forward only, only for a
//! device that edge registered) before the tap returns, so the PUBACK means "recorded".
//! Going down is the command desk's (`edges/<id>/down/commands`, through the courier).
//!
//! **Invariant:** no PUBACK for a report not applied; an undecodable one is never
//! acknowledged and disconnects the edge.

use std::time::Duration;

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_pipeline::actuate::Commands;
use sentio_store::wire;
use tracing::{debug, warn};

use crate::clients::Clients;
use crate::uplink::sender;

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
        Err(e) => {
            warn!(edge = %edge, error = %e, "edge command states refused: they cannot be decoded; disconnecting the edge without an acknowledgement");
            clients.disconnect(&[event.client_id.to_string()]).await;
            return std::future::pending().await;
        }
    };
    let mut wait = Duration::from_millis(100);
    let mut next = 0;
    while let Some(c) = reported.get(next) {
        match commands.from_edge(&edge, c).await {
            Ok(()) => next += 1,
            Err(e) => {
                warn!(edge = %edge, command = %c.id, error = %e, retry_in = ?wait, "edge command state not stored yet; PUBACK held");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    debug!(edge = %edge, commands = reported.len(), "edge command states applied");
    PublishAction::Handled
}
