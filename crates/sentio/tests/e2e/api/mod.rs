//! The admin HTTP API: MQTT tokens, the audit log, a device's export and the broker's view.

mod audit;
mod broker;
mod export;
mod tokens;
