//! MemoryStorage against the Storage conformance suite.

use upload_core::MemoryStorage;

#[tokio::test]
async fn memory_storage_passes_the_storage_suite() {
    let s = MemoryStorage::new("conformance").unwrap();
    upload_core::testkit::storage::run_all(&s, "suite").await;
    assert!(s.is_empty(), "the suite cleans up after itself");
}
