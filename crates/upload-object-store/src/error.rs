//! Errors of building a store, and the mapping of `object_store` errors
//! onto the SDK's [`upload_core::Error`].

/// Why an [`ObjectStoreStorage`](crate::ObjectStoreStorage) could not be
/// built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The bucket (container) name is one S3 would refuse; the SDK's
    /// events and keys use S3's rules for every backend.
    #[error(transparent)]
    InvalidBucketName(#[from] upload_core::Error),
    /// The local directory could not be created or opened.
    #[error("local directory {path}: {source}")]
    Directory {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `object_store` refused the configuration (bad URL, bad key, ...).
    #[error("object_store configuration: {0}")]
    Backend(#[from] object_store::Error),
}

/// Maps an `object_store` error of `operation` on `key` onto the SDK's
/// error, naming `bucket`.
pub(crate) fn map(
    bucket: &str,
    key: &str,
    operation: &'static str,
    e: object_store::Error,
) -> upload_core::Error {
    use object_store::Error as E;
    use upload_core::Error as U;
    match e {
        E::NotFound { .. } => U::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
        E::AlreadyExists { .. } => U::AlreadyExists {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
        E::Precondition { .. } | E::NotModified { .. } => U::PreconditionFailed {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => U::AccessDenied {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: format!("{operation}: {e}"),
        },
        E::NotImplemented { .. } | E::NotSupported { .. } => U::S3 {
            operation,
            code: "NotImplemented".to_owned(),
            status: 501,
            message: format!("{bucket}/{key}: {e}"),
        },
        other => U::Unavailable {
            reason: format!("{operation} {bucket}/{key}: {other}"),
        },
    }
}
