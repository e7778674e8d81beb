//! MemoryQueue against the Queue conformance suite, plus the redrive policy.

use std::sync::Arc;
use std::time::Duration;

use upload_pipeline::{MemoryQueue, Queue, ReceiveOptions};

#[tokio::test(start_paused = true)]
async fn memory_queue_passes_the_queue_suite() {
    let q = MemoryQueue::new("uploads-events");
    upload_pipeline::testkit::queue::run_all(&q).await;
    assert!(q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dead_letter_after_max_receives() {
    let dlq = Arc::new(MemoryQueue::new("uploads-dlq"));
    let q = MemoryQueue::new("uploads-events")
        .with_visibility_timeout(Duration::from_secs(10))
        .unwrap()
        .with_dead_letter_queue(3, dlq.clone())
        .unwrap();
    let id = q.send("poison".into()).await.unwrap();
    let now = ReceiveOptions::default().with_wait(Duration::ZERO);
    for n in 1..=3 {
        let got = q.receive(&now).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, n);
        assert_eq!(q.in_flight(), 1);
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    assert!(
        q.receive(&now).await.unwrap().is_empty(),
        "fourth delivery goes to the DLQ"
    );
    assert!(q.is_empty());
    let dead = dlq.receive(&now).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, id, "the message keeps its ID");
    assert_eq!(dead[0].body, "poison");
    assert!(
        MemoryQueue::new("x")
            .with_dead_letter_queue(0, dlq)
            .is_err()
    );
}
