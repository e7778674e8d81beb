//! The upload worker and what it is made of.
//!
//! - [`Queue`] and [`MemoryQueue`]: SQS semantics (visibility timeout,
//!   receipt handles, redelivery, dead-letter queue).
//! - [`Worker`]: per ObjectCreated event, sniff, policy check, scan,
//!   quarantine, variants, manifest, notification; then delete the
//!   message. The upload route signed into an upload picks its policy and
//!   variants ([`WorkerConfig::with_route`], [`RouteProcessing`]).
//! - `disk_queue` (feature `disk-queue`): `DiskQueue`, a durable queue
//!   with the same semantics in one file on local disk (redb), for the
//!   one-binary local mode.
//! - `lambda` (feature `lambda`): the worker as an AWS Lambda function
//!   on SQS-triggered invocations, reporting partial batch failures.
//! - `service` (feature `service`): the worker as a binary or in-process
//!   (health routes, SIGTERM/Ctrl-C, grace period).
//! - [`codec`]: the [`ImageCodec`] trait and [`StandardCodec`] (decode under
//!   limits with shrink-on-load for JPEG, EXIF orientation, ICC to sRGB,
//!   resize with `contain`/`cover`/`fill`, WebP/AVIF/JPEG/PNG encode,
//!   metadata stripped) and [`Placeholder`] (ThumbHash, dominant colour).
//! - [`media`]: one [`MediaProcessor`] per media type, picked by the
//!   sniffed type: [`ImageProcessor`], and behind features `pdf` and
//!   `video` PDF and video posters through poppler-utils and ffmpeg.
//! - [`notify`]: upload outcomes pushed back to the application
//!   ([`UploadNotification`], [`Notifier`]: in memory, a channel, a queue
//!   such as SQS, Standard Webhooks through an outbox).
//! - `deploy` (feature `sqs`): a deployment's buckets, queues and bucket
//!   configuration made in one idempotent call (`deploy::setup`), checked
//!   live by the deployment doctor (`deploy::Doctor`), and the
//!   least-privilege IAM policies of the API and worker roles
//!   (`deploy::iam`).
//! - [`rescan`]: [`Rescan`] scans clean originals again after a signature
//!   database update and quarantines what is now infected.
//!
//! All fallible functions return this crate's [`Error`].

pub mod codec;
#[cfg(feature = "sqs")]
pub mod deploy;
#[cfg(feature = "disk-queue")]
pub mod disk_queue;
pub mod error;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod manifest;
pub mod media;
pub mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
pub mod notify;
pub mod queue;
pub mod rescan;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod worker;

pub use codec::{
    DecodeLimits, DecodedImage, EncodedVariant, Fit, Gravity, ImageCodec, OutputFormat,
    Placeholder, StandardCodec, VariantSpec,
};
#[cfg(feature = "disk-queue")]
pub use disk_queue::DiskQueue;
pub use error::{Error, Result};
pub use manifest::{
    DocumentInfo, ImageInfo, Manifest, MediaInfo, Outcome, VariantRecord, VideoInfo,
};
pub use media::{ImageProcessor, MediaInput, MediaProcessor, MediaRejection, Processed};
pub use notify::{
    ChannelNotifier, MemoryNotifier, Notifier, NotifyError, QueueNotifier, UploadContext,
    UploadNotification, VerifyError, WebhookNotifier, WebhookSecret, WebhookSigner,
    WebhookVerifier,
};
#[cfg(feature = "webhook")]
pub use notify::{DeliveryConfig, WebhookDeliverer};
pub use queue::{MemoryQueue, Queue, QueueMessage, ReceiveOptions};
pub use rescan::{Rescan, RescanOptions, RescanReport};
pub use worker::{
    Handled, Health, HealthSnapshot, Heartbeat, RecordHandler, RouteProcessing, RunStats,
    UploadProcessor, Worker, WorkerConfig,
};
