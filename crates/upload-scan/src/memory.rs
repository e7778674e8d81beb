//! An in-process signature scanner.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use upload_core::ByteStream;

use crate::archive::{Matcher, ScanLimits, Walk};
use crate::error::{Error, Result};
use crate::verdict::{Scanner, UnscannableReason, Verdict};
use crate::version::ScannerVersion;

/// The name [`MemoryScanner`] reports for the EICAR test file, as ClamAV's
/// official database does: `Win.Test.EICAR_HDB-1`, a whole-file hash
/// signature that matches the exact 68-byte file only (EICAR with a byte
/// more, or inside a larger file, is not a match), whether it is the
/// object or a member of an archive in it. The project's clamd test
/// database has the same signature, reported by clamd as
/// `Win.Test.EICAR_HDB-1.UNOFFICIAL` (the suffix of unsigned local
/// databases).
pub const EICAR_SIGNATURE: &str = "Win.Test.EICAR_HDB-1";

/// The name [`MemoryScanner`] reports for [`test_marker`] anywhere in a
/// file; clamd with the project's test database reports it as
/// `UploadSdk.Test.Marker.UNOFFICIAL`.
pub const TEST_MARKER_SIGNATURE: &str = "UploadSdk.Test.Marker";

/// Default size limit: 100 MiB, clamd's default `StreamMaxLength`.
pub const DEFAULT_MAX_STREAM_LEN: u64 = 100 * 1024 * 1024;

/// The 68-byte EICAR anti-virus test file (see eicar.org). Built at run
/// time from two halves so that no file of this repository is itself
/// flagged by a scanner.
///
/// Detected only as the whole file (an object, or an archive member, of
/// exactly these bytes); for "infected image" fixtures, where the
/// infection sits inside other content, use [`test_marker`].
pub fn eicar() -> Bytes {
    let a = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$";
    let b = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    Bytes::from([a, b].concat())
}

/// The project's test signature, `UPLOAD-SDK-TEST-MALWARE-7f3a` (28 bytes):
/// a file holding it anywhere is infected ([`TEST_MARKER_SIGNATURE`]) for
/// [`MemoryScanner`] and for clamd with the project's test database
/// (`scripts/clamd.sh`). Append it to an image to make an "infected image"
/// fixture. Harmless; built from pieces like [`eicar`].
pub fn test_marker() -> Bytes {
    Bytes::from(["UPLOAD-SDK-TEST-", "MALWARE-7f3a"].concat())
}

/// A whole-file signature, as a ClamAV `.hdb` line: the file's MD5 and size.
#[derive(Debug, Clone)]
struct HashSignature {
    name: String,
    md5: [u8; 16],
    size: u64,
}

/// The signatures of a [`MemoryScanner`].
#[derive(Debug, Clone)]
struct Signatures {
    body: Vec<(String, Vec<u8>)>,
    hashes: Vec<HashSignature>,
}

impl Matcher for Signatures {
    fn matches(&self, file: &[u8]) -> Option<&str> {
        let size = file.len() as u64;
        let mut md5: Option<[u8; 16]> = None;
        for h in &self.hashes {
            if h.size == size && *md5.get_or_insert_with(|| Md5::digest(file).into()) == h.md5 {
                return Some(&h.name);
            }
        }
        self.body
            .iter()
            .find(|(_, p)| memchr::memmem::find(file, p).is_some())
            .map(|(n, _)| n.as_str())
    }
}

/// An in-process scanner that agrees with clamd running the project's
/// test database (`scripts/clamd.sh`):
///
/// - whole-file hash signatures, as ClamAV's `.hdb` (the EICAR test file,
///   [`EICAR_SIGNATURE`], out of the box; [`MemoryScanner::with_file_signature`]),
///   and body signatures matching bytes anywhere in a file, as `.ndb`
///   ([`test_marker`] out of the box; [`MemoryScanner::with_signature`]);
/// - ZIP archives (also appended to another file) and gzip streams are
///   unpacked and every member is scanned as a file of its own, under
///   clamd's limits ([`ScanLimits`]); content past a limit is
///   [`UnscannableReason::LimitsExceeded`], an encrypted member
///   [`UnscannableReason::Encrypted`], an archive it cannot unpack (7z,
///   RAR, tar, bzip2, xz, zstd, CAB, other ZIP compression methods)
///   [`UnscannableReason::UnsupportedArchive`]: never clean. A signature
///   found within the limits wins over those, as in clamd;
/// - clamd's size limit and failure modes: a stream longer than the limit
///   is [`UnscannableReason::TooLarge`], and a scanner marked unavailable
///   (see [`MemoryScanner::set_available`]) fails with
///   [`Error::ScannerUnavailable`], like a clamd that is down.
///
/// Memory: the object is held whole while it is scanned (at most the
/// stream limit, as clamd spools a stream to a temporary file), plus the
/// members unpacked (at most [`ScanLimits::max_scan_size`] in all). The
/// scan runs on the calling task.
#[derive(Debug)]
pub struct MemoryScanner {
    signatures: Signatures,
    limits: ScanLimits,
    max_stream_len: u64,
    available: AtomicBool,
    version: Mutex<Option<ScannerVersion>>,
}

impl Default for MemoryScanner {
    /// Detects the EICAR test file ([`EICAR_SIGNATURE`]) and the project
    /// test marker ([`TEST_MARKER_SIGNATURE`]); 100 MiB stream limit;
    /// clamd's default archive limits.
    fn default() -> Self {
        Self {
            signatures: Signatures {
                body: vec![(TEST_MARKER_SIGNATURE.to_owned(), test_marker().to_vec())],
                hashes: Vec::new(),
            },
            limits: ScanLimits::default(),
            max_stream_len: DEFAULT_MAX_STREAM_LEN,
            available: AtomicBool::new(true),
            version: Mutex::new(Some(Self::default_version())),
        }
        .with_file_signature(EICAR_SIGNATURE, eicar())
    }
}

impl MemoryScanner {
    /// A scanner with the EICAR and test-marker signatures, the 100 MiB
    /// stream limit and clamd's default archive limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a body signature: `name` is reported when `pattern` (non-empty)
    /// occurs anywhere in the object or in a member unpacked from it. An
    /// empty pattern is ignored.
    pub fn with_signature(mut self, name: impl Into<String>, pattern: impl Into<Vec<u8>>) -> Self {
        let pattern = pattern.into();
        if !pattern.is_empty() {
            self.signatures.body.push((name.into(), pattern));
        }
        self
    }

    /// Adds a whole-file signature for the bytes `file`, as ClamAV's
    /// `.hdb` (MD5 and size): `name` is reported when the object, or a
    /// member unpacked from it, is exactly those bytes.
    pub fn with_file_signature(self, name: impl Into<String>, file: impl AsRef<[u8]>) -> Self {
        let file = file.as_ref();
        self.with_hash_signature(name, Md5::digest(file).into(), file.len() as u64)
    }

    /// Adds a whole-file signature from a ClamAV `.hdb` line's values: the
    /// file's MD5 (16 bytes) and its size in bytes.
    pub fn with_hash_signature(
        mut self,
        name: impl Into<String>,
        md5: [u8; 16],
        size: u64,
    ) -> Self {
        self.signatures.hashes.push(HashSignature {
            name: name.into(),
            md5,
            size,
        });
        self
    }

    /// Sets the largest stream scanned, in bytes (clamd `StreamMaxLength`).
    pub fn with_max_stream_len(mut self, bytes: u64) -> Self {
        self.max_stream_len = bytes;
        self
    }

    /// Sets the archive limits (clamd's `MaxRecursion`, `MaxFiles`,
    /// `MaxFileSize`, `MaxScanSize`).
    pub fn with_limits(mut self, limits: ScanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The archive limits.
    pub fn limits(&self) -> &ScanLimits {
        &self.limits
    }

    /// The version a new scanner reports: engine `UploadSdk.MemoryScanner`
    /// and this crate's version (e.g. `UploadSdk.MemoryScanner 0.1.0`),
    /// database 1, no date.
    pub fn default_version() -> ScannerVersion {
        ScannerVersion {
            engine: concat!("UploadSdk.MemoryScanner ", env!("CARGO_PKG_VERSION")).to_owned(),
            database: Some(1),
            database_date: None,
        }
    }

    /// Sets the version [`Scanner::scanner_version`] reports (`None`: a
    /// scanner that cannot say).
    pub fn with_version(self, version: Option<ScannerVersion>) -> Self {
        self.set_version(version);
        self
    }

    /// Changes the version reported from now on, e.g. to simulate a
    /// database update in tests (with a scanner shared by a worker).
    pub fn set_version(&self, version: Option<ScannerVersion>) {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = version;
    }

    /// Marks the scanner up or down; while down every scan fails with
    /// [`Error::ScannerUnavailable`].
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }

    /// The verdict on a whole object.
    fn judge(&self, file: &[u8]) -> Verdict {
        let mut walk = Walk::new(&self.signatures, &self.limits);
        match walk.scan_file(file, 0) {
            Some(signature) => Verdict::Infected { signature },
            None => match walk.unscannable {
                Some(reason) => Verdict::Unscannable { reason },
                None => Verdict::Clean,
            },
        }
    }

    async fn read_all(&self, mut body: ByteStream, size: Option<u64>) -> Result<Option<Vec<u8>>> {
        let capacity = size.unwrap_or(0).min(self.max_stream_len);
        let mut data = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::ScannerUnavailable {
                reason: format!("reading the object failed: {e}"),
            })?;
            if (data.len() + chunk.len()) as u64 > self.max_stream_len {
                return Ok(None);
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Some(data))
    }

    async fn scan_with_size(&self, body: ByteStream, size: Option<u64>) -> Result<Verdict> {
        let unavailable = || Error::ScannerUnavailable {
            reason: "memory scanner marked unavailable".into(),
        };
        if !self.available.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        let too_large = Verdict::Unscannable {
            reason: UnscannableReason::TooLarge {
                limit: self.max_stream_len,
            },
        };
        if size.is_some_and(|s| s > self.max_stream_len) {
            return Ok(too_large);
        }
        let Some(data) = self.read_all(body, size).await? else {
            return Ok(too_large);
        };
        if !self.available.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        Ok(self.judge(&data))
    }
}

#[async_trait]
impl Scanner for MemoryScanner {
    async fn scan(&self, body: ByteStream) -> Result<Verdict> {
        self.scan_with_size(body, None).await
    }

    async fn scan_sized(&self, body: ByteStream, size: Option<u64>) -> Result<Verdict> {
        self.scan_with_size(body, size).await
    }

    /// The version set by [`MemoryScanner::with_version`] (by default
    /// [`MemoryScanner::default_version`]); unavailable like a scan when
    /// the scanner is marked down.
    async fn scanner_version(&self) -> Result<Option<ScannerVersion>> {
        if !self.available.load(Ordering::SeqCst) {
            return Err(Error::ScannerUnavailable {
                reason: "memory scanner marked unavailable".into(),
            });
        }
        Ok(self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, Packing};
    use crate::verdict::ExceededLimit;

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

    fn one(data: Vec<u8>) -> ByteStream {
        chunks(vec![data])
    }

    fn exceeded(limit: ExceededLimit) -> Verdict {
        Verdict::Unscannable {
            reason: UnscannableReason::LimitsExceeded { limit },
        }
    }

    /// Issue 18, item 21: EICAR is a whole-file signature, as ClamAV's
    /// official `Win.Test.EICAR_HDB-1`. Before, the string matched anywhere
    /// (EICAR at offset 20 MiB was infected here and clean in clamd).
    #[tokio::test]
    async fn eicar_matches_only_the_whole_file_as_clamd_official_signature() {
        let s = MemoryScanner::new();
        assert_eq!(
            s.scan(chunks(vec![eicar()[..30].to_vec(), eicar()[30..].to_vec()]))
                .await
                .unwrap(),
            Verdict::Infected {
                signature: "Win.Test.EICAR_HDB-1".into()
            }
        );
        let at_20_mib = [fixtures::noise(20 << 20, 3), eicar().to_vec()].concat();
        assert_eq!(s.scan(one(at_20_mib)).await.unwrap(), Verdict::Clean);
        let with_newline = [&eicar()[..], b"\n"].concat();
        assert_eq!(s.scan(one(with_newline)).await.unwrap(), Verdict::Clean);
        // The project's marker, for "infected image" fixtures, matches anywhere.
        let image = [b"\xFF\xD8\xFF\xE0".as_slice(), &test_marker(), b"\xFF\xD9"].concat();
        assert_eq!(
            s.scan(one(image)).await.unwrap(),
            Verdict::Infected {
                signature: "UploadSdk.Test.Marker".into()
            }
        );
        let hashed =
            MemoryScanner::new().with_hash_signature("Test.Hash", Md5::digest(b"exact").into(), 5);
        assert_eq!(
            hashed.scan(one(b"exact".to_vec())).await.unwrap(),
            Verdict::Infected {
                signature: "Test.Hash".into()
            }
        );
        assert_eq!(
            hashed.scan(one(b"exact!".to_vec())).await.unwrap(),
            Verdict::Clean
        );
    }

    /// Issue 18, item 22: a ZIP holding EICAR is infected (before: clean,
    /// the scanner never looked inside), and what cannot be looked into is
    /// unscannable, never clean.
    #[tokio::test]
    async fn looks_into_zip_and_never_calls_unopened_archives_clean() {
        let s = MemoryScanner::new();
        let zip =
            fixtures::zip(&[("a.txt", b"a"), ("e.com", &eicar())], Packing::Deflated).unwrap();
        assert_eq!(
            s.scan(one(zip)).await.unwrap(),
            Verdict::Infected {
                signature: EICAR_SIGNATURE.into()
            }
        );
        let seven_z = [b"7z\xBC\xAF\x27\x1C\x00\x04".as_slice(), &[0; 32]].concat();
        assert_eq!(
            s.scan(one(seven_z)).await.unwrap(),
            Verdict::Unscannable {
                reason: UnscannableReason::UnsupportedArchive {
                    format: "7z".into()
                }
            }
        );
        // A ZIP whose central directory is cut off.
        let mut broken = fixtures::zip(&[("e.com", &eicar())], Packing::Deflated).unwrap();
        broken.truncate(broken.len() - 10);
        assert!(matches!(
            s.scan(one(broken)).await.unwrap(),
            Verdict::Unscannable {
                reason: UnscannableReason::UnsupportedArchive { .. }
            }
        ));
        // A member with a compression method this crate does not unpack
        // (method 12, bzip2, patched into both headers).
        let mut bz = fixtures::zip(&[("e.com", b"data")], Packing::Stored).unwrap();
        for (sig, off) in [(&b"PK\x03\x04"[..], 8), (&b"PK\x01\x02"[..], 10)] {
            let at = memchr::memmem::find(&bz, sig).unwrap() + off;
            bz[at] = 12;
        }
        match s.scan(one(bz)).await.unwrap() {
            Verdict::Unscannable {
                reason: UnscannableReason::UnsupportedArchive { format },
            } => assert!(format.contains("e.com"), "{format}"),
            other => panic!("{other:?}"),
        }
    }

    /// The limits, at their edges: a member over `max_file_size` (clamd
    /// 1.4 would scan its first bytes only; here it is never clean), the
    /// file count and unpacked bytes, and a member larger than its header
    /// says (read no further than the limits).
    #[tokio::test]
    async fn archive_limits_at_their_edges() {
        let limits = ScanLimits::default()
            .with_max_recursion(3)
            .with_max_files(4)
            .with_max_file_size(1000)
            .with_max_scan_size(2500);
        let s = MemoryScanner::new().with_limits(limits);
        let zeros = |n: usize, size: usize| fixtures::zip_of_zeros(n, size).unwrap();
        assert_eq!(s.scan(one(zeros(2, 1000))).await.unwrap(), Verdict::Clean);
        assert_eq!(
            s.scan(one(zeros(1, 1001))).await.unwrap(),
            exceeded(ExceededLimit::MaxFileSize)
        );
        // 3 members + the archive = 4 files: within; 4 members: past.
        assert_eq!(s.scan(one(zeros(3, 800))).await.unwrap(), Verdict::Clean);
        assert_eq!(
            s.scan(one(zeros(4, 10))).await.unwrap(),
            exceeded(ExceededLimit::MaxFiles)
        );
        assert_eq!(
            s.scan(one(zeros(3, 900))).await.unwrap(),
            exceeded(ExceededLimit::MaxScanSize)
        );
        // Depth 2 is scanned, depth 3 is not.
        let e = eicar();
        assert!(matches!(
            s.scan(one(fixtures::nested_zip(&e, 2).unwrap()))
                .await
                .unwrap(),
            Verdict::Infected { .. }
        ));
        assert_eq!(
            s.scan(one(fixtures::nested_zip(&e, 3).unwrap()))
                .await
                .unwrap(),
            exceeded(ExceededLimit::MaxRecursion)
        );
        // A gzip of 5000 zeros: no header says its size; reading stops at
        // the limit.
        assert_eq!(
            s.scan(one(fixtures::gzip(&[0; 5000]).unwrap()))
                .await
                .unwrap(),
            exceeded(ExceededLimit::MaxFileSize)
        );
        // An encrypted member cannot be looked into.
        assert_eq!(
            s.scan(one(fixtures::encrypted_zip(b"secret").unwrap()))
                .await
                .unwrap(),
            Verdict::Unscannable {
                reason: UnscannableReason::Encrypted
            }
        );
    }

    #[tokio::test]
    async fn reports_a_configurable_version() {
        let s = MemoryScanner::new();
        assert_eq!(
            s.scanner_version().await.unwrap(),
            Some(MemoryScanner::default_version())
        );
        assert_eq!(MemoryScanner::default_version().database, Some(1));
        let v2 = ScannerVersion::new("Test 1.0", Some(2)).unwrap();
        s.set_version(Some(v2.clone()));
        assert_eq!(s.scanner_version().await.unwrap(), Some(v2));
        let s = s.with_version(None);
        assert_eq!(s.scanner_version().await.unwrap(), None);
        s.set_available(false);
        assert!(matches!(
            s.scanner_version().await,
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
