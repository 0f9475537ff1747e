//! Alerts and forecasts through the front door: alert kinds beyond a
//! series' own detectors, and forecasts with prediction intervals.

mod alert_kinds;
mod forecast;
