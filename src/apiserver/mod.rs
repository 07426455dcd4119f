//! The ApiServer actor. (Being written.)
