//! [`Swings`]: the legs a series made between its turning points that raised no alert, the
//! regime changes it made as normal, which its kin consult (`kin.rs`).
//!
//! A leg runs from one turning point (a local extreme) to the next; it ends when the series
//! has come back from its extreme by `reversal` (half the guard's band in noise spreads, so
//! noise does not end a walk's leg). A completed leg is kept when no reading of it alerted,
//! it spans more than the band in noise spreads (a swing noise does not make) and no kept leg
//! the same way covers it (kept legs it covers are dropped): the series
//! moved between those values as normal. A wearer's first walk alerts, so its leg is not
//! kept; the walk's end and the next walk are (the walk has become its normal): a regime
//! counts once it was entered again without an alert. A fault's rise alerts (or is missed,
//! and then lost anyway); its return is a leg the other way, which answers only a change in
//! that direction.

use serde::{Deserialize, Serialize};

/// Legs kept per series (the most recent).
pub const KEPT: usize = 8;

/// A series' turning points and its quiet legs. See the module documentation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Swings {
    /// Direction of the current leg: 1 up, -1 down, 0 not known yet (then `start` and
    /// `extreme` are the lowest and highest reading so far).
    dir: i8,
    /// Where the current leg started (the last turning point).
    start: f64,
    /// The current leg's extreme so far.
    extreme: f64,
    /// A reading of the current leg alerted.
    alerted: bool,
    /// No reading yet.
    #[serde(default)]
    started: bool,
    /// Completed legs without an alert, `[from, to]`, oldest first, at most [`KEPT`].
    quiet: Vec<[f64; 2]>,
}

impl Swings {
    /// Follows `value` (`alerted`: the live engine raised an alert on it). A leg ends when the
    /// series comes back from the leg's extreme by more than `reversal`; it is kept when quiet
    /// and wider than `min_span`. Returns whether a leg was kept.
    pub fn update(&mut self, value: f64, reversal: f64, min_span: f64, alerted: bool) -> bool {
        let mut kept = false;
        if !self.started {
            self.started = true;
            self.start = value;
            self.extreme = value;
        } else if self.dir == 0 {
            // Undecided: `start` is the lowest reading, `extreme` the highest.
            if value - self.start > reversal {
                self.dir = 1;
                self.extreme = value;
            } else if self.extreme - value > reversal {
                self.dir = -1;
                self.start = self.extreme;
                self.extreme = value;
            } else {
                self.start = self.start.min(value);
                self.extreme = self.extreme.max(value);
            }
        } else {
            let d = f64::from(self.dir);
            if (value - self.extreme) * d > 0.0 {
                self.extreme = value;
            } else if (self.extreme - value) * d > reversal {
                let leg = [self.start, self.extreme];
                if !self.alerted
                    && (leg[1] - leg[0]).abs() > min_span
                    && !covers(&self.quiet, leg[0], leg[1])
                {
                    // A kept leg this one covers says nothing more (a walk's jitter must
                    // not push the walk itself out).
                    self.quiet.retain(|&[a, b]| !covers(&[leg], a, b));
                    if self.quiet.len() == KEPT {
                        self.quiet.remove(0);
                    }
                    self.quiet.push(leg);
                    kept = true;
                }
                self.start = self.extreme;
                self.extreme = value;
                self.dir = -self.dir;
                self.alerted = false;
            }
        }
        self.alerted |= alerted;
        kept
    }

    /// The quiet legs kept, `[from, to]`, oldest first.
    pub fn quiet(&self) -> &[[f64; 2]] {
        &self.quiet
    }
}

/// Whether one of `legs` went the way of `from` → `to` and covered both.
pub fn covers(legs: &[[f64; 2]], from: f64, to: f64) -> bool {
    let (lo, hi) = (from.min(to), from.max(to));
    legs.iter()
        .any(|&[a, b]| (b - a) * (to - from) > 0.0 && a.min(b) <= lo && hi <= a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(values: &[(f64, bool)]) -> Swings {
        let mut s = Swings::default();
        for &(v, a) in values {
            s.update(v, 4.0, 10.0, a);
        }
        s
    }

    #[test]
    fn quiet_legs_wider_than_the_span_are_kept_with_their_direction() {
        // 0 → 50 (alerted on the way up), 50 → 2, 2 → 48, 48 → 0 (quiet); noise of 1 between.
        let mut v = Vec::new();
        for (a, b, alert) in [(0.0, 50.0, true), (50.0, 2.0, false), (2.0, 48.0, false)] {
            for i in 0..=10 {
                let x = a + (b - a) * f64::from(i) / 10.0;
                v.push((x + if i % 2 == 0 { 0.5 } else { -0.5 }, alert && i == 5));
            }
        }
        v.push((0.0, false));
        let s = feed(&v);
        assert_eq!(s.quiet().len(), 2, "{:?}", s.quiet());
        // The alerted rise is not kept; the fall and the quiet rise are.
        assert!(covers(s.quiet(), 10.0, 40.0));
        assert!(covers(s.quiet(), 40.0, 10.0));
        assert!(!covers(s.quiet(), 10.0, 60.0));
        // Noise within the reversal makes no leg.
        let flat: Vec<_> = (0..100).map(|i| (f64::from(i % 3), false)).collect();
        assert!(feed(&flat).quiet().is_empty());
    }

    #[test]
    fn at_most_kept_legs_are_kept_and_covered_ones_dropped() {
        // The same swing again adds nothing.
        let same: Vec<_> = (0..100)
            .map(|i| (if i % 2 == 0 { 0.0 } else { 20.0 }, false))
            .collect();
        assert_eq!(feed(&same).quiet().len(), 2);
        // Swings drifting up cover none of the earlier ones: the most recent are kept.
        let v: Vec<_> = (0..100)
            .map(|i| {
                (
                    f64::from(i / 2) + if i % 2 == 0 { 0.0 } else { 20.0 },
                    false,
                )
            })
            .collect();
        assert_eq!(feed(&v).quiet().len(), KEPT);
    }
}
