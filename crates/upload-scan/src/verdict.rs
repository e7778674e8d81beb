//! The [`Scanner`] trait and its [`Verdict`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use upload_core::ByteStream;

use crate::error::Result;
use crate::version::ScannerVersion;

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
    /// The content is encrypted (e.g. a password-protected archive
    /// member), so it could not be looked into: clamd's
    /// `Heuristics.Encrypted.*` (with `AlertEncrypted yes`).
    Encrypted,
    /// The content goes past one of the scanner's limits (archives nested
    /// too deep, too many files, too many bytes once unpacked), so part of
    /// it was never scanned: clamd's `Heuristics.Limits.Exceeded.*` (with
    /// `AlertExceedsMax yes`), or the same limits in
    /// [`crate::MemoryScanner`]. Not an infection, never clean.
    LimitsExceeded {
        /// Which limit.
        limit: ExceededLimit,
    },
    /// An archive the scanner cannot look into (a format or a compression
    /// method it does not unpack, or a damaged archive), so its members
    /// were never scanned. Only [`crate::MemoryScanner`] reports this
    /// (clamd unpacks far more formats).
    UnsupportedArchive {
        /// What could not be unpacked, e.g. `7z`, or
        /// `zip member "a.bin": compression method BZIP2`.
        format: String,
    },
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
            UnscannableReason::LimitsExceeded { limit } => write!(
                f,
                "not fully scanned: {} ({})",
                limit.description(),
                limit.heuristic()
            ),
            UnscannableReason::UnsupportedArchive { format } => {
                write!(f, "archive not unpacked: {format}")
            }
            UnscannableReason::ScannerError { message } => write!(f, "scanner error: {message}"),
        }
    }
}

/// A scanner limit that a scan went past, named as clamd names it (the
/// `clamd.conf` option, and the last part of its
/// `Heuristics.Limits.Exceeded.{name}` alert).
///
/// Serialized as that name (`"MaxRecursion"`); [`ExceededLimit::Other`]
/// holds a limit this crate has no variant for, so every clamd alert maps
/// to a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ExceededLimit {
    /// `MaxRecursion`: archives nested deeper than the limit (clamd's
    /// default 17 levels).
    MaxRecursion,
    /// `MaxFiles`: more files in the archive (every level counted) than the
    /// limit (clamd's default 10 000).
    MaxFiles,
    /// `MaxScanSize`: more bytes unpacked from the archive than the limit.
    MaxScanSize,
    /// `MaxFileSize`: a member larger than the limit.
    MaxFileSize,
    /// `MaxScanTime`: the scan took longer than the daemon allows.
    MaxScanTime,
    /// Another limit, by its clamd name (e.g. `MaxEmbeddedPE`).
    Other(String),
}

impl ExceededLimit {
    /// The prefix of clamd's limit alerts.
    pub const HEURISTIC_PREFIX: &'static str = "Heuristics.Limits.Exceeded.";

    /// The limit's clamd name, e.g. `MaxRecursion`.
    pub fn name(&self) -> &str {
        match self {
            ExceededLimit::MaxRecursion => "MaxRecursion",
            ExceededLimit::MaxFiles => "MaxFiles",
            ExceededLimit::MaxScanSize => "MaxScanSize",
            ExceededLimit::MaxFileSize => "MaxFileSize",
            ExceededLimit::MaxScanTime => "MaxScanTime",
            ExceededLimit::Other(name) => name,
        }
    }

    /// The limit for a clamd name (`MaxFiles`); unknown names give
    /// [`ExceededLimit::Other`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "MaxRecursion" => ExceededLimit::MaxRecursion,
            "MaxFiles" => ExceededLimit::MaxFiles,
            "MaxScanSize" => ExceededLimit::MaxScanSize,
            "MaxFileSize" => ExceededLimit::MaxFileSize,
            "MaxScanTime" => ExceededLimit::MaxScanTime,
            other => ExceededLimit::Other(other.to_owned()),
        }
    }

    /// The limit named by a clamd alert, e.g.
    /// `Heuristics.Limits.Exceeded.MaxRecursion`; a bare
    /// `Heuristics.Limits.Exceeded` gives `Other("Unknown")`; `None` for
    /// any other signature name.
    pub fn from_heuristic(signature: &str) -> Option<Self> {
        let rest = signature.strip_prefix(Self::HEURISTIC_PREFIX.trim_end_matches('.'))?;
        match rest.strip_prefix('.') {
            Some(name) if !name.is_empty() => Some(Self::from_name(name)),
            _ if rest.is_empty() || rest == "." => Some(ExceededLimit::Other("Unknown".into())),
            _ => None,
        }
    }

    /// clamd's alert for this limit, e.g.
    /// `Heuristics.Limits.Exceeded.MaxRecursion`.
    pub fn heuristic(&self) -> String {
        format!("{}{}", Self::HEURISTIC_PREFIX, self.name())
    }

    fn description(&self) -> &'static str {
        match self {
            ExceededLimit::MaxRecursion => "archives nested too deep",
            ExceededLimit::MaxFiles => "too many files in the archive",
            ExceededLimit::MaxScanSize => "too many bytes once unpacked",
            ExceededLimit::MaxFileSize => "an archive member too large",
            ExceededLimit::MaxScanTime => "scan time limit",
            ExceededLimit::Other(_) => "scanner limit",
        }
    }
}

impl From<String> for ExceededLimit {
    fn from(name: String) -> Self {
        Self::from_name(&name)
    }
}

impl From<ExceededLimit> for String {
    fn from(limit: ExceededLimit) -> Self {
        limit.name().to_owned()
    }
}

impl std::fmt::Display for ExceededLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

    /// The engine and signature database the scanner runs now, recorded
    /// with its verdicts. Ask before a scan: a database updated during the
    /// scan then makes the recorded version older than the one used, which
    /// a rescan catches, never newer. The default is `None`, for scanners
    /// that cannot say.
    ///
    /// # Errors
    /// [`crate::Error::ScannerUnavailable`] when the scanner cannot be
    /// asked; [`crate::Error::InvalidScannerVersion`] for an answer that is
    /// not a version.
    async fn scanner_version(&self) -> Result<Option<ScannerVersion>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_exceeded_serializes_with_clamd_names_and_reads_back() {
        let v = Verdict::Unscannable {
            reason: UnscannableReason::LimitsExceeded {
                limit: ExceededLimit::MaxRecursion,
            },
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"verdict":"unscannable","reason":{"kind":"limits_exceeded","limit":"MaxRecursion"}}"#
        );
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
        let other: ExceededLimit = serde_json::from_str(r#""MaxEmbeddedPE""#).unwrap();
        assert_eq!(other, ExceededLimit::Other("MaxEmbeddedPE".into()));
        assert_eq!(
            UnscannableReason::LimitsExceeded {
                limit: ExceededLimit::MaxFiles
            }
            .to_string(),
            "not fully scanned: too many files in the archive \
             (Heuristics.Limits.Exceeded.MaxFiles)"
        );
        assert_eq!(
            ExceededLimit::from_heuristic("Heuristics.Limits.Exceeded"),
            Some(ExceededLimit::Other("Unknown".into()))
        );
        assert_eq!(ExceededLimit::from_heuristic("Win.Test.EICAR_HDB-1"), None);
    }
}
