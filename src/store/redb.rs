//! redb engine. (Being written.)
