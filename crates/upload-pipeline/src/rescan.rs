//! Scan verdicts that stay true: [`Rescan`] scans clean originals again
//! once the scanner's signature database is newer than the one that judged
//! them, and quarantines what is now infected.
//!
//! Every manifest records the engine and database of its verdict
//! ([`Manifest::scan_engine`], [`Manifest::scan_database`]); a clean
//! original's tags carry the database too (`scan-db=27480`). After a
//! database update (clamd's `freshclam`), a rescan walks the manifests of
//! the processed store in key order and, for each clean original processed
//! within the window whose recorded database is older than the current
//! one:
//!
//! - still clean: its tags (`scan-db`, `scanned-at`) and manifest
//!   (`scan_database`, `scanned_at`) name the new database, so the next
//!   run does nothing for it (idempotent);
//! - now infected: the original is moved to quarantine as the worker does
//!   ([`Quarantine::quarantine_version`], only the version scanned, checked
//!   by ETag), its variants are deleted, its manifest becomes
//!   [`Outcome::Infected`] with the signature (written `If-Match` the
//!   manifest read), and the notifier, if any, gets the
//!   `upload.quarantined` notification the worker would send;
//! - unscannable now (timeout, size, limits): left as it was, counted, and
//!   checked again by the next run: a verdict reached with the older
//!   database is not overturned without a finding;
//! - changed since (another ETag, removed, manifest rewritten meanwhile):
//!   skipped; its own events process it.
//!
//! A run reports the last manifest key up to which every manifest was
//! handled ([`RescanReport::resume_after`]); give it back as
//! [`RescanOptions::start_after`] to continue an interrupted run. A run
//! stops on its own when the scanner is unavailable, so a daemon that is
//! down does not turn into a list of errors.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use upload_core::{ObjectKey, PutOptions, Storage};
use upload_scan::{
    Quarantine, QuarantinedObject, SOURCE_ETAG_TAG, Scanner, ScannerVersion, Verdict,
    clean_tags_for,
};

use crate::error::{Error, Result};
use crate::manifest::{Location, MANIFEST_NAME, Manifest, Outcome};
use crate::notify::{Notifier, UploadNotification};
use crate::worker::MANIFEST_CACHE_CONTROL;
use crate::worker::upload::{scanner_version, update_tags};

/// Default number of objects scanned at once: 4.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What a [`Rescan`] looks at. Build with [`RescanOptions::default`] and
/// the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RescanOptions {
    /// Only originals processed within this long before the run starts
    /// (by [`Manifest::processed_at`]); `None` (the default): all.
    pub window: Option<Duration>,
    /// Rescan originals whose recorded database is older than this one
    /// (or unknown); `None` (the default): the scanner's current database
    /// ([`Scanner::scanner_version`]). Give a number not above the
    /// scanner's own, or every run scans the same objects again.
    pub older_than: Option<u64>,
    /// Objects read and scanned at once, at least 1 (default
    /// [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Continue after this manifest key (a previous run's
    /// [`RescanReport::resume_after`]); `None`: from the start.
    pub start_after: Option<String>,
    /// Only manifests under this key prefix of the processed store
    /// (default: empty, all).
    pub prefix: String,
}

impl Default for RescanOptions {
    fn default() -> Self {
        Self {
            window: None,
            older_than: None,
            concurrency: DEFAULT_CONCURRENCY,
            start_after: None,
            prefix: String::new(),
        }
    }
}

impl RescanOptions {
    /// Only originals processed within `window` before the run.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }
    /// Only originals processed within the last `days` days (24 h each).
    pub fn with_window_days(self, days: u64) -> Self {
        self.with_window(Duration::from_secs(days.saturating_mul(86_400)))
    }
    /// Compares recorded databases with `database` instead of the
    /// scanner's.
    pub fn with_older_than(mut self, database: u64) -> Self {
        self.older_than = Some(database);
        self
    }
    /// Scans at most `n` objects at once (0 is taken as 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Continues after the manifest key `key`.
    pub fn with_start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }
    /// Only manifests under `prefix` (e.g. `uploads/u1/`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// What a run did, in counts of manifests; serialised as the JSON object
/// `upload-rescan` prints (field names as here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RescanReport {
    /// The database version compared against.
    pub database: u64,
    /// Manifests read.
    pub examined: u64,
    /// Originals scanned again (clean, in the window, older database).
    pub rescanned: u64,
    /// Of those, clean again: tags and manifest now name the new database.
    pub still_clean: u64,
    /// Of those, infected now: quarantined, variants deleted, manifest
    /// rewritten, notified.
    pub newly_infected: u64,
    /// Of those, unscannable now: left as they were (the next run checks
    /// them again).
    pub unscannable: u64,
    /// Manifests left alone because the original or the manifest changed
    /// (another ETag, removed, rewritten meanwhile) or could not be read as
    /// a manifest.
    pub skipped: u64,
    /// Manifests whose handling failed (see the log; the next run from the
    /// start tries them again).
    pub errors: u64,
    /// The original keys of those failures (at most the first 100).
    pub failed: Vec<String>,
    /// The last manifest key up to which every manifest was handled (or
    /// failed): pass it as [`RescanOptions::start_after`] to continue.
    /// `None` when none was.
    pub resume_after: Option<String>,
    /// Whether the run went through every manifest; `false` when it was
    /// stopped or the scanner became unavailable (see `stopped`).
    pub complete: bool,
    /// Why the run stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// The most failed keys a report lists.
const MAX_FAILED_LISTED: usize = 100;

/// What became of one manifest.
#[derive(Debug)]
enum Item {
    /// Not clean, outside the window, or scanned with a database as new.
    NotDue,
    Skipped,
    StillClean,
    Infected,
    Unscannable,
}

/// Scans clean originals again with a newer signature database (see the
/// [module](self) documentation).
#[derive(Debug, Clone)]
pub struct Rescan {
    uploads: Arc<dyn Storage>,
    processed: Arc<dyn Storage>,
    scanner: Arc<dyn Scanner>,
    quarantine: Quarantine,
    notifier: Option<Arc<dyn Notifier>>,
    options: RescanOptions,
}

impl Rescan {
    /// Rescans the originals of `uploads` whose manifests are in
    /// `processed` (the worker's buckets) with `scanner`, quarantining into
    /// `quarantine` (the worker's); default options.
    pub fn new(
        uploads: Arc<dyn Storage>,
        processed: Arc<dyn Storage>,
        scanner: Arc<dyn Scanner>,
        quarantine: Quarantine,
    ) -> Self {
        Self {
            uploads,
            processed,
            scanner,
            quarantine,
            notifier: None,
            options: RescanOptions::default(),
        }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: RescanOptions) -> Self {
        self.options = options;
        self
    }

    /// Sends the notification of each newly infected upload to `notifier`
    /// (as the worker's [`UploadProcessor::with_notifier`](crate::UploadProcessor::with_notifier)):
    /// `upload.quarantined`, whose ID differs from the earlier
    /// `upload.processed` one.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Runs through every manifest (see [`Rescan::run_until`]).
    ///
    /// # Errors
    /// As [`Rescan::run_until`].
    pub async fn run(&self) -> Result<RescanReport> {
        self.run_until(futures::future::pending()).await
    }

    /// Runs until every manifest is handled or `stop` resolves: then no
    /// further manifest is started, those in progress finish, and the
    /// report's `resume_after` says where to continue.
    ///
    /// Manifests are handled in key order, [`RescanOptions::concurrency`]
    /// at a time (results are taken in order, so `resume_after` never
    /// passes a manifest still in progress). A failure on one manifest is
    /// counted and the run goes on; an unavailable scanner stops the run
    /// (`complete: false`).
    ///
    /// Memory: the listing of the processed store (keys and sizes of
    /// manifests and variants) is held for the run, and one object per
    /// scan in progress as the scanner needs it.
    ///
    /// # Errors
    /// [`Error::NoDatabaseVersion`] when no database to compare against is
    /// known; [`Error::Scan`] when the scanner cannot be asked for it;
    /// [`Error::Storage`] when the processed store cannot be listed.
    pub async fn run_until(&self, stop: impl Future<Output = ()> + Send) -> Result<RescanReport> {
        let database = match self.options.older_than {
            Some(db) => db,
            None => {
                let v = self.scanner.scanner_version().await?;
                match v.as_ref().and_then(|v| v.database) {
                    Some(db) => db,
                    None => {
                        return Err(Error::NoDatabaseVersion {
                            engine: v.map_or_else(|| "unknown".to_owned(), |v| v.engine),
                        });
                    }
                }
            }
        };
        let cutoff = self
            .options
            .window
            .and_then(|w| SystemTime::now().checked_sub(w))
            .map(upload_core::timestamp::rfc3339);
        let suffix = format!("/{MANIFEST_NAME}");
        let start_after = self.options.start_after.as_deref().unwrap_or("");
        let mut keys: Vec<ObjectKey> = self
            .processed
            .list(&self.options.prefix)
            .await?
            .into_iter()
            .map(|m| m.key)
            .filter(|k| k.as_str().ends_with(&suffix) && k.as_str() > start_after)
            .collect();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        tracing::info!(
            manifests = keys.len(),
            database,
            start_after,
            "rescan started"
        );

        let mut report = RescanReport {
            database,
            resume_after: self.options.start_after.clone(),
            ..Default::default()
        };
        let cutoff = cutoff.as_deref();
        let stop_fired = AtomicBool::new(false);
        let stop = async {
            stop.await;
            stop_fired.store(true, Ordering::SeqCst);
        };
        let mut results = futures::stream::iter(keys)
            .take_until(stop.boxed())
            .map(|mkey| async move {
                let span = tracing::info_span!("rescan", key = %mkey);
                let r = self.one(&mkey, database, cutoff).instrument(span).await;
                (mkey, r)
            })
            .buffered(self.options.concurrency.max(1));
        let mut stopped = None;
        let mut seen_all = true;
        while let Some((mkey, r)) = results.next().await {
            match r {
                Ok(item) => {
                    report.examined += 1;
                    match item {
                        Item::NotDue => {}
                        Item::Skipped => report.skipped += 1,
                        Item::StillClean => {
                            report.rescanned += 1;
                            report.still_clean += 1;
                        }
                        Item::Infected => {
                            report.rescanned += 1;
                            report.newly_infected += 1;
                        }
                        Item::Unscannable => {
                            report.rescanned += 1;
                            report.unscannable += 1;
                        }
                    }
                }
                Err(Error::Scan(e @ upload_scan::Error::ScannerUnavailable { .. })) => {
                    tracing::error!(key = %mkey, error = %e, "scanner unavailable: rescan stopped");
                    stopped = Some(e.to_string());
                    seen_all = false;
                    break;
                }
                Err(e) => {
                    tracing::error!(key = %mkey, error = %e, "rescan of this upload failed");
                    report.examined += 1;
                    report.errors += 1;
                    if report.failed.len() < MAX_FAILED_LISTED {
                        let original = mkey.as_str().strip_suffix(&suffix).unwrap_or(mkey.as_str());
                        report.failed.push(original.to_owned());
                    }
                }
            }
            report.resume_after = Some(mkey.as_str().to_owned());
        }
        drop(results);
        // `take_until` ended the listing early if `stop` resolved.
        if seen_all && stop_fired.load(Ordering::SeqCst) {
            stopped = Some("stopped before the last manifest".into());
            seen_all = false;
        }
        report.complete = seen_all;
        report.stopped = stopped;
        tracing::info!(
            examined = report.examined,
            rescanned = report.rescanned,
            newly_infected = report.newly_infected,
            resume_after = report.resume_after,
            complete = report.complete,
            "rescan finished"
        );
        Ok(report)
    }

    /// Handles the manifest at `mkey`.
    async fn one(&self, mkey: &ObjectKey, database: u64, cutoff: Option<&str>) -> Result<Item> {
        let got = match self.processed.get(mkey).await {
            Ok(g) => g,
            Err(upload_core::Error::NotFound { .. }) => return Ok(Item::Skipped),
            Err(e) => return Err(e.into()),
        };
        let manifest_etag = got.meta.etag;
        let m: Manifest = match serde_json::from_slice(&got.body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(key = %mkey, error = %e, "not a manifest: skipped");
                return Ok(Item::Skipped);
            }
        };
        if m.verdict != Outcome::Clean
            || cutoff.is_some_and(|c| processed_before(&m.processed_at, c))
            || m.scan_database.is_some_and(|d| d >= database)
        {
            return Ok(Item::NotDue);
        }
        // A manifest about another bucket's object, or stored under
        // another key than its original's (a processed bucket shared by
        // deployments, a copied manifest): not ours to touch.
        if m.source.bucket != self.uploads.bucket()
            || crate::manifest::manifest_key(&m.source.key).ok().as_ref() != Some(mkey)
        {
            tracing::warn!(key = %mkey, source_bucket = %m.source.bucket, source = %m.source.key, "manifest of another bucket or key: skipped");
            return Ok(Item::Skipped);
        }
        let key = m.source.key.clone();
        let version_id = m.source.version_id.as_deref();
        let (meta, stream) = match self.uploads.get_stream_version(&key, version_id).await {
            Ok(got) => got,
            Err(upload_core::Error::NotFound { .. }) => {
                // Quarantined by an earlier run that stopped before the
                // manifest? Finish its work; else the original was removed.
                return self.resume_quarantined(mkey, &manifest_etag, m).await;
            }
            Err(e) => return Err(e.into()),
        };
        if meta.etag != m.source.etag {
            tracing::info!(%key, etag = %m.source.etag, now = %meta.etag, "original changed since its manifest: skipped");
            return Ok(Item::Skipped);
        }
        // The version read: a manifest written before versioning was turned
        // on names none, and deleting without one would only add a delete
        // marker, leaving the infected bytes (tagged CLEAN) behind.
        let version_id = version_id.or(meta.version_id.as_deref());
        let version = scanner_version(self.scanner.as_ref()).await?;
        let verdict = self
            .scanner
            .scan_sized(stream, Some(meta.size))
            .instrument(tracing::info_span!("scan", size = meta.size))
            .await?;
        tracing::info!(%key, verdict = verdict.status(), recorded = m.scan_database, database = version.as_ref().and_then(|v| v.database), "rescanned");
        match verdict {
            Verdict::Clean => {
                self.still_clean(mkey, &manifest_etag, m, version.as_ref())
                    .await
            }
            Verdict::Unscannable { reason } => {
                tracing::warn!(%key, %reason, "unscannable on rescan: left as it was");
                Ok(Item::Unscannable)
            }
            Verdict::Infected { signature } => {
                let moved = self
                    .quarantine
                    .quarantine_version(
                        self.uploads.as_ref(),
                        &key,
                        version_id,
                        &Verdict::Infected {
                            signature: signature.clone(),
                        },
                        Some(&meta.etag),
                    )
                    .instrument(tracing::info_span!("quarantine"))
                    .await;
                let q = match moved {
                    Ok(q) => q,
                    Err(upload_scan::Error::ObjectChanged { found, .. }) => {
                        tracing::info!(%key, now = %found, "replaced while rescanned: skipped");
                        return Ok(Item::Skipped);
                    }
                    Err(e) => return Err(e.into()),
                };
                self.infected(mkey, &manifest_etag, m, q, signature, version.as_ref())
                    .await
            }
        }
    }

    /// Tags the original and rewrites its manifest with the database that
    /// found it clean again.
    async fn still_clean(
        &self,
        mkey: &ObjectKey,
        manifest_etag: &str,
        mut m: Manifest,
        version: Option<&ScannerVersion>,
    ) -> Result<Item> {
        let key = &m.source.key;
        let version_id = m.source.version_id.as_deref();
        update_tags(
            self.uploads.as_ref(),
            key,
            version_id,
            &clean_tags_for(version),
            &[],
            None,
        )
        .await?;
        // Without a version ID, tags name no version: take them back if a
        // new upload replaced the one scanned meanwhile.
        if version_id.is_none() {
            match self.uploads.head(key).await {
                Ok(now) if now.etag == m.source.etag => {}
                Ok(_) => {
                    update_tags(
                        self.uploads.as_ref(),
                        key,
                        None,
                        &upload_core::Tags::new(),
                        &["scan-status", "scanned-at", upload_scan::SCAN_DATABASE_TAG],
                        None,
                    )
                    .await?;
                    return Ok(Item::Skipped);
                }
                Err(upload_core::Error::NotFound { .. }) => return Ok(Item::Skipped),
                Err(e) => return Err(e.into()),
            }
        }
        m.scan = Some(Outcome::Clean);
        m.record_scanner(version);
        Ok(match self.write_manifest(mkey, manifest_etag, &m).await? {
            true => Item::StillClean,
            false => Item::Skipped,
        })
    }

    /// After the quarantine move: deletes the variants, rewrites the
    /// manifest as infected, notifies.
    async fn infected(
        &self,
        mkey: &ObjectKey,
        manifest_etag: &str,
        mut m: Manifest,
        q: QuarantinedObject,
        signature: String,
        version: Option<&ScannerVersion>,
    ) -> Result<Item> {
        for v in &m.variants {
            match self.processed.delete(&v.key).await {
                Ok(()) | Err(upload_core::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        m.verdict = Outcome::Infected;
        m.scan = Some(Outcome::Infected);
        m.signature = Some(signature);
        m.reason = None;
        m.quarantine = Some(Location {
            bucket: q.bucket,
            key: q.key,
        });
        m.variants.clear();
        m.image = None;
        m.record_scanner(version);
        m.processed_at = upload_core::timestamp::now_rfc3339();
        // Notified before the manifest records it: if the notifier fails,
        // the manifest still says clean, and the next run finds the
        // original in quarantine and finishes (notifying again), so the
        // notification is never lost (at least once, as the worker's).
        if let Some(n) = &self.notifier {
            n.notify(&UploadNotification::from_manifest(&m, m.upload.clone()))
                .instrument(tracing::info_span!("notify"))
                .await?;
        }
        if !self.write_manifest(mkey, manifest_etag, &m).await? {
            return Err(upload_core::Error::Unavailable {
                reason: format!(
                    "{mkey} changed while {} was quarantined: run again to record it",
                    m.source.key
                ),
            }
            .into());
        }
        tracing::warn!(key = %m.source.key, signature = m.signature, "infected on rescan: quarantined");
        Ok(Item::Infected)
    }

    /// The original of a clean manifest is gone: if the quarantine holds
    /// exactly that version (an earlier run moved it and stopped before
    /// the manifest), finish as [`Rescan::infected`]; else it was removed
    /// (the worker's ObjectRemoved handling deletes the rest).
    async fn resume_quarantined(
        &self,
        mkey: &ObjectKey,
        manifest_etag: &str,
        m: Manifest,
    ) -> Result<Item> {
        let qkey = self.quarantine.key_for(&m.source.key)?;
        let tags = match self.quarantine.storage().get_tags(&qkey).await {
            Ok(t) => t,
            Err(upload_core::Error::NotFound { .. }) => return Ok(Item::Skipped),
            Err(e) => return Err(e.into()),
        };
        if tags.get(SOURCE_ETAG_TAG) != Some(m.source.etag.as_str()) {
            return Ok(Item::Skipped);
        }
        let signature = match (tags.get("scan-status"), tags.get("scan-signature")) {
            (Some("INFECTED"), Some(sig)) => sig.to_owned(),
            _ => return Ok(Item::Skipped),
        };
        tracing::info!(key = %m.source.key, "quarantined by an earlier rescan: finishing");
        let version = scanner_version(self.scanner.as_ref()).await?;
        let q = QuarantinedObject {
            bucket: self.quarantine.storage().bucket().to_owned(),
            key: qkey,
        };
        self.infected(mkey, manifest_etag, m, q, signature, version.as_ref())
            .await
    }

    /// Writes `m` at `mkey` if the stored manifest is still the one read
    /// (`If-Match` its ETag, the worker's rule); `false` when it was
    /// rewritten or removed meanwhile.
    async fn write_manifest(&self, mkey: &ObjectKey, etag: &str, m: &Manifest) -> Result<bool> {
        let json: Bytes = serde_json::to_vec_pretty(m)
            .expect("manifests serialize")
            .into();
        let opts = PutOptions::default()
            .with_content_type("application/json")
            .with_cache_control(MANIFEST_CACHE_CONTROL)
            .with_if_match(etag);
        match self.processed.put(mkey, json, opts).await {
            Ok(_) => Ok(true),
            Err(
                upload_core::Error::PreconditionFailed { .. } | upload_core::Error::NotFound { .. },
            ) => {
                tracing::info!(key = %mkey, "manifest rewritten meanwhile: left to the worker");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `processed_at` (RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SSZ`) is before
/// `cutoff` (same format, so the text order is the time order). A time in
/// another format counts as within the window: scanning once more is the
/// safe side.
fn processed_before(processed_at: &str, cutoff: &str) -> bool {
    let well_formed = processed_at.len() == cutoff.len()
        && processed_at.ends_with('Z')
        && processed_at.as_bytes().get(10) == Some(&b'T');
    well_formed && processed_at < cutoff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_compares_rfc3339_times() {
        let cutoff = "2026-12-01T00:00:00Z";
        assert!(processed_before("2026-11-30T23:59:59Z", cutoff));
        assert!(!processed_before("2026-12-01T00:00:00Z", cutoff));
        assert!(!processed_before("2026-12-04T10:00:00Z", cutoff));
        // Not the format written by this crate: scanned once more.
        assert!(!processed_before("2020-01-01T00:00:00+01:00", cutoff));
        assert!(!processed_before("", cutoff));
    }

    #[test]
    fn report_reads_back_from_its_json() {
        let r = RescanReport {
            database: 27481,
            newly_infected: 1,
            failed: vec!["uploads/a.jpg".into()],
            resume_after: Some("uploads/a.jpg/manifest.json".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("stopped"), "{json}");
        assert_eq!(serde_json::from_str::<RescanReport>(&json).unwrap(), r);
    }

    #[test]
    fn options_builders() {
        let o = RescanOptions::default()
            .with_window_days(30)
            .with_concurrency(0)
            .with_older_than(7)
            .with_start_after("a/manifest.json")
            .with_prefix("uploads/");
        assert_eq!(o.window, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(o.concurrency, 1);
        assert_eq!(o.older_than, Some(7));
        assert_eq!(o.start_after.as_deref(), Some("a/manifest.json"));
        assert_eq!(o.prefix, "uploads/");
    }
}
