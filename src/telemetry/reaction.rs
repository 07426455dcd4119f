//! Reaction spans: how a component's reaction to a watch event relates to its cause.
//!
//! A *reaction* is work a component starts because an object changed: a controller's sync, a
//! scheduling attempt, a kubelet pod sync. Its cause is the context saved on the object by the
//! write that changed it ([`super::extract`]). Every component starts its reaction spans
//! through [`start_reaction`], so the one rule below holds everywhere:
//!
//! * [`Propagation::Child`] (the default): the reaction is a child of its cause — one user
//!   action is one trace, from the HTTP request down to the last container start.
//! * [`Propagation::Link`]: the reaction is the root of a trace of its own, with a span link
//!   to its cause (Kubernetes' KEP-5915 proposal). Each reconcile is then a short trace;
//!   following the links from a container start leads back to the user's request.
//!
//! A cause with no valid span context (an object written by background work) starts nothing:
//! callers only call [`start_reaction`] for traced causes.

use opentelemetry::trace::{Link, SpanBuilder, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::trace::SdkTracer;
use serde::Deserialize;

/// `[telemetry] propagation`: how reactions relate to their causes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// A reaction is a child span of its cause: one trace per user action.
    #[default]
    Child,
    /// A reaction starts a new trace whose root links to its cause (KEP-5915).
    Link,
}

impl Propagation {
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Child => "child",
            Propagation::Link => "link",
        }
    }
}

/// Start the reaction span `builder` caused by `cause`, per `propagation`; returns the context
/// holding it (pass it on to the reaction's writes and child spans; end it with
/// `cx.span().end()`).
pub fn start_reaction(
    tracer: &SdkTracer,
    propagation: Propagation,
    builder: SpanBuilder,
    cause: &Context,
) -> Context {
    match propagation {
        Propagation::Child => {
            let span = builder.start_with_context(tracer, cause);
            cause.with_span(span)
        }
        Propagation::Link => {
            let cause = cause.span().span_context().clone();
            let builder = if cause.is_valid() {
                builder.with_links(vec![Link::with_context(cause)])
            } else {
                builder
            };
            let root = Context::new();
            let span = builder.start_with_context(tracer, &root);
            root.with_span(span)
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::Tracer;

    use super::*;
    use crate::telemetry::{Component, Telemetry};

    fn cause(t: &Telemetry) -> Context {
        let span = t
            .tracer(Component::ApiServer)
            .start("kubectl create deployments/web");
        Context::new().with_span(span)
    }

    #[test]
    fn child_mode_continues_the_cause_trace() {
        let t = Telemetry::in_memory(10);
        let cause = cause(&t);
        let tracer = t.tracer(Component::ControllerManager);
        let cx = start_reaction(
            &tracer,
            Propagation::Child,
            SpanBuilder::from_name("sync deployment default/web"),
            &cause,
        );
        cx.span().end();
        cause.span().end();
        let spans = t.span_store().spans();
        let sync = spans.iter().find(|s| s.name.starts_with("sync")).unwrap();
        let request = cause.span().span_context().clone();
        assert_eq!(sync.trace_id, request.trace_id());
        assert_eq!(sync.parent_span_id, Some(request.span_id()));
    }

    #[test]
    fn link_mode_starts_a_root_that_links_to_the_cause() {
        let t = Telemetry::in_memory(10);
        let cause = cause(&t);
        let tracer = t.tracer(Component::ControllerManager);
        let cx = start_reaction(
            &tracer,
            Propagation::Link,
            SpanBuilder::from_name("sync deployment default/web"),
            &cause,
        );
        let reaction = cx.span().span_context().clone();
        cx.span().end();
        cause.span().end();
        let request = cause.span().span_context().clone();
        assert_ne!(reaction.trace_id(), request.trace_id());
        let spans = t.span_store().spans();
        let sync = spans.iter().find(|s| s.name.starts_with("sync")).unwrap();
        assert_eq!(sync.parent_span_id, None);
        let links: Vec<_> = sync
            .links
            .iter()
            .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
            .collect();
        assert_eq!(
            links,
            vec![(request.trace_id(), request.span_id())],
            "the root links to the request"
        );
    }

    #[test]
    fn link_mode_without_a_cause_starts_a_plain_root() {
        let t = Telemetry::in_memory(10);
        let tracer = t.tracer(Component::Scheduler);
        let cx = start_reaction(
            &tracer,
            Propagation::Link,
            SpanBuilder::from_name("schedule pod default/a"),
            &Context::new(),
        );
        cx.span().end();
        let spans = t.span_store().spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_span_id, None);
        assert!(spans[0].links.is_empty());
    }
}
