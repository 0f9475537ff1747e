//! Edge nodes: the cloud's registry of edges and their confinement (`registry`), and the
//! store-and-forward uplink under real faults between two real `sentio` processes (`uplink`,
//! with the fault proxy of `support::fault_proxy`).

mod registry;
mod uplink;
