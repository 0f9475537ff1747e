//! The cloud's end of an edge's uplink: a batch published by edge `<id>` on
//! `edges/<id>/up/points` is decoded ([`sentio_store::wire`]) and applied exactly once
//! ([`EdgeStore::apply_uplink`]: points and progress in one transaction) before the tap
//! returns, so the PUBACK the edge waits for means "held by the cloud". A batch applied before
//! is acknowledged without being applied. The cloud's late-point window does not apply: the
//! edge accepted these points, and a week of backlog must go in.
//!
//! **Invariant:** no PUBACK for a batch that is not committed. A payload that cannot be decoded
//! is never acknowledged: the edge is disconnected (it retries, and the refusal is counted and
//! logged); a store failure holds the PUBACK and retries, as for device telemetry.

use std::sync::Arc;
use std::time::Duration;

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_core::EdgeId;
use sentio_store::{Applied, EdgeStore, Lane, UplinkBatch, edge_username, wire};
use tracing::{debug, warn};

use crate::clients::Clients;
use crate::counters::Counters;

/// Applies the batch in `event` from `edge` (already known to be the topic's edge id).
pub(crate) async fn apply(
    edges: &Arc<dyn EdgeStore>,
    clients: &Clients,
    counters: &Counters,
    edge: &str,
    event: &ClientPublishEvent,
) -> PublishAction {
    let Ok(edge) = EdgeId::parse(edge) else {
        return PublishAction::Handled;
    };
    // Only the edge itself (a token with a wide ACL may publish here too, and is ignored).
    if event.user_id.as_deref() != Some(edge_username(&edge).as_str()) {
        return PublishAction::Handled;
    }
    let batch = match wire::decode(&event.payload) {
        Ok(b) => b,
        Err(e) => {
            Counters::bump(&counters.edge_batches_refused);
            warn!(edge = %edge, error = %e, bytes = event.payload.len(),
                "edge batch refused: it cannot be decoded; disconnecting the edge without an acknowledgement");
            clients.disconnect(&[event.client_id.to_string()]).await;
            return std::future::pending().await;
        }
    };
    let (seq, points) = (batch.seq, batch.points.len() as u64);
    let mut wait = Duration::from_millis(100);
    loop {
        let applied = edges
            .apply_uplink(UplinkBatch {
                edge: edge.clone(),
                incarnation: batch.incarnation,
                lane: Lane::Points,
                seq,
                part: batch.part,
                points: batch.points.clone(),
            })
            .await;
        match applied {
            Ok(Applied::Stored) => {
                Counters::bump(&counters.edge_batches_stored);
                counters
                    .edge_points_stored
                    .fetch_add(points, std::sync::atomic::Ordering::Relaxed);
                debug!(edge = %edge, seq = seq.0, part = batch.part, points, "edge batch stored");
                return PublishAction::Handled;
            }
            Ok(Applied::Duplicate) => {
                Counters::bump(&counters.edge_batches_duplicate);
                debug!(edge = %edge, seq = seq.0, "edge batch already held; acknowledged again");
                return PublishAction::Handled;
            }
            Err(e) => {
                warn!(edge = %edge, seq = seq.0, error = %e, retry_in = ?wait, "edge batch not stored yet; PUBACK held");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
