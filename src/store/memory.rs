//! In-memory engine. (Being written.)
