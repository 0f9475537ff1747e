//! The MQTT over TLS listener's certificate: the one the user configured, or a self-signed one
//! generated on first start (and reused afterwards), identified in the log by its SHA-256
//! fingerprint so that clients can pin or check it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tracing::{info, warn};

use crate::BrokerError;

/// Default MQTT over TLS address.
pub const DEFAULT_TLS_LISTEN: &str = "0.0.0.0:8883";

/// How to run the TLS listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// TLS listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// A PEM certificate chain and its PEM private key; both or neither.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Where the self-signed certificate is generated (and found again) when none is given.
    pub generated_dir: PathBuf,
    /// PEM CA certificate(s) for mutual TLS: a client certificate signed by one of them, whose
    /// CN is a registered device id, authenticates as that device (see `mtls`). `None`: no
    /// client certificates, password authentication only.
    pub client_ca: Option<PathBuf>,
}

/// The certificate files the listener uses.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the leaf certificate (DER), as colon-separated hex.
    pub fingerprint: String,
}

const CERT_FILE: &str = "mqtt-cert.pem";
const KEY_FILE: &str = "mqtt-key.pem";

fn tls_error(path: &Path, why: impl std::fmt::Display) -> BrokerError {
    BrokerError::Tls(format!("{}: {why}", path.display()))
}

/// SHA-256 of a DER certificate, `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn leaf_fingerprint(cert: &Path) -> Result<String, BrokerError> {
    let leaf = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_error(cert, e))?
        .next()
        .ok_or_else(|| tls_error(cert, "no certificate in the file"))?
        .map_err(|e| tls_error(cert, e))?;
    Ok(fingerprint(&leaf))
}

/// Writes `data` to `path` readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(data)
}

/// A self-signed certificate for `localhost`, 127.0.0.1, ::1 and this host's name.
fn generate(dir: &Path) -> Result<(PathBuf, PathBuf), BrokerError> {
    std::fs::create_dir_all(dir).map_err(|e| tls_error(dir, e))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| BrokerError::Tls(format!("generating a self-signed certificate: {e}")))?;
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    write_private(&key, certified.signing_key.serialize_pem().as_bytes())
        .map_err(|e| tls_error(&key, e))?;
    std::fs::write(&cert, certified.cert.pem()).map_err(|e| tls_error(&cert, e))?;
    Ok((cert, key))
}

/// The configured certificate, or the generated one (created on first use).
pub(crate) fn prepare(settings: &TlsSettings) -> Result<TlsFiles, BrokerError> {
    let (cert, key, generated) = match &settings.cert_and_key {
        Some((cert, key)) => (cert.clone(), key.clone(), false),
        None => {
            let (cert, key) = (
                settings.generated_dir.join(CERT_FILE),
                settings.generated_dir.join(KEY_FILE),
            );
            if cert.is_file() && key.is_file() {
                (cert, key, false)
            } else {
                let (cert, key) = generate(&settings.generated_dir)?;
                (cert, key, true)
            }
        }
    };
    if !key.is_file() {
        return Err(tls_error(&key, "the private key file does not exist"));
    }
    let fingerprint = leaf_fingerprint(&cert)?;
    if generated {
        warn!(
            cert = %cert.display(),
            sha256 = %fingerprint,
            "generated a self-signed certificate for MQTT over TLS: clients must trust this file \
             (e.g. mosquitto_pub --cafile) or check this fingerprint; configure your own with \
             mqtt.tls.cert and mqtt.tls.key"
        );
    } else {
        info!(cert = %cert.display(), sha256 = %fingerprint, "MQTT over TLS certificate");
    }
    Ok(TlsFiles {
        cert,
        key,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_the_same_fingerprint_and_a_private_key() {
        let dir = std::env::temp_dir().join(format!("sentio-tls-{}", std::process::id()));
        let settings = TlsSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_and_key: None,
            generated_dir: dir.clone(),
            client_ca: None,
        };
        let first = prepare(&settings).unwrap();
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let second = prepare(&settings).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        }
        let missing = TlsSettings {
            cert_and_key: Some((dir.join("nope.pem"), first.key.clone())),
            ..settings
        };
        assert!(prepare(&missing).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
