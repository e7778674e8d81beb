//! Fuzz target `complete`: the multipart completion a client asks for.
//!
//! The input is (1) parsed as the JSON part list of a complete request,
//! which must round-trip when it parses, and (2) decoded into a stored part
//! list and a requested part list for `check_completion`, whose acceptance
//! is checked against an independent statement of the rules: part numbers
//! within 1..=10,000, strictly ascending (exactly 1..=N when the rules ask
//! for contiguous parts), each stored with the same ETag, every part but the last
//! 5 MiB..=5 GiB and of one size (the planned one when given), the last no
//! larger, the total equal to the declared size and within the maximum.

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_core::{CompletedPart, UploadedPart};
use upload_multipart::{CompletionRules, check_completion};

const MIB: u64 = 1024 * 1024;
const SIZES: [u64; 10] = [
    0,
    1,
    5 * MIB - 1,
    5 * MIB,
    5 * MIB + 1,
    8 * MIB,
    5 * 1024 * MIB,
    5 * 1024 * MIB + 1,
    4_999_999,
    10 * MIB,
];

fn oracle(listed: &[UploadedPart], parts: &[CompletedPart], r: &CompletionRules) -> Option<u64> {
    if parts.is_empty() {
        return None;
    }
    let mut sizes = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if !(1..=10_000).contains(&p.part_number)
            || (i > 0 && p.part_number <= parts[i - 1].part_number)
            || (r.contiguous && p.part_number as usize != i + 1)
        {
            return None;
        }
        let s = listed.iter().find(|l| l.part_number == p.part_number)?;
        if !s
            .etag
            .trim_matches('"')
            .eq_ignore_ascii_case(p.etag.trim_matches('"'))
        {
            return None;
        }
        sizes.push(s.size);
    }
    let last = *sizes.last()?;
    let body = &sizes[..sizes.len() - 1];
    let unit = r.part_size.or(body.first().copied());
    if body
        .iter()
        .any(|&s| !(5 * MIB..=5 * 1024 * MIB).contains(&s) || Some(s) != unit)
    {
        return None;
    }
    if unit.is_some_and(|u| last > u) || last > 5 * 1024 * MIB {
        return None;
    }
    let total: u64 = sizes.iter().sum();
    if r.size.is_some_and(|d| d != total) || total > r.max_size {
        return None;
    }
    Some(total)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = serde_json::from_slice::<Vec<CompletedPart>>(data) {
        let again = serde_json::to_vec(&parts).unwrap();
        assert_eq!(parts, serde_json::from_slice::<Vec<CompletedPart>>(&again).unwrap());
    }
    let mut it = data.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let n = (next() % 12) as usize;
    let flags = next();
    let rules = CompletionRules {
        size: (flags & 1 == 1).then(|| u64::from(next()) * MIB + u64::from(next())),
        part_size: (flags & 2 == 2).then(|| SIZES[(next() % 10) as usize]),
        max_size: if flags & 4 == 4 { 20 * MIB } else { u64::MAX },
        contiguous: flags & 8 == 8,
    };
    let mut listed = Vec::new();
    let mut parts = Vec::new();
    for i in 0..n {
        let b = next();
        let size = if b & 0x80 == 0 {
            SIZES[(b % 10) as usize]
        } else {
            u64::from(next()) * 65_537
        };
        let number = match next() % 16 {
            0 => 0,
            1 => i as u32 + 2,
            2 => 10_001,
            3 => 10_000,
            4 => i as u32,
            _ => i as u32 + 1,
        };
        let etag = format!("{:032x}", i);
        if b & 0x40 == 0 {
            listed.push(UploadedPart {
                part_number: number,
                etag: etag.clone(),
                size,
                checksum: None,
            });
        }
        parts.push(CompletedPart {
            part_number: number,
            etag: match next() % 8 {
                0 => format!("{:032x}", i + 1),
                1 => format!("\"{}\"", etag.to_uppercase()),
                _ => etag,
            },
            checksum: None,
        });
    }
    let got = check_completion(&listed, &parts, &rules).ok();
    assert_eq!(got, oracle(&listed, &parts, &rules), "{listed:?} {parts:?} {rules:?}");
});
