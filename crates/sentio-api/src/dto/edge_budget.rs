//! What an edge's outbox took in per lane and what became of it under the disk budget (in
//! `/api/v1/uplink` as `counts`): accepted = delivered + degraded + dropped + pending.

use sentio_store::{LaneCounts, OutboxCounts};
use serde::Serialize;

/// One lane's counts (the rollups lane: rows).
#[derive(Debug, Serialize)]
pub struct LaneCountsView {
    pub accepted: u64,
    pub delivered: u64,
    /// Undelivered, replaced by their minutes' rollups (which go up instead).
    pub degraded: u64,
    /// Undelivered, removed.
    pub dropped: u64,
    pub pending: u64,
}

impl From<&LaneCounts> for LaneCountsView {
    fn from(c: &LaneCounts) -> Self {
        Self {
            accepted: c.accepted,
            delivered: c.delivered,
            degraded: c.degraded,
            dropped: c.dropped,
            pending: c.pending,
        }
    }
}

/// Every lane's counts, and the raw points degraded and dropped in all.
#[derive(Debug, Serialize)]
pub struct OutboxCountsView {
    pub points: LaneCountsView,
    pub backlog: LaneCountsView,
    pub rollups: LaneCountsView,
    pub degraded_points: u64,
    pub dropped_points: u64,
}

impl From<&OutboxCounts> for OutboxCountsView {
    fn from(c: &OutboxCounts) -> Self {
        Self {
            points: (&c.live).into(),
            backlog: (&c.backlog).into(),
            rollups: (&c.rollups).into(),
            degraded_points: c.degraded_points(),
            dropped_points: c.dropped_points(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::tests::check;

    #[test]
    fn outbox_counts() {
        let lane = |accepted, delivered, degraded, dropped, pending| LaneCounts {
            accepted,
            delivered,
            degraded,
            dropped,
            pending,
        };
        check(
            OutboxCountsView::from(&OutboxCounts {
                live: lane(100, 90, 0, 0, 10),
                backlog: lane(500, 200, 240, 20, 40),
                rollups: lane(4, 0, 0, 0, 4),
            }),
            r#"{"points":{"accepted":100,"delivered":90,"degraded":0,"dropped":0,"pending":10},"backlog":{"accepted":500,"delivered":200,"degraded":240,"dropped":20,"pending":40},"rollups":{"accepted":4,"delivered":0,"degraded":0,"dropped":0,"pending":4},"degraded_points":240,"dropped_points":20}"#,
        );
    }
}
