//! Streaming anomaly detection and forecasting for Sentio: pure computation, no network.
//!
//! The main type is [`SeriesDetector`]: one per numeric series, fed each point as it arrives
//! ([`SeriesDetector::update`]) and answering with a [`Score`] that explains itself (expected value,
//! expected range, observed value, which detector fired). Its state is serde-serialisable, so it
//! survives restarts; [`DetectorConfig::default`] is the one parameter set for every series. The
//! same code scores live telemetry in `sentio serve` and CSV files offline (`sentio detect`).
//!
//! Modules: `detector` (the engine; method in the crate README), [`forecast`] (MSTL + AutoETS
//! forecasts with intervals, time to threshold, MASE; pure functions) and [`offline`] (the only
//! module that touches files or starts a process: CSV scoring, the NAB runner, forecast
//! evaluation on files).
//!
//! ```
//! use sentio_ai::{DetectorConfig, SeriesDetector};
//! let mut d = SeriesDetector::new(&DetectorConfig::default());
//! for i in 0..400 {
//!     let s = d.update(i * 1000, 20.0 + (i % 7) as f64 * 0.1);
//!     assert!(!s.alert);
//! }
//! assert!(d.update(400_000, 80.0).alert);
//! ```

pub mod cadence;
mod detector;
pub mod device_model;
mod error;
pub mod forecast;
mod guard;
pub mod limits;
pub mod offline;
pub mod peers;
pub mod relation;
#[cfg(test)]
mod test_noise;

pub use cadence::{Cadence, Silence};
pub use detector::{
    DetectorConfig, DetectorKind, Detectors, Score, SensitivityChange, SeriesDetector,
};
pub use device_model::{
    Adoption, Contribution, DeviceEvent, DeviceModel, DeviceModelConfig, DeviceVerdict, LearnReason,
};
pub use error::AiError;
pub use forecast::{ForecastPoint, ThresholdEta, forecast, time_to_threshold, try_forecast};
pub use limits::{Limit, LimitObservation, LimitWatch};
pub use offline::{
    CsvReport, NabOptions, NabReport, parse_timestamp, run_nab, score_csv, score_csv_file,
    score_csv_file_with, score_csv_with,
};
pub use peers::{PeerGroup, PeerVerdict};
pub use relation::{DeviceRelations, RelationVerdict};
