//! The cloud's end of an edge's uplink: a message of batches published by edge `<id>` on
//! `edges/<id>/up/points` (the live lane), `edges/<id>/up/backlog` (the backlog lane) or
//! `edges/<id>/up/rollups` (1-minute rollups, [`EdgeStore::apply_rollups`]) is
//! decoded ([`sentio_store::wire`]) and applied exactly once
//! ([`EdgeStore::apply_uplink`]: the new batches' points and the progress in one transaction)
//! before the tap returns, so the PUBACK the edge waits for means "held by the cloud". A batch
//! applied before is acknowledged without being applied. The cloud's late-point window does not apply: the
//! edge accepted these points, and a week of backlog must go in.
//!
//! **Invariant:** no PUBACK for a batch that is not committed. A payload that cannot be decoded
//! is never acknowledged: the edge is disconnected (it retries, and the refusal is counted and
//! logged); a store failure holds the PUBACK and retries, as for device telemetry.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mqtt5::broker::events::{ClientPublishEvent, PublishAction};
use sentio_core::EdgeId;
use sentio_store::{
    Applied, EdgeStore, Lane, UplinkBatch, UplinkPolicy, UplinkRollups, edge_username, wire,
};
use tracing::{debug, warn};

use crate::clients::Clients;
use crate::counters::Counters;

/// What each edge last reported of its outbox, with when it arrived (ms), in memory; and the
/// policy kept in the store for each edge since this node started.
#[derive(Debug, Default)]
pub(crate) struct EdgeReports(
    std::sync::Mutex<std::collections::HashMap<String, (wire::StatusReport, i64)>>,
    std::sync::Mutex<std::collections::HashMap<String, UplinkPolicy>>,
);

/// What an edge last reported of its outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeReport {
    /// Batches committed on the edge and not yet acknowledged.
    pub pending_batches: u64,
    /// Points in them.
    pub pending_points: u64,
    /// Age of the oldest of them now (its age when reported plus the time since), if any.
    pub oldest_pending_age_ms: Option<i64>,
    /// Every batch up to this seq is acknowledged.
    pub acked_seq: i64,
    /// Of the pending batches, those in the backlog lane.
    pub backlog_batches: u64,
    /// Points in them.
    pub backlog_points: u64,
    /// Backlog points the cloud acknowledged per second lately.
    pub backlog_drain_rate: u64,
    /// What the edge sends up.
    pub policy: UplinkPolicy,
    /// When the report arrived (ms).
    pub reported_ms: i64,
    /// How far the edge's clock was ahead of this node's when the report arrived (negative:
    /// behind); none from an edge before clock checks.
    pub clock_skew_ms: Option<i64>,
    /// Undelivered raw points the edge's disk budget degraded to minute rollups, ever.
    pub degraded_points: u64,
    /// Undelivered raw points its disk budget dropped, ever.
    pub dropped_points: u64,
}

impl EdgeReport {
    /// Whether the edge's clock is within `limit_ms` of this node's, if it reported its clock.
    pub fn clock_ok(&self, limit_ms: i64) -> Option<bool> {
        self.clock_skew_ms.map(|s| s.saturating_abs() <= limit_ms)
    }
}

impl EdgeReports {
    /// The latest report of `edge`, as of `now_ms`.
    pub(crate) fn get(&self, edge: &str, now_ms: i64) -> Option<EdgeReport> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (r, at) = map.get(edge)?;
        Some(EdgeReport {
            pending_batches: r.pending_batches,
            pending_points: r.pending_points,
            oldest_pending_age_ms: r
                .oldest_pending_age_ms
                .map(|a| (a as i64).saturating_add((now_ms - at).max(0))),
            acked_seq: r.acked.0,
            backlog_batches: r.backlog_batches,
            backlog_points: r.backlog_points,
            backlog_drain_rate: r.backlog_drain_rate,
            policy: r.policy,
            reported_ms: *at,
            clock_skew_ms: r.clock_skew_ms(*at),
            degraded_points: r.degraded_points,
            dropped_points: r.dropped_points,
        })
    }

    /// Keeps a report of `edge` from the edge itself (bad ones are ignored), and its policy in
    /// `edges` when it is not the one kept there since this node started (so the cloud shows
    /// it after a restart before the edge's next report).
    pub(crate) async fn report(
        &self,
        edges: &dyn EdgeStore,
        edge: &str,
        event: &ClientPublishEvent,
    ) -> PublishAction {
        let Some(id) = sender(edge, event) else {
            return PublishAction::Handled;
        };
        let Ok(r) = wire::decode_status(&event.payload) else {
            return PublishAction::Handled;
        };
        let policy = r.policy;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(edge.to_string(), (r, sentio_core::time::now_ms()));
        let kept = self.1.lock().unwrap_or_else(|p| p.into_inner()).get(edge) == Some(&policy);
        if !kept {
            match edges.set_edge_policy(&id, policy).await {
                Ok(()) => {
                    self.1
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(edge.to_string(), policy);
                }
                // Tried again with its next report.
                Err(e) => warn!(edge = %id, error = %e, "keeping the edge's policy"),
            }
        }
        PublishAction::Handled
    }
}

/// The edge named by the topic, if `event` was published by that edge itself (a token with a
/// wide ACL may publish there too, and is ignored).
pub(crate) fn sender(edge: &str, event: &ClientPublishEvent) -> Option<EdgeId> {
    let edge = EdgeId::parse(edge).ok()?;
    (event.user_id.as_deref() == Some(edge_username(&edge).as_str())).then_some(edge)
}

/// Refuses an undecodable message of `edge` (`what` it was): logged, never acknowledged, and
/// the edge disconnected (it sends it again on its next connection). Never returns.
pub(crate) async fn refuse(
    clients: &Clients,
    event: &ClientPublishEvent,
    edge: &EdgeId,
    what: &str,
    error: &(dyn std::fmt::Display + Sync),
) -> PublishAction {
    warn!(edge = %edge, error = %error, bytes = event.payload.len(),
        "{what} refused: it cannot be decoded; disconnecting the edge without an acknowledgement");
    clients.disconnect(&[event.client_id.to_string()]).await;
    std::future::pending().await
}

/// The wait between tries while a message of an edge is not stored (its PUBACK held): 100 ms,
/// doubling up to 5 s.
pub(crate) struct HeldPuback(Duration);

impl HeldPuback {
    pub(crate) fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    /// Logs why `what` of `edge` is not stored yet, and waits before the next try.
    pub(crate) async fn wait(
        &mut self,
        edge: &EdgeId,
        what: &str,
        error: &(dyn std::fmt::Display + Sync),
    ) {
        warn!(edge = %edge, error = %error, retry_in = ?self.0, "{what} not stored yet; PUBACK held");
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// What an edge sends besides its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Records {
    /// Its device registry (`up/registry`).
    Registry,
    /// Its alerts (`up/alerts`).
    Alerts,
}

/// Decoded records of either kind.
enum Decoded {
    Registry(wire::RegistryMessage),
    Alerts(Vec<sentio_core::Alert>),
}

/// Applies a registry message of `edge`: its records, then (when it says which devices the
/// edge holds) the deletion of those it no longer holds; returns the records applied.
async fn apply_registry(
    edges: &dyn EdgeStore,
    edge: &EdgeId,
    r: &wire::RegistryMessage,
) -> sentio_store::Result<u64> {
    let done = edges.apply_registry(edge, r.devices.clone()).await?;
    if done.conflicts > 0 {
        warn!(edge = %edge, conflicts = done.conflicts,
            "edge devices not registered here: their ids are devices of this node or of another edge");
    }
    if let Some(all) = &r.all {
        let removed = edges.remove_edge_devices(edge, all.clone()).await?;
        if removed > 0 {
            tracing::info!(edge = %edge, removed, "devices the edge deleted, deleted here");
        }
    }
    Ok(done.applied)
}

/// Applies the records in `event` from `edge` before the PUBACK (they are upserts of the
/// edge's current state: one applied again changes nothing). An undecodable message is never
/// acknowledged and disconnects the edge; a store failure holds the PUBACK and retries.
pub(crate) async fn apply_records(
    edges: &Arc<dyn EdgeStore>,
    clients: &Clients,
    (edge, kind): (&str, Records),
    event: &ClientPublishEvent,
) -> PublishAction {
    let Some(edge) = sender(edge, event) else {
        return PublishAction::Handled;
    };
    let decoded = match kind {
        Records::Registry => wire::decode_registry_message(&event.payload).map(Decoded::Registry),
        Records::Alerts => wire::decode_edge_alerts(&event.payload, &edge).map(Decoded::Alerts),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            return refuse(
                clients,
                event,
                &edge,
                &format!("edge records ({kind:?})"),
                &e,
            )
            .await;
        }
    };
    let mut held = HeldPuback::new();
    loop {
        let done = match &decoded {
            Decoded::Registry(r) => apply_registry(&**edges, &edge, r).await,
            Decoded::Alerts(a) => edges.apply_alerts(&edge, a.clone()).await,
        };
        match done {
            Ok(applied) => {
                debug!(edge = %edge, ?kind, applied, "edge records applied");
                return PublishAction::Handled;
            }
            Err(e) => {
                held.wait(&edge, &format!("edge records ({kind:?})"), &e)
                    .await
            }
        }
    }
}

/// The batches of one message, decoded for their lane.
enum Batches {
    Points(Vec<UplinkBatch>),
    Rollups(Vec<UplinkRollups>),
}

impl Batches {
    fn decode(edge: &EdgeId, lane: Lane, payload: &[u8]) -> Result<Self, wire::WireError> {
        if lane == Lane::Rollups {
            let m = wire::decode_rollups(payload)?;
            return Ok(Self::Rollups(
                m.batches
                    .into_iter()
                    .map(|(seq, series)| UplinkRollups {
                        edge: edge.clone(),
                        incarnation: m.incarnation,
                        seq,
                        series,
                    })
                    .collect(),
            ));
        }
        let m = wire::decode(payload)?;
        Ok(Self::Points(
            m.batches
                .into_iter()
                .map(|b| UplinkBatch {
                    edge: edge.clone(),
                    incarnation: m.incarnation,
                    lane,
                    seq: b.seq,
                    part: b.part,
                    points: b.points,
                })
                .collect(),
        ))
    }

    /// The last (seq, part) in the message.
    fn last(&self) -> Option<(i64, u32)> {
        match self {
            Self::Points(b) => b.last().map(|b| (b.seq.0, b.part)),
            Self::Rollups(b) => b.last().map(|b| (b.seq.0, 0)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Points(b) => b.len(),
            Self::Rollups(b) => b.len(),
        }
    }

    /// Applies them; each batch's verdict with the points (rows) it carries.
    async fn apply(&self, edges: &Arc<dyn EdgeStore>) -> sentio_store::Result<Vec<(Applied, u64)>> {
        Ok(match self {
            Self::Points(b) => {
                let v = edges.apply_uplink(b.clone()).await?;
                v.into_iter()
                    .zip(b.iter().map(|b| b.points.len() as u64))
                    .collect()
            }
            Self::Rollups(b) => {
                let v = edges.apply_rollups(b.clone()).await?;
                let rows = b
                    .iter()
                    .map(|b| b.series.iter().map(|s| s.rows.len() as u64).sum());
                v.into_iter().zip(rows).collect()
            }
        })
    }
}

/// Applies the batches in `event` from `edge` in `lane` (the topic's edge id and lane).
pub(crate) async fn apply(
    edges: &Arc<dyn EdgeStore>,
    clients: &Clients,
    counters: &Counters,
    (edge, lane): (&str, Lane),
    event: &ClientPublishEvent,
) -> PublishAction {
    let Some(edge) = sender(edge, event) else {
        return PublishAction::Handled;
    };
    let batches = match Batches::decode(&edge, lane, &event.payload) {
        Ok(b) => b,
        Err(e) => {
            Counters::bump(&counters.edge_batches_refused);
            return refuse(clients, event, &edge, "edge message", &e).await;
        }
    };
    let last = batches.last();
    let mut held = HeldPuback::new();
    loop {
        match batches.apply(edges).await {
            Ok(verdicts) => {
                for (v, n) in verdicts {
                    match v {
                        Applied::Stored => {
                            Counters::bump(&counters.edge_batches_stored);
                            if lane != Lane::Rollups {
                                counters.edge_points_stored.fetch_add(n, Ordering::Relaxed);
                            }
                        }
                        Applied::Duplicate => Counters::bump(&counters.edge_batches_duplicate),
                    }
                }
                debug!(edge = %edge, lane = lane.as_str(), last = ?last, batches = batches.len(), "edge message applied");
                return PublishAction::Handled;
            }
            Err(e) => {
                held.wait(&edge, &format!("edge message (last {last:?})"), &e)
                    .await
            }
        }
    }
}
