//! `upload-rescan` on real services: the worker's S3 buckets and clamd.

use std::sync::Arc;

use upload_core::Storage;
use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_pipeline::{Rescan, RescanOptions};
use upload_scan::{ClamdConfig, ClamdScanner, Quarantine};

use crate::worker_cli::clamd_address;

/// What a rescan reads, scans and moves: the worker's buckets and clamd.
#[derive(Debug, Clone)]
pub struct RescanPlan {
    /// Bucket of the originals.
    pub uploads_bucket: String,
    /// Bucket of variants and manifests.
    pub processed_bucket: String,
    /// Bucket of quarantined originals (may be the uploads bucket).
    pub quarantine_bucket: String,
    /// Key prefix of quarantined originals, e.g. `quarantine/`.
    pub quarantine_prefix: String,
    /// clamd: `host:port` or a Unix socket path.
    pub clamd: String,
    /// Which manifests, compared against which database, how many at once.
    pub options: RescanOptions,
}

/// Builds the rescan of `plan`.
///
/// # Errors
/// An invalid bucket name.
pub fn build(settings: &AwsSettings, sdk: &SdkConfig, plan: &RescanPlan) -> Result<Rescan, String> {
    let s3 = settings.s3_client(sdk);
    let bucket = |name: &str| -> Result<Arc<dyn Storage>, String> {
        Ok(Arc::new(
            S3Storage::new(s3.clone(), name).map_err(|e| e.to_string())?,
        ))
    };
    let scanner = Arc::new(ClamdScanner::new(ClamdConfig::new(clamd_address(
        &plan.clamd,
    ))));
    Ok(Rescan::new(
        bucket(&plan.uploads_bucket)?,
        bucket(&plan.processed_bucket)?,
        scanner,
        Quarantine::new(
            bucket(&plan.quarantine_bucket)?,
            plan.quarantine_prefix.clone(),
        ),
    )
    .with_options(plan.options.clone()))
}
