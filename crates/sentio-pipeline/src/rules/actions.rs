//! A rule's actions, checked at creation ([`check`], [`check_on_resolve`]) and carried out when
//! its alert opens, and its `on_resolve` actions when the alert resolves by the rule's clear
//! condition ([`run`]): commands, desired twin changes and MQTT messages, through the
//! pipeline's desks.
//! Never on the detect stage's path: [`run`] is spawned, and a failing action is logged and
//! leaves the others (and the alert) as they are.

use sentio_core::topic;
use sentio_core::{DeviceId, RuleAction, RuleId};
use tracing::{info, warn};

use super::RuleError;
use crate::actuate::{Commands, CourierSlot, NewCommand, Twins};

/// Longest topic template, in bytes.
const MAX_TOPIC_LEN: usize = 1024;

/// Checks every action of a rule: a command's name and JSON params, a desired patch that is
/// a JSON object, a publish topic with no wildcard, not a `$` topic, and not one the node
/// alone publishes to devices (a command or a desired twin: those go through their actions).
pub fn check(actions: &[RuleAction]) -> Result<(), RuleError> {
    for action in actions {
        match action {
            // A channel's name is checked where the rule is read; the notifier sends it.
            RuleAction::Alert | RuleAction::Notify { .. } => {}
            RuleAction::Command {
                name,
                params,
                ttl_ms,
                ..
            } => {
                if name.is_empty() || name.len() > 128 {
                    return Err(RuleError::new("actions.command.name", "give 1-128 bytes"));
                }
                if serde_json::from_str::<serde_json::Value>(params).is_err() {
                    return Err(RuleError::new("actions.command.params", "not JSON"));
                }
                if ttl_ms.is_some_and(|t| t <= 0) {
                    return Err(RuleError::new("actions.command.ttl", "above 0"));
                }
            }
            RuleAction::SetDesired { patch } => {
                let ok =
                    serde_json::from_str::<serde_json::Value>(patch).is_ok_and(|v| v.is_object());
                if !ok {
                    return Err(RuleError::new(
                        "actions.set_desired.desired",
                        "a JSON object (a merge patch)",
                    ));
                }
            }
            RuleAction::Publish { topic: t, .. } => {
                let sample = RuleAction::fill(
                    t,
                    &DeviceId::parse("d").expect("valid"),
                    &RuleId::parse("r").expect("valid"),
                );
                let why = if t.is_empty() || t.len() > MAX_TOPIC_LEN {
                    Some("give 1-1024 bytes")
                } else {
                    topic::node_publish_refusal(&sample)
                };
                if let Some(why) = why {
                    return Err(RuleError::new("actions.publish.topic", why));
                }
            }
        }
    }
    Ok(())
}

/// Checks a rule's `on_resolve` actions as [`check`] does; the alert and notify actions are
/// refused there (the alert is what resolves; its resolution is notified to the channels of
/// the rule's `actions`).
pub fn check_on_resolve(actions: &[RuleAction]) -> Result<(), RuleError> {
    if actions
        .iter()
        .any(|a| matches!(a, RuleAction::Alert | RuleAction::Notify { .. }))
    {
        return Err(RuleError::new(
            "on_resolve",
            "commands, set_desired and publish only: the alert is what resolves, and its resolution is notified to the channels named in actions",
        ));
    }
    check(actions).map_err(|e| {
        RuleError::new(
            "on_resolve",
            format!(
                "{}: {}",
                e.field.replacen("actions", "on_resolve", 1),
                e.message
            ),
        )
    })
}

/// The desks actions go through. Cheap to clone.
#[derive(Clone)]
pub struct ActionDesks {
    /// Commands.
    pub commands: Commands,
    /// Twins.
    pub twins: Twins,
    /// The way out for `publish`.
    pub courier: CourierSlot,
}

/// Carries out the actions of rule `rule`, which fired on `device`, each with the devices it
/// is for (a command: `device`, or every device its `to` selects).
pub(crate) async fn run(
    desks: ActionDesks,
    rule: RuleId,
    device: DeviceId,
    actions: Vec<(RuleAction, Vec<DeviceId>)>,
) {
    for (action, targets) in actions {
        match action {
            // The notifier sends the rule's alert to its channels (see `sentio-notify`).
            RuleAction::Alert | RuleAction::Notify { .. } => {}
            RuleAction::Command {
                name,
                params,
                ttl_ms,
                ..
            } => {
                let params = serde_json::from_str(&params).unwrap_or_default();
                for target in targets {
                    let new = NewCommand {
                        name: name.clone(),
                        params: serde_json::Value::clone(&params),
                        ttl_ms,
                    };
                    match desks.commands.send(&target, new).await {
                        Ok(c) => {
                            info!(rule = %rule, device = %target, command = %c.id, "rule sent a command")
                        }
                        Err(e) => {
                            warn!(rule = %rule, device = %target, error = %e, "rule's command not sent")
                        }
                    }
                }
            }
            RuleAction::SetDesired { patch } => {
                let patch = serde_json::from_str(&patch).unwrap_or_default();
                if let Err(e) = desks.twins.patch_desired(&device, None, &patch).await {
                    warn!(rule = %rule, %device, error = %e, "rule's desired change not made");
                }
            }
            RuleAction::Publish { topic: t, payload } => {
                if let Some(courier) = desks.courier.get() {
                    let t = RuleAction::fill(&t, &device, &rule);
                    let payload = RuleAction::fill(&payload, &device, &rule);
                    courier.publish(t, payload.into_bytes(), false).await;
                }
            }
        }
    }
}
