//! Conformance suites: one per port, run on every adapter set.
//!
//! Each case is a function over a fresh [`Adapters`](crate::fixtures::Adapters); `suite/`
//! turns every case into one test per adapter set.

pub mod blobs;
pub mod queue;
pub mod secrets;
pub mod store;

/// Current Unix time in seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}
