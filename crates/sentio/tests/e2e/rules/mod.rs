//! Users' rules through the front door: the `/api/v1/rules` resource (and its 422 with a
//! position), and a rule's alert over MQTT: opened after `for`, kept open between the
//! condition and the clear condition, resolved on clear (running its `on_resolve` actions, not
//! when resolved by hand), its `for` timer surviving a restart, and the time of day read in the
//! configured zone.

mod ai_inputs;
mod alerts;
mod api;
mod label_groups;
mod on_resolve;
mod replay;
mod roles;
mod runtime;
mod time_of_day;
