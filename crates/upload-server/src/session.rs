//! Multipart session tokens: what binds an upload ID to its owner, key,
//! declared size and expiry.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use upload_core::ObjectKey;
use upload_multipart::{CompletionRules, PartPlan};

use crate::auth::*;
use crate::config::*;
use crate::error::*;
use crate::route::*;

/// What a multipart session token binds besides its owner, key and
/// upload ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaims {
    /// The declared object size in bytes; `None` when not declared
    /// (bounded by the policy's maximum, as for Uppy, which sends none).
    pub size: Option<u64>,
    /// The planned part size in bytes; `None` when the client chooses one
    /// (still equal for every part but the last).
    pub part_size: Option<u64>,
    /// Unix time in seconds from which the token is refused.
    pub expires_at: u64,
}

impl SessionClaims {
    /// Claims for a session created at `now` that lives `lifetime`
    /// (rounded up to whole seconds; a lifetime past the year 584 billion
    /// never expires).
    pub fn new(
        size: Option<u64>,
        part_size: Option<u64>,
        now: SystemTime,
        lifetime: Duration,
    ) -> Self {
        let expires_at = now
            .checked_add(lifetime)
            .and_then(|end| end.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(u64::MAX, |d| {
                d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
            });
        Self {
            size,
            part_size,
            expires_at,
        }
    }
}

/// Why a session token is refused (both answer 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Malformed, or not made by this server for this owner, key and
    /// upload ID (or with other claims).
    #[error("the session token does not match this owner, key and upload ID")]
    Mismatch,
    /// A valid token whose expiry has passed: start a new upload.
    #[error("the session expired at {expires_at} (unix seconds); start a new upload")]
    Expired {
        /// When it expired, unix time in seconds.
        expires_at: u64,
    },
}

/// The session token of a multipart upload:
/// `{size}.{part_size}.{expires_at}.{mac}` where `mac` is hex
/// HMAC-SHA256 under `secret` over owner, key, upload ID, size, part size
/// and expiry (unix seconds). A size of 0 means "not declared" and a part
/// size of 0 "chosen by the client" ([`SessionClaims`]). `/multipart/*`
/// and `/s3/multipart/*` calls must present it, so an owner can only act
/// on upload IDs this server created for them, whatever the store checks
/// itself (moto, for one, lets any key use any upload ID), the declared
/// size is enforced at completion, and the session ends at its expiry
/// ([`verify_session_token`]).
pub fn session_token(
    secret: &[u8; 32],
    owner: &str,
    key: &str,
    upload_id: &str,
    claims: &SessionClaims,
) -> String {
    use hmac::Mac;
    let (size, part_size) = (claims.size.unwrap_or(0), claims.part_size.unwrap_or(0));
    let mac = session_mac(
        secret,
        owner,
        key,
        upload_id,
        size,
        part_size,
        claims.expires_at,
    );
    format!(
        "{size}.{part_size}.{}.{}",
        claims.expires_at,
        hex::encode(mac.finalize().into_bytes())
    )
}

pub(crate) fn session_mac(
    secret: &[u8; 32],
    owner: &str,
    key: &str,
    upload_id: &str,
    size: u64,
    part_size: u64,
    expires_at: u64,
) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for field in [
        owner,
        key,
        upload_id,
        &size.to_string(),
        &part_size.to_string(),
        &expires_at.to_string(),
    ] {
        mac.update(field.as_bytes());
        mac.update(b"\n");
    }
    mac
}

/// Checks a [`session_token`] for `owner`, `key` and `upload_id` at
/// `now`; returns its claims.
///
/// # Errors
/// [`SessionError::Mismatch`] for a malformed token or one made for
/// anything else (the MAC is compared in constant time);
/// [`SessionError::Expired`] for a valid one at or after its expiry.
pub fn verify_session_token(
    secret: &[u8; 32],
    owner: &str,
    key: &str,
    upload_id: &str,
    token: &str,
    now: SystemTime,
) -> Result<SessionClaims, SessionError> {
    use hmac::Mac;
    let mut it = token.splitn(4, '.');
    let (Some(size), Some(part_size), Some(expires_at), Some(given)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(SessionError::Mismatch);
    };
    let (Ok(size), Ok(part_size), Ok(expires_at), Ok(given)) = (
        size.parse::<u64>(),
        part_size.parse::<u64>(),
        expires_at.parse::<u64>(),
        hex::decode(given),
    ) else {
        return Err(SessionError::Mismatch);
    };
    session_mac(secret, owner, key, upload_id, size, part_size, expires_at)
        .verify_slice(&given)
        .map_err(|_| SessionError::Mismatch)?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now >= expires_at {
        return Err(SessionError::Expired { expires_at });
    }
    Ok(SessionClaims {
        size: (size > 0).then_some(size),
        part_size: (part_size > 0).then_some(part_size),
        expires_at,
    })
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let code = match e {
            SessionError::Expired { .. } => "session_expired",
            _ => "bad_session",
        };
        Self {
            status: StatusCode::FORBIDDEN,
            code,
            message: e.to_string(),
        }
    }
}

/// Checks a session token now; returns what the session allows at
/// completion (parts 1..=N without gaps: [`CompletionRules::contiguous`]).
pub(crate) fn check_session(
    st: &AppState,
    route: &UploadRoute,
    owner: &str,
    key: &str,
    upload_id: &str,
    token: &str,
) -> Result<CompletionRules, ApiError> {
    let claims = verify_session_token(
        &st.session_secret,
        owner,
        key,
        upload_id,
        token,
        SystemTime::now(),
    )?;
    Ok(CompletionRules {
        size: claims.size,
        part_size: claims.part_size,
        max_size: route.policy.max_bytes(),
        contiguous: true,
    })
}

/// Refuses to sign parts of an upload that is no longer open (completed
/// or aborted): one ListParts request (a second page only past 1,000
/// stored parts), whose `NoSuchUpload` answers 404 `no_such_upload`.
pub(crate) async fn check_open(
    st: &AppState,
    key: &ObjectKey,
    upload_id: &str,
) -> Result<(), ApiError> {
    st.uploads.list_parts(key, upload_id).await?;
    Ok(())
}

/// The multipart session a request names: the caller's key (refused as
/// another owner's otherwise) and what its session token allows.
pub(crate) fn open_session(
    st: &AppState,
    route: &UploadRoute,
    owner: &Owner,
    key: &str,
    upload_id: &str,
    token: &str,
) -> Result<(ObjectKey, CompletionRules), ApiError> {
    let key = route.owned_key(owner, key)?;
    let rules = check_session(st, route, owner, key.as_str(), upload_id, token)?;
    Ok((key, rules))
}

/// The number of parts a session may have: the plan's when the size is
/// declared, else up to the S3 limit.
pub(crate) fn part_limit(rules: &CompletionRules) -> Result<u32, ApiError> {
    match (rules.size, rules.part_size) {
        (Some(size), Some(part_size)) => Ok(PartPlan::new(size, part_size)?.part_count()),
        _ => Ok(upload_core::multipart::MAX_PART_NUMBER),
    }
}
