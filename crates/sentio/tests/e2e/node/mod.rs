//! The node as a whole: telemetry in through MQTT and HTTP and back out through the API, a
//! restart, clear errors at startup, and its configuration file.

// Reads threads' priorities from /proc.
#[cfg(target_os = "linux")]
mod background;
mod config_file;
mod front_door;
mod shutdown;
mod startup;
