//! Authentication and topic ACLs of devices and scoped API tokens.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use mqtt5::broker::auth::{AuthProvider, AuthResult};
use mqtt5::packet::connect::ConnectPacket;
use mqtt5::types::ReasonCode;
use sentio_core::EdgeId;
use sentio_core::{DeviceId, acl, topic};
use sentio_pipeline::Ingest;
use sentio_store::{
    DeviceRegistry, EDGE_USERNAME_PREFIX, EdgeStore, TOKEN_USERNAME_PREFIX, TokenStore,
};
use tracing::warn;

use crate::clients::{Clients, Refusal, Ticket};
use crate::counters::Counters;
use crate::limits::LimitState;
use crate::refusals::RefusalRecorder;

/// Authenticates devices by their secret and confines them to their own topics; authenticates
/// API tokens (`token:<id>` usernames) and confines them to their ACL.
pub struct DeviceAuth {
    registry: Arc<dyn DeviceRegistry>,
    tokens: Arc<dyn TokenStore>,
    edges: Arc<dyn EdgeStore>,
    ingest: Ingest,
    clients: Arc<Clients>,
    counters: Arc<Counters>,
    limits: Arc<LimitState>,
    /// Records refused CONNECTs on their device, off the CONNECT path.
    refusals: Arc<RefusalRecorder>,
}

/// Where the identities a CONNECT may claim are checked: devices, API tokens, edges.
pub(crate) struct Identities {
    pub registry: Arc<dyn DeviceRegistry>,
    pub tokens: Arc<dyn TokenStore>,
    pub edges: Arc<dyn EdgeStore>,
}

impl DeviceAuth {
    pub(crate) fn new(
        Identities {
            registry,
            tokens,
            edges,
        }: Identities,
        ingest: Ingest,
        clients: Arc<Clients>,
        counters: Arc<Counters>,
        limits: Arc<LimitState>,
        refusals: Arc<RefusalRecorder>,
    ) -> Self {
        Self {
            registry,
            tokens,
            edges,
            ingest,
            clients,
            counters,
            limits,
            refusals,
        }
    }

    /// A CONNECT from `client_addr` claiming `user` gave a wrong credential: counted per
    /// address (logged at most once per interval per address, never with the username or
    /// password), queued for recording on the device it names, and refused with `reason`. The
    /// same work for a registered device id, an unknown one and a token: nothing here waits.
    fn refuse_credential(
        &self,
        user: &str,
        client_addr: SocketAddr,
        reason: &'static str,
    ) -> AuthResult {
        Counters::bump(&self.counters.auth_failures);
        if is_device_user(user) {
            self.refusals.record(user, client_addr);
        }
        if let Some(r) = self.limits.auth.failed(client_addr.ip(), Instant::now()) {
            warn!(%client_addr, failures = r.failures, refused = r.events, backoff = ?r.blocked_for,
                "MQTT connect refused: {reason} (username not logged; one line per address per 10 s, `refused` counts what it stands for)");
        }
        AuthResult::fail_with_reason(ReasonCode::BadUsernameOrPassword, reason)
    }
}

/// Admits an authenticated CONNECT as `user` (`None`: anonymous) unless a connection quota is
/// full ([`Clients::admit`]): then CONNACK 0x97, quota exceeded (MQTT 3.1.1: 0x03, server
/// unavailable), counted, and logged once per 100 refusals (a reconnect storm must not flood
/// the log). A will to be retained beyond the identity's retained share is refused the same
/// way (`retained.rs`).
pub(crate) fn admit(
    clients: &Clients,
    limits: &LimitState,
    ticket: Ticket,
    connect: &ConnectPacket,
    client_addr: SocketAddr,
    user: Option<&str>,
) -> AuthResult {
    if let Some(will) = connect
        .will
        .as_ref()
        .filter(|w| w.retain && !w.payload.is_empty())
        && !limits
            .retained
            .admit_will(&connect.client_id, user, &will.topic, will.payload.len())
    {
        return AuthResult::fail_with_reason(
            ReasonCode::QuotaExceeded,
            "the retained will would pass this identity's retained messages quota",
        );
    }
    let refusal = match clients.admit(
        ticket,
        &connect.client_id,
        connect.protocol_version,
        client_addr,
    ) {
        Ok(()) => {
            return match user {
                Some(u) => AuthResult::success_with_user(u),
                None => AuthResult::success(),
            };
        }
        Err(r) => r,
    };
    let refused = limits
        .counters
        .connections_refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (why, max) = match refusal {
        Refusal::Node(max) => (
            "the node holds its maximum of connections (mqtt.max_connections)",
            max,
        ),
        Refusal::Identity(max) => (
            "this identity holds its maximum of connections (mqtt.limits.max_connections_per_device / max_connections_per_token)",
            max,
        ),
        Refusal::Address(max) => (
            "this address holds its maximum of connections (mqtt.limits.max_connections_per_address)",
            max,
        ),
    };
    if refused.is_multiple_of(100) {
        warn!(%client_addr, client_id = ?connect.client_id, user = ?user, max, refused = refused + 1,
            "MQTT connect refused: {why}");
    }
    AuthResult::fail_with_reason(ReasonCode::QuotaExceeded, format!("{why}; retry later"))
}

/// Whether `user` is an API token's username.
pub(crate) fn is_token(user: &str) -> bool {
    user.starts_with(TOKEN_USERNAME_PREFIX)
}

/// If `user` is an edge's username (`edge:<id>`), the `<id>` (valid or not).
pub(crate) fn edge_of(user: &str) -> Option<&str> {
    user.strip_prefix(EDGE_USERNAME_PREFIX)
}

/// Whether `user` is a device's username (neither a token's nor an edge's).
pub(crate) fn is_device_user(user: &str) -> bool {
    !is_token(user) && edge_of(user).is_none()
}

/// Whether edge `edge` may publish to `topic` or subscribe to `filter`: only under
/// `edges/<edge>/`. The edge id holds no wildcard characters, so a filter that starts with
/// this literal prefix cannot reach another edge's topics (nor a device's).
pub fn edge_may_use(edge: &str, topic_or_filter: &str) -> bool {
    strictly_under(topic::EDGES, edge, topic_or_filter)
}

/// Whether edge `edge` may publish to `topic`: under `edges/<edge>/`, but not on what the
/// cloud sends it (`edges/<edge>/down/...`).
pub fn edge_may_publish(edge: &str, topic: &str) -> bool {
    edge_may_use(edge, topic) && !topic[topic::EDGES.len() + edge.len() + 2..].starts_with("down/")
}

/// Whether edge `edge` may subscribe to `filter`: exactly `edges/<edge>/down/resync`,
/// `edges/<edge>/down/commands` or `edges/<edge>/down/twins`.
pub fn edge_may_subscribe(edge: &str, filter: &str) -> bool {
    filter
        .strip_prefix(topic::EDGES)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(edge))
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|tail| {
            [
                topic::DOWNLINK_RESYNC,
                topic::DOWNLINK_COMMANDS,
                topic::DOWNLINK_TWINS,
            ]
            .contains(&tail)
        })
}

/// Whether `topic` is `<root>/<id>/` followed by at least one character.
fn strictly_under(root: &str, id: &str, topic: &str) -> bool {
    topic
        .strip_prefix(root)
        .and_then(|t| t.strip_prefix('/'))
        .and_then(|t| t.strip_prefix(id))
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// Whether `device` may publish to `topic`: only under `devices/<device>/`, and of its command
/// and twin topics only the replies (`commands/<cid>/reply`) and `twin/reported`: what the
/// node publishes to it (`commands/<cid>`, `twin/desired`, retained) it cannot forge.
pub fn may_publish(device: &str, topic: &str) -> bool {
    let Some(tail) = topic
        .strip_prefix(topic::DEVICES)
        .and_then(|t| t.strip_prefix('/'))
        .and_then(|t| t.strip_prefix(device))
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|tail| !tail.is_empty())
    else {
        return false;
    };
    match tail.split('/').next() {
        Some(topic::COMMANDS | topic::TWIN) => matches!(
            topic::exchange(topic),
            Some((_, topic::Exchange::Reply(_) | topic::Exchange::Reported))
        ),
        _ => true,
    }
}

/// Whether `device` may subscribe to `filter`: only its own `devices/<device>/commands/...`
/// and `devices/<device>/twin/desired`. The device id holds no wildcard characters, so a
/// filter that starts with this literal prefix cannot reach another device's topics.
pub fn may_subscribe(device: &str, filter: &str) -> bool {
    let own = format!("{}/{device}/{}", topic::DEVICES, topic::COMMANDS);
    filter == own
        || filter
            .strip_prefix(&own)
            .is_some_and(|r| r.starts_with('/'))
        || filter == format!("{}/{device}/{}/desired", topic::DEVICES, topic::TWIN)
}

impl AuthProvider for DeviceAuth {
    fn authenticate<'a>(
        &'a self,
        connect: &'a ConnectPacket,
        client_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = mqtt5::Result<AuthResult>> + Send + 'a>> {
        Box::pin(async move {
            // Before the credential is checked: a revocation racing with the check is seen.
            let ticket = self.clients.ticket(connect.username.as_deref());
            let Some(user) = connect.username.as_deref() else {
                Counters::bump(&self.counters.auth_failures);
                warn!(%client_addr, client_id = ?connect.client_id, "MQTT connect refused: no username (anonymous access is off)");
                return Ok(AuthResult::fail_with_reason(
                    ReasonCode::NotAuthorized,
                    "anonymous access is off: connect with username = device id and password = its secret",
                ));
            };
            // An address that failed too often is refused before its credential is checked.
            if let Err((left, report)) = self.limits.auth.check(client_addr.ip(), Instant::now()) {
                if let Some(r) = report {
                    warn!(%client_addr, refused = r.events, backoff = ?r.blocked_for,
                        "MQTT connects from this address refused for a while: too many failed logins (mqtt.limits.max_auth_failures)");
                }
                return Ok(AuthResult::fail_with_reason(
                    ReasonCode::QuotaExceeded,
                    format!(
                        "too many failed logins from this address; retry in {} s",
                        left.as_secs().max(1)
                    ),
                ));
            }
            let password = connect
                .password
                .as_deref()
                .and_then(|p| std::str::from_utf8(p).ok())
                .unwrap_or("");
            // One check per kind of identity; the username of a refused device is not logged:
            // an unknown one may be a secret typed in the wrong field.
            let (verified, refusal) = if is_token(user) {
                (
                    self.tokens.verify_token(user, password).is_some(),
                    "unknown or revoked token, or wrong password",
                )
            } else if let Some(edge) = edge_of(user) {
                (
                    EdgeId::parse(edge).is_ok_and(|e| self.edges.verify_edge(&e, password)),
                    "unknown edge or wrong secret",
                )
            } else {
                // A user name that is not a device id names no device.
                (
                    DeviceId::parse(user).is_ok_and(|d| self.registry.verify_secret(&d, password)),
                    "unknown device or wrong secret",
                )
            };
            if verified {
                return Ok(admit(
                    &self.clients,
                    &self.limits,
                    ticket,
                    connect,
                    client_addr,
                    Some(user),
                ));
            }
            Ok(self.refuse_credential(user, client_addr, refusal))
        })
    }

    fn authorize_publish<'a>(
        &'a self,
        client_id: &str,
        user_id: Option<&'a str>,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        // While the store is full, telemetry from an MQTT 5 client is refused here: this is the
        // only hook whose refusal becomes an error PUBACK (reason 0x87). A 3.1.1 client's PUBACK
        // cannot carry a refusal, so its publish goes on to the tap, which holds the PUBACK
        // until the points are stored (see tap.rs).
        if self.ingest.storage_full()
            && topic::telemetry_device(topic).is_some()
            && self.clients.protocol(client_id) == Some("5.0")
        {
            self.ingest.count_storage_refusal();
            warn!(
                client_id,
                topic, "publish refused: the store is full (no space left on its disk)"
            );
            return Box::pin(std::future::ready(false));
        }
        if let Some(user) = user_id.filter(|u| is_token(u)) {
            let ok = self
                .tokens
                .token_acl(user)
                .is_some_and(|rules| acl::may_publish(&rules, topic));
            if !ok {
                Counters::bump(&self.counters.publish_denied);
                warn!(
                    user,
                    topic, "publish refused: outside the token's ACL (or the token was revoked)"
                );
            }
            return Box::pin(std::future::ready(ok));
        }
        if let Some(edge) = user_id.and_then(edge_of) {
            let ok = edge_may_publish(edge, topic);
            return Box::pin(std::future::ready(
                self.edge_acl(edge, topic, "publish", ok),
            ));
        }
        Box::pin(self.authorize(
            user_id,
            topic,
            may_publish,
            &self.counters.publish_denied,
            move |device| {
            format!(
                "publish to {topic:?} refused: a device may publish only under devices/{device}/ (of its commands/ and twin/ topics only commands/<id>/reply and twin/reported)"
            )
        }))
    }

    fn authorize_subscribe<'a>(
        &'a self,
        _client_id: &str,
        user_id: Option<&'a str>,
        topic_filter: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        if let Some(user) = user_id.filter(|u| is_token(u)) {
            let ok = self
                .tokens
                .token_acl(user)
                .is_some_and(|rules| acl::may_subscribe(&rules, topic_filter));
            if !ok {
                Counters::bump(&self.counters.subscribe_denied);
                warn!(
                    user,
                    filter = topic_filter,
                    "subscribe refused: outside the token's ACL (or the token was revoked)"
                );
            }
            return Box::pin(std::future::ready(ok));
        }
        if let Some(edge) = user_id.and_then(edge_of) {
            let ok = edge_may_subscribe(edge, topic_filter);
            return Box::pin(std::future::ready(self.edge_acl(
                edge,
                topic_filter,
                "subscribe",
                ok,
            )));
        }
        Box::pin(self.authorize(
            user_id,
            topic_filter,
            may_subscribe,
            &self.counters.subscribe_denied,
            move |device| {
            format!(
                "subscribe to {topic_filter:?} refused: a device may subscribe only to devices/{device}/commands/# and devices/{device}/twin/desired"
            )
        }))
    }
}

impl DeviceAuth {
    /// An edge's ACL (`ok`: [`edge_may_publish`], [`edge_may_subscribe`]); a refusal is
    /// counted and logged.
    fn edge_acl(&self, edge: &str, topic: &str, what: &str, ok: bool) -> bool {
        if ok {
            return true;
        }
        let denied = match what {
            "publish" => &self.counters.publish_denied,
            _ => &self.counters.subscribe_denied,
        };
        Counters::bump(denied);
        warn!(
            edge,
            topic,
            "{what} refused: an edge may publish only under edges/{edge}/up/... and subscribe only to edges/{edge}/down/resync, down/commands and down/twins"
        );
        false
    }

    /// Applies an ACL rule; a refusal is recorded on the device with `reason`.
    async fn authorize(
        &self,
        user_id: Option<&str>,
        topic: &str,
        allowed: fn(&str, &str) -> bool,
        denied: &AtomicU64,
        reason: impl FnOnce(&str) -> String,
    ) -> bool {
        let Some(device) = user_id else { return false };
        if allowed(device, topic) {
            return true;
        }
        Counters::bump(denied);
        let reason = reason(device);
        match DeviceId::parse(device) {
            Ok(id) => self.ingest.reject(&id, &reason).await,
            // Not a device id: there is no device to record the refusal on.
            Err(_) => warn!(user = device, reason, "refused"),
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_acl() {
        for (edge, t, ok) in [
            ("e1", "edges/e1/up/points", true),
            ("e1", "edges/e1/#", true),
            ("e1", "edges/e1/", false),
            ("e1", "edges/e1", false),
            ("e1", "edges/e10/up/points", false),
            ("e1", "edges/e2/up/points", false),
            ("e1", "edges/+/up/points", false),
            ("e1", "devices/e1/telemetry", false),
            ("e1", "#", false),
            ("e1", "$share/g/edges/e1/#", false),
        ] {
            assert_eq!(edge_may_use(edge, t), ok, "{edge} {t}");
        }
        for (t, publish, subscribe) in [
            ("edges/e1/up/points", true, false),
            ("edges/e1/down/resync", false, true),
            ("edges/e1/down/commands", false, true),
            ("edges/e1/down/twins", false, true),
            ("edges/e2/down/twins", false, false),
            ("edges/e2/down/commands", false, false),
            ("edges/e1/down/commands/#", false, false),
            ("edges/e1/down/other", false, false),
            ("edges/e1/#", true, false),
            ("edges/e1/down/#", false, false),
            ("edges/e1/down/+", false, false),
            ("edges/e2/down/resync", false, false),
            ("edges/e10/down/resync", false, false),
        ] {
            assert_eq!(edge_may_publish("e1", t), publish, "publish {t}");
            assert_eq!(edge_may_subscribe("e1", t), subscribe, "subscribe {t}");
        }
        assert_eq!(edge_of("edge:e1"), Some("e1"));
        assert!(!is_device_user("edge:e1") && !is_device_user("token:x"));
        assert!(is_device_user("pump-1"));
    }

    #[test]
    fn acl() {
        for (dev, t, ok) in [
            ("d1", "devices/d1/telemetry", true),
            ("d1", "devices/d1/status/x", true),
            ("d1", "devices/d1", false),
            ("d1", "devices/d1/", false),
            ("d1", "devices/d10/telemetry", false),
            ("d1", "devices/d2/telemetry", false),
            ("d1", "other/d1/telemetry", false),
            ("d1", "devices/d1/commands/c-1/reply", true),
            ("d1", "devices/d1/twin/reported", true),
            ("d1", "devices/d1/commands/c-1", false),
            ("d1", "devices/d1/commands", false),
            ("d1", "devices/d1/commands/c-1/reply/x", false),
            ("d1", "devices/d1/twin/desired", false),
            ("d1", "devices/d1/twin", false),
            ("d1", "devices/d1/twin/other", false),
            ("d1", "devices/d2/commands/c-1/reply", false),
            ("d1", "devices/d2/twin/reported", false),
        ] {
            assert_eq!(may_publish(dev, t), ok, "publish {dev} {t}");
        }
        for (dev, f, ok) in [
            ("d1", "devices/d1/commands/#", true),
            ("d1", "devices/d1/commands", true),
            ("d1", "devices/d1/commands/led", true),
            ("d1", "devices/d1/#", false),
            ("d1", "devices/+/commands/#", false),
            ("d1", "devices/d1/commandsX", false),
            ("d1", "#", false),
            ("d1", "$share/g/devices/d1/commands/#", false),
            ("d1", "devices/d1/twin/desired", true),
            ("d1", "devices/d1/twin/#", false),
            ("d1", "devices/d1/twin/reported", false),
            ("d1", "devices/d2/twin/desired", false),
            ("d1", "devices/+/twin/desired", false),
        ] {
            assert_eq!(may_subscribe(dev, f), ok, "subscribe {dev} {f}");
        }
    }
}
