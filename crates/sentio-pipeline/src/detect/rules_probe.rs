//! The rules watch, reachable from outside for `sentio-bench rules` only: the same
//! `RulesWatch` the detect stage runs, fed one device's points at a time, so the bench times
//! exactly what a committed point costs the rules (selection, windows, CEL, traces).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sentio_core::{DeviceId, Point, Rule, StateKey};

use super::rules::RulesWatch;
use super::watch::{DeviceBatch, Watch};
use crate::rules::{RuleError, compile};

/// A rules watch loaded with a rule set. Not part of the pipeline's API: a probe for benches.
pub struct RulesProbe {
    watch: RulesWatch,
    twin: cel::Value,
    verdicts: Vec<super::watch::Verdict>,
}

impl RulesProbe {
    /// Compiles `rules` and loads them as the detect stage would.
    pub fn new(rules: Vec<Rule>) -> Result<Self, RuleError> {
        let compiled = rules
            .into_iter()
            .map(|r| compile(r).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut watch = RulesWatch::default();
        watch.set_rules(&compiled);
        Ok(Self {
            watch,
            twin: cel::Value::Null,
            verdicts: Vec::new(),
        })
    }

    /// Judges `points` of `device` (newer than any it saw), as one committed batch; returns
    /// how many verdicts the rules gave.
    pub fn observe(
        &mut self,
        device: &DeviceId,
        kind: &Arc<str>,
        labels: &BTreeMap<String, String>,
        points: &[Point],
        now_ms: i64,
    ) -> usize {
        self.verdicts.clear();
        let batch = DeviceBatch {
            device,
            kind,
            labels,
            twin: &self.twin,
            points,
            arrived: points,
            now_ms,
            scores: &Default::default(),
        };
        self.watch.observe(&batch, &mut self.verdicts);
        self.verdicts.len()
    }

    /// The bytes of the saved state of every (rule, device) pair judged so far, as the store
    /// would keep them.
    pub fn saved_bytes(&mut self) -> usize {
        let mut dirty = HashSet::<StateKey>::new();
        self.watch.take_dirty(&mut dirty);
        dirty
            .iter()
            .filter_map(|k| self.watch.save(k))
            .map(|s| s.len())
            .sum()
    }
}
