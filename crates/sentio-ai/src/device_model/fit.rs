//! Fitting a [`Regime`] from a buffer of normal rows, and calibrating its limits on scores it did
//! not see (contiguous folds), so the limits hold out of sample, autocorrelation and slow drift
//! included.

use nalgebra::DMatrix;

use super::follow::Follow;
use super::regime::Regime;

/// Contiguous folds of the calibration.
const FOLDS: usize = 4;
/// Smallest shrinkage towards the identity: no direction of the data weighs more than 1/0.05 =
/// 20 times a metric of unit spread, so an accidentally flat direction of a short history cannot
/// turn noise into alarms.
const MIN_SHRINK: f64 = 0.001;
/// Fewest independent readings the spread's correction counts (a factor of 3 on the variance).
const MIN_INDEPENDENT: f64 = 2.0;
/// Relative variance floor: a metric's spread counts as at least this fraction of its level.
const RELATIVE_FLOOR: f64 = 1e-4;
/// Absolute variance floor (a metric at zero that never moves).
const ABSOLUTE_FLOOR: f64 = 1e-9;

/// Rows of readings by device slot (NaN where missing), all of one width.
pub(crate) struct Rows<'a> {
    pub data: &'a [f64],
    pub width: usize,
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        self.data.len() / self.width.max(1)
    }
    pub fn row(&self, t: usize) -> &[f64] {
        &self.data[t * self.width..(t + 1) * self.width]
    }
}

/// Fits a regime over the slots `dims` on all `rows`, with limits at `quantiles` (row, one row
/// alone, smoothed) of its out-of-fold statistics. `None` when there are too few rows.
pub(crate) fn fit_regime(
    rows: &Rows<'_>,
    dims: &[usize],
    quantiles: [f64; 3],
    lambda: f64,
    (now_ms, span_ms, follow_ms): (i64, i64, i64),
) -> Option<Regime> {
    let n = rows.len();
    if n < 2 * FOLDS || dims.is_empty() {
        return None;
    }
    let all: Vec<usize> = (0..n).collect();
    let (full, cov) = fit_core(rows, dims, &all, None, now_ms)?;
    let mut row_scores = Vec::with_capacity(n);
    let mut smooth_scores = Vec::with_capacity(n);
    // Each metric's squared departures, out of fold, capped as live (`SPIKE`).
    let cap = spike_cap(quantiles[0]);
    let mut metric_scores: Vec<Vec<f64>> = vec![Vec::with_capacity(n); dims.len()];
    for k in 0..FOLDS {
        let (lo, hi) = (k * n / FOLDS, (k + 1) * n / FOLDS);
        let train: Vec<usize> = all.iter().copied().filter(|&t| t < lo || t >= hi).collect();
        // Each fold keeps the whole buffer's spreads: a rare reading (a door opened twice)
        // missing from a fold must not make that fold's scale collapse.
        let (fold, _) = fit_core(rows, dims, &train, Some((&full.scale, &full.n_eff)), now_ms)?;
        let mut z = Vec::new();
        let mut e = vec![0.0; dims.len()];
        // The smoothed statistic starts at 0 in each fold: its first rows are not yet typical.
        let burn_in = lo + (2.0 / lambda).ceil() as usize;
        for t in lo..hi {
            fold.standardise(rows.row(t), &mut z);
            let d = fold.distance(&z);
            row_scores.push(d);
            for (scores, zk) in metric_scores.iter_mut().zip(&z) {
                scores.push((zk * zk).min(cap));
            }
            for (ek, zk) in e.iter_mut().zip(&z) {
                *ek = (1.0 - lambda) * *ek + lambda * zk;
            }
            if t >= burn_in {
                smooth_scores.push(fold.distance(&e));
            }
        }
    }
    let mut regime = full;
    if follow_ms > 0 {
        regime.follow = Some(Follow::new(
            &regime.center,
            &regime.scale,
            &cov,
            (n, span_ms),
            (now_ms, follow_ms),
        ));
    }
    let row = ScaledChi2::fit(&row_scores);
    let smooth = ScaledChi2::fit(&smooth_scores);
    let [quantile, certain_quantile, smooth_quantile] = quantiles;
    regime.limit_row = row.quantile(quantile);
    regime.limit_certain = row.quantile(certain_quantile).max(regime.limit_row);
    // Both statistics are quadratic forms of the same rows: the smoothed one has (at most) the
    // degrees of freedom of the row one, which a hundred scores estimate far better than its
    // own fewer, autocorrelated ones do.
    regime.limit_smooth = smooth.with_dof_at_most(row.h).quantile(smooth_quantile);
    // Each metric's dispersion, its tail shared among the metrics.
    let metric_quantile = 1.0 - (1.0 - smooth_quantile) / dims.len() as f64;
    regime.limit_metric_dispersion = metric_scores
        .iter()
        .map(|scores| ScaledChi2::smoothed(scores, lambda).quantile(metric_quantile))
        .collect();
    Some(regime)
}

/// Each of `dims`' odds that a reading repeats the previous row's exactly, (repeats + 1) /
/// (pairs + 2): a reading that moved with every row learnt has odds of about 1/n, one held by
/// a slow sampler (an analyser updated every few rows) or a coarse resolution high odds.
/// Beside them, the values each metric was held at (repeated) while learnt (see
/// [`HeldValue`]).
pub(crate) fn repeat_odds(rows: &Rows<'_>, dims: &[usize]) -> (Vec<f64>, Vec<HeldValue>) {
    let mut held = Vec::new();
    let odds = dims
        .iter()
        .enumerate()
        .map(|(k, &slot)| {
            let (mut pairs, mut repeats) = (0.0, 0.0);
            // Values repeated, with their repeats.
            let mut by_value: Vec<(f64, u32)> = Vec::new();
            for t in 1..rows.len() {
                let (a, b) = (rows.row(t)[slot], rows.row(t - 1)[slot]);
                if a.is_finite() && b.is_finite() {
                    pairs += 1.0;
                    if a == b {
                        repeats += 1.0;
                        match by_value.iter_mut().find(|(v, _)| *v == a) {
                            Some(entry) => entry.1 += 1,
                            None => by_value.push((a, 1)),
                        }
                    }
                }
            }
            by_value.sort_by_key(|entry| std::cmp::Reverse(entry.1));
            held.extend(
                by_value
                    .iter()
                    .take(HELD_VALUES)
                    .map(|&(value, _)| HeldValue {
                        metric: k as u32,
                        value,
                    }),
            );
            (repeats + 1.0) / (pairs + 2.0)
        })
        .collect();
    (odds, held)
}

/// Values per metric kept as held (those repeated most while learnt).
const HELD_VALUES: usize = 4;

/// A value a metric was held at (repeated) while learnt: an exact 0 of a step count at rest,
/// an off state, a setpoint. A run of repeats there is a state the metric rests in, however
/// long, and not a frozen reading: whether resting there fits the other metrics is the joint
/// statistics' to judge. A sensor that sticks does so at whatever it last read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HeldValue {
    /// The metric's index in the regime.
    pub metric: u32,
    pub value: f64,
}

/// The cap of one squared standardised departure in a metric's dispersion statistic: a
/// one-metric row over the row limit `quantile` (χ²(1)), so one spike cannot hold it up.
pub(crate) fn spike_cap(quantile: f64) -> f64 {
    chi2_quantile(1.0, quantile)
}

/// The model of the changes between consecutive rows over the same `dims`, fitted and
/// calibrated like a regime on the rows' differences: a slow wander of normal operation changes
/// little from one row to the next, while a fault that adds variation (a noisy valve, a random
/// disturbance) changes much more. `None` when there are too few rows.
pub(crate) fn fit_change(
    rows: &Rows<'_>,
    dims: &[usize],
    quantiles: [f64; 3],
    lambda: f64,
    now_ms: i64,
) -> Option<Regime> {
    let mut data = Vec::with_capacity(rows.data.len());
    for t in 1..rows.len() {
        data.extend(rows.row(t).iter().zip(rows.row(t - 1)).map(|(a, b)| a - b));
    }
    let changes = Rows {
        data: &data,
        width: rows.width,
    };
    fit_regime(&changes, dims, quantiles, lambda, (now_ms, 0, 0))
}

/// Centre, spread and shrunk precision of `dims` over the rows `use_rows` (limits left at 0),
/// and the covariance of the standardised rows.
fn fit_core(
    rows: &Rows<'_>,
    dims: &[usize],
    use_rows: &[usize],
    spreads: Option<(&[f64], &[f64])>,
    now_ms: i64,
) -> Option<(Regime, Vec<f64>)> {
    let p = dims.len();
    let n = use_rows.len();
    let mut center = Vec::with_capacity(p);
    let mut scale = Vec::with_capacity(p);
    let mut floor = Vec::with_capacity(p);
    let mut n_eff = Vec::with_capacity(p);
    for &slot in dims {
        let mut values: Vec<f64> = use_rows
            .iter()
            .map(|&t| rows.row(t)[slot])
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            center.push(0.0);
            scale.push(1.0);
            floor.push(ABSOLUTE_FLOOR);
            n_eff.push(0.0);
            continue;
        }
        let m = values.iter().sum::<f64>() / values.len() as f64;
        let mut var = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
            / (values.len().saturating_sub(1).max(1)) as f64;
        // Readings of a slowly wandering metric are not independent: a window holds fewer
        // independent ones than rows, and its spread understates the metric's.
        let independent = effective_count(&values, m, var);
        var *= inflation(independent);
        n_eff.push(independent);
        values.sort_by(f64::total_cmp);
        // The reading's resolution: the smallest step between distinct values seen.
        let quantum = values
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0.0)
            .fold(f64::INFINITY, f64::min);
        let quantum = if quantum.is_finite() { quantum } else { 0.0 };
        let low = quantum.max(RELATIVE_FLOOR * m.abs()).max(ABSOLUTE_FLOOR);
        center.push(m);
        scale.push(var.sqrt().max(low));
        floor.push(low);
    }
    if let Some((spreads, independent)) = spreads {
        scale = spreads.to_vec();
        n_eff = independent.to_vec();
    }
    // Standardised rows (a missing reading counts as its mean).
    let mut zs = vec![0.0; n * p];
    for (r, &t) in use_rows.iter().enumerate() {
        let row = rows.row(t);
        for k in 0..p {
            let x = row[dims[k]];
            zs[r * p + k] = if x.is_finite() {
                (x - center[k]) / scale[k]
            } else {
                0.0
            };
        }
    }
    let mut s = vec![0.0; p * p];
    for r in 0..n {
        let z = &zs[r * p..(r + 1) * p];
        for i in 0..p {
            for j in i..p {
                s[i * p + j] += z[i] * z[j];
            }
        }
    }
    let nf = n as f64;
    for i in 0..p {
        for j in i..p {
            s[i * p + j] /= nf;
            s[j * p + i] = s[i * p + j];
        }
    }
    // Ledoit-Wolf shrinkage towards the identity (the target of a correlation matrix).
    let mut num = 0.0;
    let mut den = 0.0;
    for i in 0..p {
        for j in 0..p {
            if i == j {
                continue;
            }
            let sij = s[i * p + j];
            let mut v = 0.0;
            for r in 0..n {
                let d = zs[r * p + i] * zs[r * p + j] - sij;
                v += d * d;
            }
            num += v / (nf * nf);
            den += sij * sij;
        }
    }
    let shrink = if den > 0.0 {
        (num / den).clamp(MIN_SHRINK, 1.0)
    } else {
        1.0
    };
    // The variance floor: every standardised metric has unit variance in the model, and a
    // metric spread wider than its scale (a fold's own spread) is scaled back, so the matrix
    // stays a correlation matrix (positive semi-definite) before shrinkage. A spread floored
    // at the metric's resolution stays damped: that part is noise of its own.
    let norm: Vec<f64> = (0..p)
        .map(|i| {
            // A spread widened for its few independent readings keeps the metric's
            // correlations: the widening is uncertainty of its level, not noise of its own.
            s[i * p + i].max(1.0 / inflation(n_eff[i])).sqrt()
        })
        .collect();
    let mut corr = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            corr[i * p + j] = s[i * p + j] / (norm[i] * norm[j]);
        }
    }
    let precision = shrunk_precision(p, &corr, shrink)?;
    Some((
        Regime {
            dims: dims.to_vec(),
            center,
            scale,
            precision,
            limit_row: 0.0,
            limit_certain: 0.0,
            limit_smooth: 0.0,
            last_used_ms: now_ms,
            shrink,
            floor,
            n_eff,
            follow: None,
            repeat_odds: Vec::new(),
            held: Vec::new(),
            change: None,
            limit_metric_dispersion: Vec::new(),
        },
        s,
    ))
}

/// How many independent readings `values` (in time order, mean `m`, variance `var`) are worth:
/// n / (1 + 2 Σ ρ_k), the autocorrelations summed while they stay positive (Geyer's initial
/// positive sequence, simplified): a slow wander counts for few readings, an oscillation the
/// window covers several times for many.
fn effective_count(values: &[f64], m: f64, var: f64) -> f64 {
    let n = values.len() as f64;
    if var <= 0.0 || values.len() < 3 {
        return n;
    }
    let mut sum = 1.0;
    for k in 1..values.len() / 2 {
        let rho = values
            .iter()
            .zip(&values[k..])
            .map(|(a, b)| (a - m) * (b - m))
            .sum::<f64>()
            / (n * var);
        if rho <= 0.0 {
            break;
        }
        sum += 2.0 * rho;
    }
    n / sum
}

/// The factor by which the variance of `n` independent readings understates that of the next
/// reading: the sample variance's bias (1 − 1/n) and the uncertainty of the centre (1 + 1/n).
/// Below `MIN_INDEPENDENT` readings the window says little about the spread, and the factor
/// stays at its value there.
pub(crate) fn inflation(n: f64) -> f64 {
    let n = n.max(MIN_INDEPENDENT);
    (1.0 + 1.0 / n) / (1.0 - 1.0 / n)
}

/// The inverse of the correlation matrix `corr` (p×p, row-major) shrunk towards the identity by
/// `shrink`; `None` when it is not positive definite.
pub(crate) fn shrunk_precision(p: usize, corr: &[f64], shrink: f64) -> Option<Vec<f64>> {
    let mut m = DMatrix::<f64>::zeros(p, p);
    for i in 0..p {
        for j in 0..p {
            m[(i, j)] = if i == j {
                1.0
            } else {
                (1.0 - shrink) * corr[i * p + j]
            };
        }
    }
    let inv = m.cholesky()?.inverse();
    let mut precision = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            precision[i * p + j] = 0.5 * (inv[(i, j)] + inv[(j, i)]);
        }
    }
    Some(precision)
}

/// Scores fitted as g·χ²(h) by their mean and variance (Box 1954, the usual SPE limit):
/// smoother than an empirical quantile of a hundred scores, and heavier-tailed when the scores
/// are spread out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScaledChi2 {
    g: f64,
    h: f64,
}

impl ScaledChi2 {
    pub fn fit(scores: &[f64]) -> Self {
        let n = scores.len() as f64;
        if scores.is_empty() {
            return Self {
                g: f64::INFINITY,
                h: 1.0,
            };
        }
        let m = scores.iter().sum::<f64>() / n;
        let v = scores.iter().map(|s| (s - m) * (s - m)).sum::<f64>() / (n - 1.0).max(1.0);
        if m <= 0.0 || v <= 1e-12 * m * m {
            // Scores that do not vary: a limit at twice their level.
            return Self {
                g: (2.0 * m).max(1e-9) / chi2_quantile(1.0, 0.5).max(1e-9),
                h: 1.0,
            };
        }
        // At least one degree of freedom: beyond that the approximation is no longer a χ².
        let h = (2.0 * m * m / v).max(1.0);
        Self { g: m / h, h }
    }

    /// The exponentially weighted mean (weight `lambda`) of independent `scores`, as g·χ²(h):
    /// the scores' mean m and variance v give h = 2m²/v (below 1 for bursty scores: a switch
    /// now and then); the weighted mean has variance λ/(2 − λ)·v, so h(2 − λ)/λ degrees of
    /// freedom (at least 1), the same mean.
    pub fn smoothed(scores: &[f64], lambda: f64) -> Self {
        let n = scores.len() as f64;
        let m = scores.iter().sum::<f64>() / n.max(1.0);
        let v = scores.iter().map(|s| (s - m) * (s - m)).sum::<f64>() / (n - 1.0).max(1.0);
        if scores.is_empty() || m <= 0.0 || v <= 1e-12 * m * m {
            return Self::fit(scores);
        }
        let h = (2.0 * m * m / v * (2.0 - lambda) / lambda).max(1.0);
        Self { g: m / h, h }
    }

    /// The same mean with at most `h` degrees of freedom (a heavier tail).
    pub fn with_dof_at_most(self, h: f64) -> Self {
        if self.h <= h {
            return self;
        }
        let m = self.g * self.h;
        Self { g: m / h, h }
    }

    pub fn quantile(&self, q: f64) -> f64 {
        self.g * chi2_quantile(self.h, q)
    }
}

/// χ² quantile with `h` degrees of freedom (Wilson-Hilferty).
pub(crate) fn chi2_quantile(h: f64, q: f64) -> f64 {
    let z = normal_quantile(q);
    let a = 2.0 / (9.0 * h);
    (h * (1.0 - a + z * a.sqrt()).powi(3)).max(0.0)
}

/// Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_noise::Noise;

    /// `values` from an AR(1) of coefficient `phi`.
    fn ar1(phi: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut noise = Noise(seed);
        let mut x = 0.0;
        (0..n)
            .map(|_| {
                x = phi * x + noise.normal();
                x
            })
            .collect()
    }

    #[test]
    fn a_wandering_metric_counts_fewer_independent_readings_and_a_wider_spread() {
        let check = |phi: f64, (lo, hi): (f64, f64), widen: (f64, f64)| {
            let v = ar1(phi, 120, 5);
            let m = v.iter().sum::<f64>() / 120.0;
            let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 119.0;
            let n = effective_count(&v, m, var);
            assert!(n >= lo && n <= hi, "phi {phi}: {n} independent readings");
            let f = inflation(n);
            assert!(f >= widen.0 && f <= widen.1, "phi {phi}: factor {f}");
        };
        // Independent readings: the spread stands (within 2 %).
        check(0.0, (90.0, 150.0), (1.0, 1.03));
        // φ = 0.9: about 120·0.1/1.9 ≈ 6 readings (13 from a window this short); the
        // variance is widened by 10-50 %.
        check(0.9, (4.0, 20.0), (1.1, 1.5));
        // A random walk: the window says little (a few readings); the variance about doubles
        // (at most tripled).
        check(1.0, (0.0, 5.0), (1.7, 3.0));
    }
}
