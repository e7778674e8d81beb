//! AWS Signature Version 4 query signing ("presigned URLs"), sans-IO.
//!
//! Follows the AWS "Authenticating Requests: Using Query Parameters
//! (AWS Signature Version 4)" page: the canonical request is signed with
//! `UNSIGNED-PAYLOAD`, the signature goes in `X-Amz-Signature`. Signing is a
//! pure function of its inputs and the current time passed in, so results
//! are deterministic and testable against the AWS examples.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
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
/// What changes only with the UTC date (the signing key, the credential
/// scope) is derived once per date and cached, and what changes only with
/// the second (`X-Amz-Date`, the string to sign up to the canonical
/// request's hash, absorbed into the keyed HMAC) once per second; the
/// endpoint's parts and the encoded session token are taken apart at
/// construction. Signing a URL then allocates only the URL and the
/// returned headers, and hashes the canonical request from a stack buffer.
pub struct Presigner {
    endpoint: Url,
    region: String,
    style: AddressingStyle,
    credentials: Credentials,
    /// The endpoint's host and `:port` (when not the scheme's default):
    /// the host of path-style URLs and their `Host` header.
    path_host: String,
    /// The endpoint's path without its trailing `/` (often empty).
    base_path: String,
    /// The session token, URI-encoded, for `X-Amz-Security-Token`.
    token_param: Option<String>,
    /// `{scheme}://{path_host}/` parsed: what path-style URLs start with.
    origin: Option<Url>,
    /// Signing state of the last UTC date signed for.
    day_cache: Mutex<Option<Arc<DayKey>>>,
    /// Signing state of the last second signed at.
    second_cache: Mutex<Option<Arc<SecondKey>>>,
}

/// Signing state of one UTC date: the derived key, an HMAC already keyed
/// with it (its inner and outer pads hashed once), and the strings that
/// carry the date.
struct DayKey {
    /// `YYYYMMDD`.
    date: [u8; 8],
    key: [u8; 32],
    mac: HmacSha256,
    /// `{date}/{region}/s3/aws4_request`: the credential scope.
    scope: String,
    /// `X-Amz-Credential`'s value, URI-encoded:
    /// `{access key ID}%2F{date}%2F{region}%2Fs3%2Faws4_request`.
    credential_param: String,
}

impl DayKey {
    fn new(credentials: &Credentials, region: &str, date: [u8; 8]) -> Self {
        let date_str = std::str::from_utf8(&date).expect("ASCII digits");
        let key = derive_signing_key(&credentials.secret_access_key, date_str, region);
        let mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
        let scope = format!("{date_str}/{region}/s3/aws4_request");
        let credential_param = encode_strict(&format!("{}/{scope}", credentials.access_key_id));
        Self {
            date,
            key,
            mac,
            scope,
            credential_param,
        }
    }
}

/// Signing state of one second (Unix time).
struct SecondKey {
    secs: u64,
    /// `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...&X-Amz-Date=...&`:
    /// the URL's signer parameters that change only with the second, in
    /// canonical order.
    params: String,
    /// `(start, '=', end)` of the three parameters in `params`.
    spans: [(usize, usize, usize); 3],
    /// The day's keyed HMAC that has absorbed the string to sign up to the
    /// canonical request's hash: `AWS4-HMAC-SHA256\n{datetime}\n{scope}\n`.
    mac: HmacSha256,
}

impl SecondKey {
    fn new(day: &DayKey, secs: u64, datetime: [u8; 16]) -> Self {
        let dt = std::str::from_utf8(&datetime).expect("ASCII digits, T and Z");
        let mut params = String::with_capacity(64 + day.credential_param.len());
        let mut spans = [(0, 0, 0); 3];
        for (span, (name, value)) in spans.iter_mut().zip([
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", day.credential_param.as_str()),
            ("X-Amz-Date", dt),
        ]) {
            let start = params.len();
            params.push_str(name);
            params.push('=');
            params.push_str(value);
            *span = (start, start + name.len(), params.len());
            params.push('&');
        }
        let mut mac = day.mac.clone();
        mac.update(ALGORITHM.as_bytes());
        mac.update(b"\n");
        mac.update(&datetime);
        mac.update(b"\n");
        mac.update(day.scope.as_bytes());
        mac.update(b"\n");
        Self {
            secs,
            params,
            spans,
            mac,
        }
    }
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
        let path_host = match endpoint.port() {
            Some(port) => format!("{}:{port}", endpoint.host_str().unwrap_or_default()),
            None => endpoint.host_str().unwrap_or_default().to_owned(),
        };
        let base_path = endpoint.path().trim_end_matches('/').to_owned();
        let token_param = credentials.session_token.as_deref().map(encode_strict);
        let origin = Url::parse(&format!("{}://{path_host}/", endpoint.scheme()))
            .ok()
            .filter(|u| u.as_str().len() == endpoint.scheme().len() + 3 + path_host.len() + 1);
        Ok(Self {
            endpoint,
            region: region.to_owned(),
            style: AddressingStyle::Path,
            credentials,
            path_host,
            base_path,
            token_param,
            origin,
            day_cache: Mutex::new(None),
            second_cache: Mutex::new(None),
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
        let signed = self.presign_url(req, now)?;
        // Path style: the endpoint's origin, parsed once, with this path
        // and query set, spares parsing the scheme and host again; the
        // result must be the very text signed (it always is: both are
        // parsed by the same rules), else the whole URL is parsed.
        if self.style == AddressingStyle::Path
            && let Some(origin) = &self.origin
        {
            let path_start = origin.as_str().len() - 1;
            if let Some(query) = signed.url[path_start..].find('?') {
                let query = path_start + query;
                let mut url = origin.clone();
                url.set_path(&signed.url[path_start..query]);
                url.set_query(Some(&signed.url[query + 1..]));
                if url.as_str() == signed.url {
                    return Ok(PresignedRequest {
                        method: signed.method,
                        url,
                        headers: signed.headers,
                        expires_at: signed.expires_at,
                    });
                }
            }
        }
        signed.into_request()
    }

    /// As [`Presigner::presign`], with the URL as a `String`, ready to put
    /// into a JSON answer: it skips parsing the finished URL into a
    /// [`Url`] (about as long as signing it), which servers that hand URLs
    /// to clients as text do not need. The string is exactly
    /// `presign(..).url.as_str()`.
    ///
    /// # Errors
    /// As [`Presigner::presign`].
    pub fn presign_url(&self, req: &PresignRequest, now: SystemTime) -> Result<PresignedUrl> {
        let (url, expires_at) = self.sign(req, now)?;
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.trim().to_owned()))
            .collect();
        headers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(PresignedUrl {
            method: req.method,
            url,
            headers,
            expires_at,
        })
    }

    /// As [`Presigner::presign_url`], handing the request's own header
    /// strings over to the answer instead of copying them.
    fn presign_url_owned(&self, mut req: PresignRequest, now: SystemTime) -> Result<PresignedUrl> {
        let (url, expires_at) = self.sign(&req, now)?;
        for (_, v) in &mut req.headers {
            if v.trim().len() != v.len() {
                *v = v.trim().to_owned();
            }
        }
        req.headers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(PresignedUrl {
            method: req.method,
            url,
            headers: req.headers,
            expires_at,
        })
    }

    /// The presigned URL of `req` and when it expires (see
    /// [`Presigner::presign`] for the refusals).
    fn sign(&self, req: &PresignRequest, now: SystemTime) -> Result<(String, SystemTime)> {
        check_expiry(req.expires_in)?;
        upload_core::storage::check_bucket_name(&req.bucket)?;
        let expires_at = now
            .checked_add(req.expires_in)
            .ok_or(Error::TimeOutOfRange)?;
        self.check_credentials_expiry(expires_at)?;
        self.check_request(req)?;
        let second = self.second_key(now)?;
        let mut expires_digits = [0u8; 20];
        let expires = decimal(req.expires_in.as_secs(), &mut expires_digits);

        // The URL's host and the `Host` header: the endpoint's, or the
        // bucket's name under it.
        let virtual_host;
        let host = match self.style {
            AddressingStyle::Path => self.path_host.as_str(),
            AddressingStyle::VirtualHosted => {
                let mut h = String::with_capacity(req.bucket.len() + 1 + self.path_host.len());
                h.push_str(&req.bucket);
                h.push('.');
                h.push_str(&self.path_host);
                virtual_host = h;
                virtual_host.as_str()
            }
        };

        // Signed headers: trimmed values, `host` added, sorted by name
        // (names are unique, checked above); on the stack up to 16.
        let mut header_array = [("", ""); 16];
        let mut header_vec = Vec::new();
        let headers: &mut [(&str, &str)] = if req.headers.len() < header_array.len() {
            for (slot, (n, v)) in header_array.iter_mut().zip(&req.headers) {
                *slot = (n.as_str(), v.trim());
            }
            header_array[req.headers.len()] = ("host", host);
            &mut header_array[..=req.headers.len()]
        } else {
            header_vec.reserve_exact(req.headers.len() + 1);
            header_vec.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.trim())));
            header_vec.push(("host", host));
            &mut header_vec
        };
        headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let headers: &[(&str, &str)] = headers;

        // The URL's exact length, so that it is written into one
        // allocation.
        let key = req.key.as_str();
        let key_len = encoded_len(key, &KEEP_PATH);
        let path_len = self.base_path.len()
            + match self.style {
                // Bucket names are lowercase letters, digits, `-` and `.`.
                AddressingStyle::Path => 1 + req.bucket.len(),
                AddressingStyle::VirtualHosted => 0,
            }
            + 1
            + key_len;
        let caller_len: usize = req
            .query
            .iter()
            .map(|(k, v)| encoded_len(k, &KEEP_STRICT) + 1 + encoded_len(v, &KEEP_STRICT) + 1)
            .sum();
        let signed_headers_len = headers
            .iter()
            .map(|(n, _)| encoded_len(n, &KEEP_STRICT))
            .sum::<usize>()
            + "%3B".len() * (headers.len() - 1);
        let url_len = self.endpoint.scheme().len()
            + "://".len()
            + host.len()
            + path_len
            + "?".len()
            + caller_len
            + second.params.len()
            + "X-Amz-Expires=&".len()
            + expires.len()
            + "X-Amz-SignedHeaders=".len()
            + signed_headers_len
            + "&X-Amz-Signature=".len()
            + 64
            + self
                .token_param
                .as_ref()
                .map_or(0, |t| "&X-Amz-Security-Token=".len() + t.len());

        // The URL, in the order aws-sdk-s3 writes its query (the caller's
        // parameters, then the signer's; the signature and the token are
        // appended once known). Parameters are recorded as offsets, to hash
        // the canonical query from the URL itself.
        let mut url = String::with_capacity(url_len);
        url.push_str(self.endpoint.scheme());
        url.push_str("://");
        url.push_str(host);
        let path_start = url.len();
        url.push_str(&self.base_path);
        if self.style == AddressingStyle::Path {
            url.push('/');
            url.push_str(&req.bucket);
        }
        url.push('/');
        if key_len == key.len() {
            url.push_str(key);
        } else {
            push_encoded(&mut url, key, &KEEP_PATH);
        }
        let path_end = url.len();
        url.push('?');
        let mut caller_array = [(0usize, 0usize, 0usize); 8];
        let mut caller_vec = Vec::new();
        let caller: &mut [(usize, usize, usize)] = if req.query.len() <= caller_array.len() {
            &mut caller_array[..req.query.len()]
        } else {
            caller_vec.resize(req.query.len(), (0, 0, 0));
            &mut caller_vec
        };
        for (span, (k, v)) in caller.iter_mut().zip(&req.query) {
            let start = url.len();
            push_encoded(&mut url, k, &KEEP_STRICT);
            let eq = url.len();
            url.push('=');
            push_encoded(&mut url, v, &KEEP_STRICT);
            *span = (start, eq, url.len());
            url.push('&');
        }
        // The signer's parameters, in canonical order: algorithm,
        // credential, date, expires, token, signed headers. All but the
        // token, which follows the signature, are in the URL already.
        let mut signer = [("", QueryPair::Token); 6];
        let base = url.len();
        url.push_str(&second.params);
        for (slot, (name, s)) in signer.iter_mut().zip(
            ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date"]
                .into_iter()
                .zip(&second.spans),
        ) {
            *slot = (name, QueryPair::Url(base + s.0, base + s.2));
        }
        let start = url.len();
        url.push_str("X-Amz-Expires=");
        url.push_str(expires);
        signer[3] = ("X-Amz-Expires", QueryPair::Url(start, url.len()));
        url.push('&');
        let start = url.len();
        url.push_str("X-Amz-SignedHeaders=");
        for (i, (name, _)) in headers.iter().enumerate() {
            if i > 0 {
                url.push_str("%3B");
            }
            push_encoded(&mut url, name, &KEEP_STRICT);
        }
        signer[5] = ("X-Amz-SignedHeaders", QueryPair::Url(start, url.len()));
        let signer: &[(&str, QueryPair)] = if self.token_param.is_some() {
            signer[4].0 = "X-Amz-Security-Token";
            &signer
        } else {
            signer.copy_within(5..6, 4);
            &signer[..5]
        };

        // The canonical request, written into a stack buffer and hashed:
        // its path and query are the URL's own bytes.
        let bytes = url.as_bytes();
        let name_value = |p: &(usize, usize, usize)| (&bytes[p.0..p.1], &bytes[p.1 + 1..p.2]);
        caller.sort_unstable_by(|a, b| name_value(a).cmp(&name_value(b)));
        let mut canonical_buf = [0u8; 1024];
        let mut canonical = CanonicalRequest::new(&mut canonical_buf);
        canonical.push(req.method.as_str().as_bytes());
        canonical.push(b"\n");
        canonical.push(&bytes[path_start..path_end]);
        canonical.push(b"\n");
        // Both lists sorted, merged (no name is in both: the caller may not
        // set signer parameters); `name=value` pairs joined by `&`, those
        // that follow each other in the URL copied as one run.
        let (mut c, mut s) = (caller.iter().peekable(), signer.iter().peekable());
        let mut query = CanonicalQuery::default();
        loop {
            match (c.peek(), s.peek()) {
                (Some(a), Some(b)) if bytes_less(name_value(a).0, b.0.as_bytes()) => {
                    let &(start, _, end) = c.next().expect("peeked");
                    query.url_pair(&mut canonical, bytes, start, end);
                }
                (Some(_), Some(_)) | (None, Some(_)) => match s.next().expect("peeked").1 {
                    QueryPair::Url(start, end) => query.url_pair(&mut canonical, bytes, start, end),
                    QueryPair::Token => query.pair(
                        &mut canonical,
                        bytes,
                        "X-Amz-Security-Token",
                        self.token_param.as_deref().unwrap_or_default(),
                    ),
                },
                (Some(_), None) => {
                    let &(start, _, end) = c.next().expect("peeked");
                    query.url_pair(&mut canonical, bytes, start, end);
                }
                (None, None) => break,
            }
        }
        query.finish(&mut canonical, bytes);
        canonical.push(b"\n");
        for (name, value) in headers {
            canonical.push(name.as_bytes());
            canonical.push(b":");
            if value.bytes().any(|b| b.is_ascii_whitespace()) {
                for (i, word) in value.split_ascii_whitespace().enumerate() {
                    if i > 0 {
                        canonical.push(b" ");
                    }
                    canonical.push(word.as_bytes());
                }
            } else {
                canonical.push(value.as_bytes());
            }
            canonical.push(b"\n");
        }
        canonical.push(b"\n");
        for (i, (name, _)) in headers.iter().enumerate() {
            if i > 0 {
                canonical.push(b";");
            }
            canonical.push(name.as_bytes());
        }
        canonical.push(b"\n");
        canonical.push(UNSIGNED_PAYLOAD.as_bytes());
        let mut canonical_hash = [0u8; 64];
        hex_lower(&canonical.finish(), &mut canonical_hash);

        // The string to sign's last line, into the HMAC that has the rest.
        let mut mac = second.mac.clone();
        mac.update(&canonical_hash);
        let mut signature = [0u8; 64];
        hex_lower(&mac.finalize().into_bytes().into(), &mut signature);
        url.push_str("&X-Amz-Signature=");
        url.push_str(std::str::from_utf8(&signature).expect("hex is ASCII"));
        if let Some(token) = &self.token_param {
            url.push_str("&X-Amz-Security-Token=");
            url.push_str(token);
        }
        debug_assert_eq!(url.len(), url_len);

        Ok((url, expires_at))
    }

    /// The refusals of [`Presigner::presign`] that depend on the request
    /// alone: query parameters, headers, virtual-hosted bucket names.
    fn check_request(&self, req: &PresignRequest) -> Result<()> {
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
        if self.style == AddressingStyle::VirtualHosted && !is_host_label(&req.bucket) {
            return Err(Error::InvalidEndpoint {
                url: self.endpoint.to_string(),
                reason: "bucket is not a valid host name label",
            });
        }
        Ok(())
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
        self.presign(
            &put_request(bucket, key, content_type, headers, expires_in),
            now,
        )
    }

    /// As [`Presigner::presign_put_with`], with the URL as text (see
    /// [`Presigner::presign_url`]): for servers that hand the URL out in a
    /// JSON answer.
    ///
    /// # Errors
    /// As [`Presigner::presign_put_with`].
    pub fn presign_put_url_with(
        &self,
        bucket: &str,
        key: &ObjectKey,
        content_type: &str,
        headers: &crate::headers::PutHeaders,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<PresignedUrl> {
        self.presign_url_owned(
            put_request(bucket, key, content_type, headers, expires_in),
            now,
        )
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

    /// `(host name, path prefix)` of `bucket`'s URLs.
    fn host_and_prefix(&self, bucket: &str) -> Result<(String, String)> {
        let host = self.endpoint.host_str().unwrap_or_default();
        Ok(match self.style {
            AddressingStyle::Path => {
                let mut prefix = String::with_capacity(self.base_path.len() + 1 + bucket.len());
                prefix.push_str(&self.base_path);
                prefix.push('/');
                push_encoded(&mut prefix, bucket, &KEEP_STRICT);
                (host.to_owned(), prefix)
            }
            AddressingStyle::VirtualHosted => {
                if !is_host_label(bucket) {
                    return Err(Error::InvalidEndpoint {
                        url: self.endpoint.to_string(),
                        reason: "bucket is not a valid host name label",
                    });
                }
                (format!("{bucket}.{host}"), self.base_path.clone())
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
        let (host_name, path_prefix) = self.host_and_prefix(bucket)?;
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

    /// The signing key of `date` (`YYYYMMDD`).
    pub(crate) fn signing_key(&self, date: &str) -> [u8; 32] {
        match <[u8; 8]>::try_from(date.as_bytes()) {
            Ok(d) => self.day_key(d).key,
            Err(_) => derive_signing_key(&self.credentials.secret_access_key, date, &self.region),
        }
    }

    /// The signing state of `date` (`YYYYMMDD`): the cached one, or derived
    /// and cached when the date changed.
    fn day_key(&self, date: [u8; 8]) -> Arc<DayKey> {
        let mut cache = self.day_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(day) = cache.as_ref()
            && day.date == date
        {
            return day.clone();
        }
        let day = Arc::new(DayKey::new(&self.credentials, &self.region, date));
        *cache = Some(day.clone());
        day
    }

    /// The signing state of `now`'s second: the cached one, or made and
    /// cached when the second changed.
    ///
    /// # Errors
    /// [`Error::TimeOutOfRange`] outside years 1970..=9999.
    fn second_key(&self, now: SystemTime) -> Result<Arc<SecondKey>> {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| Error::TimeOutOfRange)?
            .as_secs();
        let mut cache = self.second_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(second) = cache.as_ref()
            && second.secs == secs
        {
            return Ok(second.clone());
        }
        let (date, datetime) = amz_date_bytes(now).ok_or(Error::TimeOutOfRange)?;
        let second = Arc::new(SecondKey::new(&self.day_key(date), secs, datetime));
        *cache = Some(second.clone());
        Ok(second)
    }
}

/// The PUT of [`Presigner::presign_put_with`]: `Content-Type` and every
/// header of `headers` signed.
fn put_request(
    bucket: &str,
    key: &ObjectKey,
    content_type: &str,
    headers: &crate::headers::PutHeaders,
    expires_in: Duration,
) -> PresignRequest {
    let mut req = PresignRequest::new(Method::Put, bucket, key, expires_in)
        .with_header("content-type", content_type);
    // `to_pairs` names are lowercase already.
    req.headers.extend(headers.to_pairs());
    req
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

/// Where a query parameter of the canonical query is: `name=value` at
/// `start..end` of the URL, or the session token (after the signature).
#[derive(Clone, Copy)]
enum QueryPair {
    Url(usize, usize),
    Token,
}

/// The canonical query being written: sorted `name=value` pairs joined by
/// `&`; consecutive pairs that are consecutive in the URL too (joined by
/// its own `&`) are pushed as one run.
#[derive(Default)]
struct CanonicalQuery {
    /// The run not pushed yet.
    run: Option<(usize, usize)>,
    /// Whether a pair was pushed (the next one needs a `&`).
    pushed: bool,
}

impl CanonicalQuery {
    fn url_pair(&mut self, out: &mut CanonicalRequest<'_>, url: &[u8], start: usize, end: usize) {
        match &mut self.run {
            Some((_, run_end)) if start == *run_end + 1 => *run_end = end,
            _ => {
                self.flush(out, url);
                self.run = Some((start, end));
            }
        }
    }

    fn pair(&mut self, out: &mut CanonicalRequest<'_>, url: &[u8], name: &str, value: &str) {
        self.flush(out, url);
        if self.pushed {
            out.push(b"&");
        }
        out.push(name.as_bytes());
        out.push(b"=");
        out.push(value.as_bytes());
        self.pushed = true;
    }

    fn flush(&mut self, out: &mut CanonicalRequest<'_>, url: &[u8]) {
        if let Some((start, end)) = self.run.take() {
            if self.pushed {
                out.push(b"&");
            }
            out.push(&url[start..end]);
            self.pushed = true;
        }
    }

    fn finish(mut self, out: &mut CanonicalRequest<'_>, url: &[u8]) {
        self.flush(out, url);
    }
}

/// A canonical request being written into a stack buffer and hashed
/// when it is full or finished (most canonical requests fit in one).
struct CanonicalRequest<'a> {
    buf: &'a mut [u8; 1024],
    len: usize,
    hash: Sha256,
}

impl<'a> CanonicalRequest<'a> {
    fn new(buf: &'a mut [u8; 1024]) -> Self {
        Self {
            buf,
            len: 0,
            hash: Sha256::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.hash.update(&self.buf[..self.len]);
            self.len = 0;
            if bytes.len() > self.buf.len() {
                self.hash.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The SHA-256 of everything pushed.
    fn finish(&mut self) -> [u8; 32] {
        self.hash.update(&self.buf[..self.len]);
        self.len = 0;
        self.hash.finalize_reset().into()
    }
}

/// `a < b`, byte by byte: for the short names of query parameters, which
/// mostly differ at their first byte, faster than a call to `memcmp`.
fn bytes_less(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// Lowercase hex of a SHA-256 digest.
fn hex_lower(digest: &[u8; 32], out: &mut [u8; 64]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

/// Whether `bucket` can be the first label of a virtual-hosted host name.
fn is_host_label(bucket: &str) -> bool {
    !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `v` in decimal, written at the end of `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

/// Length of `s` once [`push_encoded`] wrote it with `keep`.
fn encoded_len(s: &str, keep: &[bool; 256]) -> usize {
    s.len() + 2 * s.bytes().filter(|&b| !keep[usize::from(b)]).count()
}

/// Bytes that stay as they are in SigV4 URI encoding: RFC 3986
/// unreserved, and `/` too when `slash` (object key paths).
const fn keep_table(slash: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || c == b'-'
            || c == b'_'
            || c == b'.'
            || c == b'~'
            || (slash && c == b'/');
        b += 1;
    }
    t
}
/// Query names and values, bucket names: as [`STRICT`].
static KEEP_STRICT: [bool; 256] = keep_table(false);
/// Object key paths: as [`PATH`].
static KEEP_PATH: [bool; 256] = keep_table(true);
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `s` URI-encoded the SigV4 way, keeping the bytes `keep` marks
/// ([`KEEP_STRICT`] or [`KEEP_PATH`]): the same output as
/// `utf8_percent_encode` with [`STRICT`] / [`PATH`], table driven for the
/// signing hot path.
fn push_encoded(out: &mut String, s: &str, keep: &[bool; 256]) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if keep[usize::from(b)] {
            continue;
        }
        // Runs of kept bytes are ASCII; between the encoded bytes of one
        // multi-byte character the run is empty (and `start` is not a char
        // boundary), so it is skipped.
        if start < i {
            out.push_str(&s[start..i]);
        }
        out.push('%');
        out.push(HEX_UPPER[usize::from(b >> 4)] as char);
        out.push(HEX_UPPER[usize::from(b & 15)] as char);
        start = i + 1;
    }
    if start < bytes.len() {
        out.push_str(&s[start..]);
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
            push_encoded(&mut strict, &s, &KEEP_STRICT);
            let want_strict = utf8_percent_encode(&s, STRICT).to_string();
            proptest::prop_assert_eq!(&strict, &want_strict);
            proptest::prop_assert_eq!(encoded_len(&s, &KEEP_STRICT), strict.len());
            let mut path = String::new();
            push_encoded(&mut path, &s, &KEEP_PATH);
            let want_path = utf8_percent_encode(&s, PATH).to_string();
            proptest::prop_assert_eq!(&path, &want_path);
            proptest::prop_assert_eq!(encoded_len(&s, &KEEP_PATH), path.len());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Any request, with more parameters and headers than the signer
        /// keeps on its stack, parameter names sorting around the signer's
        /// own, with or without a session token, in either style: the
        /// parsed URL is the very text `presign_url` returns, and the
        /// verifier (its own canonical request, from the decoded URL)
        /// accepts it with the returned headers.
        #[test]
        fn any_request_is_signed_as_the_verifier_checks_it(
            key in "[a-zA-Z0-9 /+%=&~.é✓-]{1,40}",
            params in proptest::collection::vec(
                (0usize..7, "[a-zA-Z0-9 /+%=&~.é-]{0,12}"), 0..12),
            headers in proptest::collection::vec("[ a-zA-Z0-9/;=,.é\t-]{0,16}", 0..20),
            virtual_hosted: bool,
            token: bool,
            second in 0u64..3,
        ) {
            let Ok(key) = ObjectKey::new(key) else { return Ok(()) };
            let mut creds = aws_creds();
            if token {
                creds = creds.with_session_token("tok/en+==");
            }
            let style = if virtual_hosted {
                AddressingStyle::VirtualHosted
            } else {
                AddressingStyle::Path
            };
            let p = Presigner::new(
                Url::parse("http://s3.local:9000/base/").unwrap(),
                "eu-west-3",
                creds.clone(),
            )
            .unwrap()
            .with_style(style);
            // Names before, between and after the signer's `X-Amz-*`.
            let prefixes = ["a", "X-Amz-B", "X-Amz-Dz", "X-Amz-Sec", "X-Amz-T", "Z", "x-id"];
            let mut req = PresignRequest::new(Method::Put, "bkt-1", &key, Duration::from_secs(900));
            for (i, (prefix, value)) in params.iter().enumerate() {
                req = req.with_query(&format!("{}{i}", prefixes[*prefix]), value.as_str());
            }
            for (i, value) in headers.iter().enumerate() {
                req = req.with_header(&format!("x-amz-meta-h{i:02}"), value.as_str());
            }
            let now = at(AWS_EXAMPLE_TIME + second);
            let text = p.presign_url(&req, now).unwrap();
            let parsed = p.presign(&req, now).unwrap();
            proptest::prop_assert_eq!(parsed.url.as_str(), text.url.as_str());
            proptest::prop_assert_eq!(&parsed.headers, &text.headers);
            let host = format!("{}:9000", parsed.url.host_str().unwrap());
            let mut sent: Vec<(&str, &str)> = vec![("host", host.as_str())];
            sent.extend(parsed.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let verified = crate::Verifier::new("eu-west-3", [creds]).verify(
                &crate::IncomingRequest {
                    method: "PUT",
                    path: parsed.url.path(),
                    query: parsed.url.query().unwrap_or_default(),
                    headers: &sent,
                },
                now,
            );
            proptest::prop_assert!(verified.is_ok(), "{:?}: {}", verified, text.url);
            let mut ours: Vec<(String, String)> = req
                .query
                .iter()
                .filter(|(n, _)| !n.starts_with("X-Amz-"))
                .cloned()
                .collect();
            let mut checked = verified.unwrap().params;
            ours.sort();
            checked.sort();
            proptest::prop_assert_eq!(checked, ours);
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
