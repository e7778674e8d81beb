//! `SqsQueue` against moto's SQS: the Queue conformance suite, the redrive
//! to a dead-letter queue, and a bucket wired to send its events to a
//! queue.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto, sets
//! `UPLOAD_SDK_MOTO_ENDPOINT` and runs them. Without it they fail, never
//! skip.

use std::time::Duration;

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_core::{Bytes, EventMessage, ObjectKey, PutOptions, Storage, parse_event_message};
use upload_pipeline::sqs::aws_sdk_sqs::types::QueueAttributeName;
use upload_pipeline::sqs::{
    NotificationFilter, QueueSettings, SqsQueue, connect_bucket_to_queue,
    create_queue_with_dead_letter_queue, sqs_client,
};
use upload_pipeline::testkit::queue as suite;
use upload_pipeline::{Error, Queue, ReceiveOptions};

fn settings() -> AwsSettings {
    let endpoint = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT")
        .expect("UPLOAD_SDK_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto");
    AwsSettings::local(endpoint)
}

async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn queue(settings: QueueSettings) -> SqsQueue {
    SqsQueue::create(
        sqs_client(&self::settings(), &sdk().await),
        &unique("suite"),
        &settings,
    )
    .await
    .expect("create queue on moto")
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn sqs_queue_passes_the_queue_suite() {
    let q = queue(QueueSettings::default()).await;
    suite::send_receive_delete(&q).await;
    suite::redelivery_after_visibility_timeout(&q).await;
    suite::change_visibility(&q).await;
    suite::delete_batch_reports_each(&q).await;
    suite::long_poll_returns_early(&q).await;
    suite::refusals(&q).await;
    // Left out: stale_handle_cannot_change_visibility. moto 5.1 lets an
    // earlier delivery's receipt handle change the visibility of the
    // current one, where SQS answers MessageNotInflight.
    assert_eq!(
        q.approximate_len().await.unwrap(),
        0,
        "the suite leaves the queue empty"
    );
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn redrive_moves_a_poison_message_to_the_dead_letter_queue() {
    let client = sqs_client(&settings(), &sdk().await);
    let (q, dlq) = create_queue_with_dead_letter_queue(
        client,
        &unique("redrive"),
        QueueSettings::default().with_visibility_timeout(Duration::from_secs(30)),
        2,
    )
    .await
    .expect("queues");
    assert!(dlq.url().ends_with("-dlq"), "{}", dlq.url());
    suite::dead_letter_after_max_receives(&q, &dlq, 2).await;
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn bad_queue_urls_and_settings_have_typed_errors() {
    let client = sqs_client(&settings(), &sdk().await);
    let missing = SqsQueue::new(
        client.clone(),
        format!(
            "{}/123456789012/no-such-queue-{}",
            settings().endpoint_url.unwrap(),
            unique("x")
        ),
    );
    let err = missing.send("x".into()).await.expect_err("no such queue");
    assert!(
        matches!(err, Error::Sqs { ref code, .. } if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist")),
        "{err:?}"
    );
    let err = SqsQueue::create(
        client,
        "bad",
        &QueueSettings::default().with_redrive("arn", 1001),
    )
    .await
    .expect_err("maxReceiveCount over 1000");
    assert!(
        matches!(
            err,
            Error::InvalidQueueParameter {
                name: "max_receive_count",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn a_wired_bucket_sends_its_object_events_to_the_queue() {
    let settings = settings();
    let sdk = sdk().await;
    let bucket = S3Storage::new(settings.s3_client(&sdk), unique("wired")).unwrap();
    bucket.create_bucket().await.unwrap();
    let q = queue(QueueSettings::default()).await;
    let filter = NotificationFilter::default().with_prefix("uploads/");
    connect_bucket_to_queue(&bucket, &q, &filter)
        .await
        .expect("wire");
    // Running it again replaces our configuration instead of adding a second.
    connect_bucket_to_queue(&bucket, &q, &filter)
        .await
        .expect("wire again");
    let cfg = bucket
        .client()
        .get_bucket_notification_configuration()
        .bucket(Storage::bucket(&bucket))
        .send()
        .await
        .unwrap();
    assert_eq!(cfg.queue_configurations().len(), 1);
    let policy = q
        .attribute(QueueAttributeName::Policy)
        .await
        .unwrap()
        .expect("a queue policy");
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(
        statements.len(),
        1,
        "one statement after two runs: {policy}"
    );
    assert_eq!(statements[0]["Principal"]["Service"], "s3.amazonaws.com");
    assert_eq!(
        statements[0]["Condition"]["ArnLike"]["aws:SourceArn"],
        format!("arn:aws:s3:::{}", Storage::bucket(&bucket))
    );

    let key = ObjectKey::new("uploads/user 1/a+b ✓.jpg").unwrap();
    bucket
        .put(
            &key,
            Bytes::from_static(b"\xFF\xD8\xFF"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    bucket
        .put(
            &ObjectKey::new("variants/not-watched.webp").unwrap(),
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    bucket.delete(&key).await.unwrap();

    let mut created = Vec::new();
    let mut removed = Vec::new();
    let mut tests = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && (created.is_empty() || removed.is_empty()) {
        let got = q
            .receive(&ReceiveOptions::default().with_wait(Duration::from_secs(2)))
            .await
            .unwrap();
        for m in got {
            match parse_event_message(&m.body).expect("a valid event message") {
                EventMessage::Test(_) => tests += 1,
                EventMessage::Records(rs) => {
                    for r in rs {
                        let k = r.key().expect("decodable key");
                        if r.is_object_created() {
                            created.push(k);
                        } else if r.is_object_removed() {
                            removed.push(k);
                        }
                    }
                }
            }
            q.delete(&m.receipt_handle).await.unwrap();
        }
    }
    assert!(tests >= 1, "configuring notifications sends s3:TestEvent");
    assert_eq!(
        created,
        std::slice::from_ref(&key),
        "one ObjectCreated, key decoded exactly once, prefix filter applied"
    );
    assert_eq!(removed, [key], "one ObjectRemoved");
}
