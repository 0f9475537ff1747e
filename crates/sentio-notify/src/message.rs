//! What a notification says: a JSON body in the Standard Webhooks shape (`type`, `timestamp`,
//! `data`), the same for every channel (an e-mail carries it below a subject and a sentence).
//! These bodies are wire forms of their own, pinned by the test below.

use sentio_core::Alert;
use sentio_core::time::format_time;
use sentio_store::AlertGroup;
use serde::{Deserialize, Serialize};

/// A notification body (`data` the alert or group; read back as a JSON value).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Body<D = serde_json::Value> {
    /// `alert.opened`, `alert.acknowledged`, `alert.resolved`, `alert.group` or
    /// `alert.group.resolved`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the alert (or the group's first member) opened, RFC 3339.
    pub timestamp: String,
    /// One sentence for people (an e-mail's subject).
    pub summary: String,
    /// The alert or the group.
    pub data: D,
}

/// An alert in a notification.
#[derive(Debug, Serialize)]
struct AlertData<'a> {
    id: i64,
    device: &'a str,
    metric: &'a str,
    kind: &'static str,
    severity: &'static str,
    message: &'a str,
    opened_ms: i64,
    /// Who acknowledged it, once someone has.
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledged_by: Option<&'a str>,
    /// When it resolved, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_ms: Option<i64>,
    /// Who resolved it by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_by: Option<&'a str>,
}

impl<'a> AlertData<'a> {
    fn of(a: &'a Alert) -> Self {
        Self {
            id: a.id.get(),
            device: &a.device,
            metric: &a.metric,
            kind: a.explanation.kind.as_str(),
            severity: a.severity().as_str(),
            message: &a.explanation.message,
            opened_ms: a.opened_ms,
            acknowledged_by: a.ack.as_ref().map(|k| k.by.as_str()),
            resolved_ms: a.resolved_ms,
            resolved_by: a.resolved_by.as_deref(),
        }
    }
}

/// A group in a notification.
#[derive(Debug, Serialize)]
struct GroupData<'a> {
    id: i64,
    alert_kind: &'static str,
    device_kind: &'a str,
    opened_ms: i64,
    count: usize,
    members: Vec<MemberData<'a>>,
}

#[derive(Debug, Serialize)]
struct MemberData<'a> {
    alert: i64,
    device: &'a str,
}

/// The message id of alert `id`'s notification (its `webhook-id`).
pub fn alert_msg_id(id: i64) -> String {
    format!("alert-{id}")
}

/// The message id of what `event` (`acknowledged`, `resolved`) says of alert `id`.
pub fn alert_event_msg_id(id: i64, event: &str) -> String {
    format!("alert-{id}-{event}")
}

/// The message id of group `id`'s notification.
pub fn group_msg_id(id: i64) -> String {
    format!("group-{id}")
}

/// The message id of a grouped resolution whose first member is alert `first`.
pub fn group_resolved_msg_id(first: i64) -> String {
    format!("group-resolved-{first}")
}

/// The body announcing that `a` opened.
pub fn alert_opened(a: &Alert) -> String {
    let data = AlertData::of(a);
    let body = Body {
        kind: "alert.opened".into(),
        timestamp: format_time(a.opened_ms),
        summary: format!(
            "[{}] {} {} on {}: {}",
            data.severity, data.kind, a.metric, a.device, a.explanation.message
        ),
        data,
    };
    serde_json::to_string(&body).expect("bodies serialise")
}

/// The body announcing that `a` was `event` (`acknowledged` or `resolved`) at `now_ms`.
pub fn alert_changed(a: &Alert, event: &str, now_ms: i64) -> String {
    let data = AlertData::of(a);
    let by = match event {
        "acknowledged" => data.acknowledged_by,
        _ => data.resolved_by,
    };
    let body = Body {
        kind: format!("alert.{event}"),
        timestamp: format_time(match event {
            "resolved" => a.resolved_ms.unwrap_or(now_ms),
            _ => a.ack.as_ref().map_or(now_ms, |k| k.at_ms),
        }),
        summary: format!(
            "[{}] {event}{}: {} {} on {}",
            data.severity,
            by.map(|b| format!(" by {b}")).unwrap_or_default(),
            data.kind,
            a.metric,
            a.device
        ),
        data,
    };
    serde_json::to_string(&body).expect("bodies serialise")
}

/// The body announcing that the silence alerts of `members` (alert id, device) of
/// `device_kind` resolved together.
pub fn group_resolved(device_kind: &str, members: &[(i64, String)], now_ms: i64) -> String {
    let body = Body {
        kind: "alert.group.resolved".into(),
        timestamp: format_time(now_ms),
        summary: format!(
            "{} {device_kind} devices are back: their silence alerts resolved together",
            members.len()
        ),
        data: serde_json::json!({
            "device_kind": device_kind,
            "count": members.len(),
            "members": members
                .iter()
                .map(|(alert, device)| serde_json::json!({"alert": alert, "device": device}))
                .collect::<Vec<_>>(),
        }),
    };
    serde_json::to_string(&body).expect("bodies serialise")
}

/// The body announcing group `g`.
pub fn group_opened(g: &AlertGroup) -> String {
    let data = GroupData {
        id: g.id,
        alert_kind: g.alert_kind.as_str(),
        device_kind: &g.device_kind,
        opened_ms: g.opened_ms,
        count: g.members.len(),
        members: g
            .members
            .iter()
            .map(|(alert, device)| MemberData {
                alert: *alert,
                device,
            })
            .collect(),
    };
    let body = Body {
        kind: "alert.group".into(),
        timestamp: format_time(g.opened_ms),
        summary: format!(
            "{} {} devices raised {} alerts together",
            g.members.len(),
            g.device_kind,
            g.alert_kind.as_str()
        ),
        data,
    };
    serde_json::to_string(&body).expect("bodies serialise")
}

#[cfg(test)]
mod tests {
    use sentio_core::{AlertId, AlertKind, AlertState, Explanation};

    use super::*;

    #[test]
    fn bodies_keep_their_wire_form() {
        let e = Explanation {
            kind: AlertKind::Limit,
            message: "temp 95 above the limit 90".into(),
            ..Explanation::default()
        };
        let a = Alert {
            id: AlertId::new(7),
            device: "pump-1".into(),
            metric: "temp".into(),
            state: AlertState::Open,
            opened_ms: 1_700_000_000_000,
            last_anomaly_ms: 1_700_000_000_000,
            resolved_ms: None,
            anomalous_points: 1,
            explanation: e.clone(),
            peak: e,
            feedback: None,
            ack: None,
            resolved_by: None,
            silenced_by: None,
        };
        assert_eq!(
            alert_opened(&a),
            r#"{"type":"alert.opened","timestamp":"2023-11-14T22:13:20Z","summary":"[critical] limit temp on pump-1: temp 95 above the limit 90","data":{"id":7,"device":"pump-1","metric":"temp","kind":"limit","severity":"critical","message":"temp 95 above the limit 90","opened_ms":1700000000000}}"#
        );
        let g = AlertGroup {
            id: 3,
            alert_kind: AlertKind::Silence,
            device_kind: "room".into(),
            opened_ms: 1_700_000_000_000,
            members: vec![(7, "room-1".into())],
        };
        assert_eq!(
            group_opened(&g),
            r#"{"type":"alert.group","timestamp":"2023-11-14T22:13:20Z","summary":"1 room devices raised silence alerts together","data":{"id":3,"alert_kind":"silence","device_kind":"room","opened_ms":1700000000000,"count":1,"members":[{"alert":7,"device":"room-1"}]}}"#
        );
    }
}
