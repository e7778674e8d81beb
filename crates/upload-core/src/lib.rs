//! Shared vocabulary of the upload SDK.
//!
//! Every other crate of the SDK speaks these types:
//!
//! - [`ObjectKey`]: a validated S3 object key, and [`upload_key`] which picks
//!   one server-side (`uploads/{owner}/{uuid}.{ext}`).
//! - [`UploadPolicy`]: allowed content types, maximum size and presigned URL
//!   expiry.
//! - [`sniff()`]: the real content type from magic bytes; declared
//!   `Content-Type` headers and file extensions are never trusted.
//! - [`event`]: the S3 event notification model (`s3:ObjectCreated:*`,
//!   `s3:TestEvent`) with URL-decoded keys.
//! - [`Storage`] with [`MemoryStorage`], and [`MultipartStore`]: the object
//!   store seen by presigning, scanning and the pipeline.
//! - [`cors::CorsConfig`]: the bucket CORS rule browser uploads need, and
//!   how S3 evaluates it (applied on S3 with the `s3` feature, answered by
//!   `upload-presign`'s local endpoint).
//! - [`UploadSigner`]: signs one single-request upload (S3 presigned PUT,
//!   Azure SAS), with what each signer pins typed in
//!   [`sign::SignerCapabilities`].
//! - [`Error`]: the error type of this crate ([`sign::SignError`] wraps it
//!   for signers).
//!
//! With the `testkit` feature, `testkit` holds the conformance suites that
//! every implementation of [`Storage`] and [`MultipartStore`] must pass.

pub mod cors;
pub mod error;
pub mod event;
pub mod key;
pub mod metadata;
pub mod multipart;
pub mod policy;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sign;
pub mod sniff;
pub mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timestamp;
pub mod trace;

pub use bytes::Bytes;
pub use error::{Error, Result};
pub use event::{EventMessage, EventSink, S3EventRecord, parse_event_message};
pub use key::{LONG_KEY_DIR, ObjectKey, upload_key};
pub use multipart::{
    ChecksumAlgorithm, CompletedPart, MultipartStore, MultipartUploadInfo, PartChecksum,
    PartHasher, UploadedPart,
};
pub use policy::{MEDIA_CONTENT_TYPES, UploadPolicy};
pub use sign::{PutToSign, SignError, SignedUpload, SignerCapabilities, UploadSigner};
pub use sniff::{SNIFF_LEN, Sniffed, Unrecognized, extension_for, same_type, sniff};
pub use storage::{ByteStream, GetResult, MemoryStorage, ObjectMeta, PutOptions, Storage, Tags};
