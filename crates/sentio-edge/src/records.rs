//! What goes up besides points: the edge's device registry (`edges/<id>/up/registry`, each
//! message with the id of every device it holds, so a deletion goes up too), its
//! alerts (`edges/<id>/up/alerts`) and its commands (`edges/<id>/up/commands`: where those
//! the cloud sent down stand), each record as it is now. A record goes again until the
//! cloud acknowledged it as it is (QoS 1), so no change is ever dropped, and applying a record
//! twice changes nothing in the cloud. What was acknowledged is kept in memory: after a
//! restart everything goes up once more.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sentio_core::{DeviceId, EdgeId, topic};
use sentio_store::{AlertFilter, AlertStore, DeviceRegistry, wire};
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
    /// Its commands, read to report where they stand.
    pub commands: Arc<dyn sentio_store::CommandStore>,
    /// Its command desk, which keeps and delivers those the cloud sends down.
    pub desk: Arc<dyn crate::CommandDesk>,
}

/// A kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Registry,
    Alerts,
    Commands,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::Registry, Kind::Alerts, Kind::Commands];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn topic(self, edge: &EdgeId) -> String {
        match self {
            Kind::Registry => topic::uplink_registry(edge),
            Kind::Alerts => topic::uplink_alerts(edge),
            Kind::Commands => topic::uplink_commands(edge),
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
    /// The next message of `kind`: records the cloud has not acknowledged as they are now.
    pub(crate) async fn next(
        &self,
        kind: Kind,
        sources: &RecordSources,
        edge: &EdgeId,
    ) -> Option<Message> {
        let acked = &self.0[kind.index()];
        let changed = |key: &String, d: u64| acked.get(key) != Some(&d);
        let (payload, records) = match kind {
            Kind::Registry => {
                let devices = sources.registry.list_devices().await.ok()?;
                // Every device held now goes with each message, so the cloud deletes those
                // the edge deleted (also while the link was down, or before a restart).
                let all: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
                let all_digest = digest(all.join("\n").as_bytes());
                let mut out = Vec::new();
                for d in devices {
                    let r = wire::RegistryRecord {
                        id: d.id,
                        name: d.name,
                        kind: d.kind,
                        labels: d.labels,
                    };
                    let dg = digest(&wire::encode_registry(std::slice::from_ref(&r)));
                    if changed(&r.id, dg) {
                        out.push((r, dg));
                    }
                    if out.len() == MESSAGE_RECORDS {
                        break;
                    }
                }
                let records: Vec<wire::RegistryRecord> =
                    out.iter().map(|(r, _)| r.clone()).collect();
                let mut keys: Vec<(String, u64)> =
                    out.into_iter().map(|(r, d)| (r.id, d)).collect();
                if !keys.is_empty() || changed(&ALL_DEVICES.to_string(), all_digest) {
                    keys.push((ALL_DEVICES.to_string(), all_digest));
                }
                (wire::encode_registry_snapshot(&records, &all), keys)
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
                let mut out = Vec::new();
                // A device's alerts, and this edge's own (its disk budget, on `edge:<this
                // id>`); its alerts about edges of its own (offline, on `edge:<their id>`)
                // stay here.
                let own = sentio_store::edge_username(edge);
                for a in alerts
                    .into_iter()
                    .filter(|a| DeviceId::parse(&a.device).is_ok() || a.device == own)
                {
                    let dg = digest(&wire::encode_alerts(std::slice::from_ref(&a)));
                    if changed(&a.id.to_string(), dg) {
                        out.push((a, dg));
                    }
                    if out.len() == MESSAGE_RECORDS {
                        break;
                    }
                }
                let alerts: Vec<sentio_core::Alert> = out.iter().map(|(a, _)| a.clone()).collect();
                let keys = out
                    .into_iter()
                    .map(|(a, d)| (a.id.to_string(), d))
                    .collect();
                (wire::encode_alerts(&alerts), keys)
            }
            Kind::Commands => {
                let commands = sources
                    .commands
                    .recent_commands(COMMANDS_LOOKED_AT)
                    .await
                    .ok()?;
                let mut out = Vec::new();
                for c in commands {
                    let dg = digest(&wire::encode_commands(std::slice::from_ref(&c)));
                    if changed(&c.id.to_string(), dg) {
                        out.push((c, dg));
                    }
                    if out.len() == MESSAGE_RECORDS {
                        break;
                    }
                }
                let commands: Vec<sentio_core::Command> =
                    out.iter().map(|(c, _)| c.clone()).collect();
                let keys = out
                    .into_iter()
                    .map(|(c, d)| (c.id.to_string(), d))
                    .collect();
                (wire::encode_commands(&commands), keys)
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
        let n = f.records.iter().filter(|(k, _)| k != ALL_DEVICES).count();
        self.0[f.kind.index()].extend(f.records);
        n
    }
}
