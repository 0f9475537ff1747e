//! Which rules can select a device, found without looking at every rule: each rule is filed
//! under the most specific thing its selector names (each of its device ids; else its kind;
//! else its first label pair), and a rule whose selector names none of these is in the
//! catch-all list. A device batch visits its own id's, its kind's and each of its label
//! pairs' lists and the catch-all list, then checks each candidate with
//! [`Selector::selects`](sentio_core::Selector::selects), so the answer is exactly the rules
//! that select it, in rule id order. Built again whenever the rule set changes (rare).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use sentio_core::DeviceId;

use super::compile::CompiledRule;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct RuleIndex {
    /// The rules, in id order; the lists hold positions in it.
    rules: Vec<Arc<CompiledRule>>,
    by_device: HashMap<DeviceId, Vec<usize>>,
    by_kind: HashMap<String, Vec<usize>>,
    /// Label name, then value.
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
    catch_all: Vec<usize>,
    /// Per rule, whether the list it is found in says all its selector asks (one criterion:
    /// only devices, only a kind, one label, or nothing), so it needs no further check.
    exact: Vec<bool>,
}

impl RuleIndex {
    /// Indexes `rules` (given in id order).
    pub(crate) fn new(rules: Vec<Arc<CompiledRule>>) -> Self {
        let mut index = Self::default();
        for (at, rule) in rules.iter().enumerate() {
            let s = &rule.rule.selector;
            let criteria =
                usize::from(!s.devices.is_empty()) + usize::from(s.kind.is_some()) + s.labels.len();
            index.exact.push(criteria <= 1);
            if !s.devices.is_empty() {
                for device in &s.devices {
                    let list = index.by_device.entry(device.clone()).or_default();
                    if list.last() != Some(&at) {
                        list.push(at);
                    }
                }
            } else if let Some(kind) = &s.kind {
                index.by_kind.entry(kind.clone()).or_default().push(at);
            } else if let Some((k, v)) = s.labels.iter().next() {
                let values = index.by_label.entry(k.clone()).or_default();
                values.entry(v.clone()).or_default().push(at);
            } else {
                index.catch_all.push(at);
            }
        }
        index.rules = rules;
        index
    }

    /// The positions of the rules that select a device of `kind` with `labels`, in id order,
    /// written into `out` (cleared first).
    pub(crate) fn selecting(
        &self,
        device: &DeviceId,
        kind: &str,
        labels: &BTreeMap<String, String>,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let mut take = |list: Option<&Vec<usize>>| {
            if let Some(list) = list {
                out.extend_from_slice(list);
            }
        };
        take(self.by_device.get(device));
        take(self.by_kind.get(kind));
        if !self.by_label.is_empty() {
            for (k, v) in labels {
                take(self.by_label.get(k).and_then(|values| values.get(v)));
            }
        }
        take(Some(&self.catch_all));
        // Each rule is filed once (its device ids deduplicated), so only the order remains.
        out.sort_unstable();
        out.retain(|&i| self.exact[i] || self.rules[i].rule.selector.selects(device, kind, labels));
    }

    /// The rule at a position [`selecting`](Self::selecting) gave.
    pub(crate) fn get(&self, at: usize) -> &Arc<CompiledRule> {
        &self.rules[at]
    }
}

#[cfg(test)]
mod tests {
    use sentio_core::{RuleId, Selector};

    use super::*;
    use crate::rules::compile::{compile, test_rule};

    fn device(i: usize) -> DeviceId {
        DeviceId::parse(&format!("d-{i}")).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Rule `r`'s selector: ids (one, several, repeated), kinds, labels, their mixes, none.
    fn selector(r: usize) -> Selector {
        let mut s = Selector {
            metrics: vec!["co2".into()],
            ..Selector::default()
        };
        let kind = ["room", "pump"][r % 2].to_string();
        let floor = [("floor", "1"), ("floor", "2"), ("zone", "a")][r % 3];
        match r % 8 {
            0 => s.devices = vec![device(r % 5)],
            1 => s.devices = vec![device(r % 5), device((r + 1) % 5), device(r % 5)],
            2 => s.kind = Some(kind),
            3 => s.labels = labels(&[floor]),
            4 => {
                s.kind = Some(kind);
                s.labels = labels(&[floor, ("zone", "b")]);
            }
            5 => {
                s.devices = vec![device(r % 5)];
                s.kind = Some(kind);
            }
            6 => s.labels = labels(&[("floor", "1"), floor]),
            _ => {}
        }
        s
    }

    #[test]
    fn the_index_selects_exactly_what_each_selector_selects_in_id_order() {
        let rules: Vec<Arc<CompiledRule>> = (0..64)
            .map(|r| {
                let mut rule = test_rule("co2 > 1.0", None, 0);
                rule.id = RuleId::parse(&format!("r-{r:02}")).unwrap();
                rule.selector = selector(r);
                Arc::new(compile(rule).unwrap())
            })
            .collect();
        let index = RuleIndex::new(rules.clone());
        let label_sets = [
            labels(&[]),
            labels(&[("floor", "1")]),
            labels(&[("floor", "2"), ("zone", "b")]),
            labels(&[("floor", "1"), ("zone", "a")]),
            labels(&[("zone", "b"), ("floor", "3")]),
        ];
        let mut got = Vec::new();
        let mut checked = 0;
        for d in 0..6 {
            for kind in ["room", "pump", "meter"] {
                for labels in &label_sets {
                    index.selecting(&device(d), kind, labels, &mut got);
                    let got: Vec<&RuleId> = got.iter().map(|&i| &index.get(i).rule.id).collect();
                    let expected: Vec<&RuleId> = rules
                        .iter()
                        .filter(|r| r.rule.selector.selects(&device(d), kind, labels))
                        .map(|r| &r.rule.id)
                        .collect();
                    assert_eq!(got, expected, "device {d}, kind {kind}, labels {labels:?}");
                    checked += expected.len();
                }
            }
        }
        assert!(checked > 500, "the selectors select something: {checked}");
    }
}
