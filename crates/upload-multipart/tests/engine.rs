//! The client engine on the in-memory store: faults injected into part
//! uploads, a killed upload resumed, permanent errors, short bodies.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use upload_core::{
    ChecksumAlgorithm, CompletedPart, MemoryStorage, MultipartStore, MultipartUploadInfo,
    ObjectKey, ObjectMeta, PartChecksum, PutOptions, Result, Storage, UploadedPart,
};
use upload_multipart::{Error, MemoryMultipartStore, MultipartUploader, Progress, UploadOptions};

const MIB: usize = 1024 * 1024;

fn body(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A store whose part uploads fail as told, and which records every part
/// number sent.
#[derive(Debug)]
struct Faulty {
    inner: MemoryMultipartStore,
    calls: AtomicU32,
    /// Every n-th part upload fails with a transient error (0: none).
    transient_every: AtomicU32,
    /// This part number fails with a permanent error.
    permanent_part: Option<u32>,
    /// Every n-th checksummed part arrives with one byte flipped (0: none).
    corrupt_every: AtomicU32,
    sent: Mutex<Vec<u32>>,
    /// Checksums the store was given, by part number.
    checksums: Mutex<Vec<(u32, PartChecksum)>>,
    /// Keep a copy of each part and drop the body given, as the S3 client
    /// does once a part is sent (the in-memory store keeps the body).
    copy_bodies: std::sync::atomic::AtomicBool,
    /// Where each body given lived in memory.
    addresses: Mutex<Vec<usize>>,
}

impl Faulty {
    fn new(storage: Arc<MemoryStorage>, transient_every: u32, permanent_part: Option<u32>) -> Self {
        Self {
            inner: MemoryMultipartStore::new(storage),
            calls: AtomicU32::new(0),
            transient_every: AtomicU32::new(transient_every),
            permanent_part,
            corrupt_every: AtomicU32::new(0),
            sent: Mutex::default(),
            checksums: Mutex::default(),
            copy_bodies: std::sync::atomic::AtomicBool::new(false),
            addresses: Mutex::default(),
        }
    }

    /// Records the call and fails it as configured; returns the call number.
    async fn fault(&self, key: &ObjectKey, part_number: u32) -> Result<u32> {
        self.sent.lock().unwrap().push(part_number);
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
        if self.permanent_part == Some(part_number) {
            return Err(upload_core::Error::AccessDenied {
                bucket: "uploads".into(),
                key: key.to_string(),
                reason: "injected".into(),
            });
        }
        let every = self.transient_every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            return Err(upload_core::Error::Unavailable {
                reason: format!("injected 503 on call {n}"),
            });
        }
        Ok(n)
    }

    /// The body as it arrives: one byte flipped on every `corrupt_every`-th
    /// call; a copy when `copy_bodies`.
    fn arrive(&self, n: u32, body: Bytes) -> Bytes {
        self.addresses.lock().unwrap().push(body.as_ptr() as usize);
        let every = self.corrupt_every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            let mut b = body.to_vec();
            let i = b.len() / 2;
            b[i] ^= 0x20;
            Bytes::from(b)
        } else if self.copy_bodies.load(Ordering::SeqCst) {
            Bytes::copy_from_slice(&body)
        } else {
            body
        }
    }
}

#[async_trait]
impl MultipartStore for Faulty {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn create_multipart_upload(&self, key: &ObjectKey, opts: PutOptions) -> Result<String> {
        self.inner.create_multipart_upload(key, opts).await
    }
    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        let n = self.fault(key, part_number).await?;
        self.inner
            .upload_part(key, upload_id, part_number, self.arrive(n, body))
            .await
    }
    async fn upload_part_checked(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: &PartChecksum,
    ) -> Result<UploadedPart> {
        let n = self.fault(key, part_number).await?;
        self.checksums
            .lock()
            .unwrap()
            .push((part_number, checksum.clone()));
        self.inner
            .upload_part_checked(key, upload_id, part_number, self.arrive(n, body), checksum)
            .await
    }
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<UploadedPart>> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        self.inner
            .complete_multipart_upload(key, upload_id, parts)
            .await
    }
    async fn complete_multipart_upload_create_only(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        self.inner
            .complete_multipart_upload_create_only(key, upload_id, parts)
            .await
    }
    async fn abort_multipart_upload(&self, key: &ObjectKey, upload_id: &str) -> Result<()> {
        self.inner.abort_multipart_upload(key, upload_id).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<MultipartUploadInfo>> {
        self.inner.list_multipart_uploads(prefix).await
    }
}

fn options() -> UploadOptions {
    UploadOptions::default()
        .with_part_size(5 * MIB as u64)
        .with_concurrency(4)
        .with_retries(5, Duration::from_millis(5), Duration::from_millis(50))
}

/// Uploads all of `data` with no progress callback and no cancel.
async fn upload_all(
    uploader: &MultipartUploader,
    key: &ObjectKey,
    data: &[u8],
    size: u64,
    state: Option<&std::path::Path>,
) -> Result<ObjectMeta, Error> {
    uploader
        .upload(key, data, size, state, |_| {}, std::future::pending())
        .await
}

/// Every third part request fails with a 503: each failed part is sent
/// again, the others go on, and the object is byte for byte the input.
#[tokio::test]
async fn transient_part_failures_are_retried_and_the_bytes_arrive_whole() {
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 3, None));
    let uploader = MultipartUploader::new(store.clone(), options());
    let data = body(23 * MIB + 12_345);
    let key = ObjectKey::new("uploads/big.bin").unwrap();
    let mut last = None;
    let meta = uploader
        .upload(
            &key,
            &data[..],
            data.len() as u64,
            None,
            |p| last = Some(p),
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert!(meta.etag.ends_with("-5"), "{}", meta.etag);
    assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &data[..]);
    let p: Progress = last.unwrap();
    assert_eq!(
        (p.bytes_done, p.parts_done, p.parts_total),
        (data.len() as u64, 5, 5)
    );
    let sent = store.sent.lock().unwrap().clone();
    assert!(sent.len() > 5, "retries happened: {sent:?}");
    assert!(
        p.bytes_sent > data.len() as u64,
        "retries counted in bytes sent"
    );
    assert_eq!(store.inner.uploads_in_progress(), 0);
}

/// Every second part arrives with a byte flipped on the way: the CRC-32C
/// sent with it (the default) makes the store refuse it, the engine sends
/// it again, and the object is the input. SHA-256 works the same way;
/// without a checksum, corruption would go into the object.
#[tokio::test]
async fn parts_changed_in_transit_are_refused_by_their_checksum_and_resent() {
    let data = body(16 * MIB + 3);
    let key = ObjectKey::new("uploads/crc.bin").unwrap();
    for algorithm in [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Sha256] {
        let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
        let store = Arc::new(Faulty::new(storage.clone(), 0, None));
        store.corrupt_every.store(2, Ordering::SeqCst);
        let uploader =
            MultipartUploader::new(store.clone(), options().with_checksum(Some(algorithm)));
        let meta = upload_all(&uploader, &key, &data, data.len() as u64, None)
            .await
            .unwrap();
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &data[..]);
        let sent = store.sent.lock().unwrap().clone();
        // 4 parts of 5 MiB; every second request corrupted and resent.
        assert!(
            sent.len() >= 4 + 2,
            "corrupted parts were sent again: {sent:?}"
        );
        assert_eq!(sent.iter().collect::<BTreeSet<_>>().len(), 4);
        let checksums = store.checksums.lock().unwrap().clone();
        assert_eq!(checksums.len(), sent.len(), "every request carried one");
        let part1 = checksums.iter().find(|(n, _)| *n == 1).unwrap();
        assert_eq!(part1.1, algorithm.checksum(&data[..5 * MIB]));
        assert_eq!(
            part1.1.value.len(),
            if algorithm == ChecksumAlgorithm::Crc32c {
                8
            } else {
                44
            }
        );
    }
    // The control: with no checksum, the flipped byte is not caught.
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    store.corrupt_every.store(2, Ordering::SeqCst);
    let uploader = MultipartUploader::new(store.clone(), options().with_checksum(None));
    upload_all(&uploader, &key, &data, data.len() as u64, None)
        .await
        .unwrap();
    assert!(store.checksums.lock().unwrap().is_empty());
    let stored = storage.get(&key).await.unwrap().body;
    assert_eq!(stored.len(), data.len());
    assert!(stored.as_ref() != &data[..], "the corruption went through");
}

/// The upload is killed after two parts; resumed from its state file, only
/// the missing parts are sent, and the object is whole.
#[tokio::test]
async fn a_killed_upload_resumes_without_resending_stored_parts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("big.bin.upload-state.json");
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    let data = body(31 * MIB);
    let key = ObjectKey::new("uploads/resumed.bin").unwrap();

    interrupted(store.clone(), &key, &data, &state, 2).await;
    assert!(state.exists(), "state kept for the resume");
    let saved = upload_multipart::ResumeState::load(&state).unwrap();
    let stored: BTreeSet<u32> = saved.parts.iter().map(|p| p.part_number).collect();
    assert_eq!(stored, BTreeSet::from([1, 2]));
    store.sent.lock().unwrap().clear();

    // A new process: same file, same state.
    let uploader = MultipartUploader::new(store.clone(), options());
    let meta = upload_all(&uploader, &key, &data, data.len() as u64, Some(&state))
        .await
        .unwrap();
    let resent: BTreeSet<u32> = store.sent.lock().unwrap().iter().copied().collect();
    assert_eq!(
        resent,
        BTreeSet::from([3, 4, 5, 6, 7]),
        "only the missing parts"
    );
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &data[..]);
    assert!(!state.exists(), "state removed when done");
}

/// A permanent error aborts the upload: no parts are left stored.
#[tokio::test]
async fn a_permanent_error_aborts_the_upload() {
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, Some(3)));
    let uploader = MultipartUploader::new(store.clone(), options());
    let data = body(20 * MIB);
    let key = ObjectKey::new("uploads/denied.bin").unwrap();
    let err = upload_all(&uploader, &key, &data, data.len() as u64, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(upload_core::Error::AccessDenied { .. })),
        "{err}"
    );
    assert_eq!(store.inner.uploads_in_progress(), 0, "aborted");
    assert!(storage.head(&key).await.is_err());
    // Not retried: the permanent part was sent once.
    let sent = store.sent.lock().unwrap().clone();
    assert_eq!(sent.iter().filter(|n| **n == 3).count(), 1);
}

/// A body shorter than declared is a typed error, and the upload is
/// aborted; a state file for another object is refused.
#[tokio::test]
async fn short_bodies_and_foreign_state_files_are_refused() {
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    let uploader = MultipartUploader::new(store.clone(), options());
    let data = body(7 * MIB);
    let key = ObjectKey::new("uploads/short.bin").unwrap();
    let err = upload_all(&uploader, &key, &data, 12 * MIB as u64, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ShortBody { .. }), "{err}");
    assert_eq!(store.inner.uploads_in_progress(), 0);

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let other = upload_multipart::ResumeState {
        bucket: "uploads".into(),
        key: "uploads/other.bin".into(),
        upload_id: "x".into(),
        object_size: data.len() as u64,
        part_size: 5 * MIB as u64,
        parts: vec![],
        checksum: None,
    };
    std::fs::write(&state, serde_json::to_vec(&other).unwrap()).unwrap();
    let err = upload_all(&uploader, &key, &data, data.len() as u64, Some(&state))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::State { .. }), "{err}");
    assert!(err.to_string().contains("another upload"), "{err}");
}

/// Kills the upload after `parts` parts, one part at a time.
async fn interrupted(
    store: Arc<Faulty>,
    key: &ObjectKey,
    data: &[u8],
    state: &std::path::Path,
    parts: u32,
) {
    let uploader = MultipartUploader::new(store, options().with_concurrency(1));
    common::interrupt_after(&uploader, key, data, state, parts).await;
}

/// An outage longer than the retries, with a state file: the upload and
/// its state are kept, and the next run finishes it.
#[tokio::test]
async fn an_outage_past_the_retries_keeps_the_upload_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 1, None));
    let data = body(12 * MIB);
    let key = ObjectKey::new("uploads/outage.bin").unwrap();
    let uploader = MultipartUploader::new(store.clone(), options());
    let err = upload_all(&uploader, &key, &data, data.len() as u64, Some(&state))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(upload_core::Error::Unavailable { .. })),
        "{err}"
    );
    assert_eq!(store.inner.uploads_in_progress(), 1, "kept");
    assert!(state.exists());
    store.transient_every.store(0, Ordering::SeqCst);
    upload_all(&uploader, &key, &data, data.len() as u64, Some(&state))
        .await
        .unwrap();
    assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &data[..]);
}

/// The file changed (same size) between the runs: stored parts that differ
/// are sent again, and the object is the new file, never a mix.
#[tokio::test]
async fn a_file_changed_before_resume_is_never_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    let key = ObjectKey::new("uploads/changed.bin").unwrap();
    let old = body(16 * MIB);
    interrupted(store.clone(), &key, &old, &state, 2).await;
    let mut new = old.clone();
    new[6 * MIB] ^= 0xFF; // part 2 changes; part 1 does not
    store.sent.lock().unwrap().clear();
    upload_all(
        &MultipartUploader::new(store.clone(), options()),
        &key,
        &new,
        new.len() as u64,
        Some(&state),
    )
    .await
    .unwrap();
    let sent: BTreeSet<u32> = store.sent.lock().unwrap().iter().copied().collect();
    assert_eq!(
        sent,
        BTreeSet::from([2, 3, 4]),
        "part 1 kept, part 2 sent again"
    );
    assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &new[..]);
}

/// The saved upload is gone (a sweeper aborted it): the run starts over.
#[tokio::test]
async fn a_state_whose_upload_is_gone_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    let key = ObjectKey::new("uploads/swept.bin").unwrap();
    let data = body(11 * MIB);
    interrupted(store.clone(), &key, &data, &state, 1).await;
    let saved = upload_multipart::ResumeState::load(&state).unwrap();
    store
        .abort_multipart_upload(&key, &saved.upload_id)
        .await
        .unwrap();
    upload_all(
        &MultipartUploader::new(store.clone(), options()),
        &key,
        &data,
        data.len() as u64,
        Some(&state),
    )
    .await
    .unwrap();
    assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &data[..]);
    assert!(!state.exists());
}

/// Without a state file nothing can resume: a cancel aborts; so does a
/// body longer than declared (a file that grew).
#[tokio::test]
async fn without_a_state_file_a_cancel_aborts_and_long_bodies_are_refused() {
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    let key = ObjectKey::new("uploads/cancel.bin").unwrap();
    let data = body(16 * MIB);
    let err = MultipartUploader::new(store.clone(), options().with_concurrency(1))
        .upload(
            &key,
            &data[..],
            data.len() as u64,
            None,
            |_| {},
            tokio::time::sleep(Duration::from_millis(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert_eq!(store.inner.uploads_in_progress(), 0, "aborted");

    let err = upload_all(
        &MultipartUploader::new(store.clone(), options()),
        &key,
        &data,
        10 * MIB as u64,
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::LongBody { .. }), "{err}");
    assert_eq!(store.inner.uploads_in_progress(), 0, "aborted");
    assert!(storage.head(&key).await.is_err());
}

/// A file is uploaded with positioned reads; one that grows or shrinks
/// while it is uploaded is refused (never a cut or padded object), and a
/// missing one is a typed error.
#[tokio::test]
async fn files_upload_with_positioned_reads_and_must_keep_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.bin");
    let data = body(12 * MIB + 5);
    std::fs::write(&path, &data).unwrap();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 4, None));
    let uploader = MultipartUploader::new(store.clone(), options());
    let key = ObjectKey::new("uploads/file.bin").unwrap();
    let meta = uploader
        .upload_file(&key, &path, None, |_| {}, std::future::pending())
        .await
        .unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert!(meta.etag.ends_with("-3"), "{}", meta.etag);
    assert_eq!(storage.get(&key).await.unwrap().body.as_ref(), &data[..]);

    // Grows after the first part: the upload is not completed with a cut copy.
    let grow = |p: Progress| {
        if p.parts_done == 1 {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"more").unwrap();
        }
    };
    let key2 = ObjectKey::new("uploads/grown.bin").unwrap();
    let err = uploader
        .upload_file(&key2, &path, None, grow, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LongBody { expected } if expected == data.len() as u64),
        "{err:?}"
    );
    // Shrinks after the first part (one part in flight, so the last one is
    // read after): the last part cannot be read whole.
    std::fs::write(&path, &data).unwrap();
    let uploader = MultipartUploader::new(store.clone(), options().with_concurrency(1));
    let shrink = |p: Progress| {
        if p.parts_done == 1 {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(11 * MIB as u64).unwrap();
        }
    };
    let err = uploader
        .upload_file(&key2, &path, None, shrink, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ShortBody { .. }), "{err:?}");
    assert!(storage.head(&key2).await.is_err(), "nothing was completed");
    assert_eq!(store.inner.uploads_in_progress(), 0, "both were aborted");

    let err = uploader
        .upload_file(
            &key2,
            &dir.path().join("missing"),
            None,
            |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err:?}");
}

/// Part buffers the store has let go of are read into again: 20 parts go
/// through at most concurrency + 1 buffers, and every part still carries
/// its own bytes (each part of the input differs from every other).
#[tokio::test]
async fn part_buffers_are_reused_and_never_mix_parts() {
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    store.copy_bodies.store(true, Ordering::SeqCst);
    let uploader = MultipartUploader::new(store.clone(), options().with_concurrency(3));
    let data = body(20 * 5 * MIB - 123);
    let key = ObjectKey::new("uploads/reuse.bin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reuse.bin");
    std::fs::write(&path, &data).unwrap();
    for (i, how) in ["reader", "file"].iter().enumerate() {
        store.addresses.lock().unwrap().clear();
        let meta = if i == 0 {
            upload_all(&uploader, &key, &data, data.len() as u64, None).await
        } else {
            uploader
                .upload_file(&key, &path, None, |_| {}, std::future::pending())
                .await
        }
        .unwrap();
        assert!(meta.etag.ends_with("-20"), "{how}: {}", meta.etag);
        let got = storage.get(&key).await.unwrap().body;
        assert!(got[..] == data[..], "{how}: the object is the input");
        let addresses = store.addresses.lock().unwrap().clone();
        assert_eq!(addresses.len(), 20);
        let distinct: BTreeSet<usize> = addresses.into_iter().collect();
        assert!(
            distinct.len() <= 4,
            "{how}: {} buffers for 20 parts at 3 in flight",
            distinct.len()
        );
    }
}

/// A 0-byte body has no multipart plan: refused as `EmptyObject` before
/// any request, so no upload is left open (empty objects go by one PUT).
#[tokio::test]
async fn an_empty_body_is_refused_before_any_request() {
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let store = Arc::new(Faulty::new(storage.clone(), 0, None));
    let key = ObjectKey::new("uploads/empty.bin").unwrap();
    let err = upload_all(
        &MultipartUploader::new(store.clone(), options()),
        &key,
        &[],
        0,
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::EmptyObject), "{err}");
    assert_eq!(store.inner.uploads_in_progress(), 0, "nothing created");
    assert!(store.sent.lock().unwrap().is_empty(), "no part sent");
    assert!(storage.head(&key).await.is_err());
}
