//! The `sentio` node: its configuration ([`config::Config`], from `sentio.toml`) and the wiring
//! of every layer into one running process. The binary (`main.rs`) reads the configuration,
//! applies the environment and flags, and calls [`node::Node::start`]; end-to-end tests start
//! nodes the same way on port 0.

mod budget_alert;
pub mod config;
pub mod demo_rules;
mod edge_desk;
mod edge_watch;
pub mod node;
pub mod private;
pub mod token;
