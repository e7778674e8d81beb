//! The upload worker and what it is made of.
//!
//! - [`Queue`] and [`MemoryQueue`]: SQS semantics (visibility timeout,
//!   receipt handles, redelivery, dead-letter queue).
//! - [`Worker`]: per ObjectCreated event, sniff, policy check, scan,
//!   quarantine, variants, manifest; then delete the message.
//! - [`codec`]: the [`ImageCodec`] trait and [`StandardCodec`] (decode under
//!   limits, EXIF orientation, resize, WebP encode, metadata stripped).
//!
//! All fallible functions return this crate's [`Error`].

pub mod codec;
pub mod error;
pub mod manifest;
pub mod queue;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod worker;

pub use codec::{
    DecodeLimits, DecodedImage, EncodedVariant, ImageCodec, OutputFormat, StandardCodec,
    VariantSpec,
};
pub use error::{Error, Result};
pub use manifest::{Manifest, Outcome, VariantRecord};
pub use queue::{MemoryQueue, Queue, QueueMessage, ReceiveOptions};
pub use worker::{
    Handled, Health, HealthSnapshot, Heartbeat, RecordHandler, RunStats, UploadProcessor, Worker,
    WorkerConfig,
};
