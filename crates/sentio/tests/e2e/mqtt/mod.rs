//! The MQTT broker through real clients: protocol conformance, authentication (anonymous,
//! tokens, TLS, client certificates, WebSocket), limits, robustness and fuzzing.

mod anonymous;
mod conformance;
mod device_isolation;
mod fuzz;
mod limits;
mod login_guessing;
mod mosquitto_clients;
mod mtls;
mod protocol_edges;
mod retained_bounds;
mod robustness;
mod tls;
mod websocket;
