//! The error type of `upload-core`.

use std::ops::Range;

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `upload-core`, named from the caller's
/// point of view. Each variant carries the key or value that failed.
///
/// The storage variants mirror the S3 error codes they stand for
/// (`NoSuchKey`, `PreconditionFailed`, `InvalidRange`, `NoSuchUpload`,
/// `InvalidPart`, `InvalidPartOrder`, `EntityTooSmall`), so that the
/// in-memory and S3 implementations fail the same way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bucket name S3 would refuse (3..=63 characters of lowercase
    /// letters, digits, `-` and `.`, starting and ending with a letter or
    /// digit).
    #[error("invalid bucket name {bucket:?}")]
    InvalidBucketName {
        /// The refused name.
        bucket: String,
    },
    /// The object key is not a valid key (see [`crate::ObjectKey`]).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key (lossy, for display).
        key: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// The upload policy itself is malformed (no types, zero size, bad MIME).
    #[error("invalid upload policy: {reason}")]
    InvalidPolicy {
        /// What is wrong with it.
        reason: String,
    },
    /// The content type is not one the policy allows.
    #[error("content type {content_type:?} is not allowed (allowed: {allowed})")]
    ContentTypeNotAllowed {
        /// The refused content type.
        content_type: String,
        /// The allowed types, comma separated.
        allowed: String,
    },
    /// The object is larger than the policy's maximum.
    #[error("{size} bytes is larger than the maximum of {max} bytes")]
    TooLarge {
        /// The size asked for, in bytes.
        size: u64,
        /// The policy's maximum, in bytes.
        max: u64,
    },
    /// A presigned URL expiry outside 1 s..=7 days or not a whole number of
    /// seconds (the SigV4 limits: `X-Amz-Expires` is an integer).
    #[error("expiry of {expiry:?} is not a whole number of seconds in 1..=604800")]
    ExpiryOutOfRange {
        /// The refused expiry.
        expiry: std::time::Duration,
    },
    /// A tag set that S3 would refuse (more than 10 tags, key not
    /// 1..=128 characters, value over 256 characters).
    #[error("invalid object tag {key:?}: {reason}")]
    InvalidTag {
        /// The offending tag key.
        key: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// No object under that key (S3 `NoSuchKey`, HTTP 404).
    #[error("no object {key} in bucket {bucket}")]
    NotFound {
        /// The bucket searched.
        bucket: String,
        /// The missing key.
        key: String,
    },
    /// A create-only write found an object already there (S3
    /// `PreconditionFailed`, HTTP 412, from `If-None-Match: *`).
    #[error("object {key} already exists in bucket {bucket}")]
    AlreadyExists {
        /// The bucket written to.
        bucket: String,
        /// The existing key.
        key: String,
    },
    /// A conditional write found another version than the one it was
    /// based on (S3 `PreconditionFailed`, HTTP 412, from `If-Match`; or
    /// `ConditionalRequestConflict`, HTTP 409, when another conditional
    /// write to the key was in progress): read the object again and
    /// decide anew.
    #[error("object {key} in bucket {bucket} changed since it was read")]
    PreconditionFailed {
        /// The bucket written to.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A byte range that is empty or starts past the end (S3 `InvalidRange`,
    /// HTTP 416).
    #[error("range {range:?} is not satisfiable for {key} of {size} bytes")]
    InvalidRange {
        /// The object key.
        key: String,
        /// The requested byte range (end exclusive).
        range: Range<u64>,
        /// The object size in bytes.
        size: u64,
    },
    /// The event message is not a JSON S3 event notification.
    #[error("malformed event message: {reason}")]
    MalformedEvent {
        /// Why it was refused (the JSON parser's message).
        reason: String,
    },
    /// The multipart upload ID is unknown, completed or aborted (S3
    /// `NoSuchUpload`, HTTP 404).
    #[error("no multipart upload {upload_id} for key {key}")]
    NoSuchUpload {
        /// The key the upload was for.
        key: String,
        /// The unknown upload ID.
        upload_id: String,
    },
    /// A part number outside 1..=10000 (S3 `InvalidArgument`).
    #[error("part number {part_number} is outside 1..=10000")]
    InvalidPartNumber {
        /// The refused part number.
        part_number: u32,
    },
    /// A completed part that was never uploaded or whose ETag does not match
    /// (S3 `InvalidPart`).
    #[error("part {part_number} was not uploaded with ETag {etag:?}")]
    InvalidPart {
        /// The part number.
        part_number: u32,
        /// The ETag the caller gave.
        etag: String,
    },
    /// The completion list is empty or not in strictly ascending part order
    /// (S3 `InvalidPartOrder`).
    #[error("parts must be listed in strictly ascending order, at least one")]
    InvalidPartOrder,
    /// A part other than the last is below the 5 MiB minimum (S3
    /// `EntityTooSmall`).
    #[error("part {part_number} is {size} bytes, below the minimum of {min} bytes")]
    EntityTooSmall {
        /// The part number.
        part_number: u32,
        /// Its size in bytes.
        size: u64,
        /// The minimum part size in bytes.
        min: u64,
    },
    /// A part's body does not match the checksum sent with it (S3
    /// `BadDigest`, 400): the bytes changed on the way, nothing was stored.
    /// Transient: sending the same bytes again is the fix.
    #[error("part {part_number}: the body does not match its {algorithm} checksum {expected}")]
    BadDigest {
        /// The part number (0 when S3 did not say).
        part_number: u32,
        /// `CRC32C` or `SHA256`.
        algorithm: &'static str,
        /// The checksum that was sent (base64).
        expected: String,
    },
    /// The bucket does not exist (S3 `NoSuchBucket`).
    #[error("bucket {bucket} does not exist")]
    NoSuchBucket {
        /// Bucket name.
        bucket: String,
    },
    /// The store refused the request's credentials or signature (HTTP
    /// 403: `AccessDenied`, `SignatureDoesNotMatch`,
    /// `InvalidAccessKeyId`, `ExpiredToken`). Not transient: fix the
    /// credentials, the bucket policy or the clock.
    #[error("access denied to {key} in bucket {bucket}: {reason}")]
    AccessDenied {
        /// Bucket name.
        bucket: String,
        /// Object key or prefix.
        key: String,
        /// Operation, S3 error code and message.
        reason: String,
    },
    /// An S3 error with no variant of its own, with S3's error code (e.g.
    /// `EntityTooLarge`, `InvalidArgument`) and HTTP status.
    #[error("S3 {operation} failed with {code} (HTTP {status}): {message}")]
    S3 {
        /// S3 operation name, e.g. `PutObject`.
        operation: &'static str,
        /// S3 error code.
        code: String,
        /// HTTP status, 0 when there was no response.
        status: u16,
        /// S3's message, with the bucket and key.
        message: String,
    },
    /// The store could not be reached or answered with a server error; the
    /// operation may succeed if retried.
    #[error("storage unavailable: {reason}")]
    Unavailable {
        /// The underlying error, for logs.
        reason: String,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed (network and server
    /// errors), as opposed to errors in the request itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::BadDigest { .. })
    }
}
