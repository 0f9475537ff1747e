//! Mutual TLS on the MQTT over TLS listener (`serve --tls-client-ca FILE`): a device may present
//! a client certificate signed by the configured CA whose subject CN is its device id instead of
//! sending its secret.
//!
//! mqtt5's own TLS listener can verify client certificates, but its auth step never sees them
//! (its certificate provider trusts a `cert:<fingerprint>` client id), so with a client CA
//! Sentio runs this listener itself: rustls verifies the chain during the handshake (a
//! certificate from another CA fails the handshake), the leaf's CN is read, and the connection
//! is handed to mqtt5's `ClientHandler` with an auth provider made for that one connection
//! ([`CertAuth`]), which knows the verified CN. No table from addresses to names: nothing another
//! connection could spoof. A client that presents no certificate authenticates with its
//! password as before.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mqtt5::broker::auth::{AuthProvider, AuthResult, EnhancedAuthResult};
use mqtt5::broker::tls_acceptor::TlsStreamWrapper;
use mqtt5::broker::transport::BrokerTransport;
use mqtt5::packet::connect::ConnectPacket;
use mqtt5::types::ReasonCode;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sentio_store::DeviceRegistry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::BrokerError;
use crate::accept::Acceptor;
use crate::auth::{admit, is_token};
use crate::clients::Clients;
use crate::counters::Counters;
use crate::limits::LimitState;
use crate::tls::TlsFiles;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_error(path: &Path, why: impl std::fmt::Display) -> BrokerError {
    BrokerError::Tls(format!("{}: {why}", path.display()))
}

/// The rustls server configuration: the listener's certificate, and client certificates
/// verified against the CAs in `client_ca` (optional for the client, checked when presented).
pub(crate) fn server_config(
    files: &TlsFiles,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, BrokerError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&files.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_error(&files.key, e))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca).map_err(|e| tls_error(client_ca, e))? {
        let ca = ca.map_err(|e| tls_error(client_ca, e))?;
        roots
            .add(ca)
            .map_err(|e| tls_error(client_ca, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_error(client_ca, "no CA certificate in the file"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_error(client_ca, e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(&files.cert, e))?;
    // As mqtt5's own listener: clients that ask for ALPN must ask for "mqtt".
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(Arc::new(config))
}

/// The subject CN of a DER certificate, if it has exactly one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = cert.subject().iter_common_name();
    let cn = names.next()?.as_str().ok()?.to_string();
    names.next().is_none().then_some(cn)
}

/// What each connection's [`CertAuth`] needs.
#[derive(Clone)]
pub(crate) struct CertAuthContext {
    pub base: Arc<dyn AuthProvider>,
    pub registry: Arc<dyn DeviceRegistry>,
    pub clients: Arc<Clients>,
    pub counters: Arc<Counters>,
    pub limits: Arc<LimitState>,
}

/// The mutual-TLS listener, bound and ready to run.
pub(crate) struct MtlsListener {
    pub listener: TcpListener,
    pub config: Arc<ServerConfig>,
    pub auth: CertAuthContext,
}

impl MtlsListener {
    /// Accepts connections until the task is dropped; each runs in its own task.
    pub(crate) async fn run(self, acceptor: Arc<Acceptor>) {
        let tls = TlsAcceptor::from(self.config);
        let mut backoff = mqtt5::broker::accept_backoff::AcceptBackoff::default();
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => {
                    backoff.succeeded();
                    c
                }
                Err(e) => {
                    backoff.failed("MQTT over TLS", &e).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (tls, acceptor, auth) = (tls.clone(), acceptor.clone(), self.auth.clone());
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        warn!(%peer, error = %e, "MQTT over TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, "MQTT over TLS handshake timed out");
                        return;
                    }
                };
                let device = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| common_name(leaf).ok_or(()));
                let provider: Arc<dyn AuthProvider> = Arc::new(CertAuth {
                    device,
                    ctx: auth.clone(),
                });
                acceptor
                    .serve(
                        BrokerTransport::tls(TlsStreamWrapper::new(stream)),
                        peer,
                        provider,
                    )
                    .await;
            });
        }
    }
}

/// Aborts the accept loop's task when dropped.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The auth provider of one mutual-TLS connection.
struct CertAuth {
    /// `None`: no client certificate (password auth); `Some(Err)`: a verified certificate
    /// without a single CN; `Some(Ok(cn))`: the verified CN.
    device: Option<Result<String, ()>>,
    ctx: CertAuthContext,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl CertAuth {
    fn refuse(&self, client_addr: SocketAddr, why: String) -> mqtt5::Result<AuthResult> {
        Counters::bump(&self.ctx.counters.auth_failures);
        warn!(%client_addr, "MQTT connect refused: {why}");
        Ok(AuthResult::fail_with_reason(ReasonCode::NotAuthorized, why))
    }
}

impl AuthProvider for CertAuth {
    fn authenticate<'a>(
        &'a self,
        connect: &'a ConnectPacket,
        client_addr: SocketAddr,
    ) -> Boxed<'a, mqtt5::Result<AuthResult>> {
        let device = match &self.device {
            None => return self.ctx.base.authenticate(connect, client_addr),
            Some(Err(())) => {
                return Box::pin(std::future::ready(self.refuse(
                    client_addr,
                    "not authorized: the client certificate has no single CN".into(),
                )));
            }
            Some(Ok(cn)) => cn,
        };
        // Before the registry is asked: a deletion racing with it is seen.
        let ticket = self.ctx.clients.ticket(Some(device));
        let result = if connect.username.as_deref().is_some_and(|u| u != device) {
            self.refuse(
                client_addr,
                format!(
                    "not authorized: the username is not the certificate's CN {device:?} (leave it out or send the same)"
                ),
            )
        } else if is_token(device)
            || !sentio_core::DeviceId::parse(device)
                .is_ok_and(|d| self.ctx.registry.is_registered(&d))
        {
            self.refuse(
                client_addr,
                format!(
                    "not authorized: the certificate's CN {device:?} is not a registered device"
                ),
            )
        } else {
            debug!(%client_addr, device, "MQTT client authenticated by its certificate");
            Ok(admit(
                &self.ctx.clients,
                &self.ctx.limits,
                ticket,
                connect,
                client_addr,
                Some(device),
            ))
        };
        Box::pin(std::future::ready(result))
    }

    fn authorize_publish<'a>(
        &'a self,
        client_id: &str,
        user_id: Option<&'a str>,
        topic: &'a str,
    ) -> Boxed<'a, bool> {
        self.ctx.base.authorize_publish(client_id, user_id, topic)
    }

    fn authorize_subscribe<'a>(
        &'a self,
        client_id: &str,
        user_id: Option<&'a str>,
        topic_filter: &'a str,
    ) -> Boxed<'a, bool> {
        self.ctx
            .base
            .authorize_subscribe(client_id, user_id, topic_filter)
    }

    fn supports_enhanced_auth(&self) -> bool {
        self.ctx.base.supports_enhanced_auth()
    }

    fn authenticate_enhanced<'a>(
        &'a self,
        auth_method: &'a str,
        auth_data: Option<&'a [u8]>,
        client_id: &'a str,
    ) -> Boxed<'a, mqtt5::Result<EnhancedAuthResult>> {
        self.ctx
            .base
            .authenticate_enhanced(auth_method, auth_data, client_id)
    }

    fn reauthenticate<'a>(
        &'a self,
        auth_method: &'a str,
        auth_data: Option<&'a [u8]>,
        client_id: &'a str,
        user_id: Option<&'a str>,
    ) -> Boxed<'a, mqtt5::Result<EnhancedAuthResult>> {
        self.ctx
            .base
            .reauthenticate(auth_method, auth_data, client_id, user_id)
    }

    fn cleanup_session<'a>(&'a self, user_id: &'a str) -> Boxed<'a, ()> {
        self.ctx.base.cleanup_session(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pump-7");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("pump-7"));

        let mut none = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        none.distinguished_name = rcgen::DistinguishedName::new();
        let cert = none.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), None);
        assert_eq!(common_name(b"not a certificate"), None);
    }
}
