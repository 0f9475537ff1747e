//! The `/metrics` families of the edges' disk budget: on an edge, its outbox's points per lane
//! and fate (`sentio_uplink_points{lane,fate}`: accepted = delivered + degraded + dropped +
//! pending); in the cloud, each edge's reported degraded and dropped points.

use crate::AppState;

/// Both families, where they apply.
pub(super) async fn metrics(s: &AppState) -> String {
    let mut out = uplink(s).await;
    out.push_str(&cloud(s).await);
    out
}

/// On an edge: per lane, points accepted, delivered, degraded, dropped and pending.
async fn uplink(s: &AppState) -> String {
    let Some(u) = &s.uplink else {
        return String::new();
    };
    let Ok(c) = u.outbox.outbox_counts().await else {
        return String::new();
    };
    let name = "sentio_uplink_points";
    let mut out = format!(
        "# HELP {name} Points of the outbox by lane (rollups: rows) and fate: accepted = \
         delivered + degraded + dropped + pending (degraded: replaced under the disk budget by \
         their minute rollups; dropped: removed undelivered).\n# TYPE {name} gauge\n"
    );
    for lane in sentio_store::Lane::ALL {
        let l = c.lane(lane);
        for (fate, v) in [
            ("accepted", l.accepted),
            ("delivered", l.delivered),
            ("degraded", l.degraded),
            ("dropped", l.dropped),
            ("pending", l.pending),
        ] {
            out.push_str(&format!(
                "{name}{{lane=\"{}\",fate=\"{fate}\"}} {v}\n",
                lane.as_str()
            ));
        }
    }
    out
}

/// In the cloud: per edge that reported since start, its degraded and dropped points.
async fn cloud(s: &AppState) -> String {
    let Some(broker) = &s.broker else {
        return String::new();
    };
    let Ok(edges) = s.edges.list_edges().await else {
        return String::new();
    };
    let reports: Vec<_> = edges
        .iter()
        .filter_map(|e| Some((e.id.to_string(), broker.edge_report(e.id.as_str())?)))
        .collect();
    if reports.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for (name, help, degraded) in [
        (
            "sentio_edge_degraded_points",
            "Undelivered raw points the edge's disk budget replaced by minute rollups, as it last reported.",
            true,
        ),
        (
            "sentio_edge_dropped_points",
            "Undelivered raw points the edge's disk budget removed, as it last reported.",
            false,
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (id, r) in &reports {
            let v = if degraded {
                r.degraded_points
            } else {
                r.dropped_points
            };
            out.push_str(&format!("{name}{{edge=\"{id}\"}} {v}\n"));
        }
    }
    out
}
