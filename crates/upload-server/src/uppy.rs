//! The routes in the shape of Uppy's `@uppy/aws-s3` plugin (its
//! `endpoint` option: the Companion 5.x routes; see the crate docs).

use std::collections::{BTreeMap, HashMap};

use std::time::{Duration, SystemTime};

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use upload_core::sign::PutToSign;
use upload_core::{CompletedPart, ObjectKey, PutOptions};
use upload_multipart::{CompletionRules, PartPlan};
use upload_presign::presign_post_upload_with_metadata;

use crate::auth::*;
use crate::config::*;
use crate::error::*;
use crate::route::*;
use crate::routes::*;
use crate::session::*;

/// Owner, key, S3 upload ID and rules of a call on `/s3/multipart/{uploadId}`.
fn session(
    st: &AppState,
    route: &UploadRoute,
    owner: &Owner,
    upload_id: &str,
    query: &HashMap<String, String>,
) -> Result<(ObjectKey, String, CompletionRules), ApiError> {
    let key = query
        .get("key")
        .ok_or_else(|| bad_request("the key query parameter is required".into()))?;
    // `{S3 upload ID}~{token}`; without a `~` the empty token fails
    // the session check (403), after the owner and key checks.
    let (id, token) = upload_id.rsplit_once('~').unwrap_or((upload_id, ""));
    let (key, rules) = open_session(st, route, owner, key, id, token)?;
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

/// Uppy's `POST /s3/multipart` body (its `filename` never becomes part of
/// the key; the hook sees it).
#[derive(Debug, Deserialize)]
pub(crate) struct Create {
    #[serde(rename = "type")]
    content_type: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

pub(crate) async fn create(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiJson(req): ApiJson<Create>,
) -> Result<Json<serde_json::Value>, ApiError> {
    st.require_multipart()?;
    let size = size_of(req.metadata.get("size"))?;
    route.policy.check_content_type(&req.content_type)?;
    if let Some(size) = size {
        route.policy.check_size(size)?;
        PartPlan::new(size, upload_multipart::MIN_PART_SIZE)?;
    }
    let key = route.new_key(&owner, &req.content_type)?;
    let filename = req.filename.clone();
    let metadata = route
        .authorize_upload(HookRequest {
            route: route.name().to_owned(),
            owner: owner.clone(),
            content_type: req.content_type.clone(),
            size,
            filename,
            input: serde_json::Value::Object(req.metadata),
        })
        .await?;
    let mut opts =
        PutOptions::default().with_content_type(upload_core::policy::essence(&req.content_type));
    opts.metadata = metadata;
    let upload_id = st.uploads.create_multipart_upload(&key, opts).await?;
    crate::metrics::session_created(route.name());
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

pub(crate) async fn sign_part(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path((upload_id, raw)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    st.require_multipart()?;
    let (key, id, rules) = session(&st, &route, &owner, &upload_id, &query)?;
    let n = part_number(&raw, &rules)?;
    check_open(&st, &key, &id).await?;
    let expiry = route.policy.expiry();
    let presigner = st.presigner.presigner(expiry).await?;
    let p = presigner.presign_upload_part(
        st.uploads.bucket(),
        &key,
        &id,
        n,
        expiry,
        SystemTime::now(),
    )?;
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Part, 1);
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

pub(crate) async fn sign_batch(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    st.require_multipart()?;
    let (key, id, rules) = session(&st, &route, &owner, &upload_id, &query)?;
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
    let presigner = st.presigner.presigner(route.policy.expiry()).await?;
    let now = SystemTime::now();
    let mut urls = BTreeMap::new();
    for n in numbers {
        let p = presigner.presign_upload_part(
            st.uploads.bucket(),
            &key,
            &id,
            n,
            route.policy.expiry(),
            now,
        )?;
        urls.insert(n.to_string(), p.url.to_string());
    }
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Part, urls.len());
    Ok(Json(
        serde_json::json!({ "presignedUrls": urls, "headers": {} }),
    ))
}

pub(crate) async fn list_parts(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (key, id, _) = session(&st, &route, &owner, &upload_id, &query)?;
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

/// Where a completed object is, as both Uppy contracts report it: its
/// URL without a signature (not a download link: originals are never
/// served; variants are read through `/uploads/status`).
pub(crate) async fn object_location(
    st: &AppState,
    key: &ObjectKey,
) -> Result<upload_presign::Url, ApiError> {
    let expiry = Duration::from_secs(60);
    let mut location = st
        .presigner
        .presigner(expiry)
        .await?
        .presign_get(st.uploads.bucket(), key, expiry, SystemTime::now())?
        .url;
    location.set_query(None);
    Ok(location)
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
pub(crate) struct Complete {
    parts: Vec<UppyPart>,
}

pub(crate) async fn complete(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    ApiJson(req): ApiJson<Complete>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (key, id, rules) = session(&st, &route, &owner, &upload_id, &query)?;
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
    let location = object_location(&st, &key).await?;
    Ok(Json(serde_json::json!({
        "location": location.as_str(),
        "key": done.key,
        "etag": done.etag,
        "size": done.size,
    })))
}

pub(crate) async fn abort(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    Path(upload_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (key, id, _) = session(&st, &route, &owner, &upload_id, &query)?;
    st.uploads.abort_multipart_upload(&key, &id).await?;
    Ok(Json(serde_json::json!({})))
}

/// `GET /s3/params`: a single-request upload for Uppy. Without a size
/// it is a POST form bounded by the policy's `content-length-range`;
/// with one, a PUT with that exact `Content-Length` signed.
pub(crate) async fn params(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let content_type = query
        .get("type")
        .ok_or_else(|| bad_request("the type query parameter is required".into()))?;
    let size = size_of(
        query
            .get("size")
            .map(|s| serde_json::Value::String(s.clone()))
            .as_ref(),
    )?;
    route.policy.check_content_type(content_type)?;
    match size {
        Some(size) => route.policy.check_size(size)?,
        None if !route.post_forms() => return Err(post_forms_disabled(&route)),
        None => {}
    }
    if size.is_none() {
        st.require_post_forms()?;
    }
    let key = route.new_key(&owner, content_type)?;
    // Everything that can fail before the hook runs (it may record the
    // upload in the app's database).
    let signer = st.upload_signer();
    let form = match size {
        Some(size) => {
            signer.check_ready(route.policy.expiry()).await?;
            Form::Put(size)
        }
        None => Form::Post(st.presigner.presigner(route.policy.expiry()).await?),
    };
    // Uppy sends the file's meta as `metadata[name]=value`.
    let input: serde_json::Map<String, serde_json::Value> = query
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), serde_json::Value::String(v.clone())))
        })
        .collect();
    let metadata = route
        .authorize_upload(HookRequest {
            route: route.name().to_owned(),
            owner: owner.clone(),
            content_type: content_type.clone(),
            size,
            filename: query.get("filename").cloned(),
            input: serde_json::Value::Object(input),
        })
        .await?;
    let now = SystemTime::now();
    let size = match form {
        Form::Put(size) => size,
        Form::Post(presigner) => {
            return post_params(&st, &route, &presigner, &key, content_type, metadata, now);
        }
    };
    let p = signer
        .sign_put(&PutToSign {
            key: &key,
            content_type: &upload_core::policy::essence(content_type),
            size,
            filename: query.get("filename").map(String::as_str),
            metadata: &metadata,
            expires_in: route.policy.expiry(),
            now,
        })
        .await?;
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Put, 1);
    // Content-Length is the browser's to set; the others are sent as signed.
    let headers: BTreeMap<&str, &str> = p
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(Json(serde_json::json!({
        "method": "PUT",
        "url": p.url,
        "fields": {},
        "headers": headers,
        "key": key.as_str(),
    })))
}

/// What `GET /s3/params` hands out.
enum Form {
    /// A PUT of this many bytes, from the upload signer.
    Put(u64),
    /// A POST form, bounded by the policy's maximum size.
    Post(Arc<upload_presign::Presigner>),
}

/// The POST form of `GET /s3/params` without a size.
fn post_params(
    st: &AppState,
    route: &UploadRoute,
    presigner: &upload_presign::Presigner,
    key: &ObjectKey,
    content_type: &str,
    metadata: UploadMetadata,
    now: SystemTime,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bucket = st.uploads.bucket();
    // No declared size: the form is bounded by the policy's maximum.
    let p = presign_post_upload_with_metadata(
        presigner,
        &route.policy,
        bucket,
        key,
        content_type,
        None,
        &metadata.into_iter().collect::<Vec<_>>(),
        now,
    )?;
    crate::metrics::issued(route.name(), crate::metrics::UrlKind::Post, 1);
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
