//! Fuzz target `clamd_reply`: the parser of clamd's INSTREAM replies.
//!
//! Whatever a (possibly hostile or broken) clamd answers, the parser gives
//! a verdict only for a reply that says one: `Clean` only for `OK`,
//! `Infected` only with the name the reply gives before ` FOUND`, non-empty
//! printable ASCII without spaces (the "not fully scanned" alerts,
//! `Heuristics.Encrypted.*` and `Heuristics.Limits.Exceeded.*`, are
//! `Unscannable`); anything else is an error (retry), never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_scan::{ExceededLimit, Verdict};
use upload_scan::clamd::parse_reply;

fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    let body = reply.trim_end_matches(['\0', '\n', '\r']).trim();
    let body = body.strip_prefix("stream: ").unwrap_or(body);
    let got = parse_reply(&reply);
    // What must be recognised: OK, and FOUND with a well-formed name.
    if body == "OK" {
        assert_eq!(got, Ok(Verdict::Clean), "{reply:?}");
    }
    if let Some(name) = body.strip_suffix(" FOUND").map(str::trim)
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_graphic())
    {
        assert!(
            matches!(&got, Ok(Verdict::Infected { signature }) if signature == name)
                || ((name.starts_with("Heuristics.Encrypted")
                    || ExceededLimit::from_heuristic(name).is_some())
                    && matches!(got, Ok(Verdict::Unscannable { .. }))),
            "{reply:?}: {got:?}"
        );
    }
    match got {
        Ok(Verdict::Clean) => assert_eq!(body, "OK", "{reply:?}"),
        Ok(Verdict::Infected { signature }) => {
            let named = body.strip_suffix(" FOUND").map(str::trim);
            assert_eq!(named, Some(signature.as_str()), "{reply:?}");
            assert!(!signature.is_empty(), "{reply:?}");
            assert!(
                signature.bytes().all(|b| b.is_ascii_graphic()),
                "a signature name with spaces, controls or non-ASCII: {reply:?}"
            );
        }
        Ok(Verdict::Unscannable { .. }) => assert!(
            body.ends_with(" FOUND") || body.ends_with(" ERROR") || body.contains("size limit exceeded"),
            "{reply:?}"
        ),
        Err(_) => assert!(body != "OK", "{reply:?}"),
    }
});
