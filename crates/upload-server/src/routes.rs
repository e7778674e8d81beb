//! Our own routes: presigned PUT and POST, multipart sessions (create,
//! sign more parts, list parts page by page, complete, abort), and the
//! router that serves them beside the Uppy routes (see the crate docs).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use upload_core::sign::{PutToSign, SignedUpload};
use upload_core::{CompletedPart, ObjectKey, PutOptions, UploadedPart};
use upload_multipart::{
    CompletionRules, PartPlan, check_completion, presign_parts, presign_planned_parts,
};
use upload_presign::{PresignedRequest, PresignedUrl, presign_post_upload_with_metadata};

use crate::auth::*;
use crate::config::*;
use crate::error::*;
use crate::route::*;
use crate::session::*;
use crate::status::*;

/// The router of the API described in the crate docs (see
/// [`AppState::router`]).
pub fn router(state: AppState) -> Router {
    let not_found = || async {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "no such route; see the upload_server crate docs".into(),
        }
    };
    let method_not_allowed = || async {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "method not allowed on this route".into(),
        }
    };
    // Every endpoint, for one upload route (an extension the handlers read).
    let api = |route: UploadRoute| {
        Router::new()
            .route("/uploads", post(create_upload))
            .route("/uploads/status", get(status))
            .route("/config", get(client_config))
            .route("/multipart/sign", post(sign_parts))
            .route("/multipart/complete", post(complete))
            .route("/multipart/abort", post(abort))
            .route("/multipart/parts", get(list_parts_page))
            .route("/s3/params", get(crate::uppy::params))
            .route("/s3/multipart", post(crate::uppy::create))
            .route(
                "/s3/multipart/{upload_id}",
                get(crate::uppy::list_parts).delete(crate::uppy::abort),
            )
            .route(
                "/s3/multipart/{upload_id}/batch",
                get(crate::uppy::sign_batch),
            )
            .route(
                "/s3/multipart/{upload_id}/complete",
                post(crate::uppy::complete),
            )
            .route(
                "/s3/multipart/{upload_id}/{part_number}",
                get(crate::uppy::sign_part),
            )
            .route("/s3/sign", post(crate::uppy6::sign))
            .route(
                "/s3/sign/multipart/{upload_id}",
                get(crate::uppy6::list_parts).delete(crate::uppy6::abort),
            )
            .route(
                "/s3/sign/multipart/{upload_id}/created",
                post(crate::uppy6::created),
            )
            .route(
                "/s3/sign/multipart/{upload_id}/complete",
                post(crate::uppy6::complete),
            )
            .method_not_allowed_fallback(method_not_allowed)
            .layer(Extension(Arc::new(route)))
    };
    let mut app = Router::new();
    if state.config.serve_default_route {
        app = app.merge(api(state.config.default_route()));
    }
    for route in state.config.routes() {
        app = app.nest(&format!("/routes/{}", route.name()), api(route.clone()));
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A JSON answer written into a buffer sized for a ticket with one URL
/// (axum's `Json` starts from 128 bytes and grows it three times).
pub(crate) struct JsonAnswer<T>(pub(crate) T);

impl<T: Serialize> IntoResponse for JsonAnswer<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(1536);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: format!("the answer could not be written as JSON: {e}"),
            }
            .into_response(),
        }
    }
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
    /// Anything the route's [`UploadHook`](crate::UploadHook) should see
    /// ([`HookRequest::input`](crate::HookRequest::input)); untrusted.
    #[serde(default)]
    pub input: Option<serde_json::Value>,
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

impl From<PresignedUrl> for SignedRequest {
    fn from(p: PresignedUrl) -> Self {
        Self {
            method: p.method.as_str().to_owned(),
            url: p.url,
            headers: p.headers,
        }
    }
}

impl From<SignedUpload> for SignedRequest {
    fn from(p: SignedUpload) -> Self {
        Self {
            method: p.method.to_owned(),
            url: p.url,
            headers: p.headers,
        }
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignParts {
    key: String,
    upload_id: String,
    session: String,
    first: u32,
    last: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Complete {
    key: String,
    upload_id: String,
    session: String,
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Abort {
    key: String,
    upload_id: String,
    session: String,
}

pub(crate) async fn create_upload(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiJson(req): ApiJson<CreateUpload>,
) -> Result<JsonAnswer<UploadTicket>, ApiError> {
    if req.size == 0 {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "empty_upload",
            message: "size must be at least 1 byte".into(),
        });
    }
    route.policy.check(&req.content_type, req.size)?;
    if req.form == UploadForm::Post && req.size <= route.multipart_threshold && !route.post_forms()
    {
        return Err(post_forms_disabled(&route));
    }
    let single_put = req.size <= route.multipart_threshold && req.form == UploadForm::Put;
    if req.size > route.multipart_threshold {
        st.require_multipart()?;
    } else if req.form == UploadForm::Post {
        st.require_post_forms()?;
    }
    let key = route.new_key(&owner, &req.content_type)?;
    if req.size > route.multipart_threshold {
        PartPlan::new(req.size, route.part_size)?;
    }
    // Everything that can fail before the hook runs (it may record the
    // upload in the app's database).
    let signer = st.upload_signer();
    let presigner = if single_put {
        signer.check_ready(route.policy.expiry()).await?;
        None
    } else {
        Some(st.presigner.presigner(route.policy.expiry()).await?)
    };
    let metadata = route
        .authorize_upload(HookRequest {
            route: route.name().to_owned(),
            owner: owner.clone(),
            content_type: req.content_type.clone(),
            size: Some(req.size),
            filename: req.filename.clone(),
            input: req.input.clone().unwrap_or_default(),
        })
        .await?;
    let now = SystemTime::now();
    let Some(presigner) = presigner else {
        // One PUT, signed by the configured signer (S3 presigned PUT by
        // default: Content-Type, exact Content-Length, If-None-Match: *,
        // Content-Disposition and the metadata signed).
        let p = signer
            .sign_put(&PutToSign {
                key: &key,
                content_type: &upload_core::policy::essence(&req.content_type),
                size: req.size,
                filename: req.filename.as_deref(),
                metadata: &metadata,
                expires_in: route.policy.expiry(),
                now,
            })
            .await?;
        tracing::info!(%key, route = route.name(), size = req.size, "presigned PUT");
        crate::metrics::issued(route.name(), crate::metrics::UrlKind::Put, 1);
        return Ok(JsonAnswer(UploadTicket::Put {
            key: key.into_string(),
            expires_at: upload_core::timestamp::rfc3339(p.expires_at),
            request: p.into(),
        }));
    };
    let bucket = st.uploads.bucket().to_owned();
    if req.size <= route.multipart_threshold {
        // Bounded to exactly the declared size (content-length-range).
        let p = presign_post_upload_with_metadata(
            &presigner,
            &route.policy,
            &bucket,
            &key,
            &req.content_type,
            Some(req.size),
            &metadata.into_iter().collect::<Vec<_>>(),
            now,
        )?;
        tracing::info!(%key, route = route.name(), "presigned POST");
        crate::metrics::issued(route.name(), crate::metrics::UrlKind::Post, 1);
        return Ok(JsonAnswer(UploadTicket::Post {
            key: key.into_string(),
            url: p.url.to_string(),
            fields: p.fields,
            expires_at: upload_core::timestamp::rfc3339(p.expires_at),
        }));
    }
    let plan = PartPlan::new(req.size, route.part_size)?;
    let mut opts =
        PutOptions::default().with_content_type(upload_core::policy::essence(&req.content_type));
    opts.metadata = metadata;
    let upload_id = st.uploads.create_multipart_upload(&key, opts).await?;
    let last = plan.part_count().min(st.config.first_batch.max(1));
    // Each part URL pins its part's exact Content-Length.
    let parts = match presign_planned_parts(
        &presigner,
        &bucket,
        &key,
        &upload_id,
        &plan,
        1..=last,
        route.policy.expiry(),
        now,
    ) {
        Ok(parts) => parts,
        Err(e) => {
            // No session is handed out: the upload is not left open.
            if let Err(abort) = st.uploads.abort_multipart_upload(&key, &upload_id).await {
                tracing::warn!(%key, %upload_id, error = %abort, "multipart upload left open after a signing failure");
            }
            return Err(e.into());
        }
    };
    tracing::info!(%key, %upload_id, route = route.name(), size = req.size, parts = plan.part_count(), "multipart session");
    crate::metrics::session_created(route.name());
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Part, parts.len());
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
    Ok(JsonAnswer(UploadTicket::Multipart {
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

pub(crate) async fn sign_parts(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiJson(req): ApiJson<SignParts>,
) -> Result<Json<serde_json::Value>, ApiError> {
    st.require_multipart()?;
    let (key, rules) = open_session(&st, &route, &owner, &req.key, &req.upload_id, &req.session)?;
    let count = part_limit(&rules)?;
    if req.last > count {
        return Err(bad_request(format!(
            "this upload has {count} parts; part {} does not exist",
            req.last
        )));
    }
    // The upload must still be open (not completed or aborted).
    check_open(&st, &key, &req.upload_id).await?;
    let presigner = st.presigner.presigner(route.policy.expiry()).await?;
    let (expiry, now) = (route.policy.expiry(), SystemTime::now());
    let parts = match (rules.size, rules.part_size) {
        // A planned session: each part URL pins its part's exact size.
        (Some(size), Some(part_size)) => presign_planned_parts(
            &presigner,
            st.uploads.bucket(),
            &key,
            &req.upload_id,
            &PartPlan::new(size, part_size)?,
            req.first..=req.last,
            expiry,
            now,
        )?,
        _ => presign_parts(
            &presigner,
            st.uploads.bucket(),
            &key,
            &req.upload_id,
            req.first..=req.last,
            expiry,
            now,
        )?,
    };
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Part, parts.len());
    let parts: Vec<PartUrl> = parts
        .iter()
        .map(|p| PartUrl {
            part_number: p.part_number,
            request: (&p.request).into(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "parts": parts })))
}

pub(crate) fn bad_request(message: String) -> ApiError {
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
pub(crate) async fn finish(
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

pub(crate) async fn complete(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiJson(req): ApiJson<Complete>,
) -> Result<Json<Completed>, ApiError> {
    let (key, rules) = open_session(&st, &route, &owner, &req.key, &req.upload_id, &req.session)?;
    Ok(Json(
        finish(&st, &key, &req.upload_id, &rules, &req.parts).await?,
    ))
}

pub(crate) async fn abort(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiJson(req): ApiJson<Abort>,
) -> Result<StatusCode, ApiError> {
    let (key, _) = open_session(&st, &route, &owner, &req.key, &req.upload_id, &req.session)?;
    st.uploads
        .abort_multipart_upload(&key, &req.upload_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartsQuery {
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
pub(crate) fn page(mut listed: Vec<UploadedPart>, marker: u32, max: u32) -> PartsPage {
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

pub(crate) async fn list_parts_page(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiQuery(q): ApiQuery<PartsQuery>,
) -> Result<Json<PartsPage>, ApiError> {
    let (key, _) = open_session(&st, &route, &owner, &q.key, &q.upload_id, &q.session)?;
    let max = q.max_parts.unwrap_or(1000);
    if !(1..=1000).contains(&max) {
        return Err(bad_request("max_parts must be 1..=1000".into()));
    }
    let listed = st.uploads.list_parts(&key, &q.upload_id).await?;
    Ok(Json(page(listed, q.part_number_marker, max)))
}
