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
    /// The event records: usually one, several when S3 batches them, none
    /// for `{"Records": []}` (a valid, empty notification: nothing to do).
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
    /// Hex string that orders events for the same key: compare with
    /// [`sequencer_cmp`] (right-pad the shorter with `0`, then compare as
    /// strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

impl S3EventRecord {
    /// Builds a record as S3 would send it, encoding `key`.
    ///
    /// `event_name` is without the `s3:` prefix (`ObjectCreated:Put`);
    /// `size` and `etag` are `None` for removals; an empty `sequencer`
    /// leaves it out.
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
                    sequencer: (!sequencer.is_empty()).then(|| sequencer.into()),
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

/// Orders two S3 event sequencers of the same key as the S3 event
/// notification docs say ("Event ordering"): the shorter value is
/// right-padded with `0` to the other's length, then both compare as
/// strings (ASCII case ignored, as hex digits). So `FF` is later than
/// `0100` (`FF00` > `0100`) and `0A` equals `0A00`. Sequencers of
/// different keys do not order anything.
///
/// ```
/// use std::cmp::Ordering;
/// use upload_core::event::sequencer_cmp;
/// assert_eq!(sequencer_cmp("FF", "0100"), Ordering::Greater);
/// assert_eq!(sequencer_cmp("0A", "0A00"), Ordering::Equal);
/// assert_eq!(sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E6"), Ordering::Less);
/// ```
pub fn sequencer_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    fn padded(s: &str, len: usize) -> impl Iterator<Item = u8> + '_ {
        s.bytes()
            .map(|c| c.to_ascii_uppercase())
            .chain(std::iter::repeat(b'0'))
            .take(len)
    }
    padded(a, len).cmp(padded(b, len))
}

/// Parses a queue message body as an S3 event notification, in every shape
/// one arrives in: S3 notification records (several per message; MinIO's
/// variant, with `s3:`-prefixed event names, included), `s3:TestEvent`,
/// either of them wrapped in an SNS notification (S3 -> SNS -> SQS without
/// raw delivery), and EventBridge `aws.s3` events. Keys are decoded exactly
/// once by [`S3EventRecord::key`] whatever the shape.
///
/// # Errors
/// [`Error::MalformedEvent`] if the body is larger than
/// [`MAX_EVENT_MESSAGE_LEN`], is not JSON, or is none of these shapes. An
/// empty `Records` array is not an error: it parses as
/// `EventMessage::Records(vec![])`.
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
    // S3 -> SNS -> SQS (without raw message delivery): the S3 message is
    // the string `Message` of an SNS notification. Unwrapped once only.
    if value.get("Type").and_then(|t| t.as_str()) == Some("Notification")
        && value.get("TopicArn").is_some()
    {
        let inner = value
            .get("Message")
            .and_then(|m| m.as_str())
            .ok_or_else(|| Error::MalformedEvent {
                reason: "SNS notification without a string Message".into(),
            })?;
        let inner_value: serde_json::Value =
            serde_json::from_str(inner).map_err(|e| Error::MalformedEvent {
                reason: format!("SNS Message: {e}"),
            })?;
        if inner_value.get("Type").and_then(|t| t.as_str()) == Some("Notification") {
            return Err(Error::MalformedEvent {
                reason: "an SNS notification inside an SNS notification".into(),
            });
        }
        return parse_value(inner_value);
    }
    parse_value(value)
}

/// Parses an S3 notification, `s3:TestEvent` or EventBridge event.
fn parse_value(value: serde_json::Value) -> Result<EventMessage> {
    let malformed = |e: serde_json::Error| Error::MalformedEvent {
        reason: e.to_string(),
    };
    if value.get("source").and_then(|s| s.as_str()) == Some("aws.s3")
        && value.get("detail-type").is_some()
    {
        return from_eventbridge(&value).map(|r| EventMessage::Records(vec![r]));
    }
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
    // `{"Records": []}` is a valid, empty notification: zero records.
    let env: RecordsEnvelope = serde_json::from_value(value).map_err(malformed)?;
    Ok(EventMessage::Records(env.records))
}

/// An EventBridge "Object Created" / "Object Deleted" event (S3 with
/// EventBridge notifications on) as a record. EventBridge keys are not
/// URL-encoded: the record gets the S3 encoding, so [`S3EventRecord::key`]
/// decodes every shape exactly once. Other detail types (tags, ACLs,
/// restores, storage class changes) become records that are neither
/// created nor removed, which the worker skips.
fn from_eventbridge(v: &serde_json::Value) -> Result<S3EventRecord> {
    let bad = |what: &str| Error::MalformedEvent {
        reason: format!("EventBridge event without {what}"),
    };
    let detail_type = v["detail-type"]
        .as_str()
        .ok_or_else(|| bad("detail-type"))?;
    let detail = v.get("detail").ok_or_else(|| bad("detail"))?;
    let bucket = detail["bucket"]["name"]
        .as_str()
        .ok_or_else(|| bad("detail.bucket.name"))?;
    let key = detail["object"]["key"]
        .as_str()
        .ok_or_else(|| bad("detail.object.key"))?;
    let reason = detail["reason"].as_str().unwrap_or("");
    let event_name = match detail_type {
        "Object Created" => format!(
            "ObjectCreated:{}",
            match reason {
                "PutObject" => "Put",
                "PostObject" => "Post",
                "CopyObject" => "Copy",
                "CompleteMultipartUpload" => "CompleteMultipartUpload",
                _ => "Put",
            }
        ),
        "Object Deleted" => match detail["deletion-type"].as_str() {
            Some("Delete Marker Created") => "ObjectRemoved:DeleteMarkerCreated".to_owned(),
            _ => "ObjectRemoved:Delete".to_owned(),
        },
        other => format!("EventBridge:{other}"),
    };
    Ok(S3EventRecord {
        event_version: "eventbridge".into(),
        event_source: "aws:s3".into(),
        aws_region: v["region"].as_str().unwrap_or("").to_owned(),
        event_time: v["time"].as_str().unwrap_or("").to_owned(),
        event_name,
        s3: S3Entity {
            s3_schema_version: String::new(),
            configuration_id: String::new(),
            bucket: S3Bucket {
                name: bucket.to_owned(),
                arn: format!("arn:aws:s3:::{bucket}"),
            },
            object: S3Object {
                key: encode_key(key),
                size: detail["object"]["size"].as_u64(),
                e_tag: detail["object"]["etag"].as_str().map(str::to_owned),
                version_id: detail["object"]["version-id"].as_str().map(str::to_owned),
                sequencer: detail["object"]["sequencer"].as_str().map(str::to_owned),
            },
        },
    })
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
    fn empty_records_is_a_valid_empty_notification() {
        assert_eq!(
            parse_event_message(r#"{"Records":[]}"#).unwrap(),
            EventMessage::Records(vec![])
        );
        assert_eq!(
            parse_event_message(r#"{"Records":[],"extra":1}"#).unwrap(),
            EventMessage::Records(vec![])
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        for body in [
            "",
            "{",
            "null",
            "[]",
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

    /// MinIO's message (`notify_nats`, webhook, ...): its `event.Log` with
    /// top-level `EventName`, `Key` (bucket/key, unescaped) and `Records`;
    /// `eventName` keeps the `s3:` prefix and `s3.object.key` is Go's
    /// `url.QueryEscape` of the key (`/` as `%2F`, space as `+`).
    #[test]
    fn minio_records_parse_with_prefixed_names_and_query_escaped_keys() {
        let created = r#"{"EventName":"s3:ObjectCreated:Put","Key":"uploads/u 1/a+b ✓.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-12-04T23:40:00.123Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minioadmin"},"requestParameters":{"principalId":"minioadmin","region":"","sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"187E0F2C8A6E1D5B","x-minio-origin-endpoint":"http://127.0.0.1:9000"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"uploads","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::uploads"},"object":{"key":"u+1%2Fa%2Bb+%E2%9C%93.jpg","size":12,"eTag":"0123456789abcdef0123456789abcdef","contentType":"image/jpeg","userMetadata":{"content-type":"image/jpeg"},"sequencer":"187E0F2C8A8B3C1F"}},"source":{"host":"127.0.0.1","port":"","userAgent":"MinIO (linux; amd64) minio-go/v7.0.70"}}]}"#;
        let r = only_record(created);
        assert!(r.is_object_created() && !r.is_object_removed());
        assert_eq!(r.key().unwrap().as_str(), "u 1/a+b ✓.jpg");
        assert_eq!(r.s3.bucket.name, "uploads");
        assert_eq!(r.s3.object.size, Some(12));
        assert_eq!(r.s3.object.sequencer.as_deref(), Some("187E0F2C8A8B3C1F"));
        // A removal: no size or ETag.
        let removed = r#"{"EventName":"s3:ObjectRemoved:Delete","Key":"uploads/x/y.png","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectRemoved:Delete","s3":{"bucket":{"name":"uploads"},"object":{"key":"x%2Fy.png","sequencer":"187E0F2C8A8B3C20"}}}]}"#;
        let r = only_record(removed);
        assert!(r.is_object_removed() && !r.is_object_created());
        assert_eq!(r.key().unwrap().as_str(), "x/y.png");
        assert_eq!(r.s3.object.e_tag, None);
    }

    proptest::proptest! {
        #[test]
        fn encode_decode_round_trip(s in "\\PC{1,40}") {
            proptest::prop_assert_eq!(decode_key(&encode_key(&s)).unwrap(), s);
        }
    }

    fn only_record(body: &str) -> S3EventRecord {
        match parse_event_message(body).expect("parses") {
            EventMessage::Records(mut r) => {
                assert_eq!(r.len(), 1);
                r.remove(0)
            }
            other => panic!("not records: {other:?}"),
        }
    }

    const S3_RECORD: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-29T16:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"uploads","arn":"arn:aws:s3:::uploads"},"object":{"key":"uploads/u1/a+b%2Bc%E2%9C%93.jpg","size":12,"eTag":"0123456789abcdef0123456789abcdef","sequencer":"0A1B2C"}}}]}"#;

    #[test]
    fn sns_wrapped_s3_events_are_unwrapped_once() {
        let sns = serde_json::json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Subject": "Amazon S3 Notification",
            "Message": S3_RECORD,
            "Timestamp": "2026-11-29T16:00:00.123Z",
            "SignatureVersion": "1",
        })
        .to_string();
        let r = only_record(&sns);
        assert_eq!(
            r.key().unwrap().as_str(),
            "uploads/u1/a b+c✓.jpg",
            "decoded exactly once"
        );
        assert!(r.is_object_created());
        let test_event = serde_json::json!({
            "Type": "Notification",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Message": r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-29T16:00:00.000Z","Bucket":"uploads","RequestId":"R","HostId":"H"}"#,
        })
        .to_string();
        assert!(matches!(
            parse_event_message(&test_event),
            Ok(EventMessage::Test(_))
        ));
        let nested = serde_json::json!({"Type": "Notification", "TopicArn": "t", "Message": sns})
            .to_string();
        assert!(matches!(
            parse_event_message(&nested),
            Err(Error::MalformedEvent { .. })
        ));
        let no_message =
            serde_json::json!({"Type": "Notification", "TopicArn": "t", "Message": 5}).to_string();
        assert!(matches!(
            parse_event_message(&no_message),
            Err(Error::MalformedEvent { .. })
        ));
    }

    #[test]
    fn eventbridge_events_become_records_with_raw_keys_encoded() {
        // The shape of the AWS "Amazon S3 event notifications with
        // EventBridge" docs; EventBridge keys are not URL-encoded.
        let created = serde_json::json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-29T16:00:00Z",
            "region": "us-east-2",
            "resources": ["arn:aws:s3:::uploads"],
            "detail": {
                "version": "0",
                "bucket": {"name": "uploads"},
                "object": {"key": "uploads/u1/a b+c%✓.jpg", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "00617F08299329D189"},
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "reason": "CompleteMultipartUpload"
            }
        })
        .to_string();
        let r = only_record(&created);
        assert_eq!(r.key().unwrap().as_str(), "uploads/u1/a b+c%✓.jpg");
        assert_eq!(r.event_name, "ObjectCreated:CompleteMultipartUpload");
        assert!(r.is_object_created());
        assert_eq!(r.s3.bucket.name, "uploads");
        assert_eq!(r.s3.object.size, Some(5));
        assert_eq!(r.s3.object.sequencer.as_deref(), Some("00617F08299329D189"));
        assert_eq!(r.aws_region, "us-east-2");
        let deleted = created.replace("Object Created", "Object Deleted").replace(
            "\"reason\":\"CompleteMultipartUpload\"",
            "\"reason\":\"DeleteObject\",\"deletion-type\":\"Permanently Deleted\"",
        );
        assert!(only_record(&deleted).is_object_removed());
        let tagged = created.replace("Object Created", "Object Tags Added");
        let t = only_record(&tagged);
        assert!(
            !t.is_object_created() && !t.is_object_removed(),
            "tag changes never trigger processing"
        );
        let keyless = created.replace("\"key\"", "\"nokey\"");
        assert!(matches!(
            parse_event_message(&keyless),
            Err(Error::MalformedEvent { .. })
        ));
    }

    #[test]
    fn minio_records_parse_with_prefixed_event_names() {
        // MinIO's notification: a top-level EventName and Key, then S3-shaped
        // records whose eventName carries the "s3:" prefix.
        let minio = r#"{"EventName":"s3:ObjectCreated:Put","Key":"uploads/uploads/u1/a+b.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-11-29T16:00:00.000Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minio"},"requestParameters":{"principalId":"minio","region":"","sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"17A","x-minio-origin-endpoint":"http://127.0.0.1:9000"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"uploads","ownerIdentity":{"principalId":"minio"},"arn":"arn:aws:s3:::uploads"},"object":{"key":"uploads%2Fu1%2Fa+b.jpg","size":3,"eTag":"abc","contentType":"image/jpeg","userMetadata":{"content-type":"image/jpeg"},"sequencer":"17A9"}},"source":{"host":"127.0.0.1","port":"","userAgent":"MinIO"}}]}"#;
        let r = only_record(minio);
        assert!(r.is_object_created());
        assert_eq!(r.key().unwrap().as_str(), "uploads/u1/a b.jpg");
    }

    #[test]
    fn sequencers_order_after_right_padding() {
        use std::cmp::Ordering::*;
        // The S3 docs' rule: right-pad the shorter with 0, then compare as
        // strings. Numeric (left-padded) comparison gets these wrong.
        assert_eq!(sequencer_cmp("FF", "0100"), Greater);
        assert_eq!(sequencer_cmp("0100", "FF"), Less);
        assert_eq!(sequencer_cmp("0A", "0A00"), Equal);
        assert_eq!(sequencer_cmp("0A", "9"), Less);
        assert_eq!(sequencer_cmp("00FF", "100"), Less);
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055aed6dcd90281e5"),
            Equal
        );
        assert_eq!(sequencer_cmp("", "0"), Equal);
        assert_eq!(sequencer_cmp("", "01"), Less);
        assert_eq!(sequencer_cmp("0000000000000002", "0000000000000010"), Less);
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E500"),
            Equal
        );
    }
}
