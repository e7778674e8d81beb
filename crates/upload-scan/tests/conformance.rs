//! MemoryScanner against the Scanner conformance suite.

#[tokio::test]
async fn memory_scanner_passes_the_scanner_suite() {
    upload_scan::testkit::run_all(&upload_scan::MemoryScanner::new()).await;
}
