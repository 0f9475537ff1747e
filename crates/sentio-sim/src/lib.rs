//! Sentio's device simulator: seeded, reproducible fleets of IoT devices with realistic
//! telemetry and injected faults, published over real MQTT.
//!
//! Three kinds of devices (see [`FleetSpec::devices`]):
//! - **rooms** (`room-N`) of a smart building: `temperature` (°C, 0.01), `humidity` (%, 0.1),
//!   `co2` (ppm, 1), `light` (lux, 1), `occupancy` (people), `power_w` (W, 1). Occupancy follows
//!   office hours (weekdays, UTC time of day of the timestamp) and drives CO2 and temperature;
//! - **pumps** (`pump-N`) of a factory: `vibration_rms` (mm/s, 0.01), `motor_current` (A, 0.01),
//!   `bearing_temp` (°C, 0.1), `power_w` (W, 1), following a load cycle;
//! - **wearables** (`wearable-N`): `heart_rate` (bpm, 1) responding to `activity` (steps/min).
//!
//! Rooms and pumps obey ([`Fleet::command`], [`Fleet::set_desired`], [`Fleet::reported`]):
//! a room its `lights`, `hvac_mode`, `hvac_setpoint` and `ventilation`, a pump its `speed`
//! (and `stop`, `start`); [`Fleet::properties`] lists them. Their `power_w` follows: lights
//! off, a setback or a slower pump draw less. Over MQTT ([`run`]) each device subscribes to
//! `devices/<id>/commands/+` and `devices/<id>/twin/desired`, answers each command on
//! `.../reply` (`{"status": "ok"}`, or `{"status": "failed", "reason"}`) and reports its
//! properties on `devices/<id>/twin/reported` when it connects and after each change.
//!
//! Faults ([`FaultKind`]): spikes, level shifts (HVAC failure, pump load change), stuck sensors,
//! drifts, progressive bearing faults and irregular heart-rhythm episodes. The first ones start
//! 60, 70 and 80 s after the fleet start (a room `temperature` level shift of 2-3 min, a pump
//! bearing fault of 2.5-3.5 min, a wearable irregular rhythm of 1.5-2.5 min; kinds absent from
//! the fleet are skipped), then one fault starts on a random free device every 1-3 minutes, each
//! lasting 20 s to 6 minutes. [`Fleet::ground_truth`] lists them, one record per affected metric
//! (a bearing fault names `vibration_rms` and `bearing_temp`; motor current rises too, by ~10 %,
//! but is not listed); [`Fleet::active_faults`] tells which are on at an instant.
//! The schedule depends only on the seed and the fleet size, as offsets from the start.
//!
//! The generator is pure: [`Fleet::step`] needs no clock, so tests can simulate hours in
//! milliseconds, and the same seed, start and timestamps always give the same readings.
//!
//! ```
//! use sentio_sim::{FaultKind, Fleet, FleetSpec};
//!
//! let spec = FleetSpec::demo();
//! assert_eq!(spec.devices()[0].id, "room-1");
//!
//! let start = 1_700_000_000_000; // Unix epoch ms
//! let mut fleet = Fleet::new(spec, start);
//! let mut readings = Vec::new();
//! for s in 0..600 {
//!     readings.extend(fleet.step(start + s * 1000)); // ten minutes at 1 Hz, no sleeping
//! }
//! let first = &readings[0];
//! assert!(first.get("temperature").unwrap() > 10.0);
//! assert!(first.to_json()["ts"] == start);
//!
//! // The ground truth names the injected faults; the first begin within 90 s.
//! let truth = fleet.ground_truth();
//! assert!(truth.iter().any(|f| f.kind == FaultKind::BearingFault && f.start_ms <= start + 90_000));
//!
//! // Same seed, same start, same timestamps: same values.
//! let (mut a, mut b) = (Fleet::new(spec, start), Fleet::new(spec, start));
//! assert_eq!(a.step(start + 5_000), b.step(start + 5_000));
//! ```
//!
//! Live publishing is [`run`], with a [`SimConfig`]: one MQTT connection per device (client id
//! and username = device id, password = its secret from `credentials`), JSON payloads
//! `{"ts": <ms>, "temperature": 21.53, ...}` on `devices/<id>/telemetry` with wall-clock
//! timestamps, reconnection with back-off, and a [`SimReport`] at the end.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sentio_sim::SimError> {
//! use std::time::Duration;
//! use sentio_sim::{FleetSpec, SimConfig};
//!
//! let mut config = SimConfig::new("127.0.0.1", 1883, FleetSpec::demo());
//! config.duration = Some(Duration::from_secs(300));
//! config.ground_truth = Some("truth.jsonl".into());
//! let report = sentio_sim::run(config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! println!("{} messages, {} errors", report.messages_published, report.errors());
//! # Ok(())
//! # }
//! ```

mod building;
mod control;
mod error;
mod factory;
mod faults;
mod fleet;
mod model;
mod mqtt;
mod noise;
mod register;
mod spec;
mod wearable;

pub use control::{Property, Values};
pub use error::SimError;
pub use faults::{Fault, FaultKind};
pub use fleet::{Fleet, Reading};
pub use mqtt::{SimConfig, SimReport, TickShape, run};
pub use register::register_via_api;
pub use spec::{DEMO_LIMITS, FleetSpec, SimDevice};

#[cfg(test)]
mod tests;
