//! Multipart uploads for large files.
//!
//! - [`PartPlan`]: splits an object into parts under S3's limits (5 MiB..=5
//!   GiB per part except the last, at most 10,000 parts, object at most
//!   10,000 × 5 GiB, about 48.8 TiB, per the AWS "Amazon S3 multipart
//!   upload limits" page; an empty object goes by one PUT instead).
//! - [`MemoryMultipartStore`]: the in-memory
//!   [`MultipartStore`](upload_core::MultipartStore), reachable through the
//!   local upload endpoint of `upload-presign` with presigned part URLs.
//! - [`presign_parts`]: presigned UploadPart URLs for a client to send parts
//!   straight to storage.

pub mod engine;
pub mod error;
pub mod memory;
pub mod plan;
pub mod session;
pub mod sweep;

pub use engine::{
    DEFAULT_CONCURRENCY, DEFAULT_UPLOAD_PART_SIZE, MultipartUploader, Progress, ResumeState,
    UploadOptions, state_file_for,
};
pub use error::{Error, Result};
pub use memory::MemoryMultipartStore;
pub use plan::{
    DEFAULT_PART_SIZE, MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, PartPlan,
    PlannedPart,
};
pub use session::{
    CompletionError, CompletionRules, PresignedPart, check_completion, presign_parts,
    presign_planned_parts,
};
pub use sweep::{SweepReport, abort_stale_uploads, lifecycle_rule_json};
