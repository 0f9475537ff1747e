//! The alert lifecycle through the front door: acknowledge, resolve and comment by role, with
//! the audit log and the live stream; silences, channels and notifications.

mod lifecycle;
mod notify;
