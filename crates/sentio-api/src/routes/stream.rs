//! `GET /api/v1/stream`: live telemetry, alert and presence events over a WebSocket.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use sentio_pipeline::Stats;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Actor, Viewer};
use crate::dto::StreamEvent;
use crate::scope::StreamScope;

#[derive(Debug, Deserialize)]
pub struct StreamParams {
    /// Only events of this device.
    device: Option<String>,
}

pub async fn stream(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Query(p): Query<StreamParams>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| forward(socket, s, actor, p.device))
}

/// Sends the bus's events to the socket: of `device` only if given, and only of devices within
/// the caller's scope.
async fn forward(mut socket: WebSocket, s: AppState, actor: Actor, device: Option<String>) {
    let mut scope = StreamScope::new(actor);
    let mut sub = s.bus.subscribe();
    loop {
        tokio::select! {
            ev = sub.recv() => {
                let text = match ev {
                    Ok(Some(ev)) => {
                        let ev = StreamEvent::from(&*ev);
                        if device.is_some() && ev.device() != device.as_deref() {
                            continue;
                        }
                        if !scope.sends(&s, ev.device()).await {
                            continue;
                        }
                        serde_json::to_string(&ev).expect("events serialise")
                    }
                    Ok(None) => break,
                    Err(missed) => {
                        Stats::add(&s.stats.bus_lagged, missed);
                        serde_json::to_string(&StreamEvent::Lagged { missed })
                            .expect("events serialise")
                    }
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
    }
}
