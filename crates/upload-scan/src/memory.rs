//! An in-process signature scanner.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use upload_core::ByteStream;

use crate::error::{Error, Result};
use crate::verdict::{Scanner, UnscannableReason, Verdict};

/// The name [`MemoryScanner`] reports for the EICAR test file:
/// ClamAV's classic body-signature name. (ClamAV's official database
/// reports `Win.Test.EICAR_HDB-1`, a whole-file hash signature that matches
/// only the bare 68-byte file; the project's test database for clamd uses
/// a body signature like this scanner, reported with the `.UNOFFICIAL`
/// suffix of unsigned local databases.)
pub const EICAR_SIGNATURE: &str = "Eicar-Test-Signature";

/// Default size limit: 100 MiB, clamd's default `StreamMaxLength`.
pub const DEFAULT_MAX_STREAM_LEN: u64 = 100 * 1024 * 1024;

/// The 68-byte EICAR anti-virus test file (see eicar.org). Built at run
/// time from two halves so that no file of this repository is itself
/// flagged by a scanner.
pub fn eicar() -> Bytes {
    let a = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$";
    let b = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    Bytes::from([a, b].concat())
}

/// Scans for byte signatures anywhere in the stream, as clamd's
/// body-based signatures do, with clamd's size limit and failure modes:
/// a stream longer than the limit is [`Verdict::Unscannable`] (`TooLarge`),
/// and a scanner marked unavailable (see [`MemoryScanner::set_available`])
/// fails with [`Error::ScannerUnavailable`], like a clamd that is down.
///
/// Memory is bounded: only the longest signature's length minus one byte
/// is kept between chunks.
#[derive(Debug)]
pub struct MemoryScanner {
    signatures: Vec<(String, Vec<u8>)>,
    max_stream_len: u64,
    available: AtomicBool,
}

impl Default for MemoryScanner {
    /// Detects the EICAR test file as [`EICAR_SIGNATURE`]; 100 MiB limit.
    fn default() -> Self {
        Self {
            signatures: vec![(EICAR_SIGNATURE.to_owned(), eicar().to_vec())],
            max_stream_len: DEFAULT_MAX_STREAM_LEN,
            available: AtomicBool::new(true),
        }
    }
}

impl MemoryScanner {
    /// A scanner with the EICAR signature and the 100 MiB limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a signature: `name` is reported when `pattern` (non-empty)
    /// occurs anywhere in the stream. An empty pattern is ignored.
    pub fn with_signature(mut self, name: impl Into<String>, pattern: impl Into<Vec<u8>>) -> Self {
        let pattern = pattern.into();
        if !pattern.is_empty() {
            self.signatures.push((name.into(), pattern));
        }
        self
    }

    /// Sets the largest stream scanned, in bytes (clamd `StreamMaxLength`).
    pub fn with_max_stream_len(mut self, bytes: u64) -> Self {
        self.max_stream_len = bytes;
        self
    }

    /// Marks the scanner up or down; while down every scan fails with
    /// [`Error::ScannerUnavailable`].
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }

    fn find(&self, hay: &[u8]) -> Option<&str> {
        self.signatures
            .iter()
            .find(|(_, p)| hay.windows(p.len()).any(|w| w == p.as_slice()))
            .map(|(n, _)| n.as_str())
    }
}

#[async_trait]
impl Scanner for MemoryScanner {
    async fn scan(&self, mut body: ByteStream) -> Result<Verdict> {
        let unavailable = || Error::ScannerUnavailable {
            reason: "memory scanner marked unavailable".into(),
        };
        if !self.available.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        let keep = self
            .signatures
            .iter()
            .map(|(_, p)| p.len())
            .max()
            .unwrap_or(1)
            - 1;
        let mut window: Vec<u8> = Vec::new();
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::ScannerUnavailable {
                reason: format!("reading the object failed: {e}"),
            })?;
            total += chunk.len() as u64;
            if total > self.max_stream_len {
                return Ok(Verdict::Unscannable {
                    reason: UnscannableReason::TooLarge {
                        limit: self.max_stream_len,
                    },
                });
            }
            window.extend_from_slice(&chunk);
            if let Some(name) = self.find(&window) {
                return Ok(Verdict::Infected {
                    signature: name.to_owned(),
                });
            }
            let drop = window.len().saturating_sub(keep);
            window.drain(..drop);
        }
        if !self.available.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        Ok(Verdict::Clean)
    }

    async fn scan_sized(&self, body: ByteStream, size: Option<u64>) -> Result<Verdict> {
        if size.is_some_and(|s| s > self.max_stream_len) && self.available.load(Ordering::SeqCst) {
            return Ok(Verdict::Unscannable {
                reason: UnscannableReason::TooLarge {
                    limit: self.max_stream_len,
                },
            });
        }
        self.scan(body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
    }

    #[test]
    fn eicar_is_the_68_byte_file() {
        let e = eicar();
        assert_eq!(e.len(), 68);
        assert!(e.starts_with(b"X5O!P%@AP"));
        assert!(e.ends_with(b"$H+H*"));
    }

    #[tokio::test]
    async fn limit_and_availability() {
        let s = MemoryScanner::new().with_max_stream_len(10);
        assert_eq!(
            s.scan(chunks(vec![vec![0; 10]])).await.unwrap(),
            Verdict::Clean
        );
        assert_eq!(
            s.scan(chunks(vec![vec![0; 6], vec![0; 5]])).await.unwrap(),
            Verdict::Unscannable {
                reason: UnscannableReason::TooLarge { limit: 10 }
            }
        );
        assert_eq!(
            s.scan_sized(chunks(vec![vec![0; 1]]), Some(11))
                .await
                .unwrap(),
            Verdict::Unscannable {
                reason: UnscannableReason::TooLarge { limit: 10 }
            },
            "a known size over the limit is refused before reading"
        );
        assert_eq!(
            s.scan_sized(chunks(vec![vec![0; 10]]), Some(10))
                .await
                .unwrap(),
            Verdict::Clean
        );
        s.set_available(false);
        assert!(matches!(
            s.scan(chunks(vec![vec![1]])).await,
            Err(Error::ScannerUnavailable { .. })
        ));
    }

    #[tokio::test]
    async fn custom_signatures_and_stream_errors() {
        let s = MemoryScanner::new().with_signature("Test.Custom", b"BAD".to_vec());
        assert_eq!(
            s.scan(chunks(vec![
                b"xxB".to_vec(),
                b"A".to_vec(),
                b"Dyy".to_vec()
            ]))
            .await
            .unwrap(),
            Verdict::Infected {
                signature: "Test.Custom".into()
            }
        );
        let failing: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ok")),
            Err(upload_core::Error::Unavailable {
                reason: "connection reset".into(),
            }),
        ])
        .boxed();
        assert!(matches!(
            s.scan(failing).await,
            Err(Error::ScannerUnavailable { .. })
        ));
    }
}
