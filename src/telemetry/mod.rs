//! Telemetry: one tracer provider per component, context propagation, OTLP, span store.
//! (Being written.)
