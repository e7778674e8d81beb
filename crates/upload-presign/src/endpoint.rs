//! A local upload endpoint: an HTTP server that accepts presigned requests
//! and writes into any [`Storage`] / [`MultipartStore`].
//!
//! It speaks the subset of the S3 REST API that presigned URLs use, in path
//! style (`/{bucket}/{key}`): PutObject (with `If-None-Match: *` for
//! create-only), UploadPart (`?partNumber=N&uploadId=ID`), GetObject and
//! HeadObject (with signed `response-content-type` /
//! `response-content-disposition` overrides), and browser form uploads
//! (presigned POST to `/{bucket}/`, see [`crate::post`]: 204, 200 or 201 with
//! a `PostResponse` body; 400 `EntityTooLarge`/`EntityTooSmall` outside the
//! policy's `content-length-range`, 403 for a bad signature, an expired
//! policy or a failed condition). Every request must carry a valid
//! presigned query or POST policy; refusals are S3-style XML errors:
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Error><Code>AccessDenied</Code><Message>Request has expired</Message>
//! <Resource>/uploads/a.jpg</Resource><RequestId>...</RequestId></Error>
//! ```
//!
//! **Verified before read.** The signature, then the unsigned headers,
//! the route (an UploadPart to a bucket without multipart is 501 at once)
//! and the declared `Content-Length` (411 without one, 400 `EntityTooLarge`
//! above the limit) are checked from the request head, before any body
//! byte is read, so a refused request costs no body and stores nothing; a
//! POST form's policy is verified from the fields before its file is read.
//! A PutObject or UploadPart carrying `x-amz-checksum-crc32c` or
//! `x-amz-checksum-sha256` is checked against its body and refused with
//! 400 `BadDigest` when they differ.
//!
//! **Bounded memory.** A body is read chunk by chunk into one buffer that
//! never holds more than the request's verified `Content-Length` (for a
//! POST, than the policy's `content-length-range` maximum: counting stops
//! at the first byte over it with 400 `EntityTooLarge`), then handed to
//! the [`Storage`], whose `put` takes whole bodies. Request heads must
//! arrive within [`ServerTimeouts::header_read`] and bodies may not pause
//! longer than [`ServerTimeouts::body_idle`] (400 `RequestTimeout`), when
//! served by [`LocalEndpoint::bind`].
//!
//! **Only what was signed.** As on S3, a presigned request carrying an
//! `x-amz-*` header that is not among its signed headers (other than
//! `x-amz-content-sha256`) is refused with 403 `AccessDenied` ("There were
//! headers present in the request which were not signed", naming them in
//! `HeadersNotSigned`). `Content-Type` and `Cache-Control` are stored only
//! when signed; an unsigned one is ignored. `If-None-Match: *` is honoured
//! signed or not (412 `PreconditionFailed` when the key exists), and the
//! create-only URLs of [`crate::presign_upload`] sign it, so a replayed URL
//! never replaces an original. POST forms cannot carry it: a replayed form
//! replaces the object, as on S3 (see [`crate::post`]).
//!
//! **CORS**, for pages on another origin: a bucket given a
//! [`CorsConfig`] ([`LocalEndpoint::with_cors`]) answers preflights
//! (`OPTIONS`, no signature needed) and adds the CORS headers to the answer
//! of every request from an allowed origin, exposing `ETag` and `Location`,
//! as S3 does ([`CorsConfig::preflight`], [`CorsConfig::response_headers`]).
//! A bucket without one refuses preflights with 403 `AccessForbidden`
//! ("CORS is not enabled for this bucket"), so browsers on other origins
//! cannot use it, as on S3.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use percent_encoding::percent_decode_str;
use tokio::sync::oneshot;
use upload_core::cors::{CorsConfig, CorsRefusal};
use upload_core::{
    ChecksumAlgorithm, MultipartStore, ObjectKey, ObjectMeta, PartChecksum, PutOptions, Storage,
};
use url::Url;

use crate::server::{ServerTimeouts, is_body_timeout};
use crate::sigv4::encode_path;
use crate::verify::{IncomingRequest, Verifier};

/// Default largest object accepted in one request: 5 GiB, the S3 limit for
/// a single PUT and for one part.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The most a body buffer reserves before bytes arrive: larger bodies grow
/// it as they come, so a declared size costs no memory until it is sent.
const INITIAL_BUFFER: u64 = 8 * 1024 * 1024;

/// Most form fields before the file, and the largest one, in bytes.
const MAX_FORM_FIELDS: usize = 64;
const MAX_FORM_FIELD_BYTES: usize = 20 * 1024;

/// One bucket served by the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointBucket {
    /// Where PutObject writes and GetObject reads.
    pub storage: Arc<dyn Storage>,
    /// Where UploadPart writes; `None` refuses part uploads.
    pub multipart: Option<Arc<dyn MultipartStore>>,
}

/// The endpoint's configuration; start it with [`LocalEndpoint::bind`] or
/// mount [`LocalEndpoint::router`] in your own server.
#[derive(Debug)]
pub struct LocalEndpoint {
    verifier: Verifier,
    buckets: HashMap<String, EndpointBucket>,
    cors: HashMap<String, CorsConfig>,
    max_object_bytes: u64,
    timeouts: ServerTimeouts,
}

#[derive(Debug)]
struct Inner {
    verifier: Verifier,
    buckets: HashMap<String, EndpointBucket>,
    cors: HashMap<String, CorsConfig>,
    max_object_bytes: u64,
}

impl LocalEndpoint {
    /// An endpoint accepting URLs that `verifier` accepts, serving no bucket
    /// yet.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            buckets: HashMap::new(),
            cors: HashMap::new(),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            timeouts: ServerTimeouts::default(),
        }
    }

    /// Sets the header-read and body-idle timeouts [`LocalEndpoint::bind`]
    /// serves with (default [`ServerTimeouts::default`]: 30 s and 20 s).
    pub fn with_timeouts(mut self, timeouts: ServerTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Gives `bucket` a CORS configuration, as `PutBucketCors` does on S3:
    /// preflights from its allowed origins get 200 with the rule's headers,
    /// and its answers to them carry `Access-Control-Allow-Origin` and
    /// `Access-Control-Expose-Headers: ETag, Location, x-amz-version-id`.
    /// Without it the bucket refuses preflights (403).
    pub fn with_cors(mut self, bucket: impl Into<String>, cors: CorsConfig) -> Self {
        self.cors.insert(bucket.into(), cors);
        self
    }

    /// Serves `storage` under its bucket name, with part uploads going to
    /// `multipart` when given.
    pub fn with_bucket(
        mut self,
        storage: Arc<dyn Storage>,
        multipart: Option<Arc<dyn MultipartStore>>,
    ) -> Self {
        self.buckets.insert(
            storage.bucket().to_owned(),
            EndpointBucket { storage, multipart },
        );
        self
    }

    /// Sets the largest body accepted per request, in bytes (default 5 GiB,
    /// S3's largest PUT). Larger bodies get 400 `EntityTooLarge` and store
    /// nothing. The endpoint holds a body in memory up to its declared
    /// length before storing it (the stores take whole bodies), so set this
    /// to your upload policy's maximum: a part URL that pins no size (Uppy's)
    /// otherwise lets a client send up to this much per request.
    pub fn with_max_object_bytes(mut self, bytes: u64) -> Self {
        self.max_object_bytes = bytes;
        self
    }

    /// The endpoint as an axum router (one fallback handler for every
    /// path). It takes bodies of any size the requests are allowed (axum's
    /// default 2 MB limit is off); mounted in another server, the
    /// timeouts are that server's (see [`crate::server::serve`]).
    pub fn router(self) -> Router {
        Router::new()
            .fallback(handle)
            .with_state(Arc::new(Inner {
                verifier: self.verifier,
                buckets: self.buckets,
                cors: self.cors,
                max_object_bytes: self.max_object_bytes,
            }))
            .layer(DefaultBodyLimit::disable())
    }

    /// Binds `addr` (use `127.0.0.1:0` for any free port) and serves until
    /// [`RunningEndpoint::shutdown`], with the endpoint's
    /// [`ServerTimeouts`].
    ///
    /// # Errors
    /// The bind error.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<RunningEndpoint> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let timeouts = self.timeouts;
        let router = self.router();
        let task = tokio::spawn(async move {
            crate::server::serve(listener, router, timeouts, async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(RunningEndpoint {
            local_addr,
            shutdown: Some(tx),
            task,
        })
    }
}

/// A running endpoint. Dropping it stops the server too (less gracefully).
#[derive(Debug)]
pub struct RunningEndpoint {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningEndpoint {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://{addr}`, the endpoint URL to give a [`crate::Presigner`].
    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}", self.local_addr)).expect("socket address URL")
    }

    /// Stops accepting connections, finishes in-flight requests and waits.
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        if self.shutdown.is_some() {
            self.task.abort();
        }
    }
}

/// An S3-style error response.
struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
    resource: String,
    /// Extra elements S3 adds for some codes (e.g. `HeadersNotSigned`).
    extra: Vec<(&'static str, String)>,
}

impl S3Error {
    fn new(status: u16, code: &'static str, message: impl Into<String>, resource: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            resource: resource.to_owned(),
            extra: Vec::new(),
        }
    }

    fn with_element(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// A body that failed while it was read: S3's `RequestTimeout` when it
    /// stopped arriving, else `IncompleteBody`.
    fn body_failed(e: &(dyn std::error::Error + 'static), resource: &str) -> Self {
        if is_body_timeout(e) {
            Self::new(
                400,
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
                resource,
            )
        } else {
            Self::new(
                400,
                "IncompleteBody",
                format!("reading the body failed: {e}"),
                resource,
            )
        }
    }

    fn from_core(e: &upload_core::Error, resource: &str) -> Self {
        use upload_core::Error as E;
        let (status, code) = match e {
            E::NotFound { .. } => (404, "NoSuchKey"),
            E::AlreadyExists { .. } => (412, "PreconditionFailed"),
            E::InvalidRange { .. } => (416, "InvalidRange"),
            E::NoSuchUpload { .. } => (404, "NoSuchUpload"),
            E::InvalidPart { .. } => (400, "InvalidPart"),
            E::InvalidPartOrder => (400, "InvalidPartOrder"),
            E::EntityTooSmall { .. } => (400, "EntityTooSmall"),
            E::BadDigest { .. } => (400, "BadDigest"),
            E::TooLarge { .. } => (400, "EntityTooLarge"),
            E::Unavailable { .. } => (503, "ServiceUnavailable"),
            _ => (400, "InvalidArgument"),
        };
        Self::new(status, code, e.to_string(), resource)
    }
}

/// The `x-amz-checksum-crc32c` or `x-amz-checksum-sha256` header of a
/// PutObject or UploadPart, verified against the body as S3 does (other
/// algorithms are refused as not implemented; two at once is invalid).
fn body_checksum(headers: &HeaderMap, resource: &str) -> Result<Option<PartChecksum>, S3Error> {
    let mut found = None;
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("x-amz-checksum-") || name == "x-amz-checksum-type" {
            continue;
        }
        let algorithm = match name {
            "x-amz-checksum-crc32c" => ChecksumAlgorithm::Crc32c,
            "x-amz-checksum-sha256" => ChecksumAlgorithm::Sha256,
            _ => {
                return Err(S3Error::new(
                    501,
                    "NotImplemented",
                    format!("{name} is not supported here; use CRC32C or SHA256"),
                    resource,
                ));
            }
        };
        if found.is_some() {
            return Err(S3Error::new(
                400,
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header",
                resource,
            ));
        }
        let value = value.to_str().map_err(|_| {
            S3Error::new(
                400,
                "InvalidRequest",
                format!("{name} is not ASCII"),
                resource,
            )
        })?;
        found = Some(PartChecksum {
            algorithm,
            value: value.to_owned(),
        });
    }
    Ok(found)
}

impl IntoResponse for S3Error {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let mut extra = String::new();
        for (name, value) in &self.extra {
            extra.push_str(&format!(
                "<{name}>{}</{name}>",
                quick_xml::escape::escape(value.as_str())
            ));
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{extra}<Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code,
            quick_xml::escape::escape(self.message.as_str()),
            quick_xml::escape::escape(self.resource.as_str()),
            request_id
        );
        tracing::debug!(status = %self.status, code = self.code, message = %self.message, resource = %self.resource, "refused");
        let mut r = (self.status, body).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amz-request-id", v);
        }
        r
    }
}

async fn handle(State(st): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let bucket_enc = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let bucket = percent_decode_str(bucket_enc)
        .decode_utf8_lossy()
        .into_owned();
    let origin = header_str(req.headers(), header::ORIGIN);
    if req.method() == axum::http::Method::OPTIONS {
        let h = req.headers();
        return preflight(
            &st,
            &bucket,
            origin.as_deref(),
            header_str(h, header::ACCESS_CONTROL_REQUEST_METHOD).as_deref(),
            header_str(h, header::ACCESS_CONTROL_REQUEST_HEADERS).as_deref(),
        )
        .unwrap_or_else(|refusal| {
            S3Error::new(refusal.status(), refusal.code(), refusal.to_string(), &path)
                .into_response()
        });
    }
    let method = req.method().as_str().to_owned();
    let mut r = match handle_inner(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(cors) = st.cors.get(&bucket) {
        insert_headers(
            r.headers_mut(),
            cors.response_headers(origin.as_deref(), &method),
        );
    }
    r
}

/// A preflight: 200 with the bucket rule's headers, or S3's refusal.
fn preflight(
    st: &Inner,
    bucket: &str,
    origin: Option<&str>,
    method: Option<&str>,
    request_headers: Option<&str>,
) -> Result<Response, CorsRefusal> {
    // S3's order: the Origin first, then the bucket, then its rule.
    let origin = origin.ok_or(CorsRefusal::MissingOrigin)?;
    if !st.buckets.contains_key(bucket) {
        return Err(CorsRefusal::NoSuchBucket);
    }
    let cors = st.cors.get(bucket).ok_or(CorsRefusal::NotEnabled)?;
    let headers = cors.preflight(Some(origin), method, request_headers)?;
    let mut r = StatusCode::OK.into_response();
    insert_headers(r.headers_mut(), headers);
    Ok(r)
}

fn insert_headers(h: &mut HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

async fn handle_inner(st: &Inner, req: Request) -> Result<Response, S3Error> {
    if req.method() == axum::http::Method::POST {
        return handle_post(st, req).await;
    }
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_owned();
    let resource = raw_path.as_str();
    let query = parts.uri.query().unwrap_or("");
    let method = parts.method.as_str().to_owned();

    let trimmed = raw_path.trim_start_matches('/');
    let (bucket_enc, key_enc) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let bucket_name = percent_decode_str(bucket_enc)
        .decode_utf8_lossy()
        .into_owned();
    let bucket = st.buckets.get(&bucket_name).ok_or_else(|| {
        S3Error::new(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
            resource,
        )
    })?;
    let key_str = percent_decode_str(key_enc)
        .decode_utf8()
        .map_err(|_| S3Error::new(400, "InvalidURI", "key is not UTF-8", resource))?;
    let key = ObjectKey::new(key_str.as_ref())
        .map_err(|e| S3Error::new(400, "InvalidArgument", e.to_string(), resource))?;

    let header_pairs: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let verified = st
        .verifier
        .verify(
            &IncomingRequest {
                method: &method,
                path: &raw_path,
                query,
                headers: &header_pairs,
            },
            SystemTime::now(),
        )
        .map_err(|e| {
            let msg = match &e {
                crate::Error::Expired { .. } => "Request has expired".to_owned(),
                other => other.to_string(),
            };
            S3Error::new(e.http_status(), e.s3_code(), msg, resource)
        })?;

    refuse_unsigned_amz_headers(&parts.headers, &verified.signed_headers, resource)?;

    match method.as_str() {
        "PUT" => {
            // The route first: an UploadPart needs a bucket with multipart
            // and a part number, all known before the body is read.
            let part = match (verified.param("uploadId"), verified.param("partNumber")) {
                (Some(upload_id), Some(n)) => {
                    let mp = bucket.multipart.as_ref().ok_or_else(|| {
                        S3Error::new(
                            501,
                            "NotImplemented",
                            "multipart uploads are not enabled for this bucket",
                            resource,
                        )
                    })?;
                    let n: u32 = n.parse().map_err(|_| {
                        S3Error::new(
                            400,
                            "InvalidArgument",
                            "partNumber must be an integer 1..=10000",
                            resource,
                        )
                    })?;
                    Some((mp, upload_id, n))
                }
                (None, None) => None,
                _ => {
                    return Err(S3Error::new(
                        400,
                        "InvalidArgument",
                        "partNumber and uploadId go together",
                        resource,
                    ));
                }
            };
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let declared = match declared {
                Some(n) if n > st.max_object_bytes => {
                    return Err(S3Error::new(
                        400,
                        "EntityTooLarge",
                        format!("{n} bytes exceeds the maximum of {}", st.max_object_bytes),
                        resource,
                    )
                    .with_element("ProposedSize", n.to_string())
                    .with_element("MaxSizeAllowed", st.max_object_bytes.to_string()));
                }
                None => {
                    return Err(S3Error::new(
                        411,
                        "MissingContentLength",
                        "You must provide the Content-Length HTTP header.",
                        resource,
                    ));
                }
                Some(n) => n,
            };
            // Refused before the body is read, like a bad signature.
            let checksum = body_checksum(&parts.headers, resource)?;
            let body = read_body(body, declared, resource).await?;
            let etag = match part {
                Some((mp, upload_id, n)) => {
                    match &checksum {
                        Some(c) => mp.upload_part_checked(&key, upload_id, n, body, c).await,
                        None => mp.upload_part(&key, upload_id, n, body).await,
                    }
                    .map_err(|e| S3Error::from_core(&e, resource))?
                    .etag
                }
                None => {
                    if let Some(c) = &checksum
                        && !c.matches(&body)
                    {
                        return Err(S3Error::new(
                            400,
                            "BadDigest",
                            format!(
                                "the {} you specified did not match the body",
                                c.algorithm.as_str()
                            ),
                            resource,
                        ));
                    }
                    // Only what was signed is stored.
                    let signed = |name: header::HeaderName| {
                        verified
                            .signed_headers
                            .iter()
                            .any(|h| h == name.as_str())
                            .then(|| header_str(&parts.headers, name))
                            .flatten()
                    };
                    let mut opts = PutOptions::default();
                    opts.content_type = signed(header::CONTENT_TYPE);
                    opts.cache_control = signed(header::CACHE_CONTROL);
                    for name in &verified.signed_headers {
                        if let Some(meta) = name.strip_prefix("x-amz-meta-")
                            && let Some(v) = parts
                                .headers
                                .get(name.as_str())
                                .and_then(|v| v.to_str().ok())
                        {
                            opts.metadata.insert(meta.to_owned(), v.to_owned());
                        }
                    }
                    opts.create_only =
                        header_str(&parts.headers, header::IF_NONE_MATCH).as_deref() == Some("*");
                    bucket
                        .storage
                        .put(&key, body, opts)
                        .await
                        .map_err(|e| S3Error::from_core(&e, resource))?
                        .etag
                }
            };
            let mut r = StatusCode::OK.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                r.headers_mut().insert(header::ETAG, v);
            }
            Ok(r)
        }
        "GET" | "HEAD" => {
            let got = bucket
                .storage
                .get(&key)
                .await
                .map_err(|e| S3Error::from_core(&e, resource))?;
            let mut r = if method == "GET" {
                Response::new(Body::from(got.body))
            } else {
                Response::new(Body::empty())
            };
            set_object_headers(r.headers_mut(), &got.meta);
            let h = r.headers_mut();
            // User content is never sniffed into something executable.
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            if let Some(ct) = verified
                .param("response-content-type")
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                h.insert(header::CONTENT_TYPE, ct);
            }
            if let Some(cd) = verified
                .param("response-content-disposition")
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                h.insert(header::CONTENT_DISPOSITION, cd);
            }
            Ok(r)
        }
        _ => Err(S3Error::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            resource,
        )),
    }
}

/// S3 refuses a presigned request carrying `x-amz-*` headers that are not
/// signed (bar `x-amz-content-sha256`): they could change what is stored
/// (metadata, tags, encryption, checksums) without the signer's consent.
fn refuse_unsigned_amz_headers(
    headers: &HeaderMap,
    signed: &[String],
    resource: &str,
) -> Result<(), S3Error> {
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(header::HeaderName::as_str)
        .filter(|n| {
            n.starts_with("x-amz-")
                && *n != "x-amz-content-sha256"
                && !signed.iter().any(|s| s == n)
        })
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.dedup();
    Err(S3Error::new(
        403,
        "AccessDenied",
        "There were headers present in the request which were not signed",
        resource,
    )
    .with_element("HeadersNotSigned", unsigned.join(", ")))
}

/// Reads a body of `declared` bytes (hyper ends it there, and fails it
/// when it ends early) into one buffer, chunk by chunk: it reserves at most
/// [`INITIAL_BUFFER`] up front and grows only as bytes arrive.
async fn read_body(body: Body, declared: u64, resource: &str) -> Result<bytes::Bytes, S3Error> {
    let mut buf = bytes::BytesMut::with_capacity(declared.min(INITIAL_BUFFER) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| S3Error::body_failed(&e, resource))?;
        if (buf.len() + chunk.len()) as u64 > declared {
            return Err(S3Error::new(
                400,
                "IncompleteBody",
                "the body is longer than its Content-Length",
                resource,
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    if (buf.len() as u64) < declared {
        return Err(S3Error::new(
            400,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
            resource,
        ));
    }
    Ok(buf.freeze())
}

/// A browser form upload (presigned POST): `POST /{bucket}/` with a
/// `multipart/form-data` body whose fields come before the file. The
/// policy is verified from the fields ([`Verifier::verify_post_form`])
/// before any byte of the file is read; the file's bytes are then counted
/// against the policy's `content-length-range` as they stream in, so a
/// file over it is refused at its first byte too many.
///
/// Not create-only: S3 forms cannot carry `If-None-Match`, and a replayed
/// form replaces the object here as on S3.
async fn handle_post(st: &Inner, req: Request) -> Result<Response, S3Error> {
    use axum::extract::FromRequest;
    let raw_path = req.uri().path().to_owned();
    let host = header_str(req.headers(), header::HOST);
    let resource = raw_path.as_str();
    let bucket_name = percent_decode_str(raw_path.trim_start_matches('/').trim_end_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    if bucket_name.contains('/') || req.uri().query().is_some_and(|q| !q.is_empty()) {
        return Err(S3Error::new(
            405,
            "MethodNotAllowed",
            "POST uploads go to the bucket URL, without a key or query",
            resource,
        ));
    }
    let bucket = st.buckets.get(&bucket_name).ok_or_else(|| {
        S3Error::new(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
            resource,
        )
    })?;
    let malformed = |m: String| S3Error::new(400, "MalformedPOSTRequest", m, resource);
    let form_failed = |e: axum::extract::multipart::MultipartError, what: &str| {
        if is_body_timeout(&e) {
            S3Error::body_failed(&e, resource)
        } else {
            malformed(format!("reading {what}: {e}"))
        }
    };
    let mut form = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| {
            malformed(format!(
                "The body of your POST request is not well-formed multipart/form-data: {e}"
            ))
        })?;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut stored: Option<(crate::post::VerifiedPost, bytes::Bytes)> = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| form_failed(e, "the form"))?
    {
        let name = field.name().unwrap_or("").to_owned();
        if name.eq_ignore_ascii_case("file") {
            // Everything but the size is checked before the file is read.
            let verified = st
                .verifier
                .verify_post_form(&bucket_name, &fields, SystemTime::now())
                .map_err(|e| S3Error::new(e.status, e.code, e.message, resource))?;
            let max = (*verified.content_length_range.end()).min(st.max_object_bytes);
            let mut buf = bytes::BytesMut::with_capacity(max.min(INITIAL_BUFFER) as usize);
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| form_failed(e, "the file"))?
            {
                let size = (buf.len() + chunk.len()) as u64;
                if size > max {
                    return Err(S3Error::new(
                        400,
                        "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed size",
                        resource,
                    )
                    .with_element("MaxSizeAllowed", max.to_string()));
                }
                buf.extend_from_slice(&chunk);
            }
            verified.check_size(buf.len() as u64).map_err(|e| {
                let min = verified.content_length_range.start().to_string();
                let refused = S3Error::new(e.status, e.code, e.message, resource);
                if e.code == "EntityTooSmall" {
                    refused.with_element("MinSizeAllowed", min)
                } else {
                    refused
                }
            })?;
            // Fields after the file are ignored, as in S3.
            stored = Some((verified, buf.freeze()));
            break;
        }
        if fields.len() >= MAX_FORM_FIELDS {
            return Err(malformed(format!(
                "more than {MAX_FORM_FIELDS} form fields"
            )));
        }
        let mut value = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| form_failed(e, &format!("field {name}")))?
        {
            if value.len() + chunk.len() > MAX_FORM_FIELD_BYTES {
                return Err(malformed(format!("form field {name} is over 20 KiB")));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| malformed(format!("form field {name} is not UTF-8")))?;
        fields.push((name, value));
    }
    let (verified, file) = stored.ok_or_else(|| {
        S3Error::new(
            400,
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
            resource,
        )
    })?;
    let mut opts = PutOptions::default();
    opts.content_type = verified.content_type.clone();
    opts.cache_control = verified.cache_control.clone();
    opts.metadata = verified.metadata.iter().cloned().collect();
    let meta = bucket
        .storage
        .put(&verified.key, file, opts)
        .await
        .map_err(|e| S3Error::from_core(&e, resource))?;
    let etag = format!("\"{}\"", meta.etag);
    let status =
        StatusCode::from_u16(verified.success_action_status).unwrap_or(StatusCode::NO_CONTENT);
    let mut r = if status == StatusCode::CREATED {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>/{}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
            quick_xml::escape::escape(bucket_name.as_str()),
            quick_xml::escape::escape(verified.key.as_str()),
            quick_xml::escape::escape(bucket_name.as_str()),
            quick_xml::escape::escape(verified.key.as_str()),
            quick_xml::escape::escape(etag.as_str()),
        );
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    } else {
        status.into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    // S3 answers every successful POST with the object's URL.
    if let Some(host) = host {
        let location = format!(
            "http://{host}/{}/{}",
            encode_path(&bucket_name),
            encode_path(verified.key.as_str())
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(r)
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn set_object_headers(h: &mut HeaderMap, meta: &ObjectMeta) {
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.etag)) {
        h.insert(header::ETAG, v);
    }
    let ct = meta
        .content_type
        .as_deref()
        .unwrap_or("binary/octet-stream");
    if let Ok(v) = HeaderValue::from_str(ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = meta
        .cache_control
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        h.insert(header::CACHE_CONTROL, v);
    }
    for (name, value) in &meta.metadata {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::try_from(format!("x-amz-meta-{name}")),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}
