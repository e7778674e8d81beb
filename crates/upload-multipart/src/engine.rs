//! The client engine: uploads an object from any `AsyncRead` through a
//! [`MultipartStore`], parts in parallel, each retried on its own, with
//! bounded memory, progress, cancellation and resume.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use upload_core::{
    ChecksumAlgorithm, CompletedPart, MultipartStore, ObjectKey, ObjectMeta, PartChecksum,
    PutOptions, UploadedPart,
};

use crate::error::{Error, Result};
use crate::plan::{PartPlan, PlannedPart};

/// Default part size of [`UploadOptions`]: 16 MiB. Each part costs a
/// round trip after its last byte; on a link of 25 MiB/s per connection
/// and 40 ms round trip (`bench-multipart`'s shaped link) 16 MiB parts keep
/// a connection busy about 91% of the time, 8 MiB parts 85%.
pub const DEFAULT_UPLOAD_PART_SIZE: u64 = 16 * 1024 * 1024;

/// Default parts in flight of [`UploadOptions`]: 8. On links where one
/// connection cannot fill the pipe, throughput grows with the parts in
/// flight: `bench-multipart` measured 1.9x from 4 to 8 on its shaped
/// link, 1.4x more from 8 to 16 for twice the memory; 8 × 16 MiB holds
/// 128 MiB of parts at most.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How [`MultipartUploader`] runs an upload.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UploadOptions {
    /// Preferred part size in bytes (default
    /// [`DEFAULT_UPLOAD_PART_SIZE`], 16 MiB); the [`PartPlan`] keeps it
    /// within S3's limits.
    pub part_size: u64,
    /// Parts in flight at once, at least 1 (default
    /// [`DEFAULT_CONCURRENCY`], 8). Memory held is at most this many
    /// parts.
    pub concurrency: usize,
    /// Attempts per part, at least 1 (default 5), on transient errors
    /// (5xx, `SlowDown`, timeouts, connection resets).
    pub max_attempts: u32,
    /// First retry delay (default 200 ms), doubled per attempt up to
    /// [`UploadOptions::retry_max`], minus up to half at random.
    pub retry_base: Duration,
    /// Longest retry delay (default 10 s).
    pub retry_max: Duration,
    /// Content type, cache control and tags of the completed object.
    pub put: PutOptions,
    /// Checksum sent with every part for the store to verify (default
    /// CRC-32C, `x-amz-checksum-crc32c`): the upload is created with this
    /// algorithm, a part that arrives changed is refused (`BadDigest`) and
    /// sent again, and the completion names every part's checksum. `None`
    /// sends none. A resumed upload keeps the algorithm it was created
    /// with.
    pub checksum: Option<ChecksumAlgorithm>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_UPLOAD_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            max_attempts: 5,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            put: PutOptions::default(),
            checksum: Some(ChecksumAlgorithm::Crc32c),
        }
    }
}

impl UploadOptions {
    /// Sets the preferred part size in bytes.
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }
    /// Sets the parts in flight (0 is taken as 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the attempts per part (0 is taken as 1) and the retry delays.
    pub fn with_retries(mut self, max_attempts: u32, base: Duration, max: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.retry_base = base;
        self.retry_max = max;
        self
    }
    /// Sets the options of the completed object.
    pub fn with_put_options(mut self, put: PutOptions) -> Self {
        self.put = put;
        self
    }
    /// Sets the per-part checksum (`None`: none).
    pub fn with_checksum(mut self, checksum: Option<ChecksumAlgorithm>) -> Self {
        self.checksum = checksum;
        self
    }
}

/// What an interrupted upload needs to go on: small, saved as JSON after
/// every part when the upload has a state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The upload ID.
    pub upload_id: String,
    /// Object size in bytes.
    pub object_size: u64,
    /// Part size in bytes of the plan.
    pub part_size: u64,
    /// Parts stored so far.
    pub parts: Vec<UploadedPart>,
    /// The checksum algorithm the upload was created with: its parts must
    /// carry that one, whatever the options of the resuming run say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumAlgorithm>,
}

impl ResumeState {
    /// Reads a state file.
    ///
    /// # Errors
    /// [`Error::State`] if it cannot be read or is not a state.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::State {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        serde_json::from_slice(&text).map_err(|e| Error::State {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Writes the state file atomically (a temporary file, then rename).
    fn save(&self, path: &Path) -> Result<()> {
        let fail = |e: std::io::Error| Error::State {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        use std::io::Write as _;
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(name);
        let json = serde_json::to_vec(self).expect("states serialize");
        let mut f = std::fs::File::create(&tmp).map_err(fail)?;
        f.write_all(&json).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }
}

/// Progress of an upload, reported after each part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes stored, resumed parts included.
    pub bytes_done: u64,
    /// Object size in bytes.
    pub bytes_total: u64,
    /// Parts stored.
    pub parts_done: u32,
    /// Parts in the plan.
    pub parts_total: u32,
    /// Bytes sent by this run (retries included).
    pub bytes_sent: u64,
}

/// Uploads objects in parts through a [`MultipartStore`].
#[derive(Debug, Clone)]
pub struct MultipartUploader {
    store: Arc<dyn MultipartStore>,
    options: UploadOptions,
}

impl MultipartUploader {
    /// An uploader into `store` with `options`.
    pub fn new(store: Arc<dyn MultipartStore>, options: UploadOptions) -> Self {
        Self { store, options }
    }

    /// Uploads `size` bytes read from `body` to `key`.
    ///
    /// Parts are read in order, at most `concurrency` held at once, and
    /// sent in parallel; a request that fails transiently (5xx, `SlowDown`,
    /// timeouts, connection resets) is sent again after a backoff, the
    /// others go on; the completion too. `progress` is called after each
    /// part.
    ///
    /// With `state_file`, the [`ResumeState`] is written there (atomically)
    /// after every part, and read from there when it exists: the upload
    /// goes on from the parts the store lists (ListParts). Stored parts
    /// are read again and compared with their ETag (the part's MD5), so a
    /// file changed since is sent again, never mixed; if the store no
    /// longer has the upload, it starts over. The file is removed when the
    /// upload completes.
    ///
    /// What a later run can finish is kept when a state file is given: a
    /// cancel (`cancel` completes: no new part is started, parts in flight
    /// are dropped), retries running out, expired credentials
    /// (`AccessDenied`). Anything else, and every failure without a state
    /// file, aborts the upload so no parts are left billed.
    ///
    /// # Errors
    /// [`Error::EmptyObject`] for `size` 0 (before any request: send an
    /// empty object with one PUT); [`Error::ObjectTooLarge`];
    /// [`Error::ShortBody`] or
    /// [`Error::LongBody`] if `body` does not hold `size` bytes;
    /// [`Error::State`]; [`Error::Cancelled`]; [`Error::Store`] after the
    /// attempts run out, or for a permanent store error.
    pub async fn upload<R: AsyncRead + Unpin + Send>(
        &self,
        key: &ObjectKey,
        body: R,
        size: u64,
        state_file: Option<&Path>,
        progress: impl FnMut(Progress) + Send,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<ObjectMeta> {
        self.upload_from(key, Sequential(body), size, state_file, progress, cancel)
            .await
    }

    /// [`MultipartUploader::upload`] of the file at `path`, its size taken
    /// from its metadata. On Unix, parts are read with positioned reads
    /// (`pread`) on blocking threads straight into the part buffers: no
    /// intermediate copy. A file that changes size while it is uploaded
    /// fails with [`Error::ShortBody`] or [`Error::LongBody`].
    ///
    /// # Errors
    /// As [`MultipartUploader::upload`]; [`Error::File`] when the file
    /// cannot be opened.
    pub async fn upload_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        state_file: Option<&Path>,
        progress: impl FnMut(Progress) + Send,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<ObjectMeta> {
        let cannot = |e: std::io::Error| Error::File {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(cannot)?;
        let size = file.metadata().map_err(cannot)?.len();
        #[cfg(unix)]
        let source = PositionedFile(Arc::new(file));
        #[cfg(not(unix))]
        let source = Sequential(tokio::fs::File::from_std(file));
        self.upload_from(key, source, size, state_file, progress, cancel)
            .await
    }

    async fn upload_from<S: PartSource>(
        &self,
        key: &ObjectKey,
        mut body: S,
        size: u64,
        state_file: Option<&Path>,
        mut progress: impl FnMut(Progress) + Send,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<ObjectMeta> {
        let plan = PartPlan::new(size, self.options.part_size)?;
        let resumed = match state_file.filter(|p| p.exists()) {
            Some(path) => self.resumed(path, key, &plan).await?,
            None => None,
        };
        let mut state = match resumed {
            Some(state) => state,
            None => {
                let mut put = self.options.put.clone();
                put.checksum = self.options.checksum;
                ResumeState {
                    bucket: self.store.bucket().to_owned(),
                    key: key.as_str().to_owned(),
                    upload_id: self.store.create_multipart_upload(key, put).await?,
                    object_size: size,
                    part_size: plan.part_size(),
                    parts: Vec::new(),
                    checksum: self.options.checksum,
                }
            }
        };
        let mut report = Progress {
            bytes_done: state.parts.iter().map(|p| p.size).sum(),
            bytes_total: size,
            parts_done: state.parts.len() as u32,
            parts_total: plan.part_count(),
            bytes_sent: 0,
        };
        let outcome = async {
            if let Some(path) = state_file {
                state.save(path)?;
            }
            progress(report);
            tokio::pin!(cancel);
            self.send_parts(
                key,
                &mut body,
                &plan,
                &mut state,
                state_file,
                &mut report,
                &mut progress,
                cancel,
            )
            .await?;
            state.parts.sort_by_key(|p| p.part_number);
            let parts: Vec<CompletedPart> = state.parts.iter().map(CompletedPart::from).collect();
            // Safe to repeat: a repeated completion returns the object. A
            // create-only upload completes with `If-None-Match: *`.
            let create_only = self.options.put.create_only;
            self.with_retries(key, 0, || async {
                if create_only {
                    self.store
                        .complete_multipart_upload_create_only(key, &state.upload_id, &parts)
                        .await
                } else {
                    self.store
                        .complete_multipart_upload(key, &state.upload_id, &parts)
                        .await
                }
            })
            .await
            .map_err(Error::from)
        }
        .await;
        match outcome {
            Ok(meta) => {
                if let Some(path) = state_file {
                    let _ = std::fs::remove_file(path);
                }
                Ok(meta)
            }
            // With a state file, what a later run can finish is kept: a
            // cancel, an outage longer than the retries, expired
            // credentials.
            Err(e) if state_file.is_some() && resumable(&e) => Err(match e {
                Error::Cancelled { .. } => Error::Cancelled {
                    upload_id: state.upload_id,
                },
                e => e,
            }),
            Err(e) => {
                // Nothing to resume: free the parts (S3 bills them).
                match self
                    .store
                    .abort_multipart_upload(key, &state.upload_id)
                    .await
                {
                    Ok(()) | Err(upload_core::Error::NoSuchUpload { .. }) => {
                        if let Some(path) = state_file {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                    Err(abort) => {
                        tracing::warn!(%key, upload_id = %state.upload_id, error = %abort, "abort after a failed upload failed; the sweeper or the lifecycle rule will free its parts");
                    }
                }
                Err(e)
            }
        }
    }

    /// The state of `path`, checked against this upload and brought up to
    /// date from the store's ListParts; `None` (and the file removed) when
    /// the store no longer has the upload (aborted by a sweeper, or
    /// completed by a run killed before it removed the file): the upload
    /// starts over.
    async fn resumed(
        &self,
        path: &Path,
        key: &ObjectKey,
        plan: &PartPlan,
    ) -> Result<Option<ResumeState>> {
        let mut state = ResumeState::load(path)?;
        let mismatch = |what: &str| Error::State {
            path: path.to_owned(),
            reason: format!("it is for another upload ({what} differs)"),
        };
        if state.key != key.as_str() || state.bucket != self.store.bucket() {
            return Err(mismatch("bucket or key"));
        }
        if state.object_size != plan.object_size() || state.part_size != plan.part_size() {
            return Err(mismatch("size or part size"));
        }
        let listed = match self.store.list_parts(key, &state.upload_id).await {
            Ok(l) => l,
            Err(upload_core::Error::NoSuchUpload { .. }) => {
                tracing::warn!(%key, upload_id = %state.upload_id, "the saved upload is gone; starting over");
                let _ = std::fs::remove_file(path);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        state.parts = listed
            .into_iter()
            .filter(|p| plan.part(p.part_number).is_some_and(|pp| pp.len == p.size))
            .collect();
        tracing::info!(%key, upload_id = %state.upload_id, parts = state.parts.len(), "resuming");
        Ok(Some(state))
    }

    /// Runs `op`, retrying transient errors with backoff and jitter.
    async fn with_retries<T, F, Fut>(
        &self,
        key: &ObjectKey,
        salt: u32,
        mut op: F,
    ) -> upload_core::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = upload_core::Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.options.max_attempts.max(1) => {
                    let delay = self.retry_delay(attempt, salt);
                    tracing::warn!(%key, attempt, retry_in = ?delay, error = %e, "request failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts<S: PartSource, C: Future<Output = ()>>(
        &self,
        key: &ObjectKey,
        body: &mut S,
        plan: &PartPlan,
        state: &mut ResumeState,
        state_file: Option<&Path>,
        report: &mut Progress,
        progress: &mut (impl FnMut(Progress) + Send),
        mut cancel: std::pin::Pin<&mut C>,
    ) -> Result<()> {
        let stored: std::collections::HashMap<u32, String> = state
            .parts
            .iter()
            .map(|p| (p.part_number, p.etag.clone()))
            .collect();
        let upload_id = state.upload_id.clone();
        let mut parts = plan.parts();
        let mut in_flight = FuturesUnordered::new();
        let concurrency = self.options.concurrency.max(1);
        // Part buffers come back once sent and are read into again: no
        // new allocation, page faults or zeroing per part.
        let mut spare: Vec<BytesMut> = Vec::with_capacity(concurrency);
        loop {
            // Fill the free slots, reading parts in order. A part already
            // stored is read too and checked against its ETag (the MD5 of
            // a part): a file changed since is sent again, never mixed.
            while in_flight.len() < concurrency {
                let Some(part) = parts.next() else { break };
                let bytes = tokio::select! {
                    biased;
                    _ = cancel.as_mut() => {
                        return Err(Error::Cancelled { upload_id: upload_id.clone() });
                    }
                    r = read_part(body, part.offset, part.len, spare.pop(), state.checksum) => r.map_err(|e| short(e, part.offset, plan))?,
                };
                let (bytes, checksum) = bytes;
                if let Some(etag) = stored.get(&part.number) {
                    let md5 = upload_core::storage::etag_of(&bytes);
                    if !is_md5(etag) || *etag == md5 {
                        spare.extend(bytes.try_into_mut().ok());
                        continue;
                    }
                    tracing::warn!(%key, part = part.number, "stored part differs from the file; sending it again");
                    state.parts.retain(|p| p.part_number != part.number);
                    report.bytes_done -= part.len;
                    report.parts_done -= 1;
                }
                in_flight.push(self.send_part(key, &upload_id, checksum, part, bytes));
            }
            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = cancel.as_mut() => {
                    return Err(Error::Cancelled { upload_id: upload_id.clone() });
                }
                Some(sent) = in_flight.next() => {
                    let (uploaded, bytes_sent, buffer) = sent?;
                    spare.extend(buffer.try_into_mut().ok());
                    report.bytes_done += uploaded.size;
                    report.parts_done += 1;
                    report.bytes_sent += bytes_sent;
                    state.parts.push(uploaded);
                    if let Some(path) = state_file {
                        state.save(path)?;
                    }
                    progress(*report);
                }
            }
        }
        // The body must end here: a file that grew is not cut silently.
        if !body
            .at_end(plan.object_size())
            .await
            .map_err(|e| short(e, plan.object_size(), plan))?
        {
            return Err(Error::LongBody {
                expected: plan.object_size(),
            });
        }
        Ok(())
    }

    /// Sends one part with its `checksum` (computed as it was read),
    /// retrying transient errors; returns it, the bytes sent (retries
    /// included) and the buffer, for reuse.
    async fn send_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        checksum: Option<PartChecksum>,
        part: PlannedPart,
        bytes: Bytes,
    ) -> Result<(UploadedPart, u64, Bytes)> {
        let mut sent = 0;
        let uploaded = self
            .with_retries(key, part.number, || {
                sent += bytes.len() as u64;
                let body = bytes.clone();
                let checksum = checksum.as_ref();
                async move {
                    match checksum {
                        Some(c) => {
                            self.store
                                .upload_part_checked(key, upload_id, part.number, body, c)
                                .await
                        }
                        None => {
                            self.store
                                .upload_part(key, upload_id, part.number, body)
                                .await
                        }
                    }
                }
            })
            .await?;
        Ok((uploaded, sent, bytes))
    }

    fn retry_delay(&self, attempt: u32, salt: u32) -> Duration {
        use std::hash::BuildHasher as _;
        let full = self
            .options
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.options.retry_max);
        let half = full.as_millis() as u64 / 2;
        let r = std::collections::hash_map::RandomState::new().hash_one((salt, attempt));
        full - Duration::from_millis(if half == 0 { 0 } else { r % (half + 1) })
    }
}

/// Whether an error leaves an upload that a later run can finish.
fn resumable(e: &Error) -> bool {
    match e {
        // A body that changed size, or a state file that cannot be
        // written, leaves nothing a later run could finish.
        Error::Cancelled { .. } => true,
        Error::Store(s) => s.is_transient() || matches!(s, upload_core::Error::AccessDenied { .. }),
        _ => false,
    }
}

/// Whether an ETag is a plain MD5 (32 hex digits), as S3 gives parts
/// without SSE-KMS.
fn is_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn short(e: std::io::Error, offset: u64, plan: &PartPlan) -> Error {
    Error::ShortBody {
        expected: plan.object_size(),
        at: offset,
        reason: e.to_string(),
    }
}

/// Where parts are read from.
trait PartSource: Send {
    /// Fills all of `buf` with the bytes at `offset` (parts are asked for
    /// in order) and gives it back, with its checksum when `checksum`
    /// names an algorithm.
    fn read_into(
        &mut self,
        offset: u64,
        buf: BytesMut,
        checksum: Option<ChecksumAlgorithm>,
    ) -> impl Future<Output = std::io::Result<(BytesMut, Option<PartChecksum>)>> + Send;

    /// Whether the body ends at `size` (no byte there).
    fn at_end(&mut self, size: u64) -> impl Future<Output = std::io::Result<bool>> + Send;
}

/// Any `AsyncRead`, read in order.
struct Sequential<R>(R);

impl<R: AsyncRead + Unpin + Send> PartSource for Sequential<R> {
    async fn read_into(
        &mut self,
        _offset: u64,
        mut buf: BytesMut,
        checksum: Option<ChecksumAlgorithm>,
    ) -> std::io::Result<(BytesMut, Option<PartChecksum>)> {
        self.0.read_exact(&mut buf).await?;
        let checksum = checksum.map(|a| a.checksum(&buf));
        Ok((buf, checksum))
    }

    async fn at_end(&mut self, _size: u64) -> std::io::Result<bool> {
        let mut probe = [0u8; 1];
        Ok(self.0.read(&mut probe).await? == 0)
    }
}

/// A file read with positioned reads on a blocking thread, straight into
/// the part buffer, [`READ_CHUNK`] bytes at a time, each piece
/// checksummed right after it is read, while it is still in the CPU
/// cache (one pass over memory instead of two, and no checksum work on
/// the runtime's threads).
#[cfg(unix)]
struct PositionedFile(Arc<std::fs::File>);

/// Bytes read (and checksummed) at a time from a file: 256 KiB, small
/// enough to stay in a core's L2 cache between the read and the checksum.
#[cfg(unix)]
const READ_CHUNK: usize = 256 * 1024;

#[cfg(unix)]
impl PartSource for PositionedFile {
    async fn read_into(
        &mut self,
        offset: u64,
        mut buf: BytesMut,
        checksum: Option<ChecksumAlgorithm>,
    ) -> std::io::Result<(BytesMut, Option<PartChecksum>)> {
        use std::os::unix::fs::FileExt as _;
        let file = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut hasher = checksum.map(ChecksumAlgorithm::hasher);
            let mut at = offset;
            for piece in buf.chunks_mut(READ_CHUNK) {
                file.read_exact_at(piece, at)?;
                if let Some(h) = &mut hasher {
                    h.update(piece);
                }
                at += piece.len() as u64;
            }
            Ok((buf, hasher.map(|h| h.finish())))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn at_end(&mut self, size: u64) -> std::io::Result<bool> {
        use std::os::unix::fs::FileExt as _;
        let file = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut probe = [0u8; 1];
            Ok(file.read_at(&mut probe, size)? == 0)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Reads the `len` bytes at `offset`, into `reuse` when it is large
/// enough (its old contents are overwritten, never exposed: the source
/// fills all of it or fails), and their `checksum`.
async fn read_part<S: PartSource>(
    body: &mut S,
    offset: u64,
    len: u64,
    reuse: Option<BytesMut>,
    checksum: Option<ChecksumAlgorithm>,
) -> std::io::Result<(Bytes, Option<PartChecksum>)> {
    let len = usize::try_from(len).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "part larger than this platform's memory",
        )
    })?;
    let buf = match reuse {
        Some(mut b) if b.len() >= len => {
            b.truncate(len);
            b
        }
        _ => BytesMut::zeroed(len),
    };
    let (buf, checksum) = body.read_into(offset, buf, checksum).await?;
    Ok((buf.freeze(), checksum))
}

/// A state file path next to `target` (`{target}.upload-state.json`).
pub fn state_file_for(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".upload-state.json");
    PathBuf::from(name)
}
