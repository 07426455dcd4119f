//! The stored JSON of Pods and Events, byte for byte what `k8s-openapi`'s `Serialize` writes,
//! with the timestamps formatted directly.
//!
//! `k8s-openapi` formats every `Time` through `jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ")`
//! (and `MicroTime` with `%.6f`), which parses the format string and goes through jiff's
//! printer each time: ~1,800 instructions per timestamp. Binding a pod writes two (its
//! `creationTimestamp` and the `PodScheduled` condition's `lastTransitionTime`) and its
//! `Scheduled` event three (`creationTimestamp`, `firstTimestamp`, `lastTimestamp`) — at
//! scheduler throughput, 9,000 instructions per pod on the API server's thread.
//!
//! The wrappers here serialize the same fields in the same order as `k8s-openapi` (they
//! destructure each struct without `..`, so a field added by a `k8s-openapi` upgrade fails to
//! compile here instead of being dropped) and hand everything without a timestamp of its own
//! (spec, container statuses, references, managed fields) back to `k8s-openapi`. The
//! timestamps are written as RFC 3339 in UTC, as Kubernetes' `metav1.Time` marshals them;
//! a timestamp outside years 1970–9999 goes through jiff as before. The tests compare the
//! bytes with `k8s-openapi`'s for fully populated objects and for timestamps across the
//! range.

use k8s_openapi::api::core::v1::{Event, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::Resource;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// Seconds from the Unix epoch to 10000-01-01T00:00:00Z: the fast path covers years
/// 1970–9999 (four digits, no sign).
const YEAR_10000: i64 = 253_402_300_800;

/// Whether `t` is at or after the epoch and before year 10000. (Within the second before the
/// epoch `as_second` is 0 and the nanoseconds are negative: that instant is in 1969.)
fn in_fast_range(t: &jiff::Timestamp) -> bool {
    (0..YEAR_10000).contains(&t.as_second()) && t.subsec_nanosecond() >= 0
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` (≥ 0, < [`YEAR_10000`]) into `out[..19]`.
fn write_date_time(secs: i64, out: &mut [u8]) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's `civil_from_days` (days since 1970-01-01 → proleptic Gregorian date).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |out: &mut [u8], at: usize, v: i64| {
        out[at] = b'0' + (v / 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    };
    two(out, 0, year / 100);
    two(out, 2, year % 100);
    out[4] = b'-';
    two(out, 5, month);
    out[7] = b'-';
    two(out, 8, day);
    out[10] = b'T';
    two(out, 11, sod / 3_600);
    out[13] = b':';
    two(out, 14, sod / 60 % 60);
    out[16] = b':';
    two(out, 17, sod % 60);
}

/// A `Time` as `k8s-openapi` writes it (`%Y-%m-%dT%H:%M:%SZ`); `None` outside the fast
/// path's years.
fn format_time(t: &jiff::Timestamp) -> Option<[u8; 20]> {
    let secs = t.as_second();
    if !in_fast_range(t) {
        return None;
    }
    let mut out = [0u8; 20];
    write_date_time(secs, &mut out);
    out[19] = b'Z';
    Some(out)
}

/// A `MicroTime` as `k8s-openapi` writes it (`%Y-%m-%dT%H:%M:%S%.6fZ`: always six digits,
/// truncated); `None` outside the fast path's years.
fn format_micro_time(t: &jiff::Timestamp) -> Option<[u8; 27]> {
    let secs = t.as_second();
    if !in_fast_range(t) {
        return None;
    }
    let mut out = [0u8; 27];
    write_date_time(secs, &mut out);
    out[19] = b'.';
    let mut micros = t.subsec_nanosecond() / 1_000;
    for at in (20..26).rev() {
        out[at] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out[26] = b'Z';
    Some(out)
}

/// Serializes a `Time` as `k8s-openapi` does.
struct TimeJson<'a>(&'a Time);

impl Serialize for TimeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match format_time(&self.0 .0) {
            // Only ASCII digits and separators were written.
            Some(b) => serializer
                .serialize_newtype_struct("Time", std::str::from_utf8(&b).unwrap_or_default()),
            None => self.0.serialize(serializer),
        }
    }
}

/// Serializes a `MicroTime` as `k8s-openapi` does.
struct MicroTimeJson<'a>(&'a MicroTime);

impl Serialize for MicroTimeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match format_micro_time(&self.0 .0) {
            Some(b) => serializer
                .serialize_newtype_struct("MicroTime", std::str::from_utf8(&b).unwrap_or_default()),
            None => self.0.serialize(serializer),
        }
    }
}

/// How many of the options are set (the field count `k8s-openapi` passes to
/// `serialize_struct`; serde_json writes `{}` at once for 0, so it must be exact).
macro_rules! count_some {
    ($($field:expr),* $(,)?) => {
        0 $(+ usize::from($field.is_some()))*
    };
}

/// `serialize_field` when the option is set, through `wrap` if given.
macro_rules! opt_field {
    ($state:ident, $name:literal, $value:expr) => {
        if let Some(v) = $value {
            $state.serialize_field($name, v)?;
        }
    };
    ($state:ident, $name:literal, $value:expr, $wrap:ident) => {
        if let Some(v) = $value {
            $state.serialize_field($name, &$wrap(v))?;
        }
    };
}

/// `ObjectMeta`, as `k8s-openapi` serializes it.
struct MetaJson<'a>(&'a ObjectMeta);

impl Serialize for MetaJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ObjectMeta {
            annotations,
            creation_timestamp,
            deletion_grace_period_seconds,
            deletion_timestamp,
            finalizers,
            generate_name,
            generation,
            labels,
            managed_fields,
            name,
            namespace,
            owner_references,
            resource_version,
            self_link,
            uid,
        } = self.0;
        let len = count_some!(
            annotations,
            creation_timestamp,
            deletion_grace_period_seconds,
            deletion_timestamp,
            finalizers,
            generate_name,
            generation,
            labels,
            managed_fields,
            name,
            namespace,
            owner_references,
            resource_version,
            self_link,
            uid,
        );
        let mut state = serializer.serialize_struct("ObjectMeta", len)?;
        opt_field!(state, "annotations", annotations);
        opt_field!(state, "creationTimestamp", creation_timestamp, TimeJson);
        opt_field!(
            state,
            "deletionGracePeriodSeconds",
            deletion_grace_period_seconds
        );
        opt_field!(state, "deletionTimestamp", deletion_timestamp, TimeJson);
        opt_field!(state, "finalizers", finalizers);
        opt_field!(state, "generateName", generate_name);
        opt_field!(state, "generation", generation);
        opt_field!(state, "labels", labels);
        opt_field!(state, "managedFields", managed_fields);
        opt_field!(state, "name", name);
        opt_field!(state, "namespace", namespace);
        opt_field!(state, "ownerReferences", owner_references);
        opt_field!(state, "resourceVersion", resource_version);
        opt_field!(state, "selfLink", self_link);
        opt_field!(state, "uid", uid);
        state.end()
    }
}

/// A `Pod`, as `k8s-openapi` serializes it (with `apiVersion` and `kind`).
pub struct PodJson<'a>(pub &'a Pod);

impl Serialize for PodJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Pod {
            metadata,
            spec,
            status,
        } = self.0;
        let len = 3 + count_some!(spec, status);
        let mut state = serializer.serialize_struct(Pod::KIND, len)?;
        state.serialize_field("apiVersion", Pod::API_VERSION)?;
        state.serialize_field("kind", Pod::KIND)?;
        state.serialize_field("metadata", &MetaJson(metadata))?;
        opt_field!(state, "spec", spec);
        opt_field!(state, "status", status, PodStatusJson);
        state.end()
    }
}

/// `PodStatus`, as `k8s-openapi` serializes it.
struct PodStatusJson<'a>(&'a PodStatus);

impl Serialize for PodStatusJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let PodStatus {
            conditions,
            container_statuses,
            ephemeral_container_statuses,
            host_ip,
            host_ips,
            init_container_statuses,
            message,
            nominated_node_name,
            observed_generation,
            phase,
            pod_ip,
            pod_ips,
            qos_class,
            reason,
            resize,
            resource_claim_statuses,
            start_time,
        } = self.0;
        let len = count_some!(
            conditions,
            container_statuses,
            ephemeral_container_statuses,
            host_ip,
            host_ips,
            init_container_statuses,
            message,
            nominated_node_name,
            observed_generation,
            phase,
            pod_ip,
            pod_ips,
            qos_class,
            reason,
            resize,
            resource_claim_statuses,
            start_time,
        );
        let mut state = serializer.serialize_struct("PodStatus", len)?;
        opt_field!(state, "conditions", conditions, ConditionsJson);
        opt_field!(state, "containerStatuses", container_statuses);
        opt_field!(
            state,
            "ephemeralContainerStatuses",
            ephemeral_container_statuses
        );
        opt_field!(state, "hostIP", host_ip);
        opt_field!(state, "hostIPs", host_ips);
        opt_field!(state, "initContainerStatuses", init_container_statuses);
        opt_field!(state, "message", message);
        opt_field!(state, "nominatedNodeName", nominated_node_name);
        opt_field!(state, "observedGeneration", observed_generation);
        opt_field!(state, "phase", phase);
        opt_field!(state, "podIP", pod_ip);
        opt_field!(state, "podIPs", pod_ips);
        opt_field!(state, "qosClass", qos_class);
        opt_field!(state, "reason", reason);
        opt_field!(state, "resize", resize);
        opt_field!(state, "resourceClaimStatuses", resource_claim_statuses);
        opt_field!(state, "startTime", start_time, TimeJson);
        state.end()
    }
}

/// A list of `PodCondition`s.
struct ConditionsJson<'a>(&'a Vec<PodCondition>);

impl Serialize for ConditionsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ConditionJson))
    }
}

/// `PodCondition`, as `k8s-openapi` serializes it.
struct ConditionJson<'a>(&'a PodCondition);

impl Serialize for ConditionJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let PodCondition {
            last_probe_time,
            last_transition_time,
            message,
            observed_generation,
            reason,
            status,
            type_,
        } = self.0;
        let len = 2 + count_some!(
            last_probe_time,
            last_transition_time,
            message,
            observed_generation,
            reason,
        );
        let mut state = serializer.serialize_struct("PodCondition", len)?;
        opt_field!(state, "lastProbeTime", last_probe_time, TimeJson);
        opt_field!(state, "lastTransitionTime", last_transition_time, TimeJson);
        opt_field!(state, "message", message);
        opt_field!(state, "observedGeneration", observed_generation);
        opt_field!(state, "reason", reason);
        state.serialize_field("status", status)?;
        state.serialize_field("type", type_)?;
        state.end()
    }
}

/// A core/v1 `Event`, as `k8s-openapi` serializes it (with `apiVersion` and `kind`).
pub struct EventJson<'a>(pub &'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Event {
            action,
            count,
            event_time,
            first_timestamp,
            involved_object,
            last_timestamp,
            message,
            metadata,
            reason,
            related,
            reporting_component,
            reporting_instance,
            series,
            source,
            type_,
        } = self.0;
        let len = 4 + count_some!(
            action,
            count,
            event_time,
            first_timestamp,
            last_timestamp,
            message,
            reason,
            related,
            reporting_component,
            reporting_instance,
            series,
            source,
            type_,
        );
        let mut state = serializer.serialize_struct(Event::KIND, len)?;
        state.serialize_field("apiVersion", Event::API_VERSION)?;
        state.serialize_field("kind", Event::KIND)?;
        opt_field!(state, "action", action);
        opt_field!(state, "count", count);
        opt_field!(state, "eventTime", event_time, MicroTimeJson);
        opt_field!(state, "firstTimestamp", first_timestamp, TimeJson);
        state.serialize_field("involvedObject", involved_object)?;
        opt_field!(state, "lastTimestamp", last_timestamp, TimeJson);
        opt_field!(state, "message", message);
        state.serialize_field("metadata", &MetaJson(metadata))?;
        opt_field!(state, "reason", reason);
        opt_field!(state, "related", related);
        opt_field!(state, "reportingComponent", reporting_component);
        opt_field!(state, "reportingInstance", reporting_instance);
        opt_field!(state, "series", series);
        opt_field!(state, "source", source);
        opt_field!(state, "type", type_);
        state.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use rand::{Rng, SeedableRng};

    fn jiff_time(t: Timestamp) -> String {
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t).unwrap()
    }

    fn jiff_micro(t: Timestamp) -> String {
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.6fZ", t).unwrap()
    }

    /// The JSON of a `Time` and a `MicroTime` through the wrappers and through `k8s-openapi`.
    fn both(t: Timestamp) -> [(String, String); 2] {
        [
            (
                serde_json::to_string(&TimeJson(&Time(t))).unwrap(),
                serde_json::to_string(&Time(t)).unwrap(),
            ),
            (
                serde_json::to_string(&MicroTimeJson(&MicroTime(t))).unwrap(),
                serde_json::to_string(&MicroTime(t)).unwrap(),
            ),
        ]
    }

    /// Every second and sub-second part the fast path handles formats as jiff does: the
    /// epoch, leap days, century years (2000 is a leap year, 2100 is not), the last instant
    /// jiff represents, and random instants with random nanoseconds; outside the range (before the
    /// epoch) the wrappers fall back to jiff.
    #[test]
    fn timestamps_format_as_jiff_does() {
        let edges = [
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.000000999Z",
            "1972-02-29T23:59:59.999999999Z",
            "1999-12-31T23:59:59Z",
            "2000-02-29T12:00:00.5Z",
            "2000-03-01T00:00:00Z",
            "2024-02-29T08:07:06.000001Z",
            "2026-12-05T21:34:00Z",
            "2100-02-28T23:59:59Z",
            "2100-03-01T00:00:00Z",
            "9999-12-30T21:59:59.999999999Z", // jiff's last instant is 9999-12-30T22:00:00Z
            "1969-12-31T23:59:59Z",
            "1969-12-31T23:59:59.25Z",
            "1969-12-31T23:59:59.999999999Z",
            "0001-01-01T00:00:00Z",
        ];
        for e in edges {
            let t: Timestamp = e.parse().unwrap();
            for (fast, slow) in both(t) {
                assert_eq!(fast, slow, "{e}");
            }
            assert_eq!(
                both(t)[0].0,
                format!("\"{}\"", jiff_time(t)),
                "{e}: Time is jiff's %Y-%m-%dT%H:%M:%SZ"
            );
            assert_eq!(both(t)[1].0, format!("\"{}\"", jiff_micro(t)), "{e}");
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let secs = rng.random_range(0..jiff::Timestamp::MAX.as_second());
            let nanos = rng.random_range(0..1_000_000_000);
            let t = Timestamp::new(secs, nanos).unwrap();
            for (fast, slow) in both(t) {
                assert_eq!(fast, slow, "{secs}.{nanos:09}");
            }
        }
    }

    fn pod_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "annotations": {"a": "b", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                "creationTimestamp": "2026-12-05T21:34:00Z",
                "deletionGracePeriodSeconds": 30,
                "deletionTimestamp": "2026-12-05T21:35:00Z",
                "finalizers": ["f"],
                "generateName": "web-",
                "generation": 2,
                "labels": {"app": "web"},
                "managedFields": [{"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}},
                                   "manager": "kubectl", "operation": "Update", "subresource": "status",
                                   "time": "2026-12-05T21:34:01Z"}],
                "name": "web-1",
                "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                     "uid": "u1", "controller": true, "blockOwnerDeletion": true}],
                "resourceVersion": "42",
                "selfLink": "/api/v1/namespaces/default/pods/web-1",
                "uid": "0b4c1a2e-uid"
            },
            "spec": {
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}],
                "nodeName": "node-00001",
                "schedulerName": "default-scheduler"
            },
            "status": {
                "conditions": [
                    {"lastProbeTime": "2026-12-05T21:34:02Z", "lastTransitionTime": "2026-12-05T21:34:03Z",
                     "message": "m \"quoted\"", "observedGeneration": 2, "reason": "r", "status": "True",
                     "type": "PodScheduled"},
                    {"status": "False", "type": "Ready"}
                ],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                                       "state": {"running": {"startedAt": "2026-12-05T21:34:04Z"}}}],
                "ephemeralContainerStatuses": [],
                "hostIP": "10.0.0.1",
                "hostIPs": [{"ip": "10.0.0.1"}],
                "initContainerStatuses": [],
                "message": "msg",
                "nominatedNodeName": "node-2",
                "observedGeneration": 2,
                "phase": "Running",
                "podIP": "10.1.0.1",
                "podIPs": [{"ip": "10.1.0.1"}],
                "qosClass": "Burstable",
                "reason": "why",
                "resize": "InProgress",
                "resourceClaimStatuses": [{"name": "claim", "resourceClaimName": "rc"}],
                "startTime": "2026-12-05T21:34:05Z"
            }
        })
    }

    fn event_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Event",
            "action": "Binding",
            "count": 3,
            "eventTime": "2026-12-05T21:34:00.123456Z",
            "firstTimestamp": "2026-12-05T21:34:00Z",
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "default",
                               "uid": "u", "resourceVersion": "41", "fieldPath": "spec.containers{c}"},
            "lastTimestamp": "2026-12-05T21:36:00Z",
            "message": "Successfully assigned default/web-1 to node-00001",
            "metadata": {"creationTimestamp": "2026-12-05T21:34:00Z", "name": "web-1.187e5c0a1b2c3d4e",
                         "namespace": "default", "uid": "e-uid"},
            "reason": "Scheduled",
            "related": {"kind": "Node", "name": "node-00001"},
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-host",
            "series": {"count": 2, "lastObservedTime": "2026-12-05T21:36:00.000001Z"},
            "source": {"component": "default-scheduler", "host": "h"},
            "type": "Normal"
        })
    }

    /// A pod with every metadata and status field (and a condition with every field, one
    /// with none) encodes to `k8s-openapi`'s bytes; so do a pod with nothing set, one with an
    /// empty status, and the bound pod shape the scheduler benchmark writes.
    #[test]
    fn pods_encode_as_k8s_openapi_does() {
        let full: Pod = serde_json::from_value(pod_json()).unwrap();
        let mut empty_status = full.clone();
        empty_status.status = Some(PodStatus::default());
        let mut bare_status = full.clone();
        bare_status.status = None;
        bare_status.spec = None;
        let mut old = full.clone();
        let t: Timestamp = "1960-01-01T00:00:00Z".parse().unwrap();
        old.metadata.creation_timestamp = Some(Time(t));
        for (name, pod) in [
            ("full", full),
            ("nothing set", Pod::default()),
            ("empty status", empty_status),
            ("no spec or status", bare_status),
            ("before the epoch", old),
        ] {
            let ours = serde_json::to_vec(&PodJson(&pod)).unwrap();
            let theirs = serde_json::to_vec(&pod).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "{name}"
            );
        }
        // The full pod's JSON is the JSON it was read from (every field made it).
        let full: Pod = serde_json::from_value(pod_json()).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&PodJson(&full)).unwrap()).unwrap();
        assert_eq!(back, pod_json());
    }

    /// An event with every field, one with only the required ones, and one as the event
    /// recorder writes it encode to `k8s-openapi`'s bytes.
    #[test]
    fn events_encode_as_k8s_openapi_does() {
        let full: Event = serde_json::from_value(event_json()).unwrap();
        let recorded = Event {
            count: Some(1),
            first_timestamp: full.first_timestamp.clone(),
            last_timestamp: full.last_timestamp.clone(),
            involved_object: full.involved_object.clone(),
            message: full.message.clone(),
            metadata: full.metadata.clone(),
            reason: full.reason.clone(),
            reporting_component: full.reporting_component.clone(),
            source: full.source.clone(),
            type_: full.type_.clone(),
            ..Default::default()
        };
        for (name, event) in [
            ("full", full),
            ("required only", Event::default()),
            ("as recorded", recorded),
        ] {
            let ours = serde_json::to_vec(&EventJson(&event)).unwrap();
            let theirs = serde_json::to_vec(&event).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "{name}"
            );
        }
        let full: Event = serde_json::from_value(event_json()).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&EventJson(&full)).unwrap()).unwrap();
        assert_eq!(back, event_json());
    }
}
