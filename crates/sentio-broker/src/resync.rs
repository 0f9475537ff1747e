//! The cloud's end of a re-sync ([`sentio_store::resync`]): a part published by edge `<id>` on
//! `edges/<id>/up/resync` is decoded and applied once ([`EdgeStore::apply_resync`]: its
//! points and the run's progress in one transaction) before the tap returns, so its PUBACK
//! means "held by the cloud", as for the lanes (`uplink.rs`).
//!
//! **Invariant:** no PUBACK for a part that is not committed; an undecodable one is never
//! acknowledged and disconnects the edge.

use std::sync::Arc;
use std::time::Duration;

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_store::{EdgeStore, ResyncPart};
use tracing::{debug, info, warn};

use crate::clients::Clients;
use crate::uplink::sender;

/// Applies the re-sync part in `event` from `edge` (the topic's edge id).
pub(crate) async fn apply(
    edges: &Arc<dyn EdgeStore>,
    clients: &Clients,
    edge: &str,
    event: &ClientPublishEvent,
) -> PublishAction {
    let Some(edge) = sender(edge, event) else {
        return PublishAction::Handled;
    };
    let part = match ResyncPart::decode(&event.payload) {
        Ok(p) => p,
        Err(e) => {
            warn!(edge = %edge, error = %e, "re-sync part refused: it cannot be decoded; disconnecting the edge without an acknowledgement");
            clients.disconnect(&[event.client_id.to_string()]).await;
            return std::future::pending().await;
        }
    };
    let mut wait = Duration::from_millis(100);
    loop {
        match edges.apply_resync(&edge, part.clone()).await {
            Ok(applied) => {
                debug!(edge = %edge, run = part.id, part = part.part, points = part.points.len(), ?applied, "re-sync part");
                if part.last {
                    info!(edge = %edge, run = part.id, compared = part.figures.compared,
                        differing = part.figures.differing, "re-sync done");
                }
                return PublishAction::Handled;
            }
            Err(e) => {
                warn!(edge = %edge, run = part.id, error = %e, retry_in = ?wait, "re-sync part not stored yet; PUBACK held");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
