//! The [`Scanner`] trait and its [`Verdict`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use upload_core::ByteStream;

use crate::error::Result;

/// The outcome of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// No signature matched.
    Clean,
    /// A signature matched.
    Infected {
        /// The signature name as the scanner reports it, e.g.
        /// `Win.Test.EICAR_HDB-1` (names from unsigned local databases carry
        /// a `.UNOFFICIAL` suffix in clamd).
        signature: String,
    },
    /// The scanner answered but could not judge the content. Fail-closed:
    /// treated like infected for quarantine purposes.
    Unscannable {
        /// Why.
        reason: UnscannableReason,
    },
}

impl Verdict {
    /// Whether the upload may proceed (only [`Verdict::Clean`]).
    pub fn is_clean(&self) -> bool {
        matches!(self, Verdict::Clean)
    }

    /// The value of the `scan-status` tag for this verdict: `CLEAN`,
    /// `INFECTED` or `UNSCANNABLE` (as bucket-antivirus-function uses).
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::Clean => "CLEAN",
            Verdict::Infected { .. } => "INFECTED",
            Verdict::Unscannable { .. } => "UNSCANNABLE",
        }
    }
}

/// Why a scanner could not judge an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnscannableReason {
    /// The object is larger than the scanner accepts (clamd
    /// `StreamMaxLength`).
    TooLarge {
        /// The scanner's limit in bytes.
        limit: u64,
    },
    /// The scan did not finish in time.
    Timeout,
    /// The content is encrypted (e.g. a password-protected archive).
    Encrypted,
    /// The scanner reported an error about this content.
    ScannerError {
        /// The scanner's message.
        message: String,
    },
}

impl std::fmt::Display for UnscannableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnscannableReason::TooLarge { limit } => write!(f, "larger than {limit} bytes"),
            UnscannableReason::Timeout => f.write_str("scan timed out"),
            UnscannableReason::Encrypted => f.write_str("encrypted content"),
            UnscannableReason::ScannerError { message } => write!(f, "scanner error: {message}"),
        }
    }
}

/// A virus scanner.
///
/// Implementations read the stream to the end (or until a limit) without
/// holding the object whole, and pass `testkit::run_all` (feature
/// `testkit`).
#[async_trait]
pub trait Scanner: Send + Sync + std::fmt::Debug {
    /// Scans `body`.
    ///
    /// # Errors
    /// [`crate::Error::ScannerUnavailable`] when no verdict could be reached
    /// (scanner down, connection lost, the body stream failed).
    async fn scan(&self, body: ByteStream) -> Result<Verdict>;

    /// Scans `body`, whose length in bytes is `size` when known: a scanner
    /// with a size limit answers [`UnscannableReason::TooLarge`] for a
    /// larger object before reading any of it. The default ignores `size`.
    ///
    /// # Errors
    /// As [`Scanner::scan`].
    async fn scan_sized(&self, body: ByteStream, size: Option<u64>) -> Result<Verdict> {
        let _ = size;
        self.scan(body).await
    }
}
