//! The worker: one ObjectCreated event in, a checked, scanned and processed
//! upload out.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use upload_core::{
    EventMessage, ObjectKey, PutOptions, SNIFF_LEN, Storage, Tags, UploadPolicy,
    parse_event_message, same_type, sniff,
};
use upload_scan::{Quarantine, Scanner, Verdict, clean_tags};

use crate::codec::{DecodeLimits, EncodedVariant, ImageCodec, VariantSpec};
use crate::error::{Error, Result};
use crate::manifest::{
    Location, MANIFEST_VERSION, Manifest, Outcome, SourceObject, VariantRecord, manifest_key,
    variant_key,
};
use crate::queue::{Queue, QueueMessage, ReceiveOptions};

/// First wait after a transient receive failure in [`Worker::run`].
const RECEIVE_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait between receive retries in [`Worker::run`].
const RECEIVE_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// `Cache-Control` of variants: they never change under their key.
pub const VARIANT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of manifests: they are replaced when a new version of
/// the original is processed.
pub const MANIFEST_CACHE_CONTROL: &str = "no-cache";

/// How a worker processes uploads. Build with [`WorkerConfig::new`] and the
/// `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Checked against the type sniffed from magic bytes and the real size.
    pub policy: UploadPolicy,
    /// Variants made of each clean image (default: thumb 256 and medium
    /// 1024, WebP quality 80).
    pub variants: Vec<VariantSpec>,
    /// Image decode limits (default: 40 MP, 16384 px a side).
    pub decode_limits: DecodeLimits,
    /// How messages are received (default: 10 a batch, 20 s long poll).
    pub receive: ReceiveOptions,
    /// Most messages processed at once, at least 1 (default 4).
    pub max_in_flight: usize,
}

impl WorkerConfig {
    /// Defaults around `policy`.
    pub fn new(policy: UploadPolicy) -> Self {
        Self {
            policy,
            variants: VariantSpec::defaults(),
            decode_limits: DecodeLimits::default(),
            receive: ReceiveOptions::default(),
            max_in_flight: 4,
        }
    }
    /// Sets the variants.
    pub fn with_variants(mut self, variants: Vec<VariantSpec>) -> Self {
        self.variants = variants;
        self
    }
    /// Sets the decode limits.
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }
    /// Sets the receive options.
    pub fn with_receive(mut self, receive: ReceiveOptions) -> Self {
        self.receive = receive;
        self
    }
    /// Sets how many messages are processed at once (0 is taken as 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }
}

/// Counts of what a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Messages received.
    pub messages: u64,
    /// Uploads processed clean.
    pub clean: u64,
    /// Uploads quarantined as infected.
    pub infected: u64,
    /// Uploads quarantined as unscannable.
    pub unscannable: u64,
    /// Uploads rejected by policy or as undecodable.
    pub rejected: u64,
    /// `s3:TestEvent` messages deleted.
    pub test_events: u64,
    /// Records skipped: not ObjectCreated, another bucket, or the original
    /// already gone.
    pub skipped: u64,
    /// Messages left on the queue after an error (retried after the
    /// visibility timeout, dead-lettered after the redrive count).
    pub failed: u64,
}

impl RunStats {
    fn add(&mut self, o: &RunStats) {
        self.messages += o.messages;
        self.clean += o.clean;
        self.infected += o.infected;
        self.unscannable += o.unscannable;
        self.rejected += o.rejected;
        self.test_events += o.test_events;
        self.skipped += o.skipped;
        self.failed += o.failed;
    }

    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Clean => self.clean += 1,
            Outcome::Infected => self.infected += 1,
            Outcome::Unscannable => self.unscannable += 1,
            Outcome::Rejected => self.rejected += 1,
        }
    }
}

/// Processes upload events from a queue.
///
/// Per ObjectCreated record of the uploads bucket: sniff the real type from
/// the first 8 KiB, check it and the size against the policy, stream the
/// object through the scanner, quarantine what is not clean, tag clean
/// originals `scan-status=CLEAN`, decode images under limits and write each
/// variant to the processed store under `{original key}/{variant}.{ext}`,
/// then the manifest `{original key}/manifest.json` last. The message is
/// deleted only when every record of it is handled; on any error it stays
/// on the queue (redelivered after the visibility timeout, dead-lettered
/// after the redrive count), and the original is never modified beyond its
/// tags or moved except into quarantine.
///
/// Idempotent: a redelivered message for an original whose manifest
/// records the same ETag does no writes.
#[derive(Debug, Clone)]
pub struct Worker {
    queue: Arc<dyn Queue>,
    uploads: Arc<dyn Storage>,
    processed: Arc<dyn Storage>,
    scanner: Arc<dyn Scanner>,
    codec: Arc<dyn ImageCodec>,
    quarantine: Quarantine,
    config: WorkerConfig,
}

impl Worker {
    /// A worker reading `queue`, processing objects of `uploads` into
    /// `processed`, scanning with `scanner` and quarantining into
    /// `quarantine`.
    pub fn new(
        queue: Arc<dyn Queue>,
        uploads: Arc<dyn Storage>,
        processed: Arc<dyn Storage>,
        scanner: Arc<dyn Scanner>,
        codec: Arc<dyn ImageCodec>,
        quarantine: Quarantine,
        config: WorkerConfig,
    ) -> Self {
        Self {
            queue,
            uploads,
            processed,
            scanner,
            codec,
            quarantine,
            config,
        }
    }

    /// Receives one batch (waiting up to the configured long poll) and
    /// processes it, at most `max_in_flight` messages at once.
    ///
    /// # Errors
    /// Only queue errors on receive; per-message failures are counted in
    /// [`RunStats::failed`] and logged.
    pub async fn run_once(&self) -> Result<RunStats> {
        self.run_batch(&self.config.receive).await
    }

    /// Processes messages until a receive without waiting finds none
    /// visible. Messages that failed stay invisible until their timeout, so
    /// they do not keep this loop busy.
    ///
    /// # Errors
    /// Queue errors on receive.
    pub async fn run_until_idle(&self) -> Result<RunStats> {
        let opts = self
            .config
            .receive
            .clone()
            .with_wait(std::time::Duration::ZERO);
        let mut total = RunStats::default();
        loop {
            let s = self.run_batch(&opts).await?;
            if s.messages == 0 {
                return Ok(total);
            }
            total.add(&s);
        }
    }

    /// Long-polls and processes until `shutdown` completes; the batch in
    /// progress is finished first (nothing is abandoned mid-write). A
    /// transient receive failure ([`Error::QueueUnavailable`]) is retried
    /// with exponential backoff from 1 s to 30 s.
    ///
    /// # Errors
    /// Permanent queue errors on receive (a wrong queue URL, no access).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<RunStats> {
        tokio::pin!(shutdown);
        let mut total = RunStats::default();
        let mut backoff = RECEIVE_BACKOFF_MIN;
        loop {
            let received = tokio::select! {
                _ = &mut shutdown => return Ok(total),
                b = self.queue.receive(&self.config.receive) => b,
            };
            let batch = match received {
                Ok(b) => {
                    backoff = RECEIVE_BACKOFF_MIN;
                    b
                }
                Err(e @ Error::QueueUnavailable { .. }) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "receive failed; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(total),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(RECEIVE_BACKOFF_MAX);
                    continue;
                }
                Err(e) => return Err(e),
            };
            total.add(&self.process_batch(batch).await);
        }
    }

    async fn run_batch(&self, opts: &ReceiveOptions) -> Result<RunStats> {
        let batch = self.queue.receive(opts).await?;
        Ok(self.process_batch(batch).await)
    }

    async fn process_batch(&self, batch: Vec<QueueMessage>) -> RunStats {
        let mut stats = RunStats {
            messages: batch.len() as u64,
            ..RunStats::default()
        };
        let results: Vec<_> = futures::stream::iter(batch)
            .map(|m| async move {
                let r = self.process_message(&m).await;
                (m, r)
            })
            .buffer_unordered(self.config.max_in_flight.max(1))
            .collect()
            .await;
        for (m, r) in results {
            match r {
                Ok(s) => stats.add(&s),
                Err(e) => {
                    stats.failed += 1;
                    tracing::error!(message_id = %m.message_id, receive_count = m.receive_count, error = %e, "message left on the queue");
                }
            }
        }
        stats
    }

    /// Handles one message and deletes it when every record is handled.
    ///
    /// # Errors
    /// Any error of parsing or processing; the message is then not deleted.
    pub async fn process_message(&self, msg: &QueueMessage) -> Result<RunStats> {
        use tracing::Instrument as _;
        // The span follows the future, not the thread: messages processed
        // at once never log under each other's IDs.
        let span = tracing::info_span!("message", message_id = %msg.message_id, receive_count = msg.receive_count);
        self.process_message_inner(msg).instrument(span).await
    }

    async fn process_message_inner(&self, msg: &QueueMessage) -> Result<RunStats> {
        let mut stats = RunStats::default();
        match parse_event_message(&msg.body)? {
            EventMessage::Test(t) => {
                tracing::info!(bucket = %t.bucket, "s3:TestEvent deleted");
                stats.test_events += 1;
            }
            EventMessage::Records(records) => {
                for r in records {
                    if !r.is_object_created() || r.s3.bucket.name != self.uploads.bucket() {
                        tracing::debug!(event = %r.event_name, bucket = %r.s3.bucket.name, "record skipped");
                        stats.skipped += 1;
                        continue;
                    }
                    let key = match r.key() {
                        Ok(k) => k,
                        Err(e) => {
                            // S3 accepts keys we refuse (folder markers
                            // ending in '/', '//'): skip the record, keep
                            // handling the others of the message.
                            tracing::error!(key = %r.s3.object.key, error = %e, "record skipped: not a valid object key");
                            stats.skipped += 1;
                            continue;
                        }
                    };
                    match self.process_object(&key).await? {
                        Some(m) => stats.count(m.verdict),
                        None => stats.skipped += 1,
                    }
                }
            }
        }
        self.queue.delete(&msg.receipt_handle).await?;
        Ok(stats)
    }

    /// Processes the original at `key` and returns its manifest, or `None`
    /// if the original is gone and was never processed (deleted before the
    /// event was handled).
    ///
    /// # Errors
    /// Storage errors, [`upload_scan::Error::ScannerUnavailable`], codec
    /// errors other than bad input (bad input is a `Rejected` manifest).
    pub async fn process_object(&self, key: &ObjectKey) -> Result<Option<Manifest>> {
        let mkey = manifest_key(key)?;
        let meta = match self.uploads.head(key).await {
            Ok(m) => m,
            Err(upload_core::Error::NotFound { .. }) => {
                // Gone: deleted, or quarantined by an earlier delivery.
                return self.read_manifest(&mkey).await;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(done) = self.read_manifest(&mkey).await?
            && done.source.etag == meta.etag
        {
            tracing::info!(%key, etag = %meta.etag, "already processed");
            return Ok(Some(done));
        }
        let head = if meta.size == 0 {
            bytes::Bytes::new()
        } else {
            self.uploads.get_range(key, 0..SNIFF_LEN as u64).await?
        };
        let sniffed = sniff(&head);
        let mut manifest = Manifest {
            version: MANIFEST_VERSION,
            source: SourceObject {
                bucket: self.uploads.bucket().to_owned(),
                key: key.clone(),
                etag: meta.etag.clone(),
                size: meta.size,
                sniffed: sniffed.map(|s| s.mime.to_owned()),
            },
            verdict: Outcome::Clean,
            signature: None,
            reason: None,
            quarantine: None,
            variants: Vec::new(),
            processed_at: upload_core::timestamp::now_rfc3339(),
        };

        // The declared Content-Type (signed into the presigned URL) must
        // name what the bytes are, or the object would be served as
        // something it is not.
        let declared = meta.content_type.as_deref().filter(|ct| {
            !matches!(
                upload_core::policy::essence(ct).as_str(),
                "" | "application/octet-stream" | "binary/octet-stream"
            )
        });
        let refusal = match (sniffed, declared) {
            (None, _) => Some("content type not recognised from magic bytes".to_owned()),
            (Some(s), Some(d)) if !same_type(d, s.mime) => {
                Some(format!("declared as {d} but the bytes are {}", s.mime))
            }
            (Some(s), _) => self
                .config
                .policy
                .check(s.mime, meta.size)
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(reason) = refusal {
            return self.reject(key, manifest, reason).await.map(Some);
        }
        let sniffed = sniffed.expect("refused above when None");

        let (_, stream) = self.uploads.get_stream(key).await?;
        let verdict = self.scanner.scan_sized(stream, Some(meta.size)).await?;
        tracing::info!(%key, verdict = verdict.status(), "scanned");
        match &verdict {
            Verdict::Clean => {}
            Verdict::Infected { signature } => {
                manifest.verdict = Outcome::Infected;
                manifest.signature = Some(signature.clone());
            }
            Verdict::Unscannable { reason } => {
                manifest.verdict = Outcome::Unscannable;
                manifest.reason = Some(reason.to_string());
            }
        }
        if !verdict.is_clean() {
            let q = self
                .quarantine
                .quarantine(self.uploads.as_ref(), key, &verdict)
                .await?;
            manifest.quarantine = Some(Location {
                bucket: q.bucket,
                key: q.key,
            });
            self.write_manifest(&mkey, &manifest).await?;
            return Ok(Some(manifest));
        }
        self.uploads.put_tags(key, &clean_tags()).await?;

        if sniffed.mime.starts_with("image/") && !self.config.variants.is_empty() {
            let body = self.uploads.get(key).await?.body;
            let codec = self.codec.clone();
            let specs = self.config.variants.clone();
            let limits = self.config.decode_limits.clone();
            let rendered = tokio::task::spawn_blocking(move || -> Result<Vec<EncodedVariant>> {
                let img = codec.decode(&body, &limits)?;
                specs.iter().map(|s| codec.render(&img, s)).collect()
            })
            .await
            .map_err(|e| Error::TaskFailed {
                reason: e.to_string(),
            })?;
            let variants = match rendered {
                Ok(v) => v,
                Err(
                    e @ (Error::UnsupportedImage { .. }
                    | Error::ImageTooLarge { .. }
                    | Error::CorruptImage { .. }),
                ) => {
                    return self.reject(key, manifest, e.to_string()).await.map(Some);
                }
                Err(e) => return Err(e),
            };
            for v in variants {
                let vkey = variant_key(key, &v.name, v.extension)?;
                let size = v.bytes.len() as u64;
                self.processed
                    .put(
                        &vkey,
                        v.bytes,
                        PutOptions::default()
                            .with_content_type(v.content_type)
                            .with_cache_control(VARIANT_CACHE_CONTROL),
                    )
                    .await?;
                manifest.variants.push(VariantRecord {
                    name: v.name,
                    key: vkey,
                    content_type: v.content_type.to_owned(),
                    width: v.width,
                    height: v.height,
                    bytes: size,
                });
            }
        }
        self.write_manifest(&mkey, &manifest).await?;
        tracing::info!(%key, variants = manifest.variants.len(), "processed");
        Ok(Some(manifest))
    }

    async fn reject(
        &self,
        key: &ObjectKey,
        mut manifest: Manifest,
        reason: String,
    ) -> Result<Manifest> {
        tracing::warn!(%key, %reason, "rejected");
        let tags = Tags::from_pairs([("upload-status", "REJECTED")])?;
        self.uploads.put_tags(key, &tags).await?;
        manifest.verdict = Outcome::Rejected;
        manifest.reason = Some(reason);
        let mkey = manifest_key(key)?;
        self.write_manifest(&mkey, &manifest).await?;
        Ok(manifest)
    }

    async fn write_manifest(&self, mkey: &ObjectKey, manifest: &Manifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        self.processed
            .put(
                mkey,
                json.into(),
                PutOptions::default()
                    .with_content_type("application/json")
                    .with_cache_control(MANIFEST_CACHE_CONTROL),
            )
            .await?;
        Ok(())
    }

    /// Reads a manifest; a missing one is `None`, a corrupt one is logged and
    /// treated as missing (the upload is processed again and the manifest
    /// rewritten).
    async fn read_manifest(&self, mkey: &ObjectKey) -> Result<Option<Manifest>> {
        match self.processed.get(mkey).await {
            Ok(got) => match serde_json::from_slice::<Manifest>(&got.body) {
                Ok(m) => Ok(Some(m)),
                Err(e) => {
                    tracing::warn!(key = %mkey, error = %e, "corrupt manifest ignored");
                    Ok(None)
                }
            },
            Err(upload_core::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
