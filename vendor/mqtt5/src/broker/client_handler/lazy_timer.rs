//! SENTIO-PATCH: a timer for a deadline that is rarely set, allocated only once one is.
//!
//! A `Sleep` waited on inside the packet loop's `select!` sits inline in the connection's
//! task for the connection's whole life, whether a deadline is set or not; this keeps a
//! pointer there instead and reuses the one allocation for later deadlines.

use std::pin::Pin;
use tokio::time::{sleep_until, Instant, Sleep};

/// Waits until `deadline`; never resolves while it is `None`. `timer` is armed (allocated) at
/// the first deadline and reset for each later one.
pub(super) async fn sleep_until_armed(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Option<Instant>,
) {
    let Some(deadline) = deadline else {
        return std::future::pending().await;
    };
    let timer = match timer {
        Some(timer) => {
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            timer
        }
        None => timer.insert(Box::pin(sleep_until(deadline))),
    };
    timer.as_mut().await;
}
