//! The error type of `upload-pipeline`.

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the pipeline, named from the caller's
/// point of view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not in an image format the codec decodes (or not an
    /// image at all): HEIC, AVIF, JXL, PSD, ... without a decoder.
    #[error("unsupported image format: {format}")]
    UnsupportedImage {
        /// The format, as recognised from magic bytes, or `unknown`.
        format: String,
    },
    /// The image header declares more than the decode limits allow; refused
    /// before any pixel buffer is allocated (decompression-bomb guard).
    #[error("image of {width}x{height} exceeds the decode limits: {limit}")]
    ImageTooLarge {
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
        /// Which limit was hit, with its value.
        limit: String,
    },
    /// The image is truncated or corrupt.
    #[error("corrupt or truncated image: {reason}")]
    CorruptImage {
        /// The decoder's message.
        reason: String,
    },
    /// A [`MediaProcessor`](crate::media::MediaProcessor) refused the
    /// upload: encrypted, broken, over one of its limits, or its tool timed
    /// out. The worker records the upload as rejected with this message
    /// as the reason (see [`Error::is_rejection`]).
    #[error("{reason}")]
    MediaRejected {
        /// The upload's sniffed type, e.g. `application/pdf`.
        content_type: String,
        /// Why.
        reason: crate::media::MediaRejection,
    },
    /// The processor of this type needs a program that is not installed
    /// (e.g. `pdftoppm`, `ffmpeg`): the upload is rejected as unsupported
    /// here; `install` says what to install.
    #[error("{content_type} is not supported here: {tool} is not installed ({install})")]
    MediaUnsupported {
        /// The upload's sniffed type.
        content_type: String,
        /// The missing program.
        tool: String,
        /// How to install it, e.g. `apt install poppler-utils`.
        install: &'static str,
    },
    /// Encoding a variant failed.
    #[error("encoding variant {variant} failed: {reason}")]
    EncodeFailed {
        /// The variant name.
        variant: String,
        /// The encoder's message.
        reason: String,
    },
    /// A variant spec that cannot be rendered (zero size, bad quality, bad
    /// name).
    #[error("invalid variant spec {name:?}: {reason}")]
    InvalidVariantSpec {
        /// The variant name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The receipt handle was not issued by this queue (SQS
    /// `ReceiptHandleIsInvalid`).
    #[error("receipt handle {receipt_handle:?} is invalid")]
    ReceiptHandleIsInvalid {
        /// The refused handle.
        receipt_handle: String,
    },
    /// The message is not in flight under this receipt handle any more: it
    /// was deleted, or became visible again and was received anew (SQS
    /// `MessageNotInflight`).
    #[error("message of receipt handle {receipt_handle:?} is not in flight")]
    MessageNotInflight {
        /// The stale handle.
        receipt_handle: String,
    },
    /// A message body over the 256 KiB SQS limit.
    #[error("message of {bytes} bytes is longer than the {max}-byte maximum")]
    MessageTooLong {
        /// The body size in bytes.
        bytes: usize,
        /// The maximum in bytes.
        max: usize,
    },
    /// A queue parameter outside its SQS range (batch size 1..=10, wait
    /// 0..=20 s, visibility timeout 0..=12 h).
    #[error("invalid queue parameter {name}: {reason}")]
    InvalidQueueParameter {
        /// The parameter.
        name: &'static str,
        /// Its allowed range.
        reason: String,
    },
    /// An SQS error with no variant of its own (e.g. `QueueDoesNotExist`,
    /// `AccessDenied`, `InvalidAttributeValue`), with its code and HTTP
    /// status. Not transient: fix the configuration.
    #[error("SQS {operation} failed with {code} (HTTP {status}): {message}")]
    Sqs {
        /// SQS operation name, e.g. `ReceiveMessage`.
        operation: &'static str,
        /// SQS error code.
        code: String,
        /// HTTP status, 0 when there was no response.
        status: u16,
        /// SQS's message, with the queue URL.
        message: String,
    },
    /// A NATS JetStream API request was refused (feature `nats`): a stream
    /// or consumer whose configuration conflicts with the one asked for, a
    /// name the server does not accept, a permission. Not transient: fix
    /// the configuration.
    #[error("NATS JetStream {operation} failed: {message}")]
    Nats {
        /// What was asked, e.g. `create stream`.
        operation: &'static str,
        /// The server's or the client's description, with the stream or
        /// consumer name.
        message: String,
    },
    /// The queue could not be reached; retry later.
    #[error("queue unavailable: {reason}")]
    QueueUnavailable {
        /// The underlying error.
        reason: String,
    },
    /// The disk queue's database file is open already: in another
    /// process, or through another `DiskQueue::open` in this one (the
    /// file is locked while open; feature `disk-queue`).
    #[error(
        "queue file {} is open in another process (or elsewhere in this one): one queue process per file", path.display()
    )]
    QueueFileLocked {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// The disk queue's database file is not a queue database of this
    /// version, or is damaged (feature `disk-queue`). Move it aside to
    /// start with an empty queue.
    #[error("queue file {} is corrupt or not a disk queue: {reason}", path.display())]
    QueueFileCorrupt {
        /// The database file.
        path: std::path::PathBuf,
        /// What is wrong, as the database reports it.
        reason: String,
    },
    /// The disk queue's database file cannot be created or opened: missing
    /// directory, permissions, no randomness for the receipt-handle key
    /// (feature `disk-queue`).
    #[error("queue file {} cannot be opened: {reason}", path.display())]
    QueueFile {
        /// The database file.
        path: std::path::PathBuf,
        /// The operating system's or the database's message.
        reason: String,
    },
    /// A storage error while processing (reading the original, writing
    /// variants or the manifest).
    #[error(transparent)]
    Storage(#[from] upload_core::Error),
    /// A scanning or quarantine error (scanner down, quarantine copy
    /// mismatch).
    #[error(transparent)]
    Scan(#[from] upload_scan::Error),
    /// A manifest in the processed store that is not valid JSON of the
    /// expected shape.
    #[error("manifest {key} is corrupt: {reason}")]
    CorruptManifest {
        /// The manifest key.
        key: String,
        /// The parser's message.
        reason: String,
    },
    /// A rescan was asked to compare databases, but the scanner does not
    /// report a database version and none was given
    /// ([`RescanOptions::older_than`](crate::rescan::RescanOptions::older_than)).
    #[error(
        "the scanner ({engine}) reports no signature database version: give the database to compare against"
    )]
    NoDatabaseVersion {
        /// The engine, as the scanner names it, or `unknown`.
        engine: String,
    },
    /// The image task panicked or was cancelled (a bug, reported rather than
    /// propagated).
    #[error("image task failed: {reason}")]
    TaskFailed {
        /// The join error.
        reason: String,
    },
    /// The outcome could not be handed to the
    /// [`Notifier`](crate::notify::Notifier): the message stays on the
    /// queue and is delivered again (the notification then carries the
    /// same ID).
    #[error("notification failed: {0}")]
    Notify(Box<crate::notify::NotifyError>),
    /// A deployment plan that cannot be applied as given
    /// (`deploy::SetupPlan`, feature `sqs`), e.g. denying reads of
    /// unscanned uploads without naming the worker's principal, which
    /// must still read them.
    #[error("invalid deployment plan: {reason}")]
    InvalidDeployPlan {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A step of `deploy::setup` (feature `sqs`) failed: `step` names it
    /// (e.g. `configuring CORS`), `source` is the store's or the queue's
    /// error.
    #[error("{step}: {source}")]
    DeployStep {
        /// The step that failed.
        step: &'static str,
        /// Its error.
        #[source]
        source: Box<Error>,
    },
    /// The process is not running under an AWS Lambda runtime: an
    /// environment variable the runtime sets is missing or invalid (the
    /// `lambda` module's `run`, feature `lambda`).
    #[error("not running under AWS Lambda: {name} {problem}")]
    LambdaEnvironment {
        /// The variable, e.g. `AWS_LAMBDA_RUNTIME_API`.
        name: &'static str,
        /// What is wrong with it: `is not set`, `is not a whole number`.
        problem: &'static str,
    },
    /// The Lambda runtime API client stopped: the runtime API refused or
    /// dropped a request (the `lambda` module's `run`, feature `lambda`).
    #[error("Lambda runtime stopped: {reason}")]
    LambdaRuntime {
        /// The runtime client's message.
        reason: String,
    },
}

impl From<crate::notify::NotifyError> for Error {
    fn from(e: crate::notify::NotifyError) -> Self {
        Error::Notify(Box::new(e))
    }
}

impl Error {
    /// Whether this error refuses the upload itself (the same bytes would
    /// fail the same way): an image that is unsupported, too large or
    /// corrupt, and [`Error::MediaRejected`] and [`Error::MediaUnsupported`].
    /// The worker records such an upload as
    /// [`Rejected`](crate::Outcome::Rejected); any other error fails the
    /// record, which is delivered again.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedImage { .. }
                | Error::ImageTooLarge { .. }
                | Error::CorruptImage { .. }
                | Error::MediaRejected { .. }
                | Error::MediaUnsupported { .. }
        )
    }

    /// Whether this is a queue message that is not an S3 event at all (not
    /// JSON, none of the known shapes, too long): no delivery
    /// of the same body can succeed.
    pub fn is_malformed_message(&self) -> bool {
        matches!(
            self,
            Error::Storage(upload_core::Error::MalformedEvent { .. })
        )
    }
}
