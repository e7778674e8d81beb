//! The Storage and MultipartStore conformance suites on LocalFileSystem
//! and InMemory.

use upload_core::testkit;
use upload_object_store::ObjectStoreStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_passes_the_storage_suite() {
    let s = ObjectStoreStorage::in_memory("conformance").unwrap();
    testkit::storage::run_all(&s, "suite").await;
    use upload_core::Storage;
    assert!(s.list("").await.unwrap().is_empty(), "the suite cleans up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_passes_the_multipart_suite() {
    let s = ObjectStoreStorage::in_memory("conformance").unwrap();
    testkit::multipart::run_all(&s, &s, "suite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_system_passes_the_storage_suite() {
    let dir = tempdir("storage");
    let s = ObjectStoreStorage::local("conformance", &dir).unwrap();
    testkit::storage::run_all(&s, "suite").await;
    use upload_core::Storage;
    assert!(s.list("").await.unwrap().is_empty(), "the suite cleans up");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_system_passes_the_multipart_suite() {
    let dir = tempdir("multipart");
    let s = ObjectStoreStorage::local("conformance", &dir).unwrap();
    testkit::multipart::run_all(&s, &s, "suite").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "upload-object-store-{name}-{}",
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn stores_that_cannot_sign_say_so() {
    let s = ObjectStoreStorage::in_memory("conformance").unwrap();
    let key = upload_core::ObjectKey::new("uploads/alice/a.png").unwrap();
    let err = s
        .sign_upload(&key, "image/png", std::time::Duration::from_secs(60))
        .await
        .expect_err("InMemory cannot sign");
    assert!(
        matches!(&err, upload_core::Error::S3 { code, status: 501, .. } if code == "NotImplemented"),
        "{err:?}"
    );
}
