//! The effective telemetry settings: `[telemetry]` from the config file, overridden by the
//! standard OpenTelemetry environment variables.
//!
//! Resolution is a plain function over the config and an environment lookup, so every rule
//! below is unit-tested without touching the process environment.
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SDK_DISABLED=true` | no spans at all (sampler always_off, no exporter); wins over everything |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | full traces URL, used as is; turns export on |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL (`/v1/traces` appended for http/protobuf); turns export on |
//! | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` or `grpc` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampler name and ratio (see [`SamplerSpec`]) |
//!
//! As the OpenTelemetry specification asks, an unusable environment value is ignored with a
//! warning (collected in [`Settings::warnings`] and logged by `Telemetry::init`); an invalid
//! value in the config file is an error.

use opentelemetry_sdk::trace::Sampler;

use crate::config::{OtlpProtocol, TelemetryConfig};

use super::TelemetryError;

pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// Used when neither the config nor the environment names an endpoint.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Used for gRPC when neither the config nor the environment names an endpoint.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// The OTLP/HTTP traces path, appended to a base endpoint.
pub const HTTP_TRACES_PATH: &str = "/v1/traces";

/// Where spans are exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportTarget {
    /// The URL handed to the exporter: for http/protobuf the full `…/v1/traces` URL, for gRPC
    /// the server's base URL.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
}

/// Which new traces are recorded. Parent-based samplers follow the caller's decision when a
/// span has a parent (in-process or from a `traceparent`), and use `root` otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerSpec {
    pub root: RootSampler,
    pub parent_based: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// Keep this fraction (0.0..=1.0) of traces, decided by trace id so all components agree.
    TraceIdRatio(f64),
}

impl SamplerSpec {
    /// The SDK sampler for this spec.
    pub fn to_sampler(self) -> Sampler {
        let root = match self.root {
            RootSampler::AlwaysOn => Sampler::AlwaysOn,
            RootSampler::AlwaysOff => Sampler::AlwaysOff,
            RootSampler::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        };
        if self.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }
}

/// The resolved settings `Telemetry::init` builds from.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `OTEL_SDK_DISABLED=true`: tracers exist but record and export nothing.
    pub sdk_disabled: bool,
    /// `None` = export off; spans still go to the in-memory span store.
    pub export: Option<ExportTarget>,
    pub sampler: SamplerSpec,
    pub span_store_capacity: usize,
    /// `[telemetry] propagation`: reactions as children of their cause, or linked roots.
    pub propagation: super::Propagation,
    /// Environment values that were ignored, and why.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Resolve `cfg` against the environment lookup `env` (see the module table).
    pub fn resolve(
        cfg: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, TelemetryError> {
        let ratio = cfg.sampler_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(TelemetryError::InvalidSamplerRatio(ratio));
        }
        let mut warnings = Vec::new();
        // Empty values count as unset, as the specification says.
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let sdk_disabled = var(OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let sampler = resolve_sampler(ratio, &var, &mut warnings);

        let mut protocol = cfg.otlp_protocol;
        if let Some((name, value)) = first_of(
            &var,
            &[
                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                OTEL_EXPORTER_OTLP_PROTOCOL,
            ],
        ) {
            match parse_protocol(&value) {
                Some(p) => protocol = p,
                None => warnings.push(format!(
                    "{name}={value:?} is not supported (use http/protobuf or grpc); using {}",
                    protocol_name(protocol)
                )),
            }
        }

        let endpoint = if let Some(full) = var(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
            // A signal-specific endpoint is the exact URL to use.
            Some(full)
        } else if let Some(base) = var(OTEL_EXPORTER_OTLP_ENDPOINT) {
            Some(signal_endpoint(&base, protocol))
        } else if cfg.otlp_enabled {
            let base = match cfg.otlp_endpoint.trim() {
                "" => default_endpoint(protocol),
                configured => configured,
            };
            Some(signal_endpoint(base, protocol))
        } else {
            None
        };

        let export = if sdk_disabled {
            None
        } else {
            endpoint.map(|endpoint| ExportTarget { endpoint, protocol })
        };
        let sampler = if sdk_disabled {
            SamplerSpec {
                root: RootSampler::AlwaysOff,
                parent_based: false,
            }
        } else {
            sampler
        };
        Ok(Settings {
            sdk_disabled,
            export,
            sampler,
            span_store_capacity: cfg.span_store_capacity,
            propagation: cfg.propagation,
            warnings,
        })
    }
}

fn first_of(var: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<(String, String)> {
    names
        .iter()
        .find_map(|name| var(name).map(|v| (name.to_string(), v)))
}

/// `http/protobuf` or `grpc` (case-insensitive); anything else (including `http/json`) is not
/// supported here.
pub fn parse_protocol(value: &str) -> Option<OtlpProtocol> {
    match value.trim().to_ascii_lowercase().as_str() {
        "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
        "grpc" => Some(OtlpProtocol::Grpc),
        _ => None,
    }
}

pub fn protocol_name(p: OtlpProtocol) -> &'static str {
    match p {
        OtlpProtocol::HttpProtobuf => "http/protobuf",
        OtlpProtocol::Grpc => "grpc",
    }
}

fn default_endpoint(p: OtlpProtocol) -> &'static str {
    match p {
        OtlpProtocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
        OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
    }
}

/// The URL the exporter sends traces to, from a base endpoint: for http/protobuf the base plus
/// `/v1/traces` (unless it already ends with it), for gRPC the base unchanged.
pub fn signal_endpoint(base: &str, protocol: OtlpProtocol) -> String {
    let base = base.trim();
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => {
            let trimmed = base.trim_end_matches('/');
            if trimmed.ends_with(HTTP_TRACES_PATH) {
                trimmed.to_owned()
            } else {
                format!("{trimmed}{HTTP_TRACES_PATH}")
            }
        }
    }
}

/// `OTEL_TRACES_SAMPLER(_ARG)` over the config's parent-based ratio sampler. A ratio sampler
/// without a usable `_ARG` keeps the config's `sampler_ratio`.
fn resolve_sampler(
    config_ratio: f64,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> SamplerSpec {
    let default = SamplerSpec {
        root: RootSampler::TraceIdRatio(config_ratio),
        parent_based: true,
    };
    let Some(name) = var(OTEL_TRACES_SAMPLER) else {
        return default;
    };
    // `None` stands for "trace id ratio", whose ratio is read below.
    let (root, parent_based) = match name.to_ascii_lowercase().as_str() {
        "always_on" => (Some(RootSampler::AlwaysOn), false),
        "always_off" => (Some(RootSampler::AlwaysOff), false),
        "traceidratio" => (None, false),
        "parentbased_always_on" => (Some(RootSampler::AlwaysOn), true),
        "parentbased_always_off" => (Some(RootSampler::AlwaysOff), true),
        "parentbased_traceidratio" => (None, true),
        _ => {
            warnings.push(format!(
                "{OTEL_TRACES_SAMPLER}={name:?} is not supported; using parentbased_traceidratio \
                 with ratio {config_ratio}"
            ));
            return default;
        }
    };
    let root = root.unwrap_or_else(|| {
        RootSampler::TraceIdRatio(match var(OTEL_TRACES_SAMPLER_ARG) {
            None => config_ratio,
            Some(arg) => match arg.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    warnings.push(format!(
                        "{OTEL_TRACES_SAMPLER_ARG}={arg:?} is not a ratio in 0..=1; using \
                         {config_ratio}"
                    ));
                    config_ratio
                }
            },
        })
    });
    SamplerSpec { root, parent_based }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cfg() -> TelemetryConfig {
        TelemetryConfig {
            otlp_enabled: false,
            otlp_endpoint: "http://collector:4318".into(),
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            sampler_ratio: 1.0,
            span_store_capacity: 100,
            propagation: crate::telemetry::Propagation::Child,
        }
    }

    fn resolve(cfg: &TelemetryConfig, vars: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(cfg, &|k| map.get(k).cloned()).expect("valid settings")
    }

    fn target(endpoint: &str, protocol: OtlpProtocol) -> Option<ExportTarget> {
        Some(ExportTarget {
            endpoint: endpoint.into(),
            protocol,
        })
    }

    #[test]
    fn export_is_off_by_default_and_on_by_config() {
        assert_eq!(resolve(&cfg(), &[]).export, None);
        let on = TelemetryConfig {
            otlp_enabled: true,
            ..cfg()
        };
        assert_eq!(
            resolve(&on, &[]).export,
            target(
                "http://collector:4318/v1/traces",
                OtlpProtocol::HttpProtobuf
            )
        );
    }

    #[test]
    fn endpoint_env_turns_export_on_and_wins_over_config() {
        let s = resolve(
            &cfg(),
            &[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://jaeger:4318/")],
        );
        assert_eq!(
            s.export,
            target("http://jaeger:4318/v1/traces", OtlpProtocol::HttpProtobuf)
        );
        let s = resolve(
            &cfg(),
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://ignored:4318"),
                (
                    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
                    "http://exact:9999/custom",
                ),
            ],
        );
        assert_eq!(
            s.export,
            target("http://exact:9999/custom", OtlpProtocol::HttpProtobuf)
        );
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        let s = resolve(
            &cfg(),
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, " "),
                (OTEL_TRACES_SAMPLER, ""),
            ],
        );
        assert_eq!(s.export, None);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn protocol_env_switches_to_grpc_without_a_path() {
        let s = resolve(
            &cfg(),
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://jaeger:4317"),
                (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
            ],
        );
        assert_eq!(s.export, target("http://jaeger:4317", OtlpProtocol::Grpc));
    }

    #[test]
    fn empty_config_endpoint_uses_the_protocol_default() {
        let c = TelemetryConfig {
            otlp_enabled: true,
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::Grpc,
            ..cfg()
        };
        assert_eq!(
            resolve(&c, &[]).export,
            target(DEFAULT_GRPC_ENDPOINT, OtlpProtocol::Grpc)
        );
    }

    #[test]
    fn unsupported_protocol_env_is_ignored_with_a_warning() {
        let s = resolve(
            &cfg(),
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://jaeger:4318"),
                (OTEL_EXPORTER_OTLP_PROTOCOL, "http/json"),
            ],
        );
        assert_eq!(s.export.unwrap().protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn sdk_disabled_wins_over_everything() {
        let s = resolve(
            &TelemetryConfig {
                otlp_enabled: true,
                ..cfg()
            },
            &[
                (OTEL_SDK_DISABLED, "TRUE"),
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://jaeger:4318"),
                (OTEL_TRACES_SAMPLER, "always_on"),
            ],
        );
        assert!(s.sdk_disabled);
        assert_eq!(s.export, None);
        assert_eq!(s.sampler.root, RootSampler::AlwaysOff);
        // Any other value means "not disabled".
        assert!(!resolve(&cfg(), &[(OTEL_SDK_DISABLED, "1")]).sdk_disabled);
    }

    #[test]
    fn sampler_names_map_to_specs() {
        let cases = [
            ("always_on", None, RootSampler::AlwaysOn, false),
            ("always_off", None, RootSampler::AlwaysOff, false),
            (
                "traceidratio",
                Some("0.25"),
                RootSampler::TraceIdRatio(0.25),
                false,
            ),
            ("parentbased_always_on", None, RootSampler::AlwaysOn, true),
            ("parentbased_always_off", None, RootSampler::AlwaysOff, true),
            (
                "parentbased_traceidratio",
                Some("0.5"),
                RootSampler::TraceIdRatio(0.5),
                true,
            ),
            // No _ARG: the config's ratio (1.0 here).
            ("traceidratio", None, RootSampler::TraceIdRatio(1.0), false),
            ("PARENTBASED_ALWAYS_ON", None, RootSampler::AlwaysOn, true),
        ];
        for (name, arg, root, parent_based) in cases {
            let mut vars = vec![(OTEL_TRACES_SAMPLER, name)];
            if let Some(arg) = arg {
                vars.push((OTEL_TRACES_SAMPLER_ARG, arg));
            }
            let s = resolve(&cfg(), &vars);
            assert_eq!(
                s.sampler,
                SamplerSpec { root, parent_based },
                "OTEL_TRACES_SAMPLER={name} ARG={arg:?}"
            );
            assert!(s.warnings.is_empty(), "{name}: {:?}", s.warnings);
        }
    }

    #[test]
    fn default_sampler_is_parent_based_config_ratio() {
        let c = TelemetryConfig {
            sampler_ratio: 0.1,
            ..cfg()
        };
        assert_eq!(
            resolve(&c, &[]).sampler,
            SamplerSpec {
                root: RootSampler::TraceIdRatio(0.1),
                parent_based: true
            }
        );
    }

    #[test]
    fn bad_sampler_env_is_ignored_with_a_warning() {
        let s = resolve(&cfg(), &[(OTEL_TRACES_SAMPLER, "jaeger_remote")]);
        assert_eq!(s.sampler.root, RootSampler::TraceIdRatio(1.0));
        assert_eq!(s.warnings.len(), 1);
        let s = resolve(
            &cfg(),
            &[
                (OTEL_TRACES_SAMPLER, "traceidratio"),
                (OTEL_TRACES_SAMPLER_ARG, "2"),
            ],
        );
        assert_eq!(s.sampler.root, RootSampler::TraceIdRatio(1.0));
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn invalid_config_ratio_is_an_error() {
        for ratio in [-0.1, 1.5, f64::NAN] {
            let c = TelemetryConfig {
                sampler_ratio: ratio,
                ..cfg()
            };
            assert!(Settings::resolve(&c, &|_| None).is_err(), "{ratio}");
        }
    }

    #[test]
    fn http_endpoint_gets_the_traces_path_once() {
        let p = OtlpProtocol::HttpProtobuf;
        assert_eq!(
            signal_endpoint("http://h:4318", p),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            signal_endpoint("http://h:4318/", p),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            signal_endpoint("http://h:4318/v1/traces", p),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            signal_endpoint("http://h/otlp", p),
            "http://h/otlp/v1/traces"
        );
        assert_eq!(
            signal_endpoint("http://h:4317", OtlpProtocol::Grpc),
            "http://h:4317"
        );
    }
}
