//! On an edge, the uplink's way to the node's desks: commands and desired twins the cloud
//! sends down are kept, applied and delivered by the same [`Commands`] and [`Twins`] desks as
//! the edge's own; and [`watch_changes`] tells the uplink when a command or a twin changed,
//! so that their records go up at once.

use std::sync::Arc;

use sentio_core::Command;
use sentio_pipeline::actuate::{Commands, Twins};
use sentio_pipeline::{Bus, Event};
use sentio_store::wire::DesiredRecord;
use tokio::sync::Notify;

/// The command and twin desks as [`sentio_edge::Desk`].
pub(crate) struct EdgeDesk {
    pub(crate) commands: Commands,
    pub(crate) twins: Twins,
}

impl sentio_edge::Desk for EdgeDesk {
    fn adopt<'a>(&'a self, command: Command) -> sentio_edge::Answer<'a> {
        Box::pin(async move {
            self.commands
                .adopt(command)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn adopt_desired<'a>(&'a self, record: DesiredRecord) -> sentio_edge::Answer<'a> {
        Box::pin(async move {
            self.twins
                .adopt_desired(&record)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Notifies `changed` at each command or twin change on `bus` (and after missed events),
/// until the bus is gone.
pub(crate) async fn watch_changes(bus: Arc<dyn Bus>, changed: Arc<Notify>) {
    let mut events = bus.subscribe();
    loop {
        match events.recv().await {
            Ok(Some(e)) if matches!(*e, Event::Command { .. } | Event::Twin { .. }) => {
                changed.notify_one();
            }
            Ok(Some(_)) => {}
            Err(_missed) => changed.notify_one(),
            Ok(None) => return,
        }
    }
}
