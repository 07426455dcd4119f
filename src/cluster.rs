//! Wiring. (Being written.)
