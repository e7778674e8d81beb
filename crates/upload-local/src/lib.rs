//! The upload SDK's **local mode**: the whole direct-upload architecture
//! on one machine, in one process, with nothing else to install, keeping
//! its data on local disk across restarts.
//!
//! [`LocalMode::open`]`(DATA, `[`LocalConfig`]`)` wires:
//!
//! - buckets `uploads`, `processed` and `quarantine` as
//!   [`ObjectStoreStorage::local`](upload_object_store::ObjectStoreStorage::local)
//!   under `DATA/buckets/{name}` (multipart parts on disk, so an upload
//!   resumes after a restart);
//! - a durable queue, [`DiskQueue`](upload_pipeline::DiskQueue) with its
//!   dead-letter queue, in `DATA/queue.redb`;
//! - [`EventPublishingStorage`] over the uploads bucket: every completed
//!   PUT, POST or multipart upload sends S3's `ObjectCreated:*` event to
//!   that queue, as S3 does to SQS;
//! - the start-up [`reconcile()`]: an event for every original with no
//!   manifest yet (written just before a crash, its event never sent);
//! - the worker in-process, with clamd when reachable or else the
//!   in-memory scanner and a loud warning ([`choose_scanner`]);
//! - the local upload endpoint ([`upload_presign::LocalEndpoint`],
//!   verifying SigV4 presigned PUT, POST and UploadPart) and the upload
//!   API ([`upload_server::AppState::router`]) with the dev-only
//!   [`dev_auth::DevHeaderAuthorizer`], on 127.0.0.1;
//! - SigV4 credentials and the API's session secret made once and kept in
//!   `DATA/secrets.json` (mode 0600, [`Secrets`]), so presigned URLs and
//!   multipart session tokens stay valid across a restart.
//!
//! The `upload-dev` binary of the examples runs it (`upload-dev --data
//! ./data`), with the browser demo page beside the API.

pub mod config;
pub mod dev_auth;
pub mod error;
pub mod events;
pub mod mode;
pub mod reconcile;
pub mod scanner;
pub mod secrets;

pub use config::LocalConfig;
pub use error::LocalError;
pub use events::EventPublishingStorage;
pub use mode::{
    BUCKETS_DIR, DEAD_LETTER_QUEUE_NAME, LocalMode, PROCESSED_BUCKET, PublishingUploads,
    QUARANTINE_BUCKET, QUEUE_FILE, QUEUE_NAME, UPLOADS_BUCKET,
};
pub use reconcile::{ReconcileReport, reconcile};
pub use scanner::{ScannerChoice, choose_scanner};
pub use secrets::{SECRETS_FILE, Secrets};
