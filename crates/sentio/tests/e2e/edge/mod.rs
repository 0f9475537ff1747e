//! Edge nodes: the cloud's registry of edges and their confinement (`registry`), and the
//! store-and-forward uplink under real faults between two real `sentio` processes (`uplink`,
//! with the fault proxy of `support::fault_proxy`), and its lanes after an outage: live data
//! first, the backlog beside it at a bounded rate (`backlog`); in the cloud, one alert per
//! offline edge (`offline`); the edge's device registry and alerts in the cloud (`devices`,
//! `alerts`); the aggregates policy: minute rollups and the raw points around alerts
//! (`aggregates`); a tiny disk budget degrading undelivered points to rollups, every point
//! counted (`budget`); re-sync by hourly digests after the cloud lost data (`resync`); commands created on
//! the cloud delivered through the edge, their replies back up (`commands`); desired twins set
//! on the cloud applied by the edge, the devices' reports back up (`twins`); the other faults:
//! a restored older backup, a clock an hour off, a slow link under a long backlog, kill -9
//! mid-drain, a long black hole's memory, truncated writes, a flapping link (`faults`).

mod aggregates;
mod alerts;
mod backlog;
mod budget;
mod commands;
mod devices;
mod faults;
mod offline;
mod registry;
mod resync;
mod twins;
mod uplink;

/// Creates edge `id` on the cloud whose API is at `http` (201 asserted): its record, with the
/// secret it is shown once.
pub(super) async fn create_edge(http: &str, id: &str) -> serde_json::Value {
    let (status, created) = crate::support::api_at(
        http,
        "POST",
        "/api/v1/edges",
        Some(serde_json::json!({"id": id})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}
