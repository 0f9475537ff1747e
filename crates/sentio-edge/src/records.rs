//! What goes up besides points: the edge's device registry (`edges/<id>/up/registry`, each
//! message with the id of every device it holds, so a deletion goes up too), its
//! alerts (`edges/<id>/up/alerts`), its commands (`edges/<id>/up/commands`: where those the
//! cloud sent down stand; the edge's own commands stay here) and its devices' twins
//! (`edges/<id>/up/twins`: the reported document and the cloud's desired version applied),
//! each record as it is now. A record goes again until the cloud acknowledged it as it is
//! (QoS 1), so no change is ever dropped, and applying a record twice changes nothing in the
//! cloud. What was acknowledged is kept in memory: after a restart everything goes up once
//! more. The link sends what changed every report, and at once when [`RecordSources::changed`]
//! is notified (a command or a twin changed).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sentio_core::{DeviceId, EdgeId, topic};
use sentio_store::{AlertFilter, AlertStore, DeviceRegistry, wire};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where the records come from.
#[derive(Clone)]
pub struct RecordSources {
    /// The edge's device registry.
    pub registry: Arc<dyn DeviceRegistry>,
    /// The edge's alerts.
    pub alerts: Arc<dyn AlertStore>,
    /// Its hourly digests, for a re-sync ([`crate::resync`]).
    pub digests: Arc<dyn sentio_store::EdgeStore>,
    /// Its points, read for a re-sync.
    pub series: Arc<dyn sentio_store::SeriesStore>,
    /// Its commands, read to report where those from the cloud stand.
    pub commands: Arc<dyn sentio_store::CommandStore>,
    /// Its twins, read to report what its devices reported.
    pub twins: Arc<dyn sentio_store::TwinStore>,
    /// Its command and twin desks, which take what the cloud sends down.
    pub desk: Arc<dyn crate::Desk>,
    /// Notified when a command or a twin changed: the records go up without waiting for the
    /// next report.
    pub changed: Arc<Notify>,
}

/// A kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Registry,
    Alerts,
    Commands,
    Twins,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [Kind::Registry, Kind::Alerts, Kind::Commands, Kind::Twins];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn topic(self, edge: &EdgeId) -> String {
        match self {
            Kind::Registry => topic::uplink_registry(edge),
            Kind::Alerts => topic::uplink_alerts(edge),
            Kind::Commands => topic::uplink_commands(edge),
            Kind::Twins => topic::uplink_twins(edge),
        }
    }
}

/// The key of the set of device ids in [`Acked`] (no device id is empty).
const ALL_DEVICES: &str = "";

/// Most records in one message.
const MESSAGE_RECORDS: usize = 200;

/// The newest alerts looked at (an older one changing is not sent again).
const ALERTS_LOOKED_AT: usize = 1_000;

/// The newest commands looked at (an older one changing is not sent again).
const COMMANDS_LOOKED_AT: usize = 1_000;

/// The most recently changed twins looked at.
const TWINS_LOOKED_AT: usize = 1_000;

/// A digest of each record as the cloud acknowledged it, per kind, by key.
#[derive(Default)]
pub(crate) struct Acked([HashMap<String, u64>; Kind::ALL.len()]);

/// A message of records published and not yet acknowledged.
pub(crate) struct InFlight {
    pub(crate) pkid: Option<u16>,
    pub(crate) sent_at: Instant,
    kind: Kind,
    /// The records' keys and digests.
    records: Vec<(String, u64)>,
}

/// A message ready to publish.
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) in_flight: InFlight,
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Acked {
    /// The records among `items` that the cloud has not acknowledged as they are now (at
    /// most [`MESSAGE_RECORDS`]), with their keys and digests.
    fn unacked<R>(
        &self,
        kind: Kind,
        items: impl IntoIterator<Item = R>,
        key: impl Fn(&R) -> String,
        encode: impl Fn(&[R]) -> Vec<u8>,
    ) -> (Vec<R>, Vec<(String, u64)>) {
        let acked = &self.0[kind.index()];
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        for r in items {
            let (k, dg) = (key(&r), digest(&encode(std::slice::from_ref(&r))));
            if acked.get(&k) != Some(&dg) {
                out.push(r);
                keys.push((k, dg));
            }
            if out.len() == MESSAGE_RECORDS {
                break;
            }
        }
        (out, keys)
    }

    /// The next message of `kind`: records the cloud has not acknowledged as they are now.
    pub(crate) async fn next(
        &self,
        kind: Kind,
        sources: &RecordSources,
        edge: &EdgeId,
    ) -> Option<Message> {
        let (payload, records) = match kind {
            Kind::Registry => {
                let devices = sources.registry.list_devices().await.ok()?;
                // Every device held now goes with each message, so the cloud deletes those
                // the edge deleted (also while the link was down, or before a restart).
                let all: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
                let all_digest = digest(all.join("\n").as_bytes());
                let records = devices.into_iter().map(|d| wire::RegistryRecord {
                    id: d.id,
                    name: d.name,
                    kind: d.kind,
                    labels: d.labels,
                });
                let (out, mut keys) =
                    self.unacked(kind, records, |r| r.id.clone(), wire::encode_registry);
                if !keys.is_empty() || self.0[kind.index()].get(ALL_DEVICES) != Some(&all_digest) {
                    keys.push((ALL_DEVICES.to_string(), all_digest));
                }
                (wire::encode_registry_snapshot(&out, &all), keys)
            }
            Kind::Alerts => {
                let alerts = sources
                    .alerts
                    .list_alerts(AlertFilter {
                        limit: ALERTS_LOOKED_AT,
                        ..AlertFilter::default()
                    })
                    .await
                    .ok()?;
                // A device's alerts, and this edge's own (its disk budget, on `edge:<this
                // id>`); its alerts about edges of its own (offline, on `edge:<their id>`)
                // stay here.
                let own = sentio_store::edge_username(edge);
                let alerts = alerts
                    .into_iter()
                    .filter(|a| DeviceId::parse(&a.device).is_ok() || a.device == own);
                let (out, keys) =
                    self.unacked(kind, alerts, |a| a.id.to_string(), wire::encode_alerts);
                (wire::encode_alerts(&out), keys)
            }
            Kind::Commands => {
                let commands = sources
                    .commands
                    .upstream_commands(COMMANDS_LOOKED_AT)
                    .await
                    .ok()?;
                let (out, keys) =
                    self.unacked(kind, commands, |c| c.id.to_string(), wire::encode_commands);
                (wire::encode_commands(&out), keys)
            }
            Kind::Twins => {
                let twins = sources.twins.recent_twins(TWINS_LOOKED_AT).await.ok()?;
                let records = twins.into_iter().map(|(device, t)| wire::ReportedRecord {
                    device,
                    reported: t.reported,
                    reported_ms: t.reported_ms,
                    desired_version: t.upstream_version,
                });
                let (out, keys) = self.unacked(
                    kind,
                    records,
                    |r| r.device.to_string(),
                    wire::encode_reported,
                );
                (wire::encode_reported(&out), keys)
            }
        };
        if records.is_empty() {
            return None;
        }
        Some(Message {
            topic: kind.topic(edge),
            payload,
            in_flight: InFlight {
                pkid: None,
                sent_at: Instant::now(),
                kind,
                records,
            },
        })
    }

    /// Records an acknowledged message; returns how many records it held.
    pub(crate) fn acknowledged(&mut self, f: InFlight) -> usize {
        let n = f.records.len();
        self.0[f.kind.index()].extend(f.records);
        n
    }
}
