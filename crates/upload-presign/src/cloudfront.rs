//! CloudFront signed URLs (feature `cloudfront`): serve private variants
//! through the CDN instead of presigned S3 GETs.
//!
//! Per the CloudFront developer guide ("Creating a signed URL using a
//! canned policy" / "... a custom policy"): the policy JSON (no whitespace)
//! is signed with RSA-SHA1 (PKCS #1 v1.5) by the private key of a key in the
//! distribution's trusted key group; the signature, and for custom policies
//! the policy itself, are base64-encoded with CloudFront's URL-safe
//! alphabet (`+` → `-`, `=` → `_`, `/` → `~`) and appended as query
//! parameters with the public key's ID:
//!
//! - canned: `?Expires=EPOCH&Signature=...&Key-Pair-Id=K...` (one URL, an
//!   end time);
//! - custom: `?Policy=...&Signature=...&Key-Pair-Id=K...` (a resource that
//!   may end in `*`, an end time, and optionally a start time and a source
//!   IP range).
//!
//! Signatures are deterministic, so they are checked byte for byte against
//! openssl in the tests. The `rsa` crate signs with blinding, which guards
//! the private key against timing attacks (RUSTSEC-2023-0071 concerns
//! unblinded decryption).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha1::Sha1;
use url::Url;

/// CloudFront signing failed or was asked something it cannot express.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudFrontError {
    /// The private key is not an RSA key in PKCS #8 (`BEGIN PRIVATE KEY`)
    /// or PKCS #1 (`BEGIN RSA PRIVATE KEY`) PEM.
    #[error("not an RSA private key in PEM: {0}")]
    InvalidKey(String),
    /// The key pair ID is empty or not `[A-Z0-9]`.
    #[error("invalid CloudFront key pair ID {0:?}")]
    InvalidKeyPairId(String),
    /// The URL to sign is not http(s), or already carries a signature
    /// parameter (`Expires`, `Policy`, `Signature`, `Key-Pair-Id`).
    #[error("cannot sign {url}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An end time before the start time, or a time before 1970.
    #[error("invalid policy times: {0}")]
    InvalidTimes(&'static str),
    /// The source IP range is not an IPv4/IPv6 CIDR block.
    #[error("invalid source IP range {0:?}")]
    InvalidIpRange(String),
    /// RSA signing failed.
    #[error("RSA signing failed: {0}")]
    Signing(String),
}

/// Signs CloudFront URLs with one key of a trusted key group.
#[derive(Clone)]
pub struct CloudFrontSigner {
    key_pair_id: String,
    key: SigningKey<Sha1>,
}

impl std::fmt::Debug for CloudFrontSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudFrontSigner")
            .field("key_pair_id", &self.key_pair_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A custom policy: what, when and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPolicy {
    /// The resource: a full URL, or one with `*` wildcards (e.g.
    /// `https://d111111abcdef8.cloudfront.net/variants/u1/*`).
    pub resource: String,
    /// End of validity (`DateLessThan`).
    pub expires_at: SystemTime,
    /// Start of validity (`DateGreaterThan`), if any.
    pub starts_at: Option<SystemTime>,
    /// Allowed client addresses (`IpAddress`), a CIDR block such as
    /// `192.0.2.0/24`, if any.
    pub source_ip: Option<String>,
}

fn epoch(t: SystemTime) -> Result<u64, CloudFrontError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| CloudFrontError::InvalidTimes("before 1970"))
}

/// CloudFront's URL-safe base64: `+` → `-`, `=` → `_`, `/` → `~`.
pub fn cloudfront_base64(bytes: &[u8]) -> String {
    BASE64
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

fn check_cidr(s: &str) -> Result<(), CloudFrontError> {
    let bad = || CloudFrontError::InvalidIpRange(s.chars().take(100).collect());
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    match addr.parse::<std::net::IpAddr>().map_err(|_| bad())? {
        std::net::IpAddr::V4(_) if bits <= 32 => Ok(()),
        std::net::IpAddr::V6(_) if bits <= 128 => Ok(()),
        _ => Err(bad()),
    }
}

impl CloudFrontSigner {
    /// A signer for the public key `key_pair_id` (e.g. `K2JCJMDEHXQW5F`)
    /// whose private key is `private_key_pem` (PKCS #8 or PKCS #1 PEM).
    ///
    /// # Errors
    /// [`CloudFrontError::InvalidKeyPairId`], [`CloudFrontError::InvalidKey`].
    pub fn from_pem(key_pair_id: &str, private_key_pem: &str) -> Result<Self, CloudFrontError> {
        if key_pair_id.is_empty()
            || !key_pair_id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(CloudFrontError::InvalidKeyPairId(
                key_pair_id.chars().take(64).collect(),
            ));
        }
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(private_key_pem))
            .map_err(|e| CloudFrontError::InvalidKey(e.to_string()))?;
        Ok(Self {
            key_pair_id: key_pair_id.to_owned(),
            key: SigningKey::<Sha1>::new(key),
        })
    }

    /// The key pair ID.
    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    /// RSA-SHA1 signature of `policy`, in CloudFront's base64.
    ///
    /// # Errors
    /// [`CloudFrontError::Signing`].
    pub fn sign_policy(&self, policy: &str) -> Result<String, CloudFrontError> {
        let sig = self
            .key
            .try_sign_with_rng(&mut rand_core::OsRng, policy.as_bytes())
            .map_err(|e| CloudFrontError::Signing(e.to_string()))?;
        Ok(cloudfront_base64(&sig.to_bytes()))
    }

    fn checked_url(url: &str) -> Result<Url, CloudFrontError> {
        let bad = |reason| CloudFrontError::InvalidUrl {
            url: url.chars().take(200).collect(),
            reason,
        };
        let u = Url::parse(url).map_err(|_| bad("not a URL"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(bad("scheme must be http or https"));
        }
        if u.query_pairs()
            .any(|(k, _)| ["Expires", "Policy", "Signature", "Key-Pair-Id"].contains(&k.as_ref()))
        {
            return Err(bad("already carries a CloudFront signature parameter"));
        }
        Ok(u)
    }

    fn append(url: &str, params: &[(&str, &str)]) -> String {
        let mut out = url.to_owned();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in params {
            out.push(sep);
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            sep = '&';
        }
        out
    }

    /// The canned-policy policy document of `url` until `expires_at`.
    ///
    /// # Errors
    /// [`CloudFrontError::InvalidTimes`] before 1970.
    pub fn canned_policy(url: &str, expires_at: SystemTime) -> Result<String, CloudFrontError> {
        let resource = serde_json::to_string(url).expect("strings serialise");
        Ok(format!(
            r#"{{"Statement":[{{"Resource":{resource},"Condition":{{"DateLessThan":{{"AWS:EpochTime":{}}}}}}}]}}"#,
            epoch(expires_at)?
        ))
    }

    /// `url` signed with a canned policy valid until `expires_at`.
    ///
    /// # Errors
    /// [`CloudFrontError::InvalidUrl`], [`CloudFrontError::InvalidTimes`],
    /// [`CloudFrontError::Signing`].
    pub fn sign_canned(
        &self,
        url: &str,
        expires_at: SystemTime,
    ) -> Result<String, CloudFrontError> {
        Self::checked_url(url)?;
        let policy = Self::canned_policy(url, expires_at)?;
        let sig = self.sign_policy(&policy)?;
        let expires = epoch(expires_at)?.to_string();
        Ok(Self::append(
            url,
            &[
                ("Expires", &expires),
                ("Signature", &sig),
                ("Key-Pair-Id", &self.key_pair_id),
            ],
        ))
    }

    /// The policy document of `policy`.
    ///
    /// # Errors
    /// [`CloudFrontError::InvalidTimes`] when it starts after it ends;
    /// [`CloudFrontError::InvalidIpRange`].
    pub fn custom_policy(policy: &CustomPolicy) -> Result<String, CloudFrontError> {
        let end = epoch(policy.expires_at)?;
        let mut condition = format!(r#"{{"DateLessThan":{{"AWS:EpochTime":{end}}}"#);
        if let Some(start) = policy.starts_at {
            let start = epoch(start)?;
            if start >= end {
                return Err(CloudFrontError::InvalidTimes(
                    "the start is not before the end",
                ));
            }
            condition.push_str(&format!(
                r#","DateGreaterThan":{{"AWS:EpochTime":{start}}}"#
            ));
        }
        if let Some(ip) = &policy.source_ip {
            check_cidr(ip)?;
            condition.push_str(&format!(r#","IpAddress":{{"AWS:SourceIp":"{ip}"}}"#));
        }
        condition.push('}');
        let resource = serde_json::to_string(&policy.resource).expect("strings serialise");
        Ok(format!(
            r#"{{"Statement":[{{"Resource":{resource},"Condition":{condition}}}]}}"#
        ))
    }

    /// `url` signed with `policy` (whose resource must match `url`, for
    /// instance as a `*` prefix covering many variants with one policy).
    ///
    /// # Errors
    /// As [`CloudFrontSigner::custom_policy`], and
    /// [`CloudFrontError::InvalidUrl`], [`CloudFrontError::Signing`].
    pub fn sign_custom(&self, url: &str, policy: &CustomPolicy) -> Result<String, CloudFrontError> {
        Self::checked_url(url)?;
        let doc = Self::custom_policy(policy)?;
        let sig = self.sign_policy(&doc)?;
        let encoded = cloudfront_base64(doc.as_bytes());
        Ok(Self::append(
            url,
            &[
                ("Policy", &encoded),
                ("Signature", &sig),
                ("Key-Pair-Id", &self.key_pair_id),
            ],
        ))
    }
}
