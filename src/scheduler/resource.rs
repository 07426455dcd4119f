//! Resource accounting: quantities, a pod's effective requests and a node's allocatable.
//!
//! Mirrors `framework.Resource` (pkg/scheduler/framework/types.go), `computePodResourceRequest`
//! (pkg/scheduler/framework/plugins/noderesources/fit.go) and `resourcehelper.PodRequests`
//! (k8s.io/component-helpers/resource).
//!
//! The quantity parser here is private and exact; it will be replaced by
//! `crate::api::quantity` once that lands (keep every use of it inside this file).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Request assumed for a container without a cpu request when *scoring* (not filtering):
/// upstream `DefaultMilliCPURequest` (pkg/scheduler/util/pod_resources.go).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Request assumed for a container without a memory request when scoring: 200 MB
/// (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Allocatable or requested resources, in the units the scheduler compares: millicores,
/// bytes, bytes, and a pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
}

impl Resource {
    /// Read a `ResourceList` (node allocatable, a container's requests, a pod's overhead).
    /// Unknown resource names are ignored (extended resources are not modelled yet).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = quantity_milli_value(q),
            "memory" => self.memory = quantity_value(q),
            "ephemeral-storage" => self.ephemeral_storage = quantity_value(q),
            "pods" => self.allowed_pod_number = quantity_value(q),
            _ => {}
        }
    }

    /// Whether `name` is one of the resources this struct models.
    pub fn is_known(name: &str) -> bool {
        matches!(name, "cpu" | "memory" | "ephemeral-storage" | "pods")
    }

    /// The amount of a named resource (cpu in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            _ => 0,
        }
    }

    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.allowed_pod_number += o.allowed_pod_number;
    }

    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.allowed_pod_number -= o.allowed_pod_number;
    }

    /// Element-wise maximum (init containers define a floor).
    pub fn max_with(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(o.allowed_pod_number);
    }

    /// Whether nothing is requested.
    pub fn is_zero(&self) -> bool {
        *self == Resource::default()
    }
}

/// A node's allocatable resources: `status.allocatable`, falling back to `status.capacity`
/// when the kubelet has not reported allocatable (upstream uses allocatable only).
pub fn node_allocatable(node: &Node) -> Resource {
    let Some(status) = node.status.as_ref() else {
        return Resource::default();
    };
    match status.allocatable.as_ref().or(status.capacity.as_ref()) {
        Some(list) => Resource::from_list(list),
        None => Resource::default(),
    }
}

/// A container's requests. A resource with a limit but no request counts its limit, as API
/// defaulting would have set it (kube-apiserver copies limits into missing requests).
fn container_requests(c: &Container) -> Resource {
    let mut r = Resource::default();
    if let Some(res) = c.resources.as_ref() {
        if let Some(limits) = res.limits.as_ref() {
            for (name, q) in limits {
                r.set(name, q);
            }
        }
        if let Some(requests) = res.requests.as_ref() {
            for (name, q) in requests {
                r.set(name, q);
            }
        }
    }
    r
}

/// Whether a container names a resource in its requests (or limits, see [`container_requests`]).
fn container_has(c: &Container, name: &str) -> bool {
    c.resources.as_ref().is_some_and(|res| {
        res.requests.as_ref().is_some_and(|l| l.contains_key(name))
            || res.limits.as_ref().is_some_and(|l| l.contains_key(name))
    })
}

/// A container's requests with the scoring defaults (100m cpu, 200 MB memory) filled in for
/// resources it does not request (upstream `NonMissingContainerRequests`).
fn container_requests_non_zero(c: &Container) -> Resource {
    let mut r = container_requests(c);
    if !container_has(c, "cpu") {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !container_has(c, "memory") {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

/// The effective requests of a pod, as `resourcehelper.PodRequests`: the sum of the regular
/// and restartable-init (sidecar) containers, at least the peak of any init container (plus
/// the sidecars started before it), plus `spec.overhead`. `non_zero` applies the scoring
/// defaults to containers that request no cpu / memory.
fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let per = |c: &Container| {
        if non_zero {
            container_requests_non_zero(c)
        } else {
            container_requests(c)
        }
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&per(c));
    }
    let mut sidecars = Resource::default();
    let mut init_peak = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = per(c);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars;
        } else {
            r.add(&sidecars);
        }
        init_peak.max_with(&r);
    }
    reqs.max_with(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resource::from_list(overhead));
    }
    reqs
}

/// Mirrors `computePodResourceRequest` (noderesources/fit.go): what a pod needs from a node
/// to pass the NodeResourcesFit filter.
pub fn compute_pod_resource_request(pod: &Pod) -> Resource {
    pod_requests(pod, false)
}

/// The pod's requests with the non-zero scoring defaults (upstream `NonZeroRequested`
/// accounting, used by LeastAllocated / MostAllocated / RequestedToCapacityRatio).
pub fn compute_pod_non_zero_request(pod: &Pod) -> Resource {
    pod_requests(pod, true)
}

/// `Quantity.Value()`: the value rounded up to an integer (0 if unparseable or out of range).
pub fn quantity_value(q: &Quantity) -> i64 {
    quantity_to_milli(q)
        .map(|m| ceil_div(m, 1000))
        .map(saturate)
        .unwrap_or(0)
}

/// `Quantity.MilliValue()`: the value in thousandths, rounded up (0 if unparseable).
pub fn quantity_milli_value(q: &Quantity) -> i64 {
    quantity_to_milli(q).map(saturate).unwrap_or(0)
}

fn saturate(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

/// Parse a Kubernetes quantity exactly and return it in thousandths, rounded up (towards
/// +infinity, as `resource.Quantity.MilliValue`). Accepts `<sign><digits>[.<digits>]<suffix>`
/// with suffix one of: binary `Ki Mi Gi Ti Pi Ei`, decimal SI `n u m "" k M G T P E`, or a
/// decimal exponent `e<int>` / `E<int>`. Returns `None` on syntax errors or overflow.
///
/// Temporary: `crate::api::quantity` will replace it.
pub(crate) fn quantity_to_milli(q: &Quantity) -> Option<i128> {
    let s = q.0.trim();
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if frac_part.contains('.') {
        return None;
    }
    // mantissa * 10^dec_exp * 2^bin_exp
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa.checked_mul(10)?.checked_add((c - b'0') as i128)?;
    }
    let mut dec_exp: i32 = -(frac_part.len() as i32);
    let mut bin_exp: u32 = 0;
    match suffix {
        "" => {}
        "n" => dec_exp -= 9,
        "u" => dec_exp -= 6,
        "m" => dec_exp -= 3,
        "k" => dec_exp += 3,
        "M" => dec_exp += 6,
        "G" => dec_exp += 9,
        "T" => dec_exp += 12,
        "P" => dec_exp += 15,
        "E" => dec_exp += 18,
        "Ki" => bin_exp = 10,
        "Mi" => bin_exp = 20,
        "Gi" => bin_exp = 30,
        "Ti" => bin_exp = 40,
        "Pi" => bin_exp = 50,
        "Ei" => bin_exp = 60,
        s if s.starts_with(['e', 'E']) => {
            let e: i32 = s[1..].parse().ok()?;
            if e.abs() > 40 {
                return None;
            }
            dec_exp += e;
        }
        _ => return None,
    }
    // To thousandths.
    dec_exp += 3;
    let mut v = mantissa.checked_mul(1i128.checked_shl(bin_exp)?)?;
    if dec_exp >= 0 {
        v = v.checked_mul(10i128.checked_pow(dec_exp as u32)?)?;
    } else {
        let d = 10i128.checked_pow((-dec_exp) as u32)?;
        // Round up the magnitude for positive values (towards +inf overall).
        v = if neg { v / d } else { ceil_div(v, d) };
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    /// Quantity parsing: every suffix family, fractions, exponents, rounding up, errors.
    #[test]
    fn quantity_to_milli_parses_every_suffix() {
        let cases: &[(&str, Option<i128>)] = &[
            ("0", Some(0)),
            ("1", Some(1000)),
            ("100m", Some(100)),
            ("1.5", Some(1500)),
            (".5", Some(500)),
            ("0.1m", Some(1)), // rounds up
            ("250u", Some(1)),
            ("1n", Some(1)),
            ("2k", Some(2_000_000)),
            ("1M", Some(1_000_000_000)),
            ("1G", Some(1_000_000_000_000)),
            ("1Ki", Some(1024 * 1000)),
            ("128Mi", Some(128 * 1024 * 1024 * 1000)),
            ("1.5Gi", Some(1536 * 1024 * 1024 * 1000)),
            ("1Ei", Some((1i128 << 60) * 1000)),
            ("1E", Some(10i128.pow(21))),
            ("1e3", Some(1_000_000)),
            ("1E3", Some(1_000_000)),
            ("12e-3", Some(12)),
            ("+3", Some(3000)),
            ("-100m", Some(-100)),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("5X", None),
            ("Mi", None),
        ];
        for (s, want) in cases {
            assert_eq!(quantity_to_milli(&q(s)), *want, "quantity {s:?}");
        }
        assert_eq!(quantity_value(&q("100m")), 1);
        assert_eq!(quantity_value(&q("1Gi")), 1 << 30);
        assert_eq!(quantity_milli_value(&q("2")), 2000);
    }

    fn container(requests: &[(&str, &str)], sidecar: bool) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    requests
                        .iter()
                        .map(|(k, v)| (k.to_string(), q(v)))
                        .collect(),
                ),
                ..Default::default()
            }),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    /// computePodResourceRequest: max(sum of containers, each init container) + overhead,
    /// with sidecars (restartable init containers) added to both.
    #[test]
    fn pod_request_is_max_of_containers_and_init_plus_overhead() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![
                    container(&[("cpu", "100m"), ("memory", "100Mi")], false),
                    container(&[("cpu", "200m")], false),
                ],
                init_containers: Some(vec![container(
                    &[("cpu", "500m"), ("memory", "50Mi")],
                    false,
                )]),
                overhead: Some([("cpu".to_string(), q("10m"))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = compute_pod_resource_request(&pod);
        assert_eq!(r.milli_cpu, 510);
        assert_eq!(r.memory, 100 * 1024 * 1024);
        // Non-zero: the second container has no memory request → 200 MB default.
        let nz = compute_pod_non_zero_request(&pod);
        assert_eq!(nz.memory, 100 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST);
        assert_eq!(nz.milli_cpu, 510);

        // Sidecar: 100m sidecar runs alongside; a later 300m init container peaks at 400m.
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container(&[("cpu", "200m")], false)],
                init_containers: Some(vec![
                    container(&[("cpu", "100m")], true),
                    container(&[("cpu", "300m")], false),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(compute_pod_resource_request(&pod).milli_cpu, 400);
    }

    /// A limit without a request counts as the request (API defaulting).
    #[test]
    fn limit_without_request_counts_as_request() {
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some([("cpu".to_string(), q("1"))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![c],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(compute_pod_resource_request(&pod).milli_cpu, 1000);
    }
}
