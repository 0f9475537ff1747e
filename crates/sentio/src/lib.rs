//! The `sentio` node: wiring of every layer into one running process. The binary (`main.rs`)
//! parses the command line and calls [`node::Node::start`]; end-to-end tests start nodes the
//! same way on port 0.

pub mod demo_eval;
pub mod node;
pub mod token;
