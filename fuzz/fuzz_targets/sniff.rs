//! Fuzz target `sniff`: magic-byte content sniffing on arbitrary bytes.
//!
//! Asserts that for the types upload policies allow (images, PDF) the
//! first `SNIFF_LEN` bytes decide the answer (what the worker reads before
//! it decides), whatever follows them, and that a recognised type is named
//! consistently (a MIME type with `/`, an extension).

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_core::sniff::{SNIFF_LEN, sniff};

/// The types upload policies allow, whose signatures sit at the start.
fn allowed(mime: &str) -> bool {
    mime.starts_with("image/") || mime == "application/pdf"
}

fuzz_target!(|data: &[u8]| {
    let whole = sniff(data);
    let head = &data[..data.len().min(SNIFF_LEN)];
    // The worker sniffs the first SNIFF_LEN bytes of an object: for the
    // types policies allow, that head decides, whatever follows it (the
    // input repeated past SNIFF_LEN, libFuzzer's inputs being shorter).
    let mut long = head.to_vec();
    while long.len() < 3 * SNIFF_LEN && !data.is_empty() {
        long.extend_from_slice(data);
    }
    let of_head = sniff(head);
    if of_head.is_some_and(|s| allowed(s.mime)) {
        assert_eq!(sniff(&long), of_head, "bytes past SNIFF_LEN changed the answer");
    }
    if data.len() <= SNIFF_LEN {
        assert_eq!(whole, of_head);
    }
    if let Some(s) = whole {
        assert!(!s.mime.is_empty() && s.mime.contains('/'), "{s:?}");
        assert!(!s.extension.is_empty(), "{s:?}");
    }
});
