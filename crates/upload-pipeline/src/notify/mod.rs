//! Upload outcomes pushed back to the application ("results pushed back").
//!
//! When the worker finishes an S3 `ObjectCreated` record it emits one
//! [`UploadNotification`]: `upload.processed`, `upload.rejected`,
//! `upload.quarantined`, or `upload.removed` for an `ObjectRemoved` record,
//! each with the upload's route, owner and metadata ([`UploadContext`]).
//! The JSON is a [Standard Webhooks](https://www.standardwebhooks.com/)
//! payload, `{"type": ..., "timestamp": ..., "data": {...}}`, and
//! [`UploadNotification::id`] is its idempotency key (the `webhook-id`).
//!
//! Delivery is at least once: a [`Notifier`] returns `Ok` only once the
//! notification is durably accepted, the worker deletes the S3 event only
//! after that, and a redelivered event yields the same
//! [`id`](UploadNotification::id), so receivers deduplicate by it.
//!
//! Notifiers:
//! - [`MemoryNotifier`]: records in memory, can fail on demand (tests).
//! - [`ChannelNotifier`]: an in-process `tokio::sync::mpsc` channel.
//! - [`QueueNotifier`]: the JSON onto any [`Queue`](crate::Queue); on
//!   `sqs::SqsQueue` (feature `sqs`) this is the SQS
//!   notifier.
//! - [`WebhookNotifier`]: a [`QueueNotifier`] into an outbox queue, drained
//!   by `WebhookDeliverer` (feature `webhook`), which POSTs each
//!   notification signed by [`WebhookSigner`]; receivers check it with
//!   [`WebhookVerifier`].

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use upload_core::ObjectKey;

use crate::manifest::{ImageInfo, Location, Manifest, Outcome, VariantRecord};

#[cfg(feature = "webhook")]
mod deliver;
mod memory;
mod queue;
mod signature;

#[cfg(feature = "webhook")]
pub use deliver::{Backoff, DeliveryConfig, DeliveryStats, WebhookDeliverer};
pub use memory::{ChannelNotifier, MemoryNotifier};
pub use queue::{QueueNotifier, WebhookNotifier};
pub use signature::{
    DEFAULT_TOLERANCE, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_SIGNATURES,
    SECRET_PREFIX, SignedHeaders, VerifyError, WebhookSecret, WebhookSigner, WebhookVerifier,
};
/// The stop signal of [`WebhookDeliverer::run`] (from `tokio-util`).
#[cfg(feature = "webhook")]
pub use tokio_util::sync::CancellationToken;

/// Prefix of every [`UploadNotification::id`].
pub const ID_PREFIX: &str = "upl_";

/// Largest notification JSON a [`QueueNotifier`] or [`MemoryNotifier`]
/// accepts: 256 KiB, the SQS message limit.
pub const MAX_NOTIFICATION_BYTES: usize = crate::queue::MAX_MESSAGE_BYTES;

/// Who uploaded what, for what: the upload's route, owner and app
/// metadata, read by the worker from the original's `x-amz-meta-*`
/// (signed in by the upload API) and passed through untouched.
pub use upload_core::metadata::UploadContext;

/// The `type` of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationKind {
    /// `upload.processed`: clean and allowed; variants written for images.
    #[serde(rename = "upload.processed")]
    Processed,
    /// `upload.rejected`: refused by policy or not decodable.
    #[serde(rename = "upload.rejected")]
    Rejected,
    /// `upload.quarantined`: infected or unscannable, moved to quarantine.
    #[serde(rename = "upload.quarantined")]
    Quarantined,
    /// `upload.removed`: the upload was deleted, its results with it.
    #[serde(rename = "upload.removed")]
    Removed,
}

impl NotificationKind {
    /// The `type` string, e.g. `upload.processed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotificationKind::Processed => "upload.processed",
            NotificationKind::Rejected => "upload.rejected",
            NotificationKind::Quarantined => "upload.quarantined",
            NotificationKind::Removed => "upload.removed",
        }
    }
}

/// The uploaded object a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifiedObject {
    /// Uploads bucket.
    pub bucket: String,
    /// Original key.
    pub key: ObjectKey,
    /// ETag of the processed version, without quotes (`None` for removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Version ID, on versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Size in bytes (`None` for removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What became of the upload, with the facts of that outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// Allowed type, scanned clean.
    Processed {
        /// The content type sniffed from magic bytes, if recognised.
        content_type: Option<String>,
        /// The variants written (empty for non-images).
        variants: Vec<VariantRecord>,
        /// The image's size and placeholder, when variants were made.
        image: Option<ImageInfo>,
    },
    /// Refused by policy (type, size) or not decodable; the original stays.
    Rejected {
        /// Why, as the manifest says.
        reason: Option<String>,
    },
    /// Infected or unscannable; the original was moved to quarantine.
    Quarantined {
        /// [`Outcome::Infected`] or [`Outcome::Unscannable`].
        verdict: Outcome,
        /// The scanner's signature name, when infected.
        signature: Option<String>,
        /// Why, when unscannable (or a type refusal as well).
        reason: Option<String>,
        /// Where the original went.
        quarantine: Option<Location>,
    },
    /// The upload was deleted.
    Removed,
}

impl NotificationOutcome {
    /// The notification type of this outcome.
    pub fn kind(&self) -> NotificationKind {
        match self {
            NotificationOutcome::Processed { .. } => NotificationKind::Processed,
            NotificationOutcome::Rejected { .. } => NotificationKind::Rejected,
            NotificationOutcome::Quarantined { .. } => NotificationKind::Quarantined,
            NotificationOutcome::Removed => NotificationKind::Removed,
        }
    }
}

/// One upload outcome, as pushed to the application.
///
/// Serializes as a Standard Webhooks payload:
///
/// ```json
/// {"type": "upload.processed", "timestamp": "2026-12-04T13:05:00Z",
///  "data": {"bucket": "uploads", "key": "uploads/u1/a.jpg",
///           "etag": "9bb5...", "size": 1234, "route": "avatar",
///           "owner": "u1", "metadata": {},
///           "content_type": "image/jpeg",
///           "variants": [{"name": "thumb", "key": "...", "content_type":
///                         "image/webp", "width": 128, "height": 96,
///                         "bytes": 2048}],
///           "image": {"width": 640, "height": 480,
///                     "placeholder": {"thumbhash": "...",
///                                     "dominant_color": "#c81e1e"}}}}
/// ```
///
/// `upload.rejected` carries `reason`; `upload.quarantined` carries
/// `verdict` (`infected` or `unscannable`), `signature`, `reason` and
/// `quarantine` (`{"bucket", "key"}`); `upload.removed` only the common
/// fields. Absent optional fields are left out.
///
/// ```
/// use upload_pipeline::notify::{UploadContext, UploadNotification};
/// let k = upload_core::ObjectKey::new("uploads/u1/a.jpg").unwrap();
/// let n = UploadNotification::removed("uploads", k, Some("v1".into()), UploadContext::default());
/// let json = n.to_json().unwrap();
/// let back = UploadNotification::from_json(&json).unwrap();
/// assert_eq!(back, n);
/// assert_eq!(back.id(), n.id());
/// assert!(n.id().starts_with("upl_") && n.id().len() == 36);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::Payload", try_from = "wire::Payload")]
pub struct UploadNotification {
    /// When the outcome was reached (the manifest's `processed_at`, or the
    /// time of the removal), RFC 3339 UTC.
    pub timestamp: String,
    /// The upload.
    pub object: NotifiedObject,
    /// Its route, owner and metadata.
    pub context: UploadContext,
    /// What became of it.
    pub outcome: NotificationOutcome,
}

impl UploadNotification {
    /// The notification of a processed upload: `upload.processed` for a
    /// clean one, `upload.rejected`, or `upload.quarantined` for an
    /// infected or unscannable one. Timestamped with the manifest's
    /// `processed_at`, so the same manifest always gives the same
    /// notification.
    pub fn from_manifest(m: &Manifest, context: UploadContext) -> Self {
        let outcome = match m.verdict {
            Outcome::Clean => NotificationOutcome::Processed {
                content_type: m.source.sniffed.clone(),
                variants: m.variants.clone(),
                image: m.image.clone(),
            },
            Outcome::Rejected => NotificationOutcome::Rejected {
                reason: m.reason.clone(),
            },
            verdict @ (Outcome::Infected | Outcome::Unscannable) => {
                NotificationOutcome::Quarantined {
                    verdict,
                    signature: m.signature.clone(),
                    reason: m.reason.clone(),
                    quarantine: m.quarantine.clone(),
                }
            }
        };
        Self {
            timestamp: m.processed_at.clone(),
            object: NotifiedObject {
                bucket: m.source.bucket.clone(),
                key: m.source.key.clone(),
                etag: Some(m.source.etag.clone()),
                version_id: m.source.version_id.clone(),
                size: Some(m.source.size),
            },
            context,
            outcome,
        }
    }

    /// The notification that the upload `bucket`/`key` (version
    /// `version_id`, on versioned buckets) was removed, timestamped now.
    pub fn removed(
        bucket: impl Into<String>,
        key: ObjectKey,
        version_id: Option<String>,
        context: UploadContext,
    ) -> Self {
        Self {
            timestamp: upload_core::timestamp::now_rfc3339(),
            object: NotifiedObject {
                bucket: bucket.into(),
                key,
                etag: None,
                version_id,
                size: None,
            },
            context,
            outcome: NotificationOutcome::Removed,
        }
    }

    /// The notification type.
    pub fn kind(&self) -> NotificationKind {
        self.outcome.kind()
    }

    /// The idempotency key, also the Standard Webhooks `webhook-id`:
    /// `upl_` and the first 32 hex digits (128 bits) of the SHA-256 of the
    /// bucket, key, version (the version ID, else the ETag, else nothing)
    /// and type, each length-prefixed. A redelivered S3 event gives the
    /// same ID; a new version, or another outcome type, a new one.
    ///
    /// On an unversioned bucket, an upload replaced by identical bytes
    /// (same ETag) with the same outcome gets the same ID, and so do two
    /// removals of one key: receivers deduplicating by ID see the second
    /// as a repeat, which describes the same state.
    pub fn id(&self) -> String {
        let (tag, version) = match (&self.object.version_id, &self.object.etag) {
            (Some(v), _) => ("version", v.as_str()),
            (None, Some(e)) => ("etag", e.as_str()),
            (None, None) => ("none", ""),
        };
        let mut h = Sha256::new();
        for field in [
            "upload-notification/1",
            self.object.bucket.as_str(),
            self.object.key.as_str(),
            tag,
            version,
            self.kind().as_str(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        let digest = h.finalize();
        let mut id = String::with_capacity(ID_PREFIX.len() + 32);
        id.push_str(ID_PREFIX);
        for b in &digest[..16] {
            id.push_str(&format!("{b:02x}"));
        }
        id
    }

    /// The JSON payload. Characters SQS refuses in a message body
    /// (U+FFFE, U+FFFF) are written as `\u` escapes, so the JSON fits any
    /// [`Queue`](crate::Queue); control characters are escaped by JSON
    /// itself.
    ///
    /// # Errors
    /// [`NotifyError::Serialize`] never in practice (every field is a
    /// string, number or map of strings).
    pub fn to_json(&self) -> Result<String, NotifyError> {
        let json = serde_json::to_string(self).map_err(|e| NotifyError::Serialize {
            reason: e.to_string(),
        })?;
        if json.contains(['\u{FFFE}', '\u{FFFF}']) {
            return Ok(json
                .replace('\u{FFFE}', "\\ufffe")
                .replace('\u{FFFF}', "\\uffff"));
        }
        Ok(json)
    }

    /// Parses a payload written by [`to_json`](Self::to_json) (what a
    /// receiving application does with a webhook body or queue message).
    ///
    /// # Errors
    /// [`NotifyError::Malformed`] for anything but a notification payload
    /// (unknown `type`, missing `data` fields, `verdict` of a quarantined
    /// notification neither `infected` nor `unscannable`).
    pub fn from_json(json: &str) -> Result<Self, NotifyError> {
        serde_json::from_str(json).map_err(|e| NotifyError::Malformed {
            reason: e.to_string(),
        })
    }
}

/// Why a notification was not accepted, or an outbox could not be drained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The notifier cannot take notifications now (e.g. a
    /// [`MemoryNotifier`] told to fail); retry later.
    #[error("notifier unavailable: {reason}")]
    Unavailable {
        /// What is wrong.
        reason: String,
    },
    /// The receiving end of a [`ChannelNotifier`] was dropped.
    #[error("the notification channel is closed")]
    Closed,
    /// The notification JSON is over the notifier's limit (256 KiB for a
    /// queue): most likely oversized metadata. Retrying cannot help.
    #[error("notification of {bytes} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The JSON size in bytes.
        bytes: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The notification could not be written as JSON.
    #[error("notification could not be serialized: {reason}")]
    Serialize {
        /// The serializer's message.
        reason: String,
    },
    /// A payload that is not a notification.
    #[error("malformed notification: {reason}")]
    Malformed {
        /// The parser's message.
        reason: String,
    },
    /// A queue operation failed (the outbox or the notification queue).
    #[error(transparent)]
    Queue(#[from] crate::Error),
    /// A delivery setting out of range.
    #[error("invalid delivery setting {name}: {reason}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Where the worker sends [`UploadNotification`]s.
///
/// # Contract
/// `Ok(())` means the notification was durably accepted for delivery (for
/// [`ChannelNotifier`]: handed to the in-process receiver, as durable as
/// the process). The worker deletes the S3 event's queue message only after
/// `Ok`, so an `Err` leaves the event on the queue for redelivery: nothing
/// is lost, and the redelivery produces a notification with the same
/// [`id`](UploadNotification::id). Receivers therefore see each
/// notification at least once and deduplicate by its ID.
///
/// Implementations must not wait on the final receiver (an HTTP endpoint):
/// [`WebhookNotifier`] only enqueues.
///
/// Every implementation passes `testkit::notify::run_all` (feature
/// `testkit`).
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Accepts `n` for delivery.
    ///
    /// # Errors
    /// [`NotifyError`]: each implementation documents which.
    async fn notify(&self, n: &UploadNotification) -> Result<(), NotifyError>;
}

#[async_trait]
impl<T: Notifier + ?Sized> Notifier for Arc<T> {
    async fn notify(&self, n: &UploadNotification) -> Result<(), NotifyError> {
        (**self).notify(n).await
    }
}

#[async_trait]
impl<T: Notifier + ?Sized> Notifier for Box<T> {
    async fn notify(&self, n: &UploadNotification) -> Result<(), NotifyError> {
        (**self).notify(n).await
    }
}

/// The JSON shapes of [`UploadNotification`].
mod wire {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Payload {
        #[serde(rename = "type")]
        kind: NotificationKind,
        timestamp: String,
        data: Data,
    }

    #[derive(Serialize, Deserialize)]
    struct Data {
        #[serde(flatten)]
        object: NotifiedObject,
        #[serde(flatten)]
        context: UploadContext,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variants: Option<Vec<VariantRecord>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<ImageInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verdict: Option<Outcome>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quarantine: Option<Location>,
    }

    impl From<UploadNotification> for Payload {
        fn from(n: UploadNotification) -> Self {
            let kind = n.kind();
            let mut data = Data {
                object: n.object,
                context: n.context,
                content_type: None,
                variants: None,
                image: None,
                verdict: None,
                signature: None,
                reason: None,
                quarantine: None,
            };
            match n.outcome {
                NotificationOutcome::Processed {
                    content_type,
                    variants,
                    image,
                } => {
                    data.content_type = content_type;
                    data.variants = Some(variants);
                    data.image = image;
                }
                NotificationOutcome::Rejected { reason } => data.reason = reason,
                NotificationOutcome::Quarantined {
                    verdict,
                    signature,
                    reason,
                    quarantine,
                } => {
                    data.verdict = Some(verdict);
                    data.signature = signature;
                    data.reason = reason;
                    data.quarantine = quarantine;
                }
                NotificationOutcome::Removed => {}
            }
            Payload {
                kind,
                timestamp: n.timestamp,
                data,
            }
        }
    }

    impl TryFrom<Payload> for UploadNotification {
        type Error = String;

        fn try_from(p: Payload) -> Result<Self, String> {
            let d = p.data;
            let outcome = match p.kind {
                NotificationKind::Processed => NotificationOutcome::Processed {
                    content_type: d.content_type,
                    variants: d.variants.unwrap_or_default(),
                    image: d.image,
                },
                NotificationKind::Rejected => NotificationOutcome::Rejected { reason: d.reason },
                NotificationKind::Quarantined => {
                    let verdict = match d.verdict {
                        Some(v @ (Outcome::Infected | Outcome::Unscannable)) => v,
                        other => {
                            return Err(format!(
                                "upload.quarantined needs verdict infected or unscannable, got {other:?}"
                            ));
                        }
                    };
                    NotificationOutcome::Quarantined {
                        verdict,
                        signature: d.signature,
                        reason: d.reason,
                        quarantine: d.quarantine,
                    }
                }
                NotificationKind::Removed => NotificationOutcome::Removed,
            };
            Ok(UploadNotification {
                timestamp: p.timestamp,
                object: d.object,
                context: d.context,
                outcome,
            })
        }
    }
}
