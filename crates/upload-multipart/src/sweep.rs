//! Sweeping incomplete multipart uploads: their parts are stored, and
//! billed, until the upload is completed or aborted.
//!
//! Two tools, best used together: [`abort_stale_uploads`] aborts what is
//! older than an age now (a cron job, or an admin command), and the bucket
//! lifecycle rule `AbortIncompleteMultipartUpload` makes S3 do it on its own
//! ([`lifecycle_rule_json`] gives the rule for the AWS CLI; the `s3` feature
//! of `upload-core` applies it with
//! `S3Storage::configure_abort_incomplete_multipart`).

use std::time::{Duration, SystemTime};

use upload_core::{Error as CoreError, MultipartStore, MultipartUploadInfo};

use crate::error::Result;

/// What [`abort_stale_uploads`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SweepReport {
    /// Uploads aborted (or found already gone: completed or aborted
    /// meanwhile).
    pub aborted: Vec<MultipartUploadInfo>,
    /// Uploads in progress younger than the age, left alone.
    pub kept: usize,
    /// Uploads whose abort failed, with the error; the next sweep tries
    /// again.
    pub failed: Vec<(MultipartUploadInfo, CoreError)>,
}

/// Aborts the uploads in progress under `prefix` that were initiated more
/// than `older_than` before `now` (one whose store gives no initiation
/// time is kept). An upload that is gone by the time it is
/// aborted (completed meanwhile) counts as aborted; other failures are
/// reported per upload and do not stop the sweep.
///
/// # Errors
/// [`crate::Error::Store`] when the uploads cannot be listed.
pub async fn abort_stale_uploads(
    store: &dyn MultipartStore,
    prefix: &str,
    older_than: Duration,
    now: SystemTime,
) -> Result<SweepReport> {
    let cutoff = now
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = SweepReport::default();
    for u in store.list_multipart_uploads(prefix).await? {
        // An upload of unknown age may be running: kept.
        if u.initiated.is_none_or(|t| t > cutoff) {
            report.kept += 1;
            continue;
        }
        match store.abort_multipart_upload(&u.key, &u.upload_id).await {
            Ok(()) | Err(CoreError::NoSuchUpload { .. }) => {
                tracing::info!(key = %u.key, upload_id = %u.upload_id, "stale multipart upload aborted");
                report.aborted.push(u);
            }
            Err(e) => {
                tracing::warn!(key = %u.key, upload_id = %u.upload_id, error = %e, "abort failed");
                report.failed.push((u, e));
            }
        }
    }
    Ok(report)
}

/// The bucket lifecycle configuration (JSON for
/// `aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration`)
/// with one rule that aborts uploads left incomplete `days` days after
/// they were initiated (`AbortIncompleteMultipartUpload`,
/// `DaysAfterInitiation`, at least 1), for keys under `prefix` (empty: the
/// whole bucket).
///
/// ```
/// let rule = upload_multipart::sweep::lifecycle_rule_json("uploads/", 2);
/// assert_eq!(
///     rule["Rules"][0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
///     2
/// );
/// ```
pub fn lifecycle_rule_json(prefix: &str, days: u32) -> serde_json::Value {
    serde_json::json!({
        "Rules": [{
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days.max(1)},
        }]
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use upload_core::{MemoryStorage, ObjectKey, PutOptions};

    use super::*;
    use crate::MemoryMultipartStore;

    #[tokio::test]
    async fn aborts_only_what_is_older_than_the_age() {
        let store = MemoryMultipartStore::new(Arc::new(MemoryStorage::new("sweep").unwrap()));
        let old = ObjectKey::new("uploads/old.bin").unwrap();
        let young = ObjectKey::new("uploads/young.bin").unwrap();
        let other = ObjectKey::new("other/x.bin").unwrap();
        let id_old = store
            .create_multipart_upload(&old, PutOptions::default())
            .await
            .unwrap();
        store
            .create_multipart_upload(&other, PutOptions::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let cutoff = SystemTime::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let id_young = store
            .create_multipart_upload(&young, PutOptions::default())
            .await
            .unwrap();
        // Older than 1 h, an hour after the cutoff: only `old`.
        let hour = Duration::from_secs(3600);
        let r = abort_stale_uploads(&store, "uploads/", hour, cutoff + hour)
            .await
            .unwrap();
        let aborted: Vec<_> = r.aborted.iter().map(|u| u.upload_id.as_str()).collect();
        assert_eq!(aborted, [id_old.as_str()]);
        assert_eq!((r.kept, r.failed.len()), (1, 0));
        let left = store.list_multipart_uploads("").await.unwrap();
        let keys: Vec<_> = left.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["other/x.bin", "uploads/young.bin"]);
        assert_eq!(left[1].upload_id, id_young);
    }

    #[test]
    fn lifecycle_rule_has_the_s3_shape() {
        let r = lifecycle_rule_json("", 0);
        assert_eq!(r["Rules"][0]["Status"], "Enabled");
        assert_eq!(r["Rules"][0]["Filter"]["Prefix"], "");
        assert_eq!(
            r["Rules"][0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"], 1,
            "S3 refuses 0 days"
        );
    }
}
