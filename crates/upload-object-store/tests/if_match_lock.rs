//! If-Match writes on `LocalFileSystem`, which has no `PutMode::Update`:
//! the adapter's create-only lock object decides between concurrent
//! conditional writers, and a lock left by a crashed writer is broken
//! after 30 s.

use std::time::{Duration, SystemTime};

use upload_core::{Bytes, Error, ObjectKey, PutOptions, Storage};
use upload_object_store::ObjectStoreStorage;

#[tokio::test]
async fn a_held_lock_refuses_a_conditional_write_and_a_stale_one_is_broken() {
    let dir = std::env::temp_dir().join(format!("upload-if-match-{}", uuid::Uuid::new_v4()));
    let s = ObjectStoreStorage::local("uploads", &dir).unwrap();
    let k = ObjectKey::new("processed/a/manifest.json").unwrap();
    let v1 = s
        .put(&k, Bytes::from_static(b"v1"), PutOptions::default())
        .await
        .unwrap();
    // Another writer holds the lock (just taken).
    let lock = dir.join(".upload-sdk/locks/processed/a/manifest.json");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, b"lock").unwrap();
    let err = s
        .put(
            &k,
            Bytes::from_static(b"v2"),
            PutOptions::default().with_if_match(v1.etag.clone()),
        )
        .await
        .expect_err("a conditional write in progress elsewhere");
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err:?}");
    assert_eq!(s.get(&k).await.unwrap().body.as_ref(), b"v1", "untouched");
    // The same lock, left 60 s ago by a writer that crashed, is broken.
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    let v2 = s
        .put(
            &k,
            Bytes::from_static(b"v2"),
            PutOptions::default().with_if_match(v1.etag.clone()),
        )
        .await
        .expect("a stale lock is broken");
    assert_eq!(v2.etag, upload_core::storage::etag_of(b"v2"));
    assert!(!lock.exists(), "the lock is released after the write");
    assert_eq!(s.get(&k).await.unwrap().body.as_ref(), b"v2");
    std::fs::remove_dir_all(&dir).unwrap();
}
