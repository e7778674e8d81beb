//! [`UploadProcessor`]: what the worker does with one ObjectCreated or
//! ObjectRemoved record of the uploads bucket.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tracing::Instrument as _;
use upload_core::event::sequencer_cmp;
use upload_core::metadata::UploadContext;
use upload_core::{
    ObjectKey, ObjectMeta, PutOptions, S3EventRecord, SNIFF_LEN, Storage, Tags, UploadPolicy,
    same_type, sniff,
};
use upload_scan::{
    Quarantine, SCAN_DATABASE_TAG, SOURCE_ETAG_TAG, Scanner, ScannerVersion, Verdict,
    clean_tags_for,
};

use super::{Handled, RecordHandler, WorkerConfig};
use crate::codec::{ImageCodec, VariantSpec};
use crate::error::{Error, Result};
use crate::manifest::{
    Location, Manifest, Outcome, SourceObject, VariantRecord, manifest_key, variant_key,
};
use crate::media::{MediaInput, MediaProcessor, Processed};
use crate::metrics::{self, Stage};
use crate::notify::{Notifier, UploadNotification};

/// `Cache-Control` of variants: a variant key names one version of the
/// original ([`variant_key`]), so it never changes.
pub const VARIANT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of manifests: they are replaced when a new version of
/// the original is processed.
pub const MANIFEST_CACHE_CONTROL: &str = "no-cache";

/// A route's policy and variants, resolved against the worker's defaults.
type RouteRules = (UploadPolicy, Arc<[VariantSpec]>);

/// Processes the records of the uploads bucket: the [`RecordHandler`] of
/// [`super::Worker::new`].
///
/// Per ObjectCreated record: one GET of the original, whose first 8 KiB
/// give the type by magic bytes (checked against the declared, signed
/// Content-Type and the policy), and whose whole body streams through the
/// scanner (kept in memory only when a [`MediaProcessor`] handles its
/// type); what is not clean is quarantined; a clean upload is processed by
/// the first processor that handles its sniffed type (an image decoded
/// under limits, a PDF's first page, a video's poster frame; a refusal
/// rejects it), then tagged `scan-status=CLEAN`; each variant is written
/// create-only under [`variant_key`]; the manifest is written last.
///
/// Exactly-once results from at-least-once delivery:
/// - an event whose ETag the manifest already records does no writes and
///   reads nothing but the manifest;
/// - an event about an older version (its ETag is not the object's any
///   more, or its sequencer is not greater than the manifest's) does no
///   writes; a newer version gets new variant keys, its manifest replaces
///   the old one, then the old version's variants are deleted;
/// - records of one key are handled one at a time per processor (share one
///   processor, e.g. by cloning the [`super::Worker`], between the workers
///   of a process);
/// - the original is never written: only tagged, or moved to quarantine.
///
/// Per ObjectRemoved record (the original was deleted): the variants, then
/// the manifest, are deleted, unless the object exists again or the
/// removal was the quarantine move (that manifest stays as the record).
///
/// Across processes, two workers given the same version at the same time
/// both write the same bytes under the same keys (create-only variants
/// refuse the second copy); only the manifest may be written twice.
#[derive(Debug, Clone)]
pub struct UploadProcessor {
    uploads: Arc<dyn Storage>,
    processed: Arc<dyn Storage>,
    scanner: Arc<dyn Scanner>,
    quarantine: Quarantine,
    policy: UploadPolicy,
    variants: Arc<[VariantSpec]>,
    routes: Arc<BTreeMap<String, RouteRules>>,
    /// Asked in order; the first that handles the sniffed type processes.
    processors: Arc<[Arc<dyn MediaProcessor>]>,
    locks: Arc<KeyLocks>,
    notifier: Option<Arc<dyn Notifier>>,
}

impl UploadProcessor {
    /// Reads originals from `uploads`, writes variants and manifests to
    /// `processed` (a bucket of its own, so its writes never raise events
    /// the worker would read), scans with `scanner`, quarantines into
    /// `quarantine`; the policy, variants, decode limits and media
    /// processors come from `config`: its
    /// [`processors`](WorkerConfig::processors), then an
    /// [`ImageProcessor`](crate::media::ImageProcessor) of `codec` under
    /// its decode limits.
    pub fn new(
        uploads: Arc<dyn Storage>,
        processed: Arc<dyn Storage>,
        scanner: Arc<dyn Scanner>,
        codec: Arc<dyn ImageCodec>,
        quarantine: Quarantine,
        config: &WorkerConfig,
    ) -> Self {
        Self {
            uploads,
            processed,
            scanner,
            quarantine,
            policy: config.policy.clone(),
            variants: config.variants.clone().into(),
            routes: Arc::new(
                config
                    .routes
                    .iter()
                    .map(|(name, r)| {
                        let policy = r.policy.clone().unwrap_or_else(|| config.policy.clone());
                        (name.clone(), (policy, r.variants.clone().into()))
                    })
                    .collect(),
            ),
            processors: crate::media::registry(
                &config.processors,
                codec,
                config.decode_limits.clone(),
            ),
            locks: Arc::default(),
            notifier: None,
        }
    }

    /// Hands every outcome to `notifier` before the record counts as
    /// handled: a processed, rejected or quarantined upload once its
    /// manifest is written, a removed one before its manifest is deleted,
    /// and again on every redelivery of a record already handled (at least
    /// once; the notification's [`id`](UploadNotification::id) is the
    /// same). A notifier error fails the record: the message is delivered
    /// again. Give it an outbox ([`WebhookNotifier`](crate::notify::WebhookNotifier))
    /// so a slow or failing receiver never holds the worker up.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Hands `m`'s outcome to the notifier, if any.
    async fn notify(&self, m: &Manifest) -> Result<()> {
        if let Some(n) = &self.notifier {
            let sent = n
                .notify(&UploadNotification::from_manifest(m, m.upload.clone()))
                .instrument(tracing::info_span!("notify"))
                .await;
            let outcome = if sent.is_ok() { "delivered" } else { "failed" };
            ::metrics::counter!(crate::metrics::NOTIFICATIONS, "outcome" => outcome).increment(1);
            sent?;
        }
        Ok(())
    }

    /// The policy and variants of an upload made through `route` (its
    /// `x-amz-meta-upload-route`): the route's when configured, else the
    /// worker's own.
    fn processing_for(
        &self,
        key: &ObjectKey,
        route: Option<&str>,
    ) -> (&UploadPolicy, Arc<[VariantSpec]>) {
        match route.map(|r| (r, self.routes.get(r))) {
            Some((_, Some((policy, variants)))) => (policy, variants.clone()),
            Some((name, None)) => {
                tracing::warn!(%key, route = name, "no processing is configured for this route: the worker's default policy and variants apply");
                (&self.policy, self.variants.clone())
            }
            None => (&self.policy, self.variants.clone()),
        }
    }

    /// Processes the current version of the original at `key`, as an
    /// ObjectCreated record without ETag or sequencer would.
    ///
    /// # Errors
    /// As [`RecordHandler::handle`].
    pub async fn process_key(&self, key: &ObjectKey) -> Result<Handled> {
        self.created(key, None, None, None).await
    }

    /// Scans the small object at `key` (a probe): whether it is clean; a
    /// probe already deleted counts as clean (there is nothing to serve).
    ///
    /// # Errors
    /// The store's or the scanner's, as a transient failure of the record.
    async fn probe_is_clean(&self, key: &ObjectKey) -> Result<bool> {
        let (meta, stream) = match self.uploads.get_stream(key).await {
            Ok(got) => got,
            Err(upload_core::Error::NotFound { .. }) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if meta.size > super::probe::PROBE_MAX_BYTES {
            return Ok(false);
        }
        let verdict = self.scanner.scan_sized(stream, Some(meta.size)).await?;
        if !verdict.is_clean() {
            tracing::warn!(%key, verdict = verdict.status(), "an object at a probe key is not clean: processed as an upload");
        }
        Ok(verdict.is_clean())
    }

    /// Tags the deployment doctor's probe at `key` as received
    /// ([`super::probe`]); best effort: the doctor may have deleted it
    /// already, and a probe must never fail or retry a message.
    async fn acknowledge_probe(&self, key: &ObjectKey) {
        let tags = Tags::from_pairs([(super::probe::PROBE_ACK_TAG, super::probe::PROBE_ACK_VALUE)]);
        let result = match tags {
            Ok(tags) => self.uploads.put_tags(key, &tags).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::info!(%key, "deployment doctor probe acknowledged"),
            Err(e) => tracing::debug!(%key, error = %e, "deployment doctor probe not acknowledged"),
        }
    }

    /// Whether `key` is one of the processor's own outputs: a quarantined
    /// object in the uploads bucket.
    fn is_own_output(&self, key: &ObjectKey) -> bool {
        let q = self.quarantine.prefix();
        !q.is_empty()
            && self.quarantine.storage().bucket() == self.uploads.bucket()
            && key.as_str().starts_with(q)
    }

    async fn created(
        &self,
        key: &ObjectKey,
        event_etag: Option<&str>,
        sequencer: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<Handled> {
        let _guard = self.locks.lock(key.as_str()).await;
        // Derived keys always fit: a key too long for them beside it gets
        // the hashed layout (`manifest::derived_prefix`).
        let mkey = manifest_key(key)?;
        let previous = self.read_manifest(&mkey).await?;
        // The same bytes uploaded again (same ETag, newer sequencer) are a
        // new object: untagged, maybe not quarantined. They are processed
        // again; their variants already exist and are reused.
        let mut reupload = false;
        if let Some(done) = previous.as_ref().and_then(|p| p.manifest.as_ref()) {
            let order = match (sequencer, done.source.sequencer.as_deref()) {
                (Some(ours), Some(theirs)) => Some(sequencer_cmp(ours, theirs)),
                _ => None,
            };
            if order.is_some_and(|o| o != Ordering::Greater) {
                tracing::info!(%key, sequencer, manifest_sequencer = done.source.sequencer, "event not newer than the manifest's: ignored");
                // In a versioned bucket that older version is still there,
                // readable by version ID: scanned all the same, and
                // quarantined unless clean (it gets no manifest).
                if let Some(v) = version_id
                    && done.source.version_id.as_deref() != Some(v)
                {
                    self.scan_older_version(key, v).await?;
                }
                return Ok(if event_etag.is_some_and(|e| e == done.source.etag) {
                    self.notify(done).await?;
                    Handled::AlreadyProcessed
                } else {
                    Handled::Superseded
                });
            }
            reupload = order == Some(Ordering::Greater);
            if event_etag.is_some_and(|e| e == done.source.etag) && !reupload {
                tracing::info!(%key, etag = %done.source.etag, "already processed");
                self.notify(done).await?;
                return Ok(Handled::AlreadyProcessed);
            }
        }
        // Exactly the version the event names (versioned buckets), never
        // whatever is current.
        let download_started = Instant::now();
        let (meta, stream) = match self
            .uploads
            .get_stream_version(key, version_id)
            .instrument(tracing::info_span!("download", version_id))
            .await
        {
            Ok(got) => got,
            Err(upload_core::Error::NotFound { .. }) => {
                return self
                    .gone_before_processing(key, &mkey, previous, event_etag, sequencer)
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        if meta.etag.is_empty() {
            // Variant keys and idempotency hang on the ETag.
            return Err(upload_core::Error::Unavailable {
                reason: format!("{key}: the store gave no ETag"),
            }
            .into());
        }
        if event_etag.is_some_and(|e| e != meta.etag) {
            tracing::info!(%key, event_etag, etag = %meta.etag, "the object changed since the event: its own event processes it");
            return Ok(Handled::Superseded);
        }
        if !reupload
            && let Some(done) = previous
                .as_ref()
                .and_then(|p| p.manifest.as_ref())
                .filter(|p| p.source.etag == meta.etag)
        {
            tracing::info!(%key, etag = %meta.etag, "already processed");
            self.notify(done).await?;
            return Ok(Handled::AlreadyProcessed);
        }
        // Every later read, tag and quarantine names the version read (the
        // event's, or the one the store answered with when the event named
        // none).
        let version_id = meta
            .version_id
            .clone()
            .or_else(|| version_id.map(str::to_owned));
        // Processing, manifest and notification continue the trace the
        // upload was presigned in (`upload_core::trace`).
        let span = process_span(key, &meta);
        let Some(manifest) = self
            .process(
                key,
                meta,
                (stream, download_started),
                sequencer,
                version_id.as_deref(),
            )
            .instrument(span.clone())
            .await?
        else {
            return Ok(Handled::Superseded);
        };
        // The manifest last, replacing only the version read above.
        let written = self
            .write_manifest(&mkey, &manifest, previous)
            .instrument(span.clone())
            .await?;
        match written {
            ManifestWrite::Written { replaced } => {
                if let Some(old) = replaced {
                    self.delete_replaced_variants(&old, &manifest).await;
                }
                tracing::info!(parent: &span, %key, verdict = manifest.verdict.as_str(), variants = manifest.variants.len(), "processed");
                self.notify(&manifest).instrument(span).await?;
                Ok(Handled::Processed(manifest.verdict))
            }
            ManifestWrite::SameVersion => {
                self.notify(&manifest).instrument(span).await?;
                Ok(Handled::AlreadyProcessed)
            }
            ManifestWrite::Newer(current) => {
                self.delete_replaced_variants(&manifest, &current).await;
                Ok(Handled::Superseded)
            }
        }
    }

    /// Checks, scans, quarantines or tags, renders and writes the variants;
    /// returns the manifest to write, or `None` when the object was
    /// replaced by a newer version meanwhile (nothing of the older one is
    /// applied to it; the newer one's event processes it).
    async fn process(
        &self,
        key: &ObjectKey,
        meta: ObjectMeta,
        (stream, download_started): (upload_core::ByteStream, Instant),
        sequencer: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<Option<Manifest>> {
        // Fused: a small object ends while the head is read, and the
        // chain below polls it again (the S3 body stream must not be
        // polled after its end).
        let mut stream = stream.fuse();
        // The first chunks, up to the sniff length, from the one GET.
        let mut head_chunks: Vec<Bytes> = Vec::new();
        let mut head_len = 0;
        while head_len < SNIFF_LEN {
            match stream.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    head_len += chunk.len();
                    head_chunks.push(chunk);
                }
                None => break,
            }
        }
        metrics::observe(Stage::Download, download_started);
        let sniff_started = Instant::now();
        let head = concat(&head_chunks, SNIFF_LEN);
        let sniffed = sniff(&head);
        metrics::observe(Stage::Sniff, sniff_started);
        let mut manifest = Manifest::new(
            SourceObject {
                bucket: self.uploads.bucket().to_owned(),
                key: key.clone(),
                etag: meta.etag.clone(),
                size: meta.size,
                sniffed: sniffed.ok().map(|s| s.mime.to_owned()),
                version_id: version_id.map(str::to_owned),
                sequencer: sequencer.map(str::to_owned),
            },
            Outcome::Clean,
        );
        manifest.upload = UploadContext::from_metadata(&meta.metadata);
        let (policy, variants) = self.processing_for(key, manifest.upload.route.as_deref());

        // The declared Content-Type (signed into the presigned URL) must
        // name what the bytes are, or the object would be served as
        // something it is not.
        let declared = meta.content_type.as_deref().filter(|ct| {
            !matches!(
                upload_core::policy::essence(ct).as_str(),
                "" | "application/octet-stream" | "binary/octet-stream"
            )
        });
        // A 0-byte object is `Unrecognized::Empty`: refused for good.
        let refusal = match (sniffed, declared) {
            (Err(why), _) => Some(why.to_string()),
            (Ok(s), Some(d)) if !same_type(d, s.mime) => {
                Some(format!("declared as {d} but the bytes are {}", s.mime))
            }
            (Ok(s), _) => policy.check(s.mime, meta.size).err().map(|e| e.to_string()),
        };

        // Every object is scanned, whatever the type check said: an
        // infected file is quarantined even when its type is refused (EICAR
        // uploaded as `photo.jpg`). The rest of the same GET streams through
        // the scanner; an allowed upload that a media processor handles is
        // kept for it (its size is within the policy's maximum).
        let processor = match (&refusal, sniffed) {
            (None, Ok(s)) => self.processors.iter().find(|p| p.handles(s.mime)).cloned(),
            _ => None,
        };
        let keep = processor.is_some();
        let kept: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let tee = kept.clone();
        let body = futures::stream::iter(head_chunks.into_iter().map(Ok))
            .chain(stream)
            .inspect(move |chunk| {
                if keep && let Ok(c) = chunk {
                    lock(&tee).push(c.clone());
                }
            })
            .boxed();
        // The version first: a database updated during the scan makes the
        // record older than the database used (a rescan checks it again),
        // never newer.
        let scanner_version = scanner_version(self.scanner.as_ref()).await?;
        let scan_started = Instant::now();
        let verdict = self
            .scanner
            .scan_sized(body, Some(meta.size))
            .instrument(tracing::info_span!("scan", size = meta.size))
            .await?;
        metrics::observe(Stage::Scan, scan_started);
        ::metrics::counter!(metrics::BYTES_READ).increment(meta.size);
        manifest.record_scanner(scanner_version.as_ref());
        tracing::info!(%key, verdict = verdict.status(), refused = refusal.is_some(), database = manifest.scan_database, "scanned");
        match &verdict {
            Verdict::Clean => manifest.scan = Some(Outcome::Clean),
            Verdict::Infected { signature } => {
                manifest.verdict = Outcome::Infected;
                manifest.scan = Some(Outcome::Infected);
                manifest.signature = Some(signature.clone());
                // The type check's refusal, if any, is kept beside it.
                manifest.reason = refusal.clone();
            }
            Verdict::Unscannable { reason } => {
                manifest.verdict = Outcome::Unscannable;
                manifest.scan = Some(Outcome::Unscannable);
                manifest.reason = Some(match &refusal {
                    Some(r) => format!("{reason}; also {r}"),
                    None => reason.to_string(),
                });
            }
        }
        if !verdict.is_clean() {
            let moved = self
                .quarantine
                .quarantine_version(
                    self.uploads.as_ref(),
                    key,
                    version_id,
                    &verdict,
                    Some(&meta.etag),
                )
                .instrument(tracing::info_span!("quarantine"))
                .await;
            let q = match moved {
                Ok(q) => q,
                Err(upload_scan::Error::ObjectChanged { found, .. }) => {
                    tracing::info!(%key, etag = %meta.etag, now = %found, "replaced while scanned: the verdict is not applied to the new version");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            manifest.quarantine = Some(Location {
                bucket: q.bucket,
                key: q.key,
            });
            return Ok(Some(manifest));
        }
        if let Some(reason) = refusal {
            // Scanned clean, but not a type the policy allows (or not the
            // declared one): rejected, and never tagged CLEAN, so the
            // deny-unscanned-reads bucket policy keeps it unreadable.
            return self
                .reject(key, version_id, meta.tag_count, manifest, reason)
                .await
                .map(Some);
        }
        // An allowed upload with a processor, kept whole while it was
        // scanned, processed before anything is tagged: an upload its
        // processor refuses is rejected and never carries a CLEAN tag.
        let processed = match processor {
            Some(processor) => {
                let chunks = std::mem::take(&mut *lock(&kept));
                let mut body = concat(&chunks, usize::MAX);
                drop(chunks);
                if body.len() as u64 != meta.size {
                    // The scanner stopped reading early: read the object again.
                    tracing::debug!(%key, kept = body.len(), size = meta.size, "scanner left bytes unread; fetching the original again");
                    let got = self.uploads.get_version(key, version_id).await?;
                    if got.meta.etag != meta.etag {
                        return Err(upload_core::Error::Unavailable {
                            reason: format!("{key} changed while it was processed"),
                        }
                        .into());
                    }
                    body = got.body;
                }
                let content_type = sniffed.map(|s| s.mime).unwrap_or_default();
                let input = MediaInput::new(body, content_type, variants.clone());
                let span = tracing::info_span!("media", processor = processor.name());
                let done =
                    tokio::task::spawn_blocking(move || span.in_scope(|| processor.process(input)))
                        .await
                        .map_err(|e| Error::TaskFailed {
                            reason: e.to_string(),
                        })?;
                match done {
                    Ok(p) => Some(p),
                    Err(e) if e.is_rejection() => {
                        return self
                            .reject(key, version_id, meta.tag_count, manifest, e.to_string())
                            .await
                            .map(Some);
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        self.update_tags(
            key,
            version_id,
            &clean_tags_for(scanner_version.as_ref()),
            &[],
            meta.tag_count,
        )
        .await?;
        // Without a version ID, tags name no version: if a new upload
        // replaced the scanned one meanwhile, the CLEAN tag landed on bytes
        // nobody scanned. Take it back; the new version's event scans and
        // tags it. With one, the tag went to the version scanned.
        if version_id.is_none() {
            match self.uploads.head(key).await {
                Ok(now) if now.etag == meta.etag => {}
                Ok(now) => {
                    tracing::warn!(%key, etag = %meta.etag, now = %now.etag, "replaced while scanned: CLEAN tag taken back");
                    self.update_tags(
                        key,
                        None,
                        &Tags::new(),
                        &["scan-status", "scanned-at", SCAN_DATABASE_TAG],
                        None,
                    )
                    .await?;
                    return Ok(None);
                }
                Err(upload_core::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let Some(Processed {
            variants,
            image,
            media,
        }) = processed
        else {
            return Ok(Some(manifest));
        };
        manifest.image = image;
        manifest.media = media;
        for (spec, v) in variants {
            let vkey = variant_key(key, &spec, &meta.etag)?;
            let size = v.bytes.len() as u64;
            let put = self.processed.put(
                &vkey,
                v.bytes,
                PutOptions::default()
                    .with_content_type(v.content_type)
                    .with_cache_control(VARIANT_CACHE_CONTROL)
                    .with_create_only(true),
            );
            let upload_started = Instant::now();
            match put
                .instrument(tracing::info_span!("upload", key = %vkey, bytes = size))
                .await
            {
                Ok(_) => {
                    metrics::observe(Stage::Upload, upload_started);
                    ::metrics::counter!(metrics::BYTES_WRITTEN).increment(size);
                }
                // Written by an earlier delivery: same version, same bytes.
                Err(upload_core::Error::AlreadyExists { .. }) => {
                    tracing::debug!(key = %vkey, "variant already written");
                }
                Err(e) => return Err(e.into()),
            }
            manifest.variants.push(VariantRecord {
                name: v.name,
                key: vkey,
                content_type: v.content_type.to_owned(),
                width: v.width,
                height: v.height,
                bytes: size,
            });
        }
        Ok(Some(manifest))
    }

    /// Scans version `version_id` of `key`, older than the one the
    /// manifest describes, and quarantines it (deleting that version) unless
    /// it is clean. A clean older version is left untagged: it is never
    /// served, and the deny-unscanned-reads policy keeps it unreadable.
    async fn scan_older_version(&self, key: &ObjectKey, version_id: &str) -> Result<()> {
        let (meta, stream) = match self.uploads.get_stream_version(key, Some(version_id)).await {
            Ok(got) => got,
            Err(upload_core::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let verdict = self
            .scanner
            .scan_sized(stream, Some(meta.size))
            .instrument(tracing::info_span!("scan", size = meta.size, version_id))
            .await?;
        if !verdict.is_clean() {
            self.quarantine
                .quarantine_version(
                    self.uploads.as_ref(),
                    key,
                    Some(version_id),
                    &verdict,
                    Some(&meta.etag),
                )
                .await?;
        }
        Ok(())
    }

    /// [`update_tags`] on the uploads bucket.
    async fn update_tags(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        set: &Tags,
        remove: &[&str],
        tag_count: Option<u32>,
    ) -> Result<()> {
        update_tags(
            self.uploads.as_ref(),
            key,
            version_id,
            set,
            remove,
            tag_count,
        )
        .await
    }

    /// The original is gone when its event is handled. If it went to
    /// quarantine (an earlier delivery moved it, then stopped before the
    /// manifest), the manifest is written from the quarantine copy's tags.
    async fn gone_before_processing(
        &self,
        key: &ObjectKey,
        mkey: &ObjectKey,
        previous: Option<StoredManifest>,
        event_etag: Option<&str>,
        sequencer: Option<&str>,
    ) -> Result<Handled> {
        let Some(etag) = event_etag else {
            tracing::info!(%key, "original gone before processing");
            return Ok(Handled::Skipped);
        };
        let qkey = self.quarantine.key_for(key)?;
        let qstore = self.quarantine.storage();
        let copy = match qstore.head(&qkey).await {
            Ok(m) if m.etag == etag => m,
            Ok(_) | Err(upload_core::Error::NotFound { .. }) => {
                tracing::info!(%key, "original gone before processing");
                return Ok(Handled::Skipped);
            }
            Err(e) => return Err(e.into()),
        };
        let tags = qstore.get_tags(&qkey).await?;
        let verdict = match tags.get("scan-status") {
            Some("INFECTED") => Outcome::Infected,
            _ => Outcome::Unscannable,
        };
        let mut manifest = Manifest::new(
            SourceObject {
                bucket: self.uploads.bucket().to_owned(),
                key: key.clone(),
                etag: etag.to_owned(),
                size: copy.size,
                sniffed: None,
                version_id: None,
                sequencer: sequencer.map(str::to_owned),
            },
            verdict,
        );
        manifest.upload = UploadContext::from_metadata(&copy.metadata);
        manifest.signature = tags.get("scan-signature").map(str::to_owned);
        manifest.reason = tags.get("scan-reason").map(str::to_owned);
        manifest.quarantine = Some(Location {
            bucket: qstore.bucket().to_owned(),
            key: qkey,
        });
        tracing::warn!(%key, "quarantined by an earlier delivery: manifest written from the quarantine copy");
        Ok(
            match self.write_manifest(mkey, &manifest, previous).await? {
                ManifestWrite::Written { .. } => {
                    self.notify(&manifest).await?;
                    Handled::Processed(verdict)
                }
                ManifestWrite::SameVersion => {
                    self.notify(&manifest).await?;
                    Handled::AlreadyProcessed
                }
                ManifestWrite::Newer(_) => Handled::Superseded,
            },
        )
    }

    /// After `new` replaced `old`, deletes the variants of `old` that `new`
    /// does not list. Failures are logged: the new manifest is in place and
    /// a leftover variant is only unreferenced bytes.
    async fn delete_replaced_variants(&self, old: &Manifest, new: &Manifest) {
        for v in &old.variants {
            if new.variants.iter().any(|n| n.key == v.key) {
                continue;
            }
            if let Err(e) = self.processed.delete(&v.key).await {
                tracing::warn!(key = %v.key, error = %e, "variant of a replaced version left behind");
            }
        }
    }

    async fn removed(&self, key: &ObjectKey, sequencer: Option<&str>) -> Result<Handled> {
        let _guard = self.locks.lock(key.as_str()).await;
        match self.uploads.head(key).await {
            Ok(_) => {
                tracing::info!(%key, "removed, then created again: nothing to delete");
                return Ok(Handled::Superseded);
            }
            Err(upload_core::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mkey = manifest_key(key)?;
        let Some(stored) = self.read_manifest(&mkey).await? else {
            return Ok(Handled::Skipped);
        };
        let Some(m) = stored.manifest else {
            return Ok(Handled::Skipped);
        };
        if m.quarantine.is_some() || self.quarantined_copy_of(key, &m.source.etag).await? {
            // The removal is the quarantine move itself (a rescan's, too,
            // whose manifest may not say so yet); the manifest stays as the
            // record of where the original went.
            return Ok(Handled::Skipped);
        }
        if let (Some(ours), Some(theirs)) = (sequencer, m.source.sequencer.as_deref())
            && sequencer_cmp(ours, theirs) != Ordering::Greater
        {
            return Ok(Handled::Superseded);
        }
        // Variants first, the manifest last: a failure part-way leaves the
        // manifest, so the redelivered event finds what is left to delete.
        for v in &m.variants {
            self.processed.delete(&v.key).await?;
        }
        // A worker elsewhere may have processed a re-created original
        // meanwhile: its manifest stays.
        match self.read_manifest(&mkey).await? {
            Some(now) if now.etag != stored.etag => {
                tracing::info!(%key, "manifest replaced meanwhile: kept");
                return Ok(Handled::Superseded);
            }
            _ => {}
        }
        // Before the manifest goes: a failure here leaves it, so the
        // redelivered event notifies again.
        if let Some(n) = &self.notifier {
            let removed = UploadNotification::removed(
                self.uploads.bucket(),
                key.clone(),
                m.source.version_id.clone(),
                m.upload.clone(),
            );
            n.notify(&removed).await?;
        }
        self.processed.delete(&mkey).await?;
        tracing::info!(%key, variants = m.variants.len(), "original removed: variants and manifest deleted");
        Ok(Handled::Removed)
    }

    /// Whether the quarantine holds a copy of exactly the version of `key`
    /// whose ETag is `etag` (its [`SOURCE_ETAG_TAG`]).
    async fn quarantined_copy_of(&self, key: &ObjectKey, etag: &str) -> Result<bool> {
        let qkey = self.quarantine.key_for(key)?;
        match self.quarantine.storage().get_tags(&qkey).await {
            Ok(tags) => Ok(tags.get(SOURCE_ETAG_TAG) == Some(etag)),
            Err(upload_core::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn reject(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tag_count: Option<u32>,
        mut manifest: Manifest,
        reason: String,
    ) -> Result<Manifest> {
        tracing::warn!(%key, %reason, "rejected");
        let tags = Tags::from_pairs([("upload-status", "REJECTED")])?;
        self.update_tags(key, version_id, &tags, &[], tag_count)
            .await?;
        manifest.verdict = Outcome::Rejected;
        manifest.reason = Some(reason);
        Ok(manifest)
    }

    /// Writes `manifest` in place of `expected` (the stored manifest it
    /// was decided against; `None`: there was none): `If-Match` its ETag,
    /// or create-only. When another worker wrote in between, the stored
    /// manifest is read again: the same version means the work is done; a
    /// newer one wins; an older one is replaced (at most 4 attempts).
    async fn write_manifest(
        &self,
        mkey: &ObjectKey,
        manifest: &Manifest,
        mut expected: Option<StoredManifest>,
    ) -> Result<ManifestWrite> {
        let json: Bytes = serde_json::to_vec_pretty(manifest)
            .expect("manifests serialize")
            .into();
        for _ in 0..MANIFEST_WRITE_ATTEMPTS {
            let base = PutOptions::default()
                .with_content_type("application/json")
                .with_cache_control(MANIFEST_CACHE_CONTROL);
            let opts = match &expected {
                Some(s) => base.with_if_match(s.etag.clone()),
                None => base.with_create_only(true),
            };
            let put = self
                .processed
                .put(mkey, json.clone(), opts)
                .instrument(tracing::info_span!("upload", key = %mkey))
                .await;
            match put {
                Ok(_) => {
                    return Ok(ManifestWrite::Written {
                        replaced: expected.and_then(|s| s.manifest),
                    });
                }
                Err(
                    upload_core::Error::AlreadyExists { .. }
                    | upload_core::Error::PreconditionFailed { .. }
                    | upload_core::Error::NotFound { .. },
                ) => {
                    tracing::info!(key = %mkey, "manifest written by another worker meanwhile; reading it again");
                    expected = self.read_manifest(mkey).await?;
                    if let Some(current) = expected.as_ref().and_then(|s| s.manifest.as_ref()) {
                        if current.source.etag == manifest.source.etag {
                            return Ok(ManifestWrite::SameVersion);
                        }
                        let newer = match (
                            current.source.sequencer.as_deref(),
                            manifest.source.sequencer.as_deref(),
                        ) {
                            (Some(theirs), Some(ours)) => {
                                sequencer_cmp(theirs, ours) == Ordering::Greater
                            }
                            // No order known: ours wins only if it is still
                            // the stored version of the original.
                            _ => match self.uploads.head(&manifest.source.key).await {
                                Ok(now) => now.etag != manifest.source.etag,
                                Err(upload_core::Error::NotFound { .. }) => true,
                                Err(e) => return Err(e.into()),
                            },
                        };
                        if newer {
                            return Ok(ManifestWrite::Newer(current.clone()));
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(upload_core::Error::Unavailable {
            reason: format!("{mkey} kept changing while it was written"),
        }
        .into())
    }

    /// Reads a manifest with its object ETag; a missing one is `None`. A
    /// corrupt one is logged and read as no manifest (the upload is
    /// processed again and the manifest replaced).
    async fn read_manifest(&self, mkey: &ObjectKey) -> Result<Option<StoredManifest>> {
        match self.processed.get(mkey).await {
            Ok(got) => {
                let manifest = match serde_json::from_slice::<Manifest>(&got.body) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(key = %mkey, error = %e, "corrupt manifest ignored");
                        None
                    }
                };
                Ok(Some(StoredManifest {
                    manifest,
                    etag: got.meta.etag,
                }))
            }
            Err(upload_core::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Sets the tags of `set` on the object `key` of `store` and removes those
/// named in `remove`, keeping its other tags (given at upload, e.g. by a
/// presigned `x-amz-tagging`): S3 replaces a whole tag set at once. If the
/// merge would exceed 10 tags, `set` alone is written. `version_id` names
/// the version tagged (tags belong to a version).
///
/// `tag_count` is how many tags the version had when it was read
/// ([`ObjectMeta::tag_count`], the GET's `x-amz-tagging-count`), if known:
/// with `Some(0)` there is nothing to keep and the tag set is not read
/// (one request less per upload). Only workers tag an upload after it is
/// written (presigned uploads set tags with the object), so the count read
/// with the bytes is still true when the tags are written.
pub(crate) async fn update_tags(
    store: &dyn Storage,
    key: &ObjectKey,
    version_id: Option<&str>,
    set: &Tags,
    remove: &[&str],
    tag_count: Option<u32>,
) -> Result<()> {
    let mut tags = if tag_count == Some(0) {
        Tags::new()
    } else {
        store.get_tags_version(key, version_id).await?
    };
    for r in remove {
        tags.remove(r);
    }
    for (k, v) in set.iter() {
        if let Err(e) = tags.insert(k, v) {
            tracing::warn!(%key, error = %e, "upload tags replaced: no room for ours");
            tags = set.clone();
            break;
        }
    }
    store.put_tags_version(key, version_id, &tags).await?;
    Ok(())
}

/// The scanner's version, for the record: `None` when it cannot say or
/// answers something that is not a version (logged; the verdict stands).
///
/// # Errors
/// A scanner that cannot be asked ([`upload_scan::Error::ScannerUnavailable`]):
/// its scan would fail too, so the record is retried.
pub(crate) async fn scanner_version(scanner: &dyn Scanner) -> Result<Option<ScannerVersion>> {
    match scanner.scanner_version().await {
        Ok(v) => Ok(v),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "scanner version unknown: recorded as none");
            Ok(None)
        }
    }
}

/// Most attempts at a conditional manifest write.
const MANIFEST_WRITE_ATTEMPTS: usize = 4;

/// The span of processing one upload: `process` with the key and, when
/// the original carries the trace context it was presigned in, its
/// `trace_id`; with feature `otel` the span is that context's child, so
/// scan, decode, encode, upload, manifest and notification join the upload
/// API's trace. A malformed context is ignored (logged).
fn process_span(key: &ObjectKey, meta: &ObjectMeta) -> tracing::Span {
    let span = tracing::info_span!("process", %key, trace_id = tracing::field::Empty);
    if let Some(raw) = meta.metadata.get(upload_core::trace::METADATA) {
        match upload_core::trace::TraceParent::parse(raw) {
            Ok(tp) => {
                span.record("trace_id", tp.trace_id_hex());
                #[cfg(feature = "otel")]
                tp.adopt(&span);
            }
            Err(e) => tracing::debug!(%key, error = %e, "trace context ignored"),
        }
    }
    span
}

/// A manifest as stored: parsed (`None` if corrupt) and its object ETag.
#[derive(Debug)]
struct StoredManifest {
    manifest: Option<Manifest>,
    etag: String,
}

/// What became of a conditional manifest write.
#[derive(Debug)]
enum ManifestWrite {
    /// Written; `replaced` is the manifest it replaced, if any.
    Written { replaced: Option<Manifest> },
    /// Another worker wrote the manifest of the same version meanwhile.
    SameVersion,
    /// Another worker wrote the manifest of a newer version meanwhile.
    Newer(Manifest),
}

#[async_trait]
impl RecordHandler for UploadProcessor {
    async fn handle(&self, record: &S3EventRecord) -> Result<Handled> {
        if record.s3.bucket.name != self.uploads.bucket() {
            tracing::debug!(bucket = %record.s3.bucket.name, "record of another bucket skipped");
            return Ok(Handled::Skipped);
        }
        let key = match record.key() {
            Ok(k) => k,
            Err(e) => {
                // S3 accepts keys we refuse (folder markers ending in '/',
                // '//'): skip the record, keep handling the others.
                tracing::error!(key = %record.s3.object.key, error = %e, "record skipped: not a valid object key");
                return Ok(Handled::Skipped);
            }
        };
        if self.is_own_output(&key) {
            tracing::debug!(%key, "event about a quarantined object skipped");
            return Ok(Handled::Skipped);
        }
        // A probe of the deployment doctor: acknowledged, not processed,
        // once it is scanned clean. Keys are the app's to choose, but a
        // key that looks like a probe must never skip the scan: anything
        // larger than a probe, or not clean, is processed like any upload
        // (and quarantined), and a probe is never tagged CLEAN.
        if record.is_object_created()
            && super::probe::is_probe_key(key.as_str())
            && record
                .s3
                .object
                .size
                .is_some_and(|s| s <= super::probe::PROBE_MAX_BYTES)
            && self.probe_is_clean(&key).await?
        {
            self.acknowledge_probe(&key).await;
            return Ok(Handled::Skipped);
        }
        let o = &record.s3.object;
        let etag = o.e_tag.as_deref().map(|e| e.trim_matches('"'));
        let sequencer = o.sequencer.as_deref();
        if record.is_object_created() {
            let span = tracing::info_span!("object", %key, size = o.size, etag, sequencer);
            self.created(&key, etag, sequencer, o.version_id.as_deref())
                .instrument(span)
                .await
        } else if record.is_object_removed() {
            let span = tracing::info_span!("removed", %key, sequencer);
            self.removed(&key, sequencer).instrument(span).await
        } else {
            tracing::debug!(event = %record.event_name, %key, "record skipped");
            Ok(Handled::Skipped)
        }
    }
}

/// Concatenates `chunks`, at most `max` bytes, copying only when there is
/// more than one chunk.
fn concat(chunks: &[Bytes], max: usize) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.slice(..one.len().min(max)),
        many => {
            let total = many.iter().map(Bytes::len).sum::<usize>().min(max);
            let mut out = BytesMut::with_capacity(total);
            for c in many {
                let take = (total - out.len()).min(c.len());
                out.extend_from_slice(&c[..take]);
                if out.len() == total {
                    break;
                }
            }
            out.freeze()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One async mutex per key being processed, so the records of one key are
/// handled one at a time however many workers share the processor.
#[derive(Debug, Default)]
struct KeyLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let m = lock(&self.map).entry(key.to_owned()).or_default().clone();
        let guard = m.lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.to_owned(),
            guard: Some(guard),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut map = lock(&self.locks.map);
        drop(self.guard.take());
        // Only the map holds it now: nobody waits for this key.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_copies_at_most_max() {
        let c = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        assert_eq!(&concat(&c, 5)[..], b"abcde");
        assert_eq!(&concat(&c, usize::MAX)[..], b"abcdefg");
        assert_eq!(&concat(&c[..1], 2)[..], b"ab");
        assert!(concat(&[], 4).is_empty());
    }

    #[tokio::test]
    async fn key_locks_serialise_one_key_and_forget_it_after() {
        let locks = KeyLocks::default();
        let g = locks.lock("a").await;
        let other = locks.lock("b").await;
        // A second holder of "a" waits.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), locks.lock("a"));
        assert!(waiting.await.is_err());
        drop(g);
        let again = locks.lock("a").await;
        drop(again);
        drop(other);
        assert!(lock(&locks.map).is_empty());
    }
}
