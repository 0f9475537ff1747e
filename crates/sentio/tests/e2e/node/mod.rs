//! The node as a whole: telemetry in through MQTT and HTTP and back out through the API, a
//! restart, and clear errors at startup.

mod front_door;
mod startup;
