//! What the cloud sends down for this edge's devices: commands (`edges/<id>/down/commands`),
//! each kept in the edge's own store under the cloud's id and delivered by the edge's command
//! desk (now or when the device reconnects, across restarts), and desired twins
//! (`edges/<id>/down/twins`), each applied once per cloud version and published retained to
//! the device by the edge's twin desk. Where they stand goes up as records (`records.rs`,
//! `edges/<id>/up/commands`, `edges/<id>/up/twins`).
//!
//! **Invariant:** a command is created once, and a desired version applied once, on the edge
//! whatever the re-sends (the cloud sends them again each time the edge subscribes: it has
//! no persistent session).

use std::future::Future;
use std::pin::Pin;

use sentio_core::Command;
use sentio_store::wire::{self, DesiredRecord};
use tracing::{info, warn};

/// A boxed answer of a [`Desk`].
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// The edge's command and twin desks, as the uplink needs them.
pub trait Desk: Send + Sync {
    /// Keeps `command` (pending, under its id) and delivers it, unless it is known already:
    /// `Ok(false)` then, and nothing changes.
    fn adopt<'a>(&'a self, command: Command) -> Answer<'a>;
    /// Applies the cloud's desired document and publishes it to the device, unless that
    /// version was applied already: `Ok(false)` then, and nothing changes.
    fn adopt_desired<'a>(&'a self, record: DesiredRecord) -> Answer<'a>;
}

/// Takes the commands in a `down/commands` payload. An undecodable payload is logged and
/// dropped (the cloud's own encoding: nothing to retry); a command not kept now is kept when
/// the cloud sends it again (at the next subscribe).
pub(crate) async fn commands(desk: &dyn Desk, payload: &[u8]) {
    let commands = match wire::decode_commands(payload) {
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

/// Takes the desired twins in a `down/twins` payload, as [`commands`] does commands (one not
/// applied now goes when the cloud sends it again: at the next subscribe, or when the edge's
/// report shows it lacks it).
pub(crate) async fn twins(desk: &dyn Desk, payload: &[u8]) {
    let records = match wire::decode_desired(payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "desired twins from the cloud ignored: they cannot be decoded");
            return;
        }
    };
    for r in records {
        let (device, version) = (r.device.clone(), r.version);
        match desk.adopt_desired(r).await {
            Ok(true) => {}
            Ok(false) => info!(%device, version, "desired twin from the cloud applied already"),
            Err(e) => {
                warn!(%device, version, error = %e, "desired twin from the cloud not applied; applied when sent again")
            }
        }
    }
}
