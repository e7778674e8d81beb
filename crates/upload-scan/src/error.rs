//! The error type of `upload-scan`.

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while scanning or quarantining.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scanner could not be reached or failed mid-scan; no verdict was
    /// reached. Retry later: the upload must stay where it is and the message
    /// on the queue (not quarantined, not clean).
    #[error("scanner unavailable: {reason}")]
    ScannerUnavailable {
        /// What failed.
        reason: String,
    },
    /// Reading the object or writing the quarantine copy failed.
    #[error(transparent)]
    Storage(#[from] upload_core::Error),
    /// The quarantine copy does not match the original (size or ETag), so
    /// the original was kept.
    #[error("quarantine copy of {key} does not match the original: {reason}")]
    QuarantineMismatch {
        /// The original key.
        key: String,
        /// What differs.
        reason: String,
    },
    /// The object is not the version that was scanned any more (it was
    /// replaced meanwhile): nothing was moved; the new version's own event
    /// scans it.
    #[error("{key} changed since it was scanned: ETag {found}, scanned {expected}")]
    ObjectChanged {
        /// The object key.
        key: String,
        /// ETag of the version scanned.
        expected: String,
        /// ETag of the version stored now.
        found: String,
    },
    /// The scanner's version reply (clamd `VERSION`) is not
    /// `{engine}[/{database}[/{date}]]` with a printable engine, a decimal
    /// database number and a printable date: a garbled or hostile reply.
    #[error("invalid scanner version reply {reply:?}: {reason}")]
    InvalidScannerVersion {
        /// The reply (at most 200 characters, non-printable ones as `?`).
        reply: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A verdict of [`crate::Verdict::Clean`] was passed to
    /// [`crate::Quarantine::quarantine`].
    #[error("refusing to quarantine a clean object {key}")]
    NotQuarantinable {
        /// The object key.
        key: String,
    },
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ScannerUnavailable { .. } => true,
            Error::Storage(e) => e.is_transient(),
            _ => false,
        }
    }
}
