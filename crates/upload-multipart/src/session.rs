//! The backend's side of a multipart upload: presigned part URLs.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use upload_core::ObjectKey;
use upload_core::multipart::{MAX_PART_NUMBER, MIN_PART_NUMBER};
use upload_presign::{PresignedRequest, Presigner};

use crate::error::{Error, Result};

/// Most part URLs signed in one call (a batch a client asks for at once).
pub const MAX_PARTS_PER_BATCH: u32 = 1000;

/// A presigned UploadPart URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPart {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// The presigned PUT.
    pub request: PresignedRequest,
}

/// Presigns UploadPart URLs for `part_numbers` of upload `upload_id`, each
/// valid for `expires_in` (keep it short: a client asks again for parts
/// it has not sent in time).
///
/// # Errors
/// [`Error::PartNumbersOutOfRange`] outside 1..=10000 or for more than
/// [`MAX_PARTS_PER_BATCH`] parts; [`Error::Presign`] for a bad expiry.
pub fn presign_parts(
    presigner: &Presigner,
    bucket: &str,
    key: &ObjectKey,
    upload_id: &str,
    part_numbers: RangeInclusive<u32>,
    expires_in: Duration,
    now: SystemTime,
) -> Result<Vec<PresignedPart>> {
    let (first, last) = (*part_numbers.start(), *part_numbers.end());
    if first < MIN_PART_NUMBER
        || last > MAX_PART_NUMBER
        || first > last
        || last - first >= MAX_PARTS_PER_BATCH
    {
        return Err(Error::PartNumbersOutOfRange { first, last });
    }
    part_numbers
        .map(|n| {
            Ok(PresignedPart {
                part_number: n,
                request: presigner
                    .presign_upload_part(bucket, key, upload_id, n, expires_in, now)?,
            })
        })
        .collect()
}
