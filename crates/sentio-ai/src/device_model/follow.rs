//! Slow learning after the fit: a regime keeps learning from the rows it judges normal (under
//! its limits, no alarm open), with a time constant in device time, not rows, so the same
//! setting carries from a 3-minute plant historian to a 1 Hz sensor. Its centre and covariance
//! are an exponentially weighted mean and covariance of those rows, the fit counting as
//! `follow_ms` worth of rows (so one row weighs what its share of that time is), and the regime
//! is refitted from them every `follow_ms / REFITS` of device time. Each reading enters
//! winsorised at `CLIP` spreads, so a row that is jointly normal but far out in one metric
//! widens that metric a little, not by its square. Rows while an alarm is open are never
//! learnt: a fault is not absorbed, only normal operation's slow variation is.

use serde::{Deserialize, Serialize};

use super::fit::inflation;
use super::packed::{Packed, pack_symmetric, unpack_symmetric};

/// Refits per time constant.
const REFITS: i64 = 16;
/// A reading enters the statistics at most this many spreads from the centre.
const CLIP: f64 = 3.0;

/// The weighted statistics of the rows learnt (see the module docs), in raw units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Follow {
    /// Effective number of rows (decays with device time).
    weight: f64,
    mean: Vec<f64>,
    /// Covariance, upper triangle row by row.
    cov: Packed,
    /// Time of the last row learnt (ms).
    last_ms: i64,
    /// Time of the last refit (ms).
    refit_ms: i64,
}

/// What a refit starts from: centre, spreads and correlation matrix (p×p, row-major).
pub(crate) struct Estimate {
    pub center: Vec<f64>,
    pub scale: Vec<f64>,
    pub corr: Vec<f64>,
}

impl Follow {
    /// Starts from a fit of `center` and `scale` whose standardised rows had covariance `cov`
    /// (p×p), over `n` rows spanning `span_ms`: the fit weighs as `time_constant_ms` of rows.
    pub fn new(
        center: &[f64],
        scale: &[f64],
        cov: &[f64],
        (n, span_ms): (usize, i64),
        (now_ms, time_constant_ms): (i64, i64),
    ) -> Self {
        let p = center.len();
        let mut raw = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                raw[i * p + j] = cov[i * p + j] * scale[i] * scale[j];
            }
        }
        let weight = n as f64 * (time_constant_ms as f64 / span_ms.max(1) as f64).max(1.0);
        Self {
            weight,
            mean: center.to_vec(),
            cov: Packed(pack_symmetric(p, &raw)),
            last_ms: now_ms,
            refit_ms: now_ms,
        }
    }

    /// Learns one row: `z` standardised by `center` and `scale` (missing readings imputed).
    pub fn learn(
        &mut self,
        z: &[f64],
        (center, scale): (&[f64], &[f64]),
        ts_ms: i64,
        time_constant_ms: i64,
    ) {
        let p = self.mean.len();
        if z.len() != p || self.cov.0.len() != p * (p + 1) / 2 {
            return;
        }
        let dt = (ts_ms - self.last_ms).max(0) as f64;
        self.last_ms = ts_ms;
        self.weight = self.weight * (-dt / time_constant_ms.max(1) as f64).exp() + 1.0;
        let alpha = 1.0 / self.weight;
        let d: Vec<f64> = (0..p)
            .map(|k| center[k] + scale[k] * z[k].clamp(-CLIP, CLIP) - self.mean[k])
            .collect();
        for (m, dk) in self.mean.iter_mut().zip(&d) {
            *m += alpha * dk;
        }
        // Row i of the packed upper triangle: (i, i..p), one contiguous run per row.
        let mut start = 0;
        for i in 0..p {
            let di = alpha * d[i];
            let run = &mut self.cov.0[start..start + p - i];
            for (v, dj) in run.iter_mut().zip(&d[i..]) {
                *v = (1.0 - alpha) * (*v + di * dj);
            }
            start += p - i;
        }
    }

    /// The statistics to refit from, when a refit is due at `ts_ms`; `floor` bounds each
    /// spread below. Each spread is widened as at the fit (`fit::inflation` of its metric's
    /// independent readings `n_eff`), so the limits calibrated then still hold.
    pub fn refit(
        &mut self,
        ts_ms: i64,
        time_constant_ms: i64,
        floor: &[f64],
        n_eff: &[f64],
    ) -> Option<Estimate> {
        if ts_ms - self.refit_ms < (time_constant_ms / REFITS).max(1) {
            return None;
        }
        self.refit_ms = ts_ms;
        let p = self.mean.len();
        let cov = unpack_symmetric(p, &self.cov.0)?;
        let widen: Vec<f64> = (0..p)
            .map(|k| n_eff.get(k).map_or(1.0, |n| inflation(*n).sqrt()))
            .collect();
        let sd: Vec<f64> = (0..p)
            .map(|k| cov[k * p + k].max(0.0).sqrt() * widen[k])
            .collect();
        let scale = (0..p)
            .map(|k| sd[k].max(floor.get(k).copied().unwrap_or(0.0)))
            .collect();
        let mut corr = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                corr[i * p + j] = if i == j {
                    1.0
                } else if sd[i] > 0.0 && sd[j] > 0.0 {
                    // Widening keeps the correlations, as at the fit.
                    cov[i * p + j] / (sd[i] * sd[j]) * widen[i] * widen[j]
                } else {
                    0.0
                };
            }
        }
        Some(Estimate {
            center: self.mean.clone(),
            scale,
            corr,
        })
    }
}
