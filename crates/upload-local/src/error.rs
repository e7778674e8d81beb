//! [`LocalError`]: what can go wrong when the local mode starts or stops.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong opening, running or stopping the local mode. Each
/// variant names the file, address or component that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A file or directory under the data directory could not be created,
    /// read or written (missing permission, full disk).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secrets file exists but is not what the local mode wrote (not
    /// JSON, a field missing, a session secret that is not 64 hex digits).
    /// Nothing is overwritten: move the file away to start with new keys
    /// (every presigned URL and multipart session issued before is then
    /// refused).
    #[error("{path} is not a local-mode secrets file: {reason}")]
    CorruptSecrets {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An address could not be bound (in use, not local).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The configuration is invalid (a policy size, a part size, a CORS
    /// origin).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bucket directory could not be opened as storage.
    #[error("bucket {bucket}: {source}")]
    Bucket {
        /// The bucket name.
        bucket: String,
        /// The adapter's error.
        source: upload_object_store::BuildError,
    },
    /// The queue file could not be opened (locked by another process
    /// running on the same data directory, damaged, unreadable).
    #[error("queue: {0}")]
    Queue(#[source] upload_pipeline::Error),
    /// The start-up reconciliation could not read a bucket or send an
    /// event.
    #[error("reconciliation: {0}")]
    Reconcile(String),
    /// Building the presigner failed.
    #[error(transparent)]
    Presign(#[from] upload_presign::Error),
    /// A server or the worker stopped with an error, or its task panicked.
    #[error("{component} stopped: {reason}")]
    Stopped {
        /// `api`, `endpoint` or `worker`.
        component: &'static str,
        /// The error.
        reason: String,
    },
}
