//! Fuzz target `object_key`: `ObjectKey::new` against an independent
//! statement of the key rules.
//!
//! The input bytes are taken as UTF-8 (invalid sequences replaced with
//! U+FFFD). The target asserts, both ways, that `ObjectKey::new` accepts a
//! string exactly when it is 1..=1024 bytes, not only whitespace (what the
//! AWS SDKs take for a missing key), has no leading `/`, no control
//! character (U+0000..=U+001F, U+007F..=U+009F), and no empty (`//`,
//! trailing `/`), `.` or `..` segment; and that an accepted key keeps the
//! string unchanged and survives `FromStr`, serde and `join` re-validation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_core::{Error, ObjectKey};

/// The key rules, written out again without looking at `key.rs`.
fn oracle_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && !s.chars().all(char::is_whitespace)
        && !s.starts_with('/')
        && !s
            .chars()
            .any(|c| c <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&c))
        && !s.contains("//")
        && !s.ends_with('/')
        && s.split('/').all(|seg| seg != "." && seg != "..")
}

/// What every valid key must satisfy.
fn assert_valid_shape(k: &str) {
    assert!(!k.is_empty() && k.len() <= 1024, "length {}", k.len());
    assert!(!k.trim().is_empty(), "blank: {k:?}");
    assert!(!k.starts_with('/'), "leading '/': {k:?}");
    assert!(!k.contains("//"), "'//': {k:?}");
    assert!(
        !k.chars().any(|c| c.is_control()),
        "control character: {k:?}"
    );
    for seg in k.split('/') {
        assert!(!seg.is_empty(), "empty segment: {k:?}");
        assert!(seg != "." && seg != "..", "dot segment: {k:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let result = ObjectKey::new(s.as_ref());
    assert_eq!(
        result.is_ok(),
        oracle_valid(&s),
        "ObjectKey::new({s:?}) = {result:?} disagrees with the rules"
    );
    match result {
        Err(Error::InvalidKey { .. }) => {}
        Err(other) => panic!("ObjectKey::new({s:?}) failed with {other:?}, not InvalidKey"),
        Ok(key) => {
            assert_eq!(key.as_str(), s.as_ref(), "the key was altered");
            assert_valid_shape(key.as_str());
            let parsed: ObjectKey = key.as_str().parse().expect("FromStr of a valid key");
            assert_eq!(parsed, key);
            let json = serde_json::to_string(&key).expect("serialize");
            let back: ObjectKey = serde_json::from_str(&json).expect("deserialize a valid key");
            assert_eq!(back, key);
            let _ = key.extension();
            // Joining re-validates: whatever comes back is valid too.
            if let Ok(joined) = key.join("thumb.webp") {
                assert_valid_shape(joined.as_str());
            }
            if let Ok(prefixed) = key.with_prefix("quarantine") {
                assert_valid_shape(prefixed.as_str());
            }
        }
    }
});
