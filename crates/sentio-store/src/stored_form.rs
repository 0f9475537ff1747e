//! The stored forms of the JSON columns of alerts (`alerts.explanation`, `alerts.peak`,
//! `alert_feedback.feedback`), of rules (`rules.body`), of silences' and channels' matchers
//! (`silences.matcher`, `channels.matcher`) and of channels' targets (`channels.target`).
//!
//! They are copies of [`Explanation`] and [`Feedback`] with frozen field names, so that renaming
//! a field of a core type changes neither the database nor what its old rows mean. Every form
//! written carries `"v": 1`; rows written before the tag existed have no `v` and are read as
//! version 1 (their fields are the same). A row of a version this build does not know is an
//! error, never misread. A new version adds a new struct here and a conversion from the old one.

use std::collections::BTreeMap;

use sentio_core::{
    AlertKind, AlertMatcher, ChannelTarget, Contributor, DeviceId, Explanation, Feedback,
    Prediction, Rule, RuleAction, RuleId, Selector, Severity, SmtpSecurity,
};
use serde::de::Error as _;
use serde::{Deserialize, Serialize};

/// The stored-form version this build writes.
const VERSION: u32 = 1;

/// The stored form of `e` (an alert's explanation or peak).
pub(crate) fn explanation_json(e: &Explanation) -> String {
    serde_json::to_string(&ExplanationV1::from(e)).expect("explanations serialise")
}

/// Reads an explanation written by [`explanation_json`] or by the code before it (untagged).
pub(crate) fn read_explanation(json: &str) -> serde_json::Result<Explanation> {
    let stored: ExplanationV1 = serde_json::from_str(json)?;
    check_version(stored.v)?;
    Ok(stored.into())
}

/// The stored form of `f` (a user's verdict on an alert).
pub(crate) fn feedback_json(f: &Feedback) -> String {
    serde_json::to_string(&FeedbackV1::from(f)).expect("feedback serialises")
}

/// Reads feedback written by [`feedback_json`] or by the code before it (untagged).
pub(crate) fn read_feedback(json: &str) -> serde_json::Result<Feedback> {
    let stored: FeedbackV1 = serde_json::from_str(json)?;
    check_version(stored.v)?;
    Ok(stored.into())
}

/// The stored form of a rule.
pub(crate) fn rule_json(r: &Rule) -> String {
    serde_json::to_string(&RuleV1::from(r)).expect("rules serialise")
}

/// Reads a rule written by [`rule_json`].
pub(crate) fn read_rule(json: &str) -> serde_json::Result<Rule> {
    read_checked::<RuleV1, _>(json)
}

/// A versioned stored form that converts, or refuses with a reason, into its core type.
trait Versioned: serde::de::DeserializeOwned {
    fn version(&self) -> Option<u32>;
}

/// Reads stored form `S` of a `T`, checking its version.
fn read_checked<S: Versioned, T: TryFrom<S, Error = String>>(json: &str) -> serde_json::Result<T> {
    let stored: S = serde_json::from_str(json)?;
    check_version(stored.version())?;
    stored.try_into().map_err(serde_json::Error::custom)
}

/// The stored form of an alert matcher.
pub(crate) fn matcher_json(m: &AlertMatcher) -> String {
    serde_json::to_string(&MatcherV1::from(m)).expect("matchers serialise")
}

/// Reads a matcher written by [`matcher_json`].
pub(crate) fn read_matcher(json: &str) -> serde_json::Result<AlertMatcher> {
    read_checked::<MatcherV1, _>(json)
}

/// The stored form of a channel's target (with its secret or password: the database is the
/// node's own, like the admin token file).
pub(crate) fn target_json(t: &ChannelTarget) -> String {
    serde_json::to_string(&TargetV1::from(t)).expect("targets serialise")
}

/// Reads a target written by [`target_json`].
pub(crate) fn read_target(json: &str) -> serde_json::Result<ChannelTarget> {
    let stored: TargetV1 = serde_json::from_str(json)?;
    stored.try_into().map_err(serde_json::Error::custom)
}

#[derive(Serialize, Deserialize)]
struct MatcherV1 {
    v: Option<u32>,
    devices: Vec<String>,
    device_kind: Option<String>,
    labels: BTreeMap<String, String>,
    alert_kinds: Vec<String>,
    min_severity: String,
}

impl Versioned for MatcherV1 {
    fn version(&self) -> Option<u32> {
        self.v
    }
}

impl Versioned for RuleV1 {
    fn version(&self) -> Option<u32> {
        self.v
    }
}

impl From<&AlertMatcher> for MatcherV1 {
    fn from(m: &AlertMatcher) -> Self {
        Self {
            v: Some(VERSION),
            devices: m.devices.iter().map(|d| d.to_string()).collect(),
            device_kind: m.device_kind.clone(),
            labels: m.labels.clone(),
            alert_kinds: m.alert_kinds.iter().map(|k| k.as_str().into()).collect(),
            min_severity: m.min_severity.as_str().into(),
        }
    }
}

impl TryFrom<MatcherV1> for AlertMatcher {
    type Error = String;
    fn try_from(m: MatcherV1) -> Result<Self, String> {
        Ok(Self {
            devices: m
                .devices
                .iter()
                .map(|d| DeviceId::parse(d).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            device_kind: m.device_kind,
            labels: m.labels,
            alert_kinds: m
                .alert_kinds
                .iter()
                .map(|k| AlertKind::parse(k).ok_or_else(|| format!("alert kind {k:?}")))
                .collect::<Result<_, _>>()?,
            min_severity: Severity::parse(&m.min_severity)
                .ok_or_else(|| format!("severity {:?}", m.min_severity))?,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TargetV1 {
    Webhook {
        url: String,
        secret: String,
    },
    Email {
        host: String,
        port: u16,
        security: String,
        username: Option<String>,
        password: Option<String>,
        from: String,
        to: Vec<String>,
    },
    /// Added in version 1 (a new variant: older rows still read).
    Mqtt {
        topic: String,
    },
}

impl From<&ChannelTarget> for TargetV1 {
    fn from(t: &ChannelTarget) -> Self {
        match t.clone() {
            ChannelTarget::Webhook { url, secret } => Self::Webhook { url, secret },
            ChannelTarget::Email {
                host,
                port,
                security,
                username,
                password,
                from,
                to,
            } => Self::Email {
                host,
                port,
                security: security.as_str().into(),
                username,
                password,
                from,
                to,
            },
            ChannelTarget::Mqtt { topic } => Self::Mqtt { topic },
        }
    }
}

impl TryFrom<TargetV1> for ChannelTarget {
    type Error = String;
    fn try_from(t: TargetV1) -> Result<Self, String> {
        Ok(match t {
            TargetV1::Webhook { url, secret } => Self::Webhook { url, secret },
            TargetV1::Email {
                host,
                port,
                security,
                username,
                password,
                from,
                to,
            } => Self::Email {
                host,
                port,
                security: SmtpSecurity::parse(&security)
                    .ok_or_else(|| format!("SMTP security {security:?}"))?,
                username,
                password,
                from,
                to,
            },
            TargetV1::Mqtt { topic } => Self::Mqtt { topic },
        })
    }
}

/// Accepts version 1 and untagged rows (written before the tag, in the version 1 shape).
fn check_version(v: Option<u32>) -> serde_json::Result<()> {
    match v {
        None | Some(VERSION) => Ok(()),
        Some(other) => Err(serde_json::Error::custom(format!(
            "stored form version {other} is unknown to this build (it reads {VERSION})"
        ))),
    }
}

/// [`Explanation`], version 1.
#[derive(Debug, Serialize, Deserialize)]
struct ExplanationV1 {
    /// Always 1 when written; absent in rows written before versions.
    #[serde(default)]
    v: Option<u32>,
    /// Absent in rows written before alert kinds existed: `anomaly`.
    #[serde(default)]
    kind: KindV1,
    detector: String,
    expected: f64,
    lower: f64,
    upper: f64,
    observed: f64,
    score: f64,
    message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    contributors: Vec<ContributorV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prediction: Option<PredictionV1>,
}

/// [`AlertKind`], version 1.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindV1 {
    #[default]
    Anomaly,
    Relation,
    Peer,
    Silence,
    Limit,
    Predictive,
    Device,
    Rule,
}

/// [`Contributor`], version 1.
#[derive(Debug, Serialize, Deserialize)]
struct ContributorV1 {
    metric: String,
    observed: f64,
    expected: f64,
}

/// [`Prediction`], version 1.
#[derive(Debug, Serialize, Deserialize)]
struct PredictionV1 {
    limit: f64,
    expected_ms: Option<i64>,
    earliest_ms: Option<i64>,
    latest_ms: Option<i64>,
    made_ms: i64,
}

/// [`Feedback`], version 1.
#[derive(Debug, Serialize, Deserialize)]
struct FeedbackV1 {
    /// Always 1 when written; absent in rows written before versions.
    #[serde(default)]
    v: Option<u32>,
    false_alarm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    at_ms: i64,
    effect: String,
}

impl From<&Explanation> for ExplanationV1 {
    fn from(e: &Explanation) -> Self {
        Self {
            v: Some(VERSION),
            kind: e.kind.into(),
            detector: e.detector.clone(),
            expected: e.expected,
            lower: e.lower,
            upper: e.upper,
            observed: e.observed,
            score: e.score,
            message: e.message.clone(),
            contributors: e
                .contributors
                .iter()
                .map(|c| ContributorV1 {
                    metric: c.metric.clone(),
                    observed: c.observed,
                    expected: c.expected,
                })
                .collect(),
            prediction: e.prediction.as_ref().map(|p| PredictionV1 {
                limit: p.limit,
                expected_ms: p.expected_ms,
                earliest_ms: p.earliest_ms,
                latest_ms: p.latest_ms,
                made_ms: p.made_ms,
            }),
        }
    }
}

impl From<ExplanationV1> for Explanation {
    fn from(e: ExplanationV1) -> Self {
        Self {
            kind: e.kind.into(),
            detector: e.detector,
            expected: e.expected,
            lower: e.lower,
            upper: e.upper,
            observed: e.observed,
            score: e.score,
            message: e.message,
            contributors: e
                .contributors
                .into_iter()
                .map(|c| Contributor {
                    metric: c.metric,
                    observed: c.observed,
                    expected: c.expected,
                })
                .collect(),
            prediction: e.prediction.map(|p| Prediction {
                limit: p.limit,
                expected_ms: p.expected_ms,
                earliest_ms: p.earliest_ms,
                latest_ms: p.latest_ms,
                made_ms: p.made_ms,
            }),
        }
    }
}

impl From<AlertKind> for KindV1 {
    fn from(k: AlertKind) -> Self {
        match k {
            AlertKind::Anomaly => Self::Anomaly,
            AlertKind::Relation => Self::Relation,
            AlertKind::Peer => Self::Peer,
            AlertKind::Silence => Self::Silence,
            AlertKind::Limit => Self::Limit,
            AlertKind::Predictive => Self::Predictive,
            AlertKind::Device => Self::Device,
            AlertKind::Rule => Self::Rule,
        }
    }
}

impl From<KindV1> for AlertKind {
    fn from(k: KindV1) -> Self {
        match k {
            KindV1::Anomaly => Self::Anomaly,
            KindV1::Relation => Self::Relation,
            KindV1::Peer => Self::Peer,
            KindV1::Silence => Self::Silence,
            KindV1::Limit => Self::Limit,
            KindV1::Predictive => Self::Predictive,
            KindV1::Device => Self::Device,
            KindV1::Rule => Self::Rule,
        }
    }
}

impl From<&Feedback> for FeedbackV1 {
    fn from(f: &Feedback) -> Self {
        Self {
            v: Some(VERSION),
            false_alarm: f.false_alarm,
            note: f.note.clone(),
            at_ms: f.at_ms,
            effect: f.effect.clone(),
        }
    }
}

impl From<FeedbackV1> for Feedback {
    fn from(f: FeedbackV1) -> Self {
        Self {
            false_alarm: f.false_alarm,
            note: f.note,
            at_ms: f.at_ms,
            effect: f.effect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictive() -> Explanation {
        Explanation {
            kind: AlertKind::Predictive,
            detector: "forecast".into(),
            expected: 91.5,
            lower: 88.0,
            upper: 95.0,
            observed: 84.25,
            score: 0.8,
            message: "bearing_temp is forecast to reach 90".into(),
            contributors: vec![Contributor {
                metric: "rpm".into(),
                observed: 1500.0,
                expected: 1200.0,
            }],
            prediction: Some(Prediction {
                limit: 90.0,
                expected_ms: Some(1_700_000_600_000),
                earliest_ms: Some(1_700_000_300_000),
                latest_ms: None,
                made_ms: 1_700_000_000_000,
            }),
        }
    }

    /// What is written is pinned: changing it needs a new version.
    #[test]
    fn writes_version_1() {
        assert_eq!(
            explanation_json(&predictive()),
            r#"{"v":1,"kind":"predictive","detector":"forecast","expected":91.5,"lower":88.0,"upper":95.0,"observed":84.25,"score":0.8,"message":"bearing_temp is forecast to reach 90","contributors":[{"metric":"rpm","observed":1500.0,"expected":1200.0}],"prediction":{"limit":90.0,"expected_ms":1700000600000,"earliest_ms":1700000300000,"latest_ms":null,"made_ms":1700000000000}}"#
        );
        let feedback = Feedback {
            false_alarm: true,
            note: None,
            at_ms: 1_700_000_000_000,
            effect: "less sensitive".into(),
        };
        assert_eq!(
            feedback_json(&feedback),
            r#"{"v":1,"false_alarm":true,"at_ms":1700000000000,"effect":"less sensitive"}"#
        );
    }

    #[test]
    fn round_trips() {
        let e = predictive();
        assert_eq!(read_explanation(&explanation_json(&e)).unwrap(), e);
        let plain = Explanation {
            detector: "ensemble".into(),
            message: "m".into(),
            ..Explanation::default()
        };
        assert_eq!(read_explanation(&explanation_json(&plain)).unwrap(), plain);
        let f = Feedback {
            false_alarm: false,
            note: Some("confirmed on site".into()),
            at_ms: 5,
            effect: "none".into(),
        };
        assert_eq!(read_feedback(&feedback_json(&f)).unwrap(), f);
    }

    /// Rows written before the stored forms had a version: copied from what that code wrote
    /// (the core types' own serde).
    #[test]
    fn reads_untagged_rows() {
        let old = r#"{"kind":"predictive","detector":"forecast","expected":91.5,"lower":88.0,"upper":95.0,"observed":84.25,"score":0.8,"message":"bearing_temp is forecast to reach 90","contributors":[{"metric":"rpm","observed":1500.0,"expected":1200.0}],"prediction":{"limit":90.0,"expected_ms":1700000600000,"earliest_ms":1700000300000,"latest_ms":null,"made_ms":1700000000000}}"#;
        assert_eq!(read_explanation(old).unwrap(), predictive());

        // Before alert kinds existed: no `kind`, read as an anomaly.
        let older = r#"{"detector":"ensemble","expected":20.0,"lower":18.5,"upper":21.5,"observed":35.0,"score":0.97,"message":"temperature 35 is far above the expected 20"}"#;
        let e = read_explanation(older).unwrap();
        assert_eq!(e.kind, AlertKind::Anomaly);
        assert_eq!(e.detector, "ensemble");
        assert_eq!((e.expected, e.lower, e.upper), (20.0, 18.5, 21.5));
        assert_eq!((e.observed, e.score), (35.0, 0.97));
        assert!(e.contributors.is_empty() && e.prediction.is_none());

        let feedback = r#"{"false_alarm":true,"note":"door was open","at_ms":1700000000000,"effect":"the detector became less sensitive"}"#;
        assert_eq!(
            read_feedback(feedback).unwrap(),
            Feedback {
                false_alarm: true,
                note: Some("door was open".into()),
                at_ms: 1_700_000_000_000,
                effect: "the detector became less sensitive".into(),
            }
        );
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        let v2 = r#"{"v":2,"detector":"x","expected":0.0,"lower":0.0,"upper":0.0,"observed":0.0,"score":0.0,"message":""}"#;
        let err = read_explanation(v2).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
        assert!(read_feedback(r#"{"v":2,"false_alarm":true,"at_ms":1,"effect":""}"#).is_err());
        assert!(read_explanation("{}").is_err());
        assert!(read_feedback("not json").is_err());
    }
}

/// [`Rule`], version 1.
#[derive(Debug, Serialize, Deserialize)]
struct RuleV1 {
    v: Option<u32>,
    id: String,
    name: String,
    enabled: bool,
    selector: SelectorV1,
    condition: String,
    clear: Option<String>,
    for_ms: i64,
    /// Absent in rules stored before the hysteresis in time existed: 0 (at once).
    #[serde(default)]
    clear_for_ms: i64,
    /// Absent in rules stored before cool-downs existed: 0 (none).
    #[serde(default)]
    cool_down_ms: i64,
    severity: String,
    /// Absent in rules stored before actions other than the alert existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    actions: Vec<ActionV1>,
    /// Absent in rules stored before actions on resolve existed, or without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    on_resolve: Vec<ActionV1>,
}

/// [`RuleAction`], version 1.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ActionV1 {
    Alert,
    Command {
        name: String,
        params: String,
        ttl_ms: Option<i64>,
        to: Option<SelectorV1>,
    },
    SetDesired {
        patch: String,
    },
    Notify {
        channel: String,
    },
    Publish {
        topic: String,
        payload: String,
    },
}

impl From<&Selector> for SelectorV1 {
    fn from(s: &Selector) -> Self {
        Self {
            devices: s.devices.iter().map(|d| d.to_string()).collect(),
            kind: s.kind.clone(),
            labels: s.labels.clone(),
            metrics: s.metrics.clone(),
        }
    }
}

impl TryFrom<SelectorV1> for Selector {
    type Error = String;

    fn try_from(s: SelectorV1) -> Result<Self, String> {
        Ok(Self {
            devices: s
                .devices
                .iter()
                .map(|d| DeviceId::parse(d))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
            kind: s.kind,
            labels: s.labels,
            metrics: s.metrics,
        })
    }
}

impl From<&RuleAction> for ActionV1 {
    fn from(a: &RuleAction) -> Self {
        match a {
            RuleAction::Alert => Self::Alert,
            RuleAction::Command {
                name,
                params,
                ttl_ms,
                to,
            } => Self::Command {
                name: name.clone(),
                params: params.clone(),
                ttl_ms: *ttl_ms,
                to: to.as_ref().map(SelectorV1::from),
            },
            RuleAction::SetDesired { patch } => Self::SetDesired {
                patch: patch.clone(),
            },
            RuleAction::Notify { channel } => Self::Notify {
                channel: channel.clone(),
            },
            RuleAction::Publish { topic, payload } => Self::Publish {
                topic: topic.clone(),
                payload: payload.clone(),
            },
        }
    }
}

impl TryFrom<ActionV1> for RuleAction {
    type Error = String;

    fn try_from(a: ActionV1) -> Result<Self, String> {
        Ok(match a {
            ActionV1::Alert => Self::Alert,
            ActionV1::Command {
                name,
                params,
                ttl_ms,
                to,
            } => Self::Command {
                name,
                params,
                ttl_ms,
                to: to.map(Selector::try_from).transpose()?,
            },
            ActionV1::SetDesired { patch } => Self::SetDesired { patch },
            ActionV1::Notify { channel } => Self::Notify { channel },
            ActionV1::Publish { topic, payload } => Self::Publish { topic, payload },
        })
    }
}

/// [`Selector`], version 1.
#[derive(Debug, Serialize, Deserialize)]
struct SelectorV1 {
    devices: Vec<String>,
    kind: Option<String>,
    labels: BTreeMap<String, String>,
    metrics: Vec<String>,
}

impl From<&Rule> for RuleV1 {
    fn from(r: &Rule) -> Self {
        Self {
            v: Some(VERSION),
            id: r.id.to_string(),
            name: r.name.clone(),
            enabled: r.enabled,
            selector: SelectorV1::from(&r.selector),
            condition: r.condition.clone(),
            clear: r.clear.clone(),
            for_ms: r.for_ms,
            clear_for_ms: r.clear_for_ms,
            cool_down_ms: r.cool_down_ms,
            severity: r.severity.as_str().to_string(),
            actions: r.actions.iter().map(ActionV1::from).collect(),
            on_resolve: r.on_resolve.iter().map(ActionV1::from).collect(),
        }
    }
}

impl TryFrom<RuleV1> for Rule {
    type Error = String;

    fn try_from(r: RuleV1) -> Result<Self, String> {
        Ok(Self {
            id: RuleId::parse(&r.id).map_err(|e| e.to_string())?,
            name: r.name,
            enabled: r.enabled,
            selector: Selector::try_from(r.selector)?,
            condition: r.condition,
            clear: r.clear,
            for_ms: r.for_ms,
            clear_for_ms: r.clear_for_ms,
            cool_down_ms: r.cool_down_ms,
            severity: Severity::parse(&r.severity)
                .ok_or_else(|| format!("unknown severity {:?}", r.severity))?,
            actions: r
                .actions
                .into_iter()
                .map(RuleAction::try_from)
                .collect::<Result<_, _>>()?,
            on_resolve: r
                .on_resolve
                .into_iter()
                .map(RuleAction::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}
