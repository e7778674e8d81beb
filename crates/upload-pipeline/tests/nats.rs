//! `NatsQueue` against a real nats-server with JetStream: the Queue
//! conformance suite (all of it, the stale-handle check included), the
//! redrive to a dead-letter stream, typed errors, and the JetStream
//! behaviour that makes the queue keep its own delivery table.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts nats-server
//! (scripts/nats.sh), sets `UPLOAD_SDK_NATS_URL` and runs them. Without it
//! they fail, never skip.

use std::time::Duration;

use futures::StreamExt as _;
use upload_pipeline::nats::async_nats::jetstream::{self, consumer, message::AckKind, stream};
use upload_pipeline::nats::{NatsQueue, NatsQueueConfig, async_nats};
use upload_pipeline::testkit::queue as suite;
use upload_pipeline::{Error, Queue, ReceiveOptions};

fn url() -> String {
    std::env::var("UPLOAD_SDK_NATS_URL")
        .expect("UPLOAD_SDK_NATS_URL is not set: run scripts/test.sh, which starts nats-server")
}

async fn client() -> async_nats::Client {
    async_nats::connect(url())
        .await
        .expect("connect to nats-server")
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A config on fresh stream, subject and consumer names.
fn config() -> NatsQueueConfig {
    let name = unique("suite");
    NatsQueueConfig::new(name.to_uppercase(), format!("uploads.{name}"), "worker")
}

#[tokio::test]
#[ignore = "needs nats-server: run scripts/test.sh"]
async fn nats_queue_passes_the_queue_suite() {
    let q = NatsQueue::create(client().await, &config()).await.unwrap();
    assert_eq!(q.visibility_timeout(), Duration::from_secs(30));
    suite::run_all(&q).await;
    assert_eq!(
        q.approximate_len().await.unwrap(),
        0,
        "the suite leaves the stream empty (work-queue retention)"
    );
}

#[tokio::test]
#[ignore = "needs nats-server: run scripts/test.sh"]
async fn redrive_moves_a_poison_message_to_the_dead_letter_stream() {
    let client = client().await;
    let dlq_config = config();
    let dlq = NatsQueue::create(client.clone(), &dlq_config)
        .await
        .unwrap();
    let q = NatsQueue::create(
        client,
        &config().with_redrive(2, dlq_config.subject.clone()),
    )
    .await
    .unwrap();
    suite::dead_letter_after_max_receives(&q, &dlq, 2).await;
    assert_eq!(q.approximate_len().await.unwrap(), 0, "gone from the queue");
    assert_eq!(
        dlq.approximate_len().await.unwrap(),
        0,
        "deleted from the dead-letter stream"
    );
}

#[tokio::test]
#[ignore = "needs nats-server: run scripts/test.sh"]
async fn a_short_visibility_timeout_per_receive_is_honoured_and_extended() {
    // The consumer's ack wait is 30 s; a receive asks for 1 s (a delayed
    // NAK), the holder extends it by 3 s (another delayed NAK) and the
    // message stays hidden past the first second.
    let q = NatsQueue::create(client().await, &config()).await.unwrap();
    q.send("slow".into()).await.unwrap();
    let now = ReceiveOptions::default().with_wait(Duration::ZERO);
    let got = q
        .receive(&now.clone().with_visibility_timeout(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    q.change_visibility(&got[0].receipt_handle, Duration::from_secs(3))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(q.receive(&now).await.unwrap().is_empty(), "still hidden");
    // Heartbeat at the ack wait: `+WPI`.
    q.change_visibility(&got[0].receipt_handle, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        q.receive(&now).await.unwrap().is_empty(),
        "hidden by the heartbeat"
    );
    q.delete(&got[0].receipt_handle).await.unwrap();
    assert_eq!(q.approximate_len().await.unwrap(), 0);
}

#[tokio::test]
#[ignore = "needs nats-server: run scripts/test.sh"]
async fn handles_of_another_queue_value_are_invalid() {
    let client = client().await;
    let config = config();
    let a = NatsQueue::create(client.clone(), &config).await.unwrap();
    let b = NatsQueue::create(client, &config).await.unwrap();
    a.send("x".into()).await.unwrap();
    let got = a
        .receive(&ReceiveOptions::default().with_wait(Duration::from_secs(2)))
        .await
        .unwrap();
    let err = b.delete(&got[0].receipt_handle).await.expect_err("foreign");
    assert!(
        matches!(err, Error::ReceiptHandleIsInvalid { .. }),
        "{err:?}"
    );
    let err = b
        .change_visibility(&got[0].receipt_handle, Duration::ZERO)
        .await
        .expect_err("foreign");
    assert!(
        matches!(err, Error::ReceiptHandleIsInvalid { .. }),
        "{err:?}"
    );
    a.delete(&got[0].receipt_handle).await.unwrap();
    assert_eq!(a.approximate_len().await.unwrap(), 0);
}

#[tokio::test]
#[ignore = "needs nats-server: run scripts/test.sh"]
async fn conflicting_streams_and_bad_configs_are_typed_errors() {
    let client = client().await;
    let first = config();
    NatsQueue::create(client.clone(), &first).await.unwrap();
    // Another stream may not capture the same subject.
    let clash = NatsQueueConfig::new(unique("OTHER"), first.subject.clone(), "worker");
    let err = NatsQueue::create(client.clone(), &clash)
        .await
        .expect_err("overlapping subjects");
    assert!(
        matches!(
            err,
            Error::Nats {
                operation: "create stream",
                ..
            }
        ),
        "{err:?}"
    );
    let err = NatsQueue::create(client, &config().with_redrive(1001, "x.dlq"))
        .await
        .expect_err("redrive count");
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

/// Why `NatsQueue` keeps its own table of current deliveries: JetStream
/// itself acks the message when an earlier delivery's ack subject is used
/// (nats-server 2.9 looks the message up by stream sequence only), where
/// SQS deletes nothing for an earlier delivery's receipt handle. If this
/// test ever fails, the server started to refuse stale acks itself.
#[tokio::test]
#[ignore = "needs nats-server: run scripts/test.sh"]
async fn jetstream_acks_the_current_delivery_through_an_old_ack_subject() {
    let js = jetstream::new(client().await);
    let name = unique("RAW");
    let subject = format!("raw.{name}");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("c".into()),
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish(subject, "m".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let fetch = || async {
        consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap()
            .next()
            .await
            .expect("a delivery")
            .unwrap()
    };
    let first = fetch().await;
    first.double_ack_with(AckKind::Nak(None)).await.unwrap();
    let second = fetch().await;
    assert_eq!(second.info().unwrap().delivered, 2);
    // The first delivery's ack subject…
    first.double_ack().await.unwrap();
    let mut stream = js.get_stream(&name).await.unwrap();
    // …removed the message although its current delivery is the second.
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    js.delete_stream(&name).await.unwrap();
}
