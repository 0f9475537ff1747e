//! Edge nodes on the wire: the cloud's registry of edges (`/api/v1/edges`) and an edge's own
//! uplink (`/api/v1/uplink`).

use sentio_broker::EdgeReport;
use sentio_core::time::{format_time, now_ms};
use sentio_edge::LinkSnapshot;
use sentio_store::{Edge, EdgeProgress, LaneStatus, OutboxStatus, ResyncRun, UplinkPolicy};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/edges` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEdge {
    pub id: String,
}

/// `POST /api/v1/edges` answer: the secret, shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedEdge {
    pub id: String,
    pub secret: String,
    pub mqtt_username: String,
    pub uplink_topic: String,
}

/// How far the cloud applied one incarnation and lane of an edge.
#[derive(Debug, Serialize)]
pub struct ProgressView {
    pub incarnation: String,
    pub lane: &'static str,
    pub seq: i64,
    pub part: u32,
    pub points: u64,
    pub last_applied: String,
    pub last_applied_ms: i64,
}

impl From<&EdgeProgress> for ProgressView {
    fn from(p: &EdgeProgress) -> Self {
        Self {
            incarnation: p.incarnation.to_hex(),
            lane: p.lane.as_str(),
            seq: p.seq.0,
            part: p.part,
            points: p.points,
            last_applied: format_time(p.updated_ms),
            last_applied_ms: p.updated_ms,
        }
    }
}

/// An edge as the cloud shows it (never its secret).
#[derive(Debug, Serialize)]
pub struct EdgeView {
    pub id: String,
    pub created: String,
    pub created_ms: i64,
    /// Whether it is connected to this node's broker now.
    pub connected: bool,
    /// Points applied from it, every incarnation.
    pub points: u64,
    /// When its last batch was applied (and acknowledged).
    pub last_ack_ms: Option<i64>,
    /// What it sends up (`raw` or `aggregates`): as it last reported (kept across restarts of
    /// this node); unknown before its first report.
    pub policy: Option<&'static str>,
    /// What it last reported of its outbox (since this node started), if anything.
    pub reported: Option<ReportView>,
    /// How far its clock was ahead of this node's at its last report (negative: behind).
    pub clock_skew_ms: Option<i64>,
    /// Whether that is within `edges.clock_skew_limit`; unknown before a report with its clock.
    pub clock_ok: Option<bool>,
    pub progress: Vec<ProgressView>,
    /// Its last re-sync (`POST /api/v1/edges/<id>/resync`), if any.
    pub resync: Option<ResyncView>,
}

/// `POST /api/v1/edges/<id>/resync` query: the range to compare (ms; default: every hour the
/// cloud and the edge hold).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// A re-sync run of an edge.
#[derive(Debug, Serialize)]
pub struct ResyncView {
    pub id: i64,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub from_ms: i64,
    pub to_ms: i64,
    /// (series, hour) pairs compared, and those that differed (as the edge reported them).
    pub hours_compared: u64,
    pub hours_differing: u64,
    /// Points sent again and applied.
    pub points_resent: u64,
    /// Minute rollup rows sent again and applied (an edge with the aggregates policy).
    pub rollup_rows_resent: u64,
    pub parts: u64,
    pub started: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub error: Option<String>,
}

impl From<&ResyncRun> for ResyncView {
    fn from(r: &ResyncRun) -> Self {
        Self {
            id: r.id,
            state: r.state.as_str(),
            from_ms: r.from,
            to_ms: r.to,
            hours_compared: r.hours_compared,
            hours_differing: r.hours_differing,
            points_resent: r.points_resent,
            rollup_rows_resent: r.rollup_rows_resent,
            parts: r.parts,
            started: format_time(r.started_ms),
            started_ms: r.started_ms,
            finished_ms: r.finished_ms,
            error: r.error.clone(),
        }
    }
}

/// What an edge last reported of its outbox.
#[derive(Debug, Serialize)]
pub struct ReportView {
    pub pending_batches: u64,
    pub pending_points: u64,
    pub oldest_pending_age_ms: Option<i64>,
    pub acked_seq: i64,
    /// Of the pending ones, those in the backlog lane (committed while the link was down).
    pub backlog_batches: u64,
    pub backlog_points: u64,
    /// Backlog points acknowledged per second lately.
    pub backlog_drain_rate: u64,
    /// Undelivered raw points the edge's disk budget replaced by minute rollups, ever.
    pub degraded_points: u64,
    /// Undelivered raw points its disk budget removed, ever.
    pub dropped_points: u64,
    pub reported: String,
    pub reported_ms: i64,
}

impl From<&EdgeReport> for ReportView {
    fn from(r: &EdgeReport) -> Self {
        Self {
            pending_batches: r.pending_batches,
            pending_points: r.pending_points,
            oldest_pending_age_ms: r.oldest_pending_age_ms,
            acked_seq: r.acked_seq,
            backlog_batches: r.backlog_batches,
            backlog_points: r.backlog_points,
            backlog_drain_rate: r.backlog_drain_rate,
            degraded_points: r.degraded_points,
            dropped_points: r.dropped_points,
            reported: format_time(r.reported_ms),
            reported_ms: r.reported_ms,
        }
    }
}

impl EdgeView {
    /// The view of `e`, connected or not, with its last report; its clock is checked against
    /// `clock_skew_limit_ms`.
    pub fn new(
        e: &Edge,
        connected: bool,
        report: Option<&EdgeReport>,
        clock_skew_limit_ms: i64,
    ) -> Self {
        Self {
            id: e.id.to_string(),
            created: format_time(e.created_ms),
            created_ms: e.created_ms,
            connected,
            points: e.progress.iter().map(|p| p.points).sum(),
            last_ack_ms: e.progress.iter().map(|p| p.updated_ms).max(),
            policy: report
                .map(|r| r.policy)
                .or(e.policy)
                .map(UplinkPolicy::as_str),
            reported: report.map(ReportView::from),
            clock_skew_ms: report.and_then(|r| r.clock_skew_ms),
            clock_ok: report.and_then(|r| r.clock_ok(clock_skew_limit_ms)),
            progress: e.progress.iter().map(ProgressView::from).collect(),
            resync: None,
        }
    }
}

/// `GET /api/v1/uplink`: an edge's outbox and link.
#[derive(Debug, Serialize)]
pub struct UplinkView {
    pub edge_id: String,
    pub upstream: String,
    pub connected: bool,
    pub incarnation: String,
    /// Every batch up to this one is held by the cloud.
    pub acked_seq: i64,
    pub last_seq: i64,
    /// Batches and points committed here and not yet acknowledged by the cloud.
    pub pending_batches: u64,
    pub pending_points: u64,
    /// How old the oldest of them is (ms), if any.
    pub oldest_pending_age_ms: Option<i64>,
    pub last_ack_ms: Option<i64>,
    pub in_flight: u64,
    pub connects: u64,
    pub link_losses: u64,
    pub ack_timeouts: u64,
    pub parts_sent: u64,
    pub points_sent: u64,
    pub bytes_sent: u64,
    pub batches_acked: u64,
    pub points_acked: u64,
    pub last_error: Option<String>,
    /// The live lane: batches committed while the link was up, sent first.
    pub live: LaneView,
    /// Registry and alert records the cloud acknowledged since start.
    pub records_acked: u64,
    /// The backlog lane: batches committed while the link was down, drained beside the live
    /// lane at a bounded rate.
    pub backlog: BacklogView,
    /// The rollups lane (the aggregates policy): its "points" are 1-minute rollup rows.
    pub rollups: RollupsView,
    /// Per lane: accepted, delivered, degraded, dropped, pending (`/api/v1/uplink`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<super::OutboxCountsView>,
}

/// The rollups lane, with the rows the cloud acknowledged.
#[derive(Debug, Serialize)]
pub struct RollupsView {
    #[serde(flatten)]
    pub lane: LaneView,
    /// Rollup rows acknowledged since start.
    pub rows_acked: u64,
    /// Bytes of the rollups' MQTT packets sent since start (framing included, before TLS).
    pub packet_bytes: u64,
}

/// One lane of an edge's outbox.
#[derive(Debug, Serialize)]
pub struct LaneView {
    /// Every batch of the lane up to this one is held by the cloud.
    pub acked_seq: i64,
    pub pending_batches: u64,
    pub pending_points: u64,
    pub oldest_pending_age_ms: Option<i64>,
}

impl LaneView {
    fn new(l: &LaneStatus, now_ms: i64) -> Self {
        Self {
            acked_seq: l.acked.0,
            pending_batches: l.pending_batches,
            pending_points: l.pending_points,
            oldest_pending_age_ms: l.oldest_pending_ms.map(|t| (now_ms - t).max(0)),
        }
    }
}

/// The backlog lane, with how fast it drains.
#[derive(Debug, Serialize)]
pub struct BacklogView {
    #[serde(flatten)]
    pub lane: LaneView,
    /// Backlog points acknowledged per second lately (0 while the link is down).
    pub drain_rate: u64,
    /// The configured most backlog points per second (`edge.backlog_rate`; 0: no limit).
    pub rate_limit: u64,
    /// Backlog points acknowledged since start.
    pub points_acked: u64,
}

impl UplinkView {
    /// The view of an edge's outbox and link as of `now_ms`.
    pub fn new(
        edge_id: String,
        upstream: String,
        o: &OutboxStatus,
        l: &LinkSnapshot,
        now_ms: i64,
    ) -> Self {
        Self {
            edge_id,
            upstream,
            connected: l.connected,
            incarnation: o.incarnation.to_hex(),
            acked_seq: o.acked.0,
            last_seq: o.last.0,
            pending_batches: o.pending_batches,
            pending_points: o.pending_points,
            oldest_pending_age_ms: o.oldest_pending_ms.map(|t| (now_ms - t).max(0)),
            last_ack_ms: o.last_ack_ms,
            in_flight: l.in_flight,
            connects: l.connects,
            link_losses: l.link_losses,
            ack_timeouts: l.ack_timeouts,
            parts_sent: l.parts_sent,
            points_sent: l.points_sent,
            bytes_sent: l.bytes_sent,
            batches_acked: l.batches_acked,
            points_acked: l.points_acked,
            last_error: l.last_error.clone(),
            live: LaneView::new(&o.live, now_ms),
            records_acked: l.records_acked,
            backlog: BacklogView {
                lane: LaneView::new(&o.backlog, now_ms),
                drain_rate: l.backlog_drain_rate,
                rate_limit: l.backlog_rate_limit,
                points_acked: l.backlog_points_acked,
            },
            rollups: RollupsView {
                lane: LaneView::new(&o.rollups, now_ms),
                rows_acked: l.rollup_rows_acked,
                packet_bytes: l.rollup_packet_bytes,
            },
            counts: None,
        }
    }

    /// The view now.
    pub fn now(edge_id: String, upstream: String, o: &OutboxStatus, l: &LinkSnapshot) -> Self {
        Self::new(edge_id, upstream, o, l, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::tests::check;
    use sentio_core::EdgeId;
    use sentio_store::{BatchSeq, Incarnation, Lane};

    #[test]
    fn edges_and_uplink() {
        let edge = Edge {
            id: EdgeId::parse("site-1").unwrap(),
            created_ms: 1_700_000_000_000,
            progress: vec![EdgeProgress {
                incarnation: Incarnation([0xab; 16]),
                lane: Lane::Points,
                seq: BatchSeq(7),
                part: 0,
                points: 120,
                updated_ms: 1_700_000_001_000,
            }],
            policy: None,
        };
        check(
            EdgeView::new(
                &edge,
                true,
                Some(&EdgeReport {
                    pending_batches: 2,
                    pending_points: 30,
                    oldest_pending_age_ms: Some(1_500),
                    acked_seq: 6,
                    backlog_batches: 1,
                    backlog_points: 20,
                    backlog_drain_rate: 400,
                    policy: sentio_store::UplinkPolicy::Raw,
                    reported_ms: 1_700_000_002_000,
                    clock_skew_ms: Some(-45_000),
                    degraded_points: 600,
                    dropped_points: 0,
                }),
                30_000,
            ),
            r#"{"id":"site-1","created":"2023-11-14T22:13:20Z","created_ms":1700000000000,"connected":true,"points":120,"last_ack_ms":1700000001000,"policy":"raw","reported":{"pending_batches":2,"pending_points":30,"oldest_pending_age_ms":1500,"acked_seq":6,"backlog_batches":1,"backlog_points":20,"backlog_drain_rate":400,"degraded_points":600,"dropped_points":0,"reported":"2023-11-14T22:13:22Z","reported_ms":1700000002000},"clock_skew_ms":-45000,"clock_ok":false,"progress":[{"incarnation":"abababababababababababababababab","lane":"points","seq":7,"part":0,"points":120,"last_applied":"2023-11-14T22:13:21Z","last_applied_ms":1700000001000}],"resync":null}"#,
        );
        check(
            ResyncView::from(&ResyncRun {
                id: 3,
                edge: EdgeId::parse("site-1").unwrap(),
                state: sentio_store::ResyncState::Done,
                from: 0,
                to: 86_400_000,
                hours_compared: 24,
                hours_differing: 2,
                points_resent: 7_200,
                rollup_rows_resent: 0,
                parts: 2,
                started_ms: 1_700_000_000_000,
                finished_ms: Some(1_700_000_004_000),
                error: None,
            }),
            r#"{"id":3,"state":"done","from_ms":0,"to_ms":86400000,"hours_compared":24,"hours_differing":2,"points_resent":7200,"rollup_rows_resent":0,"parts":2,"started":"2023-11-14T22:13:20Z","started_ms":1700000000000,"finished_ms":1700000004000,"error":null}"#,
        );
        let o = OutboxStatus {
            incarnation: Incarnation([1; 16]),
            acked: BatchSeq(5),
            last: BatchSeq(9),
            pending_batches: 4,
            pending_points: 40,
            oldest_pending_ms: Some(1_000),
            last_ack_ms: Some(900),
            live: LaneStatus {
                acked: BatchSeq(8),
                pending_batches: 1,
                pending_points: 10,
                oldest_pending_ms: Some(3_000),
            },
            backlog: LaneStatus {
                acked: BatchSeq(5),
                pending_batches: 3,
                pending_points: 30,
                oldest_pending_ms: Some(1_000),
            },
            rollups: LaneStatus {
                acked: BatchSeq(0),
                pending_batches: 0,
                pending_points: 0,
                oldest_pending_ms: None,
            },
        };
        let l = LinkSnapshot {
            connected: false,
            connects: 2,
            link_losses: 1,
            ack_timeouts: 1,
            parts_sent: 6,
            bytes_sent: 600,
            points_sent: 60,
            batches_acked: 5,
            points_acked: 50,
            in_flight: 0,
            backlog_points_acked: 20,
            backlog_drain_rate: 0,
            backlog_rate_limit: 500,
            records_acked: 3,
            rollup_rows_acked: 0,
            rollup_packet_bytes: 0,
            last_error: Some("silent".into()),
        };
        check(
            UplinkView::new("site-1".into(), "mqtt://cloud:1883".into(), &o, &l, 3_500),
            r#"{"edge_id":"site-1","upstream":"mqtt://cloud:1883","connected":false,"incarnation":"01010101010101010101010101010101","acked_seq":5,"last_seq":9,"pending_batches":4,"pending_points":40,"oldest_pending_age_ms":2500,"last_ack_ms":900,"in_flight":0,"connects":2,"link_losses":1,"ack_timeouts":1,"parts_sent":6,"points_sent":60,"bytes_sent":600,"batches_acked":5,"points_acked":50,"last_error":"silent","live":{"acked_seq":8,"pending_batches":1,"pending_points":10,"oldest_pending_age_ms":500},"records_acked":3,"backlog":{"acked_seq":5,"pending_batches":3,"pending_points":30,"oldest_pending_age_ms":2500,"drain_rate":0,"rate_limit":500,"points_acked":20},"rollups":{"acked_seq":0,"pending_batches":0,"pending_points":0,"oldest_pending_age_ms":null,"rows_acked":0,"packet_bytes":0}}"#,
        );
        assert!(serde_json::from_str::<CreateEdge>(r#"{"id":"a","x":1}"#).is_err());
    }
}
