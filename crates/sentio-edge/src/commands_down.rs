//! Commands the cloud sends down for this edge's devices (`edges/<id>/down/commands`): each
//! is kept in the edge's own store under the cloud's id and delivered by the edge's command
//! desk ([`CommandDesk`], now or when the device reconnects, across restarts). Where they
//! stand goes up as records (`records.rs`, `edges/<id>/up/commands`).
//!
//! **Invariant:** a command is created once on the edge whatever the re-sends (the cloud sends
//! a pending command again each time the edge subscribes: it has no persistent session).

use std::future::Future;
use std::pin::Pin;

use sentio_core::Command;
use tracing::{info, warn};

/// The edge's command desk, as the uplink needs it.
pub trait CommandDesk: Send + Sync {
    /// Keeps `command` (pending, under its id) and delivers it, unless it is known already:
    /// `Ok(false)` then, and nothing changes.
    fn adopt<'a>(
        &'a self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

/// Takes the commands in a `down/commands` payload. An undecodable payload is logged and
/// dropped (the cloud's own encoding: nothing to retry); a command not kept now is kept when
/// the cloud sends it again (at the next subscribe).
pub(crate) async fn received(desk: &dyn CommandDesk, payload: &[u8]) {
    let commands = match sentio_store::wire::decode_commands(payload) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "commands from the cloud ignored: they cannot be decoded");
            return;
        }
    };
    for c in commands {
        let (device, id) = (c.device.clone(), c.id.clone());
        match desk.adopt(c).await {
            Ok(true) => {}
            Ok(false) => info!(%device, command = %id, "command from the cloud known already"),
            Err(e) => {
                warn!(%device, command = %id, error = %e, "command from the cloud not kept; kept when sent again")
            }
        }
    }
}
