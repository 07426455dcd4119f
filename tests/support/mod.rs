//! Shared test support; include with `mod support;` from an integration test.
#![allow(dead_code)]

pub mod daemon;
pub mod http_server;
pub mod otlp_receiver;
