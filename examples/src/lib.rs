//! Example wiring of the upload SDK.
//!
//! - [`quickstart`]: the whole direct-upload flow in one process, on
//!   in-memory storage, queue and scanner, over real HTTP: presign, upload
//!   (single PUT or multipart with parallel parts), ObjectCreated event,
//!   magic-byte check, virus scan, image variants, served URL.

//! - [`aws_args`]: the command-line flags every S3/SQS example shares
//!   (endpoint URL, path style, region), as [`upload_core::s3::AwsSettings`].
//! - [`dev_auth`]: [`dev_auth::DevHeaderAuthorizer`], the `x-owner`
//!   header authorizer `presign-server` and `upload-dev` mount the
//!   `upload_server` API with: for local development only (kept in
//!   `upload_local`, re-exported here).
//! - The `upload-dev` binary: the one-binary local mode
//!   (`upload_local::LocalMode`) with the [`demo`] pages beside its API.
//! - [`demo`]: the browser demo pages (`/` and `/uppy.html`) that
//!   `presign-server --demo` serves beside that API.
//! - [`worker_cli`]: the worker on SQS + S3 + clamd.
//! - [`rescan_cli`]: `upload-rescan` on S3 + clamd (scan clean uploads
//!   again after a signature update).
//! - [`consumer`]: a consumer app (bearer tokens, SQLite, `avatar` and
//!   `document` routes, a verified webhook receiver) built on the crates.
//! - [`setup`]: buckets, queue, dead-letter queue, notifications, CORS and
//!   lifecycle, in one idempotent call (re-exported from
//!   [`upload_pipeline::deploy`]; the `upload-doctor` binary checks the
//!   result with [`upload_pipeline::deploy::Doctor`]).

pub mod aws_args;
pub mod consumer;

pub mod demo;
pub mod dev_auth;
pub mod quickstart;
pub mod rescan_cli;
pub mod setup;
pub mod worker_cli;
