//! Probe objects of the deployment doctor (`deploy::Doctor`, feature
//! `sqs`): how the worker recognises them and acknowledges their events.
//!
//! The doctor proves that the bucket's notifications reach the queue by
//! writing a small object `{prefix}.upload-doctor/probe-{uuid}` and
//! waiting for its ObjectCreated event. A running worker may receive that
//! event first: it then scans the probe and, clean, does not process it
//! (no manifest, no variants, no notification to the app) but tags the
//! probe
//! [`PROBE_ACK_TAG`]` = `[`PROBE_ACK_VALUE`], which the doctor reads as
//! "the event arrived", and deletes the message. The probe's
//! ObjectRemoved event (the doctor deletes it) finds no manifest and is
//! skipped.
//!
//! Keys are chosen by the application, so the check does not rely on
//! them alone: an object at a probe key that is larger than
//! [`PROBE_MAX_BYTES`] or not clean is processed like any upload
//! (quarantined when infected), and a probe is never tagged CLEAN.

/// Directory segment that holds probe objects, right under the uploads
/// prefix. Upload keys never contain it: keys are chosen by the app
/// (`uploads/{owner}/{uuid}.{ext}`, owners without dots).
pub const PROBE_DIR: &str = ".upload-doctor";

/// File-name prefix of probe objects inside [`PROBE_DIR`].
pub const PROBE_FILE_PREFIX: &str = "probe-";

/// Largest object, in bytes, the worker treats as a probe; anything larger
/// at a probe key is processed as an upload (the doctor's probes are a
/// few dozen bytes).
pub const PROBE_MAX_BYTES: u64 = 1024;

/// Tag the worker puts on a probe whose event it received.
pub const PROBE_ACK_TAG: &str = "upload-doctor";

/// Value of [`PROBE_ACK_TAG`] on an acknowledged probe.
pub const PROBE_ACK_VALUE: &str = "received";

/// Whether `key` is a probe object: its last segment starts with
/// [`PROBE_FILE_PREFIX`] and the segment before it is [`PROBE_DIR`]
/// (`uploads/.upload-doctor/probe-1234` is one;
/// `uploads/alice/probe-1234.jpg` is not).
pub fn is_probe_key(key: &str) -> bool {
    let Some((dir, file)) = key.rsplit_once('/') else {
        return false;
    };
    file.starts_with(PROBE_FILE_PREFIX) && dir.rsplit('/').next() == Some(PROBE_DIR)
}

/// The key of a new probe object under `prefix`:
/// `{prefix}.upload-doctor/probe-{id}`. A `prefix` that does not end
/// with `/` is used as is (S3 prefix filters match strings, not folders).
pub fn probe_key(prefix: &str, id: &str) -> String {
    format!("{prefix}{PROBE_DIR}/{PROBE_FILE_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_keys_are_recognised_and_uploads_are_not() {
        let k = probe_key("uploads/", "0b7e");
        assert_eq!(k, "uploads/.upload-doctor/probe-0b7e");
        assert!(is_probe_key(&k));
        assert!(is_probe_key(&probe_key("", "x")));
        assert!(!is_probe_key("uploads/alice/probe-1234.jpg"));
        assert!(!is_probe_key("uploads/.upload-doctor/other"));
        assert!(!is_probe_key("uploads/x.upload-doctor/probe-1"));
        assert!(!is_probe_key("probe-1"));
    }
}
