//! Fuzz target `clamd_version`: the parser of clamd's `VERSION` reply.
//!
//! Whatever a (possibly hostile or broken) clamd answers, the parser gives
//! a version only for `{engine}[/{database}[/{date}]]` with a non-empty
//! printable engine of at most 128 bytes, a decimal database number and a
//! printable date of at most 64 bytes; that version, written as clamd
//! writes it, parses again to itself; anything else is a typed error,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_scan::{Error, ScannerVersion};

fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    match ScannerVersion::parse_clamd(&reply) {
        Ok(v) => {
            assert!(
                !v.engine.trim().is_empty() && v.engine.len() <= 128,
                "{reply:?}"
            );
            assert!(
                v.engine
                    .bytes()
                    .all(|b| (b.is_ascii_graphic() && b != b'/') || b == b' '),
                "{reply:?}"
            );
            if let Some(date) = &v.database_date {
                assert!(v.database.is_some(), "a date without a database: {reply:?}");
                assert!(date.len() <= 64, "{reply:?}");
                assert!(
                    date.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                    "{reply:?}"
                );
            }
            let line = reply.trim_end_matches(['\0', '\n', '\r']);
            assert!(line.starts_with(v.engine.as_str()), "{reply:?}");
            assert_eq!(
                ScannerVersion::parse_clamd(&v.to_string()).ok(),
                Some(v),
                "round trip"
            );
        }
        Err(Error::InvalidScannerVersion { reply: shown, .. }) => {
            assert!(shown.chars().count() <= 200);
            assert!(
                shown.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                "{shown:?}"
            );
        }
        Err(other) => panic!("not a version error: {other:?}"),
    }
});
