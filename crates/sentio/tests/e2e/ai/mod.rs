//! Alerts and forecasts through the front door: the demo fleet's faults, alert kinds beyond a
//! series' own detectors, and forecasts with prediction intervals.

mod alert_kinds;
mod demo_detection;
mod forecast;
