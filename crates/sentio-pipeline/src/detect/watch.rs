//! The [`Watch`] trait: one way of looking at a device's points (its series' detectors, its
//! relations, its peers, its silence, its declared limits, the device model, the users' rules). The detect stage hands each watch every device's share of a committed
//! batch, applies the verdicts it returns to the alert trackers, and saves the state it learnt.
//!
//! A watch owns its learnt state and nothing else: it never sees the alert trackers, the
//! stores or the bus, so it is pure computation on points and cannot fail mid-batch.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sentio_core::{AlertKey, AlertKind, DeviceId, Explanation, Point, RuleId, SeriesKey, StateKey};
use sentio_store::BandRow;

use crate::PipelineError;
use crate::rules::CompiledRule;

/// One device's share of a committed batch, as every watch sees it.
pub(crate) struct DeviceBatch<'a> {
    /// The device.
    pub device: &'a DeviceId,
    /// Its kind (resolved before the batch: watching never waits on the registry).
    pub kind: &'a Arc<str>,
    /// Its labels (as of the start or the last change of the rules).
    pub labels: &'a BTreeMap<String, String>,
    /// Its twin as rules read it (`twin.desired`, `twin.reported`), as of its last change.
    pub twin: &'a cel::Value,
    /// Its points that are newer than their series' last watched point, in commit order.
    /// Watches are causal: a late point is stored but not watched out of order.
    pub points: &'a [Point],
    /// Every point of the device in the batch, late ones included (an arrival is an arrival,
    /// whatever its timestamp).
    pub arrived: &'a [Point],
    /// Wall-clock time the batch reached the stage (ms).
    pub now_ms: i64,
    /// The fused anomaly score of each of `points`, written by the series watch as it scores
    /// them (rules read them through `anomaly`).
    pub scores: &'a crate::rules::ai_inputs::ScoreSheet,
}

/// What a watch found about one alert key at one moment.
#[derive(Debug)]
pub(crate) enum Finding {
    /// The condition does not hold: counts towards resolving an open alert, opens nothing.
    Normal,
    /// The condition holds: opens the key's alert or adds to it.
    Alert(Box<Explanation>),
    /// The condition holds, unless the series' own detectors have an anomaly alert open on a
    /// metric of the key's subject: that alert already explains it (relation and peer alerts).
    AlertUnlessAnomaly(Box<Explanation>),
    /// The condition holds and has no points to add: opens the key's alert if none is open,
    /// leaves an open one as it is (silence).
    Onset(Box<Explanation>),
    /// The condition still holds at a point no more extreme than the open alert's peak, as
    /// the watch knows (rules; this value observed): adds the point to the open alert without
    /// building an explanation. Where no alert is open, the stage asks the watch for one
    /// ([`Watch::explain`]) and it opens as [`Finding::Alert`] would.
    Held(f64),
}

/// A watch's verdict on one alert key.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// Position in [`DeviceBatch::points`] of the point judged (`points.len()` for a verdict
    /// on the whole batch). The stage applies a batch's verdicts in this order, and within one
    /// position in the order of the watches, so a peer verdict on a point sees the anomaly
    /// alert as that point left it.
    pub at: usize,
    /// The condition judged.
    pub key: AlertKey,
    /// Data time of the verdict (ms).
    pub ts_ms: i64,
    /// What was found.
    pub finding: Finding,
}

/// Which part of a saved-state row a watch owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatePart {
    /// The whole row.
    Whole,
    /// One field of the row's JSON object (several watches share `(device, "~device")`).
    Field(&'static str),
}

/// One way of watching devices. See the module documentation.
pub(crate) trait Watch: Send {
    /// The alert kinds it raises: user feedback on them comes to this watch.
    fn kinds(&self) -> &'static [AlertKind];

    /// Consecutive normal verdicts after which an open alert of `kind` resolves.
    fn resolve_after(&self, kind: AlertKind) -> u32;

    /// Judges one device's share of a committed batch, learning from it; pushes its verdicts.
    fn observe(&mut self, batch: &DeviceBatch<'_>, verdicts: &mut Vec<Verdict>);

    /// Time passed without points (called every second, wall clock): verdicts that need no new
    /// point, such as silence. `open` says whether a key's alert is open (a
    /// [`Finding::Onset`] on it would change nothing, so need not be explained again).
    fn tick(
        &mut self,
        _now_ms: i64,
        _open: &dyn Fn(&AlertKey) -> bool,
        _verdicts: &mut Vec<Verdict>,
    ) {
    }

    /// A user marked an alert of `key` as a false alarm: become less sensitive to it. Returns
    /// one sentence saying what changed. `device_kind` is the kind of `key.device`, if known.
    fn false_alarm(
        &mut self,
        key: &AlertKey,
        device_kind: Option<&str>,
    ) -> Result<String, PipelineError>;

    /// A user says the state behind an alert of `key` is normal: learn it as such. Returns one
    /// sentence saying what changed. Only the device model learns regimes.
    fn new_normal(&mut self, key: &AlertKey) -> Result<String, PipelineError> {
        Err(PipelineError::Invalid(format!(
            "a {} alert cannot become a new normal: only device alerts learn regimes (mark it              as a false alarm instead)",
            key.kind.as_str()
        )))
    }

    /// The users' rules changed: takes the compiled rule set. Returns the rules removed,
    /// disabled or changed, whose open alerts the stage resolves. Only the rules watch judges
    /// rules.
    /// A person resolved `key`'s open alert by hand: a watch that keeps its own open flag
    /// (rules) closes it, so the alert is not carried on as if still open.
    fn closed(&mut self, _key: &AlertKey) {}

    fn set_rules(&mut self, _rules: &[Arc<CompiledRule>]) -> Vec<RuleId> {
        Vec::new()
    }

    /// The explanation of `key`'s condition at a point of value `observed`, for a
    /// [`Finding::Held`] that found no open alert.
    fn explain(&self, _key: &AlertKey, _observed: f64) -> Option<Explanation> {
        None
    }

    /// Forgets everything learnt about a device (it was deleted or erased).
    fn forget(&mut self, device: &DeviceId);

    /// The rules' run-time reports (failing, failures; traces too for the one rule asked
    /// for). Only the rules watch judges rules.
    fn rule_reports(&self, _rule: Option<&RuleId>) -> Vec<crate::rules::report::RuleReport> {
        Vec::new()
    }

    /// Which part of rows with `key` this watch saves and restores, if any.
    fn state_part(&self, key: &StateKey) -> Option<StatePart>;

    /// Restores the state saved under `key` (the JSON of its part of the row).
    fn restore(&mut self, key: &StateKey, json: &str) -> Result<(), serde_json::Error>;

    /// Moves the expected bands scored since the last call of the series for which `due` says
    /// yes into `out` (the series watch).
    fn take_bands(
        &mut self,
        _due: &dyn Fn(&SeriesKey) -> bool,
        _out: &mut Vec<(SeriesKey, BandRow)>,
    ) {
    }

    /// Moves the keys of state changed since the last call into `dirty`.
    fn take_dirty(&mut self, dirty: &mut HashSet<StateKey>);

    /// The JSON of its part of the state under `key`, to save; `None` if it has none (any
    /// more).
    fn save(&self, key: &StateKey) -> Option<String>;
}

/// The error for feedback on an alert whose watch state is gone.
pub(crate) fn gone(device: &DeviceId) -> PipelineError {
    PipelineError::Conflict(format!(
        "the detector behind this alert no longer exists ({device} was deleted or erased)"
    ))
}
