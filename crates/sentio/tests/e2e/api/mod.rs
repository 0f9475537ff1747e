//! The admin HTTP API: MQTT tokens, the audit log, a device's export, the broker's view, and
//! what a client without credentials can hold on the HTTP port (exhaustion), HTTPS, and user
//! accounts with their roles and sessions.

mod audit;
mod broker;
mod exhaustion;
mod export;
mod guessing;
mod https;
mod scopes;
mod system;
mod tokens;
mod users;
