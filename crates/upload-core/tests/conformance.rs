//! MemoryStorage against the Storage conformance suite.

use upload_core::MemoryStorage;

#[tokio::test]
async fn memory_storage_passes_the_storage_suite() {
    let s = MemoryStorage::new("conformance").unwrap();
    upload_core::testkit::storage::run_all(&s, "suite").await;
    assert!(s.is_empty(), "the suite cleans up after itself");
}

#[tokio::test]
async fn versioned_memory_storage_passes_the_version_suite() {
    let s = MemoryStorage::new("versioned").unwrap().with_versioning();
    upload_core::testkit::storage::versions(&s, "suite").await;
    assert!(s.is_empty(), "the suite cleans up after itself");
    assert!(
        s.version_ids(&upload_core::testkit::key("suite", "versions/photo.jpg"))
            .is_empty(),
        "every version removed"
    );
}
