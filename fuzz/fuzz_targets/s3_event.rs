//! Fuzz target `s3_event`: `parse_event_message` on arbitrary queue
//! message bodies, with invariants checked on everything it accepts.
//!
//! The input bytes are the body when they are valid UTF-8; otherwise they
//! are converted lossily (U+FFFD for invalid sequences) so that byte-level
//! mutations still reach the parser. Asserted:
//!
//! - an error is always `Error::MalformedEvent`;
//! - a `Test` message has `Event` = `s3:TestEvent` (a `Records` message
//!   may be empty: `{"Records": []}` is a valid, empty notification);
//! - for every record, `key()` is an `InvalidKey` / `MalformedEvent` error
//!   or a key that round-trips: `encode_key` then `decode_key` gives the
//!   same string, and `ObjectKey::new` of it succeeds again (equal key);
//! - `to_message()` of every record parses back to exactly that record
//!   (when the re-serialised message still fits the 256 KiB SQS limit; a
//!   message over it must be refused as `MalformedEvent`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_core::event::{MAX_EVENT_MESSAGE_LEN, decode_key, encode_key};
use upload_core::{Error, EventMessage, ObjectKey, S3EventRecord, parse_event_message};

fn check_record(record: &S3EventRecord) {
    match record.key() {
        Err(Error::InvalidKey { .. } | Error::MalformedEvent { .. }) => {}
        Err(other) => panic!("key() of {record:?} failed with {other:?}"),
        Ok(key) => {
            let encoded = encode_key(key.as_str());
            let decoded = decode_key(&encoded)
                .unwrap_or_else(|e| panic!("decode_key({encoded:?}) failed: {e:?}"));
            assert_eq!(decoded, key.as_str(), "encode/decode changed the key");
            let again = ObjectKey::new(decoded).expect("a decoded valid key is valid again");
            assert_eq!(again, key);
        }
    }

    let message = record.to_message();
    match parse_event_message(&message) {
        Ok(EventMessage::Records(back)) => {
            assert_eq!(back.len(), 1, "to_message holds one record: {message}");
            assert_eq!(
                &back[0], record,
                "to_message does not round-trip: {message}"
            );
        }
        Err(Error::MalformedEvent { .. }) if message.len() > MAX_EVENT_MESSAGE_LEN => {}
        other => panic!("to_message of {record:?} parsed as {other:?}: {message}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    match parse_event_message(&body) {
        Err(Error::MalformedEvent { .. }) => {}
        Err(other) => panic!("parse_event_message failed with {other:?}, not MalformedEvent"),
        Ok(EventMessage::Test(test)) => assert_eq!(test.event, "s3:TestEvent"),
        Ok(EventMessage::Records(records)) => {
            for record in &records {
                check_record(record);
            }
        }
    }
});
