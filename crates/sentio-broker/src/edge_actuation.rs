//! The cloud's end of commands and twins sent down through an edge: the edge publishes where
//! the commands it got stand on `edges/<id>/up/commands` and its devices' reported twins on
//! `edges/<id>/up/twins` (upserts, as the registry and alerts); each record is applied to this
//! node's command ([`Commands::from_edge`]: forward only) or twin ([`Twins::from_edge`]:
//! forward only by the report's time), only for a device that edge registered, before the tap
//! returns, so the PUBACK means "recorded". Going down is the desks' (`edges/<id>/down/commands`,
//! `edges/<id>/down/twins`, through the courier).
//!
//! **Invariant:** no PUBACK for a record not applied; an undecodable message is never
//! acknowledged and disconnects the edge.

use std::future::Future;

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_core::EdgeId;
use sentio_pipeline::PipelineError;
use sentio_pipeline::actuate::{Commands, Twins};
use sentio_store::wire;
use tracing::debug;

use crate::clients::Clients;
use crate::uplink::{HeldPuback, refuse, sender};

/// Applies the command states in `event` from `edge` (the topic's edge id).
pub(crate) async fn apply_commands(
    commands: &Commands,
    clients: &Clients,
    edge: &str,
    event: &ClientPublishEvent,
) -> PublishAction {
    apply_each(
        (clients, edge, event),
        "edge command states",
        wire::decode_commands,
        |edge, c| async move {
            let what = format!("the state of command {}", c.id);
            (what, commands.from_edge(&edge, &c).await)
        },
    )
    .await
}

/// Applies the reported twins in `event` from `edge` (the topic's edge id).
pub(crate) async fn apply_twins(
    twins: &Twins,
    clients: &Clients,
    edge: &str,
    event: &ClientPublishEvent,
) -> PublishAction {
    apply_each(
        (clients, edge, event),
        "edge reported twins",
        wire::decode_reported,
        |edge, r| async move {
            let what = format!("the reported twin of {}", r.device);
            (what, twins.from_edge(&edge, &r).await)
        },
    )
    .await
}

/// Decodes `event`'s records and applies each in order, holding the PUBACK (retrying) while
/// one fails.
async fn apply_each<R: Clone, F, Fut>(
    (clients, edge, event): (&Clients, &str, &ClientPublishEvent),
    what: &str,
    decode: impl Fn(&[u8]) -> Result<Vec<R>, wire::WireError>,
    apply: F,
) -> PublishAction
where
    F: Fn(EdgeId, R) -> Fut,
    Fut: Future<Output = (String, Result<(), PipelineError>)>,
{
    let Some(edge) = sender(edge, event) else {
        return PublishAction::Handled;
    };
    let records = match decode(&event.payload) {
        Ok(r) => r,
        Err(e) => return refuse(clients, event, &edge, what, &e).await,
    };
    let mut held = HeldPuback::new();
    let mut next = 0;
    while let Some(r) = records.get(next) {
        match apply(edge.clone(), r.clone()).await {
            (_, Ok(())) => next += 1,
            (record, Err(e)) => held.wait(&edge, &record, &e).await,
        }
    }
    debug!(edge = %edge, records = records.len(), "{what} applied");
    PublishAction::Handled
}
