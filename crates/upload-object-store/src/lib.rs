//! The upload SDK's [`Storage`](upload_core::Storage) and
//! [`MultipartStore`](upload_core::MultipartStore) traits over any
//! [`object_store::ObjectStore`]: files on local disk
//! ([`LocalFileSystem`](object_store::local::LocalFileSystem)), memory
//! ([`InMemory`](object_store::memory::InMemory)) and, with feature
//! `azure`, Azure Blob Storage (and Azurite).
//!
//! With a backend that can sign (Azure: a service SAS),
//! [`ObjectStoreStorage`] is an [`UploadSigner`](upload_core::UploadSigner):
//! the upload API hands out its URLs through the interface of S3
//! presigned PUTs (`ServerConfig::with_upload_signer` in `upload-server`).
//!
//! [`ObjectStoreStorage`] passes the same conformance suites as
//! `MemoryStorage` and `S3Storage` (`upload_core::testkit::storage::run_all`
//! and `testkit::multipart::run_all`) on all three.
//!
//! **What S3 has and `object_store` lacks** (readable tags, user metadata
//! on every backend, the S3 ETag, ListParts) is kept by the adapter in
//! small JSON *sidecar* objects under the reserved prefix
//! [`RESERVED_PREFIX`], each bound to the backend ETag of the object it
//! describes: a sidecar whose object was rewritten by anyone is ignored,
//! so a replaced object reads as untagged and unscanned (fail closed). See
//! [`ObjectStoreStorage`] for the details and [`Capabilities`] for what
//! each backend keeps natively.

mod capabilities;
mod error;
mod multipart;
mod sidecar;
mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use capabilities::Capabilities;
pub use error::BuildError;
pub use storage::{ObjectStoreStorage, RESERVED_PREFIX, STREAM_CHUNK};
/// A signed upload URL and the headers to send with it (from
/// `upload_core`, shared with S3 presigned PUTs).
pub use upload_core::sign::SignedUpload;

/// The `object_store` crate this adapter is built on (0.14), re-exported so
/// that callers build stores without matching its version themselves.
pub use object_store;
