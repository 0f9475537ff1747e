//! `GET /api/v1/stream`: live telemetry, alert and presence events over a WebSocket.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use sentio_pipeline::{Event, Stats};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Admin;

#[derive(Debug, Deserialize)]
pub struct StreamParams {
    /// Only events of this device.
    device: Option<String>,
}

pub async fn stream(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<StreamParams>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| forward(socket, s, p.device))
}

async fn forward(mut socket: WebSocket, s: AppState, device: Option<String>) {
    let mut sub = s.bus.subscribe();
    loop {
        tokio::select! {
            ev = sub.recv() => {
                let text = match ev {
                    Ok(Some(ev)) => {
                        if let Some(d) = &device {
                            let of = match &*ev {
                                Event::Telemetry { device, .. } | Event::Presence { device, .. } => device,
                                Event::Alert { alert } => &alert.device,
                            };
                            if of != d {
                                continue;
                            }
                        }
                        serde_json::to_string(&*ev).expect("events serialise")
                    }
                    Ok(None) => break,
                    Err(missed) => {
                        Stats::add(&s.stats.bus_lagged, missed);
                        json!({"type": "lagged", "missed": missed}).to_string()
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
