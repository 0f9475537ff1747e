//! Rules on the wire: the body of `POST /api/v1/rules` and `PUT /api/v1/rules/<id>`
//! ([`RuleBody`]) and what the API answers ([`RuleView`]).

use std::collections::BTreeMap;

use sentio_core::time::parse_duration_ms;
use sentio_core::{Channel, DeviceId, Rule, RuleAction, RuleId, Selector, Severity};
use sentio_pipeline::rules::RuleError;
use serde::{Deserialize, Serialize};

/// The action every rule has: open the rule's alert, and resolve it on clear.
const ALERT_ACTION: &str = "alert";

/// One action on the wire: `"alert"` or `{"notify": "<channel>"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ActionDto {
    /// `"alert"`.
    Name(String),
    /// Notify a channel.
    Notify {
        /// The channel's name.
        notify: String,
    },
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
    /// `["alert", {"notify": "ops"}]`: the alert (always, the default) and channels to notify.
    #[serde(default)]
    pub actions: Option<Vec<ActionDto>>,
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
        let mut actions = Vec::new();
        for a in self.actions.into_iter().flatten() {
            match a {
                ActionDto::Name(n) if n == ALERT_ACTION => {}
                ActionDto::Notify { notify } if Channel::valid_name(&notify) => {
                    actions.push(RuleAction::Notify { channel: notify })
                }
                _ => {
                    return Err(invalid(
                        "actions",
                        "use \"alert\" (open and resolve the rule's alert) or \
                         {\"notify\": \"<channel name>\"}",
                    ));
                }
            }
        }
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
        let devices = self
            .selector
            .devices
            .iter()
            .map(|d| DeviceId::parse(d))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("selector.devices", e.to_string()))?;
        Ok(Rule {
            id,
            name: self.name,
            enabled: self.enabled,
            selector: Selector {
                devices,
                kind: self.selector.kind,
                labels: self.selector.labels,
                metrics: self.selector.metrics,
            },
            condition: self.condition,
            clear: self.clear,
            for_ms,
            clear_for_ms,
            cool_down_ms,
            severity,
            actions,
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
    pub actions: Vec<ActionDto>,
}

impl From<&Rule> for RuleView {
    fn from(r: &Rule) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            enabled: r.enabled,
            selector: SelectorDto {
                devices: r.selector.devices.iter().map(|d| d.to_string()).collect(),
                kind: r.selector.kind.clone(),
                labels: r.selector.labels.clone(),
                metrics: r.selector.metrics.clone(),
            },
            condition: r.condition.clone(),
            clear: r.clear.clone(),
            for_ms: r.for_ms,
            clear_for_ms: r.clear_for_ms,
            cool_down_ms: r.cool_down_ms,
            severity: r.severity.as_str(),
            actions: std::iter::once(ActionDto::Name(ALERT_ACTION.into()))
                .chain(r.actions.iter().map(|a| match a {
                    RuleAction::Notify { channel } => ActionDto::Notify {
                        notify: channel.clone(),
                    },
                }))
                .collect(),
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
            r#"{"id":"co2-high","name":"CO2","enabled":true,"selector":{"devices":[],"kind":"room","labels":{"floor":"2"},"metrics":["co2"]},"condition":"co2 > 1000","clear":"co2 < 800","for_ms":600000,"clear_for_ms":60000,"cool_down_ms":300000,"severity":"critical","actions":["alert",{"notify":"ops"}]}"#
        );
        for (json, field) in [
            (
                r#"{"name":"n","condition":"c","actions":["webhook"]}"#,
                "actions",
            ),
            (
                r#"{"name":"n","condition":"c","actions":[{"notify":"Bad Name"}]}"#,
                "actions",
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
