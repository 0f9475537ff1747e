//! SENTIO-PATCH: a pause after a failed `accept` (for example EMFILE, too many open files), so
//! that an accept loop out of descriptors waits for one to be freed instead of spinning and
//! logging each failure: the pause doubles from 10 ms to 1 s and is reset by a successful
//! accept; one log line per 10 s says how many failures it stands for. Failures are counted
//! ([`accept_errors`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Failed accepts on the broker's listeners since the process started.
pub fn accept_errors() -> u64 {
    ACCEPT_ERRORS.load(Ordering::Relaxed)
}

/// The state of one accept loop.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    pause: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    /// An accept succeeded: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }

    /// An accept of `listener` failed with `error`: counts it, logs it at most once per
    /// interval, and waits the current pause.
    pub async fn failed(&mut self, listener: &str, error: &std::io::Error) {
        ACCEPT_ERRORS.fetch_add(1, Ordering::Relaxed);
        self.pause = (self.pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < LOG_INTERVAL)
        {
            self.suppressed += 1;
        } else {
            tracing::error!(
                suppressed = self.suppressed,
                pause_ms = self.pause.as_millis() as u64,
                "{listener} accept error: {error}; pausing before the next accept"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        }
        tokio::time::sleep(self.pause).await;
    }
}
