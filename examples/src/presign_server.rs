//! The backend's side of direct uploads, as an axum router: it never sees
//! upload bytes. It checks the request against an [`UploadPolicy`], picks
//! the key server-side (`uploads/{owner}/{uuid}.{ext}`, the extension from
//! the allowed type, never from a client file name), and hands out either a
//! presigned PUT (Content-Type and exact Content-Length signed) or, above
//! the multipart threshold, a multipart session with presigned part URLs.
//!
//! | method and path | body (JSON) | answer |
//! |---|---|---|
//! | `POST /uploads` | `{"content_type", "size", "filename"?, "form"?: "put" or "post"}` | [`UploadTicket`] |
//! | `POST /multipart/sign` | `{"key", "upload_id", "session", "first", "last"}` | `{"parts": [...]}` |
//! | `POST /multipart/complete` | `{"key", "upload_id", "session", "parts": [{"part_number", "etag"}]}` | `{"key", "etag", "size"}` |
//! | `POST /multipart/abort` | `{"key", "upload_id", "session"}` | 204 |
//! | `GET /multipart/parts?key&upload_id&session[&part_number_marker][&max_parts]` | | [`PartsPage`] |
//! | `GET /uploads/status?key=K` | | [`UploadStatus`] |
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
//! Completion is checked before S3 is called
//! ([`upload_multipart::check_completion`]: parts 1..=N in order, stored
//! with the same ETags, every part but the last 5 MiB..=5 GiB and equal,
//! the declared size) and is safe to repeat: when the upload is already
//! gone, an object at the key whose ETag is the multipart ETag of the
//! named parts is reported as the completed upload.
//!
//! The owner comes from the `x-owner` header (`anonymous` when absent): a
//! real service takes it from its authentication. Keys and upload IDs of
//! another owner are refused with 403. Multipart calls carry the
//! `session` token the session was created with ([`session_token`]): it
//! binds the upload ID to its owner, key, declared size and an expiry
//! ([`ServerConfig::session_lifetime`], 24 hours by default), after which
//! it is refused with 403 `session_expired`. Part URLs (ours and Uppy's)
//! are signed only while the store still has the upload: one ListParts
//! request per signing call (one page up to 1,000 stored parts) answers
//! 404 `no_such_upload` once it was completed or aborted. Every error,
//! including malformed JSON, unknown fields and unknown routes, is JSON
//! `{"error": code, "message": text}` with 400, 403, 404, 405, 413, 415,
//! 502 or 503.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use upload_core::{
    CompletedPart, MultipartStore, ObjectKey, PutOptions, Storage, UploadPolicy, UploadedPart,
    extension_for, upload_key,
};
use upload_multipart::{
    CompletionRules, PartPlan, check_completion, presign_parts, presign_planned_parts,
};
use upload_pipeline::Manifest;
use upload_pipeline::manifest::manifest_key;
use upload_presign::headers::{Disposition, PutHeaders, content_disposition};
use upload_presign::{PresignedRequest, Presigner, presign_post_upload};

/// What the server is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Types and sizes accepted, and the expiry of presigned URLs.
    pub policy: UploadPolicy,
    /// Uploads larger than this many bytes go multipart (default 100 MiB,
    /// the size AWS recommends multipart from).
    pub multipart_threshold: u64,
    /// Preferred part size in bytes (default 8 MiB); see [`PartPlan`].
    pub part_size: u64,
    /// Part URLs signed in the first answer; more through
    /// `/multipart/sign` (default 100).
    pub first_batch: u32,
    /// How long presigned GETs of variants live (default 300 s).
    pub download_expiry: Duration,
    /// How long a multipart session token is accepted after the session
    /// was created (default [`DEFAULT_SESSION_LIFETIME`], 24 hours; whole
    /// seconds, rounded up): signing, listing, completing and aborting
    /// are refused after it ([`SessionError::Expired`]).
    pub session_lifetime: Duration,
}

/// Default [`ServerConfig::session_lifetime`]: 24 hours.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

impl ServerConfig {
    /// Defaults around `policy`.
    pub fn new(policy: UploadPolicy) -> Self {
        Self {
            policy,
            multipart_threshold: 100 * 1024 * 1024,
            part_size: upload_multipart::DEFAULT_PART_SIZE,
            first_batch: 100,
            download_expiry: Duration::from_secs(300),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }
}

/// The server's state: the presigner clients' URLs are signed with, the
/// uploads bucket (multipart side) and the processed bucket.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Signs URLs for the uploads bucket.
    pub presigner: Arc<Presigner>,
    /// The uploads bucket, for multipart sessions.
    pub uploads: Arc<dyn MultipartStore>,
    /// The processed bucket, for manifests and variants.
    pub processed: Arc<dyn Storage>,
    /// Signs GETs for the processed bucket.
    pub processed_presigner: Arc<Presigner>,
    /// Configuration.
    pub config: Arc<ServerConfig>,
    /// Key of the session tokens that bind a multipart upload ID to its
    /// owner, key and declared size (see [`session_token`]); random per
    /// process unless configured, so a restart ends open sessions.
    pub session_secret: Arc<[u8; 32]>,
}

/// What a multipart session token binds besides its owner, key and
/// upload ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaims {
    /// The declared object size in bytes; `None` when not declared
    /// (bounded by the policy's maximum, as for Uppy, which sends none).
    pub size: Option<u64>,
    /// The planned part size in bytes; `None` when the client chooses one
    /// (still equal for every part but the last).
    pub part_size: Option<u64>,
    /// Unix time in seconds from which the token is refused.
    pub expires_at: u64,
}

impl SessionClaims {
    /// Claims for a session created at `now` that lives `lifetime`
    /// (rounded up to whole seconds; a lifetime past the year 584 billion
    /// never expires).
    pub fn new(
        size: Option<u64>,
        part_size: Option<u64>,
        now: SystemTime,
        lifetime: Duration,
    ) -> Self {
        let expires_at = now
            .checked_add(lifetime)
            .and_then(|end| end.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(u64::MAX, |d| {
                d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
            });
        Self {
            size,
            part_size,
            expires_at,
        }
    }
}

/// Why a session token is refused (both answer 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Malformed, or not made by this server for this owner, key and
    /// upload ID (or with other claims).
    #[error("the session token does not match this owner, key and upload ID")]
    Mismatch,
    /// A valid token whose expiry has passed: start a new upload.
    #[error("the session expired at {expires_at} (unix seconds); start a new upload")]
    Expired {
        /// When it expired, unix time in seconds.
        expires_at: u64,
    },
}

/// The session token of a multipart upload:
/// `{size}.{part_size}.{expires_at}.{mac}` where `mac` is hex
/// HMAC-SHA256 under `secret` over owner, key, upload ID, size, part size
/// and expiry (unix seconds). A size of 0 means "not declared" and a part
/// size of 0 "chosen by the client" ([`SessionClaims`]). `/multipart/*`
/// and `/s3/multipart/*` calls must present it, so an owner can only act
/// on upload IDs this server created for them, whatever the store checks
/// itself (moto, for one, lets any key use any upload ID), the declared
/// size is enforced at completion, and the session ends at its expiry
/// ([`verify_session_token`]).
pub fn session_token(
    secret: &[u8; 32],
    owner: &str,
    key: &str,
    upload_id: &str,
    claims: &SessionClaims,
) -> String {
    use hmac::Mac;
    let (size, part_size) = (claims.size.unwrap_or(0), claims.part_size.unwrap_or(0));
    let mac = session_mac(
        secret,
        owner,
        key,
        upload_id,
        size,
        part_size,
        claims.expires_at,
    );
    format!(
        "{size}.{part_size}.{}.{}",
        claims.expires_at,
        hex::encode(mac.finalize().into_bytes())
    )
}

fn session_mac(
    secret: &[u8; 32],
    owner: &str,
    key: &str,
    upload_id: &str,
    size: u64,
    part_size: u64,
    expires_at: u64,
) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for field in [
        owner,
        key,
        upload_id,
        &size.to_string(),
        &part_size.to_string(),
        &expires_at.to_string(),
    ] {
        mac.update(field.as_bytes());
        mac.update(b"\n");
    }
    mac
}

/// Checks a [`session_token`] for `owner`, `key` and `upload_id` at
/// `now`; returns its claims.
///
/// # Errors
/// [`SessionError::Mismatch`] for a malformed token or one made for
/// anything else (the MAC is compared in constant time);
/// [`SessionError::Expired`] for a valid one at or after its expiry.
pub fn verify_session_token(
    secret: &[u8; 32],
    owner: &str,
    key: &str,
    upload_id: &str,
    token: &str,
    now: SystemTime,
) -> Result<SessionClaims, SessionError> {
    use hmac::Mac;
    let mut it = token.splitn(4, '.');
    let (Some(size), Some(part_size), Some(expires_at), Some(given)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(SessionError::Mismatch);
    };
    let (Ok(size), Ok(part_size), Ok(expires_at), Ok(given)) = (
        size.parse::<u64>(),
        part_size.parse::<u64>(),
        expires_at.parse::<u64>(),
        hex::decode(given),
    ) else {
        return Err(SessionError::Mismatch);
    };
    session_mac(secret, owner, key, upload_id, size, part_size, expires_at)
        .verify_slice(&given)
        .map_err(|_| SessionError::Mismatch)?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now >= expires_at {
        return Err(SessionError::Expired { expires_at });
    }
    Ok(SessionClaims {
        size: (size > 0).then_some(size),
        part_size: (part_size > 0).then_some(part_size),
        expires_at,
    })
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let code = match e {
            SessionError::Expired { .. } => "session_expired",
            _ => "bad_session",
        };
        Self {
            status: StatusCode::FORBIDDEN,
            code,
            message: e.to_string(),
        }
    }
}

/// Checks a session token now; returns what the session allows at
/// completion (parts 1..=N without gaps: [`CompletionRules::contiguous`]).
fn check_session(
    st: &AppState,
    owner: &str,
    key: &str,
    upload_id: &str,
    token: &str,
) -> Result<CompletionRules, ApiError> {
    let claims = verify_session_token(
        &st.session_secret,
        owner,
        key,
        upload_id,
        token,
        SystemTime::now(),
    )?;
    Ok(CompletionRules {
        size: claims.size,
        part_size: claims.part_size,
        max_size: st.config.policy.max_bytes(),
        contiguous: true,
    })
}

/// Refuses to sign parts of an upload that is no longer open (completed
/// or aborted): one ListParts request (a second page only past 1,000
/// stored parts), whose `NoSuchUpload` answers 404 `no_such_upload`.
async fn check_open(st: &AppState, key: &ObjectKey, upload_id: &str) -> Result<(), ApiError> {
    st.uploads.list_parts(key, upload_id).await?;
    Ok(())
}

/// The multipart session a request names: the caller's key (refused as
/// another owner's otherwise) and what its session token allows.
fn open_session(
    st: &AppState,
    headers: &HeaderMap,
    key: &str,
    upload_id: &str,
    token: &str,
) -> Result<(ObjectKey, CompletionRules), ApiError> {
    let owner = owner(headers)?;
    let key = owned_key(&owner, key)?;
    let rules = check_session(st, &owner, key.as_str(), upload_id, token)?;
    Ok((key, rules))
}

/// The number of parts a session may have: the plan's when the size is
/// declared, else up to the S3 limit.
fn part_limit(rules: &CompletionRules) -> Result<u32, ApiError> {
    match (rules.size, rules.part_size) {
        (Some(size), Some(part_size)) => Ok(PartPlan::new(size, part_size)?.part_count()),
        _ => Ok(upload_core::multipart::MAX_PART_NUMBER),
    }
}

/// The router of the API described in the module docs.
pub fn router(state: AppState) -> Router {
    let not_found = || async {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "no such route; see the presign_server module docs".into(),
        }
    };
    Router::new()
        .route("/uploads", post(create_upload))
        .route("/uploads/status", get(status))
        .route("/config", get(client_config))
        .route("/multipart/sign", post(sign_parts))
        .route("/multipart/complete", post(complete))
        .route("/multipart/abort", post(abort))
        .route("/multipart/parts", get(list_parts_page))
        .route("/s3/params", get(uppy::params))
        .route("/s3/multipart", post(uppy::create))
        .route(
            "/s3/multipart/{upload_id}",
            get(uppy::list_parts).delete(uppy::abort),
        )
        .route("/s3/multipart/{upload_id}/batch", get(uppy::sign_batch))
        .route("/s3/multipart/{upload_id}/complete", post(uppy::complete))
        .route(
            "/s3/multipart/{upload_id}/{part_number}",
            get(uppy::sign_part),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "method not allowed on this route".into(),
            }
        })
        .with_state(state)
}

/// The answer to `GET /config`: the policy and multipart settings a
/// client needs to pick its upload path and check files before asking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientConfig {
    /// Content types accepted (`image/jpeg`, ...).
    pub content_types: Vec<String>,
    /// Largest upload accepted, in bytes.
    pub max_bytes: u64,
    /// Uploads larger than this many bytes go multipart.
    pub multipart_threshold: u64,
    /// Part size the server plans multipart uploads with, in bytes.
    pub part_size: u64,
}

async fn client_config(State(st): State<AppState>) -> Json<ClientConfig> {
    let c = &st.config;
    Json(ClientConfig {
        content_types: c.policy.allowed_content_types().to_vec(),
        max_bytes: c.policy.max_bytes(),
        multipart_threshold: c.multipart_threshold,
        part_size: c.part_size,
    })
}

/// `POST /uploads` request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Declared content type, e.g. `image/jpeg`; signed into the URL.
    pub content_type: String,
    /// Exact size in bytes; signed into a single PUT, planned into parts
    /// for multipart.
    pub size: u64,
    /// The client's file name, if any: it never becomes part of the key;
    /// a presigned PUT signs it in as the stored object's RFC 6266
    /// `Content-Disposition` (ASCII fallback and UTF-8 name). POST forms
    /// and multipart uploads store none ([`PutOptions`] carries no
    /// `Content-Disposition`).
    #[serde(default)]
    pub filename: Option<String>,
    /// `put` (default) or `post`: a browser form upload whose policy's
    /// `content-length-range` is exactly `size`. Ignored above the
    /// multipart threshold.
    #[serde(default)]
    pub form: UploadForm,
}

/// How a single-request upload is presigned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadForm {
    /// A presigned PUT with `Content-Type`, `Content-Length` and
    /// `If-None-Match: *` signed: create-only, so a replayed URL gets 412
    /// and never replaces the original.
    #[default]
    Put,
    /// A presigned POST form with a signed policy bounding the file to the
    /// declared size. Not create-only: S3 forms cannot carry
    /// `If-None-Match`, so a form replayed before it expires replaces the
    /// object (see `upload_presign::post`).
    Post,
}

/// A request as the client must send it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedRequest {
    /// `PUT` or `GET`.
    pub method: String,
    /// The presigned URL.
    pub url: String,
    /// Headers to send with exactly these values.
    pub headers: Vec<(String, String)>,
}

impl From<&PresignedRequest> for SignedRequest {
    fn from(p: &PresignedRequest) -> Self {
        Self {
            method: p.method.as_str().to_owned(),
            url: p.url.to_string(),
            headers: p.headers.clone(),
        }
    }
}

/// A presigned part URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartUrl {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// The presigned UploadPart request.
    pub request: SignedRequest,
}

/// The answer to `POST /uploads`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UploadTicket {
    /// One presigned PUT.
    Put {
        /// The key chosen for the upload.
        key: String,
        /// The request to send with the file as body.
        request: SignedRequest,
        /// RFC 3339 time after which the URL fails.
        expires_at: String,
    },
    /// A presigned POST form: send `fields` in order, then the file as
    /// the last field, named `file`, as `multipart/form-data` to `url`.
    Post {
        /// The key chosen for the upload.
        key: String,
        /// The bucket URL the form goes to.
        url: String,
        /// Form fields, in order.
        fields: Vec<(String, String)>,
        /// RFC 3339 time after which the policy fails.
        expires_at: String,
    },
    /// A multipart session.
    Multipart {
        /// The key chosen for the upload.
        key: String,
        /// The S3 upload ID.
        upload_id: String,
        /// Size of every part but the last, in bytes.
        part_size: u64,
        /// Number of parts.
        part_count: u32,
        /// Presigned URLs of the first parts (up to `first_batch`).
        parts: Vec<PartUrl>,
        /// Token to present to `/multipart/sign`, `/complete` and `/abort`.
        session: String,
    },
}

/// The answer to `GET /uploads/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UploadStatus {
    /// The worker has not finished with the upload yet.
    Pending,
    /// The worker's manifest, with presigned GETs of each variant.
    Processed {
        /// The manifest.
        manifest: Box<Manifest>,
        /// `(variant name, presigned GET URL)`.
        variant_urls: Vec<(String, String)>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignParts {
    key: String,
    upload_id: String,
    session: String,
    first: u32,
    last: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    key: String,
    upload_id: String,
    session: String,
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Abort {
    key: String,
    upload_id: String,
    session: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    key: String,
}

/// An API error: HTTP status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

impl From<upload_core::Error> for ApiError {
    fn from(e: upload_core::Error) -> Self {
        use upload_core::Error as E;
        let (status, code) = match &e {
            E::ContentTypeNotAllowed { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type_not_allowed",
            ),
            E::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::NoSuchUpload { .. } => (StatusCode::NOT_FOUND, "no_such_upload"),
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            // A create-only completion over an existing object.
            E::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            E::InvalidPart { .. }
            | E::InvalidPartOrder
            | E::EntityTooSmall { .. }
            | E::InvalidPartNumber { .. } => (StatusCode::BAD_REQUEST, "invalid_parts"),
            E::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            E::AccessDenied { .. } | E::NoSuchBucket { .. } | E::S3 { .. } => {
                (StatusCode::BAD_GATEWAY, "storage_error")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "storage request failed");
        }
        Self {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl From<upload_presign::Error> for ApiError {
    fn from(e: upload_presign::Error) -> Self {
        match e {
            upload_presign::Error::Policy(p) => p.into(),
            other => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "presign_failed",
                message: other.to_string(),
            },
        }
    }
}

impl From<upload_multipart::CompletionError> for ApiError {
    fn from(e: upload_multipart::CompletionError) -> Self {
        upload_multipart::Error::Completion(e).into()
    }
}

impl From<upload_multipart::Error> for ApiError {
    fn from(e: upload_multipart::Error) -> Self {
        match e {
            upload_multipart::Error::Store(s) => s.into(),
            upload_multipart::Error::Presign(p) => p.into(),
            upload_multipart::Error::Completion(c) => Self {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_parts",
                message: c.to_string(),
            },
            upload_multipart::Error::ObjectTooLarge { .. } => Self {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: e.to_string(),
            },
            upload_multipart::Error::EmptyObject => Self {
                status: StatusCode::BAD_REQUEST,
                code: "empty_upload",
                message: e.to_string(),
            },
            other => Self {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                message: other.to_string(),
            },
        }
    }
}

/// `Json` whose rejections are this API's JSON errors (400 for bad JSON
/// or fields, 413 for a body over 2 MB, 415 without a JSON content type).
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(r.status(), r.body_text())),
        }
    }
}

/// `Query` whose rejections are this API's JSON errors (400).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    Query<T>:
        axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(r.status(), r.body_text())),
        }
    }
}

fn rejection(status: StatusCode, message: String) -> ApiError {
    let (status, code) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (status, "body_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "json_required"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    ApiError {
        status,
        code,
        message,
    }
}

fn owner(headers: &HeaderMap) -> Result<String, ApiError> {
    if headers.get_all("x-owner").iter().count() > 1 {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_owner",
            message: "x-owner given more than once".into(),
        });
    }
    let owner = headers
        .get("x-owner")
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
        .unwrap_or_else(|| "anonymous".to_owned());
    if upload_core::key::check_owner(&owner).is_ok() {
        Ok(owner)
    } else {
        Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_owner",
            message: "x-owner must be 1..=128 of [A-Za-z0-9_-]".into(),
        })
    }
}

/// The key, if it is one of `owner`'s uploads.
fn owned_key(owner: &str, key: &str) -> Result<ObjectKey, ApiError> {
    let forbidden = || ApiError {
        status: StatusCode::FORBIDDEN,
        code: "not_your_upload",
        message: format!("{key:?} is not an upload of {owner}"),
    };
    let rest = key
        .strip_prefix("uploads/")
        .and_then(|r| r.strip_prefix(owner))
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(forbidden)?;
    if rest.is_empty() || rest.contains('/') {
        return Err(forbidden());
    }
    Ok(ObjectKey::new(key)?)
}

/// A fresh key for an upload of `content_type` by `owner`: the extension
/// comes from the type, never from a client file name.
fn new_key(owner: &str, content_type: &str) -> Result<ObjectKey, ApiError> {
    let ext = extension_for(content_type).ok_or_else(|| ApiError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: "content_type_not_allowed",
        message: format!("no file extension is known for {content_type:?}"),
    })?;
    Ok(upload_key(owner, ext)?)
}

async fn create_upload(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateUpload>,
) -> Result<Json<UploadTicket>, ApiError> {
    let owner = owner(&headers)?;
    if req.size == 0 {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "empty_upload",
            message: "size must be at least 1 byte".into(),
        });
    }
    st.config.policy.check(&req.content_type, req.size)?;
    let key = new_key(&owner, &req.content_type)?;
    let now = SystemTime::now();
    let bucket = st.uploads.bucket().to_owned();
    if req.size <= st.config.multipart_threshold && req.form == UploadForm::Post {
        // Bounded to exactly the declared size (content-length-range).
        let p = presign_post_upload(
            &st.presigner,
            &st.config.policy,
            &bucket,
            &key,
            &req.content_type,
            Some(req.size),
            now,
        )?;
        tracing::info!(%key, "presigned POST");
        return Ok(Json(UploadTicket::Post {
            key: key.into_string(),
            url: p.url.to_string(),
            fields: p.fields,
            expires_at: upload_core::timestamp::rfc3339(p.expires_at),
        }));
    }
    if req.size <= st.config.multipart_threshold {
        let mut headers = PutHeaders::default().with_content_length(req.size);
        if let Some(name) = &req.filename {
            headers = headers
                .with_content_disposition(content_disposition(Disposition::Attachment, name));
        }
        let p = st.presigner.presign_put_with(
            &bucket,
            &key,
            &upload_core::policy::essence(&req.content_type),
            &headers,
            st.config.policy.expiry(),
            now,
        )?;
        tracing::info!(%key, size = req.size, "presigned PUT");
        return Ok(Json(UploadTicket::Put {
            key: key.into_string(),
            request: (&p).into(),
            expires_at: upload_core::timestamp::rfc3339(p.expires_at),
        }));
    }
    let plan = PartPlan::new(req.size, st.config.part_size)?;
    let upload_id = st
        .uploads
        .create_multipart_upload(
            &key,
            PutOptions::default()
                .with_content_type(upload_core::policy::essence(&req.content_type)),
        )
        .await?;
    let last = plan.part_count().min(st.config.first_batch.max(1));
    // Each part URL pins its part's exact Content-Length.
    let parts = presign_planned_parts(
        &st.presigner,
        &bucket,
        &key,
        &upload_id,
        &plan,
        1..=last,
        st.config.policy.expiry(),
        now,
    )?;
    tracing::info!(%key, %upload_id, size = req.size, parts = plan.part_count(), "multipart session");
    let claims = SessionClaims::new(
        Some(req.size),
        Some(plan.part_size()),
        now,
        st.config.session_lifetime,
    );
    let session = session_token(
        &st.session_secret,
        &owner,
        key.as_str(),
        &upload_id,
        &claims,
    );
    Ok(Json(UploadTicket::Multipart {
        key: key.into_string(),
        session,
        upload_id,
        part_size: plan.part_size(),
        part_count: plan.part_count(),
        parts: parts
            .iter()
            .map(|p| PartUrl {
                part_number: p.part_number,
                request: (&p.request).into(),
            })
            .collect(),
    }))
}

async fn sign_parts(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignParts>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (key, rules) = open_session(&st, &headers, &req.key, &req.upload_id, &req.session)?;
    let count = part_limit(&rules)?;
    if req.last > count {
        return Err(bad_request(format!(
            "this upload has {count} parts; part {} does not exist",
            req.last
        )));
    }
    // The upload must still be open (not completed or aborted).
    check_open(&st, &key, &req.upload_id).await?;
    let (expiry, now) = (st.config.policy.expiry(), SystemTime::now());
    let parts = match (rules.size, rules.part_size) {
        // A planned session: each part URL pins its part's exact size.
        (Some(size), Some(part_size)) => presign_planned_parts(
            &st.presigner,
            st.uploads.bucket(),
            &key,
            &req.upload_id,
            &PartPlan::new(size, part_size)?,
            req.first..=req.last,
            expiry,
            now,
        )?,
        _ => presign_parts(
            &st.presigner,
            st.uploads.bucket(),
            &key,
            &req.upload_id,
            req.first..=req.last,
            expiry,
            now,
        )?,
    };
    let parts: Vec<PartUrl> = parts
        .iter()
        .map(|p| PartUrl {
            part_number: p.part_number,
            request: (&p.request).into(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "parts": parts })))
}

fn bad_request(message: String) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        message,
    }
}

/// A completed upload, as `/multipart/complete` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Completed {
    /// The object's key.
    pub key: String,
    /// The object's ETag (`{md5 of part md5s}-{part count}`), no quotes.
    pub etag: String,
    /// The object's size in bytes.
    pub size: u64,
}

/// Checks the parts ([`check_completion`]) and completes create-only
/// (`If-None-Match: *`: a late or replayed completion never replaces an
/// original, 409 `already_exists`); safe to repeat (see the module docs):
/// the store itself reports an upload that is gone because these very
/// parts were completed into the object at the key
/// ([`MultipartStore::complete_multipart_upload_create_only`]).
async fn finish(
    st: &AppState,
    key: &ObjectKey,
    upload_id: &str,
    rules: &CompletionRules,
    parts: &[CompletedPart],
) -> Result<Completed, ApiError> {
    let meta = match st.uploads.list_parts(key, upload_id).await {
        Ok(listed) => {
            check_completion(&listed, parts, rules)?;
            match st
                .uploads
                .complete_multipart_upload_create_only(key, upload_id, parts)
                .await
            {
                // A concurrent repeat of this request won the race: asked
                // again, the store reports the object it made.
                Err(upload_core::Error::NoSuchUpload { .. }) => {
                    st.uploads
                        .complete_multipart_upload_create_only(key, upload_id, parts)
                        .await?
                }
                done => done?,
            }
        }
        Err(upload_core::Error::NoSuchUpload { .. }) => {
            st.uploads
                .complete_multipart_upload_create_only(key, upload_id, parts)
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(%key, %upload_id, size = meta.size, "multipart upload completed");
    Ok(Completed {
        key: key.as_str().to_owned(),
        etag: meta.etag,
        size: meta.size,
    })
}

async fn complete(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Complete>,
) -> Result<Json<Completed>, ApiError> {
    let (key, rules) = open_session(&st, &headers, &req.key, &req.upload_id, &req.session)?;
    Ok(Json(
        finish(&st, &key, &req.upload_id, &rules, &req.parts).await?,
    ))
}

async fn abort(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Abort>,
) -> Result<StatusCode, ApiError> {
    let (key, _) = open_session(&st, &headers, &req.key, &req.upload_id, &req.session)?;
    st.uploads
        .abort_multipart_upload(&key, &req.upload_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartsQuery {
    key: String,
    upload_id: String,
    session: String,
    #[serde(default)]
    part_number_marker: u32,
    #[serde(default)]
    max_parts: Option<u32>,
}

/// One page of `GET /multipart/parts`: what a client resumes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartsPage {
    /// Stored parts with numbers above the marker, ascending (at most
    /// `max_parts`, 1..=1000, default 1000, as S3 ListParts).
    pub parts: Vec<UploadedPart>,
    /// Whether more parts follow.
    pub is_truncated: bool,
    /// The `part_number_marker` of the next page, when truncated.
    pub next_part_number_marker: Option<u32>,
}

/// The parts above `marker`, at most `max` of them.
fn page(mut listed: Vec<UploadedPart>, marker: u32, max: u32) -> PartsPage {
    listed.sort_by_key(|p| p.part_number);
    listed.retain(|p| p.part_number > marker);
    let is_truncated = listed.len() > max as usize;
    listed.truncate(max as usize);
    PartsPage {
        next_part_number_marker: is_truncated
            .then(|| listed.last().map(|p| p.part_number))
            .flatten(),
        parts: listed,
        is_truncated,
    }
}

async fn list_parts_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PartsQuery>,
) -> Result<Json<PartsPage>, ApiError> {
    let (key, _) = open_session(&st, &headers, &q.key, &q.upload_id, &q.session)?;
    let max = q.max_parts.unwrap_or(1000);
    if !(1..=1000).contains(&max) {
        return Err(bad_request("max_parts must be 1..=1000".into()));
    }
    let listed = st.uploads.list_parts(&key, &q.upload_id).await?;
    Ok(Json(page(listed, q.part_number_marker, max)))
}

async fn status(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response, ApiError> {
    let key = owned_key(&owner(&headers)?, &q.key)?;
    let mkey = manifest_key(&key)?;
    let body = match st.processed.get(&mkey).await {
        Ok(got) => got.body,
        Err(upload_core::Error::NotFound { .. }) => {
            return Ok((StatusCode::ACCEPTED, Json(UploadStatus::Pending)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| ApiError {
        status: StatusCode::BAD_GATEWAY,
        code: "corrupt_manifest",
        message: format!("{mkey}: {e}"),
    })?;
    let now = SystemTime::now();
    let mut variant_urls = Vec::new();
    for v in &manifest.variants {
        let p = st.processed_presigner.presign_get(
            st.processed.bucket(),
            &v.key,
            st.config.download_expiry,
            now,
        )?;
        variant_urls.push((v.name.clone(), p.url.to_string()));
    }
    Ok(Json(UploadStatus::Processed {
        manifest: Box::new(manifest),
        variant_urls,
    })
    .into_response())
}

/// The routes in the shape of Uppy's `@uppy/aws-s3` plugin (see the
/// module docs).
mod uppy {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    /// Owner, key, S3 upload ID and rules of a call on `/s3/multipart/{uploadId}`.
    fn session(
        st: &AppState,
        headers: &HeaderMap,
        upload_id: &str,
        query: &HashMap<String, String>,
    ) -> Result<(ObjectKey, String, CompletionRules), ApiError> {
        let key = query
            .get("key")
            .ok_or_else(|| bad_request("the key query parameter is required".into()))?;
        // `{S3 upload ID}~{token}`; without a `~` the empty token fails
        // the session check (403), after the owner and key checks.
        let (id, token) = upload_id.rsplit_once('~').unwrap_or((upload_id, ""));
        let (key, rules) = open_session(st, headers, key, id, token)?;
        Ok((key, id.to_owned(), rules))
    }

    /// A size Uppy passes in `metadata` or the query: a number or a
    /// numeric string.
    fn size_of(v: Option<&serde_json::Value>) -> Result<Option<u64>, ApiError> {
        let bad = || bad_request("size must be a whole number of bytes, at least 1".into());
        let size = match v {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::Number(n)) => n.as_u64().ok_or_else(bad)?,
            Some(serde_json::Value::String(s)) => s.parse::<u64>().map_err(|_| bad())?,
            Some(_) => return Err(bad()),
        };
        if size == 0 {
            return Err(bad());
        }
        Ok(Some(size))
    }

    /// Uppy's `POST /s3/multipart` body (its `filename` is not used: keys
    /// never carry client names).
    #[derive(Debug, Deserialize)]
    pub(super) struct Create {
        #[serde(rename = "type")]
        content_type: String,
        #[serde(default)]
        metadata: serde_json::Map<String, serde_json::Value>,
    }

    pub(super) async fn create(
        State(st): State<AppState>,
        headers: HeaderMap,
        ApiJson(req): ApiJson<Create>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let owner = owner(&headers)?;
        let size = size_of(req.metadata.get("size"))?;
        st.config.policy.check_content_type(&req.content_type)?;
        if let Some(size) = size {
            st.config.policy.check_size(size)?;
            PartPlan::new(size, upload_multipart::MIN_PART_SIZE)?;
        }
        let key = new_key(&owner, &req.content_type)?;
        let opts = PutOptions::default()
            .with_content_type(upload_core::policy::essence(&req.content_type));
        let upload_id = st.uploads.create_multipart_upload(&key, opts).await?;
        // Uppy picks its own part size: 0 binds none, and an undeclared
        // size binds the policy's maximum.
        let claims = SessionClaims::new(size, None, SystemTime::now(), st.config.session_lifetime);
        let token = session_token(
            &st.session_secret,
            &owner,
            key.as_str(),
            &upload_id,
            &claims,
        );
        tracing::info!(%key, %upload_id, ?size, "multipart session (Uppy)");
        Ok(Json(serde_json::json!({
            "key": key.as_str(),
            "uploadId": format!("{upload_id}~{token}"),
        })))
    }

    fn part_number(raw: &str, rules: &CompletionRules) -> Result<u32, ApiError> {
        let limit = part_limit(rules)?;
        match raw.parse::<u32>() {
            Ok(n) if (1..=limit).contains(&n) => Ok(n),
            _ => Err(bad_request(format!(
                "part number {raw:?} is not within 1..={limit}"
            ))),
        }
    }

    pub(super) async fn sign_part(
        State(st): State<AppState>,
        headers: HeaderMap,
        Path((upload_id, raw)): Path<(String, String)>,
        ApiQuery(query): ApiQuery<HashMap<String, String>>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let (key, id, rules) = session(&st, &headers, &upload_id, &query)?;
        let n = part_number(&raw, &rules)?;
        check_open(&st, &key, &id).await?;
        let expiry = st.config.policy.expiry();
        let p = st.presigner.presign_upload_part(
            st.uploads.bucket(),
            &key,
            &id,
            n,
            expiry,
            SystemTime::now(),
        )?;
        let headers: BTreeMap<&str, &str> = p
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok(Json(serde_json::json!({
            "url": p.url.as_str(),
            "method": "PUT",
            "headers": headers,
            "expires": expiry.as_secs(),
        })))
    }

    pub(super) async fn sign_batch(
        State(st): State<AppState>,
        headers: HeaderMap,
        Path(upload_id): Path<String>,
        ApiQuery(query): ApiQuery<HashMap<String, String>>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let (key, id, rules) = session(&st, &headers, &upload_id, &query)?;
        let raw = query
            .get("partNumbers")
            .ok_or_else(|| bad_request("the partNumbers query parameter is required".into()))?;
        let numbers = raw
            .split(',')
            .map(|n| part_number(n, &rules))
            .collect::<Result<Vec<u32>, _>>()?;
        if numbers.len() > upload_multipart::session::MAX_PARTS_PER_BATCH as usize {
            return Err(bad_request(format!(
                "at most {} parts per batch",
                upload_multipart::session::MAX_PARTS_PER_BATCH
            )));
        }
        check_open(&st, &key, &id).await?;
        let now = SystemTime::now();
        let mut urls = BTreeMap::new();
        for n in numbers {
            let p = st.presigner.presign_upload_part(
                st.uploads.bucket(),
                &key,
                &id,
                n,
                st.config.policy.expiry(),
                now,
            )?;
            urls.insert(n.to_string(), p.url.to_string());
        }
        Ok(Json(
            serde_json::json!({ "presignedUrls": urls, "headers": {} }),
        ))
    }

    pub(super) async fn list_parts(
        State(st): State<AppState>,
        headers: HeaderMap,
        Path(upload_id): Path<String>,
        ApiQuery(query): ApiQuery<HashMap<String, String>>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let (key, id, _) = session(&st, &headers, &upload_id, &query)?;
        let mut parts = st.uploads.list_parts(&key, &id).await?;
        parts.sort_by_key(|p| p.part_number);
        let parts: Vec<serde_json::Value> = parts
            .iter()
            .map(|p| {
                serde_json::json!({
                    "PartNumber": p.part_number,
                    "Size": p.size,
                    "ETag": format!("\"{}\"", p.etag.trim_matches('"')),
                })
            })
            .collect();
        Ok(Json(serde_json::Value::Array(parts)))
    }

    /// A part in Uppy's completion body.
    #[derive(Debug, Deserialize)]
    struct UppyPart {
        #[serde(rename = "PartNumber")]
        part_number: u32,
        #[serde(rename = "ETag")]
        etag: String,
    }

    /// Uppy's completion body.
    #[derive(Debug, Deserialize)]
    pub(super) struct Complete {
        parts: Vec<UppyPart>,
    }

    pub(super) async fn complete(
        State(st): State<AppState>,
        headers: HeaderMap,
        Path(upload_id): Path<String>,
        ApiQuery(query): ApiQuery<HashMap<String, String>>,
        ApiJson(req): ApiJson<Complete>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let (key, id, rules) = session(&st, &headers, &upload_id, &query)?;
        let parts: Vec<CompletedPart> = req
            .parts
            .into_iter()
            .map(|p| CompletedPart {
                part_number: p.part_number,
                etag: p.etag,
                checksum: None,
            })
            .collect();
        let done = finish(&st, &key, &id, &rules, &parts).await?;
        // Where the object is (not a download link: originals are never
        // served; read variants through /uploads/status).
        let mut location = st
            .presigner
            .presign_get(
                st.uploads.bucket(),
                &key,
                Duration::from_secs(60),
                SystemTime::now(),
            )?
            .url;
        location.set_query(None);
        Ok(Json(serde_json::json!({
            "location": location.as_str(),
            "key": done.key,
            "etag": done.etag,
            "size": done.size,
        })))
    }

    pub(super) async fn abort(
        State(st): State<AppState>,
        headers: HeaderMap,
        Path(upload_id): Path<String>,
        ApiQuery(query): ApiQuery<HashMap<String, String>>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let (key, id, _) = session(&st, &headers, &upload_id, &query)?;
        st.uploads.abort_multipart_upload(&key, &id).await?;
        Ok(Json(serde_json::json!({})))
    }

    /// `GET /s3/params`: a single-request upload for Uppy. Without a size
    /// it is a POST form bounded by the policy's `content-length-range`;
    /// with one, a PUT with that exact `Content-Length` signed.
    pub(super) async fn params(
        State(st): State<AppState>,
        headers: HeaderMap,
        ApiQuery(query): ApiQuery<HashMap<String, String>>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let owner = owner(&headers)?;
        let content_type = query
            .get("type")
            .ok_or_else(|| bad_request("the type query parameter is required".into()))?;
        let size = size_of(
            query
                .get("size")
                .map(|s| serde_json::Value::String(s.clone()))
                .as_ref(),
        )?;
        st.config.policy.check_content_type(content_type)?;
        let key = new_key(&owner, content_type)?;
        let now = SystemTime::now();
        let bucket = st.uploads.bucket();
        if let Some(size) = size {
            st.config.policy.check_size(size)?;
            let mut put = PutHeaders::default().with_content_length(size);
            if let Some(name) = query.get("filename") {
                put = put
                    .with_content_disposition(content_disposition(Disposition::Attachment, name));
            }
            let p = st.presigner.presign_put_with(
                bucket,
                &key,
                &upload_core::policy::essence(content_type),
                &put,
                st.config.policy.expiry(),
                now,
            )?;
            // Content-Length is the browser's to set; the others are sent as signed.
            let headers: BTreeMap<&str, &str> = p
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            return Ok(Json(serde_json::json!({
                "method": "PUT",
                "url": p.url.as_str(),
                "fields": {},
                "headers": headers,
                "key": key.as_str(),
            })));
        }
        // No declared size: the form is bounded by the policy's maximum.
        let p = presign_post_upload(
            &st.presigner,
            &st.config.policy,
            bucket,
            &key,
            content_type,
            None,
            now,
        )?;
        let fields: serde_json::Map<String, serde_json::Value> = p
            .fields
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        Ok(Json(serde_json::json!({
            "method": "POST",
            "url": p.url.as_str(),
            "fields": fields,
            "headers": {},
            "key": key.as_str(),
        })))
    }
}
