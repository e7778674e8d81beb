//! Conformance suites, written once and run against every implementation
//! (in the style of object_store's shared integration tests).
//!
//! Each suite is a set of plain async functions taking the implementation
//! under test; `run_all` calls every one. The in-memory implementations run
//! them in `cargo test`; S3-side ones run them against real local servers.
//! A failed check panics with a message naming the check, as a test should.

pub mod counting;
pub mod multipart;
pub mod storage;

use crate::key::ObjectKey;

/// A key under a per-run prefix, so suites can share a bucket.
pub fn key(prefix: &str, name: &str) -> ObjectKey {
    ObjectKey::new(format!("{prefix}/{name}")).expect("testkit keys are valid")
}
