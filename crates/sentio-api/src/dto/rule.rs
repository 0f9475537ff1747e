//! Rules on the wire: the body of `POST /api/v1/rules` and `PUT /api/v1/rules/<id>`
//! ([`RuleBody`]) and what the API answers ([`RuleView`]).

use std::collections::BTreeMap;

use sentio_core::time::parse_duration_ms;
use sentio_core::{Channel, DeviceId, Rule, RuleAction, RuleId, Selector, Severity};
use sentio_pipeline::rules::RuleError;
use serde::{Deserialize, Serialize};

/// The action every rule has: open its alert, and resolve it on clear.
const ALERT_ACTION: &str = "alert";

/// An action as written: `"alert"`, or an object tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ActionDto {
    /// `"alert"`.
    Name(String),
    /// `{"notify": "<channel>"}`: notify a channel.
    Notify {
        /// The channel's name.
        notify: String,
    },
    /// `{"type": ...}`.
    Typed(TypedAction),
}

/// An action other than the alert.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TypedAction {
    /// `{"type": "alert"}`.
    Alert,
    /// `{"type": "command", "name", "params"?, "ttl"?, "to"?: selector}`: to the device the
    /// rule fired on, or to every device `to` selects.
    Command {
        name: String,
        #[serde(default)]
        params: serde_json::Value,
        #[serde(default)]
        ttl: Option<super::command::Ttl>,
        #[serde(default)]
        to: Option<SelectorDto>,
    },
    /// `{"type": "set_desired", "desired": {...}}`: a merge patch of the device's desired twin.
    SetDesired { desired: serde_json::Value },
    /// `{"type": "publish", "topic", "payload"}`: an MQTT message from the node; `{device}` and
    /// `{rule}` are filled in (a payload that is not a string is sent as its JSON).
    Publish {
        topic: String,
        #[serde(default)]
        payload: serde_json::Value,
    },
}

impl SelectorDto {
    fn to_selector(&self, field: &'static str) -> Result<Selector, RuleError> {
        let devices = self
            .devices
            .iter()
            .map(|d| DeviceId::parse(d))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(field, e.to_string()))?;
        Ok(Selector {
            devices,
            kind: self.kind.clone(),
            labels: self.labels.clone(),
            metrics: self.metrics.clone(),
        })
    }

    fn of(s: &Selector) -> Self {
        Self {
            devices: s.devices.iter().map(|d| d.to_string()).collect(),
            kind: s.kind.clone(),
            labels: s.labels.clone(),
            metrics: s.metrics.clone(),
        }
    }
}

impl ActionDto {
    fn into_action(self) -> Result<RuleAction, RuleError> {
        let typed = match self {
            Self::Name(n) if n == ALERT_ACTION => return Ok(RuleAction::Alert),
            Self::Name(n) => {
                return Err(invalid(
                    "actions",
                    format!(
                        "unknown action {n:?}: \"alert\", {{\"notify\": \"<channel>\"}}, or an object with type command, set_desired or publish"
                    ),
                ));
            }
            Self::Notify { notify } if Channel::valid_name(&notify) => {
                return Ok(RuleAction::Notify { channel: notify });
            }
            Self::Notify { notify } => {
                return Err(invalid(
                    "actions.notify",
                    format!("{notify:?} is not a channel name"),
                ));
            }
            Self::Typed(t) => t,
        };
        Ok(match typed {
            TypedAction::Alert => RuleAction::Alert,
            TypedAction::Command {
                name,
                params,
                ttl,
                to,
            } => RuleAction::Command {
                name,
                params: params.to_string(),
                ttl_ms: ttl
                    .map(|t| t.ms())
                    .transpose()
                    .map_err(|e| invalid("actions.command.ttl", e.detail))?,
                to: to
                    .map(|s| s.to_selector("actions.command.to"))
                    .transpose()?,
            },
            TypedAction::SetDesired { desired } => RuleAction::SetDesired {
                patch: desired.to_string(),
            },
            TypedAction::Publish { topic, payload } => RuleAction::Publish {
                topic,
                payload: match payload {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                },
            },
        })
    }
}

/// An action as the API shows it.
fn action_view(a: &RuleAction) -> serde_json::Value {
    let json = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    match a {
        RuleAction::Alert => ALERT_ACTION.into(),
        RuleAction::Command {
            name,
            params,
            ttl_ms,
            to,
        } => serde_json::json!({
            "type": "command", "name": name, "params": json(params), "ttl_ms": ttl_ms,
            "to": to.as_ref().map(SelectorDto::of),
        }),
        RuleAction::Notify { channel } => serde_json::json!({ "notify": channel }),
        RuleAction::SetDesired { patch } => {
            serde_json::json!({"type": "set_desired", "desired": json(patch)})
        }
        RuleAction::Publish { topic, payload } => {
            serde_json::json!({"type": "publish", "topic": topic, "payload": payload})
        }
    }
}

/// A rule's selector.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorDto {
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// `POST /api/v1/rules` and `PUT /api/v1/rules/<id>` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// Required on `POST`; on `PUT`, if given, the id in the path.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub selector: SelectorDto,
    pub condition: String,
    #[serde(default)]
    pub clear: Option<String>,
    /// How long the condition must hold, as a duration (`"10m"`)...
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// ...or in milliseconds.
    #[serde(default)]
    pub for_ms: Option<i64>,
    /// How long `clear` must hold before the alert resolves (default 1m)...
    #[serde(default)]
    pub clear_for: Option<String>,
    /// ...and how long after that it cannot open again (default 5m).
    #[serde(default)]
    pub cool_down: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    /// `["alert"]` (the default) and more: `{"notify": "<channel>"}`, or see [`TypedAction`].
    #[serde(default)]
    pub actions: Option<Vec<ActionDto>>,
    /// Run when the alert resolves by `clear` (never when resolved by hand): commands,
    /// `set_desired` and `publish` ([`TypedAction`]).
    #[serde(default)]
    pub on_resolve: Vec<ActionDto>,
}

fn yes() -> bool {
    true
}

fn invalid(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        field,
        message: message.into(),
        position: None,
    }
}

impl RuleBody {
    /// The rule this body describes, with id `id`; its expressions are checked later, by
    /// compiling it.
    pub fn into_rule(self, id: &str) -> Result<Rule, RuleError> {
        let id = RuleId::parse(id).map_err(|e| invalid("id", e.to_string()))?;
        let actions: Vec<RuleAction> = self
            .actions
            .unwrap_or_default()
            .into_iter()
            .map(ActionDto::into_action)
            .filter(|a| !matches!(a, Ok(RuleAction::Alert)))
            .collect::<Result<_, _>>()?;
        let on_resolve: Vec<RuleAction> = self
            .on_resolve
            .into_iter()
            .map(|a| {
                a.into_action().map_err(|e| RuleError {
                    field: "on_resolve",
                    message: e.message,
                    position: None,
                })
            })
            .collect::<Result<_, _>>()?;
        let for_ms = match (self.for_, self.for_ms) {
            (Some(_), Some(_)) => return Err(invalid("for", "give for or for_ms, not both")),
            (Some(d), None) => parse_duration_ms(&d).map_err(|e| invalid("for", e.to_string()))?,
            (None, ms) => ms.unwrap_or(0),
        };
        let span = |field: &'static str, given: Option<String>, default: i64| match given {
            None => Ok(default),
            // "0", "0s", "0m": none (a duration elsewhere is never zero).
            Some(d) if matches!(d.trim(), "0" | "0ms" | "0s" | "0m" | "0h" | "0d") => Ok(0),
            Some(d) => parse_duration_ms(&d).map_err(|e| invalid(field, e.to_string())),
        };
        let clear_for_ms = span("clear_for", self.clear_for, Rule::DEFAULT_CLEAR_FOR_MS)?;
        let cool_down_ms = span("cool_down", self.cool_down, Rule::DEFAULT_COOL_DOWN_MS)?;
        let severity = match self.severity.as_deref() {
            None => Severity::default(),
            Some(s) => Severity::parse(s)
                .ok_or_else(|| invalid("severity", "use info, warning or critical"))?,
        };
        Ok(Rule {
            id,
            name: self.name,
            enabled: self.enabled,
            selector: self.selector.to_selector("selector.devices")?,
            condition: self.condition,
            clear: self.clear,
            for_ms,
            clear_for_ms,
            cool_down_ms,
            severity,
            actions,
            on_resolve,
        })
    }
}

/// A rule as the API shows it.
#[derive(Debug, Serialize)]
pub struct RuleView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub selector: SelectorDto,
    pub condition: String,
    pub clear: Option<String>,
    pub for_ms: i64,
    pub clear_for_ms: i64,
    pub cool_down_ms: i64,
    pub severity: &'static str,
    /// `"alert"` first, then the rule's other actions.
    pub actions: Vec<serde_json::Value>,
    /// Actions run when the alert resolves by `clear` (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_resolve: Vec<serde_json::Value>,
    /// `ok`, `failing` (its latest evaluation on some device failed: `failing` says why) or
    /// `disabled`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<sentio_pipeline::rules::report::Failing>,
    /// Evaluations that failed since the node started.
    pub failures: u64,
}

impl RuleView {
    /// With the rule's run-time report (`None`: not judged, i.e. disabled).
    pub fn with_report(
        mut self,
        report: Option<&sentio_pipeline::rules::report::RuleReport>,
    ) -> Self {
        if let Some(r) = report {
            self.failing = r.failing.clone();
            self.failures = r.failures;
            self.status = if r.failing.is_some() { "failing" } else { "ok" };
        }
        self
    }
}

impl From<&Rule> for RuleView {
    fn from(r: &Rule) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            enabled: r.enabled,
            selector: SelectorDto::of(&r.selector),
            condition: r.condition.clone(),
            clear: r.clear.clone(),
            for_ms: r.for_ms,
            clear_for_ms: r.clear_for_ms,
            cool_down_ms: r.cool_down_ms,
            severity: r.severity.as_str(),
            actions: std::iter::once(ALERT_ACTION.into())
                .chain(r.actions.iter().map(action_view))
                .collect(),
            on_resolve: r.on_resolve.iter().map(action_view).collect(),
            status: if r.enabled { "ok" } else { "disabled" },
            failing: None,
            failures: 0,
        }
    }
}

/// `GET /api/v1/rules`.
#[derive(Debug, Serialize)]
pub struct RuleList {
    pub rules: Vec<RuleView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_and_print_their_wire_form() {
        let body: RuleBody = serde_json::from_str(
            r#"{"id":"co2-high","name":"CO2","selector":{"kind":"room","labels":{"floor":"2"},"metrics":["co2"]},
                "condition":"co2 > 1000","clear":"co2 < 800","for":"10m","severity":"critical","actions":["alert",{"notify":"ops"}]}"#,
        )
        .unwrap();
        let rule = body.into_rule("co2-high").unwrap();
        assert_eq!(rule.for_ms, 600_000);
        let body: RuleBody = serde_json::from_str(
            r#"{"name":"n","condition":"c","clear_for":"0s","cool_down":"2m"}"#,
        )
        .unwrap();
        let r = body.into_rule("r").unwrap();
        assert_eq!((r.clear_for_ms, r.cool_down_ms), (0, 120_000));
        assert_eq!(
            serde_json::to_string(&RuleView::from(&rule)).unwrap(),
            r#"{"id":"co2-high","name":"CO2","enabled":true,"selector":{"devices":[],"kind":"room","labels":{"floor":"2"},"metrics":["co2"]},"condition":"co2 > 1000","clear":"co2 < 800","for_ms":600000,"clear_for_ms":60000,"cool_down_ms":300000,"severity":"critical","actions":["alert",{"notify":"ops"}],"status":"ok","failures":0}"#
        );
        for (json, field) in [
            (
                r#"{"name":"n","condition":"c","actions":["webhook"]}"#,
                "actions",
            ),
            (
                r#"{"name":"n","condition":"c","actions":[{"notify":"Bad Name"}]}"#,
                "actions.notify",
            ),
            (r#"{"name":"n","condition":"c","for":"ten"}"#, "for"),
            (
                r#"{"name":"n","condition":"c","cool_down":"soon"}"#,
                "cool_down",
            ),
            (
                r#"{"name":"n","condition":"c","for":"1m","for_ms":1}"#,
                "for",
            ),
            (
                r#"{"name":"n","condition":"c","severity":"loud"}"#,
                "severity",
            ),
            (
                r#"{"name":"n","condition":"c","selector":{"devices":["a b"]}}"#,
                "selector.devices",
            ),
        ] {
            let body: RuleBody = serde_json::from_str(json).unwrap();
            assert_eq!(body.into_rule("r").unwrap_err().field, field, "{json}");
        }
        let body: RuleBody = serde_json::from_str(r#"{"name":"n","condition":"c"}"#).unwrap();
        assert_eq!(body.into_rule("Bad Id").unwrap_err().field, "id");
        assert!(serde_json::from_str::<RuleBody>(r#"{"name":"n","condition":"c","x":1}"#).is_err());
    }
}
