//! Verifying presigned requests the way S3 does.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use hmac::Mac;
use percent_encoding::percent_decode_str;

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::sigv4::{
    ALGORITHM, HmacSha256Pub, canonical_query_string, canonical_request, derive_signing_key,
    encode_path, string_to_sign,
};

/// How far in the future a request may be dated: 15 minutes (S3's allowed
/// clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// A request as received, before any decoding.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    /// Method, e.g. `PUT`.
    pub method: &'a str,
    /// Path as received (percent-encoded), e.g. `/uploads/a%20b.jpg`.
    pub path: &'a str,
    /// Raw query string without the `?`.
    pub query: &'a str,
    /// Headers; names are matched case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
}

/// What a valid presigned request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The access key that signed it.
    pub access_key_id: String,
    /// When it expires.
    pub expires_at: SystemTime,
    /// The decoded query parameters other than the `X-Amz-*` ones
    /// (e.g. `partNumber`, `uploadId`), in received order.
    pub params: Vec<(String, String)>,
    /// The lowercase names of the signed headers.
    pub signed_headers: Vec<String>,
}

impl VerifiedRequest {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks presigned requests against known credentials and one region.
#[derive(Debug, Clone)]
pub struct Verifier {
    region: String,
    keys: HashMap<String, Credentials>,
}

impl Verifier {
    /// A verifier for `region` that accepts signatures by any of
    /// `credentials` (several keys, e.g. the old and new keys around a
    /// rotation). Temporary credentials are refused from their
    /// [`Credentials::expires_at`] on, as S3 does (`ExpiredToken`), even
    /// when the URL's own expiry is later.
    pub fn new(region: &str, credentials: impl IntoIterator<Item = Credentials>) -> Self {
        Self {
            region: region.to_owned(),
            keys: credentials
                .into_iter()
                .map(|c| (c.access_key_id.clone(), c))
                .collect(),
        }
    }

    /// The region signatures must be scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    pub(crate) fn credentials_for(&self, access_key_id: &str) -> Option<&Credentials> {
        self.keys.get(access_key_id)
    }

    /// Verifies `req` as of `now`: the query parameters are well formed, the
    /// access key is known, the scope's region and service match, the
    /// request is neither expired nor dated more than 15 minutes ahead, the
    /// signed headers include `host` and were all sent, and the signature
    /// matches the canonical request recomputed from what was received.
    ///
    /// The credentials must not have expired (their `expires_at`).
    ///
    /// # Errors
    /// [`Error::MalformedQuery`], [`Error::InvalidAccessKeyId`],
    /// [`Error::Expired`], [`Error::NotYetValid`], [`Error::ExpiredToken`],
    /// [`Error::SignatureDoesNotMatch`].
    pub fn verify(&self, req: &IncomingRequest<'_>, now: SystemTime) -> Result<VerifiedRequest> {
        let malformed = |reason: &str| Error::MalformedQuery {
            reason: reason.to_owned(),
        };
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in req.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let dec = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| malformed("query is not UTF-8"))
            };
            pairs.push((dec(k)?, dec(v)?));
        }
        let one = |name: &str| -> Result<&str> {
            let mut it = pairs.iter().filter(|(k, _)| k == name);
            match (it.next(), it.next()) {
                (Some((_, v)), None) => Ok(v.as_str()),
                (None, _) => Err(malformed(&format!("missing {name}"))),
                (Some(_), Some(_)) => Err(malformed(&format!("{name} given twice"))),
            }
        };
        if one("X-Amz-Algorithm")? != ALGORITHM {
            return Err(malformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
        }
        let credential = one("X-Amz-Credential")?;
        let datetime = one("X-Amz-Date")?;
        let expires = one("X-Amz-Expires")?;
        let signed = one("X-Amz-SignedHeaders")?;
        let given_sig = one("X-Amz-Signature")?;

        let cred_parts: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, terminator] = cred_parts[..] else {
            return Err(malformed(
                "X-Amz-Credential must be KEY/DATE/REGION/s3/aws4_request",
            ));
        };
        if service != "s3" || terminator != "aws4_request" {
            return Err(malformed("credential scope must end with s3/aws4_request"));
        }
        if region != self.region {
            return Err(malformed(&format!(
                "credential region {region:?} is not {:?}",
                self.region
            )));
        }
        let creds = self
            .keys
            .get(akid)
            .ok_or_else(|| Error::InvalidAccessKeyId {
                access_key_id: akid.chars().take(128).collect(),
            })?;
        let signed_at = parse_amz_datetime(datetime)
            .ok_or_else(|| malformed("X-Amz-Date must be YYYYMMDDTHHMMSSZ"))?;
        if !datetime.starts_with(date) {
            return Err(malformed("X-Amz-Date does not match the credential date"));
        }
        let expires: u64 = expires
            .parse()
            .ok()
            .filter(|e| (1..=604_800).contains(e))
            .ok_or_else(|| malformed("X-Amz-Expires must be 1..=604800"))?;
        let expires_at = signed_at + Duration::from_secs(expires);
        if now >= expires_at {
            return Err(Error::Expired {
                expired_seconds_ago: now.duration_since(expires_at).unwrap_or_default().as_secs(),
            });
        }
        if now
            .checked_add(MAX_CLOCK_SKEW)
            .is_some_and(|limit| signed_at > limit)
        {
            return Err(Error::NotYetValid);
        }
        if let Some(c) = creds.expires_at
            && now >= c
        {
            return Err(Error::ExpiredToken {
                expired_seconds_ago: now.duration_since(c).unwrap_or_default().as_secs(),
            });
        }
        if creds.session_token.is_some()
            && pairs
                .iter()
                .find(|(k, _)| k == "X-Amz-Security-Token")
                .map(|(_, v)| v)
                != creds.session_token.as_ref()
        {
            return Err(Error::SignatureDoesNotMatch {
                reason: "session token".into(),
            });
        }

        let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(malformed("host must be a signed header"));
        }
        if signed_headers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(malformed("X-Amz-SignedHeaders must be sorted and unique"));
        }
        let mut headers = Vec::with_capacity(signed_headers.len());
        for name in &signed_headers {
            let values: Vec<&str> = req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
                .collect();
            if values.is_empty() {
                return Err(Error::SignatureDoesNotMatch {
                    reason: format!("signed header {name} was not sent"),
                });
            }
            headers.push((name.clone(), values.join(",")));
        }

        let without_sig: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "X-Amz-Signature")
            .cloned()
            .collect();
        let decoded_path = percent_decode_str(req.path)
            .decode_utf8()
            .map_err(|_| malformed("path is not UTF-8"))?;
        let canonical = canonical_request(
            req.method,
            &encode_path(&decoded_path),
            &canonical_query_string(&without_sig),
            &headers,
            signed,
        );
        let key = derive_signing_key(&creds.secret_access_key, date, region);
        let sts = string_to_sign(datetime, &credential[akid.len() + 1..], &canonical);
        // S3 compares the lowercase hex string: anything else never matches.
        let lower_hex = given_sig.len() == 64
            && given_sig
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let given = hex::decode(given_sig)
            .ok()
            .filter(|_| lower_hex)
            .ok_or_else(|| Error::SignatureDoesNotMatch {
                reason: "signature is not 64 lowercase hex digits".into(),
            })?;
        let mut mac = HmacSha256Pub::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(sts.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&given)
            .map_err(|_| Error::SignatureDoesNotMatch {
                reason: "signature differs from the canonical request's".into(),
            })?;

        Ok(VerifiedRequest {
            access_key_id: akid.to_owned(),
            expires_at,
            params: pairs
                .into_iter()
                .filter(|(k, _)| !k.starts_with("X-Amz-"))
                .collect(),
            signed_headers,
        })
    }
}

/// Parses `YYYYMMDDTHHMMSSZ`.
fn parse_amz_datetime(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    let odt = time::PrimitiveDateTime::new(date, t).assume_utc();
    let secs = u64::try_from(odt.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{Method, PresignRequest, Presigner};
    use upload_core::ObjectKey;
    use url::Url;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn setup() -> (Presigner, Verifier) {
        let c = Credentials::new("AKIDTEST", "secret/key");
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:8080").unwrap(),
            "us-east-1",
            c.clone(),
        )
        .unwrap();
        (p, Verifier::new("us-east-1", [c]))
    }

    fn check(
        v: &Verifier,
        url: &Url,
        method: &str,
        headers: &[(&str, &str)],
        now: u64,
    ) -> Result<VerifiedRequest> {
        let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let mut all: Vec<(&str, &str)> = vec![("Host", host.as_str())];
        all.extend_from_slice(headers);
        v.verify(
            &IncomingRequest {
                method,
                path: url.path(),
                query: url.query().unwrap_or(""),
                headers: &all,
            },
            at(now),
        )
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let (p, v) = setup();
        let key = ObjectKey::new("uploads/a b+c/ü.jpg").unwrap();
        let r = p
            .presign_put(
                "uploads",
                &key,
                "image/jpeg",
                Some(10),
                Duration::from_secs(300),
                at(T0),
            )
            .unwrap();
        let good = [("Content-Type", "image/jpeg"), ("content-length", "10")];
        let ok = check(&v, &r.url, "PUT", &good, T0 + 10).unwrap();
        assert_eq!(ok.access_key_id, "AKIDTEST");
        assert_eq!(ok.expires_at, at(T0 + 300));
        assert_eq!(
            ok.signed_headers,
            ["content-length", "content-type", "host"]
        );

        // Expired: at and after the expiry instant.
        for now in [T0 + 300, T0 + 1000] {
            assert!(matches!(
                check(&v, &r.url, "PUT", &good, now),
                Err(Error::Expired { .. })
            ));
        }
        // Dated too far in the future.
        assert!(matches!(
            check(&v, &r.url, "PUT", &good, T0 - 901),
            Err(Error::NotYetValid)
        ));
        assert!(
            check(&v, &r.url, "PUT", &good, T0 - 899).is_ok(),
            "within the 15 min skew"
        );
        // Another content type, another length, another method.
        let e = check(
            &v,
            &r.url,
            "PUT",
            &[("Content-Type", "text/html"), ("content-length", "10")],
            T0,
        )
        .unwrap_err();
        assert!(matches!(e, Error::SignatureDoesNotMatch { .. }), "{e:?}");
        assert_eq!(
            (e.s3_code(), e.http_status()),
            ("SignatureDoesNotMatch", 403)
        );
        let e = check(
            &v,
            &r.url,
            "PUT",
            &[("Content-Type", "image/jpeg"), ("content-length", "11")],
            T0,
        )
        .unwrap_err();
        assert!(matches!(e, Error::SignatureDoesNotMatch { .. }), "{e:?}");
        let e = check(&v, &r.url, "GET", &good, T0).unwrap_err();
        assert!(matches!(e, Error::SignatureDoesNotMatch { .. }), "{e:?}");
        // A signed header not sent at all.
        let e = check(&v, &r.url, "PUT", &[("content-length", "10")], T0).unwrap_err();
        assert!(matches!(e, Error::SignatureDoesNotMatch { .. }), "{e:?}");
        // Tampered key, expiry, signature.
        let mut t = r.url.clone();
        t.set_path("/uploads/uploads/a%20b%2Bc/x.jpg");
        assert!(matches!(
            check(&v, &t, "PUT", &good, T0),
            Err(Error::SignatureDoesNotMatch { .. })
        ));
        let mut t = r.url.clone();
        t.set_query(Some(
            &r.url
                .query()
                .unwrap()
                .replace("X-Amz-Expires=300", "X-Amz-Expires=3000"),
        ));
        assert!(matches!(
            check(&v, &t, "PUT", &good, T0),
            Err(Error::SignatureDoesNotMatch { .. })
        ));
        let mut t = r.url.clone();
        let q = r.url.query().unwrap();
        let flipped = match q.strip_suffix('0') {
            Some(rest) => format!("{rest}1"),
            None => format!("{}0", &q[..q.len() - 1]),
        };
        t.set_query(Some(&flipped));
        assert!(matches!(
            check(&v, &t, "PUT", &good, T0),
            Err(Error::SignatureDoesNotMatch { .. })
        ));
        // The same signature in uppercase hex is not the signature.
        let mut t = r.url.clone();
        let q = r.url.query().unwrap();
        let (head, sig) = q.split_at(q.len() - 64);
        t.set_query(Some(&format!("{head}{}", sig.to_ascii_uppercase())));
        assert!(matches!(
            check(&v, &t, "PUT", &good, T0),
            Err(Error::SignatureDoesNotMatch { .. })
        ));
        // Unknown key, other region, malformed query.
        let other = Verifier::new("us-east-1", [Credentials::new("OTHER", "x")]);
        let e = check(&other, &r.url, "PUT", &good, T0).unwrap_err();
        assert!(matches!(e, Error::InvalidAccessKeyId { .. }), "{e:?}");
        let eu = Verifier::new("eu-west-1", [Credentials::new("AKIDTEST", "secret/key")]);
        assert!(matches!(
            check(&eu, &r.url, "PUT", &good, T0),
            Err(Error::MalformedQuery { .. })
        ));
        for q in [
            "",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
            "a=%FF",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Algorithm=AWS4-HMAC-SHA256",
        ] {
            let mut t = r.url.clone();
            t.set_query(Some(q));
            let e = check(&v, &t, "PUT", &good, T0).unwrap_err();
            assert!(matches!(e, Error::MalformedQuery { .. }), "{q}: {e:?}");
            assert_eq!(e.s3_code(), "AuthorizationQueryParametersError");
        }
    }

    /// A URL outliving its temporary credentials (as aws-sdk-s3 presigns
    /// them) stops working when they expire, with S3's `ExpiredToken`.
    #[test]
    fn expired_credentials_are_refused_before_the_url_expires() {
        let c = Credentials::new("ASIATEMP", "secret").with_session_token("tok");
        let p = Presigner::new(
            Url::parse("http://127.0.0.1:8080").unwrap(),
            "us-east-1",
            c.clone(),
        )
        .unwrap();
        let v = Verifier::new("us-east-1", [c.with_expiry(at(T0 + 100))]);
        let key = ObjectKey::new("a.jpg").unwrap();
        let r = p
            .presign_get("b-1", &key, Duration::from_secs(300), at(T0))
            .unwrap();
        let ok = check(&v, &r.url, "GET", &[], T0 + 99).unwrap();
        assert_eq!(ok.expires_at, at(T0 + 300));
        for (now, ago) in [(T0 + 100, 0), (T0 + 250, 150)] {
            let e = check(&v, &r.url, "GET", &[], now).unwrap_err();
            assert!(
                matches!(e, Error::ExpiredToken { expired_seconds_ago } if expired_seconds_ago == ago),
                "{e:?}"
            );
            assert_eq!((e.s3_code(), e.http_status()), ("ExpiredToken", 400));
        }
        // The URL's own expiry still answers AccessDenied.
        assert!(matches!(
            check(&v, &r.url, "GET", &[], T0 + 300),
            Err(Error::Expired { .. })
        ));
    }

    #[test]
    fn part_parameters_come_back_decoded() {
        let (p, v) = setup();
        let key = ObjectKey::new("big.bin").unwrap();
        let r = p
            .presign(
                &PresignRequest::new(Method::Put, "b-1", &key, Duration::from_secs(60))
                    .with_query("partNumber", "3")
                    .with_query("uploadId", "a/b c"),
                at(T0),
            )
            .unwrap();
        let ok = check(&v, &r.url, "PUT", &[], T0).unwrap();
        assert_eq!(ok.param("partNumber"), Some("3"));
        assert_eq!(ok.param("uploadId"), Some("a/b c"));
        assert_eq!(ok.param("X-Amz-Signature"), None);
    }

    #[test]
    fn parses_dates() {
        assert_eq!(
            parse_amz_datetime("20130524T000000Z"),
            Some(at(1_369_353_600))
        );
        for bad in [
            "",
            "20130524T000000",
            "2013052XT000000Z",
            "20131324T000000Z",
            "20130524T250000Z",
            "+0130524T000000Z",
        ] {
            assert_eq!(parse_amz_datetime(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn presign_then_verify(key in "[a-zA-Z0-9 _+%!()-]{1,30}(/[a-zA-Z0-9 .ü_-]{1,10}){0,3}",
                               ct in "[a-z]{1,10}/[a-z0-9.+-]{1,20}",
                               expires in 1u64..=604_800, elapsed in 0u64..700_000) {
            let Ok(key) = ObjectKey::new(key) else { return Ok(()) };
            let (p, v) = setup();
            let r = p.presign_put("bkt", &key, &ct, None, Duration::from_secs(expires), at(T0)).unwrap();
            let res = check(&v, &r.url, "PUT", &[("content-type", ct.as_str())], T0 + elapsed);
            if elapsed < expires {
                proptest::prop_assert!(res.is_ok(), "{res:?}");
            } else {
                proptest::prop_assert!(matches!(res, Err(Error::Expired { .. })), "{res:?}");
            }
        }
    }
}
