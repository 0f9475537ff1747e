//! A sliding window kept as running state: [`SLOTS`] slots, each a tenth of the window, holding
//! the count, sum, min and max of the points whose time falls in it. Adding a point touches one
//! slot; an aggregate combines the slots that are still inside the window, so the window slides
//! in steps of a tenth of its length and never looks at stored history. Its memory is fixed.

use serde::{Deserialize, Serialize};

/// Slots per window.
pub const SLOTS: usize = 10;

/// One slot: the points of `[index * slot_ms, (index + 1) * slot_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Slot {
    index: i64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    slot_ms: i64,
    slots: Vec<Slot>,
}

/// An aggregate over a window's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// How many.
    Count,
}

impl Window {
    /// An empty window of `window_ms`.
    pub fn new(window_ms: i64) -> Self {
        Self {
            slot_ms: (window_ms / SLOTS as i64).max(1),
            slots: Vec::new(),
        }
    }

    /// Adds a point. A point older than the window is ignored.
    pub fn add(&mut self, ts_ms: i64, value: f64) {
        let index = ts_ms.div_euclid(self.slot_ms);
        // One pass: the newest slot and the point's own, if it has one.
        let (mut newest, mut own) = (None::<i64>, None);
        for (at, s) in self.slots.iter().enumerate() {
            newest = Some(newest.map_or(s.index, |n| n.max(s.index)));
            if s.index == index {
                own = Some(at);
            }
        }
        let newest = newest.unwrap_or(index);
        if index <= newest - SLOTS as i64 {
            return;
        }
        if let Some(s) = own.map(|at| &mut self.slots[at]) {
            s.count += 1;
            s.sum += value;
            s.min = s.min.min(value);
            s.max = s.max.max(value);
            return;
        }
        let newest = newest.max(index);
        self.slots.retain(|s| s.index > newest - SLOTS as i64);
        self.slots.push(Slot {
            index,
            count: 1,
            sum: value,
            min: value,
            max: value,
        });
    }

    /// The aggregate of the points in the window ending at `now_ms`; `None` for the average,
    /// minimum or maximum of no points.
    pub fn get(&self, agg: Agg, now_ms: i64) -> Option<f64> {
        let newest = now_ms.div_euclid(self.slot_ms);
        let live = self
            .slots
            .iter()
            .filter(|s| s.index <= newest && s.index > newest - SLOTS as i64);
        let (mut count, mut sum, mut min, mut max) = (0u64, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for s in live {
            count += s.count;
            sum += s.sum;
            min = min.min(s.min);
            max = max.max(s.max);
        }
        match agg {
            Agg::Count => Some(count as f64),
            _ if count == 0 => None,
            Agg::Avg => Some(sum / count as f64),
            Agg::Min => Some(min),
            Agg::Max => Some(max),
        }
    }
}

/// A rule's windows, one per (metric, window length), as its states keep them.
pub(crate) type Keyed = Vec<(String, i64, Window)>;

/// Adds a point of `metric` to its window of `window_ms` in `windows`, made on its first point.
pub(crate) fn add_to(windows: &mut Keyed, metric: &str, window_ms: i64, ts_ms: i64, value: f64) {
    let i = match windows
        .iter()
        .position(|(m, w, _)| *w == window_ms && m == metric)
    {
        Some(i) => i,
        None => {
            windows.push((metric.to_string(), window_ms, Window::new(window_ms)));
            windows.len() - 1
        }
    };
    windows[i].2.add(ts_ms, value);
}

/// The window of `metric` and `window_ms` in `windows`, once it has had a point.
pub(crate) fn find<'w>(windows: &'w Keyed, metric: &str, window_ms: i64) -> Option<&'w Window> {
    windows
        .iter()
        .find(|(m, ms, _)| *ms == window_ms && m == metric)
        .map(|(_, _, w)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(points: &[(i64, f64)], now_ms: i64, expected: [Option<f64>; 4]) {
        let mut w = Window::new(10_000);
        for &(ts, v) in points {
            w.add(ts, v);
        }
        let got = [Agg::Avg, Agg::Min, Agg::Max, Agg::Count].map(|a| w.get(a, now_ms));
        assert_eq!(got, expected, "{points:?} at {now_ms}");
        assert!(w.slots.len() <= SLOTS);
    }

    #[test]
    fn windows_slide_in_tenths_and_forget_old_points() {
        check(&[], 0, [None, None, None, Some(0.0)]);
        check(
            &[(0, 1.0), (500, 3.0), (9_999, 5.0)],
            9_999,
            [Some(3.0), Some(1.0), Some(5.0), Some(3.0)],
        );
        // At 10.5 s the slot of [0, 1 s) has left the window.
        check(
            &[(0, 1.0), (500, 3.0), (9_999, 5.0)],
            10_500,
            [Some(5.0), Some(5.0), Some(5.0), Some(1.0)],
        );
        // A point far older than the newest is ignored; the window keeps ten slots at most.
        let many: Vec<(i64, f64)> = (0..100).map(|i| (i * 1_000, i as f64)).collect();
        check(
            &[many.as_slice(), &[(5_000, 1_000.0)]].concat(),
            99_000,
            [Some(94.5), Some(90.0), Some(99.0), Some(10.0)],
        );
        // Everything is forgotten once the window has passed.
        check(&[(0, 1.0)], 60_000, [None, None, None, Some(0.0)]);
    }
}
