//! Standard Webhooks signatures: [`WebhookSigner`] for the sender,
//! [`WebhookVerifier`] for the receiving application.
//!
//! A request carries `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature`: space-separated `v1,{base64 HMAC-SHA256}` entries,
//! each over `{id}.{timestamp}.{body}` with the secret's bytes as key. A
//! secret is written `whsec_{base64 of its bytes}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header of the message ID ([`UploadNotification::id`](super::UploadNotification::id)).
pub const HEADER_ID: &str = "webhook-id";
/// Header of the send time, unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header of the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Prefix of a serialized secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Default tolerance between the timestamp and the receiver's clock, in
/// either direction: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook request was refused by [`WebhookVerifier`], or a secret
/// could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is not visible ASCII.
    #[error("header {0} is not valid text")]
    InvalidHeader(&'static str),
    /// `webhook-timestamp` is not an integer number of unix seconds.
    #[error("webhook-timestamp {0:?} is not unix seconds")]
    BadTimestamp(String),
    /// The timestamp is older than the tolerance allows (a replay, or a
    /// delivery retried after too long: the sender signs each attempt
    /// anew).
    #[error("webhook-timestamp {timestamp} is more than {tolerance_secs} s before now ({now})")]
    TooOld {
        /// The request's timestamp, unix seconds.
        timestamp: i64,
        /// The receiver's clock, unix seconds.
        now: i64,
        /// The tolerance, seconds.
        tolerance_secs: u64,
    },
    /// The timestamp is further in the future than the tolerance allows.
    #[error("webhook-timestamp {timestamp} is more than {tolerance_secs} s after now ({now})")]
    TooNew {
        /// The request's timestamp, unix seconds.
        timestamp: i64,
        /// The receiver's clock, unix seconds.
        now: i64,
        /// The tolerance, seconds.
        tolerance_secs: u64,
    },
    /// No `v1` signature matches the body under any of the secrets.
    #[error("no matching signature")]
    NoMatchingSignature,
    /// A secret that is not `whsec_` followed by base64, or is empty.
    #[error("invalid webhook secret: {reason}")]
    InvalidSecret {
        /// What is wrong.
        reason: String,
    },
}

/// A signing secret: its raw bytes. `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({} bytes)", self.0.len())
    }
}

impl WebhookSecret {
    /// Parses `whsec_{base64}` (standard alphabet, padded); the prefix may
    /// be left out.
    ///
    /// # Errors
    /// [`VerifyError::InvalidSecret`] for bad base64 or no bytes.
    pub fn parse(s: &str) -> Result<Self, VerifyError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|e| VerifyError::InvalidSecret {
                reason: e.to_string(),
            })?;
        Self::from_bytes(bytes)
    }

    /// A secret of these bytes (use 24 to 64 random bytes).
    ///
    /// # Errors
    /// [`VerifyError::InvalidSecret`] when empty.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, VerifyError> {
        if bytes.is_empty() {
            return Err(VerifyError::InvalidSecret {
                reason: "no bytes".into(),
            });
        }
        Ok(Self(bytes))
    }

    /// A new random secret of 32 bytes: two v4 UUIDs, so 244 of its bits
    /// come from the OS random generator (the other 12 are the UUIDs'
    /// fixed version and variant bits).
    pub fn generate() -> Self {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(bytes)
    }

    /// The `whsec_{base64}` form, to give to the receiving application.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,{base64}` (one entry per signing secret).
    pub signature: String,
}

/// Signs webhook requests (Standard Webhooks `v1`, HMAC-SHA256).
#[derive(Debug, Clone)]
pub struct WebhookSigner {
    secrets: Vec<WebhookSecret>,
}

impl WebhookSigner {
    /// A signer with one secret.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            secrets: vec![secret],
        }
    }

    /// Adds a secret: each request then carries one signature per secret
    /// (space-separated), for rotating secrets without a gap.
    pub fn with_secret(mut self, secret: WebhookSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// The `v1,{base64}` signature of `body` sent as `id` at `timestamp`
    /// (unix seconds) under the first secret.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(
                self.secrets[0]
                    .mac(id, timestamp, body)
                    .finalize()
                    .into_bytes()
            )
        )
    }

    /// The headers of `body` sent as `id` at `timestamp` (unix seconds),
    /// with one signature per secret.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
        let signature = self
            .secrets
            .iter()
            .map(|s| {
                format!(
                    "v1,{}",
                    STANDARD.encode(s.mac(id, timestamp, body).finalize().into_bytes())
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        SignedHeaders {
            id: id.to_owned(),
            timestamp,
            signature,
        }
    }

    /// [`headers`](Self::headers) at the current time.
    pub fn headers_now(&self, id: &str, body: &[u8]) -> SignedHeaders {
        self.headers(id, unix_now(SystemTime::now()), body)
    }
}

/// Checks webhook requests on the receiving side.
///
/// ```
/// use upload_pipeline::notify::{WebhookSecret, WebhookSigner, WebhookVerifier};
/// let secret = WebhookSecret::generate();
/// let verifier = WebhookVerifier::new(WebhookSecret::parse(&secret.to_whsec()).unwrap());
/// let h = WebhookSigner::new(secret).headers_now("upl_1", b"{}");
/// let ts = h.timestamp.to_string();
/// verifier
///     .verify_parts(Some(&h.id), Some(&ts), Some(&h.signature), b"{}")
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl WebhookVerifier {
    /// A verifier of one secret, with the 5-minute tolerance.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// [`new`](Self::new) of a `whsec_` secret.
    ///
    /// # Errors
    /// [`VerifyError::InvalidSecret`].
    pub fn from_whsec(secret: &str) -> Result<Self, VerifyError> {
        Ok(Self::new(WebhookSecret::parse(secret)?))
    }

    /// Also accepts signatures under `secret` (during a rotation).
    pub fn with_secret(mut self, secret: WebhookSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Sets how far the timestamp may be from the receiver's clock, either
    /// way (whole seconds; default 5 minutes).
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a request from its headers and raw body (the exact bytes
    /// received, before any JSON parsing). Returns the `webhook-id`.
    ///
    /// # Errors
    /// See [`verify_parts_at`](Self::verify_parts_at); a header that is not
    /// visible ASCII is [`VerifyError::InvalidHeader`].
    pub fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<String, VerifyError> {
        let get = |name: &'static str| -> Result<Option<&str>, VerifyError> {
            headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| VerifyError::InvalidHeader(name)))
                .transpose()
        };
        let id = get(HEADER_ID)?;
        self.verify_parts(id, get(HEADER_TIMESTAMP)?, get(HEADER_SIGNATURE)?, body)?;
        Ok(id.unwrap_or_default().to_owned())
    }

    /// Verifies the three header values (`None` when absent) and body
    /// against the current time.
    ///
    /// # Errors
    /// See [`verify_parts_at`](Self::verify_parts_at).
    pub fn verify_parts(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_parts_at(id, timestamp, signature, body, SystemTime::now())
    }

    /// Verifies the three header values and body as of `now`.
    ///
    /// # Errors
    /// [`VerifyError::MissingHeader`] (checked in the order id, timestamp,
    /// signature); [`VerifyError::BadTimestamp`];
    /// [`VerifyError::TooOld`] / [`VerifyError::TooNew`] beyond the
    /// tolerance; [`VerifyError::NoMatchingSignature`] unless one `v1`
    /// entry matches under one secret (compared in constant time; entries
    /// of other versions or bad base64 are skipped).
    pub fn verify_parts_at(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let id = id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
        let ts_text = timestamp.ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
        let signature = signature.ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
        let timestamp: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp(ts_text.chars().take(40).collect()))?;
        let now = unix_now(now);
        let tolerance_secs = self.tolerance.as_secs();
        let tol = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(timestamp) > tol {
            return Err(VerifyError::TooOld {
                timestamp,
                now,
                tolerance_secs,
            });
        }
        if timestamp.saturating_sub(now) > tol {
            return Err(VerifyError::TooNew {
                timestamp,
                now,
                tolerance_secs,
            });
        }
        // At most MAX_SIGNATURES entries of 32 bytes are looked at, and the
        // MAC is computed once per secret: a header stuffed with entries
        // costs the receiver no more than a real one.
        let candidates: Vec<Vec<u8>> = signature
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
            .filter(|sig| sig.len() == 32)
            .take(MAX_SIGNATURES)
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::NoMatchingSignature);
        }
        for secret in &self.secrets {
            let mac = secret.mac(id, timestamp, body);
            for sig in &candidates {
                // `verify_slice` compares in constant time.
                if mac.clone().verify_slice(sig).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(VerifyError::NoMatchingSignature)
    }
}

/// Most `v1` signatures of one `webhook-signature` header a verifier
/// checks (a sender signs with one secret, two during a rotation).
pub const MAX_SIGNATURES: usize = 8;

/// Unix seconds of `t` (negative before 1970).
fn unix_now(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks reference library:
    // standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs,
    // `test_sign` (commit 1e88c9ce08bb2c605fea9a2a540b4a91d31c7a62).
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1649367553;
    const PAYLOAD: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(ts: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(ts as u64)
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::from_whsec(SECRET).unwrap()
    }

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let signer = WebhookSigner::new(WebhookSecret::parse(SECRET).unwrap());
        assert_eq!(signer.sign(MSG_ID, TIMESTAMP, PAYLOAD), SIGNATURE);
        let h = signer.headers(MSG_ID, TIMESTAMP, PAYLOAD);
        assert_eq!(h.signature, SIGNATURE);
        assert_eq!(
            WebhookSecret::parse(SECRET).unwrap().to_whsec(),
            SECRET,
            "whsec round trip"
        );
    }

    #[test]
    fn verifies_the_test_vector_within_tolerance_both_ways() {
        let ts = TIMESTAMP.to_string();
        let v = verifier();
        for now in [TIMESTAMP, TIMESTAMP - 300, TIMESTAMP + 300] {
            v.verify_parts_at(Some(MSG_ID), Some(&ts), Some(SIGNATURE), PAYLOAD, at(now))
                .unwrap();
        }
        assert_eq!(
            v.verify_parts_at(
                Some(MSG_ID),
                Some(&ts),
                Some(SIGNATURE),
                PAYLOAD,
                at(TIMESTAMP + 301)
            ),
            Err(VerifyError::TooOld {
                timestamp: TIMESTAMP,
                now: TIMESTAMP + 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            v.verify_parts_at(
                Some(MSG_ID),
                Some(&ts),
                Some(SIGNATURE),
                PAYLOAD,
                at(TIMESTAMP - 301)
            ),
            Err(VerifyError::TooNew {
                timestamp: TIMESTAMP,
                now: TIMESTAMP - 301,
                tolerance_secs: 300
            })
        );
        let v10 = verifier().with_tolerance(Duration::from_secs(10));
        assert!(matches!(
            v10.verify_parts_at(
                Some(MSG_ID),
                Some(&ts),
                Some(SIGNATURE),
                PAYLOAD,
                at(TIMESTAMP + 11)
            ),
            Err(VerifyError::TooOld { .. })
        ));
    }

    #[test]
    fn refusals_are_typed() {
        let ts = TIMESTAMP.to_string();
        let v = verifier();
        let now = at(TIMESTAMP);
        let check = |id, t, s, body: &[u8]| v.verify_parts_at(id, t, s, body, now);
        assert_eq!(
            check(None, Some(&ts), Some(SIGNATURE), PAYLOAD),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            check(Some(MSG_ID), None, Some(SIGNATURE), PAYLOAD),
            Err(VerifyError::MissingHeader("webhook-timestamp"))
        );
        assert_eq!(
            check(Some(MSG_ID), Some(&ts), None, PAYLOAD),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            check(Some(MSG_ID), Some("soon"), Some(SIGNATURE), PAYLOAD),
            Err(VerifyError::BadTimestamp("soon".into()))
        );
        // Tampered body, other ID, signature of another version, bad base64.
        for (id, sig, body) in [
            (MSG_ID, SIGNATURE, &br#"{"email":"test@example.com"}"#[..]),
            ("msg_other", SIGNATURE, PAYLOAD),
            (
                MSG_ID,
                "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
                PAYLOAD,
            ),
            (MSG_ID, "v1,not base64!", PAYLOAD),
        ] {
            assert_eq!(
                check(Some(id), Some(&ts), Some(sig), body),
                Err(VerifyError::NoMatchingSignature),
                "{id} {sig}"
            );
        }
        let wrong = WebhookVerifier::new(WebhookSecret::from_bytes(b"other".to_vec()).unwrap());
        assert_eq!(
            wrong.verify_parts_at(Some(MSG_ID), Some(&ts), Some(SIGNATURE), PAYLOAD, now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(matches!(
            WebhookSecret::parse("whsec_%%%"),
            Err(VerifyError::InvalidSecret { .. })
        ));
        assert!(matches!(
            WebhookSecret::parse("whsec_"),
            Err(VerifyError::InvalidSecret { .. })
        ));
    }

    #[test]
    fn any_of_several_signatures_and_secrets_matches() {
        let ts = TIMESTAMP.to_string();
        let now = at(TIMESTAMP);
        // Entries from the reference library's multi-signature test.
        let many = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {SIGNATURE}"
        );
        verifier()
            .verify_parts_at(Some(MSG_ID), Some(&ts), Some(&many), PAYLOAD, now)
            .unwrap();
        // A rotated signer signs with both; a verifier knowing either accepts.
        let old = WebhookSecret::parse(SECRET).unwrap();
        let new = WebhookSecret::from_bytes(vec![7; 32]).unwrap();
        let h = WebhookSigner::new(new.clone())
            .with_secret(old.clone())
            .headers(MSG_ID, TIMESTAMP, PAYLOAD);
        assert_eq!(h.signature.split(' ').count(), 2);
        assert!(h.signature.ends_with(SIGNATURE));
        for v in [
            WebhookVerifier::new(old),
            WebhookVerifier::new(new.clone()),
            WebhookVerifier::new(WebhookSecret::from_bytes(vec![1]).unwrap()).with_secret(new),
        ] {
            v.verify_parts_at(Some(MSG_ID), Some(&ts), Some(&h.signature), PAYLOAD, now)
                .unwrap();
        }
    }

    #[test]
    fn verify_reads_a_header_map() {
        let signer = WebhookSigner::new(WebhookSecret::parse(SECRET).unwrap());
        let h = signer.headers_now(MSG_ID, PAYLOAD);
        let mut map = http::HeaderMap::new();
        map.insert(HEADER_ID, MSG_ID.parse().unwrap());
        map.insert(HEADER_TIMESTAMP, h.timestamp.to_string().parse().unwrap());
        map.insert(HEADER_SIGNATURE, h.signature.parse().unwrap());
        assert_eq!(verifier().verify(&map, PAYLOAD).unwrap(), MSG_ID);
        map.remove(HEADER_SIGNATURE);
        assert_eq!(
            verifier().verify(&map, PAYLOAD),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
    }
}

#[cfg(test)]
mod stuffing_tests {
    use super::*;

    #[test]
    fn a_header_stuffed_with_signatures_is_refused_after_the_first_few() {
        let secret = WebhookSecret::generate();
        let signer = WebhookSigner::new(secret.clone());
        let verifier = WebhookVerifier::new(secret);
        let now = SystemTime::now();
        let ts = unix_now(now);
        let body = b"{}";
        let good = signer.sign("msg_1", ts, body);
        let junk = format!("v1,{}", STANDARD.encode([0u8; 32]));
        // The real signature after MAX_SIGNATURES junk entries is not looked at.
        let stuffed = format!("{} {good}", [junk.as_str(); MAX_SIGNATURES].join(" "));
        assert_eq!(
            verifier.verify_parts_at(
                Some("msg_1"),
                Some(&ts.to_string()),
                Some(&stuffed),
                body,
                now
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        // Within the bound, and entries of the wrong length skipped, it is.
        let short = format!("v1,{}", STANDARD.encode([0u8; 4]));
        let ok = format!("{short} {junk} {good}");
        assert_eq!(
            verifier.verify_parts_at(Some("msg_1"), Some(&ts.to_string()), Some(&ok), body, now),
            Ok(())
        );
    }
}
