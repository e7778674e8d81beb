//! The routes of Uppy 6's `@uppy/aws-s3` in its `signRequest` mode.
//!
//! Uppy 6 (`@uppy/aws-s3` 6.x, read from 6.3.1) has three modes:
//! `companionEndpoint` (the Companion routes of [`crate::uppy`], which
//! serve it unchanged: its single uploads ask `GET /s3/params` without a
//! size and POST the form they get), `getCredentials` (temporary
//! credentials in the browser: not offered, the browser would sign
//! anything) and `signRequest`: the app's callback is handed one S3
//! request at a time (`src/s3-client/types.ts`, `PresignableRequest`:
//! `{method, key, uploadId?, partNumber?, contentType?}`) and returns
//! `{url, key?, headers?, fields?}`; Uppy then sends exactly that request
//! itself (`src/s3-client/S3mini.ts`): the object's PUT, the
//! CreateMultipartUpload `POST ?uploads` (reading the upload ID from the
//! XML answer), each part's PUT, ListParts `GET`, the
//! CompleteMultipartUpload `POST` with the XML part list, and the abort
//! `DELETE`. The `key` it returns is honored on the PUT and the create.
//!
//! `POST /s3/sign` is the server side of that callback (the page's
//! `signRequest` posts the request it is handed, plus the file's `size`,
//! `filename` and `metadata`, and returns the answer as is). It never
//! signs an arbitrary request; only the operations of the caller's own
//! session, each checked as the other routes check it:
//!
//! | request | what is signed or done |
//! |---|---|
//! | `PUT`, no `uploadId` (PutObject) | `contentType` and `size` within the route's policy, at most the multipart threshold; the hook runs; a new key of the caller's (the requested `key` is only Uppy's proposal and is replaced through `key`); a PUT with `Content-Type`, the exact `Content-Length`, create-only `If-None-Match: *`, the file name's `Content-Disposition` and the route, owner and hook `x-amz-meta-*` signed, all but `Content-Length` (the browser's) returned as `headers` |
//! | `POST`, no `uploadId` (CreateMultipartUpload) | done here, not signed: policy, hook and metadata as above, the upload created with them, and a session token bound to owner, key, size and the route's part size (so each part URL pins its exact length; the page must use the route's `part_size` from `/config` as its chunk size); the answer's `url` is `sign/multipart/{uploadId}/created?key=K`, which Uppy POSTs to and which answers S3's `InitiateMultipartUploadResult` with `{upload ID}~{token}` as the upload ID |
//! | `PUT` with `uploadId` and `partNumber` (UploadPart) | the token must be the caller's for this key on this route, the part within the session's plan and the upload still open; the part's PUT, with its exact `Content-Length` signed when the size was declared |
//! | `GET` with `uploadId` (ListParts) | session checked; `url` is `sign/multipart/{uploadId}?key=K`, answering S3's `ListPartsResult` |
//! | `POST` with `uploadId` (CompleteMultipartUpload) | session checked; `url` is `sign/multipart/{uploadId}/complete?key=K`, which takes Uppy's XML part list and answers S3's `CompleteMultipartUploadResult` |
//! | `DELETE` with `uploadId` (AbortMultipartUpload) | session checked; `url` is `sign/multipart/{uploadId}?key=K` (`DELETE`, 204) |
//! | anything else (DeleteObject, a `bucket`, unknown fields or methods) | refused: 403 `operation_not_allowed` or 400 |
//!
//! Completion goes through the server, not to S3 directly: a signed
//! CompleteMultipartUpload URL would let the client complete with any
//! parts, of any sizes, or replace an object already at the key, while
//! here [`upload_multipart::check_completion`] runs first (parts 1..=N
//! in order, stored with these ETags, the declared size) and the
//! completion is create-only and safe to repeat, as on the other routes.
//! ListParts and abort go through it too, so every control request of
//! the session is checked against its token and none needs a bucket CORS
//! rule; only the bytes (the PUT and the parts) go to storage.
//!
//! These control URLs are relative references, resolved against the URL
//! of the `/s3/sign` request (`sign/multipart/…` from `…/s3/sign` is
//! `…/s3/sign/multipart/…`), so they hold wherever the app nests the
//! router and whatever a proxy does to the prefix; the page resolves
//! them (`new URL(answer.url, response.url)`; absolute storage URLs stay
//! as they are). Each asks the app's [`Authorizer`](crate::Authorizer)
//! first, so a page whose authentication is a header adds it to the
//! answer's `headers`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use upload_core::sign::PutToSign;
use upload_core::{CompletedPart, ObjectKey, PutOptions};
use upload_multipart::{CompletionRules, PartPlan, presign_planned_parts};

use crate::auth::*;
use crate::config::*;
use crate::error::*;
use crate::route::*;
use crate::routes::*;
use crate::session::*;

/// The body of `POST /s3/sign`: Uppy 6's `PresignableRequest` and what
/// the page adds from the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SignRequest {
    method: String,
    key: String,
    #[serde(default)]
    upload_id: Option<String>,
    #[serde(default)]
    part_number: Option<u32>,
    #[serde(default)]
    content_type: Option<String>,
    /// Uppy's wish; the route's policy sets the expiry.
    #[serde(default)]
    #[allow(dead_code)]
    expires_in: Option<u64>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Uppy 6's `PresignedResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct Signed {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    headers: BTreeMap<String, String>,
}

fn forbidden_operation(message: String) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "operation_not_allowed",
        message,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes XML text.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn xml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    )
        .into_response()
}

/// The headers of a presigned request the client sends (`Content-Length`
/// and `Host` are the browser's own).
fn client_headers(headers: &[(String, String)]) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("host")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The key and session an Uppy 6 upload ID (`{S3 upload ID}~{token}`)
/// names, checked for this owner and route.
fn session_of(
    st: &AppState,
    route: &UploadRoute,
    owner: &Owner,
    key: &str,
    upload_id: &str,
) -> Result<(ObjectKey, String, CompletionRules), ApiError> {
    let (id, token) = upload_id.rsplit_once('~').unwrap_or((upload_id, ""));
    let (key, rules) = open_session(st, route, owner, key, id, token)?;
    Ok((key, id.to_owned(), rules))
}

/// `POST /s3/sign` (see the module docs).
pub(crate) async fn sign(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiJson(req): ApiJson<SignRequest>,
) -> Result<Json<Signed>, ApiError> {
    // Relative to this request's URL (`…/s3/sign`): `…/s3/sign/multipart/…`.
    let control = |upload_id: &str, key: &ObjectKey, tail: &str| Signed {
        url: format!(
            "sign/multipart/{}{tail}?key={}",
            encode(upload_id),
            encode(key.as_str())
        ),
        key: None,
        headers: BTreeMap::new(),
    };
    let method = req.method.to_ascii_uppercase();
    match (method.as_str(), req.upload_id.as_deref(), req.part_number) {
        ("PUT", None, None) => put_object(&st, &route, &owner, req).await.map(Json),
        ("POST", None, None) => {
            st.require_multipart()?;
            let (key, upload_id) = create(&st, &route, &owner, req).await?;
            let mut signed = control(&upload_id, &key, "/created");
            signed.key = Some(key.into_string());
            Ok(Json(signed))
        }
        ("PUT", Some(upload_id), Some(n)) => {
            st.require_multipart()?;
            let (key, id, rules) = session_of(&st, &route, &owner, &req.key, upload_id)?;
            let limit = part_limit(&rules)?;
            if !(1..=limit).contains(&n) {
                return Err(bad_request(format!(
                    "part number {n} is not within 1..={limit}"
                )));
            }
            check_open(&st, &key, &id).await?;
            let expiry = route.policy.expiry();
            let presigner = st.presigner.presigner(expiry).await?;
            let now = SystemTime::now();
            let bucket = st.uploads.bucket();
            let p = match (rules.size, rules.part_size) {
                (Some(size), Some(part_size)) => {
                    presign_planned_parts(
                        &presigner,
                        bucket,
                        &key,
                        &id,
                        &PartPlan::new(size, part_size)?,
                        n..=n,
                        expiry,
                        now,
                    )?
                    .remove(0)
                    .request
                }
                _ => presigner.presign_upload_part(bucket, &key, &id, n, expiry, now)?,
            };
            crate::metrics::issued(route.name(), crate::metrics::UrlKind::Part, 1);
            Ok(Json(Signed {
                url: p.url.to_string(),
                key: None,
                headers: client_headers(&p.headers),
            }))
        }
        ("GET", Some(upload_id), None) | ("DELETE", Some(upload_id), None) => {
            let (key, _, _) = session_of(&st, &route, &owner, &req.key, upload_id)?;
            Ok(Json(control(upload_id, &key, "")))
        }
        ("POST", Some(upload_id), None) => {
            let (key, _, _) = session_of(&st, &route, &owner, &req.key, upload_id)?;
            Ok(Json(control(upload_id, &key, "/complete")))
        }
        ("DELETE", None, None) => Err(forbidden_operation(
            "DeleteObject is not signed: uploads are never deleted by the browser".into(),
        )),
        (m, u, p) => Err(bad_request(format!(
            "no such upload operation: method {m} with{} uploadId and with{} partNumber",
            if u.is_some() { "" } else { "out" },
            if p.is_some() { "" } else { "out" },
        ))),
    }
}

/// The declared content type and size of a new upload, and the metadata
/// the route signs into it (policy and hook checked).
async fn admit(
    route: &UploadRoute,
    owner: &Owner,
    req: &mut SignRequest,
    size_required: bool,
) -> Result<(String, Option<u64>, UploadMetadata), ApiError> {
    let content_type = req
        .content_type
        .clone()
        .ok_or_else(|| bad_request("contentType is required".into()))?;
    let size = match req.size {
        Some(0) => return Err(bad_request("size must be at least 1 byte".into())),
        None if size_required => {
            return Err(bad_request(
                "size is required: the PUT and every part are signed for their exact Content-Length".into(),
            ));
        }
        size => size,
    };
    route.policy.check_content_type(&content_type)?;
    if let Some(size) = size {
        route.policy.check_size(size)?;
    }
    let metadata = route
        .authorize_upload(HookRequest {
            route: route.name().to_owned(),
            owner: owner.clone(),
            content_type: content_type.clone(),
            size,
            filename: req.filename.clone(),
            input: serde_json::Value::Object(req.metadata.take().unwrap_or_default()),
        })
        .await?;
    Ok((content_type, size, metadata))
}

async fn put_object(
    st: &AppState,
    route: &UploadRoute,
    owner: &Owner,
    mut req: SignRequest,
) -> Result<Signed, ApiError> {
    // Everything that can fail before the hook runs (it may record the
    // upload in the app's database).
    if let Some(size) = req.size
        && size > route.multipart_threshold
    {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "use_multipart",
            message: format!(
                "{size} bytes is above this route's multipart threshold of {} bytes",
                route.multipart_threshold
            ),
        });
    }
    let signer = st.upload_signer();
    signer.check_ready(route.policy.expiry()).await?;
    let (content_type, size, metadata) = admit(route, owner, &mut req, true).await?;
    let size = size.unwrap_or_default();
    let key = route.new_key(owner, &content_type)?;
    let p = signer
        .sign_put(&PutToSign {
            key: &key,
            content_type: &upload_core::policy::essence(&content_type),
            size,
            filename: req.filename.as_deref(),
            metadata: &metadata,
            expires_in: route.policy.expiry(),
            now: SystemTime::now(),
        })
        .await?;
    tracing::info!(%key, route = route.name(), size, "presigned PUT (Uppy 6)");
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Put, 1);
    Ok(Signed {
        url: p.url,
        headers: client_headers(&p.headers),
        key: Some(key.into_string()),
    })
}

/// Creates the multipart upload; returns its key and the upload ID Uppy
/// is to use (`{S3 upload ID}~{token}`).
async fn create(
    st: &AppState,
    route: &UploadRoute,
    owner: &Owner,
    mut req: SignRequest,
) -> Result<(ObjectKey, String), ApiError> {
    let (content_type, size, metadata) = admit(route, owner, &mut req, true).await?;
    let part_size = match size {
        Some(size) => Some(PartPlan::new(size, route.part_size)?.part_size()),
        None => None,
    };
    let key = route.new_key(owner, &content_type)?;
    let mut opts =
        PutOptions::default().with_content_type(upload_core::policy::essence(&content_type));
    opts.metadata = metadata;
    let upload_id = st.uploads.create_multipart_upload(&key, opts).await?;
    crate::metrics::session_created(route.name());
    let claims = SessionClaims::new(
        size,
        part_size,
        SystemTime::now(),
        st.config.session_lifetime,
    );
    let token = session_token(&st.session_secret, owner, key.as_str(), &upload_id, &claims);
    tracing::info!(%key, %upload_id, ?size, route = route.name(), "multipart session (Uppy 6)");
    Ok((key, format!("{upload_id}~{token}")))
}

fn key_of(query: &HashMap<String, String>) -> Result<&str, ApiError> {
    query
        .get("key")
        .map(String::as_str)
        .ok_or_else(|| bad_request("the key query parameter is required".into()))
}

/// `POST /s3/sign/multipart/{uploadId}/created?key=K`: S3's answer to
/// CreateMultipartUpload, for an upload created by `POST /s3/sign`.
pub(crate) async fn created(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (key, id, _) = session_of(&st, &route, &owner, key_of(&query)?, &upload_id)?;
    check_open(&st, &key, &id).await?;
    Ok(xml(format!(
        "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>",
        xml_escape(st.uploads.bucket()),
        xml_escape(key.as_str()),
        xml_escape(&upload_id),
    )))
}

/// `GET /s3/sign/multipart/{uploadId}?key=K`: S3's ListPartsResult (every
/// stored part, one page).
pub(crate) async fn list_parts(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (key, id, _) = session_of(&st, &route, &owner, key_of(&query)?, &upload_id)?;
    let mut parts = st.uploads.list_parts(&key, &id).await?;
    parts.sort_by_key(|p| p.part_number);
    let mut body = format!(
        "<ListPartsResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId><IsTruncated>false</IsTruncated>",
        xml_escape(st.uploads.bucket()),
        xml_escape(key.as_str()),
        xml_escape(&upload_id),
    );
    for p in &parts {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag><Size>{}</Size></Part>",
            p.part_number,
            xml_escape(&format!("\"{}\"", p.etag.trim_matches('"'))),
            p.size
        ));
    }
    body.push_str("</ListPartsResult>");
    Ok(xml(body))
}

/// The text of each `<tag>…</tag>` in `s`, in order.
fn elements<'a>(s: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// The parts of a CompleteMultipartUpload XML body, as Uppy 6 writes it
/// (`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>…</ETag></Part>…`).
fn completion_parts(body: &str) -> Result<Vec<CompletedPart>, ApiError> {
    let bad = |m: &str| bad_request(format!("malformed CompleteMultipartUpload body: {m}"));
    if elements(body, "CompleteMultipartUpload").len() != 1 {
        return Err(bad("no <CompleteMultipartUpload> element"));
    }
    elements(body, "Part")
        .into_iter()
        .map(|part| {
            let (numbers, etags) = (elements(part, "PartNumber"), elements(part, "ETag"));
            match (numbers.as_slice(), etags.as_slice()) {
                ([n], [etag]) => Ok(CompletedPart {
                    part_number: n.trim().parse().map_err(|_| bad("a PartNumber"))?,
                    etag: xml_unescape(etag.trim()),
                    checksum: None,
                }),
                _ => Err(bad("each <Part> needs one PartNumber and one ETag")),
            }
        })
        .collect()
}

/// `POST /s3/sign/multipart/{uploadId}/complete?key=K`: Uppy's XML part
/// list, checked and completed as on the other routes; S3's
/// CompleteMultipartUploadResult.
pub(crate) async fn complete(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (key, id, rules) = session_of(&st, &route, &owner, key_of(&query)?, &upload_id)?;
    let body = std::str::from_utf8(&body)
        .map_err(|_| bad_request("the CompleteMultipartUpload body is not UTF-8".into()))?;
    let parts = completion_parts(body)?;
    let done = finish(&st, &key, &id, &rules, &parts).await?;
    let location = crate::uppy::object_location(&st, &key).await?;
    Ok(xml(format!(
        "<CompleteMultipartUploadResult><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
        xml_escape(location.as_str()),
        xml_escape(st.uploads.bucket()),
        xml_escape(&done.key),
        xml_escape(&format!("\"{}\"", done.etag)),
    )))
}

/// `DELETE /s3/sign/multipart/{uploadId}?key=K`: aborts the upload (204).
pub(crate) async fn abort(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let (key, id, _) = session_of(&st, &route, &owner, key_of(&query)?, &upload_id)?;
    st.uploads.abort_multipart_upload(&key, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uppy_completion_xml() {
        let body = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>abc</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;def&quot;</ETag></Part></CompleteMultipartUpload>";
        let parts = completion_parts(body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].part_number, parts[0].etag.as_str()), (1, "abc"));
        assert_eq!(
            (parts[1].part_number, parts[1].etag.as_str()),
            (2, "\"def\"")
        );
        assert!(completion_parts("<Part><PartNumber>1</PartNumber></Part>").is_err());
        assert!(
            completion_parts(
                "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>"
            )
            .is_err()
        );
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("a+b/c~d=e"), "a%2Bb%2Fc~d%3De");
        assert_eq!(xml_escape("a<&>\""), "a&lt;&amp;&gt;&quot;");
    }
}

#[cfg(test)]
mod bad_input_tests {
    use super::*;

    #[test]
    fn truncated_or_hostile_completion_bodies_are_typed_400s() {
        for body in [
            "",
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"",
            "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>99999999999</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload></CompleteMultipartUpload><CompleteMultipartUpload></CompleteMultipartUpload>",
            "<<<<>>>>",
        ] {
            let e = completion_parts(body).expect_err(body);
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (400, "bad_request"),
                "{body:?}: {}",
                e.message()
            );
        }
    }
}
