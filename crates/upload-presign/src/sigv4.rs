//! AWS Signature Version 4 query signing ("presigned URLs"), sans-IO.
//!
//! Follows the AWS "Authenticating Requests: Using Query Parameters
//! (AWS Signature Version 4)" page: the canonical request is signed with
//! `UNSIGNED-PAYLOAD`, the signature goes in `X-Amz-Signature`. Signing is a
//! pure function of its inputs and the current time passed in, so results
//! are deterministic and testable against the AWS examples.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use upload_core::policy::check_expiry;
use upload_core::{ObjectKey, UploadPolicy};
use url::Url;

use crate::credentials::Credentials;
use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;
pub(crate) type HmacSha256Pub = HmacSha256;

/// The SigV4 algorithm name.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Query parameters the signer sets; a request may not carry them.
const SIGNER_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];
/// The payload hash used in presigned URLs.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As [`STRICT`], but `/` stays (object key paths).
const PATH: &AsciiSet = &STRICT.remove(b'/');

/// HTTP methods a presigned URL can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GetObject.
    Get,
    /// HeadObject.
    Head,
    /// PutObject and UploadPart.
    Put,
    /// DeleteObject.
    Delete,
}

impl Method {
    /// The method name, e.g. `PUT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// How the bucket appears in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressingStyle {
    /// `https://endpoint/bucket/key`: what local and most S3-compatible
    /// servers need.
    #[default]
    Path,
    /// `https://bucket.endpoint/key`: the AWS default.
    VirtualHosted,
}

/// What to presign. Build with [`PresignRequest::new`] and the `with_*`
/// methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresignRequest {
    /// HTTP method.
    pub method: Method,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: ObjectKey,
    /// URL validity, 1 s..=7 days (whole seconds).
    pub expires_in: Duration,
    /// Headers the client must send with exactly these values; all are
    /// signed (names are lowercased).
    pub headers: Vec<(String, String)>,
    /// Extra query parameters, signed (e.g. `partNumber`, `uploadId`,
    /// `response-content-disposition`).
    pub query: Vec<(String, String)>,
}

impl PresignRequest {
    /// A request for `method` on `bucket`/`key`, valid for `expires_in`.
    pub fn new(method: Method, bucket: &str, key: &ObjectKey, expires_in: Duration) -> Self {
        Self {
            method,
            bucket: bucket.to_owned(),
            key: key.clone(),
            expires_in,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    /// Adds a header the client must send with this exact value.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Adds a signed query parameter.
    pub fn with_query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }
}

/// A presigned request: the URL and the headers the client must send
/// (their values are part of the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// HTTP method.
    pub method: Method,
    /// The full URL, carrying `X-Amz-*` query parameters.
    pub url: Url,
    /// Headers to send, lowercase names (not including `host`).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: SystemTime,
}

/// A presigned request with its URL as text (see
/// [`Presigner::presign_url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    /// HTTP method.
    pub method: Method,
    /// The full URL, carrying `X-Amz-*` query parameters.
    pub url: String,
    /// Headers to send, lowercase names (not including `host`), sorted.
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: SystemTime,
}

impl PresignedUrl {
    /// The same request with the URL parsed.
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] if the URL does not parse (it always
    /// does for URLs made by [`Presigner::presign_url`]).
    pub fn into_request(self) -> Result<PresignedRequest> {
        let url = Url::parse(&self.url).map_err(|_| Error::InvalidEndpoint {
            url: self.url.chars().take(200).collect(),
            reason: "the presigned URL does not parse",
        })?;
        Ok(PresignedRequest {
            method: self.method,
            url,
            headers: self.headers,
            expires_at: self.expires_at,
        })
    }
}

/// Signs presigned URLs for one endpoint, region and access key.
///
/// The signing key is derived once per UTC date and cached.
pub struct Presigner {
    endpoint: Url,
    region: String,
    style: AddressingStyle,
    credentials: Credentials,
    /// Signing key of one UTC date, and an HMAC already keyed with it (its
    /// inner and outer pads hashed once, cloned per signature).
    key_cache: Mutex<Option<(String, [u8; 32], HmacSha256)>>,
}

/// Shows the endpoint, region, style and credentials (secret and token
/// redacted), never the cached signing key.
impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("style", &self.style)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Presigner {
    /// A presigner for `endpoint` (e.g. `http://127.0.0.1:9000` or
    /// `https://s3.eu-west-1.amazonaws.com`), `region` and `credentials`,
    /// using path-style URLs.
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] if the endpoint is not http(s), has no
    /// host, or carries a query or fragment.
    pub fn new(endpoint: Url, region: &str, credentials: Credentials) -> Result<Self> {
        check_endpoint(&endpoint, region)?;
        Ok(Self {
            endpoint,
            region: region.to_owned(),
            style: AddressingStyle::Path,
            credentials,
            key_cache: Mutex::new(None),
        })
    }

    /// Sets the addressing style.
    pub fn with_style(mut self, style: AddressingStyle) -> Self {
        self.style = style;
        self
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Presigns `req` as of `now`.
    ///
    /// # Errors
    /// [`Error::Policy`] with `ExpiryOutOfRange` outside 1 s..=7 days;
    /// [`Error::Policy`] with `InvalidBucketName` for a bucket S3 would
    /// refuse; [`Error::InvalidHeader`] for a header name that is not a
    /// token, given twice, a value with control characters, or `host` /
    /// `authorization` / `x-amz-date` (set by the signer itself);
    /// [`Error::InvalidQueryParameter`] for a signer-set `X-Amz-*` parameter
    /// or a name given twice; [`Error::InvalidEndpoint`] for a bucket that
    /// cannot be a host name in virtual-hosted style;
    /// [`Error::TimeOutOfRange`] for a time outside years 1970..=9999.
    pub fn presign(&self, req: &PresignRequest, now: SystemTime) -> Result<PresignedRequest> {
        self.presign_url(req, now)?.into_request()
    }

    /// As [`Presigner::presign`], with the URL as a `String`, ready to put
    /// into a JSON answer: it skips parsing the finished URL into a
    /// [`Url`] (a third of the signing time), which servers that hand URLs
    /// to clients as text do not need. The string is exactly
    /// `presign(..).url.as_str()`.
    ///
    /// # Errors
    /// As [`Presigner::presign`].
    pub fn presign_url(&self, req: &PresignRequest, now: SystemTime) -> Result<PresignedUrl> {
        check_expiry(req.expires_in)?;
        upload_core::storage::check_bucket_name(&req.bucket)?;
        let expires_at = now
            .checked_add(req.expires_in)
            .ok_or(Error::TimeOutOfRange)?;
        self.check_credentials_expiry(expires_at)?;
        for (i, (name, _)) in req.query.iter().enumerate() {
            let bad = |reason| Error::InvalidQueryParameter {
                name: name.clone(),
                reason,
            };
            if SIGNER_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                return Err(bad("set by the signer"));
            }
            if req.query[..i].iter().any(|(n, _)| n == name) {
                return Err(bad("given twice"));
            }
        }
        for (i, (name, value)) in req.headers.iter().enumerate() {
            if req.headers[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::InvalidHeader {
                    name: name.clone(),
                    reason: "given twice",
                });
            }
            let bad = |reason| Error::InvalidHeader {
                name: name.clone(),
                reason,
            };
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(bad("not a header name"));
            }
            if name == "host" || name == "authorization" || name.starts_with("x-amz-date") {
                return Err(bad("set by the signer"));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad("control character in value"));
            }
        }
        let (_, host, path_prefix) = self.host_and_prefix(&req.bucket)?;
        let key = req.key.as_str();
        let mut path = String::with_capacity(path_prefix.len() + 1 + key.len() + key.len() / 2);
        path.push_str(&path_prefix);
        path.push('/');
        push_encoded(&mut path, key, true);
        let (date, datetime) = amz_date_bytes(now).ok_or(Error::TimeOutOfRange)?;
        // Both are ASCII digits and 'T'/'Z' by construction.
        let date = std::str::from_utf8(&date).expect("ASCII");
        let datetime = std::str::from_utf8(&datetime).expect("ASCII");

        // Headers: trimmed values, `host` added, sorted by name.
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(req.headers.len() + 1);
        headers.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.trim())));
        headers.push(("host", host.as_str()));
        headers.sort_unstable();
        let mut signed_headers = String::with_capacity(headers.len() * 16);
        for (i, (n, _)) in headers.iter().enumerate() {
            if i > 0 {
                signed_headers.push(';');
            }
            signed_headers.push_str(n);
        }

        // Query parameters, encoded once, in the URL order aws-sdk-s3 writes
        // (the caller's, then the signer's; the token after the signature).
        let mut credential = String::with_capacity(self.credentials.access_key_id.len() + 48);
        credential.push_str(&self.credentials.access_key_id);
        credential.push('/');
        credential.push_str(date);
        credential.push('/');
        credential.push_str(&self.region);
        credential.push_str("/s3/aws4_request");
        let expires = req.expires_in.as_secs().to_string();
        let mut query: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(req.query.len() + 7);
        for (k, v) in &req.query {
            query.push((encode_cow(k), encode_cow(v)));
        }
        query.push((Cow::Borrowed("X-Amz-Algorithm"), Cow::Borrowed(ALGORITHM)));
        query.push((Cow::Borrowed("X-Amz-Credential"), encode_cow(&credential)));
        query.push((Cow::Borrowed("X-Amz-Date"), Cow::Borrowed(datetime)));
        query.push((Cow::Borrowed("X-Amz-Expires"), Cow::Owned(expires)));
        query.push((
            Cow::Borrowed("X-Amz-SignedHeaders"),
            encode_cow(&signed_headers),
        ));
        let signer_params = query.len();
        if let Some(token) = &self.credentials.session_token {
            query.push((Cow::Borrowed("X-Amz-Security-Token"), encode_cow(token)));
        }
        let mut sorted: Vec<&(Cow<'_, str>, Cow<'_, str>)> = query.iter().collect();
        sorted.sort_unstable();

        // The canonical request, streamed into SHA-256.
        let mut h = Sha256::new();
        h.update(req.method.as_str().as_bytes());
        h.update(b"\n");
        h.update(path.as_bytes());
        h.update(b"\n");
        for (i, (k, v)) in sorted.iter().enumerate() {
            if i > 0 {
                h.update(b"&");
            }
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
        }
        h.update(b"\n");
        for (n, v) in &headers {
            h.update(n.as_bytes());
            h.update(b":");
            for (i, word) in v.split_ascii_whitespace().enumerate() {
                if i > 0 {
                    h.update(b" ");
                }
                h.update(word.as_bytes());
            }
            h.update(b"\n");
        }
        h.update(b"\n");
        h.update(signed_headers.as_bytes());
        h.update(b"\n");
        h.update(UNSIGNED_PAYLOAD.as_bytes());
        let mut canonical_hash = [0u8; 64];
        hex::encode_to_slice(h.finalize(), &mut canonical_hash).expect("64 hex digits");

        // String to sign, HMAC with the cached signing key.
        let mut mac = self.signing_hmac(date);
        mac.update(ALGORITHM.as_bytes());
        mac.update(b"\n");
        mac.update(datetime.as_bytes());
        mac.update(b"\n");
        mac.update(&credential.as_bytes()[self.credentials.access_key_id.len() + 1..]);
        mac.update(b"\n");
        mac.update(&canonical_hash);
        let mut signature = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut signature).expect("64 hex digits");
        let signature = std::str::from_utf8(&signature).expect("hex is ASCII");

        // The URL, written once and parsed once.
        let mut url_str = String::with_capacity(host.len() + path.len() + 400);
        url_str.push_str(self.endpoint.scheme());
        url_str.push_str("://");
        url_str.push_str(&host);
        url_str.push_str(&path);
        url_str.push('?');
        for (k, v) in &query[..signer_params] {
            url_str.push_str(k);
            url_str.push('=');
            url_str.push_str(v);
            url_str.push('&');
        }
        url_str.push_str("X-Amz-Signature=");
        url_str.push_str(signature);
        if let Some((k, v)) = query.get(signer_params) {
            url_str.push('&');
            url_str.push_str(k);
            url_str.push('=');
            url_str.push_str(v);
        }
        let mut out_headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.trim().to_owned()))
            .collect();
        out_headers.sort();
        Ok(PresignedUrl {
            method: req.method,
            url: url_str,
            headers: out_headers,
            expires_at,
        })
    }

    /// Presigns a PUT of `key` with `Content-Type` (and, when given, the
    /// exact `Content-Length`) signed: a client that sends another type or
    /// size gets 403 `SignatureDoesNotMatch`.
    ///
    /// This is a plain PutObject, as aws-sdk-s3's `put_object` presigns it:
    /// it replaces an object already at `key`. Uploads of originals go
    /// through [`presign_upload`] or [`Presigner::presign_put_with`], which
    /// sign `If-None-Match: *` (create-only) by default.
    ///
    /// # Errors
    /// As [`Presigner::presign`].
    pub fn presign_put(
        &self,
        bucket: &str,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        let mut req = PresignRequest::new(Method::Put, bucket, key, expires_in)
            .with_header("content-type", content_type);
        if let Some(len) = content_length {
            req = req.with_header("content-length", len.to_string());
        }
        self.presign(&req, now)
    }

    /// Presigns a PUT of `key` with `Content-Type` and every header of
    /// `headers` signed (create-only `If-None-Match: *` unless turned off,
    /// size, disposition, cache control, metadata, tags, server-side
    /// encryption).
    ///
    /// # Errors
    /// As [`Presigner::presign`]; [`Error::InvalidHeader`] for a metadata
    /// name that is not a header token.
    pub fn presign_put_with(
        &self,
        bucket: &str,
        key: &ObjectKey,
        content_type: &str,
        headers: &crate::headers::PutHeaders,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        let mut req = PresignRequest::new(Method::Put, bucket, key, expires_in)
            .with_header("content-type", content_type);
        for (n, v) in headers.to_pairs() {
            req = req.with_header(&n, v);
        }
        self.presign(&req, now)
    }

    /// Presigns a GET for a private download: the response carries
    /// `Content-Disposition: attachment` with `filename` (see
    /// [`crate::headers::content_disposition`]) and, when given,
    /// `content_type`, through S3's signed `response-content-disposition`
    /// and `response-content-type` overrides; browsers then save the file
    /// instead of rendering it. (`X-Content-Type-Options: nosniff` cannot be
    /// asked for per request on S3: set it with a CDN response-headers
    /// policy; the local endpoint always sends it.)
    ///
    /// # Errors
    /// As [`Presigner::presign`].
    pub fn presign_download(
        &self,
        bucket: &str,
        key: &ObjectKey,
        filename: &str,
        content_type: Option<&str>,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        let mut req = PresignRequest::new(Method::Get, bucket, key, expires_in).with_query(
            "response-content-disposition",
            crate::headers::content_disposition(crate::headers::Disposition::Attachment, filename),
        );
        if let Some(ct) = content_type {
            req = req.with_query("response-content-type", ct);
        }
        self.presign(&req, now)
    }

    /// Presigns an UploadPart (PUT with `partNumber` and `uploadId`) that
    /// signs only `host`: a part of any size is accepted by storage (and
    /// checked only at completion). Prefer
    /// [`Presigner::presign_upload_part_with`] with the part's exact size
    /// when it is known.
    ///
    /// # Errors
    /// [`Error::Policy`] with `InvalidPartNumber` outside 1..=10000; as
    /// [`Presigner::presign`] otherwise.
    pub fn presign_upload_part(
        &self,
        bucket: &str,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        self.presign_upload_part_with(
            bucket,
            key,
            upload_id,
            part_number,
            &crate::headers::PartHeaders::default(),
            expires_in,
            now,
        )
    }

    /// Presigns an UploadPart with the headers of `headers` signed: the
    /// part's exact `Content-Length` (a part of another size gets 403
    /// `SignatureDoesNotMatch` from storage) and its checksum header.
    ///
    /// # Errors
    /// As [`Presigner::presign_upload_part`].
    #[allow(clippy::too_many_arguments)]
    pub fn presign_upload_part_with(
        &self,
        bucket: &str,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        headers: &crate::headers::PartHeaders,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        upload_core::multipart::check_part_number(part_number)?;
        let mut req = PresignRequest::new(Method::Put, bucket, key, expires_in)
            .with_query("partNumber", part_number.to_string())
            .with_query("uploadId", upload_id);
        for (n, v) in headers.to_pairs() {
            req = req.with_header(&n, v);
        }
        self.presign(&req, now)
    }

    /// Presigns a GET, for serving a private object.
    ///
    /// # Errors
    /// As [`Presigner::presign`].
    pub fn presign_get(
        &self,
        bucket: &str,
        key: &ObjectKey,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest> {
        self.presign(
            &PresignRequest::new(Method::Get, bucket, key, expires_in),
            now,
        )
    }

    /// `(host name, Host header value, path prefix)` for `bucket`.
    fn host_and_prefix(&self, bucket: &str) -> Result<(String, String, String)> {
        let host = self.endpoint.host_str().unwrap_or_default();
        let port = self.endpoint.port();
        let base = self.endpoint.path().trim_end_matches('/');
        let with_port = |mut h: String| {
            if let Some(p) = port {
                h.push(':');
                h.push_str(&p.to_string());
            }
            h
        };
        Ok(match self.style {
            AddressingStyle::Path => {
                let mut prefix = String::with_capacity(base.len() + 1 + bucket.len());
                prefix.push_str(base);
                prefix.push('/');
                push_encoded(&mut prefix, bucket, false);
                (host.to_owned(), with_port(host.to_owned()), prefix)
            }
            AddressingStyle::VirtualHosted => {
                if bucket.is_empty()
                    || !bucket
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(Error::InvalidEndpoint {
                        url: self.endpoint.to_string(),
                        reason: "bucket is not a valid host name label",
                    });
                }
                let mut name = String::with_capacity(bucket.len() + 1 + host.len() + 6);
                name.push_str(bucket);
                name.push('.');
                name.push_str(host);
                (name.clone(), with_port(name), base.to_owned())
            }
        })
    }

    /// The credentials URLs are signed with.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Refuses a URL that would outlive the credentials it is signed with:
    /// it would stop working before its stated expiry.
    pub(crate) fn check_credentials_expiry(&self, url_expires_at: SystemTime) -> Result<()> {
        match self.credentials.expires_at {
            Some(c) if url_expires_at > c => Err(Error::CredentialsExpireFirst {
                credentials_expire_at: upload_core::timestamp::rfc3339(c),
                url_expires_at: upload_core::timestamp::rfc3339(url_expires_at),
            }),
            _ => Ok(()),
        }
    }

    /// The URL of `bucket` itself (no key): where presigned POST forms go.
    pub(crate) fn bucket_url(&self, bucket: &str) -> Result<Url> {
        let (host_name, _host, path_prefix) = self.host_and_prefix(bucket)?;
        let mut url = self.endpoint.clone();
        url.set_host(Some(&host_name))
            .map_err(|_| Error::InvalidEndpoint {
                url: self.endpoint.to_string(),
                reason: "bucket is not a valid host name label",
            })?;
        url.set_path(&format!("{path_prefix}/"));
        url.set_query(None);
        Ok(url)
    }

    pub(crate) fn signing_key(&self, date: &str) -> [u8; 32] {
        self.keyed(date, |k, _| *k)
    }

    /// A clone of the HMAC keyed with `date`'s signing key.
    fn signing_hmac(&self, date: &str) -> HmacSha256 {
        self.keyed(date, |_, h| h.clone())
    }

    fn keyed<T>(&self, date: &str, f: impl FnOnce(&[u8; 32], &HmacSha256) -> T) -> T {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, k, h)) = cache.as_ref()
            && d == date
        {
            return f(k, h);
        }
        let k = derive_signing_key(&self.credentials.secret_access_key, date, &self.region);
        let h = HmacSha256::new_from_slice(&k).expect("HMAC takes keys of any length");
        let out = f(&k, &h);
        *cache = Some((date.to_owned(), k, h));
        out
    }
}

/// Checks that `endpoint` is http(s) with a host and no query or fragment,
/// and that `region` is non-empty `[A-Za-z0-9-]`.
pub(crate) fn check_endpoint(endpoint: &Url, region: &str) -> Result<()> {
    let bad = |reason| Error::InvalidEndpoint {
        url: endpoint.to_string(),
        reason,
    };
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https"));
    }
    if endpoint.host_str().is_none() {
        return Err(bad("no host"));
    }
    if endpoint.query().is_some() || endpoint.fragment().is_some() {
        return Err(bad("must not carry a query or fragment"));
    }
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad("region must be non-empty [a-z0-9-]"));
    }
    Ok(())
}

/// Checks the policy, then presigns a create-only PUT for an upload with
/// `Content-Type`, `Content-Length` and `If-None-Match: *` signed and the
/// policy's expiry: a second PUT with the same URL gets 412
/// `PreconditionFailed` and never replaces the original.
///
/// This is the call a backend makes when a client asks for an upload slot:
/// `key` must have been picked server-side (see [`upload_core::upload_key`]).
///
/// # Errors
/// [`Error::Policy`] with `ContentTypeNotAllowed` or `TooLarge`; as
/// [`Presigner::presign`] otherwise.
pub fn presign_upload(
    presigner: &Presigner,
    policy: &UploadPolicy,
    bucket: &str,
    key: &ObjectKey,
    content_type: &str,
    size: u64,
    now: SystemTime,
) -> Result<PresignedRequest> {
    policy.check(content_type, size)?;
    presigner.presign_put_with(
        bucket,
        key,
        content_type,
        &crate::headers::PutHeaders::default().with_content_length(size),
        policy.expiry(),
        now,
    )
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` in UTC, or `None` outside years
/// 1970..=9999.
pub(crate) fn amz_dates(now: SystemTime) -> Option<(String, String)> {
    let (date, datetime) = amz_date_bytes(now)?;
    // ASCII digits, 'T' and 'Z' by construction.
    Some((
        String::from_utf8_lossy(&date).into_owned(),
        String::from_utf8_lossy(&datetime).into_owned(),
    ))
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` as ASCII bytes, in UTC, without
/// allocating; `None` outside years 1970..=9999.
fn amz_date_bytes(now: SystemTime) -> Option<([u8; 8], [u8; 16])> {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let days = secs / 86_400;
    let sod = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let digits = |out: &mut [u8], mut v: u64| {
        for b in out.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    let mut date = [0u8; 8];
    digits(&mut date[0..4], year as u64);
    digits(&mut date[4..6], month as u64);
    digits(&mut date[6..8], day as u64);
    let mut dt = [0u8; 16];
    dt[..8].copy_from_slice(&date);
    dt[8] = b'T';
    digits(&mut dt[9..11], sod / 3600);
    digits(&mut dt[11..13], sod % 3600 / 60);
    digits(&mut dt[13..15], sod % 60);
    dt[15] = b'Z';
    Some((date, dt))
}

/// Bytes that stay as they are in SigV4 URI encoding: RFC 3986 unreserved.
const fn unreserved_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.' || c == b'~';
        b += 1;
    }
    t
}
static UNRESERVED: [bool; 256] = unreserved_table();
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `s` URI-encoded the SigV4 way (`/` kept when `keep_slash`):
/// the same output as `utf8_percent_encode` with [`STRICT`] / [`PATH`],
/// byte-table driven for the signing hot path.
fn push_encoded(out: &mut String, s: &str, keep_slash: bool) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if UNRESERVED[b as usize] || (keep_slash && b == b'/') {
            continue;
        }
        // Runs of kept bytes are ASCII; between the encoded bytes of one
        // multi-byte character the run is empty (and `start` is not a char
        // boundary), so it is skipped.
        if start < i {
            out.push_str(&s[start..i]);
        }
        out.push('%');
        out.push(HEX_UPPER[(b >> 4) as usize] as char);
        out.push(HEX_UPPER[(b & 15) as usize] as char);
        start = i + 1;
    }
    if start < bytes.len() {
        out.push_str(&s[start..]);
    }
}

/// As [`encode_strict`], borrowing when nothing needs encoding.
fn encode_cow(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| UNRESERVED[b as usize]) {
        Cow::Borrowed(s)
    } else {
        let mut out = String::with_capacity(s.len() + s.len() / 2 + 8);
        push_encoded(&mut out, s, false);
        Cow::Owned(out)
    }
}

/// URI-encodes a query name or value the SigV4 way.
pub(crate) fn encode_strict(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

/// URI-encodes an object path the SigV4 way (`/` kept).
pub(crate) fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

/// Sorted, encoded `name=value&...` (decoded input pairs).
pub(crate) fn canonical_query_string(pairs: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (encode_strict(k), encode_strict(v)))
        .collect();
    enc.sort();
    let mut out = String::new();
    for (i, (k, v)) in enc.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        let _ = write!(out, "{k}={v}");
    }
    out
}

/// The canonical request; `headers` sorted, lowercase names, trimmed values.
pub(crate) fn canonical_request(
    method: &str,
    encoded_path: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    signed_headers: &str,
) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{method}\n{encoded_path}\n{canonical_query}\n");
    for (n, v) in headers {
        let _ = writeln!(s, "{n}:{}", collapse_spaces(v));
    }
    let _ = write!(s, "\n{signed_headers}\n{UNSIGNED_PAYLOAD}");
    s
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn derive_signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"s3");
    hmac(&k, b"aws4_request")
}

pub(crate) fn string_to_sign(datetime: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{datetime}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The table-driven encoder equals percent-encoding's, for any text.
        #[test]
        fn fast_encoder_matches_percent_encoding(s in "\\PC{0,64}") {
            let mut strict = String::new();
            push_encoded(&mut strict, &s, false);
            let want_strict = utf8_percent_encode(&s, STRICT).to_string();
            proptest::prop_assert_eq!(&strict, &want_strict);
            let cow = encode_cow(&s);
            proptest::prop_assert_eq!(cow.as_ref(), strict.as_str());
            let mut path = String::new();
            push_encoded(&mut path, &s, true);
            let want_path = utf8_percent_encode(&s, PATH).to_string();
            proptest::prop_assert_eq!(&path, &want_path);
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2013-05-24T00:00:00Z, the date of the AWS examples.
    const AWS_EXAMPLE_TIME: u64 = 1_369_353_600;

    fn aws_creds() -> Credentials {
        Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
    }

    /// The presigned GET example of the AWS SigV4 query-auth documentation.
    #[test]
    fn matches_the_aws_documentation_example() {
        let p = Presigner::new(
            Url::parse("https://s3.amazonaws.com").unwrap(),
            "us-east-1",
            aws_creds(),
        )
        .unwrap()
        .with_style(AddressingStyle::VirtualHosted);
        let key = ObjectKey::new("test.txt").unwrap();
        let r = p
            .presign_get(
                "examplebucket",
                &key,
                Duration::from_secs(86400),
                at(AWS_EXAMPLE_TIME),
            )
            .unwrap();
        assert_eq!(
            r.url.as_str(),
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        assert_eq!(r.expires_at, at(AWS_EXAMPLE_TIME + 86400));
    }

    /// `Debug` never shows the secret, the session token or the cached
    /// signing key.
    #[test]
    fn debug_redacts_secrets_and_the_signing_key() {
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            aws_creds().with_session_token("sessiontoken"),
        )
        .unwrap();
        let key = ObjectKey::new("k").unwrap();
        p.presign_get("bkt", &key, Duration::from_secs(60), at(AWS_EXAMPLE_TIME))
            .unwrap();
        let signing_key = hex::encode(p.signing_key("20130524"));
        let shown = format!("{p:?}");
        assert_eq!(
            shown,
            "Presigner { endpoint: \"http://127.0.0.1:9000/\", region: \"us-east-1\", \
             style: Path, credentials: Credentials { access_key_id: \"AKIAIOSFODNN7EXAMPLE\", \
             secret_access_key: \"<redacted>\", session_token: Some(\"<redacted>\"), \
             expires_at: None }, .. }"
        );
        assert!(!shown.contains(&signing_key));
    }

    #[test]
    fn path_style_put_signs_content_type_and_length() {
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            aws_creds(),
        )
        .unwrap();
        let key = ObjectKey::new("uploads/a b/ü+.jpg").unwrap();
        let r = p
            .presign_put(
                "uploads",
                &key,
                "image/jpeg",
                Some(42),
                Duration::from_secs(300),
                at(AWS_EXAMPLE_TIME),
            )
            .unwrap();
        assert_eq!(r.url.host_str(), Some("127.0.0.1"));
        assert_eq!(r.url.port(), Some(9000));
        assert_eq!(r.url.path(), "/uploads/uploads/a%20b/%C3%BC%2B.jpg");
        let q = r.url.query().unwrap();
        assert!(
            q.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"),
            "{q}"
        );
        assert!(
            !q.to_ascii_lowercase().contains("checksum"),
            "no checksum parameters: {q}"
        );
        assert_eq!(
            r.headers,
            vec![
                ("content-length".to_owned(), "42".to_owned()),
                ("content-type".to_owned(), "image/jpeg".to_owned())
            ],
            "headers sorted by name, as aws-sdk-s3 lists them"
        );
        // Deterministic: same inputs, same URL; another second, another URL.
        let again = p
            .presign_put(
                "uploads",
                &key,
                "image/jpeg",
                Some(42),
                Duration::from_secs(300),
                at(AWS_EXAMPLE_TIME),
            )
            .unwrap();
        assert_eq!(again.url, r.url);
        let later = p
            .presign_put(
                "uploads",
                &key,
                "image/jpeg",
                Some(42),
                Duration::from_secs(300),
                at(AWS_EXAMPLE_TIME + 1),
            )
            .unwrap();
        assert_ne!(later.url, r.url);
    }

    #[test]
    fn session_token_and_part_parameters_are_signed() {
        let p = Presigner::new(
            Url::parse("http://localhost:9000/base/").unwrap(),
            "eu-west-1",
            aws_creds().with_session_token("tok/en=="),
        )
        .unwrap();
        let key = ObjectKey::new("big.bin").unwrap();
        let r = p
            .presign_upload_part(
                "b-1",
                &key,
                "up id",
                7,
                Duration::from_secs(60),
                at(AWS_EXAMPLE_TIME),
            )
            .unwrap();
        assert_eq!(r.url.path(), "/base/b-1/big.bin");
        let q = r.url.query().unwrap();
        assert!(q.contains("partNumber=7"), "{q}");
        assert!(q.contains("uploadId=up%20id"), "{q}");
        assert!(q.contains("X-Amz-Security-Token=tok%2Fen%3D%3D"), "{q}");
        assert!(q.contains("%2Feu-west-1%2Fs3%2Faws4_request"), "{q}");
    }

    #[test]
    fn refuses_bad_inputs() {
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            "us-east-1",
            aws_creds(),
        )
        .unwrap();
        let key = ObjectKey::new("k").unwrap();
        for secs in [0, 604_801] {
            let err = p
                .presign_get("bkt", &key, Duration::from_secs(secs), at(AWS_EXAMPLE_TIME))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Policy(upload_core::Error::ExpiryOutOfRange { .. })
                ),
                "{err:?}"
            );
        }
        let req = PresignRequest::new(Method::Put, "bkt", &key, Duration::from_secs(5))
            .with_header("content-type", "a\nb");
        assert!(matches!(
            p.presign(&req, at(0)),
            Err(Error::InvalidHeader { .. })
        ));
        let req = PresignRequest::new(Method::Put, "bkt", &key, Duration::from_secs(5))
            .with_header("Host", "x");
        assert!(matches!(
            p.presign(&req, at(0)),
            Err(Error::InvalidHeader { .. })
        ));
        for bad in ["ftp://x", "http://x/?a=b", "unix:/tmp/s"] {
            assert!(
                Presigner::new(Url::parse(bad).unwrap(), "us-east-1", aws_creds()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_what_would_never_verify() {
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            "us-east-1",
            aws_creds(),
        )
        .unwrap();
        let key = ObjectKey::new("a.jpg").unwrap();
        let d = Duration::from_secs(60);
        for bucket in ["..", "", "a/b", "a b", "UP", "x?y"] {
            let err = p
                .presign_get(bucket, &key, d, at(AWS_EXAMPLE_TIME))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Policy(upload_core::Error::InvalidBucketName { .. })
                ),
                "{bucket:?}: {err:?}"
            );
        }
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(matches!(
            p.presign_get("b-1", &key, d, far),
            Err(Error::TimeOutOfRange)
        ));
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        assert!(matches!(
            p.presign_get("b-1", &key, d, before_epoch),
            Err(Error::TimeOutOfRange)
        ));
        let req =
            PresignRequest::new(Method::Get, "b-1", &key, d).with_query("x-amz-expires", "99");
        assert!(matches!(
            p.presign(&req, at(0)),
            Err(Error::InvalidQueryParameter { .. })
        ));
        let req = PresignRequest::new(Method::Get, "b-1", &key, d)
            .with_query("a", "1")
            .with_query("a", "2");
        assert!(matches!(
            p.presign(&req, at(0)),
            Err(Error::InvalidQueryParameter { .. })
        ));
        let req = PresignRequest::new(Method::Put, "b-1", &key, d)
            .with_header("content-type", "a")
            .with_header("Content-Type", "b");
        assert!(matches!(
            p.presign(&req, at(0)),
            Err(Error::InvalidHeader { .. })
        ));
        for n in [0, 10_001] {
            assert!(matches!(
                p.presign_upload_part("b-1", &key, "id", n, d, at(AWS_EXAMPLE_TIME)),
                Err(Error::Policy(upload_core::Error::InvalidPartNumber { .. }))
            ));
        }
    }

    #[test]
    fn policy_first() {
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            "us-east-1",
            aws_creds(),
        )
        .unwrap();
        let policy = UploadPolicy::new(["image/jpeg"], 1000).unwrap();
        let key = ObjectKey::new("k.jpg").unwrap();
        let ok = presign_upload(
            &p,
            &policy,
            "bkt",
            &key,
            "image/jpeg",
            1000,
            at(AWS_EXAMPLE_TIME),
        )
        .unwrap();
        assert!(ok.url.query().unwrap().contains("X-Amz-Expires=300"));
        assert!(matches!(
            presign_upload(&p, &policy, "bkt", &key, "image/gif", 10, at(0)),
            Err(Error::Policy(
                upload_core::Error::ContentTypeNotAllowed { .. }
            ))
        ));
        assert!(matches!(
            presign_upload(&p, &policy, "bkt", &key, "image/jpeg", 1001, at(0)),
            Err(Error::Policy(upload_core::Error::TooLarge { .. }))
        ));
    }
}
