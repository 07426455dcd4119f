//! Trace context through actor messages.

use opentelemetry::Context;

/// A message together with the trace context it belongs to.
///
/// The sender wraps the message with the context of its current span; the handler starts its
/// own span as a child of `cx` (`tracer.start_with_context(name, &m.cx)`) and ends it when its
/// work (or future) completes. The reply type is the wrapped message's, so
/// `addr.send(Traced::new(cx, msg))` answers exactly what `addr.send(msg)` would.
///
/// `Context` is `Send + Sync`, so a `Traced<M>` crosses arbiters like `M` does.
#[derive(Clone, Debug)]
pub struct Traced<M> {
    pub cx: Context,
    pub msg: M,
}

impl<M> Traced<M> {
    pub fn new(cx: Context, msg: M) -> Traced<M> {
        Traced { cx, msg }
    }

    /// `msg` with no trace context (a handler then starts a new root, subject to sampling).
    pub fn untraced(msg: M) -> Traced<M> {
        Traced {
            cx: Context::new(),
            msg,
        }
    }

    pub fn into_parts(self) -> (Context, M) {
        (self.cx, self.msg)
    }
}

impl<M: actix::Message> actix::Message for Traced<M> {
    type Result = M::Result;
}
