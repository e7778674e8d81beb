//! The webhook deliverer's outcomes in the Prometheus scrape
//! (`upload_webhook_deliveries_total{outcome}`): a receiver that fails its
//! first request, five notifications and one outbox message that is not a
//! notification. One test in this binary: the recorder is process-wide.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use upload_pipeline::notify::{Backoff, DeliveryConfig};
use upload_pipeline::testkit::metrics::{sample, samples};
use upload_pipeline::testkit::notify::sample_notifications;
use upload_pipeline::{
    MemoryQueue, Notifier, Queue, WebhookDeliverer, WebhookNotifier, WebhookSecret, WebhookSigner,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_are_counted_by_outcome() {
    let handle = upload_pipeline::service::install_prometheus().unwrap();
    let hits = Arc::new(AtomicU32::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let outbox = Arc::new(MemoryQueue::new("outbox"));
    let sent = sample_notifications();
    let notifier = WebhookNotifier::new(outbox.clone());
    for n in &sent {
        notifier.notify(n).await.unwrap();
    }
    outbox.send("not a notification".to_owned()).await.unwrap();
    let config = DeliveryConfig::new(&url)
        .with_concurrency(1)
        .with_visibility_timeout(Duration::from_secs(30))
        .with_backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(20),
        ))
        .with_wait(Duration::from_millis(50));
    let d = WebhookDeliverer::new(
        outbox.clone(),
        WebhookSigner::new(WebhookSecret::generate()),
        config,
    )
    .unwrap();
    let mut delivered = 0;
    for _ in 0..40 {
        delivered += d.deliver_once().await.unwrap().delivered;
        if delivered == sent.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(delivered, sent.len() as u64);

    let s = samples(&handle.render());
    let count = |outcome: &str| {
        sample(
            &s,
            &format!("upload_webhook_deliveries_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(count("delivered"), sent.len() as f64);
    assert_eq!(count("retried"), 1.0);
    // The malformed message is tried once per receive that sees it.
    assert!(count("malformed") >= 1.0);
    assert_eq!(hits.load(Ordering::SeqCst) as usize, sent.len() + 1);
}
