//! Sentio's end-to-end tests, one binary organised by feature: each test starts a whole node
//! (in process on port 0, or the real `sentio` binary) and drives it through the front door
//! with real MQTT, HTTP and WebSocket clients.
//!
//! - `mqtt`: the broker (conformance, limits, TLS, WebSocket, crash robustness, fuzzing);
//! - `api`: the admin API (tokens, audit log, export, broker view);
//! - `storage`: what is kept (query, retention, backup, erasure, a full disk, kill -9);
//! - `ai`: alerts and forecasts;
//! - `dashboard`: the web page in a real browser (chromium via playwright-core) and its session;
//! - `alerts`: how people handle alerts (acknowledge, resolve, comment, silences) and how they
//!   are notified;
//! - `node`: the node as a whole (the telemetry loop, startup errors);
//! - `edge`: edge nodes (the cloud's registry of edges, the uplink under cuts, black holes
//!   and kill -9);
//! - `demo_loop`: `serve --demo` closes the loop (its devices obey, its rules are installed);
//! - `rules`: users' rules (the API, their alerts over MQTT, their timers across a restart);
//! - `tidy`: source-tree checks (every source file starts with a `//!` comment);
//! - `support`: the shared helpers (node starters, clients, raw MQTT packets).
//!
//! Tests run as threads of one process: none may change process-wide state (environment,
//! current directory, a fixed port). The few heavy ones take [`support::heavy`] so that they
//! do not overlap each other.

mod actuation;
mod ai;
mod alerts;
mod api;
mod dashboard;
mod demo_loop;
mod edge;
mod mqtt;
mod node;
mod rules;
mod storage;
mod support;
mod tidy;
