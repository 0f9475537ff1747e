//! The cloud's end of a re-sync ([`sentio_store::resync`]): a part published by edge `<id>` on
//! `edges/<id>/up/resync` is decoded and applied once ([`EdgeStore::apply_resync`]: its
//! points and the run's progress in one transaction) before the tap returns, so its PUBACK
//! means "held by the cloud", as for the lanes (`uplink.rs`).
//!
//! **Invariant:** no PUBACK for a part that is not committed; an undecodable one is never
//! acknowledged and disconnects the edge.

use std::sync::Arc;

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_store::{EdgeStore, ResyncPart};
use tracing::{debug, info};

use crate::clients::Clients;
use crate::uplink::{HeldPuback, refuse, sender};

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
        Err(e) => return refuse(clients, event, &edge, "re-sync part", &e).await,
    };
    let mut held = HeldPuback::new();
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
                let what = format!("re-sync part {} of run {}", part.part, part.id);
                held.wait(&edge, &what, &e).await;
            }
        }
    }
}
