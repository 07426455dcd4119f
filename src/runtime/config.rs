//! `[runtime]`: simulated durations and image sizes of the container runtime.

use std::time::Duration;

use serde::Deserialize;

use super::images::{ImageRef, DEFAULT_IMAGE_SIZES};

/// `[runtime]`. Every duration is simulated (multiplied out by `[simulation] speed`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Image download bandwidth, megabytes per simulated second.
    pub pull_bandwidth_mb_per_second: f64,
    /// Size of an image that is in neither table, in megabytes.
    pub default_image_size_mb: f64,
    /// Sizes that add to or override the built-in table (`{ image = "myapp", mb = 300 }`).
    pub image_sizes: Vec<ImageSize>,
    /// Resolving a reference with its registry (before every pull, and for `Always` on an
    /// image already present), seconds.
    pub registry_check_seconds: f64,
    /// Creating a pod sandbox (pause container + network), seconds.
    pub run_sandbox_seconds: f64,
    /// Creating a container, seconds.
    pub create_container_seconds: f64,
    /// Starting a created container, seconds.
    pub start_container_seconds: f64,
    /// How long a server takes to exit after SIGTERM, seconds.
    pub stop_container_seconds: f64,
    /// Images present on every node from the start (no pull needed).
    pub preloaded_images: Vec<String>,
}

/// One entry of `[runtime] image_sizes`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSize {
    /// A repository (`nginx`, `myorg/app`, `registry.k8s.io/pause`), without tag.
    pub image: String,
    pub mb: f64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            pull_bandwidth_mb_per_second: 50.0,
            default_image_size_mb: 100.0,
            image_sizes: Vec::new(),
            registry_check_seconds: 0.3,
            run_sandbox_seconds: 0.5,
            create_container_seconds: 0.1,
            start_container_seconds: 0.2,
            stop_container_seconds: 0.2,
            preloaded_images: vec![super::images::PAUSE_IMAGE.to_string()],
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

impl RuntimeConfig {
    pub fn registry_check(&self) -> Duration {
        secs(self.registry_check_seconds)
    }
    pub fn run_sandbox(&self) -> Duration {
        secs(self.run_sandbox_seconds)
    }
    pub fn create_container(&self) -> Duration {
        secs(self.create_container_seconds)
    }
    pub fn start_container(&self) -> Duration {
        secs(self.start_container_seconds)
    }
    pub fn stop_container(&self) -> Duration {
        secs(self.stop_container_seconds)
    }

    /// An image's size in bytes: `image_sizes`, then the built-in table, then the default.
    pub fn image_size_bytes(&self, image: &ImageRef) -> u64 {
        let key = image.table_key();
        let configured = self.image_sizes.iter().find_map(|s| {
            let k = ImageRef::parse(&s.image).ok()?.table_key();
            (k == key).then_some(s.mb)
        });
        let mb = configured
            .or_else(|| {
                DEFAULT_IMAGE_SIZES
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, mb)| *mb)
            })
            .unwrap_or(self.default_image_size_mb);
        (mb * 1_000_000.0) as u64
    }

    /// How long downloading `bytes` takes (simulated), after the registry check.
    pub fn download_time(&self, bytes: u64) -> Duration {
        if self.pull_bandwidth_mb_per_second <= 0.0 {
            return Duration::ZERO;
        }
        secs(bytes as f64 / (self.pull_bandwidth_mb_per_second * 1_000_000.0))
    }

    /// Range checks, as `(dotted key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let non_negative = [
            (
                "runtime.pull_bandwidth_mb_per_second",
                self.pull_bandwidth_mb_per_second,
            ),
            ("runtime.default_image_size_mb", self.default_image_size_mb),
            (
                "runtime.registry_check_seconds",
                self.registry_check_seconds,
            ),
            ("runtime.run_sandbox_seconds", self.run_sandbox_seconds),
            (
                "runtime.create_container_seconds",
                self.create_container_seconds,
            ),
            (
                "runtime.start_container_seconds",
                self.start_container_seconds,
            ),
            (
                "runtime.stop_container_seconds",
                self.stop_container_seconds,
            ),
        ];
        for (key, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err((key, format!("must be 0 or more, got {v}")));
            }
        }
        if self.pull_bandwidth_mb_per_second == 0.0 {
            return Err((
                "runtime.pull_bandwidth_mb_per_second",
                "must be greater than 0 (use [simulation] speed = 0 for instant pulls)".into(),
            ));
        }
        for s in &self.image_sizes {
            if ImageRef::parse(&s.image).is_err() || !s.mb.is_finite() || s.mb < 0.0 {
                return Err((
                    "runtime.image_sizes",
                    format!("{:?}: needs a valid image name and mb >= 0", s.image),
                ));
            }
        }
        for image in &self.preloaded_images {
            if let Err(e) = ImageRef::parse(image) {
                return Err(("runtime.preloaded_images", e.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_config_then_the_table_then_the_default() {
        let mut c = RuntimeConfig::default();
        let nginx = ImageRef::parse("nginx:1.27").unwrap();
        assert_eq!(c.image_size_bytes(&nginx), 72_000_000);
        let app = ImageRef::parse("myorg/app:v2").unwrap();
        assert_eq!(c.image_size_bytes(&app), 100_000_000);
        c.image_sizes.push(ImageSize {
            image: "myorg/app".into(),
            mb: 300.0,
        });
        assert_eq!(c.image_size_bytes(&app), 300_000_000);
    }

    #[test]
    fn pull_time_is_size_over_bandwidth() {
        let c = RuntimeConfig::default();
        assert_eq!(c.download_time(72_000_000), Duration::from_secs_f64(1.44));
    }
}
