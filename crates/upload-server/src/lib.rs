//! The backend's HTTP API for direct uploads, as an axum [`Router`] an app
//! nests under any path of its own:
//!
//! ```no_run
//! # async fn run(state: upload_server::AppState) {
//! let app = upload_server::Router::new().nest("/api/uploads", state.router());
//! # let _: upload_server::Router = app;
//! # }
//! ```
//!
//! The app brings its storage ([`AppState::uploads`], [`AppState::processed`]:
//! any `MultipartStore` and `Storage`), its presigners and its
//! authentication ([`Authorizer`]); the library binds no port and reads no
//! environment.
//!
//! It is the backend's side of direct uploads, as an axum router: it never sees
//! upload bytes. It checks the request against the
//! [`UploadPolicy`](upload_core::UploadPolicy) of the [`UploadRoute`] it
//! came through, runs the route's [`UploadHook`] (which may refuse, or
//! attach metadata), picks the key server-side
//! (`{route prefix}/{owner}/{uuid}.{ext}`, the extension from the allowed
//! type, never from a client file name), and hands out either a presigned
//! PUT (Content-Type, exact Content-Length and the upload's
//! `x-amz-meta-*` signed) or, above the route's multipart threshold, a
//! multipart session with presigned part URLs.
//!
//! Single PUTs are signed through an [`UploadSigner`]: S3 presigned PUTs
//! from [`AppState::presigner`] by default, or another store's signed URLs
//! ([`ServerConfig::with_upload_signer`]; Azure SAS from
//! `upload_object_store::ObjectStoreStorage`), in the same answers. What
//! such a signer cannot sign (POST forms, multipart) is refused with 501
//! `post_form_unsupported` or `multipart_unsupported`, and what its URLs
//! pin is typed in its [`SignerCapabilities`].
//!
//! Every endpoint below is served at the top level for the
//! [`DEFAULT_ROUTE`] (from [`ServerConfig`]'s policy, keys under
//! `uploads/`; [`ServerConfig::serve_default_route`]) and under
//! `/routes/{name}` for each named route ([`ServerConfig::with_route`]):
//! `POST /routes/avatar/uploads`, Uppy's `endpoint` set to
//! `/api/uploads/routes/avatar`. A key or session of one route is refused
//! on every other (403 `not_your_upload`); see [`route`] for the signed
//! metadata ([`ROUTE_METADATA`], [`OWNER_METADATA`] and the hook's).
//!
//! | method and path | body (JSON) | answer |
//! |---|---|---|
//! | `POST /uploads` | `{"content_type", "size", "filename"?, "form"?: "put" or "post", "input"?: any JSON for the hook}` | [`UploadTicket`] |
//! | `POST /multipart/sign` | `{"key", "upload_id", "session", "first", "last"}` | `{"parts": [...]}` |
//! | `POST /multipart/complete` | `{"key", "upload_id", "session", "parts": [{"part_number", "etag"}]}` | `{"key", "etag", "size"}` |
//! | `POST /multipart/abort` | `{"key", "upload_id", "session"}` | 204 |
//! | `GET /multipart/parts?key&upload_id&session[&part_number_marker][&max_parts]` | | [`PartsPage`] |
//! | `GET /uploads/status?key=K[&wait=S]` | | [`UploadStatus`] (202 while pending; `wait` holds the request up to S ≤ 30 s for the outcome) |
//! | `GET /config` | | [`ClientConfig`]: what a client needs to choose PUT or multipart |
//!
//! The same sessions are also served in the shape of Uppy's
//! `@uppy/aws-s3` plugin (its `endpoint` option, the Companion routes), so
//! Uppy drives it unchanged; the `uploadId` Uppy sees is the S3 upload ID
//! with the session token appended (`{upload ID}~{token}`), so every Uppy
//! call carries its proof of ownership:
//!
//! | method and path | body (JSON) | answer |
//! |---|---|---|
//! | `GET /s3/params?filename&type[&size]` | | `{"method": "POST", "url", "fields", "headers"}` (a form bounded by the policy), or a `PUT` when `size` is given |
//! | `POST /s3/multipart` | `{"filename", "type", "metadata"?: {"size"?}}` | `{"key", "uploadId"}` |
//! | `GET /s3/multipart/{uploadId}/{partNumber}?key=K` | | `{"url", "method", "headers", "expires"}` |
//! | `GET /s3/multipart/{uploadId}/batch?key=K&partNumbers=1,2` | | `{"presignedUrls": {"1": url}, "headers": {}}` |
//! | `GET /s3/multipart/{uploadId}?key=K` | | `[{"PartNumber", "Size", "ETag"}]` (every page) |
//! | `POST /s3/multipart/{uploadId}/complete?key=K` | `{"parts": [{"PartNumber", "ETag"}]}` | `{"location", "key", "etag", "size"}` |
//! | `DELETE /s3/multipart/{uploadId}?key=K` | | `{}` |
//!
//! Uppy 6's `@uppy/aws-s3` is served too: its `companionEndpoint` mode
//! by the routes above (it asks `GET /s3/params` without a size and
//! POSTs the form), and its `signRequest` mode by `POST /s3/sign`, which
//! the page's `signRequest` callback calls with the request Uppy hands it
//! (plus the file's `size`, `filename` and `metadata`) and whose answer
//! it returns as is. It signs only the operations of the caller's own
//! session (see the `uppy6` module source for the full rules); the
//! multipart control requests (create, list, complete, abort) come back
//! as URLs of this API (relative to the `/s3/sign` URL: `sign/multipart/…`),
//! so completion is checked here as well:
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /s3/sign` | `{"method", "key", "uploadId"?, "partNumber"?, "contentType"?, "expiresIn"?, "size"?, "filename"?, "metadata"?}` | `{"url", "key"?, "headers"}` (Uppy 6's `PresignedResponse`): a PUT of a new key of the caller's (`Content-Type`, exact `Content-Length`, `If-None-Match: *`, metadata signed), a part PUT of the caller's session, or one of the URLs below; DeleteObject is 403 `operation_not_allowed` |
//! | `POST /s3/sign/multipart/{uploadId}/created?key=K` | | S3's `InitiateMultipartUploadResult` XML (the upload was created by `/s3/sign`) |
//! | `GET /s3/sign/multipart/{uploadId}?key=K` | | S3's `ListPartsResult` XML |
//! | `POST /s3/sign/multipart/{uploadId}/complete?key=K` | S3's `CompleteMultipartUpload` XML | S3's `CompleteMultipartUploadResult` XML |
//! | `DELETE /s3/sign/multipart/{uploadId}?key=K` | | 204 |
//!
//! Completion is checked before S3 is called
//! ([`upload_multipart::check_completion`]: parts 1..=N in order, stored
//! with the same ETags, every part but the last 5 MiB..=5 GiB and equal,
//! the declared size) and is safe to repeat: when the upload is already
//! gone, an object at the key whose ETag is the multipart ETag of the
//! named parts is reported as the completed upload.
//!
//! The owner comes from the app's [`Authorizer`] (its own authentication;
//! the library reads no identity header), asked before anything else on
//! every route: a refusal is 401 `unauthorized` or 403 `forbidden` and
//! signs nothing. Keys and upload IDs of another owner are refused with
//! 403 `not_your_upload`. Multipart calls carry the
//! `session` token the session was created with ([`session_token`]): it
//! binds the upload ID to its owner, key, declared size and an expiry
//! ([`ServerConfig::session_lifetime`], 24 hours by default), after which
//! it is refused with 403 `session_expired`. Part URLs (ours and Uppy's)
//! are signed only while the store still has the upload: one ListParts
//! request per signing call (one page up to 1,000 stored parts) answers
//! 404 `no_such_upload` once it was completed or aborted. Every error,
//! including malformed JSON, unknown fields and unknown routes, is JSON
//! `{"error": code, "message": text}` with 400, 401, 403, 404, 405, 413, 415, 429,
//! 501, 502 or 503.

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod route;
mod routes;
pub mod session;
pub mod status;
mod uppy;
mod uppy6;

pub use async_trait::async_trait;
pub use auth::{AuthError, Authorizer, FnAuthorizer, InvalidOwner, Owner};
pub use axum::{Router, http};
pub use config::{AppState, ClientConfig, DEFAULT_SESSION_LIFETIME, NoPresigner, ServerConfig};
pub use error::{ApiError, ApiJson, ApiQuery};
pub use route::{
    DEFAULT_ROUTE, FnHook, HookRefusal, HookRequest, MAX_METADATA_BYTES, OWNER_METADATA,
    ROUTE_METADATA, RouteError, UploadHook, UploadMetadata, UploadRoute,
};
pub use routes::{
    Completed, CreateUpload, PartUrl, PartsPage, SignedRequest, UploadForm, UploadTicket, router,
};
pub use session::{SessionClaims, SessionError, session_token, verify_session_token};
pub use status::{MAX_STATUS_WAIT, UploadStatus};
pub use upload_core::sign::{PutToSign, SignError, SignedUpload, SignerCapabilities, UploadSigner};
