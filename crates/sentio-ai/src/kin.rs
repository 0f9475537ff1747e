//! [`Kin`]: the regime changes the devices of one kind made as normal, per metric: a
//! fleet-level regime memory consulted before a young series raises a change of level.
//!
//! Devices of one kind (the registry's `kind`: wearables, pumps, rooms) share their regimes: a
//! wearer rests, walks and runs, a room is lit by day and dark at night. A series whose own
//! history is young has not yet shown all of them, so its first walk leaves everything it has
//! learnt. Its kin may have: if another device of the kind swung from the level this series
//! had to the reading it moved to (or beyond), in the same direction and without an alert,
//! the change is one the kind makes as normal. A device's own first walk alerts, so the swing
//! that counts is one it made again (a regime *entered more than once*: a walk recurs). A
//! fault's rise alerts on the device that suffers it, so it is not such a swing; its return
//! is a swing the other way, which answers only a change in that direction. The swings are
//! in the metric's own values: one device's swing must cover both ends (two rooms at 21 °C
//! and 24 °C do not make 21 → 24 °C normal for either).
//!
//! Each [`crate::SeriesDetector`] keeps its quiet swings (`swings.rs`, saved with it); this
//! index holds them per kind and metric, filled as devices swing (after a restart, from
//! their next swing on), and is read only when an alert is about to open.

use std::collections::HashMap;

use sentio_core::DeviceId;

use crate::swings::covers;

/// Per metric, per device: the quiet swings, `[from, to]`.
type Swung = HashMap<String, HashMap<DeviceId, Vec<[f64; 2]>>>;

/// Per kind, per metric, per device: the quiet swings, `[from, to]`.
#[derive(Debug, Default)]
pub struct Kin {
    kinds: HashMap<String, Swung>,
}

impl Kin {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the quiet swings of `device`'s (of `kind`) `metric`.
    pub fn record(&mut self, kind: &str, metric: &str, device: &DeviceId, swings: &[[f64; 2]]) {
        let metrics = match self.kinds.get_mut(kind) {
            Some(m) => m,
            None => self.kinds.entry(kind.to_owned()).or_default(),
        };
        let devices = match metrics.get_mut(metric) {
            Some(d) => d,
            None => metrics.entry(metric.to_owned()).or_default(),
        };
        match devices.get_mut(device) {
            Some(r) => {
                r.clear();
                r.extend_from_slice(swings);
            }
            None => {
                devices.insert(device.clone(), swings.to_vec());
            }
        }
    }

    /// Whether a device of `kind` other than `device` swung `metric` from `from` to `to` (or
    /// beyond both) without an alert.
    pub fn held_elsewhere(
        &self,
        kind: &str,
        metric: &str,
        device: &DeviceId,
        from: f64,
        to: f64,
    ) -> bool {
        self.kinds
            .get(kind)
            .and_then(|m| m.get(metric))
            .is_some_and(|devices| {
                devices
                    .iter()
                    .any(|(d, legs)| d != device && covers(legs, from, to))
            })
    }

    /// Forgets a device (deleted or erased).
    pub fn forget(&mut self, device: &DeviceId) {
        for metrics in self.kinds.values_mut() {
            for devices in metrics.values_mut() {
                devices.remove(device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_noise::Noise;
    use crate::{DetectorConfig, SeriesDetector};

    /// A wearer's steps per minute, one reading a second: `rest` readings at about 3, then a
    /// walk at about 100 (reached over 20 readings) for `walk` readings.
    fn activity(noise: &mut Noise, rest: usize, walk: usize) -> Vec<f64> {
        (0..rest + walk)
            .map(|i| {
                let into = (i + 1).saturating_sub(rest).min(20) as f64 / 20.0;
                (3.0 + 97.0 * into + (1.0 + 4.0 * into) * noise.normal()).round()
            })
            .collect()
    }

    /// Feeds `values` (one a second, after the readings the detector has seen) to `detector`
    /// among `kin`, recording its quiet swings as the series watch does; returns the indices
    /// that alerted.
    fn feed(
        detector: &mut SeriesDetector,
        kin: &mut Kin,
        device: &DeviceId,
        values: &[f64],
    ) -> Vec<usize> {
        let mut alerts = Vec::new();
        let seen = detector.seen() as i64;
        for (i, &v) in values.iter().enumerate() {
            let ts = 1_700_000_000_000 + (seen + i as i64) * 1000;
            let last = detector.quiet_swings().last().copied();
            let s = detector.update_among(ts, v, |from, to| {
                kin.held_elsewhere("wearable", "activity", device, from, to)
            });
            if s.alert {
                alerts.push(i);
            }
            if detector.quiet_swings().last().copied() != last {
                kin.record("wearable", "activity", device, detector.quiet_swings());
            }
        }
        alerts
    }

    #[test]
    fn a_first_walk_raises_nothing_once_another_wearer_walked_again_and_a_fault_still_alerts() {
        let id = |s: &str| DeviceId::parse(s).unwrap();
        let (a, b) = (id("wearable-1"), id("wearable-2"));
        let config = DetectorConfig::default();
        let mut noise = Noise(7);
        let mut kin = Kin::new();
        // The first wearer walks after 200 s: the kind has never walked, so it alerts, and
        // that rise is no swing the kind made as normal.
        let mut first = activity(&mut noise, 200, 600);
        first.extend(activity(&mut noise, 200, 0));
        let mut a_detector = SeriesDetector::new(&config);
        let a_alerts = feed(&mut a_detector, &mut kin, &a, &first);
        assert!(
            a_alerts.iter().any(|&i| (200..400).contains(&i)),
            "{a_alerts:?}"
        );
        assert!(!kin.held_elsewhere("wearable", "activity", &b, 3.0, 90.0));
        // It walks again after a rest, as normal now: walking is a regime of the kind.
        let mut again = activity(&mut noise, 300, 300);
        again.extend(activity(&mut noise, 100, 0));
        let a_again = feed(&mut a_detector, &mut kin, &a, &again);
        // (The test's walks end in one step, which may alert as a jump.)
        assert!(a_again.iter().all(|&i| i >= 600), "{a_again:?}");
        assert!(kin.held_elsewhere("wearable", "activity", &b, 3.0, 90.0));
        // The second rests for 10 minutes, then walks: alone, its first walk alerts...
        let second = activity(&mut noise, 600, 300);
        let alone = feed(
            &mut SeriesDetector::new(&config),
            &mut Kin::new(),
            &b,
            &second,
        );
        assert!(alone.iter().any(|&i| i >= 600), "{alone:?}");
        let mut detector = SeriesDetector::new(&config);
        let among = feed(&mut detector, &mut kin, &b, &second);
        // ...among its kin, which walked again as normal, not as it rises to the walk; a
        // reading higher than the other's swing reached may still alert.
        assert!(
            among.iter().all(|&i| i >= 625) && among.len() < alone.len() / 10,
            "{among:?} of {alone:?}"
        );
        // A value no wearable swung to still alerts (a counter gone wild).
        let fault: Vec<f64> = (0..60).map(|i| 400.0 + f64::from(i % 5)).collect();
        let alerts = feed(&mut detector, &mut kin, &b, &fault);
        assert!(!alerts.is_empty() && alerts[0] < 5, "{alerts:?}");
    }

    #[test]
    fn a_change_is_known_only_when_one_other_device_swung_across_both_ends_that_way() {
        let mut kin = Kin::new();
        let id = |s: &str| DeviceId::parse(s).unwrap();
        let (a, b, c) = (id("a"), id("b"), id("c"));
        kin.record("room", "temperature", &a, &[[20.5, 21.5]]);
        kin.record("room", "temperature", &b, &[[23.5, 24.5]]);
        // Two rooms' swings at 21 and 24 °C do not make 21 -> 24 normal for a third.
        assert!(!kin.held_elsewhere("room", "temperature", &c, 21.0, 24.0));
        kin.record("wearable", "activity", &a, &[[160.0, 0.0]]);
        assert!(kin.held_elsewhere("wearable", "activity", &c, 100.0, 5.0));
        // A swing down answers no change up (a fault's return is not its rise).
        assert!(!kin.held_elsewhere("wearable", "activity", &c, 5.0, 100.0));
        // Its own swings do not count, nor another kind's or metric's.
        assert!(!kin.held_elsewhere("wearable", "activity", &a, 100.0, 5.0));
        assert!(!kin.held_elsewhere("pump", "activity", &c, 100.0, 5.0));
        assert!(!kin.held_elsewhere("wearable", "heart_rate", &c, 100.0, 5.0));
        kin.forget(&a);
        assert!(!kin.held_elsewhere("wearable", "activity", &c, 100.0, 5.0));
    }
}
