//! `bench-worker`: the worker loop's own cost, and the storage requests it
//! makes per upload.
//!
//! 1. **Loop overhead**: N S3 event messages on a [`MemoryQueue`], drained
//!    on a single-threaded runtime (one core) by [`Worker::run_until_idle`]
//!    with a no-op [`RecordHandler`]: receive in batches, parse, hand each
//!    record over, heartbeat timer, delete. Baseline in the same run: the
//!    loop one writes by hand (receive 10, parse, handle, delete, one
//!    message at a time, no heartbeat, no concurrency). Goal: at least
//!    50,000 messages/s.
//! 2. **Requests per upload**: real uploads (PNG photos-sized images)
//!    processed by the [`UploadProcessor`](upload_pipeline::UploadProcessor)
//!    through request-counting storage, on `MemoryStorage` and on moto's S3
//!    (started by `scripts/moto.sh`, or `UPLOAD_SDK_MOTO_ENDPOINT`), the
//!    uploads bucket versioned and not; then every event is delivered
//!    again. Goal (versioned, as `upload-setup --versioning` deploys): at
//!    most 6 requests per upload with two variants (GET of the manifest,
//!    GET of the original, PutObjectTagging, 2 variant PUTs, the manifest
//!    PUT; the tag set is not read when the GET said the upload has no
//!    tags), 1 on redelivery, 0 writes on redelivery. Without versioning a
//!    HEAD after tagging checks the tags landed on the bytes scanned (S3
//!    tags cannot be written conditionally): one more.
//! 3. **A webhook receiver that is down**: 2,000 small PDFs (scanned and
//!    kept, so the worker's own work dominates) processed with a
//!    `WebhookNotifier` outbox whose `WebhookDeliverer` runs beside the
//!    worker, first against a receiver that answers 204 at once, then
//!    against a closed port (every delivery refused and retried). Goal: the
//!    same uploads per second (`notify_receiver_down_ratio` = down / up,
//!    about 1.0 or above), every outcome kept in the outbox. Without a
//!    notifier, for reference: `notify_cost_ratio` = up / none.
//!
//! 4. **Disk queue**: N/100 (at least 1,000) event messages sent to a
//!    [`DiskQueue`] (redb, every operation committed with an fsync) in a
//!    file under the system's temporary directory, then drained by the
//!    same worker loop on one core (current-thread runtime; the database
//!    calls run on tokio's blocking pool): messages per second and queue
//!    requests per message. Beside it, raw queue operations per second
//!    (send one, receive it, delete it: three operations) on
//!    `MemoryQueue` and `DiskQueue`.
//! 5. **On NATS JetStream**: the loop of 1. (no-op handler, one core) on a
//!    [`NatsQueue`] of a real nats-server (started by `scripts/nats.sh`, or
//!    `UPLOAD_SDK_NATS_URL`), N (at most 20,000) messages published to the
//!    stream first: messages per second, and the NATS messages the client
//!    sends per queue message (pull requests and acks, counted by the
//!    client's own statistics; an SQS request is the counterpart of each).
//!
//! `cargo run --release -p upload-benches --bin bench-worker [N]` (N
//! messages per round, default 200000). Last line:
//! `RESULT messages_per_sec=X requests_per_upload=Y requests_on_redelivery=R writes_on_redelivery=Z ...
//! notify_receiver_down_ratio=R ... disk_queue_msgs_per_sec=D
//! disk_queue_requests_per_message=Q memory_queue_ops_per_sec=M
//! disk_queue_ops_per_sec=O nats_msgs_per_sec=X
//! nats_requests_per_message=Y`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use upload_benches::{median, peak_rss_mb};
use upload_core::s3::S3Storage;
use upload_core::testkit::counting::CountingStorage;
use upload_core::{
    MemoryStorage, ObjectKey, ObjectMeta, PutOptions, S3EventRecord, Storage, UploadPolicy,
    parse_event_message,
};
use upload_pipeline::nats::async_nats::{self, jetstream};
use upload_pipeline::nats::{NatsQueue, NatsQueueConfig};
use upload_pipeline::testkit::codec::png_pattern;
use upload_pipeline::{
    DiskQueue, Handled, MemoryQueue, Queue, QueueMessage, ReceiveOptions, RecordHandler,
    StandardCodec, Worker, WorkerConfig,
};
use upload_scan::{MemoryScanner, Quarantine};

const ROUNDS: usize = 5;
const UPLOADS: usize = 40;
/// Most messages of a NATS round (the stream is filled by publishing).
const NATS_MESSAGES: usize = 20_000;

/// Counts the requests a queue receives (as SQS would bill them: a
/// receive, a delete, a 10-handle batch delete, a visibility change).
#[derive(Debug)]
struct CountingQueue {
    inner: Arc<dyn Queue>,
    requests: AtomicU64,
}

#[async_trait]
impl Queue for CountingQueue {
    async fn send(&self, body: String) -> upload_pipeline::Result<String> {
        self.inner.send(body).await
    }
    async fn receive(&self, opts: &ReceiveOptions) -> upload_pipeline::Result<Vec<QueueMessage>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.receive(opts).await
    }
    async fn delete(&self, handle: &str) -> upload_pipeline::Result<()> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(handle).await
    }
    async fn delete_batch(&self, handles: &[String]) -> Vec<upload_pipeline::Result<()>> {
        self.requests
            .fetch_add(handles.len().div_ceil(10) as u64, Ordering::Relaxed);
        self.inner.delete_batch(handles).await
    }
    async fn change_visibility(&self, h: &str, t: Duration) -> upload_pipeline::Result<()> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.change_visibility(h, t).await
    }
}

/// Does nothing with a record but look at it.
#[derive(Debug)]
struct Noop;

#[async_trait]
impl RecordHandler for Noop {
    async fn handle(&self, record: &S3EventRecord) -> upload_pipeline::Result<Handled> {
        std::hint::black_box(record);
        Ok(Handled::Skipped)
    }
}

fn event_body(i: usize) -> String {
    let key = ObjectKey::new(format!("uploads/u{}/photo {i}.jpg", i % 97)).expect("valid key");
    S3EventRecord::new(
        "us-east-1",
        "uploads",
        &key,
        "ObjectCreated:Put",
        Some(2_345_678),
        Some("9bb58f26192e4ba00f01e2e7b136bbd8"),
        &format!("{i:016X}"),
    )
    .to_message()
}

async fn filled_queue(bodies: &[String]) -> Arc<MemoryQueue> {
    let q = Arc::new(MemoryQueue::new("bench"));
    for b in bodies {
        q.send(b.clone()).await.expect("send");
    }
    q
}

/// Receive 10, parse, handle, delete: one message at a time.
async fn naive_loop(q: &dyn Queue, handler: &dyn RecordHandler) -> u64 {
    let opts = ReceiveOptions::default().with_wait(Duration::ZERO);
    let mut n = 0;
    loop {
        let batch = q.receive(&opts).await.expect("receive");
        if batch.is_empty() {
            return n;
        }
        for m in batch {
            if let Ok(upload_core::EventMessage::Records(records)) = parse_event_message(&m.body) {
                for r in &records {
                    handler.handle(r).await.expect("noop");
                }
            }
            q.delete(&m.receipt_handle).await.expect("delete");
            n += 1;
        }
    }
}

fn policy() -> UploadPolicy {
    UploadPolicy::images_and_pdf(64 << 20).expect("policy")
}

/// A single-threaded runtime (one core), `n` event bodies, and the loop
/// settings both loop measurements use: 64 in flight, no long poll.
fn one_core_setup(n: usize) -> (tokio::runtime::Runtime, Vec<String>, WorkerConfig) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let bodies = (0..n).map(event_body).collect();
    let config = WorkerConfig::new(policy())
        .with_max_in_flight(64)
        .with_receive(ReceiveOptions::default().with_wait(Duration::ZERO));
    (rt, bodies, config)
}

/// Queue requests per message of the worker and of the hand-written loop,
/// over `n` messages.
fn queue_requests(n: usize) -> (f64, f64) {
    let (rt, bodies, config) = one_core_setup(n);
    let counted = |q: Arc<MemoryQueue>| {
        Arc::new(CountingQueue {
            inner: q,
            requests: AtomicU64::new(0),
        })
    };
    let q = counted(rt.block_on(filled_queue(&bodies)));
    let w = Worker::with_handler(q.clone(), Arc::new(Noop), config);
    rt.block_on(w.run_until_idle()).expect("run");
    let ours = q.requests.load(Ordering::Relaxed) as f64 / n as f64;
    let q = counted(rt.block_on(filled_queue(&bodies)));
    rt.block_on(naive_loop(q.as_ref(), &Noop));
    let naive = q.requests.load(Ordering::Relaxed) as f64 / n as f64;
    (ours, naive)
}

fn loop_overhead(n: usize) -> (f64, f64) {
    let (rt, bodies, config) = one_core_setup(n);
    let mut ours = Vec::new();
    let mut naive = Vec::new();
    for round in 1..=ROUNDS {
        let q = rt.block_on(filled_queue(&bodies));
        let w = Worker::with_handler(q.clone(), Arc::new(Noop), config.clone());
        let t = Instant::now();
        let stats = rt.block_on(w.run_until_idle()).expect("run");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(stats.messages, n as u64);
        assert!(q.is_empty(), "every message deleted");
        ours.push(n as f64 / secs);

        let q = rt.block_on(filled_queue(&bodies));
        let t = Instant::now();
        let done = rt.block_on(naive_loop(q.as_ref(), &Noop));
        let secs_naive = t.elapsed().as_secs_f64();
        assert_eq!(done, n as u64);
        naive.push(n as f64 / secs_naive);
        eprintln!(
            "round {round}: worker {:.0} msg/s, hand-written loop {:.0} msg/s",
            n as f64 / secs,
            n as f64 / secs_naive
        );
    }
    (
        median(&mut ours).expect("rounds"),
        median(&mut naive).expect("rounds"),
    )
}

/// A fresh [`DiskQueue`] in a new file under `dir`.
fn disk_queue(dir: &std::path::Path, round: usize) -> Arc<DiskQueue> {
    let path = dir.join(format!("queue-{round}.redb"));
    let _ = std::fs::remove_file(&path);
    Arc::new(DiskQueue::open(&path, "bench").expect("open the disk queue"))
}

/// The worker loop draining `n` messages from a [`DiskQueue`] on one
/// core: median messages per second over [`ROUNDS`] and queue requests
/// per message.
fn disk_queue_loop(n: usize, dir: &std::path::Path) -> (f64, f64) {
    let (rt, bodies, config) = one_core_setup(n);
    let mut rates = Vec::new();
    let mut requests = 0.0;
    for round in 1..=ROUNDS {
        let disk = disk_queue(dir, round);
        let q = Arc::new(CountingQueue {
            inner: disk.clone(),
            requests: AtomicU64::new(0),
        });
        rt.block_on(async {
            for b in &bodies {
                disk.send(b.clone()).await.expect("send");
            }
        });
        let w = Worker::with_handler(q.clone(), Arc::new(Noop), config.clone());
        let t = Instant::now();
        let stats = rt.block_on(w.run_until_idle()).expect("run");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(stats.messages, n as u64);
        assert_eq!(disk.len().expect("len"), 0, "every message deleted");
        requests = q.requests.load(Ordering::Relaxed) as f64 / n as f64;
        rates.push(n as f64 / secs);
        eprintln!(
            "round {round}: worker on the disk queue {:.0} msg/s, {requests:.3} queue requests per message",
            n as f64 / secs
        );
    }
    (median(&mut rates).expect("rounds"), requests)
}

/// Raw operations per second of `q`: `n` times send one message, receive
/// it, delete it (three operations each), on one core.
fn queue_ops_per_sec(q: &dyn Queue, n: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let opts = ReceiveOptions::default()
        .with_wait(Duration::ZERO)
        .with_max_messages(1);
    let body = event_body(1);
    rt.block_on(async {
        let t = Instant::now();
        for _ in 0..n {
            q.send(body.clone()).await.expect("send");
            let got = q.receive(&opts).await.expect("receive");
            assert_eq!(got.len(), 1);
            q.delete(&got[0].receipt_handle).await.expect("delete");
        }
        (3 * n) as f64 / t.elapsed().as_secs_f64()
    })
}

/// Messages per second of the worker draining `n` messages from a
/// [`NatsQueue`] on one core (no-op handler), and the NATS messages the
/// client sent per queue message while draining; medians of [`ROUNDS`],
/// each on a fresh stream deleted afterwards.
fn nats_round(server: &upload_benches::servers::Server, n: usize) -> Result<(f64, f64), String> {
    let (_, bodies, config) = one_core_setup(n);
    // Still one core, with I/O for the NATS connection.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = async_nats::connect(server.endpoint.as_str())
            .await
            .map_err(|e| format!("connect to {}: {e}", server.endpoint))?;
        let js = jetstream::new(client.clone());
        let (mut rates, mut requests) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            let name = format!("BENCH{}R{round}", std::process::id());
            let q = Arc::new(
                NatsQueue::create(
                    client.clone(),
                    &NatsQueueConfig::new(&name, format!("bench.{name}"), "worker"),
                )
                .await
                .map_err(|e| e.to_string())?,
            );
            for chunk in bodies.chunks(1000) {
                let mut acks = Vec::with_capacity(chunk.len());
                for b in chunk {
                    acks.push(
                        js.publish(q.subject().to_owned(), b.clone().into())
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                for a in acks {
                    a.await.map_err(|e| e.to_string())?;
                }
            }
            let stats = client.statistics();
            let before = stats.out_messages.load(Ordering::Relaxed);
            let w = Worker::with_handler(q.clone(), Arc::new(Noop), config.clone());
            let t = Instant::now();
            let run = w.run_until_idle().await.map_err(|e| e.to_string())?;
            let secs = t.elapsed().as_secs_f64();
            let sent = stats.out_messages.load(Ordering::Relaxed) - before;
            if run.messages != n as u64 {
                return Err(format!(
                    "{} of {n} messages received: {run:?}",
                    run.messages
                ));
            }
            let left = q.approximate_len().await.map_err(|e| e.to_string())?;
            if left != 0 {
                return Err(format!("{left} messages left in the stream"));
            }
            js.delete_stream(&name).await.map_err(|e| e.to_string())?;
            eprintln!(
                "NATS round {round}: worker {:.0} msg/s, {:.3} NATS messages sent per message",
                n as f64 / secs,
                sent as f64 / n as f64
            );
            rates.push(n as f64 / secs);
            requests.push(sent as f64 / n as f64);
        }
        Ok((
            median(&mut rates).unwrap_or(0.0),
            median(&mut requests).unwrap_or(0.0),
        ))
    })
}

#[derive(Debug, Clone, Copy)]
struct PerUpload {
    requests: f64,
    original_gets: f64,
    writes: f64,
    redelivery_writes: u64,
    redelivery_requests: f64,
}

/// Where [`requests_per_upload`] stores uploads and variants.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    /// `MemoryStorage`, whose writes send the events themselves.
    Memory,
    /// moto's S3 (`upload_benches::servers::moto`); the bench sends the
    /// event records, as the bucket's notification would.
    Moto,
}

/// Storage requests per upload of [`UPLOADS`] real-size PNGs with the two
/// default variants, on `backend`, the uploads bucket versioned or not;
/// then every event again. Request counts come from `CountingStorage`
/// around each bucket.
fn requests_per_upload(
    backend: Backend,
    versioned: bool,
    moto: Option<&upload_benches::servers::Server>,
) -> Result<PerUpload, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let queue = Arc::new(MemoryQueue::new("events"));
        let (uploads_raw, processed_raw): (Arc<dyn Storage>, Arc<dyn Storage>) = match backend {
            Backend::Memory => {
                let mut uploads = MemoryStorage::new("uploads")
                    .map_err(|e| e.to_string())?
                    .with_events(queue.clone());
                if versioned {
                    uploads = uploads.with_versioning();
                }
                (
                    Arc::new(uploads),
                    Arc::new(MemoryStorage::new("processed").map_err(|e| e.to_string())?),
                )
            }
            Backend::Moto => {
                let server = moto.ok_or("moto is required")?;
                let client = server.s3_client().await;
                let run = std::process::id();
                let v = if versioned { "v" } else { "u" };
                let uploads = S3Storage::new(client.clone(), format!("bw-{run}-{v}-uploads"))
                    .map_err(|e| e.to_string())?;
                let processed = S3Storage::new(client, format!("bw-{run}-{v}-processed"))
                    .map_err(|e| e.to_string())?;
                for b in [&uploads, &processed] {
                    b.create_bucket().await.map_err(|e| e.to_string())?;
                }
                if versioned {
                    uploads.enable_versioning().await.map_err(|e| e.to_string())?;
                }
                (Arc::new(uploads), Arc::new(processed))
            }
        };
        let uploads = Arc::new(CountingStorage::new(uploads_raw.clone()));
        let processed = Arc::new(CountingStorage::new(processed_raw));
        let worker = Worker::new(
            queue.clone(),
            uploads.clone(),
            processed.clone(),
            Arc::new(MemoryScanner::new()),
            Arc::new(StandardCodec::default()),
            Quarantine::new(
                Arc::new(MemoryStorage::new("quarantine").map_err(|e| e.to_string())?),
                "quarantine/",
            ),
            WorkerConfig::new(policy()),
        );
        let mut written = Vec::new();
        for i in 0..UPLOADS {
            let k = ObjectKey::new(format!("uploads/u/{i}.png")).map_err(|e| e.to_string())?;
            let meta = uploads_raw
                .put(
                    &k,
                    png_pattern(1600, 1200, i as u32).into(),
                    PutOptions::default().with_content_type("image/png"),
                )
                .await
                .map_err(|e| e.to_string())?;
            if backend == Backend::Moto {
                queue
                    .send(event(uploads_raw.bucket(), &k, &meta, i as u64 + 1).to_message())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            written.push((k, meta));
        }
        let stats = worker.run_until_idle().await.map_err(|e| e.to_string())?;
        if stats.clean != UPLOADS as u64 {
            return Err(format!("not every upload was processed clean: {stats:?}"));
        }
        let (u, p) = (uploads.counts(), processed.counts());
        let per = |x: u64| x as f64 / UPLOADS as f64;
        let first = PerUpload {
            requests: per(u.total() + p.total()),
            original_gets: per(u.get),
            writes: per(p.writes()),
            redelivery_writes: 0,
            redelivery_requests: 0.0,
        };
        eprintln!(
            "{backend:?}, {}: first delivery of {UPLOADS} uploads: uploads bucket GET {} GetTagging {} PutTagging {} HEAD {}; processed bucket GET {} PUT {} (writes {})",
            if versioned { "versioned" } else { "unversioned" },
            u.get,
            u.get_tags,
            u.put_tags,
            u.head,
            p.get,
            p.put,
            p.writes()
        );

        // Every event again, as at-least-once delivery may.
        uploads.reset();
        processed.reset();
        for (i, (k, meta)) in written.iter().enumerate() {
            queue
                .send(event(uploads_raw.bucket(), k, meta, i as u64 + 1).to_message())
                .await
                .map_err(|e| e.to_string())?;
        }
        let again = worker.run_until_idle().await.map_err(|e| e.to_string())?;
        if again.already_processed != UPLOADS as u64 {
            return Err(format!("redelivery was not recognised: {again:?}"));
        }
        let (u, p) = (uploads.counts(), processed.counts());
        Ok(PerUpload {
            redelivery_writes: u.mutations() + p.mutations(),
            redelivery_requests: per(u.total() + p.total()),
            ..first
        })
    })
}

/// The `ObjectCreated:Put` record S3 sends for `meta` (its version ID
/// included), with sequencer `seq`.
fn event(bucket: &str, key: &ObjectKey, meta: &ObjectMeta, seq: u64) -> S3EventRecord {
    let mut rec = S3EventRecord::new(
        "us-east-1",
        bucket,
        key,
        "ObjectCreated:Put",
        Some(meta.size),
        Some(&meta.etag),
        &format!("{seq:016X}"),
    );
    rec.s3.object.version_id = meta.version_id.clone();
    rec
}

/// Where the bench's webhook deliveries go.
#[derive(Clone, Copy, PartialEq)]
enum Receiver {
    /// No notifier at all.
    None,
    /// A receiver answering 204 at once.
    Up,
    /// A closed port.
    Down,
}

/// A minimal HTTP/1.1 receiver answering every request 204 (keep-alive).
async fn answer_204(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut conn = BufReader::new(conn);
            loop {
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    match conn.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if conn.read_exact(&mut body).await.is_err() {
                    return;
                }
                let reply = b"HTTP/1.1 204 No Content\r\n\r\n";
                if conn.get_mut().write_all(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Uploads per second through the worker (a 2-thread runtime), with the
/// webhook outbox and deliverer of `receiver`; and the outbox length after
/// the run.
fn uploads_per_sec(receiver: Receiver) -> (f64, usize) {
    use upload_pipeline::notify::{
        CancellationToken, DeliveryConfig, WebhookDeliverer, WebhookNotifier, WebhookSecret,
        WebhookSigner,
    };
    const N: usize = 2000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let queue = Arc::new(MemoryQueue::new("events"));
        let uploads = Arc::new(
            MemoryStorage::new("uploads")
                .expect("bucket")
                .with_events(queue.clone()),
        );
        let mut worker = Worker::new(
            queue.clone(),
            uploads.clone(),
            Arc::new(MemoryStorage::new("processed").expect("bucket")),
            Arc::new(MemoryScanner::new()),
            Arc::new(StandardCodec::default()),
            Quarantine::new(
                Arc::new(MemoryStorage::new("quarantine").expect("bucket")),
                "quarantine/",
            ),
            WorkerConfig::new(policy()).with_max_in_flight(16),
        );
        let outbox = Arc::new(MemoryQueue::new("webhooks"));
        let stop = CancellationToken::new();
        if receiver != Receiver::None {
            worker = worker.with_notifier(Arc::new(WebhookNotifier::new(outbox.clone())));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("port");
            let url = format!("http://{}/webhooks", listener.local_addr().expect("addr"));
            if receiver == Receiver::Up {
                tokio::spawn(answer_204(listener));
            } else {
                // Nothing listens there: every delivery is refused.
                drop(listener);
            }
            let deliverer = WebhookDeliverer::new(
                outbox.clone(),
                WebhookSigner::new(WebhookSecret::generate()),
                DeliveryConfig::new(url).with_wait(Duration::from_millis(50)),
            )
            .expect("deliverer");
            let stop = stop.clone();
            tokio::spawn(async move { deliverer.run(stop).await });
        }
        let pdf = upload_core::Bytes::from_static(
            b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
        );
        for i in 0..N {
            let k = ObjectKey::new(format!("uploads/u/{i}.pdf")).expect("key");
            uploads
                .put(
                    &k,
                    pdf.clone(),
                    PutOptions::default().with_content_type("application/pdf"),
                )
                .await
                .expect("put");
        }
        let t = Instant::now();
        let stats = worker.run_until_idle().await.expect("run");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(stats.clean, N as u64, "{stats:?}");
        stop.cancel();
        (N as f64 / secs, outbox.len())
    })
}

fn main() -> ExitCode {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of messages"))
        .unwrap_or(200_000);
    eprintln!("bench-worker: {n} messages x {ROUNDS} rounds, one core (current-thread runtime)");
    let (ours, naive) = loop_overhead(n);
    eprintln!("median: worker {ours:.0} msg/s, hand-written loop {naive:.0} msg/s");
    let (queue_ours, queue_naive) = queue_requests(10_000);
    eprintln!(
        "queue requests per message: worker {queue_ours:.3}, hand-written loop {queue_naive:.3}"
    );
    let tmp = std::env::temp_dir().join(format!("bench-worker-{}", std::process::id()));
    let disk_dir = tmp.join("disk-queue");
    std::fs::create_dir_all(&disk_dir).expect("temporary directory");
    let disk_n = (n / 100).max(1000);
    let (disk_rate, disk_requests) = disk_queue_loop(disk_n, &disk_dir);
    eprintln!(
        "disk queue, {disk_n} messages: worker {disk_rate:.0} msg/s, {disk_requests:.3} queue requests per message"
    );
    let memory_ops = queue_ops_per_sec(&MemoryQueue::new("ops"), 100_000);
    let disk_ops = queue_ops_per_sec(disk_queue(&disk_dir, 0).as_ref(), disk_n);
    eprintln!(
        "raw queue ops/s (send, receive, delete): MemoryQueue {memory_ops:.0}, DiskQueue {disk_ops:.0}"
    );
    let moto = match upload_benches::servers::moto(&tmp) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bench-worker: moto is needed for the request counts on moto: {e}");
            let _ = std::fs::remove_dir_all(&tmp);
            return ExitCode::FAILURE;
        }
    };
    let mut counts = Vec::new();
    for (backend, versioned) in [
        (Backend::Memory, true),
        (Backend::Memory, false),
        (Backend::Moto, true),
        (Backend::Moto, false),
    ] {
        match requests_per_upload(backend, versioned, Some(&moto)) {
            Ok(per) => counts.push(per),
            Err(e) => {
                eprintln!("bench-worker: requests per upload on {backend:?}: {e}");
                drop(moto);
                let _ = std::fs::remove_dir_all(&tmp);
                return ExitCode::FAILURE;
            }
        }
    }
    drop(moto);
    let nats = match upload_benches::servers::nats(&tmp)
        .and_then(|server| nats_round(&server, n.min(NATS_MESSAGES)))
    {
        Ok(got) => got,
        Err(e) => {
            eprintln!("bench-worker: the NATS round: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let [per, unversioned, moto_v, moto_u] = [counts[0], counts[1], counts[2], counts[3]];
    let (mut none, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept = 0;
    for _ in 0..ROUNDS {
        none.push(uploads_per_sec(Receiver::None).0);
        up.push(uploads_per_sec(Receiver::Up).0);
        let (rate, outbox) = uploads_per_sec(Receiver::Down);
        down.push(rate);
        kept = outbox;
    }
    let [none, up, down] = [none, up, down].map(|mut v| median(&mut v).unwrap_or(0.0));
    println!(
        "uploads/s (2,000 small PDFs, 2 threads, medians of {ROUNDS}): webhook receiver up {up:.0}, down {down:.0} ({kept} outcomes kept in the outbox); no notifier {none:.0}"
    );
    println!(
        "worker loop: {ours:.0} messages/s on one core (goal >= 50000); hand-written receive/parse/delete loop {naive:.0}/s"
    );
    println!(
        "queue requests per message: worker {queue_ours:.3} (receive 10, DeleteMessageBatch 10), hand-written loop {queue_naive:.3}"
    );
    println!(
        "disk queue (redb, fsync per commit): worker {disk_rate:.0} messages/s on one core over {disk_n} messages, {disk_requests:.3} queue requests per message; raw send+receive+delete: {disk_ops:.0} ops/s (MemoryQueue {memory_ops:.0} ops/s)"
    );
    println!(
        "worker loop on NATS JetStream: {:.0} messages/s on one core, {:.3} NATS messages sent per message (pull requests, acks)",
        nats.0, nats.1
    );
    for (name, p) in [
        ("memory, versioned", per),
        ("memory, unversioned", unversioned),
        ("moto, versioned", moto_v),
        ("moto, unversioned", moto_u),
    ] {
        println!(
            "per upload (2 variants, {name}): {:.2} storage requests, {:.2} GET of the original, {:.2} writes to the processed bucket; redelivery: {:.2} requests, {} writes",
            p.requests, p.original_gets, p.writes, p.redelivery_requests, p.redelivery_writes
        );
    }
    println!(
        "RESULT messages_per_sec={ours:.0} requests_per_upload={:.2} requests_on_redelivery={:.2} writes_on_redelivery={} requests_per_upload_unversioned={:.2} moto_requests_per_upload={:.2} moto_requests_on_redelivery={:.2} moto_requests_per_upload_unversioned={:.2} original_gets_per_upload={:.2} writes_per_upload={:.2} ratio_vs_hand_written_loop={:.2} queue_requests_per_message={queue_ours:.3} notify_receiver_down_ratio={:.2} notify_cost_ratio={:.2} peak_rss_mb={:.1} disk_queue_msgs_per_sec={disk_rate:.0} disk_queue_requests_per_message={disk_requests:.3} memory_queue_ops_per_sec={memory_ops:.0} disk_queue_ops_per_sec={disk_ops:.0} nats_msgs_per_sec={:.0} nats_requests_per_message={:.3}",
        per.requests,
        per.redelivery_requests,
        per.redelivery_writes
            + unversioned.redelivery_writes
            + moto_v.redelivery_writes
            + moto_u.redelivery_writes,
        unversioned.requests,
        moto_v.requests,
        moto_v.redelivery_requests,
        moto_u.requests,
        per.original_gets,
        per.writes,
        ours / naive,
        down / up,
        up / none,
        peak_rss_mb().unwrap_or(0.0),
        nats.0,
        nats.1
    );
    ExitCode::SUCCESS
}
