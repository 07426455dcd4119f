//! Bearer-token authentication and the kubeconfig that carries the token to kubectl.
//!
//! kubectl sends the token only to an `https://` server, so with the defaults the API is
//! served over TLS ([`super::tls`]) and the kubeconfig trusts its certificate.
//!
//! One static token (kube-apiserver's `--token-auth-file`, reduced to a single user): created
//! on first start as 32 random bytes in hex, kept in `<data-dir>/token` with mode 0600, and
//! written into `<data-dir>/kubeconfig` (also 0600, since it holds the token). A request
//! without it, or with another token, is answered 401 `Unauthorized`; the health endpoints
//! and `/version` stay open, as kube-apiserver's `system:public-info-viewer` allows.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The token file in the data directory.
pub const TOKEN_FILE: &str = "token";
/// The kubeconfig file in the data directory.
pub const KUBECONFIG_FILE: &str = "kubeconfig";
/// The cluster, user and context name in the kubeconfig.
pub const CONTEXT: &str = "kubeactor";

/// Paths served without a token.
pub fn is_public(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// Does the `Authorization` header carry `token`? Compared in constant time.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Write `contents` to `path` readable by the owner only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The token in `data_dir`, created on first use.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// The URL clients use for a listening address (a wildcard address becomes loopback).
pub fn server_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{ip}:{}", addr.port())
}

/// The kubeconfig for `server` (cluster trusting `ca_pem` if given, user with the token,
/// context `kubeactor`).
pub fn kubeconfig(server: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = match ca_pem {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        None => String::new(),
    };
    let user = match token {
        Some(t) => format!("  user:\n    token: {t}\n"),
        None => "  user: {}\n".to_string(),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {CONTEXT}\n  cluster:\n{ca}    server: {server}\n\
         users:\n\
         - name: {CONTEXT}\n{user}\
         contexts:\n\
         - name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\n\
         current-context: {CONTEXT}\n\
         preferences: {{}}\n"
    )
}

/// Write the kubeconfig into `data_dir`; returns its path.
pub fn write_kubeconfig(
    data_dir: &Path,
    server: &str,
    ca_pem: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(KUBECONFIG_FILE);
    write_private(&path, kubeconfig(server, ca_pem, token).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        assert!(authorized(Some("Bearer abc"), "abc"));
        assert!(!authorized(Some("Bearer abd"), "abc"));
        assert!(!authorized(Some("Bearer ab"), "abc"));
        assert!(!authorized(Some("Basic abc"), "abc"));
        assert!(!authorized(None, "abc"));
    }

    #[test]
    fn health_and_version_are_public_and_the_api_is_not() {
        for p in ["/healthz", "/livez", "/readyz", "/version", "/readyz/ping"] {
            assert!(is_public(p), "{p}");
        }
        for p in ["/api", "/apis", "/api/v1/pods", "/openapi/v3", "/versionx"] {
            assert!(!is_public(p), "{p}");
        }
    }

    #[test]
    fn the_token_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t1 = load_or_create_token(dir.path()).unwrap();
        let t2 = load_or_create_token(dir.path()).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(t1.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_kubeconfig_is_valid_yaml_with_one_context() {
        let text = kubeconfig("https://127.0.0.1:6443", Some("PEM"), Some("t0k"));
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "kubeactor");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(v["users"][0]["user"]["token"], "t0k");
        let open = kubeconfig("http://127.0.0.1:1", None, None);
        let v: serde_yaml::Value = serde_yaml::from_str(&open).unwrap();
        assert!(v["users"][0]["user"].as_mapping().unwrap().is_empty());
        assert_eq!(
            server_url("0.0.0.0:80".parse().unwrap(), false),
            "http://127.0.0.1:80"
        );
        assert_eq!(
            server_url("[::]:1".parse().unwrap(), true),
            "https://[::1]:1"
        );
    }
}
