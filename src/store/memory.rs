//! The `memory` engine: nothing is persisted, every commit succeeds at once. For tests and
//! for runs that do not need to survive a restart; all contracts except Restart hold.

use std::sync::Arc;

use super::{CoreStore, Engine, Event, KeyValue, Revision, StoreError, StoreOptions};

/// An engine that keeps nothing: the [`CoreStore`]'s own map is the only copy.
#[derive(Debug, Default)]
pub struct MemoryEngine;

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine
    }
}

impl Engine for MemoryEngine {
    fn load(&mut self) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        Ok((Vec::new(), 1))
    }

    fn commit(&mut self, _batch: &[Arc<Event>], _new_revision: Revision) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An empty in-memory store at revision 1.
pub fn open(opts: StoreOptions) -> Arc<CoreStore> {
    match CoreStore::new(MemoryEngine, opts) {
        Ok(store) => store,
        // Loading an empty memory engine cannot fail; only spawning the thread can.
        Err(e) => panic!("cannot start the in-memory store: {e}"),
    }
}
