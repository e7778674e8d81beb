//! Webhook delivery against real axum receivers on 127.0.0.1: failing,
//! timing out, slow, always failing (dead-letter) and down. Every request
//! is checked with `WebhookVerifier` on arrival.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use upload_core::ObjectKey;
use upload_pipeline::notify::{Backoff, CancellationToken, DeliveryConfig, DeliveryStats};
use upload_pipeline::testkit::notify::sample_notifications;
use upload_pipeline::{
    MemoryQueue, Notifier, Queue, UploadContext, UploadNotification, WebhookDeliverer,
    WebhookNotifier, WebhookSecret, WebhookSigner, WebhookVerifier,
};

/// How a receiver answers its `n`-th request (1-based).
#[derive(Clone, Copy)]
enum Mode {
    /// 500 for the first `n` requests, then 200.
    FailFirst(u32),
    /// Sleeps `d` before answering the first `n` requests, then 200 at once.
    SleepFirst(u32, Duration),
    /// Sleeps `d` before every 200.
    Slow(Duration),
    /// Always 500.
    AlwaysFail,
}

#[derive(Debug, Clone)]
struct Hit {
    id: String,
    verified: bool,
    body: String,
    ok: bool,
}

#[derive(Clone)]
struct Receiver {
    mode: Mode,
    verifier: WebhookVerifier,
    count: Arc<AtomicU32>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    fn delivered_ids(&self) -> Vec<String> {
        self.hits()
            .into_iter()
            .filter(|h| h.ok)
            .map(|h| h.id)
            .collect()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.count.fetch_add(1, Ordering::SeqCst) + 1;
    let verified = r.verifier.verify(&headers, &body);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let hit = |ok| Hit {
        id: id.clone(),
        verified: verified.as_deref() == Ok(id.as_str()),
        body: String::from_utf8_lossy(&body).into_owned(),
        ok,
    };
    let ok = match r.mode {
        Mode::FailFirst(k) => n > k,
        Mode::SleepFirst(k, d) if n <= k => {
            // Recorded on arrival, as failed: the deliverer gives up before
            // the answer (and hyper then drops this handler).
            r.hits.lock().unwrap().push(hit(false));
            tokio::time::sleep(d).await;
            return StatusCode::NO_CONTENT;
        }
        Mode::SleepFirst(..) => true,
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            true
        }
        Mode::AlwaysFail => false,
    };
    r.hits.lock().unwrap().push(hit(ok));
    if ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Starts a receiver on `addr` (port 0: any free port); returns its URL.
async fn serve(mode: Mode, secret: &WebhookSecret, addr: SocketAddr) -> (Receiver, String) {
    let r = Receiver {
        mode,
        verifier: WebhookVerifier::from_whsec(&secret.to_whsec()).unwrap(),
        count: Arc::default(),
        hits: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(url: &str) -> DeliveryConfig {
    DeliveryConfig::new(url)
        .with_concurrency(4)
        .with_request_timeout(Duration::from_millis(500))
        .with_visibility_timeout(Duration::from_secs(2))
        .with_backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(80),
        ))
        .with_wait(Duration::from_millis(300))
}

/// Runs `deliver_once` until the outbox is empty (at most 40 rounds).
async fn drain(d: &WebhookDeliverer<MemoryQueue>) -> DeliveryStats {
    let mut total = DeliveryStats::default();
    for _ in 0..40 {
        if d.outbox().is_empty() {
            break;
        }
        total.add(&d.deliver_once().await.unwrap());
    }
    assert!(d.outbox().is_empty(), "outbox drained: {total:?}");
    total
}

fn many(n: usize) -> Vec<UploadNotification> {
    (0..n)
        .map(|i| {
            UploadNotification::removed(
                "uploads",
                ObjectKey::new(format!("uploads/w/{i}")).unwrap(),
                None,
                UploadContext::default(),
            )
        })
        .collect()
}

async fn enqueue(outbox: &Arc<MemoryQueue>, sent: &[UploadNotification]) {
    let notifier = WebhookNotifier::new(outbox.clone());
    for n in sent {
        notifier.notify(n).await.unwrap();
    }
}

/// Every hit verified, every delivered body one of `sent` under its own
/// ID, each of `sent` delivered exactly once, every failed attempt's ID
/// delivered later (a retry carries the same `webhook-id`).
fn assert_all_arrived(r: &Receiver, sent: &[UploadNotification]) {
    let hits = r.hits();
    let by_id: BTreeMap<String, &UploadNotification> = sent.iter().map(|n| (n.id(), n)).collect();
    for h in &hits {
        assert!(h.verified, "signature verified: {h:?}");
        let parsed = UploadNotification::from_json(&h.body).unwrap();
        assert_eq!(parsed.id(), h.id, "webhook-id is the notification ID");
        assert_eq!(Some(&&parsed), by_id.get(&h.id), "intact body");
    }
    let mut delivered = r.delivered_ids();
    delivered.sort();
    let expected: Vec<String> = by_id.keys().cloned().collect();
    assert_eq!(delivered, expected, "each delivered once");
    let delivered: BTreeSet<_> = delivered.into_iter().collect();
    for h in hits.iter().filter(|h| !h.ok) {
        assert!(delivered.contains(&h.id), "retried under the same ID");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_every_event_after_retries() {
    let secret = WebhookSecret::generate();
    let (r, url) = serve(Mode::FailFirst(3), &secret, local()).await;
    let outbox = Arc::new(MemoryQueue::new("outbox"));
    let sent = sample_notifications();
    enqueue(&outbox, &sent).await;
    let d =
        WebhookDeliverer::new(outbox.clone(), WebhookSigner::new(secret), config(&url)).unwrap();
    let stats = drain(&d).await;
    assert_eq!(stats.delivered, 5);
    assert_eq!(stats.retried, 3);
    assert_eq!(r.hits().len(), 8);
    assert_eq!(r.hits().iter().filter(|h| !h.ok).count(), 3);
    assert_all_arrived(&r, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_times_out_is_retried() {
    let secret = WebhookSecret::generate();
    let (r, url) = serve(
        Mode::SleepFirst(1, Duration::from_secs(2)),
        &secret,
        local(),
    )
    .await;
    let outbox = Arc::new(MemoryQueue::new("outbox"));
    let sent = many(3);
    enqueue(&outbox, &sent).await;
    let d = WebhookDeliverer::new(
        outbox.clone(),
        WebhookSigner::new(secret),
        config(&url).with_concurrency(1),
    )
    .unwrap();
    let stats = drain(&d).await;
    assert_eq!(stats.delivered, 3);
    assert_eq!(stats.retried, 1, "the request past the timeout");
    let timed_out: Vec<_> = r.hits().into_iter().filter(|h| !h.ok).collect();
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0].id, sent[0].id(), "the first in order");
    assert_all_arrived(&r, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_within_the_timeout_gets_each_event_once() {
    let secret = WebhookSecret::generate();
    let (r, url) = serve(Mode::Slow(Duration::from_millis(150)), &secret, local()).await;
    let outbox = Arc::new(MemoryQueue::new("outbox"));
    let sent = many(8);
    enqueue(&outbox, &sent).await;
    // A timeout far above the 150 ms answers: no retry even on a loaded
    // machine.
    let d = WebhookDeliverer::new(
        outbox.clone(),
        WebhookSigner::new(secret),
        config(&url)
            .with_request_timeout(Duration::from_secs(2))
            .with_visibility_timeout(Duration::from_secs(4)),
    )
    .unwrap();
    let stats = drain(&d).await;
    assert_eq!(
        stats,
        DeliveryStats {
            delivered: 8,
            retried: 0,
            malformed: 0
        }
    );
    assert_eq!(r.hits().len(), 8, "no duplicates");
    assert_all_arrived(&r, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_max_receives_the_outbox_dead_letters_the_event() {
    let secret = WebhookSecret::generate();
    let (r, url) = serve(Mode::AlwaysFail, &secret, local()).await;
    let dlq = Arc::new(MemoryQueue::new("outbox-dlq"));
    let outbox = Arc::new(
        MemoryQueue::new("outbox")
            .with_dead_letter_queue(3, dlq.clone())
            .unwrap(),
    );
    let sent = many(1);
    enqueue(&outbox, &sent).await;
    let d =
        WebhookDeliverer::new(outbox.clone(), WebhookSigner::new(secret), config(&url)).unwrap();
    let mut total = DeliveryStats::default();
    for _ in 0..20 {
        if !dlq.is_empty() {
            break;
        }
        total.add(&d.deliver_once().await.unwrap());
    }
    assert_eq!(dlq.len(), 1, "dead-lettered: {total:?}");
    assert!(outbox.is_empty());
    assert_eq!((total.delivered, total.retried), (0, 3));
    let hits = r.hits();
    assert_eq!(hits.len(), 3, "three attempts, the redrive's maximum");
    assert!(hits.iter().all(|h| h.verified && h.id == sent[0].id()));
    let dead = dlq
        .receive(&upload_pipeline::ReceiveOptions::default().with_wait(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        UploadNotification::from_json(&dead[0].body).unwrap(),
        sent[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_only_enqueues_while_the_receiver_is_down() {
    let secret = WebhookSecret::generate();
    // A port nobody listens on (yet).
    let addr = std::net::TcpListener::bind(local())
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/hook");
    let outbox = Arc::new(MemoryQueue::new("outbox"));
    let sent = sample_notifications();
    enqueue(&outbox, &sent).await;
    assert_eq!(outbox.len(), 5, "accepted into the outbox");
    assert_eq!(outbox.in_flight(), 0, "nothing read from it: no HTTP yet");

    let d = WebhookDeliverer::new(
        outbox.clone(),
        WebhookSigner::new(secret.clone()),
        config(&url).with_concurrency(10),
    )
    .unwrap();
    let down = d.deliver_once().await.unwrap();
    assert_eq!((down.delivered, down.retried), (0, 5), "connection refused");
    assert_eq!(outbox.len(), 5, "nothing lost");

    let (r, _) = serve(Mode::FailFirst(0), &secret, addr).await;
    let stats = drain(&d).await;
    assert_eq!(stats.delivered, 5);
    assert_all_arrived(&r, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_until_shut_down() {
    let secret = WebhookSecret::generate();
    let (r, url) = serve(Mode::FailFirst(1), &secret, local()).await;
    let outbox = Arc::new(MemoryQueue::new("outbox"));
    let d = Arc::new(
        WebhookDeliverer::new(outbox.clone(), WebhookSigner::new(secret), config(&url)).unwrap(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (d, stop) = (d.clone(), stop.clone());
        async move { d.run(stop).await }
    });
    let sent = many(4);
    enqueue(&outbox, &sent).await;
    for _ in 0..100 {
        if r.delivered_ids().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let stats = task.await.unwrap();
    assert_eq!((stats.delivered, stats.retried), (4, 1));
    assert!(outbox.is_empty());
    assert_all_arrived(&r, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_a_notification_is_never_posted_and_dead_lettered() {
    let secret = WebhookSecret::generate();
    let (r, url) = serve(Mode::FailFirst(0), &secret, local()).await;
    let dlq = Arc::new(MemoryQueue::new("outbox-dlq"));
    let outbox = Arc::new(
        MemoryQueue::new("outbox")
            .with_dead_letter_queue(1, dlq.clone())
            .unwrap(),
    );
    outbox.send("not a notification".into()).await.unwrap();
    let d =
        WebhookDeliverer::new(outbox.clone(), WebhookSigner::new(secret), config(&url)).unwrap();
    let first = d.deliver_once().await.unwrap();
    assert_eq!(
        first,
        DeliveryStats {
            delivered: 0,
            retried: 0,
            malformed: 1
        }
    );
    // Rescheduled with the longest backoff (80 ms), then redriven.
    let second = d.deliver_once().await.unwrap();
    assert_eq!(second, DeliveryStats::default());
    assert_eq!((outbox.len(), dlq.len()), (0, 1));
    assert!(r.hits().is_empty(), "never posted");
}
