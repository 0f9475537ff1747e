//! Alerts and forecasts through the front door: alert kinds beyond a
//! series' own detectors, the device model, and forecasts with prediction intervals.

mod alert_kinds;
mod band;
mod device_model;
mod forecast;
mod history_seed;
