//! Image references, sizes, digests and the rule that decides which images cannot exist.
//!
//! References are normalized as containerd does (docker's `ParseNormalizedNamed` +
//! `TagNameOnly`): `nginx` is `docker.io/library/nginx:latest`, `user/app:v1` is
//! `docker.io/user/app:v1`, a first component with a `.` or `:` (or `localhost`) is a
//! registry host.
//!
//! The simulation rules (also in `docs/nodes.md`):
//! * an image whose reference contains `doesnotexist` or `nonexistent` (any part: registry,
//!   repository or tag) is not found in its registry: the pull fails, and the kubelet reports
//!   `ErrImagePull`, then `ImagePullBackOff`;
//! * an image's size comes from [`DEFAULT_IMAGE_SIZES`] by repository (overridable in
//!   `[runtime] image_sizes`), else `[runtime] default_image_size_mb`;
//! * digests are stable per reference (a hash of the name, not of content).

use std::hash::{Hash, Hasher};

/// Words that make an image reference unpullable (see the module docs).
pub const MISSING_IMAGE_WORDS: [&str; 2] = ["doesnotexist", "nonexistent"];

/// Approximate compressed sizes, in megabytes, of well-known images (by repository, without
/// registry or tag). Used to simulate pull times; `[runtime] image_sizes` overrides entries.
pub const DEFAULT_IMAGE_SIZES: &[(&str, f64)] = &[
    ("registry.k8s.io/pause", 0.3),
    ("library/busybox", 2.2),
    ("library/alpine", 3.6),
    ("library/nginx", 72.0),
    ("library/httpd", 58.0),
    ("library/redis", 45.0),
    ("library/memcached", 35.0),
    ("library/postgres", 150.0),
    ("library/mysql", 170.0),
    ("library/mongo", 250.0),
    ("library/ubuntu", 29.0),
    ("library/debian", 49.0),
    ("library/python", 380.0),
    ("library/node", 390.0),
    ("library/golang", 300.0),
    ("library/traefik", 48.0),
    ("curlimages/curl", 9.0),
    ("registry.k8s.io/e2e-test-images/agnhost", 50.0),
];

/// The sandbox (pause) image every pod sandbox runs.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Why a reference cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// Not a valid reference (empty, spaces, upper case in the repository…): upstream's
    /// `InvalidImageName`.
    #[error("couldn't parse image name {0:?}: invalid reference format")]
    InvalidFormat(String),
}

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host, e.g. `docker.io`.
    pub domain: String,
    /// Repository path within the registry, e.g. `library/nginx`.
    pub path: String,
    /// The tag (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// `sha256:…` when the reference pins a digest.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parse and normalize a reference as written in a pod spec.
    pub fn parse(image: &str) -> Result<ImageRef, ImageRefError> {
        let bad = || ImageRefError::InvalidFormat(image.to_string());
        if image.is_empty() || image.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) if d.starts_with("sha256:") && d.len() > 7 => (r, Some(d.to_string())),
            Some(_) => return Err(bad()),
            None => (image, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(bad());
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let path_ok = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
            });
        if !path_ok {
            return Err(bad());
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/nginx` (registry and repository).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as the size table keys it: `library/nginx` on Docker Hub, else with the
    /// registry (`registry.k8s.io/pause`).
    pub fn table_key(&self) -> String {
        if self.domain == "docker.io" {
            self.path.clone()
        } else {
            self.repository()
        }
    }

    /// The full normalized reference: `docker.io/library/nginx:1.27` (or `…@sha256:…`).
    pub fn normalized(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("{}@{d}", self.repository()),
            (Some(t), None) => format!("{}:{t}", self.repository()),
            (None, None) => self.repository(),
        }
    }

    /// The content digest the registry would report for this reference (stable per name).
    pub fn content_digest(&self) -> String {
        match &self.digest {
            Some(d) => d.clone(),
            None => format!("sha256:{}", hex_digest(&self.normalized())),
        }
    }

    /// The repo digest (`docker.io/library/nginx@sha256:…`): what `imageID` shows.
    pub fn repo_digest(&self) -> String {
        format!("{}@{}", self.repository(), self.content_digest())
    }

    /// Whether the simulation treats this image as absent from its registry.
    pub fn is_missing(&self) -> bool {
        let text = self.normalized().to_ascii_lowercase();
        MISSING_IMAGE_WORDS.iter().any(|w| text.contains(w))
    }
}

/// 64 hex characters derived from `text` (not a cryptographic hash; stable within a build).
pub fn hex_digest(text: &str) -> String {
    let mut out = String::with_capacity(64);
    for seed in 0u64..4 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        text.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A random 64-hex id, as containerd gives containers and sandboxes (`util.GenerateID`:
/// 32 random bytes, hex-encoded). The bytes come from the thread's CSPRNG (`rand::rng()`),
/// not a `getrandom` system call per id.
pub fn random_id() -> String {
    let (high, low): (u128, u128) = rand::random();
    format!("{high:032x}{low:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_64_lowercase_hex_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 64, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        // Every nibble value shows up: the encoding covers the whole byte.
        let seen: std::collections::HashSet<char> = ids.iter().flat_map(|i| i.chars()).collect();
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn references_are_normalized_like_containerd() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            (
                "nginx@sha256:0123456789abcdef",
                "docker.io/library/nginx@sha256:0123456789abcdef",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                ImageRef::parse(input).unwrap().normalized(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_references_are_invalid() {
        for bad in ["", "Nginx", "nginx:", "ng inx", "nginx@md5:x", "a//b"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn the_missing_image_rule_looks_at_every_part() {
        for missing in [
            "nginx:doesnotexist",
            "nonexistent/app",
            "example.com/team/doesnotexist:1",
        ] {
            assert!(ImageRef::parse(missing).unwrap().is_missing(), "{missing}");
        }
        assert!(!ImageRef::parse("nginx:1.27").unwrap().is_missing());
    }

    #[test]
    fn digests_are_stable_and_image_ids_name_the_repository() {
        let a = ImageRef::parse("nginx:1.27").unwrap();
        assert_eq!(a.content_digest(), a.content_digest());
        assert!(a
            .repo_digest()
            .starts_with("docker.io/library/nginx@sha256:"));
        assert_eq!(a.content_digest().len(), "sha256:".len() + 64);
    }
}
