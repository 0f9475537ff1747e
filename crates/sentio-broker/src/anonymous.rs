//! Anonymous MQTT access, only when the user turns it on (`serve --allow-anonymous`): a CONNECT
//! without a username is admitted, and may publish and subscribe only under `public/#`.
//! Everyone else goes to the wrapped provider (devices, tokens) unchanged.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use mqtt5::broker::auth::{AuthProvider, AuthResult, EnhancedAuthResult};
use mqtt5::packet::connect::ConnectPacket;
use sentio_core::acl;
use tracing::{debug, warn};

use crate::auth::admit;
use crate::clients::Clients;
use crate::counters::Counters;
use crate::limits::LimitState;

/// The only topics an anonymous client may publish to or subscribe to.
pub const ANONYMOUS_FILTER: &str = "public/#";

/// Whether an anonymous client may publish to `topic`.
pub fn may_publish(topic: &str) -> bool {
    acl::matches(ANONYMOUS_FILTER, topic)
}

/// Whether an anonymous client may subscribe to `filter` (`$share/<group>/` stripped).
pub fn may_subscribe(filter: &str) -> bool {
    acl::covers(ANONYMOUS_FILTER, acl::strip_share(filter))
}

/// Admits CONNECTs without a username, confined to [`ANONYMOUS_FILTER`].
pub(crate) struct Anonymous {
    inner: Arc<dyn AuthProvider>,
    clients: Arc<Clients>,
    counters: Arc<Counters>,
    limits: Arc<LimitState>,
}

impl Anonymous {
    pub(crate) fn new(
        inner: Arc<dyn AuthProvider>,
        clients: Arc<Clients>,
        counters: Arc<Counters>,
        limits: Arc<LimitState>,
    ) -> Self {
        Self {
            inner,
            clients,
            counters,
            limits,
        }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl AuthProvider for Anonymous {
    fn authenticate<'a>(
        &'a self,
        connect: &'a ConnectPacket,
        client_addr: SocketAddr,
    ) -> Boxed<'a, mqtt5::Result<AuthResult>> {
        if connect.username.is_some() || connect.password.is_some() {
            return self.inner.authenticate(connect, client_addr);
        }
        debug!(%client_addr, client_id = ?connect.client_id, "anonymous MQTT client (public/# only)");
        let ticket = self.clients.ticket(None);
        Box::pin(std::future::ready(Ok(admit(
            &self.clients,
            &self.limits,
            ticket,
            connect,
            client_addr,
            None,
        ))))
    }

    fn authorize_publish<'a>(
        &'a self,
        client_id: &str,
        user_id: Option<&'a str>,
        topic: &'a str,
    ) -> Boxed<'a, bool> {
        if user_id.is_some() {
            return self.inner.authorize_publish(client_id, user_id, topic);
        }
        let ok = may_publish(topic);
        if !ok {
            Counters::bump(&self.counters.publish_denied);
            warn!(
                client_id,
                topic, "publish refused: an anonymous client may publish only under public/"
            );
        }
        Box::pin(std::future::ready(ok))
    }

    fn authorize_subscribe<'a>(
        &'a self,
        client_id: &str,
        user_id: Option<&'a str>,
        topic_filter: &'a str,
    ) -> Boxed<'a, bool> {
        if user_id.is_some() {
            return self
                .inner
                .authorize_subscribe(client_id, user_id, topic_filter);
        }
        let ok = may_subscribe(topic_filter);
        if !ok {
            Counters::bump(&self.counters.subscribe_denied);
            warn!(
                client_id,
                filter = topic_filter,
                "subscribe refused: an anonymous client may subscribe only under public/#"
            );
        }
        Box::pin(std::future::ready(ok))
    }

    fn supports_enhanced_auth(&self) -> bool {
        self.inner.supports_enhanced_auth()
    }

    fn authenticate_enhanced<'a>(
        &'a self,
        auth_method: &'a str,
        auth_data: Option<&'a [u8]>,
        client_id: &'a str,
    ) -> Boxed<'a, mqtt5::Result<EnhancedAuthResult>> {
        self.inner
            .authenticate_enhanced(auth_method, auth_data, client_id)
    }

    fn reauthenticate<'a>(
        &'a self,
        auth_method: &'a str,
        auth_data: Option<&'a [u8]>,
        client_id: &'a str,
        user_id: Option<&'a str>,
    ) -> Boxed<'a, mqtt5::Result<EnhancedAuthResult>> {
        self.inner
            .reauthenticate(auth_method, auth_data, client_id, user_id)
    }

    fn cleanup_session<'a>(&'a self, user_id: &'a str) -> Boxed<'a, ()> {
        self.inner.cleanup_session(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_to_public() {
        for (topic, ok) in [
            ("public/a", true),
            ("public/a/b", true),
            ("public", true),
            ("publicx/a", false),
            ("devices/d1/telemetry", false),
            ("x/public/a", false),
        ] {
            assert_eq!(may_publish(topic), ok, "{topic}");
        }
        for (filter, ok) in [
            ("public/#", true),
            ("public/+/x", true),
            ("$share/g/public/a", true),
            ("#", false),
            ("+/a", false),
            ("devices/#", false),
        ] {
            assert_eq!(may_subscribe(filter), ok, "{filter}");
        }
    }
}
