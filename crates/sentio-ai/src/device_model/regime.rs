//! One learnt normal regime of a device: where each metric sits (`center`, `scale`), how the
//! metrics move together (the `precision`, inverse of their shrunk correlation matrix) and the
//! two limits its statistics were calibrated to.

use serde::{Deserialize, Serialize};

use super::fit::{HeldValue, shrunk_precision};
use super::follow::Follow;
use super::packed::{Packed, pack_symmetric, unpack_symmetric};

/// Largest standardised departure of one reading: a metric that never moved while learnt (its
/// spread is only a floor) and then moves is seen, but cannot swamp every other metric's part.
const Z_MAX: f64 = 1e3;
/// A metric whose readings repeated exactly with at least these odds while learnt is not
/// judged by the frozen-reading test (see [`Regime::stuck_ratio`]).
const MOVING_ODDS: f64 = 0.5;
/// Gauss-Seidel sweeps used to replace a missing reading by its value expected from the others.
const IMPUTE_SWEEPS: usize = 3;
/// Metrics up to which [`Regime::distance`] keeps its partial sums on the stack.
const STACK_DIMS: usize = 128;

/// A fitted regime (see the module docs for the method).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredRegime", into = "StoredRegime")]
pub struct Regime {
    /// The device's metric slots this regime covers, in its own order.
    pub(crate) dims: Vec<usize>,
    pub(crate) center: Vec<f64>,
    pub(crate) scale: Vec<f64>,
    /// p×p, row-major.
    pub(crate) precision: Vec<f64>,
    /// Limit of the row statistic z'Pz.
    pub(crate) limit_row: f64,
    /// Limit of z'Pz beyond which one row is enough to open an alarm.
    pub(crate) limit_certain: f64,
    /// Limit of the smoothed statistic e'Pe (e: exponentially weighted mean of z).
    pub(crate) limit_smooth: f64,
    /// When the regime was last the device's best fit (ms), for eviction.
    pub(crate) last_used_ms: i64,
    /// Shrinkage of the correlation matrix towards the identity (Ledoit-Wolf, at the fit).
    pub(crate) shrink: f64,
    /// Lowest spread of each metric (its resolution, a fraction of its level).
    pub(crate) floor: Vec<f64>,
    /// Independent readings of each metric in the fit (fewer than rows for a slowly
    /// wandering metric), whose spread is widened accordingly (`fit::inflation`).
    pub(crate) n_eff: Vec<f64>,
    /// What it learnt since the fit, when it keeps learning.
    pub(crate) follow: Option<Follow>,
    /// Each metric's odds that a fresh reading repeats the previous one exactly, as learnt
    /// (see [`Regime::stuck_ratio`]); empty: no such test (a regime saved before it existed).
    pub(crate) repeat_odds: Vec<f64>,
    /// The values metrics were held at (repeated) while learnt.
    pub(crate) held: Vec<HeldValue>,
    /// The model of the changes from one row to the next (see `fit::fit_change`), whose
    /// per-metric dispersion limits it carries.
    pub(crate) change: Option<Box<Regime>>,
    /// Limits of each metric's dispersion statistic, the exponentially weighted mean of its
    /// squared standardised departure (each capped); set on a change model only.
    pub(crate) limit_metric_dispersion: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct StoredRegime {
    dims: Vec<usize>,
    center: Vec<f64>,
    scale: Vec<f64>,
    precision_upper: Packed,
    limit_row: f64,
    limit_certain: f64,
    limit_smooth: f64,
    last_used_ms: i64,
    #[serde(default)]
    shrink: f64,
    #[serde(default)]
    floor: Packed,
    #[serde(default)]
    n_eff: Packed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    follow: Option<Follow>,
    #[serde(default)]
    repeat_odds: Packed,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    held: Vec<HeldValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<Box<Regime>>,
    #[serde(default)]
    limit_metric_dispersion: Packed,
}

impl From<Regime> for StoredRegime {
    fn from(r: Regime) -> Self {
        let p = r.dims.len();
        StoredRegime {
            precision_upper: Packed(pack_symmetric(p, &r.precision)),
            dims: r.dims,
            center: r.center,
            scale: r.scale,
            limit_row: r.limit_row,
            limit_certain: r.limit_certain,
            limit_smooth: r.limit_smooth,
            last_used_ms: r.last_used_ms,
            shrink: r.shrink,
            floor: Packed(r.floor),
            n_eff: Packed(r.n_eff),
            follow: r.follow,
            repeat_odds: Packed(r.repeat_odds),
            held: r.held,
            change: r.change,
            limit_metric_dispersion: Packed(r.limit_metric_dispersion),
        }
    }
}

impl TryFrom<StoredRegime> for Regime {
    type Error = String;
    fn try_from(s: StoredRegime) -> Result<Self, String> {
        let p = s.dims.len();
        if s.center.len() != p || s.scale.len() != p {
            return Err(format!(
                "regime of {p} metrics with {} centres",
                s.center.len()
            ));
        }
        let precision = unpack_symmetric(p, &s.precision_upper.0)
            .ok_or_else(|| format!("regime of {p} metrics: bad precision matrix"))?;
        Ok(Regime {
            dims: s.dims,
            center: s.center,
            scale: s.scale,
            precision,
            limit_row: s.limit_row,
            limit_certain: s.limit_certain,
            limit_smooth: s.limit_smooth,
            last_used_ms: s.last_used_ms,
            shrink: s.shrink,
            floor: s.floor.0,
            n_eff: s.n_eff.0,
            follow: s.follow,
            repeat_odds: s.repeat_odds.0,
            held: s.held,
            change: s.change,
            limit_metric_dispersion: s.limit_metric_dispersion.0,
        })
    }
}

/// One metric's part in a departure from a regime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The metric.
    pub metric: String,
    /// Its latest reading (NaN when stale).
    pub observed: f64,
    /// What the regime expects it to be given the other metrics.
    pub expected: f64,
    /// (observed − expected) in spreads of the metric around what the others predict.
    pub sigma: f64,
    /// Its share of the statistic, 0..1 (shares sum to 1).
    pub share: f64,
}

impl Regime {
    pub(crate) fn p(&self) -> usize {
        self.dims.len()
    }

    /// The standardised row over this regime's metrics; missing readings (NaN) are replaced by
    /// their conditional expectation given the others, so the statistic is the Mahalanobis
    /// distance of what was observed.
    pub(crate) fn standardise(&self, row: &[f64], z: &mut Vec<f64>) {
        z.clear();
        let mut missing = false;
        for (k, &slot) in self.dims.iter().enumerate() {
            let x = row.get(slot).copied().unwrap_or(f64::NAN);
            if x.is_finite() {
                z.push(((x - self.center[k]) / self.scale[k]).clamp(-Z_MAX, Z_MAX));
            } else {
                z.push(f64::NAN);
                missing = true;
            }
        }
        if missing {
            self.impute(z);
        }
    }

    fn impute(&self, z: &mut [f64]) {
        let p = self.p();
        let gaps: Vec<usize> = (0..p).filter(|&k| z[k].is_nan()).collect();
        for &k in &gaps {
            z[k] = 0.0;
        }
        if gaps.len() == p {
            return;
        }
        for _ in 0..IMPUTE_SWEEPS {
            for &k in &gaps {
                let row = &self.precision[k * p..(k + 1) * p];
                let off: f64 = (0..p).filter(|&j| j != k).map(|j| row[j] * z[j]).sum();
                z[k] = -off / row[k];
            }
        }
    }

    /// Learns a row it judged normal (`z`: the row standardised, missing readings imputed) and
    /// refits its centre, spreads and precision when due (see [`Follow`]).
    pub(crate) fn follow(&mut self, z: &[f64], ts_ms: i64, time_constant_ms: i64) {
        let Some(follow) = &mut self.follow else {
            return;
        };
        follow.learn(z, (&self.center, &self.scale), ts_ms, time_constant_ms);
        let Some(estimate) = follow.refit(ts_ms, time_constant_ms, &self.floor, &self.n_eff) else {
            return;
        };
        if let Some(precision) = shrunk_precision(self.p(), &estimate.corr, self.shrink) {
            self.center = estimate.center;
            self.scale = estimate.scale;
            self.precision = precision;
        }
    }

    /// How far the longest run of exact repeats (`repeats` by device slot: fresh readings equal
    /// to the previous one) is beyond its limit (> 1: over). A run of r repeats of a metric
    /// whose readings repeated with odds q while learnt has probability q^r, over when below
    /// the row tail `tail` shared among the metrics. Only readings that moved in most rows
    /// while learnt (q < `MOVING_ODDS`) are judged: a valve or sensor that sticks freezes a
    /// reading that otherwise never holds still, while a setpoint, a held analyser or a coarse
    /// reading repeats by nature.
    /// A run at a value the metric was held at while learnt ([`HeldValue`]) is not judged.
    /// Returns the ratio and the metric's index in this regime.
    pub(crate) fn stuck_ratio(&self, repeats: &[u32], row: &[f64], tail: f64) -> (f64, usize) {
        let limit = (tail / self.p().max(1) as f64).ln();
        self.dims
            .iter()
            .zip(&self.repeat_odds)
            .enumerate()
            .filter_map(|(k, (&slot, &odds))| {
                // No repeat, no evidence (and no logarithm to take).
                let r = repeats.get(slot).copied().unwrap_or(0);
                if r == 0 {
                    return None;
                }
                if self.held_at(k, row.get(slot).copied()) {
                    return None;
                }
                (odds < MOVING_ODDS && r > 0).then(|| (f64::from(r) * odds.ln() / limit, k))
            })
            .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
    }

    /// v'Pv, the statistic of every row (the live one and the calibration's alike), from the
    /// upper triangle: Σ_i P_ii v_i² + 2 Σ_j v_j a_j with a_j = Σ_{i<j} v_i P_ij, so half the
    /// products of P v, each row of the triangle added to `a` in one loop without a running
    /// sum (the compiler turns it into vector instructions).
    pub(crate) fn distance(&self, v: &[f64]) -> f64 {
        let p = self.p().min(v.len());
        let mut stack = [0.0; STACK_DIMS];
        let mut heap = Vec::new();
        let a = if p <= STACK_DIMS {
            &mut stack[..p]
        } else {
            heap.resize(p, 0.0);
            &mut heap[..]
        };
        let mut diagonal = 0.0;
        for (i, &vi) in v[..p].iter().enumerate() {
            let row = &self.precision[i * self.p()..(i + 1) * self.p()];
            diagonal += row[i] * vi * vi;
            for (aj, pij) in a[i + 1..].iter_mut().zip(&row[i + 1..p]) {
                *aj += vi * pij;
            }
        }
        diagonal + 2.0 * a.iter().zip(v).map(|(aj, vj)| aj * vj).sum::<f64>()
    }

    /// Whether metric `k` was held at `value` while learnt (compared in single precision, as
    /// saved state is).
    fn held_at(&self, k: usize, value: Option<f64>) -> bool {
        value.is_some_and(|v| {
            self.held
                .iter()
                .any(|h| h.metric as usize == k && h.value as f32 == v as f32)
        })
    }

    /// y = P v, and returns v'Pv.
    pub(crate) fn quad(&self, v: &[f64], y: &mut Vec<f64>) -> f64 {
        let p = self.p();
        y.clear();
        let mut total = 0.0;
        for i in 0..p {
            let row = &self.precision[i * p..(i + 1) * p];
            let mut s = 0.0;
            for j in 0..p {
                s += row[j] * v[j];
            }
            y.push(s);
            total += s * v[i];
        }
        total
    }

    /// Each metric's part in the departure `v` (a standardised row or its smoothed mean) from
    /// this regime, largest first. `row` holds the latest raw readings by slot.
    pub(crate) fn contributions(
        &self,
        names: &[String],
        row: &[f64],
        v: &[f64],
    ) -> Vec<Contribution> {
        let p = self.p();
        let mut y = Vec::with_capacity(p);
        self.quad(v, &mut y);
        let parts: Vec<f64> = (0..p)
            .map(|k| y[k] * y[k] / self.precision[k * p + k])
            .collect();
        let total: f64 = parts.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut out: Vec<Contribution> = (0..p)
            .map(|k| {
                let slot = self.dims[k];
                // Departure from the value predicted by the other metrics, in standard units.
                let departure = y[k] / self.precision[k * p + k];
                let observed = row.get(slot).copied().unwrap_or(f64::NAN);
                let level = self.center[k] + self.scale[k] * v[k];
                let expected = self.center[k] + self.scale[k] * (v[k] - departure);
                let reference = if observed.is_finite() {
                    observed
                } else {
                    level
                };
                Contribution {
                    metric: names.get(slot).cloned().unwrap_or_default(),
                    observed,
                    expected: expected + (reference - level),
                    sigma: y[k] / self.precision[k * p + k].sqrt(),
                    share: parts[k] / total,
                }
            })
            .collect();
        out.sort_by(|a, b| b.share.total_cmp(&a.share));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_model::fit::shrunk_precision;
    use crate::test_noise::Noise;

    /// A regime over `p` metrics whose precision inverts a random correlation-like matrix.
    fn regime(p: usize, noise: &mut Noise) -> Regime {
        let factors: Vec<f64> = (0..p * 3).map(|_| noise.normal()).collect();
        // Three common factors plus a unit noise of each metric, as correlations.
        let cov = |i: usize, j: usize| -> f64 {
            let common: f64 = (0..3)
                .map(|f| factors[i * 3 + f] * factors[j * 3 + f])
                .sum();
            common + if i == j { 1.0 } else { 0.0 }
        };
        let mut corr = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                corr[i * p + j] = cov(i, j) / (cov(i, i) * cov(j, j)).sqrt();
            }
        }
        let precision = shrunk_precision(p, &corr, 0.2).expect("positive definite");
        Regime {
            dims: (0..p).collect(),
            center: vec![0.0; p],
            scale: vec![1.0; p],
            precision,
            limit_row: 1.0,
            limit_certain: 1.0,
            limit_smooth: 1.0,
            last_used_ms: 0,
            shrink: 0.2,
            floor: vec![1e-9; p],
            n_eff: vec![100.0; p],
            follow: None,
            repeat_odds: Vec::new(),
            held: Vec::new(),
            change: None,
            limit_metric_dispersion: Vec::new(),
        }
    }

    #[test]
    fn distance_from_the_triangle_is_the_full_quadratic_form() {
        let mut noise = Noise(11);
        // Small, the bench's 50 metrics, and beyond the partial sums kept on the stack.
        for p in [1, 2, 7, 50, STACK_DIMS + 3] {
            let r = regime(p, &mut noise);
            for _ in 0..5 {
                let v: Vec<f64> = (0..p).map(|_| 3.0 * noise.normal()).collect();
                let full = r.quad(&v, &mut Vec::new());
                let triangle = r.distance(&v);
                assert!(
                    (full - triangle).abs() <= 1e-9 * full.abs().max(1.0),
                    "{p} metrics: {triangle} from the triangle, {full} in full"
                );
            }
        }
    }
}
