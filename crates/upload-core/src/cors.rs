//! The bucket CORS rule browser uploads need, and how S3 evaluates it.
//!
//! A page on another origin can PUT or POST straight to a bucket only when
//! the bucket's CORS configuration allows its origin, and can complete a
//! multipart upload only when the rule exposes `ETag`: without it the page
//! cannot read the ETag of each part it sent (the most common reason
//! browser multipart uploads fail). [`CorsConfig`] is that one rule; with
//! the `s3` feature it is applied by `S3Storage::configure_cors`, and
//! `upload-presign`'s local endpoint answers preflights and requests by
//! [`CorsConfig::preflight`] and [`CorsConfig::response_headers`], the way
//! S3 does (see the AWS S3 user guide, "Using cross-origin resource
//! sharing (CORS)" and "How does Amazon S3 evaluate the CORS configuration
//! on a bucket?").

use crate::error::{Error, Result};

/// Default `MaxAgeSeconds` of the CORS rule: browsers cache a preflight
/// for 3000 s (50 min), the value in AWS's own CORS examples.
pub const DEFAULT_CORS_MAX_AGE_SECS: i32 = 3000;

/// Methods the rule allows: what presigned PUTs, POST forms, part uploads
/// and presigned GETs use.
pub const CORS_ALLOWED_METHODS: [&str; 4] = ["PUT", "POST", "GET", "HEAD"];

/// Response headers the rule exposes to pages: `ETag` (each part's, for
/// CompleteMultipartUpload), `Location` (the object URL S3 answers a POST
/// form upload with, which Uppy reads) and `x-amz-version-id`.
pub const CORS_EXPOSE_HEADERS: [&str; 3] = ["ETag", "Location", "x-amz-version-id"];

/// `Vary` of every answer that depends on the CORS rule.
pub const CORS_VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// The CORS rule that lets browsers on `allowed_origins` upload straight to
/// the bucket with presigned PUT, POST and multipart part URLs.
///
/// An origin may hold one `*`, which matches any run of characters, as in
/// S3 (`https://*.example.com` matches `https://app.example.com`); `*`
/// alone allows every origin.
///
/// Methods [`CORS_ALLOWED_METHODS`]; any request header (`AllowedHeader
/// *`: presigned PUTs send `Content-Type` and `x-amz-*` headers);
/// [`CORS_EXPOSE_HEADERS`] exposed (see the AWS "Configuring CORS" guide
/// and Uppy's `@uppy/aws-s3` docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsConfig {
    /// Origins allowed, e.g. `https://app.example.com`; `*` for any.
    pub allowed_origins: Vec<String>,
    /// How long browsers may cache a preflight answer, in seconds.
    pub max_age_secs: i32,
}

/// Why S3 refuses a preflight (`OPTIONS`) request; [`CorsRefusal::status`]
/// and [`CorsRefusal::code`] are S3's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsRefusal {
    /// No `Origin` header: 400 `BadRequest`.
    #[error("Insufficient information. Origin request header needed.")]
    MissingOrigin,
    /// No or an unknown `Access-Control-Request-Method`: 400 `BadRequest`.
    #[error("Invalid Access-Control-Request-Method: {0}")]
    InvalidMethod(String),
    /// The bucket has no CORS configuration: 403 `AccessForbidden`.
    #[error("CORSResponse: CORS is not enabled for this bucket.")]
    NotEnabled,
    /// The bucket does not exist: 403 `AccessForbidden`.
    #[error("CORSResponse: Bucket not found")]
    NoSuchBucket,
    /// No rule allows this origin and method: 403 `AccessForbidden`.
    #[error(
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."
    )]
    NotAllowed,
}

impl CorsRefusal {
    /// The HTTP status S3 answers with: 400 or 403.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingOrigin | Self::InvalidMethod(_) => 400,
            Self::NotEnabled | Self::NoSuchBucket | Self::NotAllowed => 403,
        }
    }

    /// The S3 error code: `BadRequest` or `AccessForbidden`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingOrigin | Self::InvalidMethod(_) => "BadRequest",
            Self::NotEnabled | Self::NoSuchBucket | Self::NotAllowed => "AccessForbidden",
        }
    }
}

impl CorsConfig {
    /// The rule for `allowed_origins`, with the default max age.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] when the list is empty or an origin is not
    /// `*` or an `http(s)://host[:port]` origin (no path, no trailing `/`,
    /// at most one `*`, as S3 allows).
    pub fn new<I, S>(allowed_origins: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let allowed_origins: Vec<String> = allowed_origins.into_iter().map(Into::into).collect();
        if allowed_origins.is_empty() {
            return Err(Error::InvalidPolicy {
                reason: "a CORS rule needs at least one allowed origin".into(),
            });
        }
        for o in &allowed_origins {
            let ok = o == "*"
                || (o.matches('*').count() <= 1
                    && ["http://", "https://"].iter().any(|p| {
                        o.strip_prefix(p)
                            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
                    }));
            if !ok {
                return Err(Error::InvalidPolicy {
                    reason: format!("CORS origin {o:?} must be * or scheme://host[:port]"),
                });
            }
        }
        Ok(Self {
            allowed_origins,
            max_age_secs: DEFAULT_CORS_MAX_AGE_SECS,
        })
    }

    /// The `Access-Control-Allow-Origin` value for `origin` when the rule
    /// allows it and `method`: `*` for an allow-all rule (S3 then sends no
    /// `Access-Control-Allow-Credentials`), else the origin itself.
    fn allow_origin(&self, origin: &str, method: &str) -> Option<String> {
        if !CORS_ALLOWED_METHODS.contains(&method) {
            return None;
        }
        if self.allowed_origins.iter().any(|o| o == "*") {
            Some("*".to_owned())
        } else if self
            .allowed_origins
            .iter()
            .any(|o| origin_matches(o, origin))
        {
            Some(origin.to_owned())
        } else {
            None
        }
    }

    /// The shared part of both answers.
    fn grant(&self, allow_origin: String) -> Vec<(&'static str, String)> {
        let mut h = vec![("access-control-allow-origin", allow_origin.clone())];
        if allow_origin != "*" {
            h.push(("access-control-allow-credentials", "true".into()));
        }
        h.push((
            "access-control-allow-methods",
            CORS_ALLOWED_METHODS.join(", "),
        ));
        h.push((
            "access-control-expose-headers",
            CORS_EXPOSE_HEADERS.join(", "),
        ));
        h.push(("access-control-max-age", self.max_age_secs.to_string()));
        h.push(("vary", CORS_VARY.into()));
        h
    }

    /// S3's answer to a preflight: the response headers of a 200, or why
    /// it is refused.
    ///
    /// `origin` is the `Origin` header, `request_method` the
    /// `Access-Control-Request-Method`, `request_headers` the
    /// `Access-Control-Request-Headers` (comma-separated; every header is
    /// allowed by the rule's `*`, and S3 echoes them lower-cased).
    ///
    /// # Errors
    /// [`CorsRefusal::MissingOrigin`], [`CorsRefusal::InvalidMethod`] or
    /// [`CorsRefusal::NotAllowed`]; a bucket without any rule answers
    /// [`CorsRefusal::NotEnabled`], which is for the caller to report.
    pub fn preflight(
        &self,
        origin: Option<&str>,
        request_method: Option<&str>,
        request_headers: Option<&str>,
    ) -> std::result::Result<Vec<(&'static str, String)>, CorsRefusal> {
        let origin = origin.ok_or(CorsRefusal::MissingOrigin)?;
        let method = request_method.ok_or_else(|| CorsRefusal::InvalidMethod("null".into()))?;
        if !["GET", "PUT", "POST", "DELETE", "HEAD"].contains(&method) {
            return Err(CorsRefusal::InvalidMethod(method.to_owned()));
        }
        let allow = self
            .allow_origin(origin, method)
            .ok_or(CorsRefusal::NotAllowed)?;
        let mut h = self.grant(allow);
        let asked: Vec<String> = request_headers
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if !asked.is_empty() {
            h.push(("access-control-allow-headers", asked.join(", ")));
        }
        Ok(h)
    }

    /// The CORS headers S3 adds to the answer of an actual request (any
    /// status) from `origin` with `method`; empty when there is no
    /// `Origin` or the rule does not allow it, and the browser then hides
    /// the answer from the page.
    pub fn response_headers(
        &self,
        origin: Option<&str>,
        method: &str,
    ) -> Vec<(&'static str, String)> {
        origin
            .and_then(|o| self.allow_origin(o, method))
            .map(|allow| self.grant(allow))
            .unwrap_or_default()
    }
}

/// Whether `origin` matches the rule's `pattern`: exactly (scheme, host
/// and port, ASCII case-insensitively), or around its one `*`.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    let (pattern, origin) = (pattern.to_ascii_lowercase(), origin.to_ascii_lowercase());
    match pattern.split_once('*') {
        None => pattern == origin,
        Some((head, tail)) => {
            origin.len() >= head.len() + tail.len()
                && origin.starts_with(head)
                && origin.ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflight_of_an_allowed_origin_echoes_it_and_exposes_etag() {
        let c = CorsConfig::new(["http://127.0.0.1:8080"]).unwrap();
        let h = c
            .preflight(
                Some("http://127.0.0.1:8080"),
                Some("PUT"),
                Some("Content-Type, X-Amz-Checksum-Crc32c"),
            )
            .unwrap();
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("content-type, x-amz-checksum-crc32c")
        );
        assert_eq!(
            get(&h, "access-control-expose-headers"),
            Some("ETag, Location, x-amz-version-id")
        );
        assert_eq!(get(&h, "access-control-max-age"), Some("3000"));
    }

    #[test]
    fn refusals_are_s3s() {
        let c = CorsConfig::new(["https://app.example.com"]).unwrap();
        let r = c
            .preflight(Some("https://evil.example.com"), Some("PUT"), None)
            .unwrap_err();
        assert_eq!((r.status(), r.code()), (403, "AccessForbidden"));
        // Port and scheme are part of the origin.
        assert_eq!(
            c.preflight(Some("https://app.example.com:8443"), Some("PUT"), None),
            Err(CorsRefusal::NotAllowed)
        );
        assert_eq!(
            c.preflight(Some("http://app.example.com"), Some("PUT"), None),
            Err(CorsRefusal::NotAllowed)
        );
        // DELETE is a valid method the rule does not allow.
        assert_eq!(
            c.preflight(Some("https://app.example.com"), Some("DELETE"), None),
            Err(CorsRefusal::NotAllowed)
        );
        let r = c.preflight(None, Some("PUT"), None).unwrap_err();
        assert_eq!((r.status(), r.code()), (400, "BadRequest"));
        assert_eq!(
            c.preflight(Some("https://app.example.com"), None, None),
            Err(CorsRefusal::InvalidMethod("null".into()))
        );
        assert_eq!(
            c.preflight(Some("https://app.example.com"), Some("PATCH"), None),
            Err(CorsRefusal::InvalidMethod("PATCH".into()))
        );
    }

    #[test]
    fn one_wildcard_in_an_origin_matches_as_in_s3() {
        let c = CorsConfig::new(["https://*.example.com"]).unwrap();
        let h = c.response_headers(Some("https://app.example.com"), "PUT");
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        for other in [
            "https://example.com",
            "http://app.example.com",
            "https://app.example.org",
        ] {
            assert!(c.response_headers(Some(other), "PUT").is_empty(), "{other}");
        }
        assert!(CorsConfig::new(["https://*.*.example.com"]).is_err());
    }

    #[test]
    fn wildcard_rule_answers_star_without_credentials() {
        let c = CorsConfig::new(["*"]).unwrap();
        let h = c.response_headers(Some("https://any.example"), "PUT");
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert_eq!(get(&h, "vary"), Some(CORS_VARY));
    }

    #[test]
    fn actual_requests_get_headers_only_when_allowed() {
        let c = CorsConfig::new(["http://127.0.0.1:8080"]).unwrap();
        assert!(c.response_headers(None, "PUT").is_empty());
        assert!(
            c.response_headers(Some("http://127.0.0.1:9999"), "PUT")
                .is_empty()
        );
        let h = c.response_headers(Some("http://127.0.0.1:8080"), "PUT");
        assert_eq!(
            get(&h, "access-control-expose-headers"),
            Some("ETag, Location, x-amz-version-id")
        );
    }
}
