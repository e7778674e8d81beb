//! Splitting an object into parts under S3's limits.

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;
/// Smallest part except the last: 5 MiB (S3).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// Largest part: 5 GiB (S3).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// Most parts in one upload: 10,000 (S3).
pub const MAX_PARTS: u64 = 10_000;
/// Largest object: 10,000 parts of 5 GiB, 53,687,091,200,000 bytes (about
/// 48.8 TiB or 53.7 TB; S3 raised its old 5 TiB limit in December 2025).
pub const MAX_OBJECT_SIZE: u64 = MAX_PARTS * MAX_PART_SIZE;
/// Default preferred part size of planned sessions (presigned part URLs):
/// 8 MiB (what the AWS CLI uses). The client engine defaults to larger
/// parts ([`crate::DEFAULT_UPLOAD_PART_SIZE`]).
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;

/// How an object of a given size is cut into parts: every part but the last
/// has the same size, a whole number of MiB within 5 MiB..=5 GiB, and there
/// are at most 10,000 parts. The last part holds the rest (1 byte up to the
/// part size). An empty object has no plan: it is uploaded with one PUT
/// (S3 refuses a completion without parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    object_size: u64,
    part_size: u64,
    part_count: u32,
}

/// One part of a [`PartPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedPart {
    /// Part number, 1..=10000.
    pub number: u32,
    /// Byte offset of the part in the object.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl PartPlan {
    /// Plans an object of `object_size` bytes, with parts as close to
    /// `preferred_part_size` as the limits allow: the preference is rounded
    /// up to a whole MiB and clamped to 5 MiB..=5 GiB, then raised if the
    /// object would need more than 10,000 parts.
    ///
    /// # Errors
    /// [`Error::EmptyObject`] for 0 bytes; [`Error::ObjectTooLarge`] above
    /// [`MAX_OBJECT_SIZE`] (10,000 × 5 GiB).
    pub fn new(object_size: u64, preferred_part_size: u64) -> Result<Self> {
        if object_size == 0 {
            return Err(Error::EmptyObject);
        }
        if object_size > MAX_OBJECT_SIZE {
            return Err(Error::ObjectTooLarge {
                size: object_size,
                max: MAX_OBJECT_SIZE,
            });
        }
        let mut part_size = preferred_part_size
            .div_ceil(MIB)
            .saturating_mul(MIB)
            .clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        if object_size.div_ceil(part_size) > MAX_PARTS {
            part_size = object_size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        }
        let count = object_size.div_ceil(part_size);
        Ok(Self {
            object_size,
            part_size,
            // 1 <= count <= MAX_PARTS = 10_000: MAX_OBJECT_SIZE / 10_000 is
            // exactly MAX_PART_SIZE, a whole number of MiB.
            part_count: count as u32,
        })
    }

    /// The object size in bytes.
    pub fn object_size(&self) -> u64 {
        self.object_size
    }

    /// The size of every part but the last, in bytes.
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// The number of parts, 1..=10000.
    pub fn part_count(&self) -> u32 {
        self.part_count
    }

    /// Part `number` (1-based), or `None` outside 1..=part_count.
    pub fn part(&self, number: u32) -> Option<PlannedPart> {
        if number == 0 || number > self.part_count {
            return None;
        }
        let offset = u64::from(number - 1) * self.part_size;
        let len = self.part_size.min(self.object_size - offset);
        Some(PlannedPart {
            number,
            offset,
            len,
        })
    }

    /// All parts in order.
    pub fn parts(&self) -> impl Iterator<Item = PlannedPart> + '_ {
        (1..=self.part_count).filter_map(|n| self.part(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let p = PartPlan::new(8_484_634, DEFAULT_PART_SIZE).unwrap();
        assert_eq!((p.part_size(), p.part_count()), (8 * MIB, 2));
        assert_eq!(p.part(2).unwrap().len, 8_484_634 - 8 * MIB);
        let p = PartPlan::new(1, DEFAULT_PART_SIZE).unwrap();
        assert_eq!((p.part_count(), p.part(1).unwrap().len), (1, 1));
        // Preferences are clamped and rounded to whole MiB.
        assert_eq!(PartPlan::new(100 * MIB, 1).unwrap().part_size(), 5 * MIB);
        assert_eq!(
            PartPlan::new(100 * MIB, 6 * MIB + 1).unwrap().part_size(),
            7 * MIB
        );
        assert_eq!(
            PartPlan::new(100 * MIB, u64::MAX).unwrap().part_size(),
            MAX_PART_SIZE
        );
        // The old 5 TiB maximum needs parts of 525 MiB to stay within
        // 10,000 parts; it is planned as before.
        let p = PartPlan::new(5 * 1024 * 1024 * MIB, DEFAULT_PART_SIZE).unwrap();
        assert_eq!(p.part_size(), 525 * MIB);
        assert_eq!(p.part_count(), 9987);
        assert_eq!(p.part(0), None);
        assert_eq!(p.part(9988), None);
    }

    #[test]
    fn plans_up_to_10_000_parts_of_5_gib_and_not_one_byte_more() {
        assert_eq!(MAX_OBJECT_SIZE, 53_687_091_200_000);
        let p = PartPlan::new(MAX_OBJECT_SIZE, DEFAULT_PART_SIZE).unwrap();
        assert_eq!((p.part_size(), p.part_count()), (5 * 1024 * MIB, 10_000));
        assert_eq!(
            p.part(10_000),
            Some(PlannedPart {
                number: 10_000,
                offset: 9_999 * 5 * 1024 * MIB,
                len: 5 * 1024 * MIB
            })
        );
        assert_eq!(p.part(10_001), None);
        // Above the old 5 TiB limit: 6 TiB in 9,987 parts of 630 MiB.
        let p = PartPlan::new(6 * 1024 * 1024 * MIB, DEFAULT_PART_SIZE).unwrap();
        assert_eq!((p.part_size(), p.part_count()), (630 * MIB, 9_987));
        // One byte less than the maximum: still 5 GiB parts, the last one
        // byte short.
        let p = PartPlan::new(MAX_OBJECT_SIZE - 1, 0).unwrap();
        assert_eq!((p.part_size(), p.part_count()), (5 * 1024 * MIB, 10_000));
        assert_eq!(p.part(10_000).unwrap().len, 5 * 1024 * MIB - 1);
        match PartPlan::new(MAX_OBJECT_SIZE + 1, DEFAULT_PART_SIZE) {
            Err(Error::ObjectTooLarge { size, max }) => {
                assert_eq!((size, max), (53_687_091_200_001, 53_687_091_200_000));
            }
            other => panic!("expected ObjectTooLarge, got {other:?}"),
        }
        assert!(matches!(
            PartPlan::new(u64::MAX, u64::MAX),
            Err(Error::ObjectTooLarge { .. })
        ));
    }

    #[test]
    fn an_empty_object_has_no_plan() {
        for preferred in [0, DEFAULT_PART_SIZE, u64::MAX] {
            assert!(matches!(
                PartPlan::new(0, preferred),
                Err(Error::EmptyObject)
            ));
        }
    }

    proptest! {
        #[test]
        fn plans_obey_s3_limits(size in 1u64..=MAX_OBJECT_SIZE, pref in 0u64..=8 * 1024 * MIB) {
            let p = PartPlan::new(size, pref).unwrap();
            let parts: Vec<_> = p.parts().collect();
            prop_assert_eq!(parts.len() as u32, p.part_count());
            prop_assert!(!parts.is_empty() && parts.len() as u64 <= MAX_PARTS);
            prop_assert_eq!(p.part_size() % MIB, 0);
            prop_assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p.part_size()));
            prop_assert_eq!(parts.iter().map(|x| x.len).sum::<u64>(), size);
            let mut offset = 0;
            for (i, part) in parts.iter().enumerate() {
                prop_assert_eq!(part.number as usize, i + 1);
                prop_assert_eq!(part.offset, offset);
                offset += part.len;
                if i + 1 < parts.len() {
                    prop_assert_eq!(part.len, p.part_size(), "equal non-final parts");
                } else {
                    prop_assert!(part.len <= p.part_size());
                    prop_assert!(part.len > 0);
                }
            }
        }
    }
}
