//! Acting on devices through the front door: commands (`/api/v1/devices/<id>/commands`,
//! delivered over MQTT, answered by the device) and twins (`/api/v1/devices/<id>/twin`,
//! desired published retained, reported by the device), with real rumqttc devices and real
//! restarts; and the device ACL around both.

mod acl;
mod commands;
pub(crate) mod device;
mod offline;
mod rule_actions;
mod twins;
