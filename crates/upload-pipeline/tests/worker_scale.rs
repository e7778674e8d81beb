//! Workers at scale on in-memory parts: many workers on one queue,
//! duplicated and reordered events, crashes, new versions, removals, a
//! poison message, long jobs and shutdown mid-batch. Storage calls are
//! counted to show each result is written exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use upload_core::testkit::counting::CountingStorage;
use upload_core::{
    ByteStream, Bytes, EventSink, MemoryStorage, ObjectKey, PutOptions, Storage, UploadPolicy,
};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::testkit::codec::{Rng, png_pattern};
use upload_pipeline::{
    Heartbeat, Manifest, MemoryQueue, Outcome, Queue, ReceiveOptions, StandardCodec, Worker,
    WorkerConfig,
};
use upload_scan::{MemoryScanner, Quarantine, Scanner, Verdict};

/// Collects the event messages of the uploads bucket, so the test decides
/// how they reach the queue (duplicated, reordered).
#[derive(Debug, Default)]
struct Collect(Mutex<Vec<String>>);

impl Collect {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[async_trait]
impl EventSink for Collect {
    async fn publish(&self, body: String) -> upload_core::Result<()> {
        self.0.lock().unwrap().push(body);
        Ok(())
    }
}

/// A scanner that takes `delay_ms` per scan and counts its scans.
#[derive(Debug)]
struct SlowScanner {
    inner: MemoryScanner,
    delay_ms: AtomicU64,
    scans: AtomicUsize,
}

impl SlowScanner {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryScanner::new(),
            delay_ms: AtomicU64::new(delay.as_millis() as u64),
            scans: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Scanner for SlowScanner {
    async fn scan(&self, body: ByteStream) -> upload_scan::Result<Verdict> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        self.inner.scan(body).await
    }
}

/// A small PNG, different for every `seed`.
fn png(seed: u32) -> Bytes {
    png_pattern(24, 16, seed).into()
}

struct Scale {
    queue: Arc<MemoryQueue>,
    dlq: Arc<MemoryQueue>,
    events: Arc<Collect>,
    uploads: Arc<MemoryStorage>,
    uploads_counted: Arc<CountingStorage>,
    processed: Arc<MemoryStorage>,
    processed_counted: Arc<CountingStorage>,
    scanner: Arc<dyn Scanner>,
    worker: Worker,
}

fn scale(scanner: Arc<dyn Scanner>, visibility: Duration, max_receives: u32) -> Scale {
    let dlq = Arc::new(MemoryQueue::new("dlq"));
    let queue = Arc::new(
        MemoryQueue::new("events")
            .with_visibility_timeout(visibility)
            .unwrap()
            .with_dead_letter_queue(max_receives, dlq.clone())
            .unwrap(),
    );
    let events = Arc::new(Collect::default());
    let uploads = Arc::new(
        MemoryStorage::new("uploads")
            .unwrap()
            .with_events(events.clone()),
    );
    let processed = Arc::new(MemoryStorage::new("processed").unwrap());
    let uploads_counted = Arc::new(CountingStorage::new(uploads.clone()));
    let processed_counted = Arc::new(CountingStorage::new(processed.clone()));
    let config = WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap())
        .with_receive(
            ReceiveOptions::default()
                .with_wait(Duration::from_millis(100))
                .with_visibility_timeout(visibility),
        )
        .with_retry_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .with_shutdown_grace(Duration::from_millis(200));
    let worker = Worker::new(
        queue.clone(),
        uploads_counted.clone(),
        processed_counted.clone(),
        scanner.clone(),
        Arc::new(StandardCodec::default()),
        Quarantine::new(
            Arc::new(MemoryStorage::new("quarantine").unwrap()),
            "quarantine/",
        ),
        config,
    );
    Scale {
        scanner,
        queue,
        dlq,
        events,
        uploads,
        uploads_counted,
        processed,
        processed_counted,
        worker,
    }
}

impl Scale {
    /// A worker that shares nothing with the others but the queue and the
    /// buckets, as one in another process would.
    fn independent_worker(&self, config: WorkerConfig) -> Worker {
        Worker::new(
            self.queue.clone(),
            self.uploads_counted.clone(),
            self.processed_counted.clone(),
            self.scanner.clone(),
            Arc::new(StandardCodec::default()),
            Quarantine::new(
                Arc::new(MemoryStorage::new("quarantine").unwrap()),
                "quarantine/",
            ),
            config,
        )
    }

    async fn put(&self, key: &ObjectKey, body: Bytes) -> String {
        self.uploads
            .put(
                key,
                body,
                PutOptions::default().with_content_type("image/png"),
            )
            .await
            .unwrap()
            .etag
    }

    async fn manifest(&self, k: &ObjectKey) -> Option<Manifest> {
        match self.processed.get(&manifest_key(k).unwrap()).await {
            Ok(got) => Some(serde_json::from_slice(&got.body).unwrap()),
            Err(upload_core::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs `n` clones of the worker until the queue is empty; with
    /// `crashes`, a random worker is killed (its run future dropped, in
    /// flight messages neither finished nor released) and replaced every
    /// 20 ms, that many times.
    async fn drain(&self, n: usize, crashes: usize, rng: &mut Rng) {
        let workers = vec![self.worker.clone(); n];
        self.drain_with(&workers, crashes, rng).await;
    }

    /// As [`Scale::drain`], with these workers.
    async fn drain_with(&self, workers: &[Worker], crashes: usize, rng: &mut Rng) {
        let n = workers.len();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let spawn = |w: Worker, mut rx: tokio::sync::watch::Receiver<bool>| {
            tokio::spawn(async move {
                w.run(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
            })
        };
        let mut tasks: Vec<_> = workers
            .iter()
            .map(|w| spawn(w.clone(), stop_rx.clone()))
            .collect();
        for _ in 0..crashes {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let i = rng.below(n);
            tasks[i].abort();
            tasks[i] = spawn(workers[i].clone(), stop_rx.clone());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while !self.queue.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue not drained: {} left",
                self.queue.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }

    /// Every processed object is the manifest or a variant of a current
    /// upload, and each of those exists.
    async fn check_processed_matches(&self, keys: &[ObjectKey]) {
        let mut expected = BTreeSet::new();
        for k in keys {
            let Ok(meta) = self.uploads.head(k).await else {
                assert!(
                    self.manifest(k).await.is_none(),
                    "{k}: removed, manifest gone"
                );
                continue;
            };
            let m = self
                .manifest(k)
                .await
                .unwrap_or_else(|| panic!("{k}: no manifest"));
            assert_eq!(m.verdict, Outcome::Clean, "{k}");
            assert_eq!(
                m.source.etag, meta.etag,
                "{k}: manifest of the current version"
            );
            assert_eq!(m.variants.len(), 2, "{k}");
            expected.insert(manifest_key(k).unwrap().as_str().to_owned());
            for v in &m.variants {
                assert!(v.key.as_str().contains(&meta.etag[..16]), "{}", v.key);
                expected.insert(v.key.as_str().to_owned());
            }
        }
        let stored: BTreeSet<_> = self
            .processed
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.as_str().to_owned())
            .collect();
        assert_eq!(stored, expected, "exactly the current results, no orphans");
    }
}

/// 8 workers, 500 uploads (50 of them replaced by a second version before
/// any processing), 20 % of messages sent twice, all in random order, and
/// 40 worker crashes. Then 30 uploads get a new version (and their old
/// events are sent again, late), 10 are deleted; then every current event
/// is redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_workers_write_each_result_once_and_lose_nothing() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(1), 10);
    let mut rng = Rng(0x5EED_CAFE);
    let keys: Vec<ObjectKey> = (0..500)
        .map(|i| ObjectKey::new(format!("uploads/u{}/{i}.png", i % 7)).unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        s.put(k, png(i as u32)).await;
    }
    for (i, k) in keys.iter().enumerate().take(50) {
        s.put(k, png(10_000 + i as u32)).await;
    }
    let mut messages = s.events.take();
    assert_eq!(messages.len(), 550);
    let dups: Vec<String> = messages.iter().step_by(5).cloned().collect();
    messages.extend(dups);
    rng.shuffle(&mut messages);
    for m in &messages {
        s.queue.send(m.clone()).await.unwrap();
    }

    s.drain(8, 40, &mut rng).await;
    assert!(s.dlq.is_empty(), "nothing dead-lettered");
    s.check_processed_matches(&keys).await;
    let writes = s.processed_counted.counts().writes_by_key;
    assert_eq!(writes.len(), 1500, "500 manifests and 1000 variants");
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");

    // New versions of 30 uploads, their old events again (late), and 10
    // removals.
    let old_events: Vec<String> = {
        // The first events of keys 100..110 (version 1).
        let mut seen = BTreeMap::new();
        for m in &messages {
            let r = match upload_core::parse_event_message(m).unwrap() {
                upload_core::EventMessage::Records(r) => r,
                _ => unreachable!(),
            };
            seen.entry(r[0].s3.object.key.clone()).or_insert(m.clone());
        }
        keys[100..110]
            .iter()
            .map(|k| seen[k.as_str()].clone())
            .collect()
    };
    let before_v2: Vec<Manifest> = {
        let mut v = Vec::new();
        for k in &keys[100..130] {
            v.push(s.manifest(k).await.unwrap());
        }
        v
    };
    for (i, k) in keys.iter().enumerate().skip(100).take(30) {
        s.put(k, png(20_000 + i as u32)).await;
    }
    for k in &keys[200..210] {
        s.uploads.delete(k).await.unwrap();
    }
    let mut phase2 = s.events.take();
    assert_eq!(phase2.len(), 40);
    phase2.extend(phase2.clone().into_iter().step_by(3));
    rng.shuffle(&mut phase2);
    phase2.extend(old_events);
    for m in &phase2 {
        s.queue.send(m.clone()).await.unwrap();
    }
    s.drain(8, 0, &mut rng).await;
    assert!(s.dlq.is_empty());
    s.check_processed_matches(&keys).await;
    for old in &before_v2 {
        for v in &old.variants {
            assert!(
                s.processed.head(&v.key).await.is_err(),
                "{}: variant of the replaced version deleted",
                v.key
            );
        }
    }
    let writes = s.processed_counted.counts().writes_by_key;
    for (key, n) in &writes {
        let replaced = keys[100..130]
            .iter()
            .any(|k| *key == manifest_key(k).unwrap().as_str());
        assert_eq!(*n, if replaced { 2 } else { 1 }, "{key}");
    }

    // Every current event once more: no write of any kind.
    let before = s.processed_counted.counts();
    let uploads_before = s.uploads_counted.counts();
    for k in &keys {
        if let Ok(meta) = s.uploads.head(k).await {
            let m = s.manifest(k).await.unwrap();
            let rec = upload_core::S3EventRecord::new(
                "us-east-1",
                "uploads",
                k,
                "ObjectCreated:Put",
                Some(meta.size),
                Some(&meta.etag),
                m.source.sequencer.as_deref().unwrap(),
            );
            s.queue.send(rec.to_message()).await.unwrap();
        }
    }
    s.drain(8, 0, &mut rng).await;
    let after = s.processed_counted.counts();
    assert_eq!(
        after.mutations(),
        before.mutations(),
        "no write on redelivery"
    );
    assert_eq!(after.get - before.get, 490, "one manifest read per message");
    let uploads_after = s.uploads_counted.counts();
    assert_eq!(
        uploads_after.total(),
        uploads_before.total(),
        "the originals are not even read"
    );
}

/// Four workers that share no lock (four processes), each event sent three
/// times at once: the conditional manifest write (`If-Match`, or
/// create-only) and create-only variants still write each result once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn independent_workers_racing_on_duplicates_write_once() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(5), 10);
    let keys: Vec<ObjectKey> = (0..60)
        .map(|i| ObjectKey::new(format!("uploads/r/{i}.png")).unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        s.put(k, png(i as u32)).await;
    }
    for m in s.events.take() {
        for _ in 0..3 {
            s.queue.send(m.clone()).await.unwrap();
        }
    }
    let config = s.worker.config().clone().with_max_in_flight(8);
    let workers: Vec<Worker> = (0..4)
        .map(|_| s.independent_worker(config.clone()))
        .collect();
    s.drain_with(&workers, 0, &mut Rng(3)).await;
    s.check_processed_matches(&keys).await;
    let writes = s.processed_counted.counts().writes_by_key;
    assert_eq!(writes.len(), 180);
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    let mut stats = upload_pipeline::RunStats::default();
    for w in &workers {
        stats.add(&w.health().snapshot().stats);
    }
    assert_eq!(stats.messages, 180);
    assert_eq!(stats.clean, 60);
    assert_eq!(stats.already_processed, 120);
}

/// One upload's path through the store: one GET of the original (sniff,
/// scan and decode read the same response), one tag write, one PUT per
/// variant and one for the manifest.
#[tokio::test]
async fn one_get_of_the_original_per_upload() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let k = ObjectKey::new("uploads/u/one.png").unwrap();
    s.put(&k, png(1)).await;
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!(st.clean, 1);
    let u = s.uploads_counted.counts();
    // No tags given at upload (the GET says so): the tag set is written,
    // not read first; the HEAD checks the CLEAN tag landed on the version
    // scanned (an unversioned bucket).
    assert_eq!(
        (u.get, u.get_tags, u.put_tags, u.head, u.put),
        (1, 0, 1, 1, 0)
    );
    let p = s.processed_counted.counts();
    // The manifest GET (absent), two variants, the manifest.
    assert_eq!((p.get, p.put, p.writes()), (1, 3, 3));
}

/// A newer version replaces the variants; the older version's event,
/// arriving late, changes nothing.
#[tokio::test]
async fn newer_version_replaces_an_older_one_never_the_reverse() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let k = ObjectKey::new("uploads/u/v.png").unwrap();
    let v1 = s.put(&k, png(1)).await;
    let ev1 = s.events.take().remove(0);
    s.queue.send(ev1.clone()).await.unwrap();
    s.worker.run_until_idle().await.unwrap();
    let m1 = s.manifest(&k).await.unwrap();
    assert_eq!(m1.source.etag, v1);
    assert_eq!(m1.source.sequencer.as_deref(), Some("0000000000000001"));

    let v2 = s.put(&k, png(2)).await;
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!(st.clean, 1);
    let m2 = s.manifest(&k).await.unwrap();
    assert_eq!(m2.source.etag, v2);
    assert_ne!(m1.variants[0].key, m2.variants[0].key);
    for v in &m1.variants {
        assert!(
            s.processed.head(&v.key).await.is_err(),
            "old variant deleted"
        );
    }

    // v1's event again, and v1's bytes under an older sequencer: nothing.
    let writes = s.processed_counted.counts().mutations();
    s.queue.send(ev1).await.unwrap();
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!((st.superseded, st.clean), (1, 0));
    assert_eq!(s.processed_counted.counts().mutations(), writes);
    assert_eq!(s.manifest(&k).await.unwrap(), m2);
}

/// Deleting an original deletes its variants and manifest; the removal
/// that a quarantine move causes keeps the quarantine record.
#[tokio::test]
async fn removal_deletes_variants_and_manifest_but_not_quarantine_records() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let k = ObjectKey::new("uploads/u/gone.png").unwrap();
    let bad = ObjectKey::new("uploads/u/eicar.png").unwrap();
    s.put(&k, png(3)).await;
    let mut infected = png(4).to_vec();
    infected.extend_from_slice(&upload_scan::test_marker());
    s.put(&bad, infected.into()).await;
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!((st.clean, st.infected), (1, 1));
    assert_eq!(s.processed.len(), 4, "2 manifests, 2 variants");
    // The quarantine move removed the infected original: its event.
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    s.uploads.delete(&k).await.unwrap();
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!((st.messages, st.removed, st.skipped), (2, 1, 1));
    assert!(s.manifest(&k).await.is_none());
    let left = s.manifest(&bad).await.unwrap();
    assert_eq!(left.verdict, Outcome::Infected);
    assert_eq!(s.processed.len(), 1, "only the quarantine record");
}

/// A message that can never succeed reaches the dead-letter queue after
/// the redrive count, with its retries backed off, while other messages
/// keep flowing; with a worker dead-letter queue it goes there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_dead_lettered_while_others_flow() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    // Not an S3 event (and the worker has no dead-letter queue of its
    // own): the same error at every delivery.
    let poison = r#"{"Records": "not a list"}"#.to_owned();
    s.queue.send(poison.clone()).await.unwrap();
    // A valid upload whose plain manifest key would be over S3's 1024
    // bytes: processed under the hashed layout, never retried.
    let long = ObjectKey::new(format!("uploads/{}.png", "x".repeat(1005))).unwrap();
    s.put(&long, png(99)).await;
    let keys: Vec<ObjectKey> = (0..20)
        .map(|i| ObjectKey::new(format!("uploads/p/{i}.png")).unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        s.put(k, png(i as u32)).await;
    }
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    let mut rng = Rng(7);
    s.drain(2, 0, &mut rng).await;
    assert_eq!(s.dlq.len(), 1, "the poison message only");
    let dead = s
        .dlq
        .receive(&ReceiveOptions::default().with_wait(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(dead[0].body, poison);
    let health = s.worker.health().snapshot();
    assert_eq!(health.stats.clean, 21, "the 20 and the long key");
    assert_eq!(health.stats.rejected, 0);
    assert_eq!(
        s.uploads.get_tags(&long).await.unwrap().get("scan-status"),
        Some("CLEAN")
    );
    assert!(s.manifest(&long).await.is_some(), "the long key's manifest");
    assert_eq!(health.stats.failed, 3, "three deliveries failed");
    assert_eq!(health.stats.retried, 2);
    for k in &keys {
        assert!(s.manifest(k).await.is_some(), "{k}");
    }

    // Not an S3 event at all, with the worker's own dead-letter queue:
    // moved at the first delivery.
    let worker = s.worker.clone().with_dead_letter_queue(s.dlq.clone());
    s.queue
        .send("{\"not\": \"an event\"}".into())
        .await
        .unwrap();
    let st = worker.run_until_idle().await.unwrap();
    assert_eq!((st.messages, st.dead_lettered, st.failed), (1, 1, 0));
    assert!(s.queue.is_empty());
    assert_eq!(
        s.dlq.len(),
        2,
        "the poison message (in flight) and this one"
    );
}

/// A job three times longer than the visibility timeout (3 s, 1 s) is processed once
/// by two workers that share nothing (two processes): the heartbeat keeps
/// it from the other. Without the heartbeat the same job is scanned twice
/// (the check can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_a_long_job_from_other_workers() {
    for heartbeat in [true, false] {
        let scanner = SlowScanner::new(Duration::from_millis(3000));
        let s = scale(scanner.clone(), Duration::from_millis(1000), 10);
        // One message at a time each: a second delivery can only go to the
        // other worker (in the same one it would wait for the key's lock).
        let mut config = s.worker.config().clone().with_max_in_flight(1);
        if !heartbeat {
            config = config.with_heartbeat(Heartbeat::Off);
        }
        let workers = [
            s.independent_worker(config.clone()),
            s.independent_worker(config),
        ];
        let k = ObjectKey::new("uploads/u/slow.png").unwrap();
        s.put(&k, png(9)).await;
        for m in s.events.take() {
            s.queue.send(m).await.unwrap();
        }
        let mut rng = Rng(1);
        s.drain_with(&workers, 0, &mut rng).await;
        let scans = scanner.scans.load(Ordering::SeqCst);
        let mut stats = workers[0].health().snapshot().stats;
        stats.add(&workers[1].health().snapshot().stats);
        if heartbeat {
            assert_eq!(scans, 1, "scanned once");
            assert_eq!((stats.messages, stats.clean), (1, 1));
        } else {
            assert!(
                scans >= 2,
                "without heartbeat: delivered again ({scans}) {stats:?}"
            );
            assert!(stats.messages >= 2);
        }
        assert!(s.manifest(&k).await.is_some());
        assert!(s.dlq.is_empty());
    }
}

/// Shutdown while messages are in progress: past the grace period they are
/// made visible again at once; nothing is lost, and a later run finishes
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_batch_releases_what_is_in_progress() {
    let scanner = SlowScanner::new(Duration::from_secs(5));
    let s = scale(scanner.clone(), Duration::from_secs(60), 10);
    let keys: Vec<ObjectKey> = (0..6)
        .map(|i| ObjectKey::new(format!("uploads/s/{i}.png")).unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        s.put(k, png(i as u32)).await;
    }
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = s.worker.clone();
    let run = tokio::spawn(async move {
        worker
            .run(async {
                let _ = rx.await;
            })
            .await
    });
    // Four (max in flight) are being scanned.
    while scanner.scans.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let h = s.worker.health().snapshot();
    assert!(h.running && h.ready && !h.stopping);
    assert_eq!(h.in_flight, 4);
    tx.send(()).unwrap();
    let stats = run.await.unwrap().unwrap();
    assert_eq!((stats.messages, stats.released, stats.clean), (4, 4, 0));
    let h = s.worker.health().snapshot();
    assert!(!h.running && !h.ready && h.in_flight == 0);
    assert_eq!(s.queue.len(), 6, "every message is still on the queue");
    assert_eq!(s.queue.in_flight(), 0, "and visible now, not in 60 s");

    scanner.delay_ms.store(0, Ordering::SeqCst);
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!((st.messages, st.clean, st.retried), (6, 6, 4));
    for k in &keys {
        assert!(s.manifest(k).await.is_some(), "{k}");
    }
    assert!(s.queue.is_empty());
}

/// Panics on keys containing `boom`; skips the rest.
#[derive(Debug)]
struct Panicky;

#[async_trait]
impl upload_pipeline::RecordHandler for Panicky {
    async fn handle(
        &self,
        record: &upload_core::S3EventRecord,
    ) -> upload_pipeline::Result<upload_pipeline::Handled> {
        assert!(!record.s3.object.key.contains("boom"), "handler bug");
        Ok(upload_pipeline::Handled::Skipped)
    }
}

/// A handler that panics (a bug) fails its message only: the loop goes on
/// with the others, and the message is retried, then dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_message_only() {
    let dlq = Arc::new(MemoryQueue::new("dlq"));
    let queue = Arc::new(
        MemoryQueue::new("events")
            .with_dead_letter_queue(2, dlq.clone())
            .unwrap(),
    );
    let config = WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap())
        .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(50));
    let worker = Worker::with_handler(queue.clone(), Arc::new(Panicky), config);
    for key in ["uploads/a.png", "uploads/boom.png", "uploads/b.png"] {
        let rec = upload_core::S3EventRecord::new(
            "us-east-1",
            "uploads",
            &ObjectKey::new(key).unwrap(),
            "ObjectCreated:Put",
            Some(1),
            Some("00"),
            "1",
        );
        queue.send(rec.to_message()).await.unwrap();
    }
    let first = worker.run_until_idle().await.unwrap();
    assert_eq!((first.messages, first.skipped, first.failed), (3, 2, 1));
    tokio::time::sleep(Duration::from_millis(120)).await;
    let second = worker.run_until_idle().await.unwrap();
    assert_eq!((second.messages, second.failed, second.retried), (1, 1, 1));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(worker.run_until_idle().await.unwrap().messages, 0);
    assert!(queue.is_empty());
    assert_eq!(dlq.len(), 1, "dead-lettered after 2 receives");
}

/// Quarantine inside the uploads bucket: the copy's own ObjectCreated event
/// (and the original's removal) never start processing again.
#[tokio::test]
async fn the_workers_own_outputs_never_trigger_it() {
    let queue = Arc::new(MemoryQueue::new("events"));
    let uploads = Arc::new(
        MemoryStorage::new("uploads")
            .unwrap()
            .with_events(queue.clone()),
    );
    let processed = Arc::new(CountingStorage::new(Arc::new(
        MemoryStorage::new("processed").unwrap(),
    )));
    let worker = Worker::new(
        queue.clone(),
        uploads.clone(),
        processed.clone(),
        Arc::new(MemoryScanner::new()),
        Arc::new(StandardCodec::default()),
        Quarantine::new(uploads.clone(), "quarantine/"),
        WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap()),
    );
    let k = ObjectKey::new("uploads/u/bad.png").unwrap();
    let mut body = png(5).to_vec();
    body.extend_from_slice(&upload_scan::test_marker());
    uploads
        .put(
            &k,
            body.into(),
            PutOptions::default().with_content_type("image/png"),
        )
        .await
        .unwrap();
    let first = worker.run_until_idle().await.unwrap();
    // The upload, then the quarantine copy's event and the original's
    // removal: one infected, two skipped, nothing processed twice.
    assert_eq!(
        (first.messages, first.infected, first.skipped, first.failed),
        (3, 1, 2, 0)
    );
    let q = ObjectKey::new("quarantine/uploads/u/bad.png").unwrap();
    assert!(uploads.head(&q).await.is_ok());
    assert!(uploads.head(&k).await.is_err());
    assert_eq!(processed.counts().writes(), 1, "one manifest");
    assert!(queue.is_empty());
}

/// Counts how handled messages are deleted.
#[derive(Debug)]
struct DeleteCounter {
    inner: MemoryQueue,
    batches: Mutex<Vec<usize>>,
}

#[async_trait]
impl Queue for DeleteCounter {
    async fn send(&self, body: String) -> upload_pipeline::Result<String> {
        self.inner.send(body).await
    }
    async fn receive(
        &self,
        opts: &ReceiveOptions,
    ) -> upload_pipeline::Result<Vec<upload_pipeline::QueueMessage>> {
        self.inner.receive(opts).await
    }
    async fn delete(&self, _: &str) -> upload_pipeline::Result<()> {
        panic!("handled messages are deleted in batches");
    }
    async fn delete_batch(&self, handles: &[String]) -> Vec<upload_pipeline::Result<()>> {
        self.batches.lock().unwrap().push(handles.len());
        let mut out = Vec::new();
        for h in handles {
            out.push(self.inner.delete(h).await);
        }
        out
    }
    async fn change_visibility(&self, h: &str, t: Duration) -> upload_pipeline::Result<()> {
        self.inner.change_visibility(h, t).await
    }
}

/// Handled messages are deleted 10 to a request (`DeleteMessageBatch`).
#[tokio::test]
async fn handled_messages_are_deleted_in_batches_of_ten() {
    let queue = Arc::new(DeleteCounter {
        inner: MemoryQueue::new("events"),
        batches: Mutex::default(),
    });
    for i in 0..35 {
        let rec = upload_core::S3EventRecord::new(
            "us-east-1",
            "other-bucket",
            &ObjectKey::new(format!("uploads/{i}.png")).unwrap(),
            "ObjectCreated:Put",
            Some(1),
            Some("00"),
            "1",
        );
        queue.send(rec.to_message()).await.unwrap();
    }
    let config =
        WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap()).with_max_in_flight(16);
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let worker = Worker::with_handler(
        queue.clone(),
        Arc::new(upload_pipeline::UploadProcessor::new(
            s.uploads.clone(),
            s.processed.clone(),
            Arc::new(MemoryScanner::new()),
            Arc::new(StandardCodec::default()),
            Quarantine::new(s.uploads.clone(), "quarantine/"),
            &config,
        )),
        config,
    );
    let st = worker.run_until_idle().await.unwrap();
    assert_eq!(
        (st.messages, st.skipped),
        (35, 35),
        "records of another bucket"
    );
    assert!(queue.inner.is_empty());
    let batches = queue.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 35);
    assert!(batches.iter().all(|n| *n <= 10), "{batches:?}");
    assert!(batches.len() <= 6, "{batches:?}");
}

async fn send_events(s: &Scale) {
    for m in s.events.take() {
        s.queue.send(m).await.unwrap();
    }
}

fn infected_png(seed: u32) -> Bytes {
    let mut b = png(seed).to_vec();
    b.extend_from_slice(&upload_scan::test_marker());
    b.into()
}

/// The same bytes uploaded again under the key (same ETag, newer
/// sequencer) are a new object: scanned and tagged or quarantined again;
/// their variants are reused, not written twice.
#[tokio::test]
async fn same_bytes_uploaded_again_are_processed_again() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let clean = ObjectKey::new("uploads/again/clean.png").unwrap();
    let bad = ObjectKey::new("uploads/again/bad.png").unwrap();
    s.put(&clean, png(1)).await;
    s.put(&bad, infected_png(2)).await;
    send_events(&s).await;
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!((st.clean, st.infected), (1, 1));
    s.events.take(); // the quarantine move's removal
    let first = s.manifest(&clean).await.unwrap();

    s.put(&clean, png(1)).await;
    s.put(&bad, infected_png(2)).await;
    assert!(
        s.uploads.get_tags(&clean).await.unwrap().is_empty(),
        "a new object has no tags"
    );
    let writes = s.processed_counted.counts().writes_by_key;
    send_events(&s).await;
    let st = s.worker.run_until_idle().await.unwrap();
    assert_eq!(
        (st.clean, st.infected, st.already_processed),
        (1, 1, 0),
        "{st:?}"
    );
    assert_eq!(
        s.uploads.get_tags(&clean).await.unwrap().get("scan-status"),
        Some("CLEAN")
    );
    assert!(s.uploads.head(&bad).await.is_err(), "quarantined again");
    let again = s.manifest(&clean).await.unwrap();
    assert_eq!(again.variants, first.variants, "same variants");
    assert_ne!(again.source.sequencer, first.source.sequencer);
    let after = s.processed_counted.counts().writes_by_key;
    for v in &first.variants {
        assert_eq!(
            after[v.key.as_str()],
            writes[v.key.as_str()],
            "{} not rewritten",
            v.key
        );
    }
}

/// A version replaced while it is scanned: its verdict is applied neither
/// to the new bytes' quarantine nor to their tags; the new version's own
/// event decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_replaced_while_scanned_is_left_to_its_own_event() {
    for (v1, v2) in [(infected_png(3), png(4)), (png(5), infected_png(6))] {
        let scanner = SlowScanner::new(Duration::from_millis(1000));
        let s = scale(scanner.clone(), Duration::from_secs(30), 3);
        let k = ObjectKey::new("uploads/race/x.png").unwrap();
        s.put(&k, v1.clone()).await;
        send_events(&s).await;
        let worker = s.worker.clone();
        let first = tokio::spawn(async move { worker.run_until_idle().await });
        while scanner.scans.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let etag2 = s.put(&k, v2.clone()).await;
        let st = first.await.unwrap().unwrap();
        assert_eq!((st.superseded, st.clean, st.infected), (1, 0, 0), "{st:?}");
        if v2.len() == png(4).len() {
            // v2 is clean: still in place, untouched by v1's verdict.
            assert_eq!(s.uploads.head(&k).await.unwrap().etag, etag2);
        }
        assert!(
            s.uploads
                .get_tags(&k)
                .await
                .map(|t| t.get("scan-status").is_none())
                .unwrap_or(true),
            "no CLEAN tag on bytes nobody scanned"
        );
        scanner.delay_ms.store(0, Ordering::SeqCst);
        send_events(&s).await;
        let st = s.worker.run_until_idle().await.unwrap();
        let m = s.manifest(&k).await.unwrap();
        assert_eq!(m.source.etag, etag2);
        if m.verdict == Outcome::Clean {
            assert_eq!(st.clean, 1);
            assert_eq!(
                s.uploads.get_tags(&k).await.unwrap().get("scan-status"),
                Some("CLEAN")
            );
        } else {
            assert_eq!((st.infected, m.verdict), (1, Outcome::Infected));
            assert!(s.uploads.head(&k).await.is_err());
        }
    }
}

/// An earlier delivery moved the original to quarantine, then stopped
/// before the manifest: the redelivery writes the manifest from the
/// quarantine copy.
#[tokio::test]
async fn a_quarantine_move_without_manifest_is_recorded_on_redelivery() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let k = ObjectKey::new("uploads/q/half.png").unwrap();
    let etag = s.put(&k, infected_png(7)).await;
    let event = s.events.take().remove(0);
    // What the interrupted delivery did: the move, no manifest.
    let quarantine = Quarantine::new(s.uploads.clone(), "quarantine/");
    quarantine
        .quarantine(
            s.uploads.as_ref(),
            &k,
            &Verdict::Infected {
                signature: "Eicar-Test-Signature".into(),
            },
        )
        .await
        .unwrap();
    // A worker quarantining into the uploads bucket, as above.
    let worker = Worker::new(
        s.queue.clone(),
        s.uploads_counted.clone(),
        s.processed_counted.clone(),
        Arc::new(MemoryScanner::new()),
        Arc::new(StandardCodec::default()),
        quarantine,
        s.worker.config().clone(),
    );
    s.queue.send(event).await.unwrap();
    let st = worker.run_until_idle().await.unwrap();
    assert_eq!(st.infected, 1, "{st:?}");
    let m = s.manifest(&k).await.unwrap();
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(m.source.etag, etag);
    assert_eq!(m.signature.as_deref(), Some("Eicar-Test-Signature"));
    assert_eq!(
        m.quarantine.unwrap().key.as_str(),
        "quarantine/uploads/q/half.png"
    );
}

/// Tags given at upload (a presigned `x-amz-tagging`) survive the scan's.
#[tokio::test]
async fn upload_tags_are_kept_beside_the_scan_tags() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let k = ObjectKey::new("uploads/t/tagged.png").unwrap();
    let tags = upload_core::Tags::from_pairs([("owner", "alice"), ("retention", "30d")]).unwrap();
    s.uploads
        .put(
            &k,
            png(8),
            PutOptions::default()
                .with_content_type("image/png")
                .with_tags(tags),
        )
        .await
        .unwrap();
    send_events(&s).await;
    assert_eq!(s.worker.run_until_idle().await.unwrap().clean, 1);
    let got = s.uploads.get_tags(&k).await.unwrap();
    assert_eq!(got.get("owner"), Some("alice"));
    assert_eq!(got.get("retention"), Some("30d"));
    assert_eq!(got.get("scan-status"), Some("CLEAN"));
}

/// Clones of a worker are loops of one process: health counts them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_covers_every_loop_of_a_worker() {
    let s = scale(Arc::new(MemoryScanner::new()), Duration::from_secs(30), 3);
    let health = s.worker.health();
    let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
    let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
    let (w1, w2) = (s.worker.clone(), s.worker.clone());
    let l1 = tokio::spawn(async move {
        w1.run(async {
            let _ = rx1.await;
        })
        .await
    });
    let l2 = tokio::spawn(async move {
        w2.run(async {
            let _ = rx2.await;
        })
        .await
    });
    while !health.snapshot().ready {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx1.send(()).unwrap();
    l1.await.unwrap().unwrap();
    let h = health.snapshot();
    assert!(
        h.running && h.ready && !h.stopping,
        "the other loop runs: {h:?}"
    );
    tx2.send(()).unwrap();
    l2.await.unwrap().unwrap();
    let h = health.snapshot();
    assert!(!h.running && !h.ready && h.in_flight == 0, "{h:?}");
}

/// Storage requests of one upload, by kind, as `bench-worker` counts them:
/// versioned bucket, no tags given at upload: GET manifest (none yet), GET
/// original, PutObjectTagging (no GetObjectTagging: the GET said there are
/// no tags), 2 variant PUTs, manifest PUT = 6; unversioned: one HEAD more
/// (the tags cannot be bound to the bytes scanned otherwise); tags given at
/// upload: one GetObjectTagging more, and they are kept. Redelivery: the
/// manifest GET alone.
#[tokio::test]
async fn requests_per_upload_by_kind() {
    async fn run(versioned: bool, tags: Option<upload_core::Tags>) -> (CountedRun, CountedRun) {
        let queue = Arc::new(MemoryQueue::new("events"));
        let mut raw = MemoryStorage::new("uploads")
            .unwrap()
            .with_events(queue.clone());
        if versioned {
            raw = raw.with_versioning();
        }
        let raw = Arc::new(raw);
        let uploads = Arc::new(CountingStorage::new(raw.clone()));
        let processed = Arc::new(CountingStorage::new(Arc::new(
            MemoryStorage::new("processed").unwrap(),
        )));
        let worker = Worker::new(
            queue.clone(),
            uploads.clone(),
            processed.clone(),
            Arc::new(MemoryScanner::new()),
            Arc::new(StandardCodec::default()),
            Quarantine::new(
                Arc::new(MemoryStorage::new("quarantine").unwrap()),
                "quarantine/",
            ),
            WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap()),
        );
        let k = ObjectKey::new("uploads/r/photo.png").unwrap();
        let mut opts = PutOptions::default().with_content_type("image/png");
        if let Some(t) = tags.clone() {
            opts = opts.with_tags(t);
        }
        let meta = raw.put(&k, png(3), opts).await.unwrap();
        assert_eq!(worker.run_until_idle().await.unwrap().clean, 1);
        let first = CountedRun::of(&uploads, &processed);
        let got = raw.get_tags(&k).await.unwrap();
        assert_eq!(got.get("scan-status"), Some("CLEAN"));
        if let Some(t) = tags {
            for (name, value) in t.iter() {
                assert_eq!(got.get(name), Some(value), "{name} kept");
            }
        }
        uploads.reset();
        processed.reset();
        let mut rec = upload_core::S3EventRecord::new(
            "us-east-1",
            "uploads",
            &k,
            "ObjectCreated:Put",
            Some(meta.size),
            Some(&meta.etag),
            "0000000000000001",
        );
        rec.s3.object.version_id = meta.version_id.clone();
        queue.send(rec.to_message()).await.unwrap();
        assert_eq!(worker.run_until_idle().await.unwrap().already_processed, 1);
        (first, CountedRun::of(&uploads, &processed))
    }

    #[derive(Debug, PartialEq)]
    struct CountedRun {
        /// GET, GetObjectTagging, PutObjectTagging, HEAD of the uploads bucket.
        uploads: (u64, u64, u64, u64),
        /// GET, PUT of the processed bucket.
        processed: (u64, u64),
        total: u64,
    }
    impl CountedRun {
        fn of(u: &CountingStorage, p: &CountingStorage) -> Self {
            let (u, p) = (u.counts(), p.counts());
            Self {
                uploads: (u.get, u.get_tags, u.put_tags, u.head),
                processed: (p.get, p.put),
                total: u.total() + p.total(),
            }
        }
    }
    let redelivery = CountedRun {
        uploads: (0, 0, 0, 0),
        processed: (1, 0),
        total: 1,
    };

    let (first, again) = run(true, None).await;
    assert_eq!(
        first,
        CountedRun {
            uploads: (1, 0, 1, 0),
            processed: (1, 3),
            total: 6
        }
    );
    assert_eq!(again, redelivery);

    let (first, again) = run(false, None).await;
    assert_eq!(
        first,
        CountedRun {
            uploads: (1, 0, 1, 1),
            processed: (1, 3),
            total: 7
        }
    );
    assert_eq!(again, redelivery);

    let given = upload_core::Tags::from_pairs([("owner", "alice")]).unwrap();
    let (first, _) = run(true, Some(given)).await;
    assert_eq!(
        first,
        CountedRun {
            uploads: (1, 1, 1, 0),
            processed: (1, 3),
            total: 7
        }
    );
}
