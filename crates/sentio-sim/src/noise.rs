//! Seeded random sources and the small numeric helpers shared by the device models.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Derives an independent, reproducible random stream from the fleet seed and a stream number
/// (SplitMix64 finaliser), so that adding a device never changes another device's values.
pub(crate) fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// A standard normal sample (Box-Muller).
pub(crate) fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniform sample in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Rounds to a multiple of `step` (e.g. 0.01, 0.1, 1.0), the resolution a real sensor reports.
pub(crate) fn quantize(value: f64, step: f64) -> f64 {
    let q = (value / step).round() * step;
    // Clean up binary noise such as 21.530000000000001 so JSON shows the sensor's precision.
    let decimals = (-step.log10()).ceil().max(0.0) as i32;
    let p = 10f64.powi(decimals);
    (q * p).round() / p
}

/// A mean-reverting random walk (Ornstein-Uhlenbeck) sampled at irregular steps: slow wander
/// around zero with stationary standard deviation `sigma` and correlation time `tau_s` seconds.
#[derive(Debug, Clone)]
pub(crate) struct Wander {
    value: f64,
    sigma: f64,
    tau_s: f64,
}

impl Wander {
    pub(crate) fn new(rng: &mut ChaCha8Rng, sigma: f64, tau_s: f64) -> Self {
        Self {
            value: sigma * gauss(rng),
            sigma,
            tau_s,
        }
    }

    pub(crate) fn step(&mut self, rng: &mut ChaCha8Rng, dt_s: f64) -> f64 {
        let a = (-dt_s / self.tau_s).exp();
        self.value = a * self.value + self.sigma * (1.0 - a * a).sqrt() * gauss(rng);
        self.value
    }
}

/// Moves `current` toward `target` as a first-order lag with time constant `tau_s`.
pub(crate) fn relax(current: f64, target: f64, dt_s: f64, tau_s: f64) -> f64 {
    target + (current - target) * (-dt_s / tau_s).exp()
}

/// Seconds since midnight UTC of a Unix-epoch millisecond timestamp, as fractional hours.
pub(crate) fn hour_of_day(ts_ms: i64) -> f64 {
    (ts_ms.rem_euclid(86_400_000) as f64) / 3_600_000.0
}

/// Day of week of a Unix-epoch millisecond timestamp (UTC), 0 = Monday .. 6 = Sunday.
pub(crate) fn weekday(ts_ms: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (ts_ms.div_euclid(86_400_000) + 3).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_keeps_sensor_precision() {
        assert_eq!(quantize(21.534_9, 0.01), 21.53);
        assert_eq!(quantize(47.26, 0.1), 47.3);
        assert_eq!(quantize(612.4, 1.0), 612.0);
        assert_eq!(format!("{}", quantize(0.1 + 0.2, 0.01)), "0.3");
    }

    #[test]
    fn calendar_helpers() {
        // 2024-01-01T09:30:00Z, a Monday.
        let ts = 1_704_101_400_000;
        assert!((hour_of_day(ts) - 9.5).abs() < 1e-9);
        assert_eq!(weekday(ts), 0);
        assert_eq!(weekday(ts + 5 * 86_400_000), 5);
    }

    #[test]
    fn gauss_has_unit_variance() {
        let mut rng = stream(7, 1);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| gauss(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
