//! The peers watch: the fleet view. Each metric of each device kind has a [`PeerGroup`]; a
//! device whose value leaves its usual place among its peers raises a peer alert, unless its
//! own detectors already alert on that metric.

use std::collections::HashSet as StdHashSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;

use sentio_ai::PeerGroup;
use sentio_core::{AlertKey, AlertKind, DeviceId, StateKey, Subject};

use super::watch::{DeviceBatch, Finding, StatePart, Verdict, Watch, gone};
use crate::{PipelineError, explain};

/// A peer group: the devices of one kind reporting one metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    kind: Arc<str>,
    metric: Arc<str>,
}

/// One [`PeerGroup`] per device kind and metric.
pub(crate) struct PeersWatch {
    resolve_after: u32,
    groups: HashMap<GroupKey, PeerGroup>,
    dirty: HashSet<GroupKey>,
}

impl PeersWatch {
    /// A peer alert resolves after `resolve_after` readings back in line.
    pub(crate) fn new(resolve_after: u32) -> Self {
        Self {
            resolve_after,
            groups: HashMap::new(),
            dirty: HashSet::new(),
        }
    }
}

impl Watch for PeersWatch {
    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::Peer]
    }

    fn resolve_after(&self, _kind: AlertKind) -> u32 {
        self.resolve_after
    }

    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>) {
        for (at, p) in batch.points.iter().enumerate() {
            let group = GroupKey {
                kind: batch.kind.clone(),
                metric: p.metric.clone(),
            };
            let verdict = self.groups.entry(group.clone()).or_default().observe(
                batch.device,
                p.ts_ms,
                p.value,
            );
            self.dirty.insert(group);
            let Some(v) = verdict else {
                continue;
            };
            let finding = if v.alert {
                Finding::AlertUnlessAnomaly(Box::new(explain::peer(
                    batch.device,
                    &p.metric,
                    batch.kind,
                    p.value,
                    &v,
                )))
            } else {
                Finding::Normal
            };
            verdicts.push(Verdict {
                at,
                key: AlertKey::new(
                    batch.device.clone(),
                    Subject::Metric(p.metric.clone()),
                    AlertKind::Peer,
                ),
                ts_ms: p.ts_ms,
                finding,
            });
        }
    }

    fn false_alarm(
        &mut self,
        key: &AlertKey,
        device_kind: Option<&str>,
    ) -> Result<String, PipelineError> {
        let (Subject::Metric(metric), Some(kind)) = (&key.subject, device_kind) else {
            return Err(gone(&key.device));
        };
        let group = GroupKey {
            kind: kind.into(),
            metric: metric.clone(),
        };
        let g = self
            .groups
            .get_mut(&group)
            .ok_or_else(|| gone(&key.device))?;
        let (n, before, after) = g
            .mark_false_alarm(&key.device)
            .ok_or_else(|| gone(&key.device))?;
        self.dirty.insert(group);
        Ok(format!(
            "{}/{metric} against its peers is less sensitive after {n} false alarm(s): band \
             {before:.1} -> {after:.1} spreads",
            key.device
        ))
    }

    fn forget(&mut self, device: &DeviceId) {
        for (key, group) in &mut self.groups {
            let before = group.len();
            group.remove(device);
            if group.len() != before {
                self.dirty.insert(key.clone());
            }
        }
    }

    fn state_part(&self, key: &StateKey) -> Option<StatePart> {
        matches!(key, StateKey::Peers { .. }).then_some(StatePart::Whole)
    }

    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error> {
        if let StateKey::Peers { kind, metric } = key {
            let group = GroupKey {
                kind: kind.clone(),
                metric: metric.clone(),
            };
            self.groups.insert(group, serde_json::from_str(json)?);
        }
        Ok(())
    }

    fn take_dirty(&mut self, dirty: &mut StdHashSet<StateKey>) {
        dirty.extend(self.dirty.drain().map(|g| StateKey::Peers {
            kind: g.kind,
            metric: g.metric,
        }));
    }

    fn save(&self, key: &StateKey) -> Option<String> {
        let StateKey::Peers { kind, metric } = key else {
            return None;
        };
        let group = GroupKey {
            kind: kind.clone(),
            metric: metric.clone(),
        };
        serde_json::to_string(self.groups.get(&group)?).ok()
    }
}
