//! Whom the uplink trusts when it speaks MQTT over TLS (`mqtts://`): the cloud's CA or its
//! own (self-signed) certificate from a PEM file, pinned, or else the public CAs. rustls
//! with the ring provider; the server name is the upstream URL's host.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::SettingsError;

/// The TLS client configuration: only the certificates in `ca_file` when given (a cloud's
/// self-signed certificate is trusted this way), the webpki roots otherwise.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, SettingsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |why: String| SettingsError::CaFile(format!("{}: {why}", path.display()));
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingsError::CaFile(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("sentio-edge-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let missing = client_config(Some(&dir.join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.pem"), "{missing}");
        assert!(client_config(None).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
