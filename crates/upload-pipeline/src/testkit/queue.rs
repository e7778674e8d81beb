//! The [`Queue`] conformance suite. Run it on an empty queue; every check
//! leaves the queue empty. Checks wait on `tokio::time`: with a paused
//! runtime (`#[tokio::test(start_paused = true)]`) the in-memory queue runs
//! them instantly; a real queue waits a few real seconds.

use std::time::Duration;

use crate::error::Error;
use crate::queue::{Queue, QueueMessage, ReceiveOptions};

fn now_opts() -> ReceiveOptions {
    ReceiveOptions::default().with_wait(Duration::ZERO)
}

/// Runs every check below.
pub async fn run_all(q: &dyn Queue) {
    send_receive_delete(q).await;
    redelivery_after_visibility_timeout(q).await;
    change_visibility(q).await;
    stale_handle_cannot_change_visibility(q).await;
    delete_batch_reports_each(q).await;
    long_poll_returns_early(q).await;
    refusals(q).await;
}

/// Messages are delivered once while in flight, with distinct handles, and
/// deleted by handle.
pub async fn send_receive_delete(q: &dyn Queue) {
    let mut ids = Vec::new();
    for body in ["one", "two", "three"] {
        ids.push(q.send(body.to_owned()).await.expect("send"));
    }
    let got = q
        .receive(&now_opts().with_visibility_timeout(Duration::from_secs(60)))
        .await
        .expect("receive");
    let mut bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, ["one", "three", "two"]);
    assert!(got.iter().all(|m| m.receive_count == 1));
    assert!(got.iter().all(|m| ids.contains(&m.message_id)));
    let mut handles: Vec<&str> = got.iter().map(|m| m.receipt_handle.as_str()).collect();
    handles.sort();
    handles.dedup();
    assert_eq!(handles.len(), 3, "distinct receipt handles");
    assert!(
        q.receive(&now_opts())
            .await
            .expect("receive again")
            .is_empty(),
        "in-flight messages are not delivered twice"
    );
    for m in &got {
        q.delete(&m.receipt_handle).await.expect("delete");
    }
}

/// A message not deleted in time comes back with a new handle and a higher
/// receive count; the old handle no longer deletes it.
pub async fn redelivery_after_visibility_timeout(q: &dyn Queue) {
    let id = q.send("again".into()).await.expect("send");
    let first = q
        .receive(&now_opts().with_visibility_timeout(Duration::from_secs(1)))
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = q
        .receive(&now_opts().with_visibility_timeout(Duration::from_secs(60)))
        .await
        .expect("receive after timeout");
    assert_eq!(second.len(), 1, "redelivered");
    assert_eq!(second[0].message_id, id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt_handle, first[0].receipt_handle);
    q.delete(&first[0].receipt_handle)
        .await
        .expect("a stale handle deletes nothing but succeeds, as in SQS");
    q.delete(&second[0].receipt_handle).await.expect("delete");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        q.receive(&now_opts()).await.expect("receive").is_empty(),
        "deleted for good"
    );
}

/// Sends `body`, receives it for 300 s, releases it with a visibility of
/// 0 and receives it again; returns both deliveries.
async fn release_and_receive_again(q: &dyn Queue, body: &str) -> (QueueMessage, QueueMessage) {
    q.send(body.into()).await.expect("send");
    let mut got = q
        .receive(&now_opts().with_visibility_timeout(Duration::from_secs(300)))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    q.change_visibility(&got[0].receipt_handle, Duration::ZERO)
        .await
        .expect("release");
    let mut again = q
        .receive(&now_opts().with_wait(Duration::from_secs(2)))
        .await
        .expect("receive released");
    assert_eq!(again.len(), 1);
    (got.remove(0), again.remove(0))
}

/// Setting the visibility to 0 releases a message at once.
pub async fn change_visibility(q: &dyn Queue) {
    let (_, again) = release_and_receive_again(q, "release").await;
    assert_eq!(again.receive_count, 2);
    q.delete(&again.receipt_handle).await.expect("delete");
}

/// A receipt handle from an earlier delivery cannot change the visibility
/// of the message's current delivery (SQS: `MessageNotInflight` /
/// "not available for visibility timeout change"; moto 5.1 accepts it, so
/// its tests leave this check out).
pub async fn stale_handle_cannot_change_visibility(q: &dyn Queue) {
    let (first, again) = release_and_receive_again(q, "stale").await;
    let err = q
        .change_visibility(&first.receipt_handle, Duration::from_secs(5))
        .await
        .expect_err("stale handle");
    assert!(matches!(err, Error::MessageNotInflight { .. }), "{err:?}");
    q.delete(&again.receipt_handle).await.expect("delete");
}

/// `delete_batch` deletes more than one SQS batch (10) of messages and
/// reports a bad handle in its own slot without failing the others.
pub async fn delete_batch_reports_each(q: &dyn Queue) {
    for i in 0..12 {
        q.send(format!("batch {i}")).await.expect("send");
    }
    let mut handles = Vec::new();
    for _ in 0..10 {
        let got = q
            .receive(&now_opts().with_visibility_timeout(Duration::from_secs(120)))
            .await
            .expect("receive");
        handles.extend(got.into_iter().map(|m| m.receipt_handle));
        if handles.len() >= 12 {
            break;
        }
    }
    assert_eq!(handles.len(), 12, "all 12 messages received");
    handles.insert(5, "not-a-handle".to_owned());
    let results = q.delete_batch(&handles).await;
    assert_eq!(results.len(), 13, "one result per handle");
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(r, Err(Error::ReceiptHandleIsInvalid { .. })),
                "slot 5: {r:?}"
            );
        } else {
            assert!(r.is_ok(), "slot {i}: {r:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        q.receive(&now_opts()).await.expect("receive").is_empty(),
        "all deleted"
    );
}

/// With a redrive policy of `max_receive_count` receives, a message that is
/// never deleted moves to `dlq` with its body, and leaves `q`. `q` must
/// have been set up with that policy and `dlq` as its dead-letter queue;
/// both start empty.
pub async fn dead_letter_after_max_receives(
    q: &dyn Queue,
    dlq: &dyn Queue,
    max_receive_count: u32,
) {
    q.send("poison".into()).await.expect("send");
    for n in 1..=max_receive_count {
        let got = q
            .receive(
                &now_opts()
                    .with_wait(Duration::from_secs(2))
                    .with_visibility_timeout(Duration::from_secs(1)),
            )
            .await
            .expect("receive");
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let after = q
        .receive(&now_opts().with_wait(Duration::from_secs(1)))
        .await
        .expect("receive");
    assert!(
        after.is_empty(),
        "moved out after {max_receive_count} receives: {after:?}"
    );
    let dead = dlq
        .receive(&now_opts().with_wait(Duration::from_secs(5)))
        .await
        .expect("receive from the dead-letter queue");
    assert_eq!(dead.len(), 1, "in the dead-letter queue");
    assert_eq!(dead[0].body, "poison");
    dlq.delete(&dead[0].receipt_handle).await.expect("delete");
}

/// A long poll returns as soon as a message arrives.
pub async fn long_poll_returns_early(q: &dyn Queue) {
    let start = tokio::time::Instant::now();
    let opts = ReceiveOptions::default().with_wait(Duration::from_secs(10));
    let (got, _) = tokio::join!(q.receive(&opts), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        q.send("late".into()).await.expect("send")
    });
    let got = got.expect("long poll");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "late");
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "returned before the wait ended"
    );
    q.delete(&got[0].receipt_handle).await.expect("delete");
}

/// Out-of-range parameters and foreign handles are refused.
pub async fn refusals(q: &dyn Queue) {
    for opts in [
        now_opts().with_max_messages(0),
        now_opts().with_max_messages(11),
        now_opts().with_wait(Duration::from_secs(21)),
        now_opts().with_visibility_timeout(Duration::from_secs(12 * 3600 + 1)),
    ] {
        let err = q.receive(&opts).await.expect_err("bad parameter");
        assert!(
            matches!(err, Error::InvalidQueueParameter { .. }),
            "{opts:?}: {err:?}"
        );
    }
    let err = q.delete("not-a-handle").await.expect_err("foreign handle");
    assert!(
        matches!(err, Error::ReceiptHandleIsInvalid { .. }),
        "{err:?}"
    );
    let err = q
        .send("x".repeat(256 * 1024 + 1))
        .await
        .expect_err("too long");
    assert!(matches!(err, Error::MessageTooLong { .. }), "{err:?}");
    q.send("y".repeat(256 * 1024))
        .await
        .expect("exactly 256 KiB is fine");
    let got = q.receive(&now_opts()).await.expect("receive");
    q.delete(&got[0].receipt_handle).await.expect("delete");
}
