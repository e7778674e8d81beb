//! A clamd client: `zINSTREAM`, `zPING` and `zVERSION` over TCP or a Unix
//! socket, per the clamd(8) manual.
//!
//! `INSTREAM` sends the object as length-prefixed chunks (a 4-byte
//! big-endian length, then the bytes), ended by a zero-length chunk; clamd
//! answers one line: `stream: OK`, `stream: {signature} FOUND`, or
//! `{message} ERROR` (`INSTREAM size limit exceeded. ERROR` when the stream
//! passes its `StreamMaxLength`, after which it closes the connection). The
//! object is streamed, never held whole: memory is one chunk.
//!
//! Run clamd with `AlertExceedsMax yes` and `AlertEncrypted yes`: without
//! them clamd answers `OK` for what it did not scan (archive members past
//! `MaxRecursion`, `MaxFiles` or `MaxScanSize`, encrypted members). With
//! them it answers `Heuristics.Limits.Exceeded.{limit}` and
//! `Heuristics.Encrypted.{format}`, which [`parse_reply`] turns into
//! [`Verdict::Unscannable`] ([`UnscannableReason::LimitsExceeded`],
//! [`UnscannableReason::Encrypted`]). A real signature found within the
//! limits still wins (clamd reports heuristics only when nothing else
//! matched). ClamAV 1.4 does not alert for an archive member larger than
//! `MaxFileSize`: it scans the member's first `MaxFileSize` bytes only, so
//! keep `MaxFileSize` at least as large as the largest upload.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use upload_core::ByteStream;

use crate::error::{Error, Result};
use crate::verdict::{ExceededLimit, Scanner, UnscannableReason, Verdict};
use crate::version::ScannerVersion;

/// Largest reply read from clamd: 4 KiB (a reply is one short line).
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    /// `TCPSocket`/`TCPAddr`, as `host:port` (e.g. `127.0.0.1:3310`).
    Tcp(String),
    /// `LocalSocket`, a Unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddress::Tcp(a) => write!(f, "tcp://{a}"),
            ClamdAddress::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// clamd client settings. Build with [`ClamdConfig::new`] and the `with_*`
/// methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClamdConfig {
    /// Where clamd listens.
    pub address: ClamdAddress,
    /// Connection timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout of each write and of waiting for the reply once the stream is
    /// sent (default 60 s; clamd's own `ReadTimeout` is 120 s).
    pub io_timeout: Duration,
    /// Timeout of the whole scan, connect to reply (default 300 s).
    pub scan_timeout: Duration,
    /// The daemon's `StreamMaxLength` in bytes (default 100 MiB, clamd's
    /// default). A stream longer than this is not sent past the limit: the
    /// verdict is [`UnscannableReason::TooLarge`] at once.
    pub stream_max_length: u64,
    /// Largest chunk sent in one INSTREAM frame, in bytes (default 256 KiB,
    /// at least 1).
    pub max_chunk: usize,
    /// How long an answer to `VERSION` is reused by
    /// [`Scanner::scanner_version`] (default 60 s), so that scans do not
    /// pay a round trip each; zero asks every time.
    pub version_ttl: Duration,
}

impl ClamdConfig {
    /// Defaults for `address`.
    pub fn new(address: ClamdAddress) -> Self {
        Self {
            address,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(60),
            scan_timeout: Duration::from_secs(300),
            stream_max_length: 100 * 1024 * 1024,
            max_chunk: 256 * 1024,
            version_ttl: Duration::from_secs(60),
        }
    }
    /// Sets the connection timeout.
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    /// Sets the per-operation I/O timeout.
    pub fn with_io_timeout(mut self, t: Duration) -> Self {
        self.io_timeout = t;
        self
    }
    /// Sets the whole-scan timeout.
    pub fn with_scan_timeout(mut self, t: Duration) -> Self {
        self.scan_timeout = t;
        self
    }
    /// Sets the daemon's `StreamMaxLength`, in bytes.
    pub fn with_stream_max_length(mut self, bytes: u64) -> Self {
        self.stream_max_length = bytes;
        self
    }
    /// Sets how long a `VERSION` answer is reused.
    pub fn with_version_ttl(mut self, t: Duration) -> Self {
        self.version_ttl = t;
        self
    }
    /// Sets the largest INSTREAM chunk, in bytes (0 is taken as 1).
    pub fn with_max_chunk(mut self, bytes: usize) -> Self {
        self.max_chunk = bytes.max(1);
        self
    }
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// A [`Scanner`] backed by a clamd daemon. One connection per scan (clamd
/// serves each on its own thread; no session state is shared).
///
/// Fail-closed: a stream clamd refuses for size is
/// [`Verdict::Unscannable`], never clean; a daemon that cannot be reached,
/// or that drops the connection without an answer, is
/// [`Error::ScannerUnavailable`] (retry later).
///
/// [`Scanner::scanner_version`] asks `VERSION` and reuses the answer for
/// [`ClamdConfig::version_ttl`] (shared by the clones of a scanner).
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    config: ClamdConfig,
    version_cache: Arc<Mutex<Option<(Instant, ScannerVersion)>>>,
}

/// Why the stream stopped before the terminating chunk.
enum Sent {
    All,
    SourceFailed(String),
    LimitReached,
    WriteFailed(u64, std::io::Error),
}

impl ClamdScanner {
    /// A client for the daemon in `config`.
    pub fn new(config: ClamdConfig) -> Self {
        Self {
            config,
            version_cache: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClamdConfig {
        &self.config
    }

    /// `zPING`: checks that the daemon answers `PONG`.
    ///
    /// # Errors
    /// [`Error::ScannerUnavailable`].
    pub async fn ping(&self) -> Result<()> {
        let reply = self.command(b"zPING\0").await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(self.unavailable(format!("PING answered {reply:?}")))
        }
    }

    /// `zVERSION`: the daemon's version line, e.g.
    /// `ClamAV 1.4.6/27000/Mon Nov 30 2026` (without a database date when it
    /// loaded only local databases).
    ///
    /// # Errors
    /// [`Error::ScannerUnavailable`].
    pub async fn version(&self) -> Result<String> {
        self.command(b"zVERSION\0").await
    }

    /// [`ClamdScanner::version`], parsed, without the cache of
    /// [`Scanner::scanner_version`].
    ///
    /// # Errors
    /// [`Error::ScannerUnavailable`]; [`Error::InvalidScannerVersion`]
    /// for a reply that is not a version.
    pub async fn fetch_version(&self) -> Result<ScannerVersion> {
        ScannerVersion::parse_clamd(&self.version().await?)
    }

    /// Scans everything `reader` yields.
    ///
    /// # Errors
    /// As [`Scanner::scan`].
    pub async fn scan_reader<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        reader: R,
    ) -> Result<Verdict> {
        let chunk = self.config.max_chunk;
        let stream = futures::stream::unfold(Some(reader), move |r| async move {
            let mut r = r?;
            let mut buf = vec![0u8; chunk];
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(r)))
                }
                Err(e) => Some((
                    Err(upload_core::Error::Unavailable {
                        reason: format!("reading the object: {e}"),
                    }),
                    None,
                )),
            }
        })
        .boxed();
        self.with_deadline(self.instream(stream)).await
    }

    async fn with_deadline<F: std::future::Future<Output = Result<Verdict>>>(
        &self,
        f: F,
    ) -> Result<Verdict> {
        match tokio::time::timeout(self.config.scan_timeout, f).await {
            Ok(r) => r,
            Err(_) => Ok(Verdict::Unscannable {
                reason: UnscannableReason::Timeout,
            }),
        }
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> Error {
        Error::ScannerUnavailable {
            reason: format!("clamd at {}: {reason}", self.config.address),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Conn>> {
        let fut = async {
            Ok::<Box<dyn Conn>, std::io::Error>(match &self.config.address {
                ClamdAddress::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str()).await?;
                    s.set_nodelay(true)?;
                    Box::new(s)
                }
                #[cfg(unix)]
                ClamdAddress::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
                #[cfg(not(unix))]
                ClamdAddress::Unix(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "Unix sockets need a Unix system",
                    ));
                }
            })
        };
        match tokio::time::timeout(self.config.connect_timeout, fut).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self.unavailable(format!("connect: {e}"))),
            Err(_) => Err(self.unavailable("connect timed out")),
        }
    }

    async fn command(&self, cmd: &[u8]) -> Result<String> {
        let mut c = self.connect().await?;
        self.io(c.write_all(cmd))
            .await
            .map_err(|e| self.unavailable(format!("write: {e}")))?;
        let reply = self
            .read_reply(&mut c)
            .await
            .map_err(|e| self.unavailable(format!("read: {e}")))?;
        if reply.is_empty() {
            return Err(self.unavailable("connection closed without a reply"));
        }
        Ok(reply)
    }

    async fn io<T>(
        &self,
        f: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> std::io::Result<T> {
        match tokio::time::timeout(self.config.io_timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "clamd I/O timed out",
            )),
        }
    }

    /// Reads until NUL, newline or EOF (at most [`MAX_REPLY`] bytes).
    async fn read_reply(&self, c: &mut Box<dyn Conn>) -> std::io::Result<String> {
        let mut buf = Vec::with_capacity(64);
        let mut byte = [0u8; 256];
        loop {
            let n = self.io(c.read(&mut byte)).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&byte[..n]);
            if let Some(end) = buf.iter().position(|b| *b == 0 || *b == b'\n') {
                buf.truncate(end);
                break;
            }
            if buf.len() > MAX_REPLY {
                buf.truncate(MAX_REPLY);
                break;
            }
        }
        Ok(String::from_utf8_lossy(&buf).trim().to_owned())
    }

    async fn instream(&self, mut body: ByteStream) -> Result<Verdict> {
        let mut c = self.connect().await?;
        let limit = self.config.stream_max_length;
        let mut sent: u64 = 0;
        let outcome = async {
            self.io(c.write_all(b"zINSTREAM\0"))
                .await
                .map_err(|e| Sent::WriteFailed(0, e))?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Sent::SourceFailed(e.to_string()))?;
                for piece in chunk.chunks(self.config.max_chunk) {
                    if sent + piece.len() as u64 > limit {
                        return Err(Sent::LimitReached);
                    }
                    let len = u32::try_from(piece.len()).expect("max_chunk fits in u32");
                    // Header and chunk in one vectored write, without copying
                    // the chunk into a frame buffer.
                    let header = len.to_be_bytes();
                    let mut frame = bytes::Buf::chain(&header[..], piece);
                    self.io(c.write_all_buf(&mut frame))
                        .await
                        .map_err(|e| Sent::WriteFailed(sent, e))?;
                    sent += piece.len() as u64;
                }
            }
            self.io(c.write_all(&0u32.to_be_bytes()))
                .await
                .map_err(|e| Sent::WriteFailed(sent, e))?;
            self.io(c.flush())
                .await
                .map_err(|e| Sent::WriteFailed(sent, e))?;
            Ok::<Sent, Sent>(Sent::All)
        }
        .await
        .unwrap_or_else(|s| s);

        match outcome {
            Sent::SourceFailed(e) => Err(Error::ScannerUnavailable {
                reason: format!("the object stream failed mid-scan: {e}"),
            }),
            Sent::LimitReached => Ok(Verdict::Unscannable {
                reason: UnscannableReason::TooLarge { limit },
            }),
            Sent::All => {
                let reply = self
                    .read_reply(&mut c)
                    .await
                    .map_err(|e| self.unavailable(format!("reading the verdict: {e}")))?;
                parse_reply(&reply)
                    .map(|v| with_limit(v, sent))
                    .map_err(|r| self.unavailable(r))
            }
            Sent::WriteFailed(at, err) => {
                // clamd closes the connection when the stream passes its
                // StreamMaxLength, after writing its answer: read it.
                match self.read_reply(&mut c).await {
                    Ok(reply) if !reply.is_empty() => parse_reply(&reply)
                        .map(|v| with_limit(v, at))
                        .map_err(|r| self.unavailable(r)),
                    _ if at > 0 => {
                        // No answer (over a Unix socket it can be lost):
                        // never clean. Most likely the daemon's size limit.
                        tracing::warn!(address = %self.config.address, sent = at, error = %err, "clamd closed the stream without a verdict");
                        Ok(Verdict::Unscannable {
                            reason: UnscannableReason::TooLarge { limit: at },
                        })
                    }
                    _ => Err(self.unavailable(format!("write: {err}"))),
                }
            }
        }
    }
}

/// Fills in the limit of a size refusal (clamd does not say it) with how
/// many bytes it accepted before refusing.
fn with_limit(v: Verdict, accepted: u64) -> Verdict {
    match v {
        Verdict::Unscannable {
            reason: UnscannableReason::TooLarge { limit: 0 },
        } => Verdict::Unscannable {
            reason: UnscannableReason::TooLarge { limit: accepted },
        },
        other => other,
    }
}

/// Turns a clamd INSTREAM reply into a verdict. A size refusal has
/// `limit: 0` here: clamd does not say its limit.
///
/// `Err` holds the reason when the reply means no verdict was reached (an
/// empty or unknown reply, `COMMAND READ TIMED OUT`): the caller should
/// retry rather than judge the object.
pub fn parse_reply(reply: &str) -> std::result::Result<Verdict, String> {
    let reply = reply.trim_end_matches(['\0', '\n', '\r']).trim();
    let body = reply.strip_prefix("stream: ").unwrap_or(reply);
    if body == "OK" {
        return Ok(Verdict::Clean);
    }
    if let Some(name) = body.strip_suffix(" FOUND") {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("FOUND without a signature name: {reply:?}"));
        }
        // Signature names are printable ASCII without spaces
        // (`Win.Test.EICAR_HDB-1`); anything else is a garbled reply, and
        // must not reach tags, manifests or logs as a name.
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("FOUND with a malformed signature name: {reply:?}"));
        }
        // Alerts that mean "not fully scanned" (clamd.conf `AlertExceedsMax
        // yes`, `AlertEncrypted yes`): unscannable, never clean and not an
        // infection. Other heuristics (`Heuristics.Phishing.*`,
        // `Heuristics.Broken.Executable`...) judge the content itself and
        // stay infections.
        if let Some(limit) = ExceededLimit::from_heuristic(name) {
            return Ok(Verdict::Unscannable {
                reason: UnscannableReason::LimitsExceeded { limit },
            });
        }
        if name.starts_with("Heuristics.Encrypted") {
            return Ok(Verdict::Unscannable {
                reason: UnscannableReason::Encrypted,
            });
        }
        return Ok(Verdict::Infected {
            signature: name.to_owned(),
        });
    }
    if body.contains("size limit exceeded") {
        return Ok(Verdict::Unscannable {
            reason: UnscannableReason::TooLarge { limit: 0 },
        });
    }
    if body == "COMMAND READ TIMED OUT" {
        return Err("clamd timed out waiting for our data (COMMAND READ TIMED OUT)".into());
    }
    if let Some(msg) = body.strip_suffix(" ERROR") {
        return Ok(Verdict::Unscannable {
            reason: UnscannableReason::ScannerError {
                message: msg.trim().to_owned(),
            },
        });
    }
    if body.is_empty() {
        return Err("empty reply".into());
    }
    Err(format!("unrecognised reply {reply:?}"))
}

#[async_trait]
impl Scanner for ClamdScanner {
    async fn scan(&self, body: ByteStream) -> Result<Verdict> {
        self.with_deadline(self.instream(body)).await
    }

    /// Refuses an object larger than `StreamMaxLength` without connecting.
    async fn scan_sized(&self, body: ByteStream, size: Option<u64>) -> Result<Verdict> {
        if size.is_some_and(|s| s > self.config.stream_max_length) {
            return Ok(Verdict::Unscannable {
                reason: UnscannableReason::TooLarge {
                    limit: self.config.stream_max_length,
                },
            });
        }
        self.scan(body).await
    }

    /// `VERSION`, reused for [`ClamdConfig::version_ttl`]; clamd always
    /// names its engine, so the answer is `Some`.
    async fn scanner_version(&self) -> Result<Option<ScannerVersion>> {
        let cached = {
            let cache = self.version_cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .as_ref()
                .filter(|(at, _)| at.elapsed() < self.config.version_ttl)
                .map(|(_, v)| v.clone())
        };
        if let Some(v) = cached {
            return Ok(Some(v));
        }
        let v = self.fetch_version().await?;
        *self.version_cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), v.clone()));
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply() {
        assert_eq!(parse_reply("stream: OK\0"), Ok(Verdict::Clean));
        assert_eq!(
            parse_reply("stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0"),
            Ok(Verdict::Infected {
                signature: "Eicar-Test-Signature.UNOFFICIAL".into()
            })
        );
        assert_eq!(
            parse_reply("stream: Win.Test.EICAR_HDB-1 FOUND"),
            Ok(Verdict::Infected {
                signature: "Win.Test.EICAR_HDB-1".into()
            })
        );
        assert_eq!(
            parse_reply("INSTREAM size limit exceeded. ERROR\0"),
            Ok(Verdict::Unscannable {
                reason: UnscannableReason::TooLarge { limit: 0 }
            })
        );
        assert_eq!(
            parse_reply("stream: Heuristics.Encrypted.Zip FOUND"),
            Ok(Verdict::Unscannable {
                reason: UnscannableReason::Encrypted
            })
        );
        assert_eq!(
            parse_reply("stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND\0"),
            Ok(Verdict::Unscannable {
                reason: UnscannableReason::LimitsExceeded {
                    limit: ExceededLimit::MaxRecursion
                }
            })
        );
        for (name, limit) in [
            ("MaxFiles", ExceededLimit::MaxFiles),
            ("MaxScanSize", ExceededLimit::MaxScanSize),
            ("MaxFileSize", ExceededLimit::MaxFileSize),
            ("MaxScanTime", ExceededLimit::MaxScanTime),
            (
                "MaxEmbeddedPE",
                ExceededLimit::Other("MaxEmbeddedPE".into()),
            ),
        ] {
            assert_eq!(
                parse_reply(&format!("stream: Heuristics.Limits.Exceeded.{name} FOUND")),
                Ok(Verdict::Unscannable {
                    reason: UnscannableReason::LimitsExceeded { limit }
                }),
                "{name}"
            );
        }
        assert_eq!(
            parse_reply("stream: Heuristics.Limits.ExceededNot FOUND"),
            Ok(Verdict::Infected {
                signature: "Heuristics.Limits.ExceededNot".into()
            }),
            "only the limit alerts are limits"
        );
        assert_eq!(
            parse_reply("stream: Heuristics.Phishing.Email.SpoofedDomain FOUND"),
            Ok(Verdict::Infected {
                signature: "Heuristics.Phishing.Email.SpoofedDomain".into()
            }),
            "heuristics about the content stay infections"
        );
        assert_eq!(
            parse_reply("stream: Can't allocate memory ERROR"),
            Ok(Verdict::Unscannable {
                reason: UnscannableReason::ScannerError {
                    message: "Can't allocate memory".into()
                }
            })
        );
        for bad in [
            "",
            "COMMAND READ TIMED OUT",
            "stream:  FOUND",
            "UNKNOWN COMMAND",
            "stream: maybe",
        ] {
            assert!(parse_reply(bad).is_err(), "{bad:?}");
        }
    }

    /// A one-shot fake clamd: answers each connection's command with
    /// `reply`, counting connections.
    async fn fake_clamd(
        reply: &'static str,
    ) -> (ClamdScanner, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut cmd = [0u8; 64];
                let n = c.read(&mut cmd).await.unwrap_or(0);
                assert_eq!(&cmd[..n], b"zVERSION\0");
                let _ = c.write_all(reply.as_bytes()).await;
            }
        });
        let scanner = ClamdScanner::new(ClamdConfig::new(ClamdAddress::Tcp(addr.to_string())));
        (scanner, count)
    }

    #[tokio::test]
    async fn version_is_asked_once_per_ttl() {
        let (s, count) = fake_clamd("ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025\0").await;
        let v = s.scanner_version().await.unwrap().unwrap();
        assert_eq!(v.engine, "ClamAV 1.4.3");
        assert_eq!(v.database, Some(27480));
        assert_eq!(s.clone().scanner_version().await.unwrap(), Some(v.clone()));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "cached");
        let s = ClamdScanner::new(s.config().clone().with_version_ttl(Duration::ZERO));
        s.scanner_version().await.unwrap();
        s.scanner_version().await.unwrap();
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "ttl 0 asks each time"
        );
    }

    #[tokio::test]
    async fn hostile_version_reply_is_a_typed_error() {
        let (s, _) = fake_clamd("ClamAV 1.4.3/27480x/\x1b[2J\0").await;
        match s.scanner_version().await {
            Err(Error::InvalidScannerVersion { reason, .. }) => {
                assert_eq!(reason, "the database version is not a number")
            }
            other => panic!("{other:?}"),
        }
        // Nothing cached from a bad answer; a daemon that is down is
        // unavailable, not a version.
        let down = ClamdScanner::new(
            ClamdConfig::new(ClamdAddress::Tcp("127.0.0.1:1".into()))
                .with_connect_timeout(Duration::from_secs(1)),
        );
        assert!(matches!(
            down.scanner_version().await,
            Err(Error::ScannerUnavailable { .. })
        ));
    }

    /// Found by the `clamd_reply` fuzz target: a garbled reply ending in
    /// ` FOUND` gave a "signature" with NULs, newlines and non-ASCII bytes.
    #[test]
    fn garbled_signature_names_are_not_verdicts() {
        let crash = include_bytes!("../tests/data/fuzz/clamd_reply-garbled-signature.bin");
        let reply = String::from_utf8_lossy(crash);
        let err = parse_reply(&reply).expect_err("no verdict from a garbled reply");
        assert!(err.contains("malformed signature name"), "{err}");
        for bad in [
            "stream: Win.Test\0EICAR FOUND",
            "stream: two words FOUND",
            "stream: \u{e9}t\u{e9} FOUND",
        ] {
            assert!(parse_reply(bad).is_err(), "{bad:?}");
        }
    }
}
