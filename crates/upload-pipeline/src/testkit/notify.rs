//! The [`Notifier`] conformance suite. Each check sends notifications and
//! reads back what was delivered through a [`Delivered`] of the same
//! notifier, starting and ending with nothing pending.
//!
//! ```no_run
//! # async fn f() {
//! use upload_pipeline::MemoryNotifier;
//! use upload_pipeline::testkit::notify::{self as suite, MemoryDelivered, Promises};
//! let n = MemoryNotifier::new();
//! suite::run_all(&n, &mut MemoryDelivered(&n), &Promises::queue()).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use upload_core::ObjectKey;

use crate::codec::Placeholder;
use crate::manifest::{ImageInfo, Location, Manifest, Outcome, SourceObject, VariantRecord};
use crate::notify::{
    MAX_NOTIFICATION_BYTES, MemoryNotifier, NotificationKind, Notifier, NotifyError, UploadContext,
    UploadNotification,
};
use crate::queue::{Queue, ReceiveOptions};

/// What was delivered by the notifier under test.
#[async_trait]
pub trait Delivered: Send {
    /// The notifications delivered since the last call, in delivery order:
    /// waits (a few seconds at most) until `expected` have arrived, then
    /// returns what arrived (more, if more did).
    async fn drain(&mut self, expected: usize) -> Vec<UploadNotification>;
}

/// What a notifier promises, which the suite then checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promises {
    /// Notifications arrive in the order they were accepted.
    pub ordered: bool,
    /// Notifications whose JSON is over this many bytes are refused with
    /// [`NotifyError::TooLarge`]; `None`: any size is delivered.
    pub max_bytes: Option<usize>,
}

impl Promises {
    /// An ordered queue with the 256 KiB limit ([`MemoryNotifier`],
    /// `QueueNotifier<MemoryQueue>`).
    pub fn queue() -> Self {
        Self {
            ordered: true,
            max_bytes: Some(MAX_NOTIFICATION_BYTES),
        }
    }
}

/// [`Delivered`] of a [`MemoryNotifier`].
#[derive(Debug)]
pub struct MemoryDelivered<'a>(pub &'a MemoryNotifier);

#[async_trait]
impl Delivered for MemoryDelivered<'_> {
    async fn drain(&mut self, _expected: usize) -> Vec<UploadNotification> {
        self.0.take()
    }
}

/// [`Delivered`] of a `ChannelNotifier`'s receiver.
#[derive(Debug)]
pub struct ChannelDelivered(pub mpsc::Receiver<UploadNotification>);

#[async_trait]
impl Delivered for ChannelDelivered {
    async fn drain(&mut self, expected: usize) -> Vec<UploadNotification> {
        let mut out = Vec::new();
        while out.len() < expected {
            match tokio::time::timeout(Duration::from_secs(2), self.0.recv()).await {
                Ok(Some(n)) => out.push(n),
                _ => break,
            }
        }
        while let Ok(n) = self.0.try_recv() {
            out.push(n);
        }
        out
    }
}

/// [`Delivered`] of a `QueueNotifier`'s queue: receives, parses and
/// deletes messages.
#[derive(Debug)]
pub struct QueueDelivered<'a, Q: Queue>(pub &'a Q);

#[async_trait]
impl<Q: Queue> Delivered for QueueDelivered<'_, Q> {
    async fn drain(&mut self, expected: usize) -> Vec<UploadNotification> {
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 3 && (out.len() < expected || empty == 0) {
            let wait = if out.len() < expected {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            };
            let got = self
                .0
                .receive(&ReceiveOptions::default().with_wait(wait))
                .await
                .expect("receive from the notification queue");
            if got.is_empty() {
                empty += 1;
                if out.len() >= expected {
                    break;
                }
                continue;
            }
            for m in got {
                out.push(UploadNotification::from_json(&m.body).expect("a notification"));
                self.0.delete(&m.receipt_handle).await.expect("delete");
            }
        }
        out
    }
}

/// Runs every check below.
pub async fn run_all(n: &dyn Notifier, out: &mut dyn Delivered, p: &Promises) {
    each_kind_round_trips(n, out, p).await;
    duplicates_keep_their_id(n, out).await;
    order_is_kept(n, out, p).await;
    oversized(n, out, p).await;
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).expect("valid key")
}

/// The context of the samples: route, owner and metadata with non-ASCII
/// text and JSON-special characters.
pub fn sample_context() -> UploadContext {
    UploadContext {
        route: Some("avatar".into()),
        owner: Some("user-42".into()),
        metadata: BTreeMap::from([
            ("album".into(), "Été \"2026\" ✓".into()),
            ("note".into(), "line\nbreak\\".into()),
        ]),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

/// A manifest of `key` with `verdict` and the facts of that verdict.
pub fn sample_manifest(key_: &str, verdict: Outcome) -> Manifest {
    let mut m = Manifest::new(
        SourceObject {
            bucket: "uploads".into(),
            key: key(key_),
            etag: "9bb58f26192e4ba00f01e2e7b136bbd8".into(),
            size: 123_456,
            sniffed: Some("image/jpeg".into()),
            version_id: None,
            sequencer: Some("0055AED6DCD90281E5".into()),
        },
        verdict,
    );
    m.processed_at = "2026-12-04T13:05:00Z".into();
    match verdict {
        Outcome::Clean => {
            m.variants = vec![
                VariantRecord {
                    name: "thumb".into(),
                    key: key(&format!("{key_}/thumb-9bb58f26192e4ba0-abcd.webp")),
                    content_type: "image/webp".into(),
                    width: 128,
                    height: 96,
                    bytes: 2048,
                },
                VariantRecord {
                    name: "medium".into(),
                    key: key(&format!("{key_}/medium-9bb58f26192e4ba0-ef01.webp")),
                    content_type: "image/webp".into(),
                    width: 1024,
                    height: 768,
                    bytes: 65_536,
                },
            ];
            m.image = Some(ImageInfo {
                width: 4032,
                height: 3024,
                placeholder: Some(Placeholder {
                    thumbhash: "1QcSHQRnh493V4dIh4eXh1h4kJUI".into(),
                    dominant_color: "#c81e1e".into(),
                }),
            });
        }
        Outcome::Rejected => m.reason = Some("type image/svg+xml is not allowed".into()),
        Outcome::Infected => {
            m.signature = Some("Eicar-Test-Signature".into());
            m.quarantine = Some(Location {
                bucket: "uploads".into(),
                key: key(&format!("quarantine/{key_}")),
            });
        }
        Outcome::Unscannable => {
            m.reason = Some("archive nested too deep".into());
            m.quarantine = Some(Location {
                bucket: "uploads".into(),
                key: key(&format!("quarantine/{key_}")),
            });
        }
    }
    m
}

/// One notification of each kind (processed, rejected, quarantined as
/// infected and as unscannable, removed), with [`sample_context`].
pub fn sample_notifications() -> Vec<UploadNotification> {
    let mut v: Vec<_> = [
        ("uploads/u1/a.jpg", Outcome::Clean),
        ("uploads/u1/b.svg", Outcome::Rejected),
        ("uploads/u1/c.zip", Outcome::Infected),
        ("uploads/u1/d.zip", Outcome::Unscannable),
    ]
    .into_iter()
    .map(|(k, o)| UploadNotification::from_manifest(&sample_manifest(k, o), sample_context()))
    .collect();
    let mut removed = UploadNotification::removed(
        "uploads",
        key("uploads/u1/e.jpg"),
        Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into()),
        sample_context(),
    );
    removed.timestamp = "2026-12-04T13:06:00Z".into();
    v.push(removed);
    v
}

fn by_id(mut v: Vec<UploadNotification>) -> Vec<UploadNotification> {
    v.sort_by_key(UploadNotification::id);
    v
}

/// One notification of each kind arrives intact (every field, after the
/// notifier's own encoding) with the same ID.
pub async fn each_kind_round_trips(n: &dyn Notifier, out: &mut dyn Delivered, p: &Promises) {
    let sent = sample_notifications();
    let kinds: Vec<_> = sent.iter().map(UploadNotification::kind).collect();
    assert_eq!(
        kinds,
        [
            NotificationKind::Processed,
            NotificationKind::Rejected,
            NotificationKind::Quarantined,
            NotificationKind::Quarantined,
            NotificationKind::Removed
        ]
    );
    for s in &sent {
        n.notify(s).await.expect("notify");
    }
    let got = out.drain(sent.len()).await;
    assert_eq!(got.len(), sent.len(), "each delivered once");
    if p.ordered {
        assert_eq!(got, sent, "intact and in order");
    } else {
        assert_eq!(by_id(got.clone()), by_id(sent.clone()), "intact");
    }
    let mut ids: Vec<String> = got.iter().map(UploadNotification::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent.len(), "distinct IDs");
    for g in &got {
        assert!(
            sent.iter().any(|s| s.id() == g.id()),
            "{} keeps its ID",
            g.id()
        );
    }
}

/// The same record notified twice (a redelivered S3 event) arrives twice
/// with one ID: at least once, deduplicable.
pub async fn duplicates_keep_their_id(n: &dyn Notifier, out: &mut dyn Delivered) {
    let m = sample_manifest("uploads/u2/dup.jpg", Outcome::Clean);
    let first = UploadNotification::from_manifest(&m, sample_context());
    let again = UploadNotification::from_manifest(&m, sample_context());
    n.notify(&first).await.expect("notify");
    n.notify(&again).await.expect("notify again");
    let got = out.drain(2).await;
    assert_eq!(got.len(), 2, "both deliveries arrive");
    assert_eq!(got[0].id(), first.id());
    assert_eq!(got[1].id(), first.id());
    assert_eq!(got[0], got[1]);
}

/// Twelve notifications arrive, in order when the notifier promises it.
pub async fn order_is_kept(n: &dyn Notifier, out: &mut dyn Delivered, p: &Promises) {
    let sent: Vec<_> = (0..12)
        .map(|i| {
            UploadNotification::removed(
                "uploads",
                key(&format!("uploads/order/{i:02}")),
                None,
                UploadContext::default(),
            )
        })
        .collect();
    for s in &sent {
        n.notify(s).await.expect("notify");
    }
    let got = out.drain(sent.len()).await;
    let keys = |v: &[UploadNotification]| -> Vec<String> {
        v.iter().map(|n| n.object.key.as_str().to_owned()).collect()
    };
    if p.ordered {
        assert_eq!(keys(&got), keys(&sent), "in order");
    } else {
        let mut k = keys(&got);
        k.sort();
        assert_eq!(k, keys(&sent), "all arrive");
    }
}

/// A notification with 300 KiB of metadata is refused with
/// [`NotifyError::TooLarge`] where the notifier has a limit (and nothing is
/// delivered), delivered intact where it has none.
pub async fn oversized(n: &dyn Notifier, out: &mut dyn Delivered, p: &Promises) {
    let mut context = sample_context();
    context
        .metadata
        .insert("huge".into(), "x".repeat(300 * 1024));
    let big = UploadNotification::removed("uploads", key("uploads/big"), None, context);
    let json_len = big.to_json().expect("json").len();
    match p.max_bytes {
        Some(max) => {
            let err = n.notify(&big).await.expect_err("over the limit");
            match err {
                NotifyError::TooLarge { bytes, max: m } => {
                    assert_eq!(bytes, json_len);
                    assert_eq!(m, max);
                }
                other => panic!("expected TooLarge, got {other:?}"),
            }
            assert!(out.drain(0).await.is_empty(), "nothing delivered");
        }
        None => {
            n.notify(&big).await.expect("no limit");
            assert_eq!(out.drain(1).await, [big]);
        }
    }
}
