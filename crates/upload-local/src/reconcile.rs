//! Start-up reconciliation: an event for every original the worker has not
//! finished, so that an object written just before a crash (its event
//! never sent) is processed after the restart.

use upload_core::event::{EventSink, S3EventRecord};
use upload_core::{Error as CoreError, Storage};
use upload_pipeline::manifest::manifest_key;
use upload_scan::Quarantine;

use crate::error::LocalError;

/// What [`reconcile`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Originals listed in the uploads bucket.
    pub listed: u64,
    /// Of those, with a manifest in the processed bucket (done: clean,
    /// rejected, or quarantined with the original still in place).
    pub done: u64,
    /// Of those, without a manifest but with a copy in quarantine (a
    /// crash between the copy to quarantine and the delete): left alone.
    pub quarantined: u64,
    /// Events sent: one `ObjectCreated:Put` per remaining original.
    pub sent: u64,
}

/// Lists `uploads` and sends, to `sink`, an S3 `ObjectCreated:Put` event
/// for every original that has no manifest in `processed`
/// ([`manifest_key`]) and no copy in `quarantine`, with the original's
/// size and ETag, in `region`. A message already waiting in the queue for
/// the same object gets a duplicate: the worker is idempotent through the
/// manifest, so a duplicate costs one read.
///
/// Costs one LIST, then one HEAD per original (two when it has no
/// manifest).
///
/// # Errors
/// [`LocalError::Reconcile`] when a bucket cannot be read or an event
/// cannot be sent (events sent before the failure stay sent).
pub async fn reconcile(
    uploads: &dyn Storage,
    processed: &dyn Storage,
    quarantine: &Quarantine,
    sink: &dyn EventSink,
    region: &str,
) -> Result<ReconcileReport, LocalError> {
    let fail = |what: String| LocalError::Reconcile(what);
    let mut report = ReconcileReport::default();
    let originals = uploads
        .list("")
        .await
        .map_err(|e| fail(format!("listing {}: {e}", uploads.bucket())))?;
    for meta in originals {
        report.listed += 1;
        let mkey = match manifest_key(&meta.key) {
            Ok(k) => k,
            Err(e) => {
                // A key the worker cannot make a manifest key for: it
                // would fail the same way on every delivery.
                tracing::warn!(key = %meta.key, error = %e, "reconciliation skips a key without a manifest key");
                continue;
            }
        };
        match processed.head(&mkey).await {
            Ok(_) => {
                report.done += 1;
                continue;
            }
            Err(CoreError::NotFound { .. }) => {}
            Err(e) => return Err(fail(format!("HEAD {mkey}: {e}"))),
        }
        if let Ok(qkey) = quarantine.key_for(&meta.key) {
            match quarantine.storage().head(&qkey).await {
                Ok(_) => {
                    report.quarantined += 1;
                    continue;
                }
                Err(CoreError::NotFound { .. }) => {}
                Err(e) => return Err(fail(format!("HEAD {qkey}: {e}"))),
            }
        }
        let mut record = S3EventRecord::new(
            region,
            uploads.bucket(),
            &meta.key,
            "ObjectCreated:Put",
            Some(meta.size),
            Some(&meta.etag),
            "",
        );
        record.s3.object.version_id = meta.version_id.clone();
        sink.publish(record.to_message())
            .await
            .map_err(|e| fail(format!("sending the event of {}: {e}", meta.key)))?;
        tracing::info!(key = %meta.key, "reconciliation: event sent for an unprocessed original");
        report.sent += 1;
    }
    Ok(report)
}
