//! HTTPS for the API and the page: the rustls server configuration built from a PEM
//! certificate chain and its key (the node hands over the MQTT over TLS certificate, configured
//! or generated, so there is one certificate to trust).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the HTTPS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// A certificate or key file is missing or unreadable, or holds nothing usable.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the certificate and key together.
    #[error("the HTTPS certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> HttpsError {
    HttpsError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// The HTTPS certificate: a PEM chain and its PEM private key.
#[derive(Debug, Clone)]
pub struct HttpsCertificate {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
}

impl HttpsCertificate {
    /// Reads both files into the TLS settings of the HTTPS listener (HTTP/1.1 only, rustls
    /// with the ring provider).
    pub fn load(&self) -> Result<HttpsConfig, HttpsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| file_error(&self.cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_error(&self.cert, e))?;
        if chain.is_empty() {
            return Err(file_error(&self.cert, "no certificate in the file"));
        }
        let leaf = chain[0].to_vec();
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| file_error(&self.key, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| HttpsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsConfig {
            server: Arc::new(config),
            leaf,
        })
    }
}

/// The loaded TLS settings of the HTTPS listener.
#[derive(Clone)]
pub struct HttpsConfig {
    pub(crate) server: Arc<ServerConfig>,
    leaf: Vec<u8>,
}

impl HttpsConfig {
    /// The leaf certificate (DER), e.g. to log or compare its fingerprint.
    pub fn leaf(&self) -> &[u8] {
        &self.leaf
    }
}

impl std::fmt::Debug for HttpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpsConfig")
    }
}
