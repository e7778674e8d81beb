//! MemoryMultipartStore against the MultipartStore conformance suite.

use std::sync::Arc;

use upload_core::MemoryStorage;
use upload_multipart::MemoryMultipartStore;

#[tokio::test]
async fn memory_multipart_store_passes_the_multipart_suite() {
    let storage = Arc::new(MemoryStorage::new("conformance").unwrap());
    let store = MemoryMultipartStore::new(storage.clone());
    upload_core::testkit::multipart::run_all(&store, storage.as_ref(), "suite").await;
    assert_eq!(store.uploads_in_progress(), 0, "no upload left behind");
}
