//! The worker pushes every outcome to its notifier: processed (variants,
//! placeholder), rejected (reason), quarantined (signature), removed, each
//! with the upload's route, owner and metadata; at least once (a notifier
//! failure leaves the message for redelivery, the notification then
//! carries the same ID); and through an outbox, a receiver that is down
//! does not slow the worker or lose an event.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{sample, world_with};
use upload_core::{Bytes, ObjectKey, PutOptions, Storage, UploadPolicy};
use upload_pipeline::notify::{
    MemoryNotifier, NotificationKind, NotificationOutcome, UploadNotification, WebhookNotifier,
};
use upload_pipeline::{MemoryQueue, Outcome, Queue, ReceiveOptions, WorkerConfig};
use upload_scan::{EICAR_SIGNATURE, MemoryScanner, eicar};

fn config() -> WorkerConfig {
    WorkerConfig::new(UploadPolicy::images_and_pdf(64 << 20).unwrap())
        .with_retry_backoff(Duration::from_millis(1), Duration::from_millis(1))
}

async fn put(
    w: &common::World,
    key: &str,
    body: Bytes,
    ct: &str,
    meta: &[(&str, &str)],
) -> ObjectKey {
    let k = ObjectKey::new(key).unwrap();
    let mut opts = PutOptions::default().with_content_type(ct);
    for (n, v) in meta {
        opts = opts.with_metadata(n, *v);
    }
    w.uploads.put(&k, body, opts).await.unwrap();
    k
}

fn of<'a>(ns: &'a [UploadNotification], key: &ObjectKey) -> Vec<&'a UploadNotification> {
    ns.iter().filter(|n| &n.object.key == key).collect()
}

#[tokio::test]
async fn every_outcome_is_notified_with_the_uploads_context() {
    let notifier = Arc::new(MemoryNotifier::new());
    let mut w = world_with(Arc::new(MemoryScanner::new()), config());
    w.worker = w.worker.with_notifier(notifier.clone());
    let meta = [
        ("upload-route", "avatar"),
        ("upload-owner", "u1"),
        ("post-id", "9"),
    ];
    let photo = put(
        &w,
        "avatars/u1/a.jpg",
        sample("photos/photo_colorfulcups_2560x1600_gps.jpg"),
        "image/jpeg",
        &meta,
    )
    .await;
    let infected = put(&w, "avatars/u1/e.jpg", eicar(), "image/jpeg", &meta).await;
    let png_as_jpeg = put(
        &w,
        "avatars/u1/p.jpg",
        sample("photos/transparent.png"),
        "image/jpeg",
        &meta,
    )
    .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(stats.failed, 0);

    let ns = notifier.notifications();
    let n = of(&ns, &photo);
    assert_eq!(n.len(), 1, "{ns:#?}");
    let m = w.manifest(&photo).await;
    assert_eq!(
        n[0],
        &UploadNotification::from_manifest(&m, m.upload.clone())
    );
    assert_eq!(n[0].kind(), NotificationKind::Processed);
    assert_eq!(n[0].context.route.as_deref(), Some("avatar"));
    assert_eq!(n[0].context.owner.as_deref(), Some("u1"));
    assert_eq!(
        n[0].context.metadata.get("post-id").map(String::as_str),
        Some("9")
    );
    let NotificationOutcome::Processed {
        variants, image, ..
    } = &n[0].outcome
    else {
        panic!("processed")
    };
    assert_eq!(variants, &m.variants);
    assert_eq!(variants.len(), 2);
    assert!(
        image
            .as_ref()
            .and_then(|i| i.placeholder.as_ref())
            .is_some()
    );

    let n = of(&ns, &infected);
    assert_eq!(n.len(), 1);
    match &n[0].outcome {
        NotificationOutcome::Quarantined {
            verdict,
            signature,
            quarantine,
            ..
        } => {
            assert_eq!(*verdict, Outcome::Infected);
            assert_eq!(signature.as_deref(), Some(EICAR_SIGNATURE));
            assert!(quarantine.is_some());
        }
        other => panic!("quarantined, not {other:?}"),
    }
    assert_eq!(n[0].context.owner.as_deref(), Some("u1"));
    let n = of(&ns, &png_as_jpeg);
    match &n[0].outcome {
        NotificationOutcome::Rejected { reason } => {
            assert!(
                reason.as_deref().unwrap_or("").contains("image/png"),
                "{reason:?}"
            )
        }
        other => panic!("rejected, not {other:?}"),
    }

    // The original is deleted: `upload.removed`, with its context.
    w.uploads.delete(&photo).await.unwrap();
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(stats.failed, 0);
    let ns = notifier.notifications();
    let n = of(&ns, &photo);
    assert_eq!(n.len(), 2);
    assert_eq!(n[1].kind(), NotificationKind::Removed);
    assert_eq!(n[1].context.route.as_deref(), Some("avatar"));
    assert_ne!(n[0].id(), n[1].id());
}

#[tokio::test]
async fn a_failed_notification_is_redelivered_with_the_same_id() {
    let notifier = Arc::new(MemoryNotifier::new());
    let mut w = world_with(Arc::new(MemoryScanner::new()), config());
    w.worker = w.worker.with_notifier(notifier.clone());
    notifier.fail_next(2);
    let k = put(
        &w,
        "uploads/u2/d.pdf",
        sample("photos/exiftool_PDF.pdf"),
        "application/pdf",
        &[("upload-owner", "u2")],
    )
    .await;
    // Two failed attempts (the message stays), then the third delivers.
    let mut failed = 0;
    for _ in 0..50 {
        let stats = w.worker.run_until_idle().await.unwrap();
        failed += stats.failed;
        if !notifier.notifications().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(failed, 2);
    let ns = notifier.notifications();
    assert_eq!(ns.len(), 1, "delivered once the notifier took it");
    let m = w.manifest(&k).await;
    assert_eq!(
        ns[0].id(),
        UploadNotification::from_manifest(&m, m.upload.clone()).id()
    );
    assert_eq!(w.dlq.len(), 0, "nothing dead-lettered");

    // The same S3 event delivered again: notified again, same ID.
    let before = notifier.notifications().len();
    let rec = upload_core::S3EventRecord::new(
        "us-east-1",
        "uploads",
        &k,
        "ObjectCreated:Put",
        Some(m.source.size),
        Some(&m.source.etag),
        m.source.sequencer.as_deref().expect("sequencer recorded"),
    );
    w.queue.send(rec.to_message()).await.unwrap();
    w.worker.run_until_idle().await.unwrap();
    let ns = notifier.notifications();
    assert_eq!(ns.len(), before + 1);
    assert_eq!(ns[before].id(), ns[0].id());
}

#[tokio::test]
async fn a_receiver_that_is_down_never_holds_the_worker_up() {
    // The outbox of a webhook whose deliverer cannot reach the receiver:
    // the worker only enqueues.
    let outbox = Arc::new(MemoryQueue::new("webhooks"));
    let mut w = world_with(
        Arc::new(MemoryScanner::new()),
        config().with_receive(ReceiveOptions::default().with_max_messages(10)),
    );
    w.worker = w
        .worker
        .with_notifier(Arc::new(WebhookNotifier::new(outbox.clone())));
    let pdf = sample("photos/exiftool_PDF.pdf");
    for i in 0..20 {
        put(
            &w,
            &format!("uploads/u3/{i}.pdf"),
            pdf.clone(),
            "application/pdf",
            &[],
        )
        .await;
    }
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.clean, stats.failed), (20, 20, 0));
    assert_eq!(outbox.len(), 20, "every outcome waits in the outbox");
    let got = outbox
        .receive(&ReceiveOptions::default().with_max_messages(10))
        .await
        .unwrap();
    let n = UploadNotification::from_json(&got[0].body).unwrap();
    assert_eq!(n.kind(), NotificationKind::Processed);
}
