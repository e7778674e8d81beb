//! UTC timestamps in the formats S3 uses.

use std::time::SystemTime;

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds): used in tags
/// (`scanned-at`) and manifests.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (ISO 8601, UTC, milliseconds): the
/// `eventTime` of S3 event records.
pub fn iso8601_millis(t: SystemTime) -> String {
    let odt = time::OffsetDateTime::from(t);
    let secs = rfc3339(t);
    format!("{}.{:03}Z", &secs[..secs.len() - 1], odt.millisecond())
}

/// [`rfc3339`] of now.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_369_353_600_042);
        assert_eq!(rfc3339(t), "2013-05-24T00:00:00Z");
        assert_eq!(iso8601_millis(t), "2013-05-24T00:00:00.042Z");
    }
}
