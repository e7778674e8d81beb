//! UTC timestamps in the formats S3 uses.

use std::time::SystemTime;

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds): used in tags
/// (`scanned-at`) and manifests.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    if (0..=9999).contains(&t.year()) {
        // Written digit by digit: it is formatted once per presigned URL.
        let mut out = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for b in out[at..at + width].iter_mut().rev() {
                *b = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, t.year() as u32);
        put(5, 2, u32::from(u8::from(t.month())));
        put(8, 2, u32::from(t.day()));
        put(11, 2, u32::from(t.hour()));
        put(14, 2, u32::from(t.minute()));
        put(17, 2, u32::from(t.second()));
        return String::from_utf8_lossy(&out).into_owned();
    }
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

    proptest::proptest! {
        /// The digits written by hand are `time`'s, for any second of
        /// years 1970..=9999.
        #[test]
        fn rfc3339_digits_are_times(secs in 0u64..253_402_300_800) {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let d = time::OffsetDateTime::from(t);
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            );
            proptest::prop_assert_eq!(rfc3339(t), want);
        }
    }

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_369_353_600_042);
        assert_eq!(rfc3339(t), "2013-05-24T00:00:00Z");
        assert_eq!(iso8601_millis(t), "2013-05-24T00:00:00.042Z");
    }
}
