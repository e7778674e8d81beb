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
use upload_core::{CompletedPart, MultipartStore, ObjectKey, ObjectMeta, PutOptions, UploadedPart};

use crate::error::{Error, Result};
use crate::plan::{DEFAULT_PART_SIZE, PartPlan, PlannedPart};

/// How [`MultipartUploader`] runs an upload.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UploadOptions {
    /// Preferred part size in bytes (default 8 MiB); the [`PartPlan`]
    /// keeps it within S3's limits.
    pub part_size: u64,
    /// Parts in flight at once, at least 1 (default 4). Memory held is at
    /// most this many parts.
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
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            concurrency: 4,
            max_attempts: 5,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            put: PutOptions::default(),
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
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).expect("states serialize");
        std::fs::write(&tmp, json).map_err(fail)?;
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
    /// sent in parallel; a part that fails transiently is sent again after
    /// a backoff, the others go on. `progress` is called after each part.
    /// With `state_file`, the [`ResumeState`] is written there after every
    /// part, and read from there when it exists: the upload then goes on
    /// from the parts the store lists (ListParts), reading past the bytes
    /// of stored parts without sending them. The file is removed when the
    /// upload completes.
    ///
    /// When `cancel` completes, no new part is started, parts in flight are
    /// dropped and the upload is left in place to resume
    /// ([`Error::Cancelled`]). On a permanent error the upload is aborted,
    /// so no parts are left billed.
    ///
    /// # Errors
    /// [`Error::ObjectTooLarge`]; [`Error::ShortBody`] if `body` ends
    /// before `size` bytes; [`Error::State`]; [`Error::Cancelled`];
    /// [`Error::Store`] after the attempts run out, or for a permanent
    /// store error.
    pub async fn upload<R: AsyncRead + Unpin + Send>(
        &self,
        key: &ObjectKey,
        mut body: R,
        size: u64,
        state_file: Option<&Path>,
        mut progress: impl FnMut(Progress) + Send,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<ObjectMeta> {
        let plan = PartPlan::new(size, self.options.part_size)?;
        let mut state = match state_file.filter(|p| p.exists()) {
            Some(path) => self.resumed(path, key, &plan).await?,
            None => ResumeState {
                bucket: self.store.bucket().to_owned(),
                key: key.as_str().to_owned(),
                upload_id: self
                    .store
                    .create_multipart_upload(key, self.options.put.clone())
                    .await?,
                object_size: size,
                part_size: plan.part_size(),
                parts: Vec::new(),
            },
        };
        if let Some(path) = state_file {
            state.save(path)?;
        }
        let mut report = Progress {
            bytes_done: state.parts.iter().map(|p| p.size).sum(),
            bytes_total: size,
            parts_done: state.parts.len() as u32,
            parts_total: plan.part_count(),
            bytes_sent: 0,
        };
        progress(report);

        let outcome = {
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
            .await
        };
        match outcome {
            Ok(()) => {}
            Err(Error::Cancelled { .. }) => {
                return Err(Error::Cancelled {
                    upload_id: state.upload_id,
                });
            }
            Err(e) => {
                let resumable = matches!(e, Error::State { .. } | Error::ShortBody { .. });
                if !resumable || state_file.is_none() {
                    // Permanent: nothing to resume; free the parts.
                    if let Err(abort) = self
                        .store
                        .abort_multipart_upload(key, &state.upload_id)
                        .await
                    {
                        tracing::warn!(%key, upload_id = %state.upload_id, error = %abort, "abort after a failed upload failed");
                    }
                    if let Some(path) = state_file {
                        let _ = std::fs::remove_file(path);
                    }
                }
                return Err(e);
            }
        }
        state.parts.sort_by_key(|p| p.part_number);
        let parts: Vec<CompletedPart> = state
            .parts
            .iter()
            .map(|p| CompletedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
            })
            .collect();
        let meta = self
            .store
            .complete_multipart_upload(key, &state.upload_id, &parts)
            .await?;
        if let Some(path) = state_file {
            let _ = std::fs::remove_file(path);
        }
        Ok(meta)
    }

    /// The state of `path`, checked against this upload and brought up to
    /// date from the store's ListParts.
    async fn resumed(&self, path: &Path, key: &ObjectKey, plan: &PartPlan) -> Result<ResumeState> {
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
        let listed = self.store.list_parts(key, &state.upload_id).await?;
        state.parts = listed
            .into_iter()
            .filter(|p| plan.part(p.part_number).is_some_and(|pp| pp.len == p.size))
            .collect();
        tracing::info!(%key, upload_id = %state.upload_id, parts = state.parts.len(), "resuming");
        Ok(state)
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts<R: AsyncRead + Unpin + Send, C: Future<Output = ()>>(
        &self,
        key: &ObjectKey,
        body: &mut R,
        plan: &PartPlan,
        state: &mut ResumeState,
        state_file: Option<&Path>,
        report: &mut Progress,
        progress: &mut (impl FnMut(Progress) + Send),
        mut cancel: std::pin::Pin<&mut C>,
    ) -> Result<()> {
        let done: std::collections::HashSet<u32> =
            state.parts.iter().map(|p| p.part_number).collect();
        let mut pending = plan
            .parts()
            .filter(|p| !done.contains(&p.number))
            .peekable();
        let upload_id = state.upload_id.clone();
        let mut position = 0u64;
        let mut in_flight = FuturesUnordered::new();
        loop {
            // Fill the free slots, reading parts in order.
            while in_flight.len() < self.options.concurrency {
                let Some(part) = pending.next() else { break };
                skip(body, part.offset - position)
                    .await
                    .map_err(|e| short(e, part.offset, plan))?;
                let bytes = read_part(body, part.len)
                    .await
                    .map_err(|e| short(e, part.offset, plan))?;
                position = part.offset + part.len;
                in_flight.push(self.send_part(key, &upload_id, part, bytes));
            }
            if in_flight.is_empty() {
                return Ok(());
            }
            tokio::select! {
                biased;
                _ = cancel.as_mut() => {
                    return Err(Error::Cancelled { upload_id: upload_id.clone() });
                }
                Some(sent) = in_flight.next() => {
                    let (uploaded, bytes_sent) = sent?;
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
    }

    /// Sends one part, retrying transient errors; returns it and the bytes
    /// sent (retries included).
    async fn send_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part: PlannedPart,
        bytes: Bytes,
    ) -> Result<(UploadedPart, u64)> {
        let mut sent = 0;
        let mut attempt = 1;
        loop {
            sent += bytes.len() as u64;
            match self
                .store
                .upload_part(key, upload_id, part.number, bytes.clone())
                .await
            {
                Ok(p) => return Ok((p, sent)),
                Err(e) if e.is_transient() && attempt < self.options.max_attempts => {
                    let delay = self.retry_delay(attempt, part.number);
                    tracing::warn!(%key, part = part.number, attempt, retry_in = ?delay, error = %e, "part failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
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

fn short(e: std::io::Error, offset: u64, plan: &PartPlan) -> Error {
    Error::ShortBody {
        expected: plan.object_size(),
        at: offset,
        reason: e.to_string(),
    }
}

/// Reads and drops `n` bytes (the parts already stored).
async fn skip<R: AsyncRead + Unpin>(body: &mut R, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut (&mut *body).take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads exactly `len` bytes.
async fn read_part<R: AsyncRead + Unpin>(body: &mut R, len: u64) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(len as usize);
    body.read_exact(&mut buf).await?;
    Ok(buf.freeze())
}

/// A state file path next to `target` (`{target}.upload-state.json`).
pub fn state_file_for(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".upload-state.json");
    PathBuf::from(name)
}
