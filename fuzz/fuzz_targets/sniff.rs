//! Fuzz target `sniff`: magic-byte content sniffing on arbitrary bytes.
//!
//! Asserts that only the first `SNIFF_LEN` bytes decide the answer (what
//! the worker reads before it decides), that the answer does not change
//! with what follows, and that a recognised type is named consistently
//! (non-empty MIME type and extension, `same_type` reflexive).

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_core::sniff::{SNIFF_LEN, same_type, sniff};

fuzz_target!(|data: &[u8]| {
    let whole = sniff(data);
    let head = &data[..data.len().min(SNIFF_LEN)];
    assert_eq!(whole, sniff(head), "bytes past SNIFF_LEN changed the answer");
    if data.len() >= SNIFF_LEN {
        let mut longer = head.to_vec();
        longer.extend_from_slice(b"\0trailing bytes\xff");
        assert_eq!(whole, sniff(&longer), "trailing bytes changed the answer");
    }
    if let Some(s) = whole {
        assert!(!s.mime.is_empty() && s.mime.contains('/'), "{s:?}");
        assert!(!s.extension.is_empty(), "{s:?}");
        assert!(same_type(s.mime, s.mime), "{s:?}");
    }
});
