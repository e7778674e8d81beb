//! MemoryScanner against the Scanner conformance suite, with its default
//! archive limits and with small ones (as the suite builds archives past
//! them).

use upload_scan::{MemoryScanner, ScanLimits};

#[tokio::test]
async fn memory_scanner_passes_the_scanner_suite() {
    let limits = ScanLimits::default()
        .with_max_file_size(1 << 20)
        .with_max_scan_size(4 << 20);
    let s = MemoryScanner::new().with_limits(limits.clone());
    upload_scan::testkit::run_all(&s, &limits).await;
}

/// The suite's limit cases with clamd's default limits too (MaxScanSize
/// 400 MiB is left to the small-limit run above: it would unpack 400 MiB).
#[tokio::test]
async fn memory_scanner_with_clamd_default_limits() {
    let s = MemoryScanner::new();
    let limits = ScanLimits::default();
    assert_eq!(s.limits(), &limits);
    upload_scan::testkit::nesting_past_max_recursion_is_unscannable(&s, &limits).await;
    upload_scan::testkit::more_files_than_max_files_is_unscannable(&s, &limits).await;
    upload_scan::testkit::looks_into_zip_and_gzip(&s).await;
}
