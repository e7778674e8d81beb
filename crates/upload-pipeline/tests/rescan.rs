//! `upload_pipeline::rescan` on in-memory parts: uploads processed with
//! database 1, then scanned again with database 2 and a new signature
//! that matches one of them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{World, sample, world};
use upload_core::{ByteStream, Bytes, ObjectKey, PutOptions, Storage};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::notify::NotificationKind;
use upload_pipeline::{Error, MemoryNotifier, Outcome, Rescan, RescanOptions, RescanReport};
use upload_scan::{MemoryScanner, Quarantine, Scanner, ScannerVersion, Verdict};

const NEW_SIGNATURE: &str = "Test.NewSignature-2";

fn version(db: u64) -> ScannerVersion {
    ScannerVersion::new("UploadSdk.MemoryScanner test", Some(db)).unwrap()
}

/// A small PDF, unique per `n`.
fn pdf(n: usize) -> Bytes {
    Bytes::from(format!(
        "%PDF-1.4\n% upload number {n:04}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    ))
}

/// The uploads of a world processed with database 1.
async fn processed_world(uploads: &[(&str, Bytes, &str)]) -> (World, Vec<ObjectKey>) {
    let scanner = Arc::new(MemoryScanner::new().with_version(Some(version(1))));
    let w = world(scanner);
    let mut keys = Vec::new();
    for (key, body, ct) in uploads {
        keys.push(w.upload(key, body.clone(), ct).await);
    }
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(stats.clean, uploads.len() as u64, "{stats:?}");
    for k in &keys {
        let m = w.manifest(k).await;
        assert_eq!(m.scan_database, Some(1), "{k}");
        assert_eq!(
            m.scan_engine.as_deref(),
            Some("UploadSdk.MemoryScanner test")
        );
        assert_eq!(m.scanned_at.as_ref().map(String::len), Some(20));
        let tags = w.uploads.get_tags(k).await.unwrap();
        assert_eq!(tags.get("scan-status"), Some("CLEAN"));
        assert_eq!(tags.get("scan-db"), Some("1"));
    }
    (w, keys)
}

fn rescan(w: &World, scanner: Arc<dyn Scanner>) -> Rescan {
    Rescan::new(
        w.uploads.clone(),
        w.processed.clone(),
        scanner,
        Quarantine::new(w.quarantine.clone(), "quarantine/"),
    )
}

/// Database 2: everything of database 1 and a body signature made of
/// `pattern`.
fn database_2(pattern: &[u8]) -> Arc<MemoryScanner> {
    Arc::new(
        MemoryScanner::new()
            .with_signature(NEW_SIGNATURE, pattern.to_vec())
            .with_version(Some(version(2))),
    )
}

fn mkey(k: &ObjectKey) -> String {
    manifest_key(k).unwrap().as_str().to_owned()
}

#[tokio::test]
async fn rescan_quarantines_exactly_what_the_new_database_finds_and_is_idempotent() {
    let photo = sample("testdata/hopper.jpg");
    let (w, keys) = processed_world(&[
        ("uploads/u1/a.pdf", pdf(1), "application/pdf"),
        ("uploads/u1/photo.jpg", photo.clone(), "image/jpeg"),
        ("uploads/u2/c.pdf", pdf(3), "application/pdf"),
    ])
    .await;
    let photo_key = &keys[1];
    let before = w.manifest(photo_key).await;
    assert!(!before.variants.is_empty(), "the photo has variants");
    // 32 bytes of the photo that are in no other upload.
    let pattern = &photo[photo.len() / 2..photo.len() / 2 + 32];
    assert!(!pdf(1).windows(32).any(|x| x == pattern));
    let notifier = Arc::new(MemoryNotifier::new());
    let report = rescan(&w, database_2(pattern))
        .with_notifier(notifier.clone())
        .run()
        .await
        .unwrap();
    let mut expected = RescanReport::default();
    expected.database = 2;
    expected.examined = 3;
    expected.rescanned = 3;
    expected.still_clean = 2;
    expected.newly_infected = 1;
    expected.resume_after = Some(mkey(&keys[2]));
    expected.complete = true;
    assert_eq!(report, expected);

    // The photo: gone from uploads, in quarantine, variants deleted,
    // manifest infected with the signature and database 2.
    assert!(matches!(
        w.uploads.head(photo_key).await,
        Err(upload_core::Error::NotFound { .. })
    ));
    let m = w.manifest(photo_key).await;
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(m.scan, Some(Outcome::Infected));
    assert_eq!(m.signature.as_deref(), Some(NEW_SIGNATURE));
    assert_eq!(m.scan_database, Some(2));
    assert!(m.variants.is_empty());
    let q = m.quarantine.clone().expect("quarantine location");
    assert_eq!(q.bucket, "quarantine");
    assert_eq!(q.key.as_str(), "quarantine/uploads/u1/photo.jpg");
    assert_eq!(w.quarantine.get(&q.key).await.unwrap().body, photo);
    let qtags = w.quarantine.get_tags(&q.key).await.unwrap();
    assert_eq!(qtags.get("scan-status"), Some("INFECTED"));
    assert_eq!(qtags.get("scan-signature"), Some(NEW_SIGNATURE));
    for v in &before.variants {
        assert!(
            matches!(
                w.processed.head(&v.key).await,
                Err(upload_core::Error::NotFound { .. })
            ),
            "{} deleted",
            v.key
        );
    }
    // The notification the worker would send, once.
    let sent = notifier.notifications();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind(), NotificationKind::Quarantined);
    assert_eq!(&sent[0].object.key, photo_key);

    // The others: still there, clean with database 2.
    for k in [&keys[0], &keys[2]] {
        let m = w.manifest(k).await;
        assert_eq!(m.verdict, Outcome::Clean);
        assert_eq!(m.scan_database, Some(2), "{k}");
        let tags = w.uploads.get_tags(k).await.unwrap();
        assert_eq!(tags.get("scan-status"), Some("CLEAN"));
        assert_eq!(tags.get("scan-db"), Some("2"));
    }

    // A run interrupted between the quarantine move and the manifest
    // write leaves the clean manifest; the worker then handles the
    // ObjectRemoved event of the move, and keeps that manifest (the
    // quarantine holds that very version): it is not a user's deletion.
    w.processed
        .put(
            &manifest_key(photo_key).unwrap(),
            serde_json::to_vec_pretty(&before).unwrap().into(),
            PutOptions::default().with_content_type("application/json"),
        )
        .await
        .unwrap();
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(stats.messages, 1, "{stats:?}");
    assert_eq!(w.manifest(photo_key).await, before, "kept");
    // The next run finishes that work from the quarantine copy.
    let resumed = rescan(&w, database_2(pattern))
        .with_notifier(notifier.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(
        (resumed.examined, resumed.rescanned, resumed.newly_infected),
        (3, 1, 1),
        "{resumed:?}"
    );
    let finished = w.manifest(photo_key).await;
    assert_eq!(finished.verdict, Outcome::Infected);
    assert_eq!(finished.signature.as_deref(), Some(NEW_SIGNATURE));
    assert_eq!(finished.quarantine, m.quarantine);
    assert!(finished.variants.is_empty());
    let ids = notifier.ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the same notification again, same ID");

    // A further run examines everything and rescans nothing.
    let again = rescan(&w, database_2(pattern)).run().await.unwrap();
    assert_eq!((again.examined, again.rescanned), (3, 0), "{again:?}");
    assert_eq!(
        (again.newly_infected, again.skipped, again.errors),
        (0, 0, 0)
    );
    assert!(again.complete);
}

/// A scanner that lets the test know when a scan starts, counts scans in
/// progress, and takes `delay` per scan.
#[derive(Debug)]
struct Gauge {
    inner: MemoryScanner,
    delay: Duration,
    now: AtomicUsize,
    max: AtomicUsize,
    started: AtomicUsize,
    first: tokio::sync::Notify,
}

impl Gauge {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryScanner::new().with_version(Some(version(2))),
            delay,
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            first: tokio::sync::Notify::new(),
        })
    }
}

#[async_trait]
impl Scanner for Gauge {
    async fn scan(&self, body: ByteStream) -> upload_scan::Result<Verdict> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        if self.started.fetch_add(1, Ordering::SeqCst) == 0 {
            self.first.notify_one();
        }
        tokio::time::sleep(self.delay).await;
        let v = self.inner.scan(body).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        v
    }

    async fn scanner_version(&self) -> upload_scan::Result<Option<ScannerVersion>> {
        self.inner.scanner_version().await
    }
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let uploads: Vec<(String, Bytes)> = (0..9)
        .map(|n| (format!("uploads/u/{n}.pdf"), pdf(n)))
        .collect();
    let list: Vec<(&str, Bytes, &str)> = uploads
        .iter()
        .map(|(k, b)| (k.as_str(), b.clone(), "application/pdf"))
        .collect();
    let (w, _) = processed_world(&list).await;
    let gauge = Gauge::new(Duration::from_millis(40));
    let report = rescan(&w, gauge.clone())
        .with_options(RescanOptions::default().with_concurrency(3))
        .run()
        .await
        .unwrap();
    assert_eq!((report.rescanned, report.still_clean), (9, 9));
    assert_eq!(
        gauge.max.load(Ordering::SeqCst),
        3,
        "3 scans at once, no more"
    );
    assert_eq!(gauge.started.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn an_interrupted_run_continues_from_its_resume_point() {
    let (w, keys) = processed_world(&[
        ("uploads/a.pdf", pdf(1), "application/pdf"),
        ("uploads/b.pdf", pdf(2), "application/pdf"),
        ("uploads/c.pdf", pdf(3), "application/pdf"),
        ("uploads/d.pdf", pdf(4), "application/pdf"),
    ])
    .await;
    // Stopped while the first scan is in progress: that one finishes, no
    // other starts.
    let gauge = Gauge::new(Duration::from_millis(30));
    let first_started = {
        let g = gauge.clone();
        async move { g.first.notified().await }
    };
    let stopped = rescan(&w, gauge.clone())
        .with_options(RescanOptions::default().with_concurrency(1))
        .run_until(first_started)
        .await
        .unwrap();
    assert_eq!((stopped.examined, stopped.rescanned), (1, 1), "{stopped:?}");
    assert!(!stopped.complete);
    assert_eq!(stopped.resume_after, Some(mkey(&keys[0])));
    assert_eq!(w.manifest(&keys[0]).await.scan_database, Some(2));
    assert_eq!(w.manifest(&keys[1]).await.scan_database, Some(1));

    // Continued from there: the other three, and the run is complete.
    let rest = rescan(&w, Gauge::new(Duration::ZERO))
        .with_options(
            RescanOptions::default().with_start_after(stopped.resume_after.clone().unwrap()),
        )
        .run()
        .await
        .unwrap();
    assert_eq!((rest.examined, rest.rescanned), (3, 3), "{rest:?}");
    assert!(rest.complete);
    assert_eq!(rest.resume_after, Some(mkey(&keys[3])));
    for k in &keys {
        assert_eq!(w.manifest(k).await.scan_database, Some(2), "{k}");
    }

    // Stopped before anything started: nothing examined, resume point kept.
    let none = rescan(&w, Gauge::new(Duration::ZERO))
        .with_options(RescanOptions::default().with_start_after("uploads/b.pdf/manifest.json"))
        .run_until(std::future::ready(()))
        .await
        .unwrap();
    assert_eq!(none.examined, 0);
    assert!(!none.complete);
    assert_eq!(
        none.resume_after.as_deref(),
        Some("uploads/b.pdf/manifest.json")
    );
}

/// Edits the stored JSON of `k`'s manifest.
async fn rewrite(w: &World, k: &ObjectKey, edit: &dyn Fn(&mut serde_json::Value)) {
    let mk = manifest_key(k).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&w.processed.get(&mk).await.unwrap().body).unwrap();
    edit(&mut json);
    w.processed
        .put(
            &mk,
            serde_json::to_vec(&json).unwrap().into(),
            PutOptions::default().with_content_type("application/json"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn window_changed_objects_old_manifests_and_unknown_databases() {
    let (w, keys) = processed_world(&[
        ("uploads/old.pdf", pdf(1), "application/pdf"),
        ("uploads/recent.pdf", pdf(2), "application/pdf"),
        ("uploads/replaced.pdf", pdf(3), "application/pdf"),
        ("uploads/v0.pdf", pdf(4), "application/pdf"),
    ])
    .await;
    // Processed 40 days ago: outside a 30-day window.
    let forty_days_ago = upload_core::timestamp::rfc3339(
        std::time::SystemTime::now() - Duration::from_secs(40 * 86_400),
    );
    rewrite(&w, &keys[0], &|j| {
        j["processed_at"] = forty_days_ago.clone().into()
    })
    .await;
    // A manifest written before versions were recorded: no scan_engine,
    // scan_database or scanned_at. It still parses, and counts as older.
    rewrite(&w, &keys[3], &|j| {
        let o = j.as_object_mut().unwrap();
        for f in ["scan_engine", "scan_database", "scanned_at"] {
            assert!(o.remove(f).is_some(), "{f} was written");
        }
    })
    .await;
    assert_eq!(w.manifest(&keys[3]).await.scan_database, None);
    // Replaced since its manifest (another ETag): skipped.
    w.uploads
        .put(&keys[2], pdf(30), PutOptions::default())
        .await
        .unwrap();

    let report = rescan(&w, Gauge::new(Duration::ZERO))
        .with_options(RescanOptions::default().with_window_days(30))
        .run()
        .await
        .unwrap();
    assert_eq!(report.examined, 4);
    assert_eq!((report.rescanned, report.still_clean), (2, 2), "{report:?}");
    assert_eq!(report.skipped, 1);
    assert_eq!(
        w.manifest(&keys[0]).await.scan_database,
        Some(1),
        "outside the window"
    );
    assert_eq!(w.manifest(&keys[1]).await.scan_database, Some(2));
    assert_eq!(
        w.manifest(&keys[2]).await.scan_database,
        Some(1),
        "changed: skipped"
    );
    let old_format = w.manifest(&keys[3]).await;
    assert_eq!(old_format.scan_database, Some(2));
    assert_eq!(
        old_format.scan_engine.as_deref(),
        Some("UploadSdk.MemoryScanner test")
    );

    // With the database given, a scanner that cannot say is usable; without,
    // it is a typed error.
    let no_version: Arc<dyn Scanner> = Arc::new(MemoryScanner::new().with_version(None));
    match rescan(&w, no_version.clone()).run().await {
        Err(Error::NoDatabaseVersion { engine }) => assert_eq!(engine, "unknown"),
        other => panic!("{other:?}"),
    }
    let given = rescan(&w, no_version)
        .with_options(RescanOptions::default().with_older_than(2))
        .run()
        .await
        .unwrap();
    // Only the manifests of database 1 are older than 2: the one outside
    // any window now, and the replaced one (skipped again).
    assert_eq!((given.rescanned, given.skipped), (1, 1), "{given:?}");

    // A scanner that is down: asked for its database, a typed error; with
    // the database given, the run stops at the first object to scan, which
    // is the resume point's successor.
    let down = Arc::new(MemoryScanner::new().with_version(Some(version(3))));
    down.set_available(false);
    match rescan(&w, down.clone()).run().await {
        Err(Error::Scan(upload_scan::Error::ScannerUnavailable { .. })) => {}
        other => panic!("{other:?}"),
    }
    let stopped = rescan(&w, down)
        .with_options(RescanOptions::default().with_older_than(5))
        .run()
        .await
        .unwrap();
    assert_eq!((stopped.examined, stopped.rescanned), (0, 0), "{stopped:?}");
    assert!(!stopped.complete);
    assert!(
        stopped
            .stopped
            .as_deref()
            .unwrap_or_default()
            .contains("unavailable"),
        "{stopped:?}"
    );
    assert_eq!(stopped.resume_after, None);
}

/// The real clamd (`scripts/test.sh` starts it and sets
/// `UPLOAD_SDK_CLAMD_TCP`): the manifest names its engine and database as
/// its `VERSION` reply does, and a rescan against it is idempotent.
#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn manifest_records_the_real_clamd_engine_and_database() {
    let addr = std::env::var("UPLOAD_SDK_CLAMD_TCP")
        .expect("UPLOAD_SDK_CLAMD_TCP is not set: run scripts/test.sh, which starts clamd");
    let clamd = Arc::new(upload_scan::ClamdScanner::new(
        upload_scan::ClamdConfig::new(upload_scan::ClamdAddress::Tcp(addr)),
    ));
    let real = clamd.fetch_version().await.expect("clamd answers VERSION");
    // `ClamAV x.y.z`.
    let number = real.engine.strip_prefix("ClamAV ").expect("ClamAV engine");
    assert_eq!(number.split('.').count(), 3, "{}", real.engine);
    assert!(
        number.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{}",
        real.engine
    );

    let w = world(clamd.clone());
    let k = w
        .upload("uploads/clamd/a.pdf", pdf(7), "application/pdf")
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(stats.clean, 1, "{stats:?}");
    let m = w.manifest(&k).await;
    assert_eq!(m.scan_engine.as_deref(), Some(real.engine.as_str()));
    assert_eq!(m.scan_database, real.database);
    let tags = w.uploads.get_tags(&k).await.unwrap();
    assert_eq!(
        tags.get("scan-db").map(str::to_owned),
        real.database.map(|d| d.to_string())
    );
    let report = match real.database {
        // Scanned with the database clamd runs: nothing to do.
        Some(_) => rescan(&w, clamd.clone()).run().await.unwrap(),
        // Only local databases (no daily number): compare with a given one.
        None => rescan(&w, clamd.clone())
            .with_options(RescanOptions::default().with_older_than(1))
            .run()
            .await
            .unwrap(),
    };
    assert_eq!(report.examined, 1);
    assert_eq!(report.rescanned, u64::from(real.database.is_none()));
    assert_eq!(report.newly_infected, 0);
    assert!(report.complete, "{report:?}");
}
