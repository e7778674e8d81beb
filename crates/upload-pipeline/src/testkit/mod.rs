//! Conformance suites for this crate's traits (feature `testkit`).

pub mod codec;
pub mod metrics;
pub mod notify;
pub mod queue;
