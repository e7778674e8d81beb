//! The error type of `upload-multipart`.

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when planning or running a multipart upload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object is larger than S3 allows: 10,000 parts of 5 GiB
    /// ([`MAX_OBJECT_SIZE`](crate::MAX_OBJECT_SIZE)).
    #[error("{size} bytes is larger than the S3 maximum object size of {max} bytes")]
    ObjectTooLarge {
        /// The object size in bytes.
        size: u64,
        /// The maximum in bytes, 53,687,091,200,000 (10,000 × 5 GiB).
        max: u64,
    },
    /// The object has 0 bytes: it has no multipart plan (S3 completes no
    /// upload without parts); send it with one PUT.
    #[error("an empty object (0 bytes) cannot be uploaded in parts; send it with one PUT")]
    EmptyObject,
    /// Part numbers outside 1..=10000, reversed, or more than 1000 at once
    /// were asked for.
    #[error(
        "part numbers {first}..={last} must be ascending, within 1..=10000, and at most 1000 at once"
    )]
    PartNumbersOutOfRange {
        /// First part number asked for.
        first: u32,
        /// Last part number asked for.
        last: u32,
    },
    /// The body ended (or failed) before the declared size.
    #[error("the body ended before {expected} bytes, reading at byte {at}: {reason}")]
    ShortBody {
        /// The declared size in bytes.
        expected: u64,
        /// Offset of the part being read.
        at: u64,
        /// The read error.
        reason: String,
    },
    /// The body holds more than the declared size (a file that grew while
    /// it was uploaded): the upload is not completed with a cut copy.
    #[error("the body is longer than the declared {expected} bytes")]
    LongBody {
        /// The declared size in bytes.
        expected: u64,
    },
    /// The file to upload could not be opened or its size read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A resume state file could not be read or written, or is for another
    /// upload.
    #[error("resume state {path}: {reason}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The upload was cancelled; it is left in place to resume (or for the
    /// sweeper to abort).
    #[error("upload {upload_id} cancelled; resume it from its state file")]
    Cancelled {
        /// The upload ID.
        upload_id: String,
    },
    /// A completion was refused before it reached the store.
    #[error(transparent)]
    Completion(#[from] crate::session::CompletionError),
    /// A store error (no such upload, invalid part, entity too small, ...).
    #[error(transparent)]
    Store(#[from] upload_core::Error),
    /// Presigning a part URL failed.
    #[error(transparent)]
    Presign(#[from] upload_presign::Error),
}
