//! The worker's metrics, scraped over HTTP from `GET /metrics` in the
//! Prometheus text format after a run, checked against what the run did:
//! a clean photo, an infected file, a PNG declared as JPEG, a message that
//! is not an S3 event, a notifier failure and its redelivery, and an event
//! 90 seconds old for the queue lag.
//!
//! One test in this binary: the recorder is process-wide.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{sample, world_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use upload_core::{ObjectKey, Storage, UploadPolicy};
use upload_pipeline::notify::MemoryNotifier;
use upload_pipeline::service::{install_prometheus, metrics_router};
use upload_pipeline::testkit::metrics::{sample as get, samples};
use upload_pipeline::{Queue, ReceiveOptions, WorkerConfig};
use upload_scan::{MemoryScanner, eicar};

/// `GET /metrics` over a real connection; the body.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    // Chunked or not: the sample lines are what is parsed.
    body.to_owned()
}

#[tokio::test]
async fn a_scrape_after_a_run_counts_what_happened() {
    let handle = install_prometheus().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, metrics_router(handle)).await });

    let config = WorkerConfig::new(UploadPolicy::images_and_pdf(64 << 20).unwrap())
        .with_retry_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .with_receive(ReceiveOptions::default().with_wait(Duration::ZERO));
    let notifier = Arc::new(MemoryNotifier::new());
    let mut w = world_with(Arc::new(MemoryScanner::new()), config);
    w.worker = w
        .worker
        .with_notifier(notifier.clone())
        .with_dead_letter_queue(w.dlq.clone());

    // An event 90 s old about an object that is not there: the lag.
    let old =
        upload_core::timestamp::rfc3339(std::time::SystemTime::now() - Duration::from_secs(90));
    w.queue
        .send(format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"{old}","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"uploads"}},"object":{{"key":"uploads/u/gone.jpg","size":10,"eTag":"abc"}}}}}}]}}"#
        ))
        .await
        .unwrap();
    let first = w.worker.run_once().await.unwrap();
    assert_eq!((first.messages, first.skipped), (1, 1), "{first:?}");
    let s = samples(&scrape(addr).await);
    let lag = get(&s, "upload_worker_queue_lag_seconds");
    assert!((90.0..150.0).contains(&lag), "lag {lag}");

    let photo = w
        .upload(
            "uploads/u/a.jpg",
            sample("photos/photo_colorfulcups_2560x1600_gps.jpg"),
            "image/jpeg",
        )
        .await;
    let infected = w.upload("uploads/u/e.jpg", eicar(), "image/jpeg").await;
    let png = sample("photos/transparent.png");
    let png_as_jpeg = w.upload("uploads/u/p.jpg", png.clone(), "image/jpeg").await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(
        (stats.clean, stats.infected, stats.rejected, stats.failed),
        (1, 1, 1, 0),
        "{stats:?}"
    );
    // Then a PDF whose first notification fails (the message is retried;
    // its redelivery finds the manifest written and notifies) and a
    // message that is not an S3 event.
    let pdf = bytes::Bytes::from_static(b"%PDF-1.4\n%%EOF\n");
    w.upload("uploads/u/d.pdf", pdf.clone(), "application/pdf")
        .await;
    w.queue
        .send("this is not an S3 event".to_owned())
        .await
        .unwrap();
    notifier.fail_next(1);
    let mut stats = w.worker.run_until_idle().await.unwrap();
    // The failed one is visible again after its backoff (1 ms).
    tokio::time::sleep(Duration::from_millis(50)).await;
    stats.add(&w.worker.run_until_idle().await.unwrap());
    assert_eq!(
        (
            stats.clean,
            stats.already_processed,
            stats.dead_lettered,
            stats.failed,
            stats.retried
        ),
        (0, 1, 1, 1, 1),
        "{stats:?}"
    );

    let m = w.manifest(&photo).await;
    let variants = m.variants.len() as f64;
    assert!(variants >= 1.0);
    let written: u64 = m.variants.iter().map(|v| v.bytes).sum();
    let size = |k: &ObjectKey| {
        let w = &w;
        let k = k.clone();
        async move { w.uploads.head(&k).await.map(|m| m.size).unwrap_or(0) }
    };
    let photo_size = size(&photo).await;
    let png_size = size(&png_as_jpeg).await;
    assert_eq!(png_size, png.len() as u64);
    let eicar_size = eicar().len() as u64;
    assert_eq!(size(&infected).await, 0, "the infected original was moved");

    let s = samples(&scrape(addr).await);
    // 1 old event + 4 uploads + the ObjectRemoved of the infected
    // original (moved to quarantine) + 1 malformed + 1 redelivery.
    assert_eq!(get(&s, "upload_worker_messages_received_total"), 8.0);
    for (outcome, n) in [
        ("processed", 1.0),
        ("already_processed", 1.0),
        ("quarantined", 1.0),
        ("rejected", 1.0),
        // The old event's missing object, the quarantined original's removal.
        ("skipped", 2.0),
        ("dead_lettered", 1.0),
        ("retried", 1.0),
        ("redelivered", 1.0),
    ] {
        assert_eq!(
            get(
                &s,
                &format!("upload_worker_handled_total{{outcome=\"{outcome}\"}}")
            ),
            n,
            "{outcome}"
        );
    }
    assert_eq!(
        get(&s, "upload_worker_quarantined_total{verdict=\"infected\"}"),
        1.0
    );
    assert!(!s.contains_key("upload_worker_quarantined_total{verdict=\"unscannable\"}"));
    // The PDF's redelivery finds its manifest: no second download or scan.
    let count = |stage: &str| {
        get(
            &s,
            &format!("upload_worker_stage_duration_seconds_count{{stage=\"{stage}\"}}"),
        )
    };
    assert_eq!(count("download"), 4.0);
    assert_eq!(count("sniff"), 4.0);
    assert_eq!(count("scan"), 4.0);
    assert_eq!(count("decode"), 1.0);
    assert_eq!(count("encode"), variants);
    assert_eq!(count("upload"), variants);
    // Histograms, with the documented buckets.
    assert_eq!(
        get(
            &s,
            "upload_worker_stage_duration_seconds_bucket{stage=\"scan\",le=\"+Inf\"}"
        ),
        4.0
    );
    assert!(s.contains_key(
        "upload_worker_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.001\"}"
    ));
    assert!(
        get(
            &s,
            "upload_worker_stage_duration_seconds_sum{stage=\"decode\"}"
        ) > 0.0
    );
    assert_eq!(
        get(&s, "upload_worker_bytes_read_total"),
        (photo_size + png_size + eicar_size + pdf.len() as u64) as f64
    );
    assert_eq!(get(&s, "upload_worker_bytes_written_total"), written as f64);
    assert_eq!(get(&s, "upload_worker_in_flight"), 0.0);
    // The last receive found nothing: no lag.
    assert_eq!(get(&s, "upload_worker_queue_lag_seconds"), 0.0);
    // 4 outcomes delivered, 1 failure before its redelivery.
    assert_eq!(
        get(
            &s,
            "upload_worker_notifications_total{outcome=\"delivered\"}"
        ),
        4.0
    );
    assert_eq!(
        get(&s, "upload_worker_notifications_total{outcome=\"failed\"}"),
        1.0
    );
    assert_eq!(notifier.notifications().len(), 4);
}
