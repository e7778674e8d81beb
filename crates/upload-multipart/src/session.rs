//! The backend's side of a multipart upload: presigned part URLs.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use upload_core::multipart::{MAX_PART_NUMBER, MIN_PART_NUMBER};
use upload_core::{CompletedPart, ObjectKey, UploadedPart};
use upload_presign::{PresignedRequest, Presigner};

use crate::error::{Error, Result};
use crate::plan::{MAX_PART_SIZE, MIN_PART_SIZE};

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

/// As [`presign_parts`], for parts of a [`PartPlan`](crate::PartPlan):
/// each URL also signs its part's exact `Content-Length`, so storage
/// refuses a part of another size (403 `SignatureDoesNotMatch`) when it
/// arrives, not only at completion.
///
/// # Errors
/// [`Error::PartNumbersOutOfRange`] as [`presign_parts`], and for parts
/// beyond the plan's last; [`Error::Presign`] for a bad expiry.
#[allow(clippy::too_many_arguments)]
pub fn presign_planned_parts(
    presigner: &Presigner,
    bucket: &str,
    key: &ObjectKey,
    upload_id: &str,
    plan: &crate::PartPlan,
    part_numbers: RangeInclusive<u32>,
    expires_in: Duration,
    now: SystemTime,
) -> Result<Vec<PresignedPart>> {
    let (first, last) = (*part_numbers.start(), *part_numbers.end());
    if first < MIN_PART_NUMBER
        || last > plan.part_count()
        || first > last
        || last - first >= MAX_PARTS_PER_BATCH
    {
        return Err(Error::PartNumbersOutOfRange { first, last });
    }
    part_numbers
        .map(|n| {
            let part = plan
                .part(n)
                .ok_or(Error::PartNumbersOutOfRange { first, last })?;
            let headers =
                upload_presign::headers::PartHeaders::default().with_content_length(part.len);
            Ok(PresignedPart {
                part_number: n,
                request: presigner.presign_upload_part_with(
                    bucket, key, upload_id, n, &headers, expires_in, now,
                )?,
            })
        })
        .collect()
}

/// What a session allows its completion to be, checked by
/// [`check_completion`] before CompleteMultipartUpload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionRules {
    /// The exact object size in bytes declared when the session was
    /// created, if the client declared one (Uppy does not).
    pub size: Option<u64>,
    /// The size in bytes every part but the last must have, if the server
    /// planned the parts ([`crate::PartPlan::part_size`]); `None` lets the
    /// client choose one size, still the same for every non-final part.
    pub part_size: Option<u64>,
    /// The largest object allowed, in bytes (the upload policy's maximum).
    pub max_size: u64,
    /// Whether the parts must be numbered exactly 1, 2, ..., N, without
    /// gaps ([`CompletionError::PartGap`] otherwise): a rule of our own
    /// sessions, stricter than S3, which completes any ascending numbers
    /// within 1..=10,000. A browser numbers its parts from 1 without gaps,
    /// so a gap is a part it never sent, and completing without it would
    /// make an object with that range of the file missing (unnoticed when
    /// no size was declared).
    pub contiguous: bool,
}

/// Why a CompleteMultipartUpload request was refused before it reached
/// the store (see [`check_completion`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompletionError {
    /// The request names no part.
    #[error("a completion needs at least one part")]
    NoParts,
    /// A part number outside S3's 1..=10,000 (S3 `InvalidPartNumber`).
    #[error("part number {part_number} is not within 1..=10000")]
    InvalidPartNumber {
        /// 1-based position in the request.
        position: usize,
        /// The part number found there.
        part_number: u32,
    },
    /// Part numbers are not strictly ascending: a part named twice, or
    /// after a higher one (S3 `InvalidPartOrder`).
    #[error(
        "part numbers must be ascending, each once; position {position} holds part {part_number} after part {previous}"
    )]
    PartOrder {
        /// 1-based position in the request.
        position: usize,
        /// The part number found there.
        part_number: u32,
        /// The part number at the position before.
        previous: u32,
    },
    /// A part number was skipped, when [`CompletionRules::contiguous`]
    /// asks for parts 1..=N without gaps (our sessions' rule; S3 allows
    /// gaps).
    #[error(
        "this session needs parts numbered 1..=N without gaps; position {position} holds part {part_number}, part {expected} is missing"
    )]
    PartGap {
        /// 1-based position in the request.
        position: usize,
        /// The part number found there.
        part_number: u32,
        /// The part number that should be there (its position).
        expected: u32,
    },
    /// A named part is not stored (never uploaded, or still in flight).
    #[error("part {part_number} has not been uploaded")]
    MissingPart {
        /// The part number.
        part_number: u32,
    },
    /// A named part's ETag is not the stored part's (a stale retry, or
    /// the ETag of another upload).
    #[error("part {part_number}: ETag {given} was sent, the stored part has {stored}")]
    EtagMismatch {
        /// The part number.
        part_number: u32,
        /// The ETag in the request (without quotes).
        given: String,
        /// The stored part's ETag (without quotes).
        stored: String,
    },
    /// A part other than the last is below 5 MiB (S3 `EntityTooSmall`) or
    /// above 5 GiB.
    #[error(
        "part {part_number} has {size} bytes; every part but the last must hold 5 MiB..=5 GiB (5242880..=5368709120 bytes)"
    )]
    PartSize {
        /// The part number.
        part_number: u32,
        /// Its stored size in bytes.
        size: u64,
    },
    /// A part other than the last differs in size from the others (or
    /// from the planned part size).
    #[error("part {part_number} has {size} bytes; every part but the last must have {expected}")]
    UnequalPart {
        /// The part number.
        part_number: u32,
        /// Its stored size in bytes.
        size: u64,
        /// The size the other parts (or the plan) have.
        expected: u64,
    },
    /// The last part is larger than the others.
    #[error("the last part {part_number} has {size} bytes, more than the part size {part_size}")]
    LastPartTooLarge {
        /// The part number.
        part_number: u32,
        /// Its stored size in bytes.
        size: u64,
        /// The size of the other parts.
        part_size: u64,
    },
    /// The parts do not add up to the declared size.
    #[error("the parts hold {total} bytes; {declared} were declared")]
    SizeMismatch {
        /// Sum of the parts in bytes.
        total: u64,
        /// The declared size in bytes.
        declared: u64,
    },
    /// The parts add up to more than the policy allows.
    #[error("the parts hold {total} bytes, more than the {max} allowed")]
    TooLarge {
        /// Sum of the parts in bytes.
        total: u64,
        /// The maximum in bytes.
        max: u64,
    },
}

/// Checks a client's CompleteMultipartUpload list against the parts the
/// store holds (`listed`, from ListParts) and the session's `rules`,
/// before anything is sent to S3, so a bad completion is refused with a
/// reason and the upload stays open to be fixed and completed.
///
/// It checks, in order, as S3 does: every part number is within
/// 1..=10,000; the numbers are strictly ascending (each once), gaps
/// allowed, or, when `rules.contiguous`, exactly 1..=N; each part is
/// stored with the same ETag (quotes ignored); every part but the last
/// holds 5 MiB..=5 GiB and the same number of bytes (`rules.part_size`
/// when given); the last is not larger than the others; the total equals
/// `rules.size` when declared and is at most `rules.max_size`. Limits per
/// the AWS "Amazon S3 multipart upload limits" page. Returns the object
/// size in bytes.
///
/// # Errors
/// The first [`CompletionError`] found.
pub fn check_completion(
    listed: &[UploadedPart],
    parts: &[CompletedPart],
    rules: &CompletionRules,
) -> std::result::Result<u64, CompletionError> {
    if parts.is_empty() {
        return Err(CompletionError::NoParts);
    }
    let mut previous = 0;
    for (i, p) in parts.iter().enumerate() {
        let (position, part_number) = (i + 1, p.part_number);
        if !(MIN_PART_NUMBER..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(CompletionError::InvalidPartNumber {
                position,
                part_number,
            });
        }
        if part_number <= previous {
            return Err(CompletionError::PartOrder {
                position,
                part_number,
                previous,
            });
        }
        previous = part_number;
    }
    // Our sessions' own rule, after S3's: ascending from 1, so each number
    // is at least its position, and equal all along without a gap.
    if rules.contiguous
        && let Some((i, p)) = parts
            .iter()
            .enumerate()
            .find(|(i, p)| u64::from(p.part_number) != *i as u64 + 1)
    {
        return Err(CompletionError::PartGap {
            position: i + 1,
            part_number: p.part_number,
            expected: i as u32 + 1,
        });
    }
    let by_number: std::collections::HashMap<u32, &UploadedPart> =
        listed.iter().map(|l| (l.part_number, l)).collect();
    let mut sizes = Vec::with_capacity(parts.len());
    for p in parts {
        let stored = *by_number
            .get(&p.part_number)
            .ok_or(CompletionError::MissingPart {
                part_number: p.part_number,
            })?;
        let (given, have) = (p.etag.trim_matches('"'), stored.etag.trim_matches('"'));
        if !given.eq_ignore_ascii_case(have) {
            return Err(CompletionError::EtagMismatch {
                part_number: p.part_number,
                given: given.to_owned(),
                stored: have.to_owned(),
            });
        }
        sizes.push((p.part_number, stored.size));
    }
    let (last, body) = sizes.split_last().expect("at least one part");
    let expected = rules.part_size.or(body.first().map(|b| b.1));
    for &(part_number, size) in body {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&size) {
            return Err(CompletionError::PartSize { part_number, size });
        }
        if let Some(expected) = expected
            && size != expected
        {
            return Err(CompletionError::UnequalPart {
                part_number,
                size,
                expected,
            });
        }
    }
    if let Some(part_size) = expected
        && last.1 > part_size
    {
        return Err(CompletionError::LastPartTooLarge {
            part_number: last.0,
            size: last.1,
            part_size,
        });
    }
    if last.1 > MAX_PART_SIZE {
        return Err(CompletionError::PartSize {
            part_number: last.0,
            size: last.1,
        });
    }
    let total: u64 = sizes.iter().map(|s| s.1).sum();
    if let Some(declared) = rules.size
        && total != declared
    {
        return Err(CompletionError::SizeMismatch { total, declared });
    }
    if total > rules.max_size {
        return Err(CompletionError::TooLarge {
            total,
            max: rules.max_size,
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn stored(sizes: &[u64]) -> (Vec<UploadedPart>, Vec<CompletedPart>) {
        let listed: Vec<UploadedPart> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| UploadedPart {
                part_number: i as u32 + 1,
                etag: format!("{:032x}", i + 1),
                size,
                checksum: None,
            })
            .collect();
        let parts = listed
            .iter()
            .map(|l| CompletedPart {
                part_number: l.part_number,
                etag: format!("\"{}\"", l.etag),
                checksum: None,
            })
            .collect();
        (listed, parts)
    }

    const ANY: CompletionRules = CompletionRules {
        size: None,
        part_size: None,
        max_size: 1 << 40,
        contiguous: false,
    };

    #[test]
    fn accepts_equal_parts_and_a_shorter_last_one() {
        let (listed, parts) = stored(&[5 * MIB, 5 * MIB, 7]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(10 * MIB + 7));
        let exact = CompletionRules {
            size: Some(10 * MIB + 7),
            part_size: Some(5 * MIB),
            max_size: 11 * MIB,
            contiguous: true,
        };
        assert_eq!(check_completion(&listed, &parts, &exact), Ok(10 * MIB + 7));
        // One part of any size is a valid upload.
        let (listed, parts) = stored(&[1]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(1));
    }

    #[test]
    fn refuses_a_middle_part_one_byte_short_of_5_mib() {
        let (listed, parts) = stored(&[5 * MIB, 4_999_999, 5 * MIB, 10]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartSize {
                part_number: 2,
                size: 4_999_999
            })
        );
        // Also when every non-final part is that size: S3 would answer
        // EntityTooSmall only after the request.
        let (listed, parts) = stored(&[4_999_999, 4_999_999, 10]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartSize {
                part_number: 1,
                size: 4_999_999
            })
        );
    }

    #[test]
    fn part_size_bounds_are_exact() {
        // 5 MiB - 1 is refused, 5 MiB taken; 5 GiB taken, 5 GiB + 1 refused.
        let (listed, parts) = stored(&[5 * MIB - 1, 1]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartSize {
                part_number: 1,
                size: 5_242_879
            })
        );
        let (listed, parts) = stored(&[5 * MIB, 1]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(5 * MIB + 1));
        let (listed, parts) = stored(&[5 * 1024 * MIB, 5 * 1024 * MIB]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(10 * 1024 * MIB));
        let (listed, parts) = stored(&[5 * 1024 * MIB + 1, 1]);
        assert!(matches!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartSize { part_number: 1, .. })
        ));
        // A last part over 5 GiB, alone.
        let (listed, parts) = stored(&[5 * 1024 * MIB + 1]);
        assert!(matches!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartSize { part_number: 1, .. })
        ));
        // 10,001 parts: the last number is out of S3's range.
        let sizes = vec![5 * MIB; 10_001];
        let (listed, parts) = stored(&sizes);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::InvalidPartNumber {
                position: 10_001,
                part_number: 10_001
            })
        );
    }

    /// Parts of 5 MiB, the last of 1 byte, stored and named with `numbers`.
    fn numbered(numbers: &[u32]) -> (Vec<UploadedPart>, Vec<CompletedPart>) {
        let sizes: Vec<u64> = (0..numbers.len())
            .map(|i| if i + 1 == numbers.len() { 1 } else { 5 * MIB })
            .collect();
        let (mut listed, mut parts) = stored(&sizes);
        for ((l, p), &n) in listed.iter_mut().zip(&mut parts).zip(numbers) {
            (l.part_number, p.part_number) = (n, n);
        }
        (listed, parts)
    }

    #[test]
    fn part_numbers_follow_s3_ascending_unique_gaps_allowed() {
        // Gaps are allowed, up to part 10,000.
        let (listed, parts) = numbered(&[1, 3, 10_000]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(10 * MIB + 1));
        let (listed, parts) = numbered(&[2, 7]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(5 * MIB + 1));
        // 0 and 10,001 are outside S3's range, named with their position.
        let (listed, parts) = numbered(&[0, 1]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::InvalidPartNumber {
                position: 1,
                part_number: 0
            })
        );
        let (listed, parts) = numbered(&[1, 9_999, 10_001]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::InvalidPartNumber {
                position: 3,
                part_number: 10_001
            })
        );
        let e = check_completion(&listed, &parts, &ANY).unwrap_err();
        assert_eq!(e.to_string(), "part number 10001 is not within 1..=10000");
        // Descending or repeated numbers are out of order.
        let (listed, parts) = numbered(&[2, 1, 3]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartOrder {
                position: 2,
                part_number: 1,
                previous: 2
            })
        );
        let (listed, parts) = numbered(&[1, 4, 4]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::PartOrder {
                position: 3,
                part_number: 4,
                previous: 4
            })
        );
    }

    #[test]
    fn contiguous_rules_refuse_gaps_with_their_own_error() {
        let contiguous = CompletionRules {
            contiguous: true,
            ..ANY
        };
        let (listed, parts) = numbered(&[1, 2, 3]);
        assert_eq!(
            check_completion(&listed, &parts, &contiguous),
            Ok(10 * MIB + 1)
        );
        let (listed, parts) = numbered(&[1, 3]);
        assert_eq!(check_completion(&listed, &parts, &ANY), Ok(5 * MIB + 1));
        assert_eq!(
            check_completion(&listed, &parts, &contiguous),
            Err(CompletionError::PartGap {
                position: 2,
                part_number: 3,
                expected: 2
            })
        );
        let (listed, parts) = numbered(&[2]);
        assert_eq!(
            check_completion(&listed, &parts, &contiguous),
            Err(CompletionError::PartGap {
                position: 1,
                part_number: 2,
                expected: 1
            })
        );
        // Range and order are S3's errors under either rule, found first.
        let (listed, parts) = numbered(&[2, 1]);
        assert!(matches!(
            check_completion(&listed, &parts, &contiguous),
            Err(CompletionError::PartOrder { position: 2, .. })
        ));
        let (listed, parts) = numbered(&[0]);
        assert!(matches!(
            check_completion(&listed, &parts, &contiguous),
            Err(CompletionError::InvalidPartNumber { part_number: 0, .. })
        ));
    }

    #[test]
    fn refuses_no_parts_and_unknown_parts() {
        assert_eq!(
            check_completion(&[], &[], &ANY),
            Err(CompletionError::NoParts)
        );
        let (mut listed, parts) = stored(&[5 * MIB, 5 * MIB, 1]);
        listed.remove(2);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::MissingPart { part_number: 3 })
        );
        let (listed, mut parts) = stored(&[5 * MIB, 1]);
        parts[1].etag = "0123456789abcdef0123456789abcdef".into();
        assert!(matches!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::EtagMismatch { part_number: 2, .. })
        ));
    }

    #[test]
    fn refuses_unequal_parts_wrong_totals_and_oversize() {
        let (listed, parts) = stored(&[6 * MIB, 5 * MIB, 1]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::UnequalPart {
                part_number: 2,
                size: 5 * MIB,
                expected: 6 * MIB
            })
        );
        let planned = CompletionRules {
            part_size: Some(8 * MIB),
            ..ANY
        };
        let (listed, parts) = stored(&[5 * MIB, 5 * MIB, 1]);
        assert!(matches!(
            check_completion(&listed, &parts, &planned),
            Err(CompletionError::UnequalPart {
                part_number: 1,
                expected: 8_388_608,
                ..
            })
        ));
        let (listed, parts) = stored(&[5 * MIB, 6 * MIB]);
        assert_eq!(
            check_completion(&listed, &parts, &ANY),
            Err(CompletionError::LastPartTooLarge {
                part_number: 2,
                size: 6 * MIB,
                part_size: 5 * MIB
            })
        );
        let (listed, parts) = stored(&[5 * MIB, 1]);
        let declared = CompletionRules {
            size: Some(5 * MIB + 2),
            ..ANY
        };
        assert_eq!(
            check_completion(&listed, &parts, &declared),
            Err(CompletionError::SizeMismatch {
                total: 5 * MIB + 1,
                declared: 5 * MIB + 2
            })
        );
        let small = CompletionRules {
            max_size: 5 * MIB,
            ..ANY
        };
        assert_eq!(
            check_completion(&listed, &parts, &small),
            Err(CompletionError::TooLarge {
                total: 5 * MIB + 1,
                max: 5 * MIB
            })
        );
    }
}
