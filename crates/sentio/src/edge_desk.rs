//! On an edge, the uplink's way to the node's command desk: commands the cloud sends down are
//! kept and delivered by the same [`Commands`] desk as the edge's own.

use std::future::Future;
use std::pin::Pin;

use sentio_core::Command;
use sentio_pipeline::actuate::Commands;

/// The command desk as [`sentio_edge::CommandDesk`].
pub(crate) struct EdgeDesk(pub(crate) Commands);

impl sentio_edge::CommandDesk for EdgeDesk {
    fn adopt<'a>(
        &'a self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move { self.0.adopt(command).await.map_err(|e| e.to_string()) })
    }
}
