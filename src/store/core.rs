//! The engine-independent part of a store. (Being written.)
use super::*;

/// The durable part of a store.
pub trait Engine: Send + 'static {}

/// A store over an engine.
pub struct CoreStore {}
