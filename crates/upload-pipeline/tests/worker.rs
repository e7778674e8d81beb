//! The worker on in-memory parts: real photos and hostile inputs, put into
//! the uploads bucket, processed from their S3 events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{World, sample, world};
use upload_core::{Bytes, ObjectKey, Storage};
use upload_pipeline::testkit::codec::png_bomb_header;
use upload_pipeline::{Outcome, Queue, RunStats};
use upload_scan::{EICAR_SIGNATURE, MemoryScanner, TEST_MARKER_SIGNATURE, eicar, test_marker};

fn mem_world() -> (World, Arc<MemoryScanner>) {
    let scanner = Arc::new(MemoryScanner::new());
    (world(scanner.clone()), scanner)
}

#[tokio::test]
async fn orientation_6_photo_gets_rotated_variants_without_metadata() {
    let (w, _) = mem_world();
    let k = w
        .upload(
            "uploads/u/rot.jpg",
            sample("photos/derived_bythewater_orient6.jpg"),
            "image/jpeg",
        )
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.clean, stats.failed), (1, 1, 0));
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.source.sniffed.as_deref(), Some("image/jpeg"));
    let dims: Vec<_> = m
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    // 2560x1600 rotated by orientation 6 is 1600x2560.
    assert_eq!(dims, [("thumb", 160, 256), ("medium", 640, 1024)]);
    let image = m.image.as_ref().expect("image info in the manifest");
    assert_eq!((image.width, image.height), (1600, 2560), "upright size");
    let placeholder = image.placeholder.as_ref().expect("placeholder");
    assert_eq!(placeholder.dominant_color.len(), 7);
    assert!(placeholder.dominant_color.starts_with('#'));
    // A ThumbHash of a portrait photo: about 25 bytes, 36 in base64.
    assert!(
        (28..=40).contains(&placeholder.thumbhash.len()),
        "{}",
        placeholder.thumbhash
    );
    for (v, spec) in m
        .variants
        .iter()
        .zip(upload_pipeline::VariantSpec::defaults())
    {
        // The first 16 hex digits of the original's ETag name its version.
        let etag = upload_core::storage::etag_of(&sample("photos/derived_bythewater_orient6.jpg"));
        assert_eq!(m.source.etag, etag);
        assert_eq!(
            v.key.as_str(),
            format!(
                "uploads/u/rot.jpg/{}-{}-{}.webp",
                v.name,
                &etag[..16],
                spec.fingerprint()
            )
        );
        let got = w.processed.get(&v.key).await.unwrap();
        assert_eq!(got.meta.content_type.as_deref(), Some("image/webp"));
        assert_eq!(
            got.meta.cache_control.as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(got.body.len() as u64, v.bytes);
        assert!(
            !contains(&got.body, b"Exif") && !contains(&got.body, b"XMP"),
            "no metadata"
        );
    }
    assert_eq!(
        w.uploads.get_tags(&k).await.unwrap().get("scan-status"),
        Some("CLEAN")
    );
    assert!(w.queue.is_empty(), "message deleted");
}

async fn m_scan(w: &World, k: &upload_core::ObjectKey) -> Option<Outcome> {
    w.manifest(k).await.scan
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn infected_pdf_is_quarantined_with_no_variants() {
    let (w, _) = mem_world();
    // Declared as a PDF; the bytes are a PDF header and the project's test
    // signature, so the sniffed type is allowed and only the scanner can
    // catch it.
    let body = Bytes::from([b"%PDF-1.4\n".as_slice(), &test_marker()].concat());
    let k = w
        .upload("uploads/u/invoice.pdf", body.clone(), "application/pdf")
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.infected, stats.failed), (1, 0));
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(m.scan, Some(Outcome::Infected));
    assert_eq!(m.signature.as_deref(), Some(TEST_MARKER_SIGNATURE));
    assert_eq!(m.reason, None, "the type check passed");
    assert!(m.variants.is_empty());
    let q = m.quarantine.unwrap();
    assert_eq!(
        (q.bucket.as_str(), q.key.as_str()),
        ("quarantine", "quarantine/uploads/u/invoice.pdf")
    );
    assert_eq!(
        w.quarantine.get(&q.key).await.unwrap().body,
        body,
        "kept byte for byte"
    );
    assert!(w.uploads.head(&k).await.is_err(), "removed from uploads");
    assert_eq!(w.processed.len(), 1, "only the manifest");
}

#[tokio::test]
async fn bad_inputs_are_rejected_and_originals_stay() {
    let (w, _) = mem_world();
    let text = w
        .upload(
            "uploads/u/fake.jpg",
            Bytes::from_static(b"I am not a JPEG at all"),
            "image/jpeg",
        )
        .await;
    let empty = w
        .upload("uploads/u/empty.jpg", Bytes::new(), "image/jpeg")
        .await;
    let trunc = w
        .upload(
            "uploads/u/trunc.jpg",
            sample("testdata/truncated_jpeg.jpg"),
            "image/jpeg",
        )
        .await;
    let bomb = w
        .upload(
            "uploads/u/bomb.png",
            png_bomb_header(50_000, 50_000).into(),
            "image/png",
        )
        .await;
    let heic = w
        .upload(
            "uploads/u/x.heic",
            sample("testdata/exiftool_QuickTime.heic"),
            "image/jpeg",
        )
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(
        stats,
        RunStats {
            messages: 5,
            rejected: 5,
            ..RunStats::default()
        }
    );
    for (k, reason) in [
        (&text, "not recognised"),
        // Zero bytes are named as such, not as an unknown type.
        (&empty, "empty object (0 bytes)"),
        (&trunc, "truncated"),
        (&bomb, "50000x50000"),
        (&heic, "declared as image/jpeg but the bytes are image/hei"),
    ] {
        let m = w.manifest(k).await;
        assert_eq!(m.verdict, Outcome::Rejected, "{k}");
        let got = m.reason.unwrap();
        assert!(got.contains(reason), "{k}: {got}");
        assert!(m.variants.is_empty());
        assert!(w.uploads.head(k).await.is_ok(), "{k}: the original stays");
        let tags = w.uploads.get_tags(k).await.unwrap();
        assert_eq!(tags.get("upload-status"), Some("REJECTED"));
        // Undecodable images too (truncated, bomb): tagged only after
        // decoding succeeds, so a rejected original is never readable
        // under the deny-unscanned-reads policy.
        assert_eq!(tags.get("scan-status"), None, "{k}: never tagged CLEAN");
        assert_eq!(m_scan(&w, k).await, Some(Outcome::Clean), "{k}: scanned");
    }
    assert_eq!(w.processed.len(), 5, "manifests only");
}

#[tokio::test(start_paused = true)]
async fn malformed_event_is_retried_then_dead_lettered() {
    let (w, _) = mem_world();
    w.queue.send("{not json".into()).await.unwrap();
    for round in 1..=3 {
        let s = w.worker.run_until_idle().await.unwrap();
        assert_eq!((s.messages, s.failed), (1, 1), "round {round}");
        tokio::time::sleep(Duration::from_secs(31)).await;
    }
    assert_eq!(w.worker.run_until_idle().await.unwrap().messages, 0);
    assert_eq!(w.dlq.len(), 1, "dead-lettered after 3 receives");
    assert!(w.queue.is_empty());
}

/// Keys S3 accepts but ObjectKey refuses (a console folder marker, `//`,
/// `..`) skip their record; the other records of the message are handled.
#[tokio::test]
async fn invalid_keys_skip_their_record_only() {
    let (w, _) = mem_world();
    let k = w
        .upload(
            "uploads/u/ok.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    // The upload's own event is consumed first.
    assert_eq!(w.worker.run_until_idle().await.unwrap().clean, 1);
    let rec = |key: &str| {
        format!(
            r#"{{"eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"uploads"}},"object":{{"key":"{key}"}}}}}}"#
        )
    };
    let msg = format!(
        r#"{{"Records":[{},{},{},{}]}}"#,
        rec("uploads/u/"),
        rec("uploads//x.jpg"),
        rec("..%2Fx"),
        rec("uploads/u/ok.jpg")
    );
    w.queue.send(msg).await.unwrap();
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!(
        (s.messages, s.skipped, s.already_processed, s.failed),
        (1, 3, 1, 0)
    );
    assert!(w.queue.is_empty() && w.dlq.is_empty());
    assert_eq!(w.manifest(&k).await.variants.len(), 2);
}

/// Bytes that are not the declared (signed) Content-Type are rejected, so
/// nothing is served as a type it is not.
#[tokio::test]
async fn declared_type_must_match_the_bytes() {
    let (w, _) = mem_world();
    let pdf_as_jpg = w
        .upload(
            "uploads/u/a.jpg",
            sample("photos/exiftool_PDF.pdf"),
            "image/jpeg",
        )
        .await;
    let jpg_as_png = w
        .upload(
            "uploads/u/b.png",
            sample("testdata/hopper.jpg"),
            "image/png",
        )
        .await;
    let alias = w
        .upload(
            "uploads/u/c.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpg",
        )
        .await;
    let untyped = w
        .upload(
            "uploads/u/d.jpg",
            sample("testdata/hopper.jpg"),
            "application/octet-stream",
        )
        .await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.rejected, s.clean), (2, 2));
    let m = w.manifest(&pdf_as_jpg).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(
        m.reason.as_deref(),
        Some("declared as image/jpeg but the bytes are application/pdf")
    );
    let m = w.manifest(&jpg_as_png).await;
    assert_eq!(
        m.reason.as_deref(),
        Some("declared as image/png but the bytes are image/jpeg")
    );
    assert_eq!(
        w.manifest(&alias).await.verdict,
        Outcome::Clean,
        "image/jpg is image/jpeg"
    );
    assert_eq!(
        w.manifest(&untyped).await.verdict,
        Outcome::Clean,
        "no declared type: the sniffed one decides"
    );
}

#[tokio::test(start_paused = true)]
async fn scanner_down_leaves_message_and_original() {
    let (w, scanner) = mem_world();
    let k = w
        .upload(
            "uploads/u/a.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    scanner.set_available(false);
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.failed, s.clean), (1, 0));
    assert!(w.uploads.head(&k).await.is_ok());
    assert!(
        w.uploads.get_tags(&k).await.unwrap().is_empty(),
        "not marked clean"
    );
    assert!(w.quarantine.is_empty() && w.processed.is_empty());
    assert_eq!(w.queue.len(), 1, "message back on the queue");
    scanner.set_available(true);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.clean, s.failed), (1, 0));
    assert_eq!(w.manifest(&k).await.variants.len(), 2);
}

#[tokio::test]
async fn redelivery_does_no_writes_and_test_events_are_deleted() {
    let (w, _) = mem_world();
    let k = w
        .upload(
            "uploads/u/h.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    w.worker.run_until_idle().await.unwrap();
    let first = w.manifest(&k).await;
    let before: Vec<_> = w.processed.list("").await.unwrap();
    // The same event again (at-least-once delivery), and an s3:TestEvent.
    let rec = upload_core::S3EventRecord::new(
        "us-east-1",
        "uploads",
        &k,
        "ObjectCreated:Put",
        Some(first.source.size),
        Some(&first.source.etag),
        first
            .source
            .sequencer
            .as_deref()
            .expect("sequencer recorded"),
    );
    w.queue.send(rec.to_message()).await.unwrap();
    w.queue.send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-01-01T00:00:00.000Z","Bucket":"uploads"}"#.into()).await.unwrap();
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!(
        (s.messages, s.already_processed, s.test_events, s.failed),
        (2, 1, 1, 0)
    );
    let after: Vec<_> = w.processed.list("").await.unwrap();
    assert_eq!(
        before, after,
        "same objects, same write times: nothing rewritten"
    );
    assert!(w.queue.is_empty());
}

/// `{"Records": []}` is a valid, empty notification: the message is
/// deleted at once, not retried and not dead-lettered.
#[tokio::test(start_paused = true)]
async fn empty_records_message_is_deleted_without_retry() {
    let (w, _) = mem_world();
    w.queue.send(r#"{"Records":[]}"#.into()).await.unwrap();
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.messages, s.failed, s.skipped), (1, 0, 0));
    assert!(w.queue.is_empty(), "deleted, not made visible again");
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(w.worker.run_until_idle().await.unwrap().messages, 0);
    assert!(w.dlq.is_empty(), "never dead-lettered");
    assert!(w.processed.is_empty());
}

/// Every object is scanned, whatever the type check says: the EICAR file
/// uploaded as `photo.jpg` (declared `image/jpeg`) or as `eicar.com`
/// (declared `application/octet-stream`) is refused by type *and*
/// infected; it ends in quarantine with verdict `infected`, the refusal
/// kept as the reason, and is gone from the uploads bucket.
#[tokio::test]
async fn infected_files_of_refused_types_are_quarantined() {
    let (w, _) = mem_world();
    let photo = w.upload("uploads/u/photo.jpg", eicar(), "image/jpeg").await;
    let com = w
        .upload("uploads/u/eicar.com", eicar(), "application/octet-stream")
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!(
        (stats.infected, stats.rejected, stats.failed),
        (2, 0, 0),
        "{stats:?}"
    );
    for k in [&photo, &com] {
        let m = w.manifest(k).await;
        assert_eq!(m.verdict, Outcome::Infected, "{k}");
        assert_eq!(m.scan, Some(Outcome::Infected));
        assert_eq!(m.signature.as_deref(), Some(EICAR_SIGNATURE));
        assert_eq!(
            m.reason.as_deref(),
            Some("content type not recognised from magic bytes"),
            "the type check's refusal is kept beside the verdict"
        );
        assert!(m.variants.is_empty());
        let q = m.quarantine.expect("quarantined");
        assert_eq!(q.key.as_str(), format!("quarantine/{k}"));
        assert_eq!(w.quarantine.get(&q.key).await.unwrap().body, eicar());
        assert_eq!(
            w.quarantine
                .get_tags(&q.key)
                .await
                .unwrap()
                .get("scan-status"),
            Some("INFECTED")
        );
        assert!(w.uploads.head(k).await.is_err(), "{k}: out of uploads");
    }
}

/// A clean file of a refused type is rejected with the scanner's verdict
/// recorded, and never tagged `scan-status=CLEAN` (which would make it
/// readable under the deny-unscanned-reads policy).
#[tokio::test]
async fn refused_clean_files_record_the_scan_and_stay_untagged_clean() {
    let (w, _) = mem_world();
    let k = w
        .upload(
            "uploads/u/notes.jpg",
            Bytes::from_static(b"plain text, not a JPEG"),
            "image/jpeg",
        )
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.rejected, stats.infected), (1, 0));
    let m = w.manifest(&k).await;
    assert_eq!(
        (m.verdict, m.scan),
        (Outcome::Rejected, Some(Outcome::Clean))
    );
    let tags = w.uploads.get_tags(&k).await.unwrap();
    assert_eq!(tags.get("upload-status"), Some("REJECTED"));
    assert_eq!(tags.get("scan-status"), None, "never tagged CLEAN");
}

/// A world whose uploads bucket keeps versions.
fn versioned_world() -> World {
    let mut w = world(Arc::new(MemoryScanner::new()));
    let uploads = Arc::new(
        upload_core::MemoryStorage::new("uploads")
            .unwrap()
            .with_versioning()
            .with_events(w.queue.clone()),
    );
    w.worker = upload_pipeline::Worker::new(
        w.queue.clone(),
        uploads.clone(),
        w.processed.clone(),
        Arc::new(MemoryScanner::new()),
        Arc::new(upload_pipeline::StandardCodec::default()),
        upload_scan::Quarantine::new(w.quarantine.clone(), "quarantine/"),
        upload_pipeline::WorkerConfig::new(
            upload_core::UploadPolicy::images_and_pdf(64 << 20).unwrap(),
        ),
    );
    w.uploads = uploads;
    w
}

/// Versioned buckets: each record is processed on exactly the version
/// its event names. An infected first version overwritten by a clean one
/// before the worker ran is still scanned, quarantined and deleted by its
/// version ID (before, the worker read the current version, found another
/// ETag, skipped the record and left the infected bytes readable by
/// version ID); the clean second version is tagged and processed.
#[tokio::test]
async fn versioned_buckets_process_the_version_each_event_names() {
    let w = versioned_world();
    let k = w.upload("uploads/u/v.jpg", eicar(), "image/jpeg").await;
    let photo = sample("testdata/hopper.jpg");
    let v2 = w
        .uploads
        .put(
            &k,
            photo.clone(),
            upload_core::PutOptions::default().with_content_type("image/jpeg"),
        )
        .await
        .unwrap();
    let ids = w.uploads.version_ids(&k);
    assert_eq!(ids.len(), 2);
    let (id1, id2) = (ids[0].clone(), ids[1].clone());
    assert_eq!(v2.version_id.as_deref(), Some(id2.as_str()));

    // v1's event alone first: v2 is current meanwhile.
    let first = w
        .queue
        .receive(
            &upload_pipeline::ReceiveOptions::default()
                .with_wait(Duration::ZERO)
                .with_max_messages(1),
        )
        .await
        .unwrap()
        .remove(0);
    let s = w.worker.process_message(&first).await.unwrap();
    assert_eq!((s.infected, s.failed), (1, 0), "{s:?}");
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(m.source.version_id.as_deref(), Some(id1.as_str()));
    assert_eq!(m.source.etag, upload_core::storage::etag_of(&eicar()));
    assert_eq!(
        w.uploads.version_ids(&k),
        std::slice::from_ref(&id2),
        "v1 deleted by its version ID, v2 untouched"
    );
    assert_eq!(w.uploads.get(&k).await.unwrap().body, photo);
    assert_eq!(
        w.quarantine
            .get(&m.quarantine.unwrap().key)
            .await
            .unwrap()
            .body,
        eicar()
    );

    // Then v2's own event.
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.clean, s.failed), (1, 0), "{s:?}");
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.source.version_id.as_deref(), Some(id2.as_str()));
    assert_eq!(m.variants.len(), 2);
    assert_eq!(
        w.uploads
            .get_tags_version(&k, Some(&id2))
            .await
            .unwrap()
            .get("scan-status"),
        Some("CLEAN"),
        "the tag is on the version scanned"
    );
}

/// An original whose key is 1,024 bytes (S3's maximum) is processed: its
/// manifest and variants go under the hashed layout, the manifest records
/// the original key, and its quarantine key fits too.
#[tokio::test]
async fn originals_with_1024_byte_keys_are_processed() {
    let (w, _) = mem_world();
    let name = format!("uploads/u/{}.jpg", "k".repeat(1024 - 14));
    assert_eq!(name.len(), 1024);
    let k = w
        .upload(&name, sample("testdata/hopper.jpg"), "image/jpeg")
        .await;
    let infected_name = format!("uploads/u/{}.pdf", "q".repeat(1024 - 14));
    let infected = w
        .upload(
            &infected_name,
            Bytes::from([b"%PDF-1.4\n".as_slice(), &test_marker()].concat()),
            "application/pdf",
        )
        .await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!(
        (s.clean, s.infected, s.rejected, s.failed),
        (1, 1, 0, 0),
        "{s:?}"
    );
    let mkey = upload_pipeline::manifest::manifest_key(&k).unwrap();
    assert!(
        mkey.as_str().starts_with(upload_core::LONG_KEY_DIR),
        "{mkey}"
    );
    let m = w.manifest(&k).await;
    assert_eq!(m.source.key, k, "the manifest records the original key");
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.variants.len(), 2);
    let prefix = upload_pipeline::manifest::derived_prefix(&k);
    for v in &m.variants {
        assert!(
            v.key.as_str().starts_with(&format!("{prefix}/")),
            "{}",
            v.key
        );
        assert_eq!(
            w.processed.get(&v.key).await.unwrap().body.len() as u64,
            v.bytes
        );
    }
    let q = w.manifest(&infected).await.quarantine.expect("quarantined");
    assert!(
        q.key.as_str().starts_with("quarantine/_long-keys/") && q.key.as_str().len() <= 1024,
        "{}",
        q.key
    );
    // Ordinary keys keep the readable layout.
    let short = ObjectKey::new("uploads/u/a.jpg").unwrap();
    assert_eq!(
        upload_pipeline::manifest::derived_prefix(&short),
        "uploads/u/a.jpg"
    );
}

/// Versioned buckets, events out of order: v2's event is handled first,
/// then v1's (older sequencer). v1 is no longer described by the manifest,
/// but it is still in the bucket, readable by version ID: it is scanned all
/// the same and, infected, quarantined and deleted by its version ID.
#[tokio::test]
async fn older_versions_are_scanned_when_their_events_come_late() {
    let w = versioned_world();
    let k = w.upload("uploads/u/late.jpg", eicar(), "image/jpeg").await;
    w.uploads
        .put(
            &k,
            sample("testdata/hopper.jpg"),
            upload_core::PutOptions::default().with_content_type("image/jpeg"),
        )
        .await
        .unwrap();
    let ids = w.uploads.version_ids(&k);
    let all = w
        .queue
        .receive(
            &upload_pipeline::ReceiveOptions::default()
                .with_wait(Duration::ZERO)
                .with_max_messages(10),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    // v2's event, then v1's.
    let s2 = w.worker.process_message(&all[1]).await.unwrap();
    assert_eq!(s2.clean, 1, "{s2:?}");
    let s1 = w.worker.process_message(&all[0]).await.unwrap();
    assert_eq!((s1.superseded, s1.failed), (1, 0), "{s1:?}");
    assert_eq!(
        w.uploads.version_ids(&k),
        std::slice::from_ref(&ids[1]),
        "the infected v1 is gone by its version ID"
    );
    assert_eq!(
        w.quarantine
            .get(&ObjectKey::new(format!("quarantine/{k}")).unwrap())
            .await
            .unwrap()
            .body,
        eicar()
    );
    let m = w.manifest(&k).await;
    assert_eq!(
        (m.verdict, m.source.version_id.as_deref()),
        (Outcome::Clean, Some(ids[1].as_str())),
        "the manifest still describes v2"
    );
}

/// The deployment doctor's probe is acknowledged by a tag and never
/// processed: no scan, manifest, variants or quarantine; its removal is
/// skipped too.
#[tokio::test]
async fn doctor_probes_are_tagged_received_and_not_processed() {
    use upload_pipeline::worker::probe::{PROBE_ACK_TAG, PROBE_ACK_VALUE, probe_key};
    let (w, _) = mem_world();
    let k = w
        .upload(
            &probe_key("uploads/", "0123abcd"),
            Bytes::from_static(b"upload-doctor probe: safe to delete\n"),
            "text/plain",
        )
        .await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.messages, s.skipped, s.rejected, s.failed), (1, 1, 0, 0));
    assert!(w.queue.is_empty() && w.dlq.is_empty());
    let tags = w.uploads.get_tags(&k).await.unwrap();
    assert_eq!(tags.get(PROBE_ACK_TAG), Some(PROBE_ACK_VALUE));
    assert_eq!(tags.get("scan-status"), None);
    assert!(w.processed.list("").await.unwrap().is_empty());
    assert!(w.quarantine.list("").await.unwrap().is_empty());
    w.uploads.delete(&k).await.unwrap();
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.messages, s.skipped, s.removed, s.failed), (1, 1, 0, 0));
}

/// From the attacker's side: an upload whose key looks like a doctor
/// probe (an app that lets users name keys) never skips the scan. EICAR
/// there is quarantined, and a photo larger than a probe is processed as
/// any upload.
#[tokio::test]
async fn a_probe_key_never_skips_the_scan() {
    use upload_pipeline::worker::probe::{PROBE_ACK_TAG, probe_key};
    let (w, _) = mem_world();
    let infected = w
        .upload(&probe_key("uploads/", "evil"), eicar(), "text/plain")
        .await;
    let photo = w
        .upload(
            &probe_key("uploads/", "big.jpg"),
            sample("photos/photo_colorfulcups_2560x1600_gps.jpg"),
            "image/jpeg",
        )
        .await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.infected, s.clean, s.failed), (1, 1, 0), "{s:?}");
    assert!(
        w.uploads.head(&infected).await.is_err(),
        "moved to quarantine"
    );
    assert_eq!(w.quarantine.list("").await.unwrap().len(), 1);
    let tags = w.uploads.get_tags(&photo).await.unwrap();
    assert_eq!(tags.get("scan-status"), Some("CLEAN"));
    assert_eq!(tags.get(PROBE_ACK_TAG), None);
    assert!(!w.manifest(&photo).await.variants.is_empty());
}

/// Bad input: an original whose trace context is not a W3C `traceparent`
/// (written around the upload API) is processed as any other; the context
/// is only ignored for tracing.
#[tokio::test]
async fn a_malformed_trace_context_does_not_stop_processing() {
    let (w, _) = mem_world();
    let k = ObjectKey::new("uploads/u/traced.jpg").unwrap();
    w.uploads
        .put(
            &k,
            sample("photos/photo_colorfulcups_2560x1600_gps.jpg"),
            upload_core::PutOptions::default()
                .with_content_type("image/jpeg")
                .with_metadata(upload_core::trace::METADATA, "00-not-a-trace-context-01"),
        )
        .await
        .unwrap();
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.clean, s.failed), (1, 0), "{s:?}");
    let m = w.manifest(&k).await;
    assert!(!m.variants.is_empty());
    assert_eq!(
        m.upload.traceparent.as_deref(),
        Some("00-not-a-trace-context-01")
    );
}

/// An iPhone-style HEIC and an AVIF go through the whole flow with the
/// `heif` feature: scanned, tagged CLEAN, two WebP variants of the upright
/// photo without metadata, the size and placeholder in the manifest. A
/// HEIC without coded image data is rejected as corrupt, never tagged
/// CLEAN, and stays where it was.
#[cfg(feature = "heif")]
#[tokio::test]
async fn heic_and_avif_photos_get_variants_and_a_manifest() {
    let policy = upload_core::UploadPolicy::new(
        ["image/heic", "image/heif", "image/avif", "image/jpeg"],
        64 << 20,
    )
    .unwrap();
    let w = common::world_with(
        Arc::new(MemoryScanner::new()),
        upload_pipeline::WorkerConfig::new(policy),
    );
    let heic = w
        .upload(
            "uploads/u/IMG_0001.HEIC",
            sample("testdata/photo_example_1280x854.heic"),
            "image/heic",
        )
        .await;
    let avif = w
        .upload(
            "uploads/u/photo.avif",
            sample("testdata/photo_example_800x533.avif"),
            "image/avif",
        )
        .await;
    let empty = w
        .upload(
            "uploads/u/empty.heic",
            sample("testdata/exiftool_QuickTime.heic"),
            // Labelled the generic way, which HEIC also matches.
            "image/heif",
        )
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.clean, stats.rejected), (3, 2, 1));
    for (k, mime, size, dims) in [
        (
            &heic,
            "image/heic",
            (1280, 854),
            [("thumb", 256, 171), ("medium", 1024, 683)],
        ),
        (
            &avif,
            "image/avif",
            (800, 533),
            [("thumb", 256, 171), ("medium", 800, 533)],
        ),
    ] {
        let m = w.manifest(k).await;
        assert_eq!(m.verdict, Outcome::Clean, "{k}");
        assert_eq!(m.source.sniffed.as_deref(), Some(mime));
        let image = m.image.as_ref().expect("image info");
        assert_eq!((image.width, image.height), size);
        assert!(image.placeholder.is_some());
        let got: Vec<_> = m
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.width, v.height))
            .collect();
        assert_eq!(got, dims, "{k}");
        for v in &m.variants {
            let body = w.processed.get(&v.key).await.unwrap().body;
            assert!(body.starts_with(b"RIFF") && &body[8..12] == b"WEBP");
            assert!(!contains(&body, b"Exif") && !contains(&body, b"XMP"));
        }
        assert_eq!(
            w.uploads.get_tags(k).await.unwrap().get("scan-status"),
            Some("CLEAN")
        );
    }
    let m = w.manifest(&empty).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert!(
        m.reason.as_deref().unwrap().contains("image/heic"),
        "{:?}",
        m.reason
    );
    assert!(m.variants.is_empty());
    assert_eq!(
        w.uploads.get_tags(&empty).await.unwrap().get("scan-status"),
        None
    );
    assert!(w.uploads.head(&empty).await.is_ok(), "the original stays");
}

/// A JPEG XL photo with orientation 6 goes through the whole flow with
/// the `jxl` feature: variants of the upright photo, the manifest, CLEAN.
#[cfg(feature = "jxl")]
#[tokio::test]
async fn jpeg_xl_photos_get_variants_and_a_manifest() {
    let policy = upload_core::UploadPolicy::new(["image/jxl"], 1 << 20).unwrap();
    let w = common::world_with(
        Arc::new(MemoryScanner::new()),
        upload_pipeline::WorkerConfig::new(policy),
    );
    let k = w
        .upload(
            "uploads/u/photo.jxl",
            sample("testdata/derived_hopper_orientation_6_recompressed.jxl"),
            "image/jxl",
        )
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.clean), (1, 1));
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.source.sniffed.as_deref(), Some("image/jxl"));
    let got: Vec<_> = m
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    assert_eq!(got, [("thumb", 128, 128), ("medium", 128, 128)]);
    for v in &m.variants {
        let body = w.processed.get(&v.key).await.unwrap().body;
        assert!(!contains(&body, b"Exif") && !contains(&body, b"XMP"));
    }
    assert_eq!(
        w.uploads.get_tags(&k).await.unwrap().get("scan-status"),
        Some("CLEAN")
    );
}
