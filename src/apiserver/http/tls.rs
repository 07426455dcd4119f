//! TLS for the HTTP API.
//!
//! kubectl (client-go's `clientcmd`) reads a kubeconfig user's credentials only when the
//! server URL is `https://`: over plain HTTP it silently sends no token. So token auth needs
//! TLS, as kube-apiserver always serves it. On first start a self-signed serving certificate
//! (ECDSA P-256, names `localhost`, `127.0.0.1`, `::1` and the listen address) is made and
//! kept in the data directory (`apiserver.crt`, `apiserver.key` with mode 0600); the
//! kubeconfig trusts exactly that certificate (`certificate-authority-data`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The serving certificate in the data directory.
pub const CERT_FILE: &str = "apiserver.crt";
/// Its private key (mode 0600).
pub const KEY_FILE: &str = "apiserver.key";

/// A serving certificate and key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot generate the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate or key in the data directory: {0}")]
    Pem(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The names a new certificate is valid for.
fn subject_alt_names(listen: Option<SocketAddr>) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(ip) = listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()) {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// A new self-signed serving certificate.
pub fn generate(listen: Option<SocketAddr>) -> Result<TlsIdentity, TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(subject_alt_names(listen))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubeactor-apiserver");
    let cert = params.self_signed(&key)?;
    Ok(TlsIdentity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The certificate in `data_dir`, made on first use.
pub fn load_or_create(
    data_dir: &Path,
    listen: Option<SocketAddr>,
) -> Result<TlsIdentity, TlsError> {
    let (cert_path, key_path) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
    if cert_path.exists() && key_path.exists() {
        return Ok(TlsIdentity {
            cert_pem: std::fs::read_to_string(cert_path)?,
            key_pem: std::fs::read_to_string(key_path)?,
        });
    }
    std::fs::create_dir_all(data_dir)?;
    let id = generate(listen)?;
    super::auth::write_private(&key_path, id.key_pem.as_bytes())?;
    super::auth::write_private(&cert_path, id.cert_pem.as_bytes())?;
    Ok(id)
}

/// The rustls server configuration for an identity (ring provider, TLS 1.2 and 1.3).
pub fn server_config(id: &TlsIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_made_once_and_loads_into_rustls() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), Some("0.0.0.0:6443".parse().unwrap())).unwrap();
        let b = load_or_create(dir.path(), None).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem);
        assert!(a.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&a).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_specific_listen_address_is_among_the_names() {
        let names = subject_alt_names(Some("10.1.2.3:6443".parse().unwrap()));
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "10.1.2.3"]);
        assert_eq!(
            subject_alt_names(Some("0.0.0.0:1".parse().unwrap())).len(),
            3
        );
    }
}
