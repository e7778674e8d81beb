//! The Lambda handler (`upload_pipeline::lambda`) on in-memory parts: real
//! S3 event bodies (the memory bucket's own notifications) in SQS event
//! batches, and the `batchItemFailures` each batch answers with.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{World, sample, world};
use upload_core::S3EventRecord;
use upload_pipeline::lambda::{SqsEvent, handle_sqs_event};
use upload_pipeline::{
    Error, Handled, MemoryQueue, Outcome, Queue, ReceiveOptions, RecordHandler, StandardCodec,
    UploadProcessor, Worker, WorkerConfig,
};
use upload_scan::{EICAR_SIGNATURE, MemoryScanner, Quarantine, eicar};

/// An SQS-triggered invocation's payload, as Lambda sends it, with one
/// record per `(message_id, body)`.
fn sqs_event(messages: &[(&str, &str)]) -> SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("AQEB{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1733328000000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1733328000001"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads-events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SqsEvent")
}

/// The bodies of the S3 events now on the world's queue (received, so in
/// flight: what Lambda's poller would have taken).
async fn take_events(w: &World) -> Vec<String> {
    let got = w
        .queue
        .receive(&ReceiveOptions::default().with_max_messages(10))
        .await
        .unwrap();
    got.into_iter().map(|m| m.body).collect()
}

fn failures(r: &upload_pipeline::lambda::SqsBatchResponse) -> Vec<&str> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

/// Fails every record whose key is under `locked/` as storage that
/// refuses access would; hands the rest to the real processor.
#[derive(Debug)]
struct LockedPrefix(UploadProcessor);

#[async_trait]
impl RecordHandler for LockedPrefix {
    async fn handle(&self, record: &S3EventRecord) -> upload_pipeline::Result<Handled> {
        if record
            .key()
            .is_ok_and(|k| k.as_str().starts_with("locked/"))
        {
            return Err(Error::Storage(upload_core::Error::AccessDenied {
                bucket: record.s3.bucket.name.clone(),
                key: record.s3.object.key.clone(),
                reason: "GetObject: AccessDenied: explicit deny in a bucket policy".into(),
            }));
        }
        self.0.handle(record).await
    }
}

#[tokio::test]
async fn one_failing_message_is_reported_alone_and_nothing_is_deleted() {
    let scanner = Arc::new(MemoryScanner::new());
    let base = world(scanner.clone());
    let processor = UploadProcessor::new(
        base.uploads.clone(),
        base.processed.clone(),
        scanner,
        Arc::new(StandardCodec::default()),
        Quarantine::new(base.quarantine.clone(), "quarantine/"),
        base.worker.config(),
    );
    let w = World {
        worker: Worker::with_handler(
            base.queue.clone(),
            Arc::new(LockedPrefix(processor)),
            base.worker.config().clone(),
        ),
        ..base
    };
    let photo = w
        .upload(
            "uploads/u/photo.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    let infected = w.upload("uploads/u/eicar.jpg", eicar(), "image/jpeg").await;
    w.upload(
        "locked/u/other.jpg",
        sample("testdata/hopper.jpg"),
        "image/jpeg",
    )
    .await;
    let bodies = take_events(&w).await;
    assert_eq!(bodies.len(), 3);
    let ids = ["m-photo", "m-eicar", "m-locked"];
    let event = sqs_event(&[
        (ids[0], &bodies[0]),
        (ids[1], &bodies[1]),
        (ids[2], &bodies[2]),
    ]);

    let response = handle_sqs_event(&w.worker, event).await;
    assert_eq!(failures(&response), ["m-locked"]);
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m-locked"}]}),
        "the shape Lambda reads"
    );
    let m = w.manifest(&photo).await;
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.variants.len(), 2);
    let m = w.manifest(&infected).await;
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(m.signature.as_deref(), Some(EICAR_SIGNATURE));
    assert_eq!(
        w.queue.in_flight(),
        3,
        "the handler deletes nothing itself (the quarantine move's ObjectRemoved event is new)"
    );
    let stats = w.worker.health().snapshot().stats;
    assert_eq!(
        (stats.messages, stats.clean, stats.infected, stats.failed),
        (3, 1, 1, 1)
    );

    // Lambda redelivers the whole batch (say, after a timeout): the done
    // ones write nothing new.
    let before = w.processed.len();
    let again = sqs_event(&[(ids[0], &bodies[0]), (ids[1], &bodies[1])]);
    let response = handle_sqs_event(&w.worker, again).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(w.processed.len(), before, "no new objects");
    assert_eq!(
        w.worker.health().snapshot().stats.already_processed,
        2,
        "both found done"
    );
}

#[tokio::test]
async fn scanner_down_fails_every_upload_but_not_the_test_event() {
    let scanner = Arc::new(MemoryScanner::new());
    let w = world(scanner.clone());
    w.upload(
        "uploads/u/a.jpg",
        sample("testdata/hopper.jpg"),
        "image/jpeg",
    )
    .await;
    w.upload(
        "uploads/u/b.pdf",
        sample("photos/exiftool_PDF.pdf"),
        "application/pdf",
    )
    .await;
    let bodies = take_events(&w).await;
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-12-04T16:00:00.000Z","Bucket":"uploads","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE="}"#;
    scanner.set_available(false);
    let response = handle_sqs_event(
        &w.worker,
        sqs_event(&[("a", &bodies[0]), ("t", test_event), ("b", &bodies[1])]),
    )
    .await;
    assert_eq!(failures(&response), ["a", "b"], "in the batch's order");
    assert!(w.processed.is_empty() && w.quarantine.is_empty());

    scanner.set_available(true);
    let response = handle_sqs_event(
        &w.worker,
        sqs_event(&[("a", &bodies[0]), ("b", &bodies[1])]),
    )
    .await;
    assert!(failures(&response).is_empty(), "{response:?}");
    let s = w.worker.health().snapshot().stats;
    assert_eq!((s.failed, s.clean, s.test_events), (2, 2, 1));
}

#[tokio::test]
async fn malformed_bodies_follow_the_run_loop() {
    // Without a dead-letter queue on the worker: reported failed, so the
    // queue's redrive policy dead-letters it.
    let w = world(Arc::new(MemoryScanner::new()));
    let response = handle_sqs_event(
        &w.worker,
        sqs_event(&[("bad", "{not json"), ("empty", r#"{"Records":[]}"#)]),
    )
    .await;
    assert_eq!(failures(&response), ["bad"]);

    // With one: moved there at once, body unchanged, and reported done.
    let dlq = Arc::new(MemoryQueue::new("worker-dlq"));
    let worker = w.worker.clone().with_dead_letter_queue(dlq.clone());
    let response = handle_sqs_event(&worker, sqs_event(&[("bad", "{not json")])).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    let moved = dlq.receive(&ReceiveOptions::default()).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].body, "{not json");
    let s = worker.health().snapshot().stats;
    assert_eq!((s.failed, s.dead_lettered, s.messages), (1, 1, 3));
}

#[tokio::test]
async fn a_failure_without_a_message_id_fails_the_whole_batch() {
    let w = world(Arc::new(MemoryScanner::new()));
    let mut event: serde_json::Value =
        serde_json::to_value(sqs_event(&[("x", "{not json")])).unwrap();
    event["Records"][0]
        .as_object_mut()
        .unwrap()
        .remove("messageId");
    let event: SqsEvent = serde_json::from_value(event).unwrap();
    let response = handle_sqs_event(&w.worker, event).await;
    assert_eq!(
        failures(&response),
        [""],
        "an empty identifier: Lambda retries the whole batch"
    );
}

/// Counts the records in progress at once.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait]
impl RecordHandler for Gauge {
    async fn handle(&self, _: &S3EventRecord) -> upload_pipeline::Result<Handled> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(Handled::Skipped)
    }
}

#[tokio::test]
async fn messages_of_a_batch_run_max_in_flight_at_once() {
    let base = world(Arc::new(MemoryScanner::new()));
    for i in 0..7 {
        base.upload(
            &format!("uploads/u/{i}.jpg"),
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    }
    let bodies = take_events(&base).await;
    assert_eq!(bodies.len(), 7);
    let ids: Vec<String> = (0..bodies.len()).map(|i| format!("m{i}")).collect();
    let pairs: Vec<(&str, &str)> = ids
        .iter()
        .zip(&bodies)
        .map(|(i, b)| (i.as_str(), b.as_str()))
        .collect();
    let policy = upload_core::UploadPolicy::images_and_pdf(64 << 20).unwrap();
    let gauge = Arc::new(Gauge::default());
    let worker = Worker::with_handler(
        base.queue.clone(),
        gauge.clone(),
        WorkerConfig::new(policy).with_max_in_flight(3),
    );
    let response = handle_sqs_event(&worker, sqs_event(&pairs)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 3);
    let s = worker.health().snapshot().stats;
    assert_eq!((s.messages, s.skipped), (7, 7));
}
