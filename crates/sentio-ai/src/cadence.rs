//! Silence detection: a device that stops reporting, judged against its own learned cadence.
//!
//! The typical interval between a device's readings is learnt from the readings' timestamps (a
//! slow average of the gaps, each gap clipped at four times the current estimate so one outage
//! does not teach "silence is normal"). A device is silent when nothing arrived for
//! `max(SILENCE_FACTOR × interval, interval + MIN_SLACK_MS)`. Only live devices can be silent:
//! if the last reading's timestamp was far from its arrival time (a replay of history, a batch
//! upload), the device is not expected to keep streaming, so no alert is raised.

use serde::{Deserialize, Serialize};

/// Gaps needed before the cadence is trusted.
pub const WARMUP_GAPS: u32 = 10;
/// Silence threshold, in typical intervals.
pub const SILENCE_FACTOR: f64 = 6.0;
/// Silence is never shorter than one interval plus this slack (network jitter, reconnects).
pub const MIN_SLACK_MS: f64 = 10_000.0;
/// A reading stamped further than this from its arrival is history, not a live stream.
pub const LIVE_SKEW_MS: i64 = 60_000;
/// Each false alarm marked on a silence alert multiplies the threshold by this.
pub const FALSE_ALARM_FACTOR: f64 = 1.5;

/// Cadence state of one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cadence {
    gaps: u32,
    interval_ms: f64,
    last_ts_ms: i64,
    last_arrival_ms: i64,
    live: bool,
    #[serde(default)]
    false_alarms: u32,
}

/// A device found silent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Silence {
    /// The learnt interval between readings (ms).
    pub interval_ms: f64,
    /// Time since the last reading arrived (ms).
    pub silent_for_ms: i64,
    /// Silence longer than this alerts (ms).
    pub threshold_ms: f64,
    /// Timestamp of the last reading (ms).
    pub last_ts_ms: i64,
}

impl Cadence {
    /// Takes a reading stamped `ts_ms` that arrived at `arrival_ms` (wall clock). Several
    /// metrics of one reading share a timestamp: call once per distinct timestamp or per point,
    /// a zero gap is ignored.
    pub fn observe(&mut self, ts_ms: i64, arrival_ms: i64) {
        if self.last_arrival_ms == 0 {
            self.last_ts_ms = ts_ms;
            self.last_arrival_ms = arrival_ms;
            self.live = (arrival_ms - ts_ms).abs() <= LIVE_SKEW_MS;
            return;
        }
        self.last_arrival_ms = self.last_arrival_ms.max(arrival_ms);
        if ts_ms <= self.last_ts_ms {
            return;
        }
        let gap = (ts_ms - self.last_ts_ms) as f64;
        self.last_ts_ms = ts_ms;
        self.live = (arrival_ms - ts_ms).abs() <= LIVE_SKEW_MS;
        self.gaps = self.gaps.saturating_add(1);
        if self.gaps == 1 {
            self.interval_ms = gap;
        } else {
            let clipped = gap.min(4.0 * self.interval_ms);
            let rate = (1.0 / f64::from(self.gaps)).max(0.05);
            self.interval_ms += rate * (clipped - self.interval_ms);
        }
    }

    /// The node (re)started at `now_ms`: silence is counted from then, not from before the
    /// restart, so devices are not blamed for the node's own downtime.
    pub fn resume(&mut self, now_ms: i64) {
        if self.last_arrival_ms != 0 {
            self.last_arrival_ms = self.last_arrival_ms.max(now_ms);
        }
    }

    /// The learnt interval (ms), once trusted.
    pub fn interval_ms(&self) -> Option<f64> {
        (self.gaps >= WARMUP_GAPS).then_some(self.interval_ms)
    }

    /// Whether the device is silent at wall-clock `now_ms`.
    pub fn silence(&self, now_ms: i64) -> Option<Silence> {
        let interval = self.interval_ms()?;
        if !self.live {
            return None;
        }
        let threshold = (SILENCE_FACTOR * interval).max(interval + MIN_SLACK_MS)
            * FALSE_ALARM_FACTOR.powi(self.false_alarms as i32);
        let silent_for = now_ms - self.last_arrival_ms;
        (silent_for as f64 > threshold).then_some(Silence {
            interval_ms: interval,
            silent_for_ms: silent_for,
            threshold_ms: threshold,
            last_ts_ms: self.last_ts_ms,
        })
    }

    /// A silence alert was marked as a false alarm: tolerate longer silences from now on.
    /// Returns the number of false alarms marked so far.
    pub fn mark_false_alarm(&mut self) -> u32 {
        self.false_alarms = self.false_alarms.saturating_add(1);
        self.false_alarms
    }

    /// The factor applied to the silence threshold by false-alarm marks.
    pub fn threshold_factor(&self) -> f64 {
        FALSE_ALARM_FACTOR.powi(self.false_alarms as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_cadence_and_flags_silence_only_when_live() {
        let mut c = Cadence::default();
        let t0 = 1_700_000_000_000;
        for i in 0..20 {
            c.observe(t0 + i * 2_000, t0 + i * 2_000 + 30);
        }
        assert!((c.interval_ms().unwrap() - 2_000.0).abs() < 1.0);
        let last = t0 + 19 * 2_000 + 30;
        assert!(c.silence(last + 5_000).is_none());
        let s = c
            .silence(last + 13_000)
            .expect("silent after 6.5 intervals > 12 s");
        assert_eq!(s.threshold_ms, 12_000.0);
        assert_eq!(c.mark_false_alarm(), 1);
        assert!(c.silence(last + 13_000).is_none(), "threshold grew to 18 s");
        assert!(c.silence(last + 19_000).is_some());

        // History replayed long after the fact is not a live stream.
        let mut replay = Cadence::default();
        for i in 0..20 {
            replay.observe(t0 + i * 1_000, t0 + 3_600_000 + i);
        }
        assert!(replay.silence(t0 + 7_200_000).is_none());
    }

    #[test]
    fn silence_counts_from_a_restart() {
        let mut c = Cadence::default();
        for i in 0..20 {
            c.observe(i * 1_000, i * 1_000);
        }
        assert!(c.silence(19_000 + 60_000).is_some());
        c.resume(19_000 + 60_000);
        assert!(c.silence(19_000 + 65_000).is_none());
        assert!(c.silence(19_000 + 72_000).is_some());
    }

    #[test]
    fn one_outage_does_not_teach_silence() {
        let mut c = Cadence::default();
        for i in 0..50 {
            c.observe(i * 1_000, i * 1_000);
        }
        c.observe(600_000, 600_000);
        assert!(c.interval_ms().unwrap() < 1_300.0);
    }
}
