//! DiskQueue (feature `disk-queue`) on temporary files: the shared Queue
//! suite, the redrive policy, restarts, concurrent receivers, locked and
//! corrupt files, and the worker draining ObjectCreated events from it.
//! Times are real (the queue keeps wall-clock times), so these tests wait
//! a few real seconds.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use upload_core::{MemoryStorage, ObjectKey, PutOptions, Storage};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::{
    DiskQueue, Error, Manifest, Outcome, Queue, ReceiveOptions, StandardCodec, Worker, WorkerConfig,
};
use upload_scan::{MemoryScanner, Quarantine};

fn now() -> ReceiveOptions {
    ReceiveOptions::default().with_wait(Duration::ZERO)
}

fn temp_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    (dir, path)
}

#[tokio::test]
async fn disk_queue_passes_the_queue_suite() {
    let (_dir, path) = temp_file();
    let q = DiskQueue::open(&path, "uploads-events").unwrap();
    upload_pipeline::testkit::queue::run_all(&q).await;
    assert_eq!(q.len().unwrap(), 0);
}

#[tokio::test]
async fn dead_letter_after_max_receives() {
    let (_dir, path) = temp_file();
    let q = DiskQueue::open(&path, "uploads-events")
        .unwrap()
        .with_dead_letter_queue(2, "uploads-dlq")
        .unwrap();
    let dlq = q.dead_letter_queue().expect("redrive set");
    assert_eq!(dlq.name(), "uploads-dlq");
    upload_pipeline::testkit::queue::dead_letter_after_max_receives(&q, &dlq, 2).await;
    assert_eq!((q.len().unwrap(), dlq.len().unwrap()), (0, 0));
}

#[tokio::test]
async fn redrive_keeps_the_message_id_and_refuses_bad_policies() {
    let (_dir, path) = temp_file();
    let q = DiskQueue::open(&path, "events")
        .unwrap()
        .with_dead_letter_queue(1, "dlq")
        .unwrap();
    let dlq = q.dead_letter_queue().unwrap();
    let id = q.send("poison".into()).await.unwrap();
    let opts = now().with_visibility_timeout(Duration::ZERO);
    let first = q.receive(&opts).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(q.receive(&opts).await.unwrap().is_empty(), "dead-lettered");
    assert_eq!((q.len().unwrap(), dlq.len().unwrap()), (0, 1));
    let dead = dlq.receive(&now()).await.unwrap();
    assert_eq!(dead[0].message_id, id, "the message keeps its ID");
    assert_eq!(dead[0].receive_count, 1, "first receive from the DLQ");
    // A handle of the DLQ is not one of the main queue, and the reverse.
    assert!(matches!(
        q.delete(&dead[0].receipt_handle).await,
        Err(Error::ReceiptHandleIsInvalid { .. })
    ));
    // The main queue's handle of a message that moved deletes nothing.
    q.delete(&first[0].receipt_handle).await.unwrap();
    assert_eq!(dlq.len().unwrap(), 1);

    for (n, name) in [(0, "dlq2"), (1001, "dlq2"), (3, "events"), (3, "bad name")] {
        let err = DiskQueue::open(tempfile::tempdir().unwrap().path().join("x"), "events")
            .unwrap()
            .with_dead_letter_queue(n, name)
            .expect_err("bad redrive policy");
        assert!(
            matches!(err, Error::InvalidQueueParameter { .. }),
            "{n} {name}: {err:?}"
        );
    }
}

/// Send, receive without delete, drop, reopen: the message comes back
/// after its visibility timeout with receive count 2; deleted messages
/// stay deleted; the dead-letter queue keeps its message; a handle from
/// before the restart still works (the handle key is in the file).
#[tokio::test]
async fn messages_survive_a_restart() {
    let (_dir, path) = temp_file();
    let open = || {
        DiskQueue::open(&path, "events")
            .unwrap()
            .with_dead_letter_queue(2, "dlq")
            .unwrap()
    };
    let (kept_id, old_handle, other_id) = {
        let q = open();
        let kept_id = q.send("kept".into()).await.unwrap();
        let deleted_id = q.send("deleted".into()).await.unwrap();
        let other_id = q.send("other".into()).await.unwrap();
        let got = q
            .receive(&now().with_visibility_timeout(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        let by_id = |id: &str| got.iter().find(|m| m.message_id == id).unwrap().clone();
        q.delete(&by_id(&deleted_id).receipt_handle).await.unwrap();
        // Received twice (the redrive count), never deleted.
        q.send("poison".into()).await.unwrap();
        for n in 1..=2 {
            let poison = q
                .receive(&now().with_visibility_timeout(Duration::ZERO))
                .await
                .unwrap();
            assert_eq!(
                (poison[0].body.as_str(), poison[0].receive_count),
                ("poison", n)
            );
        }
        (kept_id, by_id(&other_id).receipt_handle, other_id)
    };
    // Dropped: the file is closed, and reopened as after a restart.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let q = open();
    let dlq = q.dead_letter_queue().unwrap();
    assert_eq!(q.len().unwrap(), 3, "kept, other, poison");
    let mut got = q
        .receive(&now().with_visibility_timeout(Duration::from_secs(60)))
        .await
        .unwrap();
    got.sort_by_key(|m| m.body.clone());
    let seen: Vec<_> = got
        .iter()
        .map(|m| (m.body.as_str(), m.receive_count))
        .collect();
    // The poison message, received twice, moves to the DLQ instead of a
    // third delivery; the other two come back with receive count 2.
    assert_eq!(seen, [("kept", 2), ("other", 2)]);
    assert_eq!(got[0].message_id, kept_id);
    assert_eq!(got[1].message_id, other_id);
    // The pre-restart handle is of an earlier delivery now: no effect.
    q.delete(&old_handle).await.unwrap();
    assert_eq!(q.len().unwrap(), 2);
    let dead = dlq.receive(&now()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    let in_flight_handle = got[0].receipt_handle.clone();
    drop((q, dlq));

    // A handle issued before a restart deletes its message after it, and
    // the dead-letter queue's content survives.
    let q = open();
    q.delete(&in_flight_handle).await.unwrap();
    assert_eq!(q.len().unwrap(), 1, "only `other` is left");
    assert_eq!(q.in_flight().unwrap(), 1);
    let dlq = q.dead_letter_queue().unwrap();
    assert_eq!(dlq.len().unwrap(), 1);
    assert_eq!(dlq.in_flight().unwrap(), 1, "the DLQ message is in flight");
}

/// Several receivers in tasks never get the same message while it is in
/// flight, and together get every message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_receivers_never_share_a_message() {
    let (_dir, path) = temp_file();
    let q = Arc::new(DiskQueue::open(&path, "events").unwrap());
    let mut sent = HashSet::new();
    for i in 0..60 {
        sent.insert(q.send(format!("m{i}")).await.unwrap());
    }
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let got = q
                    .receive(
                        &now()
                            .with_max_messages(3)
                            .with_visibility_timeout(Duration::from_secs(120)),
                    )
                    .await
                    .unwrap();
                if got.is_empty() {
                    return ids;
                }
                ids.extend(got.into_iter().map(|m| m.message_id));
            }
        }));
    }
    let mut all = Vec::new();
    let mut busy = 0;
    for t in tasks {
        let ids = t.await.unwrap();
        busy += usize::from(!ids.is_empty());
        all.extend(ids);
    }
    assert_eq!(all.len(), 60, "each message delivered once");
    let unique: HashSet<_> = all.into_iter().collect();
    assert_eq!(unique, sent);
    assert!(busy >= 2, "the receivers ran side by side");
    assert_eq!(q.in_flight().unwrap(), 60);
}

/// Marks the child process of [`a_second_process_gets_queue_file_locked`].
const LOCK_PROBE: &str = "UPLOAD_SDK_DISK_QUEUE_LOCK_PROBE";

/// The file opened by two processes at once: the second gets
/// `QueueFileLocked` naming the path. The test runs itself as the second
/// process (this test binary, filtered to this test, with the path in
/// [`LOCK_PROBE`]).
#[tokio::test]
async fn a_second_process_gets_queue_file_locked() {
    if let Ok(path) = std::env::var(LOCK_PROBE) {
        let err = DiskQueue::open(&path, "events").expect_err("locked by the parent");
        assert!(
            matches!(&err, Error::QueueFileLocked { path: p } if p.to_str() == Some(path.as_str())),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path), "{err}");
        println!("child saw: {err}");
        return;
    }
    let (_dir, path) = temp_file();
    let q = DiskQueue::open(&path, "events").unwrap();
    // In this process too.
    let err = DiskQueue::open(&path, "other").expect_err("open already");
    assert!(matches!(err, Error::QueueFileLocked { .. }), "{err:?}");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_gets_queue_file_locked",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_PROBE, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("child saw: queue file"), "{stdout}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test: {stdout}"
    );
    drop(q);
    DiskQueue::open(&path, "events").expect("free again once dropped");
}

#[tokio::test]
async fn corrupt_and_unusable_files_are_typed_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();
    let err = DiskQueue::open(&garbage, "events").expect_err("not a database");
    assert!(matches!(err, Error::QueueFileCorrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(garbage.to_str().unwrap()), "{err}");

    let missing_dir = dir.path().join("no-such-dir").join("q.redb");
    let err = DiskQueue::open(&missing_dir, "events").expect_err("no directory");
    assert!(matches!(err, Error::QueueFile { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");

    let err = DiskQueue::open(dir.path().join("q.redb"), "a/b").expect_err("bad name");
    assert!(
        matches!(err, Error::InvalidQueueParameter { .. }),
        "{err:?}"
    );
}

/// A queue file cut short (a disk that lost its tail) is refused with a
/// typed error naming the path, never a panic.
#[tokio::test]
async fn a_truncated_file_is_a_typed_error() {
    let (_dir, path) = temp_file();
    {
        let q = DiskQueue::open(&path, "events").unwrap();
        for i in 0..50 {
            q.send(format!("m{i} {}", "x".repeat(2000))).await.unwrap();
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let err = DiskQueue::open(&path, "events").expect_err("truncated");
    assert!(
        matches!(
            err,
            Error::QueueFileCorrupt { .. } | Error::QueueFile { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
}

#[tokio::test]
async fn handles_of_another_file_are_invalid() {
    let (_d1, p1) = temp_file();
    let (_d2, p2) = temp_file();
    let a = DiskQueue::open(&p1, "events").unwrap();
    let b = DiskQueue::open(&p2, "events").unwrap();
    b.send("x".into()).await.unwrap();
    let foreign = b.receive(&now()).await.unwrap().remove(0).receipt_handle;
    a.send("y".into()).await.unwrap();
    let own = a.receive(&now()).await.unwrap().remove(0).receipt_handle;
    // Same queue name and same sequence numbers, another file's key.
    let forged = format!("{}0", &own[..own.len() - 1]);
    for h in [foreign.as_str(), forged.as_str(), "id:0:0:0", ""] {
        assert!(
            matches!(a.delete(h).await, Err(Error::ReceiptHandleIsInvalid { .. })),
            "{h}"
        );
    }
    a.delete(&own).await.unwrap();
    assert_eq!(a.len().unwrap(), 0);
}

/// The worker drains ObjectCreated events that MemoryStorage published
/// into a DiskQueue, end to end.
#[tokio::test]
async fn the_worker_processes_events_from_a_disk_queue() {
    let (_dir, path) = temp_file();
    let queue = Arc::new(
        DiskQueue::open(&path, "events")
            .unwrap()
            .with_dead_letter_queue(3, "dlq")
            .unwrap(),
    );
    let uploads = Arc::new(
        MemoryStorage::new("uploads")
            .unwrap()
            .with_events(queue.clone()),
    );
    let processed = Arc::new(MemoryStorage::new("processed").unwrap());
    let quarantine = Arc::new(MemoryStorage::new("quarantine").unwrap());
    let worker = Worker::new(
        queue.clone(),
        uploads.clone(),
        processed.clone(),
        Arc::new(MemoryScanner::new()),
        Arc::new(StandardCodec::default()),
        Quarantine::new(quarantine.clone(), "quarantine/"),
        WorkerConfig::new(upload_core::UploadPolicy::images_and_pdf(64 << 20).unwrap()),
    );
    let photo = ObjectKey::new("uploads/u/photo.jpg").unwrap();
    let eicar = ObjectKey::new("uploads/u/bad.jpg").unwrap();
    for (k, body) in [
        (&photo, common::sample("testdata/hopper.jpg")),
        (&eicar, upload_scan::eicar()),
    ] {
        uploads
            .put(
                k,
                body,
                PutOptions::default()
                    .with_content_type("image/jpeg")
                    .with_create_only(true),
            )
            .await
            .unwrap();
    }
    assert_eq!(queue.len().unwrap(), 2, "two events on disk");
    let stats = worker.run_until_idle().await.unwrap();
    // The third message is the ObjectRemoved event of the quarantined
    // original, skipped.
    assert_eq!(
        (
            stats.messages,
            stats.clean,
            stats.infected,
            stats.skipped,
            stats.failed
        ),
        (3, 1, 1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(queue.len().unwrap(), 0, "deleted once processed");
    let got = processed.get(&manifest_key(&photo).unwrap()).await.unwrap();
    let m: Manifest = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.variants.len(), 2);
    assert!(
        uploads.get(&eicar).await.is_err(),
        "the infected original left the uploads bucket"
    );
}
