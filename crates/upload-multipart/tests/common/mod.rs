//! Shared by the engine tests.

use std::path::Path;
use std::sync::Arc;

use upload_core::ObjectKey;
use upload_multipart::{Error, MultipartUploader, Progress};

/// Uploads `data` with a state file and kills the run (its cancel future
/// completes) once `parts` parts are stored, as a crash would leave it.
///
/// # Panics
/// Unless the run ends cancelled.
pub async fn interrupt_after(
    uploader: &MultipartUploader,
    key: &ObjectKey,
    data: &[u8],
    state: &Path,
    parts: u32,
) {
    let kill = Arc::new(tokio::sync::Notify::new());
    let k = kill.clone();
    let err = uploader
        .upload(
            key,
            data,
            data.len() as u64,
            Some(state),
            move |p: Progress| {
                if p.parts_done == parts {
                    k.notify_one();
                }
            },
            kill.notified(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
}
