//! Trace context through the store: the writer's span context as a W3C `traceparent` in an
//! object annotation, continued by whoever reacts to the watch event.
//!
//! Uses a [`TraceContextPropagator`] instance, never the global propagator: the global default
//! is a no-op, and injecting through it silently writes nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The annotation that carries the W3C `traceparent` of the span that last wrote the object.
pub const TRACEPARENT_ANNOTATION: &str = "kubeactor.io/traceparent";

/// The W3C header name the propagator reads and writes.
const TRACEPARENT: &str = "traceparent";

/// Write `cx`'s span context into `meta` as [`TRACEPARENT_ANNOTATION`]. When `cx` holds no
/// valid span context the annotation is removed, so a stale parent never survives a write.
pub fn inject(cx: &Context, meta: &mut ObjectMeta) {
    match traceparent(cx) {
        Some(value) => {
            meta.annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(TRACEPARENT_ANNOTATION.to_owned(), value);
        }
        None => {
            if let Some(annotations) = meta.annotations.as_mut() {
                annotations.remove(TRACEPARENT_ANNOTATION);
                if annotations.is_empty() {
                    meta.annotations = None;
                }
            }
        }
    }
}

/// The remote span context saved in `meta`'s [`TRACEPARENT_ANNOTATION`], as a parent for the
/// next span. Absent or malformed → an empty `Context` (the next span becomes a new root);
/// never panics.
pub fn extract(meta: &ObjectMeta) -> Context {
    let value = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRACEPARENT_ANNOTATION))
        .map(String::as_str);
    match value {
        Some(v) => from_traceparent(v),
        None => Context::new(),
    }
}

/// The `traceparent` value of `cx`'s span, if it has a valid one (e.g. for an HTTP header or a
/// log line).
///
/// The same value `TraceContextPropagator::inject_context` writes (`00-<trace id>-<span
/// id>-<flags & sampled>`), formatted directly: every traced write stamps one, and the
/// propagator's `format!` through `Display` of each id (plus the `tracestate` header it
/// builds and this carrier drops) cost several times more.
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, &sc.trace_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &sc.span_id().to_bytes());
    out.push('-');
    push_hex(
        &mut out,
        &[(sc.trace_flags() & TraceFlags::SAMPLED).to_u8()],
    );
    Some(out)
}

/// Lower-case hex of `bytes`, appended to `out`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// A context continuing the `traceparent` value `value`; malformed → empty `Context`.
///
/// The canonical form that [`traceparent`] writes (version `00`, lower-case ids, flags `00`
/// or `01`: every annotation this crate stamps) is parsed directly; anything else goes to
/// the SDK's `TraceContextPropagator`, whose rules decide. Every informer event of every
/// component is extracted, and the propagator's copy, split into a `Vec` and radix parses
/// were ~4 % of the controller manager's thread at 100,000 pods.
pub fn from_traceparent(value: &str) -> Context {
    if let Some(sc) = canonical(value) {
        return Context::new().with_remote_span_context(sc);
    }
    TraceContextPropagator::new()
        .extract_with_context(&Context::new(), &TraceparentOnly(Some(value.to_owned())))
}

/// `00-<32 lower hex>-<16 lower hex>-<00|01>` with non-zero ids, as a remote span context;
/// `None` for any other input (which may still be valid W3C, for the propagator to judge).
fn canonical(value: &str) -> Option<SpanContext> {
    let b = value.as_bytes();
    if b.len() != 55 || !b.starts_with(b"00-") || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let sampled = match &b[53..] {
        b"00" => false,
        b"01" => true,
        _ => return None,
    };
    let trace = lower_hex(&b[3..35])?;
    let span = lower_hex(&b[36..52])?;
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span as u64),
        flags,
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// The value of up to 32 lower-case hex digits; `None` on any other byte.
fn lower_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u128::from(v))
    })
}

/// A carrier for only the `traceparent` field (`tracestate` is not kept on objects).
struct TraceparentOnly(Option<String>);

/// The SDK propagator's output, to check [`traceparent`] against.
#[cfg(test)]
impl opentelemetry::propagation::Injector for TraceparentOnly {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

impl Extractor for TraceparentOnly {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the SDK's propagator alone makes of `value`.
    fn by_the_sdk(value: &str) -> SpanContext {
        TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &TraceparentOnly(Some(value.to_owned())))
            .span()
            .span_context()
            .clone()
    }

    /// The direct parse agrees with the SDK's propagator on canonical values and on every
    /// one-byte change of them (case, separators, version, flags, zero ids, lengths).
    #[test]
    fn the_direct_parse_agrees_with_the_propagator() {
        let mut values = vec![
            "00-00000000000000000000000000000abc-0000000000000012-01".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned(),
            "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01".to_owned(),
            "00-00000000000000000000000000000000-0000000000000012-01".to_owned(),
            "00-00000000000000000000000000000abc-0000000000000000-01".to_owned(),
            "01-00000000000000000000000000000abc-0000000000000012-01".to_owned(),
            "00-00000000000000000000000000000abc-0000000000000012-02".to_owned(),
            "00-00000000000000000000000000000abc-0000000000000012-01-".to_owned(),
            " 00-00000000000000000000000000000abc-0000000000000012-01".to_owned(),
        ];
        let base = values[1].clone();
        for i in 0..base.len() {
            for c in ['0', '1', '9', 'a', 'f', 'F', 'g', '-', ' ', 'x'] {
                let mut v = base.clone().into_bytes();
                v[i] = c as u8;
                values.push(String::from_utf8(v).unwrap());
            }
            values.push(format!("{}{}", &base[..i], &base[i + 1..]));
        }
        for value in values {
            let ours = from_traceparent(&value).span().span_context().clone();
            assert_eq!(ours, by_the_sdk(&value), "{value:?}");
        }
    }

    fn cx_with(trace: u128, span: u64) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    #[test]
    fn round_trips_through_an_annotation() {
        let mut meta = ObjectMeta::default();
        inject(&cx_with(0xabc, 0x12), &mut meta);
        assert_eq!(
            meta.annotations.as_ref().unwrap()[TRACEPARENT_ANNOTATION],
            "00-00000000000000000000000000000abc-0000000000000012-01"
        );
        let cx = extract(&meta);
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), TraceId::from(0xabcu128));
        assert_eq!(sc.span_id(), SpanId::from(0x12u64));
        assert!(sc.is_remote() && sc.is_sampled());
    }

    #[test]
    fn injecting_an_empty_context_removes_the_annotation() {
        let mut meta = ObjectMeta::default();
        inject(&cx_with(1, 1), &mut meta);
        meta.annotations
            .as_mut()
            .unwrap()
            .insert("other".into(), "kept".into());
        inject(&Context::new(), &mut meta);
        let annotations = meta.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(TRACEPARENT_ANNOTATION));
        assert_eq!(annotations["other"], "kept");

        let mut only = ObjectMeta::default();
        inject(&cx_with(1, 1), &mut only);
        inject(&Context::new(), &mut only);
        assert_eq!(only.annotations, None);
    }

    #[test]
    fn malformed_or_absent_annotations_give_an_empty_context() {
        let cases = [
            "",
            "garbage",
            "00-xyz-0000000000000012-01",
            "00-00000000000000000000000000000000-0000000000000012-01", // zero trace id
            "00-00000000000000000000000000000abc-0000000000000000-01", // zero span id
            "ff-00000000000000000000000000000abc-0000000000000012-01", // forbidden version
            "00-00000000000000000000000000000abc-0000000000000012-01-extra",
            "\u{1F980}\u{1F980}",
        ];
        for value in cases {
            let meta = ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    TRACEPARENT_ANNOTATION.to_owned(),
                    value.to_owned(),
                )])),
                ..ObjectMeta::default()
            };
            assert!(
                !extract(&meta).span().span_context().is_valid(),
                "{value:?} should not parse"
            );
        }
        assert!(!extract(&ObjectMeta::default())
            .span()
            .span_context()
            .is_valid());
    }

    #[test]
    fn traceparent_helpers_agree_with_the_annotation() {
        let cx = cx_with(5, 6);
        let tp = traceparent(&cx).unwrap();
        assert_eq!(
            from_traceparent(&tp).span().span_context().span_id(),
            SpanId::from(6u64)
        );
        assert_eq!(traceparent(&Context::new()), None);
    }

    /// The directly formatted value is exactly what the SDK's propagator writes, sampled or
    /// not, for small and full-width ids.
    #[test]
    fn traceparent_matches_the_sdk_propagator() {
        let cases = [
            (1u128, 1u64, TraceFlags::SAMPLED),
            (0xabc, 0x12, TraceFlags::default()),
            (u128::MAX, u64::MAX, TraceFlags::SAMPLED),
            (
                0x0af7651916cd43dd8448eb211c80319c,
                0xb7ad6b7169203331,
                TraceFlags::new(0xff),
            ),
        ];
        for (trace, span, flags) in cases {
            let cx = Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                flags,
                true,
                TraceState::default(),
            ));
            let mut carrier = TraceparentOnly(None);
            TraceContextPropagator::new().inject_context(&cx, &mut carrier);
            assert_eq!(traceparent(&cx), carrier.0, "{trace:x}/{span:x}");
        }
    }
}
