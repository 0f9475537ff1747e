//! The fleet view: a device compared with its peers (devices of the same kind reporting the same
//! metric). Rooms warm up together in the afternoon and pumps follow the same shift pattern, so
//! the peers' median removes what the fleet has in common; what is left, a device's offset from
//! its peers, is learnt per device (its usual offset and spread). A device whose offset departs
//! from its own usual offset by more than `K` spreads for `PERSIST` readings alerts, even when
//! its value alone looks ordinary for the time of day.
//!
//! The fleet's common level is the median of the peers' latest readings each less its own usual
//! offset, so one device out of line does not move the reference of the others (a plain median of
//! four values moves with any one of them, which made healthy peers alert beside a faulty one).
//! The median is taken over peers whose latest reading lies within `FRESH_INTERVALS` of the
//! group's typical reading interval (at most `FRESH_MS`) of the reading being judged: a peer's
//! latest reading stands for its value now only that long (a wearer's activity changes within
//! seconds, so a reading a minute old says nothing about now). It is recomputed at most once
//! per second of data time, and in a large group at most once per `members / MEDIAN_EVERY_SHARE`
//! readings (a fleet's readings arrive out of order by more than a second under a backlog; the
//! work per reading stays constant); at least `MIN_PEERS`
//! fresh devices are needed. Per device: a running mean and variance of the offset (time constant
//! `HORIZON` readings), frozen while the device is out of line, relearnt after `REBASE_AFTER`
//! consecutive out-of-line readings.

use std::collections::HashMap;

use sentio_core::DeviceId;
use serde::{Deserialize, Serialize};

/// Readings of a device before it may alert.
pub const WARMUP: u32 = 300;
/// Time constant of a device's offset statistics, in readings.
pub const HORIZON: f64 = 600.0;
/// Deviation, in spreads of the device's usual offset, beyond which a reading is out of line.
pub const K: f64 = 7.0;
/// Consecutive out-of-line readings needed for an alert.
pub const PERSIST: u32 = 5;
/// Consecutive out-of-line readings after which the new offset is accepted.
pub const REBASE_AFTER: u32 = 900;
/// Fresh devices needed for a comparison (including the device judged).
pub const MIN_PEERS: usize = 3;
/// A peer's reading older than this is never used (ms).
pub const FRESH_MS: i64 = 60_000;
/// A peer's reading further than this many of the group's typical reading intervals from the
/// reading judged is not used: peers are compared at (nearly) the same sample.
pub const FRESH_INTERVALS: f64 = 2.0;
/// In a group of `n` members the median is recomputed at most once per `n / MEDIAN_EVERY_SHARE`
/// readings (each recomputation reads every member).
pub const MEDIAN_EVERY_SHARE: usize = 16;
/// Each false alarm marked widens the device's band by this factor.
pub const FALSE_ALARM_FACTOR: f64 = 1.5;
/// A device is compared with its peers only where they explain most of its variation: the
/// variance of its offset from them must be at most this fraction of its own variance (rooms'
/// occupancies vary independently, so the peers tell nothing about one room's occupancy).
pub const MAX_OFFSET_VARIANCE_RATIO: f64 = 0.25;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Member {
    device: String,
    last_ts: i64,
    value: f64,
    n: u32,
    mean: f64,
    var: f64,
    out_run: u32,
    false_alarms: u32,
    /// Running mean and variance of the device's own value.
    #[serde(default)]
    own_mean: f64,
    #[serde(default)]
    own_var: f64,
}

/// The peers of one group (kind) for one metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerGroup {
    members: Vec<Member>,
    median: f64,
    median_ts: i64,
    fresh: usize,
    /// Typical interval between two readings of a member (ms; 0 until one was seen).
    #[serde(default)]
    interval_ms: f64,
    /// Where each member is in `members`, by device id (rebuilt when it does not cover them,
    /// e.g. after a restore): a group of 10,000 devices is not scanned for each reading.
    #[serde(skip)]
    index: HashMap<String, usize>,
    /// Readings since the median was last computed.
    #[serde(skip)]
    since_median: usize,
}

/// Verdict on one reading compared with the peers.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerVerdict {
    /// Whether the reading alerts.
    pub alert: bool,
    /// The peers' median.
    pub peer_median: f64,
    /// How many fresh devices the median was taken over.
    pub peers: usize,
    /// The device's usual offset from the median.
    pub usual_offset: f64,
    /// The value expected: median plus usual offset.
    pub expected: f64,
    /// Band edges.
    pub lower: f64,
    /// Band edges.
    pub upper: f64,
    /// Deviation in spreads.
    pub z: f64,
}

impl PeerGroup {
    /// Judges `value` of `device` at `ts_ms` against the peers, then learns from it. `None`
    /// while there are too few fresh peers or the device is still learning its usual offset.
    pub fn observe(&mut self, device: &DeviceId, ts_ms: i64, value: f64) -> Option<PeerVerdict> {
        if !value.is_finite() {
            return None;
        }
        let idx = match self.position(device) {
            Some(i) => i,
            None => {
                self.members.push(Member {
                    device: device.to_string(),
                    ..Member::default()
                });
                self.index
                    .insert(device.to_string(), self.members.len() - 1);
                self.median_ts = i64::MIN;
                self.members.len() - 1
            }
        };
        {
            let m = &mut self.members[idx];
            let gap = ts_ms.saturating_sub(m.last_ts) as f64;
            if m.last_ts != 0 && gap > 0.0 {
                self.interval_ms = if self.interval_ms == 0.0 {
                    gap
                } else {
                    self.interval_ms + 0.05 * (gap.min(4.0 * self.interval_ms) - self.interval_ms)
                };
            }
            m.last_ts = ts_ms;
            m.value = value;
        }
        // Readings of a large fleet arrive slightly out of order: one a little older than the
        // median's time is judged against it, as one a little newer is.
        self.since_median = self.since_median.saturating_add(1);
        if ts_ms.saturating_sub(self.median_ts).abs() >= 1_000
            && self.since_median > self.members.len() / MEDIAN_EVERY_SHARE
        {
            self.since_median = 0;
            let window = self.fresh_window_ms();
            let mut fresh: Vec<f64> = self
                .members
                .iter()
                .filter(|m| ts_ms.saturating_sub(m.last_ts).abs() <= window)
                .map(|m| m.value - m.mean)
                .collect();
            self.fresh = fresh.len();
            if let Some(median) = median(&mut fresh) {
                self.median = median;
            }
            self.median_ts = ts_ms;
        }
        if self.fresh < MIN_PEERS {
            return None;
        }
        let median = self.median;
        let peers = self.fresh;
        let m = &mut self.members[idx];
        let offset = value - median;
        let k = K * FALSE_ALARM_FACTOR.powi(m.false_alarms as i32);
        let floor = 1e-3 * median.abs().max(value.abs()).max(1e-6);
        let spread = m.var.sqrt().max(floor);
        let z = (offset - m.mean) / spread;
        let mut verdict = None;
        let mut out = false;
        if m.n >= WARMUP {
            let explained = m.var < MAX_OFFSET_VARIANCE_RATIO * m.own_var;
            out = explained && z.abs() > k;
            m.out_run = if out { m.out_run + 1 } else { 0 };
            let expected = median + m.mean;
            verdict = Some(PeerVerdict {
                alert: m.out_run >= PERSIST,
                peer_median: median,
                peers,
                usual_offset: m.mean,
                expected,
                lower: expected - k * spread,
                upper: expected + k * spread,
                z,
            });
            if m.out_run >= REBASE_AFTER {
                m.n = 0;
                m.out_run = 0;
                return verdict;
            }
        }
        if !out {
            m.n = m.n.saturating_add(1);
            let r = (1.0 / f64::from(m.n)).max(1.0 / HORIZON);
            let d = offset - m.mean;
            m.mean += r * d;
            m.var = (1.0 - r) * (m.var + r * d * d);
            let d = value - m.own_mean;
            m.own_mean += r * d;
            m.own_var = (1.0 - r) * (m.own_var + r * d * d);
        }
        verdict
    }

    /// A peer alert on `device` was marked as a false alarm: widens its band. Returns the
    /// false-alarm count and the band (in spreads) before and after.
    pub fn mark_false_alarm(&mut self, device: &DeviceId) -> Option<(u32, f64, f64)> {
        let i = self.position(device)?;
        let m = &mut self.members[i];
        let before = K * FALSE_ALARM_FACTOR.powi(m.false_alarms as i32);
        m.false_alarms = m.false_alarms.saturating_add(1);
        Some((
            m.false_alarms,
            before,
            K * FALSE_ALARM_FACTOR.powi(m.false_alarms as i32),
        ))
    }

    /// Forgets a device (erasure).
    pub fn remove(&mut self, device: &DeviceId) {
        self.members.retain(|m| m.device != device.as_str());
        self.index.clear();
        self.median_ts = i64::MIN;
    }

    /// How far (ms) a peer's latest reading may lie from the reading judged.
    fn fresh_window_ms(&self) -> i64 {
        if self.interval_ms > 0.0 {
            ((FRESH_INTERVALS * self.interval_ms).round() as i64).min(FRESH_MS)
        } else {
            FRESH_MS
        }
    }

    fn position(&mut self, device: &DeviceId) -> Option<usize> {
        if self.index.len() != self.members.len() {
            self.index = (self.members.iter().enumerate())
                .map(|(i, m)| (m.device.clone(), i))
                .collect();
        }
        self.index.get(device.as_str()).copied()
    }

    /// Devices in the group.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// The median of `values` (reordered), in linear time; `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (lower, &mut at_mid, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(at_mid);
    }
    // With an even count, the other middle value is the largest of the lower half.
    let below = lower.iter().copied().max_by(f64::total_cmp)?;
    Some(0.5 * (below + at_mid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(i: usize) -> DeviceId {
        DeviceId::parse(&format!("room-{i}")).unwrap()
    }

    /// Uniform noise of ±0.05 from a seeded linear congruential generator.
    fn sensor_noise(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.1
        }
    }

    #[test]
    fn a_room_leaving_its_peers_alerts_while_shared_swings_do_not() {
        let mut g = PeerGroup::default();
        let offsets = [0.0, 1.5, -0.8, 0.4];
        let mut noise = sensor_noise(11u64);
        let mut alerts = 0;
        for t in 0..2_000i64 {
            // A shared daily-like swing of 6 degrees: every room follows it.
            let shared = 21.0 + 3.0 * ((t as f64) / 300.0).sin();
            for (i, off) in offsets.iter().enumerate() {
                let v = shared + off + noise();
                if let Some(v) = g.observe(&room(i), t * 1_000, v) {
                    alerts += usize::from(v.alert);
                }
            }
        }
        assert_eq!(alerts, 0);
        // room-2 drifts up by 1.5 degrees while the others keep following the swing.
        let mut first = None;
        let mut others = 0;
        for t in 2_000..2_100i64 {
            let shared = 21.0 + 3.0 * ((t as f64) / 300.0).sin();
            for (i, off) in offsets.iter().enumerate() {
                let extra = if i == 2 { 1.5 } else { 0.0 };
                let v = shared + off + extra + noise();
                if let Some(v) = g.observe(&room(i), t * 1_000, v)
                    && v.alert
                {
                    if i != 2 {
                        others += 1;
                    } else if first.is_none() {
                        first = Some((i, t, v));
                    }
                }
            }
        }
        let (i, t, v) = first.expect("peer alert");
        assert_eq!(
            others, 0,
            "a healthy room alerted beside the one out of line"
        );
        assert_eq!(i, 2);
        assert!(t < 2_010);
        assert_eq!(v.peers, 4);
        assert!(g.mark_false_alarm(&room(2)).unwrap().2 > K);
    }

    /// Rooms reporting each second follow a shared swing; two of them pause for 50 s while the
    /// shared level steps (the heating switches). The third is not judged against their
    /// readings from before the step: a peer's latest reading stands for now only within a
    /// couple of the group's reading intervals.
    #[test]
    fn a_peer_reading_older_than_two_intervals_is_not_compared() {
        let mut g = PeerGroup::default();
        let offsets = [0.0, 1.5, -0.8];
        let mut noise = sensor_noise(3u64);
        let mut alerts = Vec::new();
        for t in 0..2_200i64 {
            let shared = 21.0 + 3.0 * (t as f64 / 300.0).sin() + if t >= 2_000 { 2.0 } else { 0.0 };
            for (i, off) in offsets.iter().enumerate() {
                if i < 2 && (2_000..2_050).contains(&t) {
                    continue;
                }
                if let Some(v) = g.observe(&room(i), t * 1_000, shared + off + noise())
                    && v.alert
                {
                    alerts.push((i, t));
                }
            }
        }
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    #[test]
    fn peers_that_vary_independently_are_not_compared() {
        // Occupancy-like: by day each room's count jumps on its own; at night every room is
        // empty; then one room fills. Its peers never moved with it, so they say nothing.
        let mut g = PeerGroup::default();
        let mut seed = 5u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut counts = [0.0f64; 4];
        let mut alerts = 0;
        for t in 0..4_100i64 {
            for (i, c) in counts.iter_mut().enumerate() {
                let v = if t < 2_000 {
                    if next() < 0.01 {
                        *c = (next() * 8.0).floor();
                    }
                    *c
                } else if t < 4_000 || i != 1 {
                    0.0
                } else {
                    3.0
                };
                if let Some(v) = g.observe(&room(i), t * 1_000, v) {
                    alerts += usize::from(v.alert);
                }
            }
        }
        assert_eq!(alerts, 0);
    }

    #[test]
    fn the_median_is_the_middle_of_the_sorted_values() {
        let mut noise = sensor_noise(5);
        for n in 1..40 {
            let values: Vec<f64> = (0..n).map(|_| noise()).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let expected = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
            };
            assert_eq!(median(&mut values.clone()), Some(expected), "{n} values");
        }
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn a_restored_or_shrunk_group_finds_its_members_again() {
        let mut g = PeerGroup::default();
        for t in 0..10i64 {
            for i in 0..5 {
                g.observe(&room(i), t * 1_000, 20.0 + i as f64);
            }
        }
        let mut restored: PeerGroup =
            serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        restored.observe(&room(3), 10_000, 23.0);
        assert_eq!(restored.len(), 5, "a known device is not added twice");
        assert!(restored.mark_false_alarm(&room(4)).is_some());
        restored.remove(&room(1));
        restored.observe(&room(4), 11_000, 24.0);
        assert_eq!(restored.len(), 4);
        assert_eq!(
            restored.mark_false_alarm(&room(4)).map(|(n, ..)| n),
            Some(2)
        );
        assert!(restored.mark_false_alarm(&room(1)).is_none());
    }

    #[test]
    fn a_large_group_read_out_of_order_still_finds_the_one_out_of_line() {
        let mut g = PeerGroup::default();
        let rooms = 200;
        let mut noise = sensor_noise(23);
        let (mut alerted, mut others) = (None, 0);
        for t in 0..500i64 {
            let shared = 21.0 + 3.0 * ((t as f64) / 300.0).sin();
            for i in 0..rooms {
                // Half the fleet's readings arrive 3 s late, interleaved with the others.
                let ts = (t - 3 * (i as i64 % 2)) * 1_000;
                let extra = if i == 7 && t >= 420 { 2.0 } else { 0.0 };
                let v = shared + (i % 10) as f64 * 0.3 + extra + noise();
                if let Some(v) = g.observe(&room(i), ts, v)
                    && v.alert
                {
                    if i == 7 {
                        alerted.get_or_insert(t);
                    } else {
                        others += 1;
                    }
                }
            }
        }
        assert_eq!(others, 0, "a healthy room alerted");
        let t = alerted.expect("the room out of line alerts");
        assert!((420..430).contains(&t), "alerted at {t}");
    }
}
