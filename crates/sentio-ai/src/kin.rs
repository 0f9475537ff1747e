//! [`Kin`]: what the devices of one kind have held as normal, per metric: a fleet-level
//! regime memory consulted before a young series raises a change of level.
//!
//! Devices of one kind (the registry's `kind`: wearables, pumps, rooms) share their regimes: a
//! wearer rests, walks and runs, a room is lit by day and dark at night. A series whose own
//! history is young has not yet shown all of them, so its first walk leaves everything it has
//! learnt. Its kin have: if another device of the kind has held, as normal, both the level this
//! series had and the reading it jumped to, the change is one the kind makes (its first walk
//! is the others' hundredth). A fault is not: a bearing's vibration climbing, a room's
//! temperature stepping 4 °C, a heart rate freezing, none of which any kin has held as normal
//! between the same two values (one device's range must cover both: two rooms at 21 °C and
//! 24 °C do not make 21 → 24 °C normal for either).
//!
//! Each [`crate::SeriesDetector`] keeps the lowest and highest reading it judged normal (saved
//! with it), counting no reading of an alert's episode (from the alert until a reading is back
//! in the band the series had before it): a kin's fault is not the kind's regime, even once its
//! own detector has accepted the fault's level. This index holds the ranges per kind and
//! metric, rebuilt as devices report after a restart, and is read only when an alert is about
//! to open.

use std::collections::HashMap;

use sentio_core::DeviceId;

/// Per kind, per metric, per device: the range of readings judged normal.
#[derive(Debug, Default)]
pub struct Kin {
    kinds: HashMap<String, HashMap<String, HashMap<DeviceId, [f64; 2]>>>,
}

impl Kin {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `device` (of `kind`) has held `range` of `metric` as normal.
    pub fn record(&mut self, kind: &str, metric: &str, device: &DeviceId, range: [f64; 2]) {
        let metrics = match self.kinds.get_mut(kind) {
            Some(m) => m,
            None => self.kinds.entry(kind.to_owned()).or_default(),
        };
        let devices = match metrics.get_mut(metric) {
            Some(d) => d,
            None => metrics.entry(metric.to_owned()).or_default(),
        };
        match devices.get_mut(device) {
            Some(r) => *r = range,
            None => {
                devices.insert(device.clone(), range);
            }
        }
    }

    /// The range recorded for `device`'s `metric`, if any.
    pub fn recorded(&self, kind: &str, metric: &str, device: &DeviceId) -> Option<[f64; 2]> {
        self.kinds.get(kind)?.get(metric)?.get(device).copied()
    }

    /// Whether a device of `kind` other than `device` has held both `from` and `to` of
    /// `metric` as normal (its range covers both).
    pub fn held_elsewhere(
        &self,
        kind: &str,
        metric: &str,
        device: &DeviceId,
        from: f64,
        to: f64,
    ) -> bool {
        let (lo, hi) = (from.min(to), from.max(to));
        self.kinds
            .get(kind)
            .and_then(|m| m.get(metric))
            .is_some_and(|devices| {
                devices
                    .iter()
                    .any(|(d, r)| d != device && r[0] <= lo && hi <= r[1])
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

    /// Feeds `values` (one a second, after the `seen` readings the detector has) to `detector`
    /// among `kin`, recording its held range; returns the indices that alerted.
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
            let s = detector.update_among(ts, v, |from, to| {
                kin.held_elsewhere("wearable", "activity", device, from, to)
            });
            if s.alert {
                alerts.push(i);
            }
            if let Some(r) = detector.held_range() {
                kin.record("wearable", "activity", device, r);
            }
        }
        alerts
    }

    #[test]
    fn a_first_walk_another_wearable_has_walked_raises_nothing_and_a_fault_still_alerts() {
        let id = |s: &str| DeviceId::parse(s).unwrap();
        let (a, b) = (id("wearable-1"), id("wearable-2"));
        let config = DetectorConfig::default();
        let mut noise = Noise(7);
        let mut kin = Kin::new();
        // The first wearer walks after 200 s: the kind has never walked, so it alerts, and
        // what it read during that alert's episode is not held as normal.
        let mut first = activity(&mut noise, 200, 600);
        first.extend(activity(&mut noise, 200, 0));
        let mut a_detector = SeriesDetector::new(&config);
        let a_alerts = feed(&mut a_detector, &mut kin, &a, &first);
        assert!(
            a_alerts.iter().any(|&i| (200..400).contains(&i)),
            "{a_alerts:?}"
        );
        assert!(kin.recorded("wearable", "activity", &a).unwrap()[1] < 50.0);
        // It walks again after a rest, as normal now: walking is held.
        let again = activity(&mut noise, 300, 300);
        let a_again = feed(&mut a_detector, &mut kin, &a, &again);
        assert!(a_again.is_empty(), "{a_again:?}");
        assert!(kin.recorded("wearable", "activity", &a).unwrap()[1] > 100.0);
        // The second rests for 10 minutes, then walks: alone, its first walk alerts...
        let second = activity(&mut noise, 600, 300);
        let alone = feed(
            &mut SeriesDetector::new(&config),
            &mut Kin::new(),
            &b,
            &second,
        );
        assert!(alone.iter().any(|&i| i >= 600), "{alone:?}");
        // ...among its kin, which have walked as normal, it does not.
        let mut detector = SeriesDetector::new(&config);
        let among = feed(&mut detector, &mut kin, &b, &second);
        assert!(among.iter().all(|&i| i < 600), "{among:?}");
        // A value no wearable has held as normal still alerts (a counter gone wild).
        let fault: Vec<f64> = (0..60).map(|i| 400.0 + (i % 5) as f64).collect();
        let base = second.len();
        let mut alerts = Vec::new();
        for (i, &v) in fault.iter().enumerate() {
            let ts = 1_700_000_000_000 + (base + i) as i64 * 1000;
            if detector
                .update_among(ts, v, |from, to| {
                    kin.held_elsewhere("wearable", "activity", &b, from, to)
                })
                .alert
            {
                alerts.push(i);
            }
        }
        assert!(!alerts.is_empty() && alerts[0] < 5, "{alerts:?}");
    }

    #[test]
    fn a_change_is_known_only_when_one_other_device_held_both_ends() {
        let mut kin = Kin::new();
        let id = |s: &str| DeviceId::parse(s).unwrap();
        let (a, b, c) = (id("a"), id("b"), id("c"));
        kin.record("room", "temperature", &a, [20.5, 21.5]);
        kin.record("room", "temperature", &b, [23.5, 24.5]);
        // Two rooms at 21 and 24 °C do not make 21 -> 24 normal for a third.
        assert!(!kin.held_elsewhere("room", "temperature", &c, 21.0, 24.0));
        kin.record("wearable", "activity", &a, [0.0, 160.0]);
        assert!(kin.held_elsewhere("wearable", "activity", &c, 0.0, 100.0));
        // Its own range does not count, nor another kind's or metric's.
        assert!(!kin.held_elsewhere("wearable", "activity", &a, 0.0, 100.0));
        assert!(!kin.held_elsewhere("pump", "activity", &c, 0.0, 100.0));
        assert!(!kin.held_elsewhere("wearable", "heart_rate", &c, 0.0, 100.0));
        kin.forget(&a);
        assert!(!kin.held_elsewhere("wearable", "activity", &c, 0.0, 100.0));
    }
}
