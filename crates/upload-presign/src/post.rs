//! Presigned POST (browser form uploads) with a SigV4-signed policy
//! document, and its verification.
//!
//! The policy's `content-length-range` is enforced by S3 on the file:
//! [`presign_post_upload`] bounds it to exactly the size the client
//! declared, or to the upload policy's maximum when it declared none. The
//! client sends a
//! `multipart/form-data` POST to [`PresignedPost::url`] with every field of
//! [`PresignedPost::fields`], in order, then the file as the last field,
//! named `file`.
//!
//! Format per AWS "Browser-based uploads using POST (AWS Signature Version
//! 4)" and "Creating a POST policy": the policy is JSON with `expiration`
//! (ISO 8601) and `conditions` (exact matches `{"field": "value"}` or
//! `["eq", "$field", "value"]`, prefixes `["starts-with", "$field",
//! "prefix"]`, and `["content-length-range", min, max]`); it is
//! base64-encoded into the `policy` field and the signature is
//! `hex(HMAC-SHA256(signing key, base64 policy))`. Every form field except
//! `policy`, `x-amz-signature`, `file` and `x-ignore-*` must be covered by
//! a condition; field names compare case-insensitively.
//!
//! Not supported (and refused by the verifier): `${filename}` key
//! substitution and `success_action_redirect`; the key is always chosen by
//! the server.
//!
//! **A form cannot be create-only.** S3 POST policies have no
//! `If-None-Match` condition and S3 ignores the header on form uploads, so
//! a form replayed inside its expiry replaces the object it wrote (on S3,
//! and on the [`LocalEndpoint`](crate::LocalEndpoint), which does as S3
//! does). Where originals must never be overwritten, upload with a
//! presigned PUT ([`crate::presign_upload`], create-only), or keep the
//! form's expiry short; a bucket policy that requires conditional writes
//! refuses form uploads altogether.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;
use serde_json::{Value, json};
use upload_core::policy::{check_expiry, essence};
use upload_core::{ObjectKey, UploadPolicy};
use url::Url;

use crate::error::{Error, Result};
use crate::sigv4::{ALGORITHM, HmacSha256Pub, Presigner, amz_dates, derive_signing_key};

/// How the `key` field is constrained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCondition {
    /// Exactly this key (the default, and what direct uploads should use).
    Exact(ObjectKey),
    /// Any key under this prefix; the form's `key` field is set to the
    /// prefix and the client appends to it.
    StartsWith(String),
}

/// How the `Content-Type` field is constrained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeCondition {
    /// Exactly this type.
    Exact(String),
    /// Any type starting with this, e.g. `image/`.
    StartsWith(String),
}

/// What a presigned POST allows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostRequest {
    /// Bucket.
    pub bucket: String,
    /// The key condition.
    pub key: KeyCondition,
    /// The content type condition.
    pub content_type: ContentTypeCondition,
    /// Allowed body sizes in bytes, inclusive (`content-length-range`).
    pub content_length: RangeInclusive<u64>,
    /// Status S3 answers on success: 200, 201 (with an XML body naming
    /// the object) or 204 (the default).
    pub success_action_status: Option<u16>,
    /// `x-amz-meta-*` fields, fixed by the policy (names without the
    /// prefix, lowercase).
    pub metadata: Vec<(String, String)>,
    /// Lifetime of the policy, 1 s..=7 days.
    pub expires_in: Duration,
}

impl PostRequest {
    /// A POST of exactly `key` with exactly `content_type`, of
    /// `content_length` bytes, valid for `expires_in`.
    pub fn new(
        bucket: &str,
        key: &ObjectKey,
        content_type: &str,
        content_length: RangeInclusive<u64>,
        expires_in: Duration,
    ) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: KeyCondition::Exact(key.clone()),
            content_type: ContentTypeCondition::Exact(content_type.to_owned()),
            content_length,
            success_action_status: None,
            metadata: Vec::new(),
            expires_in,
        }
    }

    /// Sets the success status (200, 201 or 204).
    pub fn with_success_action_status(mut self, status: u16) -> Self {
        self.success_action_status = Some(status);
        self
    }

    /// Adds an `x-amz-meta-{name}` field.
    pub fn with_metadata(mut self, name: &str, value: impl Into<String>) -> Self {
        self.metadata
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the key condition.
    pub fn with_key_condition(mut self, key: KeyCondition) -> Self {
        self.key = key;
        self
    }

    /// Sets the content type condition.
    pub fn with_content_type_condition(mut self, ct: ContentTypeCondition) -> Self {
        self.content_type = ct;
        self
    }
}

/// A presigned POST: where to send the form and the fields to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    /// The bucket's URL (path-style `endpoint/bucket`, or virtual-hosted).
    pub url: Url,
    /// Form fields to send before the file, in this order.
    pub fields: Vec<(String, String)>,
    /// The decoded policy document (for logs and tests).
    pub policy: String,
    /// When the policy expires.
    pub expires_at: SystemTime,
}

impl Presigner {
    /// Signs a POST policy for `req` as of `now`.
    ///
    /// # Errors
    /// `ExpiryOutOfRange`, `InvalidBucketName`, [`Error::InvalidPostPolicy`]
    /// (empty size range, a status other than 200/201/204, bad metadata
    /// names), [`Error::TimeOutOfRange`], [`Error::CredentialsExpireFirst`].
    pub fn presign_post(&self, req: &PostRequest, now: SystemTime) -> Result<PresignedPost> {
        check_expiry(req.expires_in)?;
        upload_core::storage::check_bucket_name(&req.bucket)?;
        let bad = |reason: String| Error::InvalidPostPolicy { reason };
        if req.content_length.is_empty() {
            return Err(bad("content-length-range is empty".into()));
        }
        if let Some(s) = req.success_action_status
            && ![200, 201, 204].contains(&s)
        {
            return Err(bad(format!(
                "success_action_status {s} is not 200, 201 or 204"
            )));
        }
        for (name, _) in &req.metadata {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(format!("metadata name {name:?} is not [a-z0-9_-]+")));
            }
        }
        let expires_at = now
            .checked_add(req.expires_in)
            .ok_or(Error::TimeOutOfRange)?;
        self.check_credentials_expiry(expires_at)?;
        let (date, datetime) = amz_dates(now).ok_or(Error::TimeOutOfRange)?;
        let credential = format!(
            "{}/{date}/{}/s3/aws4_request",
            self.credentials().access_key_id,
            self.region()
        );

        let mut fields: Vec<(String, String)> = Vec::new();
        let mut conditions: Vec<Value> = vec![json!({"bucket": req.bucket})];
        match &req.key {
            KeyCondition::Exact(k) => {
                conditions.push(json!(["eq", "$key", k.as_str()]));
                fields.push(("key".into(), k.as_str().to_owned()));
            }
            KeyCondition::StartsWith(p) => {
                conditions.push(json!(["starts-with", "$key", p]));
                fields.push(("key".into(), p.clone()));
            }
        }
        match &req.content_type {
            ContentTypeCondition::Exact(ct) => {
                conditions.push(json!(["eq", "$Content-Type", ct]));
                fields.push(("Content-Type".into(), ct.clone()));
            }
            ContentTypeCondition::StartsWith(p) => {
                conditions.push(json!(["starts-with", "$Content-Type", p]));
                fields.push(("Content-Type".into(), p.clone()));
            }
        }
        conditions.push(json!([
            "content-length-range",
            req.content_length.start(),
            req.content_length.end()
        ]));
        if let Some(s) = req.success_action_status {
            conditions.push(json!({"success_action_status": s.to_string()}));
            fields.push(("success_action_status".into(), s.to_string()));
        }
        for (name, value) in &req.metadata {
            let field = format!("x-amz-meta-{name}");
            conditions.push(json!({ field.clone(): value }));
            fields.push((field, value.clone()));
        }
        conditions.push(json!({"x-amz-algorithm": ALGORITHM}));
        conditions.push(json!({"x-amz-credential": credential}));
        conditions.push(json!({"x-amz-date": datetime}));
        fields.push(("x-amz-algorithm".into(), ALGORITHM.into()));
        fields.push(("x-amz-credential".into(), credential.clone()));
        fields.push(("x-amz-date".into(), datetime.clone()));
        if let Some(token) = &self.credentials().session_token {
            conditions.push(json!({"x-amz-security-token": token}));
            fields.push(("x-amz-security-token".into(), token.clone()));
        }
        let policy = json!({
            "expiration": upload_core::timestamp::iso8601_millis(expires_at),
            "conditions": conditions,
        })
        .to_string();
        let encoded = BASE64.encode(policy.as_bytes());
        let mut mac = HmacSha256Pub::new_from_slice(&self.signing_key(&date))
            .expect("HMAC takes keys of any length");
        mac.update(encoded.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        fields.push(("policy".into(), encoded));
        fields.push(("x-amz-signature".into(), signature));
        Ok(PresignedPost {
            url: self.bucket_url(&req.bucket)?,
            fields,
            policy,
            expires_at,
        })
    }
}

/// A presigned POST for one upload, policy first: `content_type` must be
/// allowed, the size range is exactly `size..=size` when the client
/// declared its size (which the policy must allow) and
/// `1..=policy.max_bytes()` when it did not, the expiry is the policy's,
/// and the key is exactly `key` (choose it with
/// [`upload_core::upload_key`]). S3 answers 201 with an XML body.
///
/// The form is not create-only (see the [module docs](self)).
///
/// # Errors
/// `ContentTypeNotAllowed`, `TooLarge` (a declared size above the
/// policy's maximum), and those of [`Presigner::presign_post`].
pub fn presign_post_upload(
    presigner: &Presigner,
    policy: &UploadPolicy,
    bucket: &str,
    key: &ObjectKey,
    content_type: &str,
    size: Option<u64>,
    now: SystemTime,
) -> Result<PresignedPost> {
    presign_post_upload_with_metadata(presigner, policy, bucket, key, content_type, size, &[], now)
}

/// [`presign_post_upload`] with user metadata: each `(name, value)` is a
/// form field `x-amz-meta-{name}` and an exact-match condition of the
/// signed policy, so the stored object carries exactly these values.
///
/// # Errors
/// Those of [`presign_post_upload`].
#[allow(clippy::too_many_arguments)]
pub fn presign_post_upload_with_metadata(
    presigner: &Presigner,
    policy: &UploadPolicy,
    bucket: &str,
    key: &ObjectKey,
    content_type: &str,
    size: Option<u64>,
    metadata: &[(String, String)],
    now: SystemTime,
) -> Result<PresignedPost> {
    let range = match size {
        Some(n) => {
            policy.check(content_type, n)?;
            n..=n
        }
        None => {
            policy.check_content_type(content_type)?;
            1..=policy.max_bytes()
        }
    };
    let mut req = PostRequest::new(bucket, key, &essence(content_type), range, policy.expiry())
        .with_success_action_status(201);
    for (name, value) in metadata {
        req = req.with_metadata(name, value.clone());
    }
    presigner.presign_post(&req, now)
}

/// What a verified POST may store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPost {
    /// The key from the form.
    pub key: ObjectKey,
    /// The form's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The form's `Cache-Control`, if any.
    pub cache_control: Option<String>,
    /// `x-amz-meta-*` fields (names without the prefix, lowercase).
    pub metadata: Vec<(String, String)>,
    /// Status to answer with: 200, 201 or 204.
    pub success_action_status: u16,
    /// The file sizes the policy allows, in bytes (`content-length-range`).
    pub content_length_range: RangeInclusive<u64>,
}

impl VerifiedPost {
    /// Checks a file of `size` bytes against the policy's
    /// `content-length-range`, as S3 does once the file is read.
    ///
    /// # Errors
    /// `EntityTooSmall` or `EntityTooLarge` (400).
    pub fn check_size(&self, size: u64) -> std::result::Result<(), PostRejected> {
        let (min, max) = (
            *self.content_length_range.start(),
            *self.content_length_range.end(),
        );
        if size < min {
            return Err(rejected(
                400,
                "EntityTooSmall",
                format!(
                    "Your proposed upload is smaller than the minimum allowed size ({size} < {min})"
                ),
            ));
        }
        if size > max {
            return Err(rejected(
                400,
                "EntityTooLarge",
                format!("Your proposed upload exceeds the maximum allowed size ({size} > {max})"),
            ));
        }
        Ok(())
    }
}

/// A POST refused: S3's error code and HTTP status with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct PostRejected {
    /// HTTP status: 403 for signature and policy failures, 400 for sizes
    /// and malformed forms.
    pub status: u16,
    /// S3 error code, e.g. `AccessDenied`, `EntityTooLarge`.
    pub code: &'static str,
    /// S3's message, e.g. `Invalid according to Policy: Policy expired.`.
    pub message: String,
}

fn rejected(status: u16, code: &'static str, message: impl Into<String>) -> PostRejected {
    PostRejected {
        status,
        code,
        message: message.into(),
    }
}

fn policy_failed(what: impl std::fmt::Display) -> PostRejected {
    rejected(
        403,
        "AccessDenied",
        format!("Invalid according to Policy: {what}"),
    )
}

impl crate::Verifier {
    /// Verifies a POST form for `bucket` whose file has `file_size` bytes,
    /// as of `now`: the credential is known and scoped to this region and
    /// S3, the signature of the policy matches, the policy has not expired,
    /// every condition holds, every field is covered by a condition, and
    /// the size is within `content-length-range` (which the policy must
    /// have). `fields` are the form fields before the file, names as sent.
    ///
    /// # Errors
    /// A [`PostRejected`] with S3's code: `InvalidArgument` or
    /// `MalformedPOSTRequest` (400) for a malformed form or policy,
    /// `InvalidAccessKeyId`, `SignatureDoesNotMatch` or `AccessDenied`
    /// (403) for credentials, signature, expiry and conditions,
    /// `EntityTooSmall`/`EntityTooLarge` (400) for the size.
    pub fn verify_post(
        &self,
        bucket: &str,
        fields: &[(String, String)],
        file_size: u64,
        now: SystemTime,
    ) -> std::result::Result<VerifiedPost, PostRejected> {
        let verified = self.verify_post_form(bucket, fields, now)?;
        verified.check_size(file_size)?;
        Ok(verified)
    }

    /// Verifies a POST form's fields as [`crate::Verifier::verify_post`] does,
    /// everything but the file's size: call it with the fields that come
    /// before the file, before reading the file, then check the file's
    /// size with [`VerifiedPost::check_size`] (or count its bytes against
    /// [`VerifiedPost::content_length_range`] as they arrive).
    ///
    /// # Errors
    /// As [`crate::Verifier::verify_post`], but never `EntityTooSmall` or
    /// `EntityTooLarge`.
    pub fn verify_post_form(
        &self,
        bucket: &str,
        fields: &[(String, String)],
        now: SystemTime,
    ) -> std::result::Result<VerifiedPost, PostRejected> {
        let get = |name: &str| -> std::result::Result<Option<&str>, PostRejected> {
            let mut it = fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
            match (it.next(), it.next()) {
                (Some((_, v)), None) => Ok(Some(v.as_str())),
                (None, _) => Ok(None),
                (Some(_), Some(_)) => Err(rejected(
                    400,
                    "InvalidArgument",
                    format!("form field {name} given twice"),
                )),
            }
        };
        let need = |name: &str| -> std::result::Result<&str, PostRejected> {
            get(name)?.ok_or_else(|| {
                rejected(
                    400,
                    "InvalidArgument",
                    format!("Bucket POST must contain a field named '{name}'."),
                )
            })
        };
        if need("x-amz-algorithm")? != ALGORITHM {
            return Err(rejected(
                400,
                "InvalidArgument",
                "x-amz-algorithm must be AWS4-HMAC-SHA256",
            ));
        }
        let credential = need("x-amz-credential")?;
        let datetime = need("x-amz-date")?;
        let encoded = need("policy")?;
        let given_sig = need("x-amz-signature")?;
        let key_field = need("key")?;
        let [akid, date, region, service, terminator] =
            credential.split('/').collect::<Vec<_>>()[..]
        else {
            return Err(rejected(
                400,
                "InvalidArgument",
                "x-amz-credential must be KEY/DATE/REGION/s3/aws4_request",
            ));
        };
        if service != "s3"
            || terminator != "aws4_request"
            || region != self.region()
            || !datetime.starts_with(date)
        {
            return Err(rejected(
                400,
                "InvalidArgument",
                "x-amz-credential scope does not match this endpoint",
            ));
        }
        let creds = self.credentials_for(akid).ok_or_else(|| {
            rejected(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        })?;
        if creds.session_token.is_some()
            && get("x-amz-security-token")? != creds.session_token.as_deref()
        {
            return Err(rejected(
                403,
                "InvalidToken",
                "The provided token is malformed or otherwise invalid.",
            ));
        }
        if creds.expires_at.is_some_and(|c| now >= c) {
            return Err(rejected(
                400,
                "ExpiredToken",
                "The provided token has expired.",
            ));
        }
        let lower_hex = given_sig.len() == 64
            && given_sig
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let given = hex::decode(given_sig).ok().filter(|_| lower_hex);
        let mut mac = HmacSha256Pub::new_from_slice(&derive_signing_key(
            &creds.secret_access_key,
            date,
            region,
        ))
        .expect("HMAC takes keys of any length");
        mac.update(encoded.as_bytes());
        let sig_ok = given.is_some_and(|g| mac.verify_slice(&g).is_ok());
        if !sig_ok {
            return Err(rejected(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            ));
        }
        // The signature is good: the policy is the signer's.
        let policy_bytes = BASE64.decode(encoded).map_err(|_| {
            rejected(
                400,
                "InvalidPolicyDocument",
                "Invalid Policy: Invalid base64 encoding.",
            )
        })?;
        let policy: Value = serde_json::from_slice(&policy_bytes).map_err(|e| {
            rejected(
                400,
                "InvalidPolicyDocument",
                format!("Invalid Policy: Invalid JSON: {e}"),
            )
        })?;
        let expiration = policy
            .get("expiration")
            .and_then(Value::as_str)
            .and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .ok_or_else(|| {
                rejected(
                    400,
                    "InvalidPolicyDocument",
                    "Invalid Policy: Invalid 'expiration' value.",
                )
            })?;
        if time::OffsetDateTime::from(now) >= expiration {
            return Err(policy_failed("Policy expired."));
        }
        let conditions = policy
            .get("conditions")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                rejected(
                    400,
                    "InvalidPolicyDocument",
                    "Invalid Policy: no 'conditions' list.",
                )
            })?;
        let mut covered: Vec<String> = Vec::new();
        let mut size_range: Option<(u64, u64)> = None;
        let value_of = |field: &str| -> std::result::Result<Option<String>, PostRejected> {
            if field.eq_ignore_ascii_case("bucket") {
                return Ok(Some(bucket.to_owned()));
            }
            Ok(get(field)?.map(str::to_owned))
        };
        for c in conditions {
            match c {
                Value::Object(m) => {
                    for (field, want) in m {
                        let want = want.as_str().ok_or_else(|| {
                            rejected(
                                400,
                                "InvalidPolicyDocument",
                                "Invalid Policy: condition values must be strings.",
                            )
                        })?;
                        if value_of(field)?.as_deref() != Some(want) {
                            return Err(policy_failed(format!(
                                "Policy Condition failed: [\"eq\", \"${field}\", \"{want}\"]"
                            )));
                        }
                        covered.push(field.to_ascii_lowercase());
                    }
                }
                Value::Array(a) => match (a.first().and_then(Value::as_str), a.len()) {
                    (Some("content-length-range"), 3) => {
                        let (Some(min), Some(max)) = (a[1].as_u64(), a[2].as_u64()) else {
                            return Err(rejected(
                                400,
                                "InvalidPolicyDocument",
                                "Invalid Policy: content-length-range needs two integers.",
                            ));
                        };
                        size_range = Some((min, max));
                    }
                    (Some(op @ ("eq" | "starts-with")), 3) => {
                        let (Some(field), Some(want)) = (
                            a[1].as_str().and_then(|f| f.strip_prefix('$')),
                            a[2].as_str(),
                        ) else {
                            return Err(rejected(
                                400,
                                "InvalidPolicyDocument",
                                "Invalid Policy: a condition names a $field and a string.",
                            ));
                        };
                        let got = value_of(field)?.unwrap_or_default();
                        let ok = if op == "eq" {
                            got == want
                        } else {
                            got.starts_with(want)
                        };
                        if !ok {
                            return Err(policy_failed(format!(
                                "Policy Condition failed: [\"{op}\", \"${field}\", \"{want}\"]"
                            )));
                        }
                        covered.push(field.to_ascii_lowercase());
                    }
                    _ => {
                        return Err(rejected(
                            400,
                            "InvalidPolicyDocument",
                            format!("Invalid Policy: unknown condition {c}"),
                        ));
                    }
                },
                _ => {
                    return Err(rejected(
                        400,
                        "InvalidPolicyDocument",
                        format!("Invalid Policy: unknown condition {c}"),
                    ));
                }
            }
        }
        for (name, _) in fields {
            let lower = name.to_ascii_lowercase();
            let exempt = ["policy", "x-amz-signature", "file"].contains(&lower.as_str())
                || lower.starts_with("x-ignore-");
            if !exempt && !covered.contains(&lower) {
                return Err(policy_failed(format!("Extra input fields: {name}")));
            }
        }
        if get("success_action_redirect")?.is_some() || get("redirect")?.is_some() {
            return Err(rejected(
                400,
                "InvalidArgument",
                "success_action_redirect is not supported",
            ));
        }
        let (min, max) =
            size_range.ok_or_else(|| policy_failed("the policy has no content-length-range"))?;
        if key_field.contains("${filename}") {
            return Err(rejected(
                400,
                "InvalidArgument",
                "${filename} in the key is not supported",
            ));
        }
        let key = ObjectKey::new(key_field)
            .map_err(|e| rejected(400, "InvalidArgument", e.to_string()))?;
        let success_action_status = get("success_action_status")?
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|v| matches!(v, 200 | 201 | 204))
            .unwrap_or(204);
        let metadata = fields
            .iter()
            .filter_map(|(n, v)| {
                let lower = n.to_ascii_lowercase();
                lower
                    .strip_prefix("x-amz-meta-")
                    .map(|m| (m.to_owned(), v.clone()))
            })
            .collect();
        Ok(VerifiedPost {
            key,
            content_type: get("Content-Type")?.map(str::to_owned),
            cache_control: get("Cache-Control")?.map(str::to_owned),
            metadata,
            success_action_status,
            content_length_range: min..=max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credentials, Verifier};

    const T0: u64 = 1_750_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn creds() -> Credentials {
        Credentials::new("AKIDPOSTTEST", "secret-for-post-tests")
    }

    fn signer() -> Presigner {
        Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            creds(),
        )
        .unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::new("us-east-1", [creds()])
    }

    fn key() -> ObjectKey {
        ObjectKey::new("uploads/u1/3f2a.jpg").unwrap()
    }

    fn post() -> PresignedPost {
        let req = PostRequest::new(
            "uploads",
            &key(),
            "image/jpeg",
            1..=1000,
            Duration::from_secs(300),
        )
        .with_success_action_status(201)
        .with_metadata("Owner", "u1");
        signer().presign_post(&req, at(T0)).unwrap()
    }

    fn with(fields: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    if n == name {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn signed_post_verifies_and_carries_the_policy() {
        let p = post();
        assert_eq!(p.url.as_str(), "http://127.0.0.1:9000/uploads/");
        let names: Vec<&str> = p.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "Content-Type",
                "success_action_status",
                "x-amz-meta-owner",
                "x-amz-algorithm",
                "x-amz-credential",
                "x-amz-date",
                "policy",
                "x-amz-signature"
            ]
        );
        let policy: Value = serde_json::from_str(&p.policy).unwrap();
        assert_eq!(policy["expiration"], "2025-06-15T15:11:40.000Z");
        assert!(policy["conditions"].as_array().unwrap().contains(&json!([
            "content-length-range",
            1,
            1000
        ])));
        let decoded = BASE64.decode(&p.fields[7].1).unwrap();
        assert_eq!(decoded, p.policy.as_bytes());
        let v = verifier()
            .verify_post("uploads", &p.fields, 1000, at(T0 + 10))
            .unwrap();
        assert_eq!(v.key, key());
        assert_eq!(v.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(v.success_action_status, 201);
        assert_eq!(v.metadata, [("owner".to_owned(), "u1".to_owned())]);
        // Field names compare case-insensitively, as in S3.
        let upper: Vec<(String, String)> = p
            .fields
            .iter()
            .map(|(n, v)| (n.to_ascii_uppercase(), v.clone()))
            .collect();
        assert!(verifier().verify_post("uploads", &upper, 5, at(T0)).is_ok());
    }

    #[test]
    fn every_violation_is_refused_with_s3s_code() {
        let p = post();
        let v = verifier();
        let code = |fields: &[(String, String)], size: u64, now: u64, bucket: &str| {
            let e = v
                .verify_post(bucket, fields, size, at(now))
                .expect_err("refused");
            (e.status, e.code)
        };
        assert_eq!(
            code(&p.fields, 1001, T0, "uploads"),
            (400, "EntityTooLarge")
        );
        assert_eq!(code(&p.fields, 0, T0, "uploads"), (400, "EntityTooSmall"));
        assert_eq!(
            code(&p.fields, 10, T0 + 300, "uploads"),
            (403, "AccessDenied"),
            "expired"
        );
        assert_eq!(
            code(&p.fields, 10, T0, "other-bucket"),
            (403, "AccessDenied"),
            "bucket condition"
        );
        assert_eq!(
            code(
                &with(&p.fields, "key", "uploads/u1/other.jpg"),
                10,
                T0,
                "uploads"
            ),
            (403, "AccessDenied")
        );
        assert_eq!(
            code(
                &with(&p.fields, "Content-Type", "text/html"),
                10,
                T0,
                "uploads"
            ),
            (403, "AccessDenied")
        );
        let mut tampered = p.fields.clone();
        let sig = tampered.last_mut().unwrap();
        sig.1 = format!(
            "{}{}",
            if sig.1.starts_with('0') { '1' } else { '0' },
            &sig.1[1..]
        );
        assert_eq!(
            code(&tampered, 10, T0, "uploads"),
            (403, "SignatureDoesNotMatch")
        );
        assert_eq!(
            code(
                &with(&p.fields, "x-amz-signature", &p.fields[8].1.to_uppercase()),
                10,
                T0,
                "uploads"
            ),
            (403, "SignatureDoesNotMatch")
        );
        // A policy re-encoded with a larger range does not match the signature.
        let bigger = BASE64.encode(p.policy.replace("1000", "999999999"));
        assert_eq!(
            code(&with(&p.fields, "policy", &bigger), 10, T0, "uploads"),
            (403, "SignatureDoesNotMatch")
        );
        let mut extra = p.fields.clone();
        extra.insert(0, ("x-amz-meta-admin".into(), "true".into()));
        assert_eq!(
            code(&extra, 10, T0, "uploads"),
            (403, "AccessDenied"),
            "field not in the policy"
        );
        let mut ignored = p.fields.clone();
        ignored.insert(0, ("x-ignore-client".into(), "anything".into()));
        assert!(
            v.verify_post("uploads", &ignored, 10, at(T0)).is_ok(),
            "x-ignore-* fields are free"
        );
        let mut twice = p.fields.clone();
        twice.push(("key".into(), "uploads/u1/3f2a.jpg".into()));
        assert_eq!(code(&twice, 10, T0, "uploads"), (400, "InvalidArgument"));
        let unknown = Verifier::new("us-east-1", [Credentials::new("OTHER", "x")]);
        assert_eq!(
            unknown
                .verify_post("uploads", &p.fields, 10, at(T0))
                .unwrap_err()
                .code,
            "InvalidAccessKeyId"
        );
        let missing: Vec<(String, String)> = p
            .fields
            .iter()
            .filter(|(n, _)| n != "policy")
            .cloned()
            .collect();
        assert_eq!(code(&missing, 10, T0, "uploads"), (400, "InvalidArgument"));
    }

    #[test]
    fn a_declared_size_bounds_the_form_to_exactly_that_size() {
        let s = signer();
        let policy = UploadPolicy::images_and_pdf(100 * 1024 * 1024).unwrap();
        let p = presign_post_upload(
            &s,
            &policy,
            "uploads",
            &key(),
            "image/jpeg",
            Some(6_400_000),
            at(T0),
        )
        .unwrap();
        assert!(
            p.policy
                .contains(r#"["content-length-range",6400000,6400000]"#),
            "{}",
            p.policy
        );
        let v = verifier();
        let refused = |size| {
            v.verify_post("uploads", &p.fields, size, at(T0))
                .unwrap_err()
        };
        assert_eq!(refused(100 * 1024 * 1024).code, "EntityTooLarge");
        assert_eq!(refused(6_400_001).code, "EntityTooLarge");
        assert_eq!(refused(6_399_999).code, "EntityTooSmall");
        let ok = v
            .verify_post("uploads", &p.fields, 6_400_000, at(T0))
            .unwrap();
        assert_eq!(ok.content_length_range, 6_400_000..=6_400_000);
        // A declared size the policy refuses is refused before signing.
        assert!(matches!(
            presign_post_upload(
                &s,
                &policy,
                "uploads",
                &key(),
                "image/jpeg",
                Some(100 * 1024 * 1024 + 1),
                at(T0)
            ),
            Err(Error::Policy(upload_core::Error::TooLarge { .. }))
        ));
        // The fields alone verify before the file is read.
        let form = v.verify_post_form("uploads", &p.fields, at(T0)).unwrap();
        assert_eq!(form.check_size(6_400_000), Ok(()));
    }

    #[test]
    fn policy_requests_outside_the_limits_are_refused() {
        let s = signer();
        let base = || {
            PostRequest::new(
                "uploads",
                &key(),
                "image/png",
                1..=10,
                Duration::from_secs(60),
            )
        };
        assert!(matches!(
            s.presign_post(
                &PostRequest {
                    content_length: RangeInclusive::new(10, 1),
                    ..base()
                },
                at(T0)
            ),
            Err(Error::InvalidPostPolicy { .. })
        ));
        assert!(matches!(
            s.presign_post(&base().with_success_action_status(302), at(T0)),
            Err(Error::InvalidPostPolicy { .. })
        ));
        assert!(matches!(
            s.presign_post(&base().with_metadata("bad name", "v"), at(T0)),
            Err(Error::InvalidPostPolicy { .. })
        ));
        assert!(matches!(
            s.presign_post(
                &PostRequest {
                    expires_in: Duration::from_secs(8 * 86400),
                    ..base()
                },
                at(T0)
            ),
            Err(Error::Policy(upload_core::Error::ExpiryOutOfRange { .. }))
        ));
        let short = Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            creds().with_session_token("tok").with_expiry(at(T0 + 30)),
        )
        .unwrap();
        assert!(matches!(
            short.presign_post(&base(), at(T0)),
            Err(Error::CredentialsExpireFirst { .. })
        ));
        assert!(matches!(
            short.presign_put(
                "uploads",
                &key(),
                "image/png",
                None,
                Duration::from_secs(60),
                at(T0)
            ),
            Err(Error::CredentialsExpireFirst { .. })
        ));
        let ok = short
            .presign_post(
                &PostRequest {
                    expires_in: Duration::from_secs(30),
                    ..base()
                },
                at(T0),
            )
            .unwrap();
        assert!(
            ok.fields
                .iter()
                .any(|(n, v)| n == "x-amz-security-token" && v == "tok")
        );
        // A form signed with temporary credentials stops working when they
        // expire (before its policy would, here: a 60 s policy signed with
        // the same key, unaware of the credentials' expiry).
        let unaware = Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            creds().with_session_token("tok"),
        )
        .unwrap()
        .presign_post(&base(), at(T0))
        .unwrap();
        let v = Verifier::new(
            "us-east-1",
            [creds().with_session_token("tok").with_expiry(at(T0 + 30))],
        );
        assert!(v.verify_post("uploads", &ok.fields, 5, at(T0 + 29)).is_ok());
        assert!(
            v.verify_post("uploads", &unaware.fields, 5, at(T0 + 29))
                .is_ok()
        );
        let e = v
            .verify_post("uploads", &unaware.fields, 5, at(T0 + 30))
            .unwrap_err();
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (400, "ExpiredToken", "The provided token has expired.")
        );
        let policy = UploadPolicy::images_and_pdf(1024).unwrap();
        assert!(matches!(
            presign_post_upload(&s, &policy, "uploads", &key(), "text/html", None, at(T0)),
            Err(Error::Policy(
                upload_core::Error::ContentTypeNotAllowed { .. }
            ))
        ));
        let p = presign_post_upload(&s, &policy, "uploads", &key(), "image/jpeg", None, at(T0))
            .unwrap();
        assert!(
            p.policy.contains(r#"["content-length-range",1,1024]"#),
            "{}",
            p.policy
        );
    }
}
