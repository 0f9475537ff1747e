//! The notifier's settings (`[notify]` in `sentio.toml`).

/// The notifier's settings. See each field.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// How long silence alerts are held, per device kind, before they are notified: enough
    /// time for a fleet that goes quiet together to gather (ms).
    pub group_wait_ms: i64,
    /// At least this many silence alerts of one device kind held together become one grouped
    /// alert; fewer are notified one by one. 0 turns grouping off.
    pub group_min: usize,
    /// The first retry of a failed delivery waits this long; each further one twice as long
    /// as the one before (ms).
    pub retry_first_ms: i64,
    /// No retry waits longer than this (ms).
    pub retry_max_ms: i64,
    /// A message still failing this long after it was queued is given up (ms).
    pub give_up_after_ms: i64,
    /// How long one delivery attempt may take (ms).
    pub attempt_timeout_ms: i64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            group_wait_ms: 10_000,
            group_min: 10,
            retry_first_ms: 1_000,
            retry_max_ms: 3_600_000,
            give_up_after_ms: 24 * 3_600_000,
            attempt_timeout_ms: 10_000,
        }
    }
}

impl NotifyConfig {
    /// When to try again a message that has failed `failures` times (this one included),
    /// failing now at `now_ms`; `None` once it is older than `give_up_after_ms`.
    pub fn retry_at(&self, created_ms: i64, failures: u32, now_ms: i64) -> Option<i64> {
        if now_ms.saturating_sub(created_ms) >= self.give_up_after_ms {
            return None;
        }
        let doublings = failures.saturating_sub(1).min(40);
        let wait = self
            .retry_first_ms
            .saturating_mul(1_i64 << doublings)
            .min(self.retry_max_ms);
        Some(now_ms.saturating_add(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap_and_stop_after_a_day() {
        let c = NotifyConfig::default();
        let waits: Vec<i64> = (1..=14)
            .map(|n| c.retry_at(0, n, 1_000).unwrap() - 1_000)
            .collect();
        assert_eq!(&waits[..4], [1_000, 2_000, 4_000, 8_000]);
        assert_eq!(waits[13], 3_600_000, "capped at retry_max");
        assert!(c.retry_at(0, 3, 24 * 3_600_000 - 1).is_some());
        assert_eq!(
            c.retry_at(0, 3, 24 * 3_600_000),
            None,
            "given up after 24 h"
        );
    }
}
