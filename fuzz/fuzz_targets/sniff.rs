//! Fuzz target `sniff`: magic-byte content sniffing on arbitrary bytes.
//!
//! Asserts that the image types the codec decodes are recognised from
//! their magic at offset 0 whatever follows (an independent statement of
//! the JPEG, PNG, GIF and WebP signatures), also when the worker sees only
//! the first `SNIFF_LEN` bytes of a longer object; that sniffing is
//! deterministic; and that a recognised type is named consistently (a MIME
//! type with `/`, an extension). Which of several matching types a
//! polyglot gets is `infer`'s order and is not asserted (see the
//! `polyglots_sniff_as_what_the_worker_reads` test in `upload-core`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_core::sniff::{SNIFF_LEN, sniff};

/// The type a fixed magic at offset 0 names, stated without `infer`.
fn by_magic(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let got = sniff(data);
    assert_eq!(got, sniff(data), "not deterministic");
    match got {
        Ok(s) => assert!(s.mime.contains('/') && !s.extension.is_empty(), "{s:?}"),
        Err(upload_core::Unrecognized::Empty) => assert!(data.is_empty(), "Empty for {data:?}"),
        Err(upload_core::Unrecognized::Unknown) => assert!(!data.is_empty(), "Unknown for 0 bytes"),
    }
    if let Some(expected) = by_magic(data) {
        assert_eq!(got.map(|s| s.mime), Ok(expected), "magic not recognised");
        // The same object made longer than SNIFF_LEN: its head, which is
        // what the worker sniffs, still says so.
        let mut long = data.to_vec();
        while long.len() < 2 * SNIFF_LEN {
            long.extend_from_slice(data);
        }
        assert_eq!(sniff(&long[..SNIFF_LEN]).map(|s| s.mime), Ok(expected));
    }
});
