//! The node as a whole: telemetry in through MQTT and HTTP and back out through the API, a
//! restart, clear errors at startup, and its configuration file.

mod config_file;
mod front_door;
mod shutdown;
mod startup;
