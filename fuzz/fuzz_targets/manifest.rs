//! Fuzz target `manifest`: the manifest reader (what a worker parses from
//! the processed bucket before it decides whether an event is new).
//!
//! A manifest that parses must serialise and parse back to an equal value,
//! so a rewrite never changes what it says; anything else is an error,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_pipeline::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let again = serde_json::to_vec(&m).expect("a parsed manifest serialises");
        let back: Manifest = serde_json::from_slice(&again).expect("and parses back");
        assert_eq!(m, back);
    }
});
