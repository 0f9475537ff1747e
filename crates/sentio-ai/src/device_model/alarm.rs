//! The persistence filter between a row's verdict and an alarm: `open_k` of the last `open_n`
//! rows over the limit open it (or one row far beyond it, as unlikely in normal operation as
//! `open_k` rows over); `close_m` consecutive rows under close it. While open it stays
//! one alarm, however long the fault lasts.

use serde::{Deserialize, Serialize};

/// What the filter did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Quiet,
    Opened,
    Holding,
    Closed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Alarm {
    /// Bit i: row −i was over the limit.
    recent: u32,
    /// Since when (ms) the alarm is open.
    pub open_since: Option<i64>,
    /// Consecutive rows under the limit while open.
    under_run: u32,
}

impl Alarm {
    pub fn is_open(&self) -> bool {
        self.open_since.is_some()
    }

    /// `certain`: the row alone is as strong evidence as `open_k` rows over the limit.
    pub fn step(&mut self, ts_ms: i64, over: bool, certain: bool, rule: (u32, u32, u32)) -> Step {
        let (open_k, open_n, close_m) = rule;
        let window = if open_n >= 32 {
            u32::MAX
        } else {
            (1u32 << open_n) - 1
        };
        self.recent = ((self.recent << 1) | u32::from(over)) & window;
        match self.open_since {
            None if certain || self.recent.count_ones() >= open_k => {
                self.open_since = Some(ts_ms);
                self.under_run = 0;
                Step::Opened
            }
            None => Step::Quiet,
            Some(_) if over => {
                self.under_run = 0;
                Step::Holding
            }
            Some(_) => {
                self.under_run += 1;
                if self.under_run >= close_m {
                    self.close();
                    Step::Closed
                } else {
                    Step::Holding
                }
            }
        }
    }

    /// Closes without waiting (a new normal was declared).
    pub fn close(&mut self) {
        self.open_since = None;
        self.under_run = 0;
        self.recent = 0;
    }
}
