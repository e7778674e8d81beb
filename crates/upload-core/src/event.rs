//! The S3 event notification model.
//!
//! S3 (and S3-compatible servers) send one JSON message per notification
//! into a queue. Its shape, per the AWS "Event message structure" docs:
//!
//! ```json
//! {"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",
//!   "awsRegion":"us-east-1","eventTime":"2024-01-01T00:00:00.000Z",
//!   "eventName":"ObjectCreated:Put",
//!   "s3":{"s3SchemaVersion":"1.0","configurationId":"uploads",
//!     "bucket":{"name":"uploads","arn":"arn:aws:s3:::uploads"},
//!     "object":{"key":"uploads/a/my+photo.jpg","size":1024,
//!       "eTag":"d41d8cd98f00b204e9800998ecf8427e",
//!       "sequencer":"0055AED6DCD90281E5"}}}]}
//! ```
//!
//! Object keys in records are URL-encoded, with `+` standing for a space:
//! use [`S3EventRecord::key`] to get the real [`ObjectKey`]. The first
//! message after a bucket's notifications are configured is an
//! `s3:TestEvent`, parsed as [`EventMessage::Test`].

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::ObjectKey;

/// Largest event message accepted by [`parse_event_message`]: 256 KiB, the
/// SQS maximum message size.
pub const MAX_EVENT_MESSAGE_LEN: usize = 256 * 1024;

/// One queue message's worth of S3 notification.
#[derive(Debug, Clone, PartialEq)]
pub enum EventMessage {
    /// `s3:TestEvent`, sent once when notifications are configured; it
    /// names no object and should be deleted without processing.
    Test(TestEvent),
    /// One or more event records.
    Records(Vec<S3EventRecord>),
}

/// The `s3:TestEvent` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TestEvent {
    /// Always `Amazon S3` from AWS.
    #[serde(default)]
    pub service: String,
    /// `s3:TestEvent`.
    pub event: String,
    /// Event time, ISO 8601.
    #[serde(default)]
    pub time: String,
    /// The bucket whose notifications were configured.
    #[serde(default)]
    pub bucket: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordsEnvelope {
    records: Vec<S3EventRecord>,
}

/// One S3 event record (`Records[n]`). Fields not listed are ignored, so
/// MinIO's and other servers' extra fields parse too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3EventRecord {
    /// Schema version, `2.1` (or `2.2` / `2.3` for newer event types).
    #[serde(default)]
    pub event_version: String,
    /// `aws:s3` from AWS; `minio:s3` from MinIO.
    #[serde(default)]
    pub event_source: String,
    /// The bucket's region.
    #[serde(default)]
    pub aws_region: String,
    /// Event time, ISO 8601 (`2024-01-01T00:00:00.000Z`).
    #[serde(default)]
    pub event_time: String,
    /// The event type without the `s3:` prefix: `ObjectCreated:Put`,
    /// `ObjectCreated:CompleteMultipartUpload`, `ObjectRemoved:Delete`, ...
    pub event_name: String,
    /// The bucket and object the event is about.
    pub s3: S3Entity,
}

/// The `s3` member of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Entity {
    /// `1.0`.
    #[serde(default)]
    pub s3_schema_version: String,
    /// The notification configuration's ID.
    #[serde(default)]
    pub configuration_id: String,
    /// The bucket.
    pub bucket: S3Bucket,
    /// The object.
    pub object: S3Object,
}

/// The bucket of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Bucket {
    /// Bucket name.
    pub name: String,
    /// Bucket ARN, `arn:aws:s3:::{name}`.
    #[serde(default)]
    pub arn: String,
}

/// The object of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Object {
    /// The key, URL-encoded as S3 sends it (`+` is a space); decode with
    /// [`S3EventRecord::key`].
    pub key: String,
    /// Size in bytes (absent on `ObjectRemoved` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// ETag without quotes (absent on `ObjectRemoved` events).
    #[serde(default, rename = "eTag", skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// Version ID on versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Hex string that orders events for the same key: compare
    /// lexicographically after left-padding to equal length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

impl S3EventRecord {
    /// Builds a record as S3 would send it, encoding `key`.
    ///
    /// `event_name` is without the `s3:` prefix (`ObjectCreated:Put`);
    /// `size` and `etag` are `None` for removals.
    pub fn new(
        region: &str,
        bucket: &str,
        key: &ObjectKey,
        event_name: &str,
        size: Option<u64>,
        etag: Option<&str>,
        sequencer: &str,
    ) -> Self {
        let event_time = crate::timestamp::iso8601_millis(std::time::SystemTime::now());
        Self {
            event_version: "2.1".into(),
            event_source: "aws:s3".into(),
            aws_region: region.into(),
            event_time,
            event_name: event_name.into(),
            s3: S3Entity {
                s3_schema_version: "1.0".into(),
                configuration_id: "upload-sdk".into(),
                bucket: S3Bucket {
                    name: bucket.into(),
                    arn: format!("arn:aws:s3:::{bucket}"),
                },
                object: S3Object {
                    key: encode_key(key.as_str()),
                    size,
                    e_tag: etag.map(str::to_owned),
                    version_id: None,
                    sequencer: Some(sequencer.into()),
                },
            },
        }
    }

    /// The decoded object key (`my+photo%2B1.jpg` → `my photo+1.jpg`).
    ///
    /// # Errors
    /// [`Error::MalformedEvent`] if the percent-decoding is not UTF-8, or
    /// [`Error::InvalidKey`] if the decoded key is not a valid key.
    pub fn key(&self) -> Result<ObjectKey> {
        ObjectKey::new(decode_key(&self.s3.object.key)?)
    }

    /// Whether this is an `ObjectCreated:*` event.
    pub fn is_object_created(&self) -> bool {
        self.event_name
            .trim_start_matches("s3:")
            .starts_with("ObjectCreated:")
    }

    /// Whether this is an `ObjectRemoved:*` event.
    pub fn is_object_removed(&self) -> bool {
        self.event_name
            .trim_start_matches("s3:")
            .starts_with("ObjectRemoved:")
    }

    /// The message body S3 would send for this single record.
    pub fn to_message(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out<'a> {
            records: [&'a S3EventRecord; 1],
        }
        serde_json::to_string(&Out { records: [self] }).expect("records serialize")
    }
}

/// Parses a queue message body as an S3 event notification.
///
/// # Errors
/// [`Error::MalformedEvent`] if the body is larger than
/// [`MAX_EVENT_MESSAGE_LEN`], is not JSON, is neither a `Records` message
/// nor an `s3:TestEvent`, or holds no record.
pub fn parse_event_message(body: &str) -> Result<EventMessage> {
    if body.len() > MAX_EVENT_MESSAGE_LEN {
        return Err(Error::MalformedEvent {
            reason: format!(
                "{} bytes, larger than the {MAX_EVENT_MESSAGE_LEN}-byte SQS maximum",
                body.len()
            ),
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| Error::MalformedEvent {
            reason: e.to_string(),
        })?;
    let malformed = |e: serde_json::Error| Error::MalformedEvent {
        reason: e.to_string(),
    };
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return serde_json::from_value(value)
            .map(EventMessage::Test)
            .map_err(malformed);
    }
    if value.get("Records").is_none() {
        return Err(Error::MalformedEvent {
            reason: "neither a Records message nor an s3:TestEvent".into(),
        });
    }
    let env: RecordsEnvelope = serde_json::from_value(value).map_err(malformed)?;
    if env.records.is_empty() {
        return Err(Error::MalformedEvent {
            reason: "Records is empty".into(),
        });
    }
    Ok(EventMessage::Records(env.records))
}

/// Characters S3 leaves as they are in event keys: unreserved ones and `/`.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b' ');

/// Encodes a key the way S3 does in event records: percent-encoding, with
/// a space as `+`.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_ENCODE)
        .to_string()
        .replace(' ', "+")
}

/// Decodes a key from an event record: `+` is a space, then
/// percent-decoding (so `%2B` is a literal `+`).
///
/// # Errors
/// [`Error::MalformedEvent`] if the result is not UTF-8.
pub fn decode_key(encoded: &str) -> Result<String> {
    let spaced = encoded.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::MalformedEvent {
            reason: format!("key {encoded:?} does not decode to UTF-8"),
        })
}

/// Where a store sends its event notifications (a queue, in practice).
///
/// Implemented by the pipeline's queues; [`crate::MemoryStorage`] publishes
/// one S3-format message per created or removed object.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Publishes one message body (an S3 event notification in JSON).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the message could not be accepted.
    async fn publish(&self, body: String) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example message from the AWS "Event message structure" page,
    /// with a key holding an encoded space and plus.
    const AWS_EXAMPLE: &str = r#"{
      "Records":[{
        "eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2",
        "eventTime":"1970-01-01T00:00:00.000Z","eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters":{"sourceIPAddress":"127.0.0.1"},
        "responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3":{"s3SchemaVersion":"1.0","configurationId":"testConfigRule",
          "bucket":{"name":"mybucket","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::mybucket"},
          "object":{"key":"photos/Happy+Face%2B1%C3%A9.jpg","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e",
            "versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn parses_the_aws_example() {
        let EventMessage::Records(records) = parse_event_message(AWS_EXAMPLE).unwrap() else {
            panic!("not records");
        };
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert!(r.is_object_created());
        assert!(!r.is_object_removed());
        assert_eq!(r.s3.bucket.name, "mybucket");
        assert_eq!(r.key().unwrap().as_str(), "photos/Happy Face+1é.jpg");
        assert_eq!(r.s3.object.size, Some(1024));
        assert_eq!(
            r.s3.object.e_tag.as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(r.s3.object.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
    }

    #[test]
    fn recognises_test_event() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"bucketname","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;
        match parse_event_message(body).unwrap() {
            EventMessage::Test(t) => {
                assert_eq!(t.bucket, "bucketname");
                assert_eq!(t.event, "s3:TestEvent");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        for body in [
            "",
            "{",
            "null",
            "[]",
            r#"{"Records":[]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
            r#"{"Records":"x"}"#,
            r#"{"Something":"else"}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","size":-1}}}]}"#,
        ] {
            assert!(
                matches!(parse_event_message(body), Err(Error::MalformedEvent { .. })),
                "{body:?}"
            );
        }
        let huge = format!(
            "{{\"Records\":[],\"pad\":\"{}\"}}",
            "x".repeat(MAX_EVENT_MESSAGE_LEN)
        );
        assert!(matches!(
            parse_event_message(&huge),
            Err(Error::MalformedEvent { .. })
        ));
    }

    #[test]
    fn bad_keys_are_refused_after_decoding() {
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"..%2Fetc%2Fpasswd"}}}]}"#;
        let EventMessage::Records(r) = parse_event_message(body).unwrap() else {
            panic!()
        };
        assert!(matches!(r[0].key(), Err(Error::InvalidKey { .. })));
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%FF%FE"}}}]}"#;
        let EventMessage::Records(r) = parse_event_message(body).unwrap() else {
            panic!()
        };
        assert!(matches!(r[0].key(), Err(Error::MalformedEvent { .. })));
    }

    #[test]
    fn built_records_round_trip() {
        let key = ObjectKey::new("uploads/a b/x+y%z/日本.jpg").unwrap();
        let rec = S3EventRecord::new(
            "us-east-1",
            "uploads",
            &key,
            "ObjectCreated:Put",
            Some(5),
            Some("abc"),
            "0000000000000001",
        );
        assert_eq!(
            rec.s3.object.key,
            "uploads/a+b/x%2By%25z/%E6%97%A5%E6%9C%AC.jpg"
        );
        let msg = rec.to_message();
        let EventMessage::Records(back) = parse_event_message(&msg).unwrap() else {
            panic!()
        };
        assert_eq!(back, vec![rec]);
        assert_eq!(back[0].key().unwrap(), key);
    }

    proptest::proptest! {
        #[test]
        fn encode_decode_round_trip(s in "\\PC{1,40}") {
            proptest::prop_assert_eq!(decode_key(&encode_key(&s)).unwrap(), s);
        }
    }
}
