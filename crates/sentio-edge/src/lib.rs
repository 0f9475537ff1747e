//! Edge mode: the uplink that forwards an edge node's committed points to a cloud Sentio.
//!
//! The edge's store is the outbox ([`sentio_store::OutboxStore`]): every committed append is a
//! batch with a sequence number. [`run`] keeps one MQTT 5 connection to the cloud's broker as
//! the edge's own identity (`edge:<id>`), publishes the batches after the acknowledged one at
//! QoS 1 on `edges/<id>/up/points` ([`sentio_store::wire`]), several in flight, and records a
//! batch as delivered only when the cloud's PUBACK for its last part arrives (the cloud sends
//! it after its commit). A lost connection, a refused batch or no acknowledgement at all
//! within [`UplinkSettings::ack_timeout`] while something is in flight (a black-holed link)
//! drops the connection;
//! the next one, after a growing back-off, resumes from the acknowledged batch. What the cloud
//! already holds is acknowledged again without being applied, so nothing is lost or doubled.
//!
//! The link is MQTT over TCP (`mqtt://`) or WebSocket (`ws://`, at the cloud's HTTP server's
//! `/mqtt`, for sites that allow only 443) (`transport`). With `mqtts://` or `wss://` it is
//! inside TLS (rustls, ring), trusting the cloud's certificate or CA pinned from a file
//! (`trust`); a certificate that does not verify ends the attempt
//! with the reason shown in [`UplinkState`]: there is never a plaintext fallback.
//!
//! The device registry and the alerts go up too, as their current state ([`RecordSources`]).
//!
//! With the aggregates policy ([`sentio_store::UplinkPolicy`]) the raw lanes carry only the
//! raw points around alerts ([`windows`]); the store records the 1-minute rollups as it rolls
//! minutes up, and they go on `edges/<id>/up/rollups`.
//!
//! Re-sync (`resync`): the cloud asks on `edges/<id>/down/resync` with its hourly digests of
//! the edge's series; the hours that differ go up again, raw, on `edges/<id>/up/resync`.
//!
//! Commands and twins (`down`): the cloud sends those for this edge's devices on
//! `edges/<id>/down/commands` and `edges/<id>/down/twins`; each command is kept once under the
//! cloud's id and delivered by the edge's desk, each desired version applied once and
//! published retained to the device; where the commands stand and what the devices reported
//! go up on `edges/<id>/up/commands` and `edges/<id>/up/twins` with the records, as soon as
//! they change.
//!
//! [`UplinkState`] is what the link shows (`/api/v1/uplink`, `/metrics`).

mod down;
mod link;
mod records;
mod resync;
mod settings;
mod state;
mod transport;
mod trust;
pub mod windows;

pub use down::{Answer, Desk};
pub use link::run;
pub use records::RecordSources;
pub use settings::{SettingsError, UplinkSettings, Upstream};
pub use state::{LinkSnapshot, UplinkState};
