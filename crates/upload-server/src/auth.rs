//! Who is asking: the app's [`Authorizer`] turns a request's parts into
//! an [`Owner`] or refuses it ([`AuthError`], 401 or 403). The library
//! reads no identity header of its own; every route asks the authorizer
//! before it parses a body, signs or lists anything.

use std::fmt;
use std::future::Future;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::config::AppState;
use crate::error::ApiError;

/// The owner of uploads, as the app's [`Authorizer`] names them: 1 to 128
/// ASCII letters, digits, `_` or `-` (a single key segment:
/// `uploads/{owner}/{uuid}.{ext}`), checked by
/// `upload_core::key::check_owner`. Keys and multipart sessions are bound
/// to it: an owner can only see, sign, complete or abort its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

/// An owner name that breaks [`Owner`]'s rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an owner must be 1..=128 of [A-Za-z0-9_-], not {value:?}")]
pub struct InvalidOwner {
    /// The name refused.
    pub value: String,
}

impl Owner {
    /// Checks `name` against the key segment rules.
    ///
    /// # Errors
    /// [`InvalidOwner`] when it is empty, longer than 128 bytes, or holds
    /// anything but ASCII letters, digits, `_` and `-`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidOwner> {
        let name = name.into();
        match upload_core::key::check_owner(&name) {
            Ok(()) => Ok(Self(name)),
            Err(_) => Err(InvalidOwner { value: name }),
        }
    }

    /// The owner's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Owner {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Owner {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An [`Authorizer`]'s refusal. Answered as JSON
/// `{"error": "unauthorized" | "forbidden", "message": ...}` with 401 or
/// 403; nothing is signed, listed, completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// 401: no credentials, or credentials that are not valid (expired,
    /// malformed, unknown). The message is shown to the client.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: a known caller that may not upload here. The message is shown
    /// to the client.
    #[error("forbidden: {0}")]
    Forbidden(String),
}

impl AuthError {
    /// A 401 refusal with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    /// A 403 refusal with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code, message) = match e {
            AuthError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            AuthError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
        };
        ApiError {
            status,
            code,
            message,
        }
    }
}

/// The app's authentication: names the [`Owner`] of a request from its
/// parts (headers, URI, extensions a layer of the app put there), or
/// refuses it. Called once per request, before the body is read and
/// before anything is signed, on every route (ours and Uppy's).
///
/// ```
/// use upload_server::{AuthError, Authorizer, Owner, async_trait};
/// use upload_server::http::request::Parts;
///
/// struct Bearer;
///
/// #[async_trait]
/// impl Authorizer for Bearer {
///     async fn authorize(&self, parts: &Parts) -> Result<Owner, AuthError> {
///         let token = parts.headers.get("authorization")
///             .and_then(|v| v.to_str().ok())
///             .and_then(|v| v.strip_prefix("Bearer "))
///             .ok_or_else(|| AuthError::unauthorized("a bearer token is required"))?;
///         // Look the token up in your session store here.
///         let user = if token == "secret-of-alice" { "alice" } else {
///             return Err(AuthError::unauthorized("unknown token"));
///         };
///         Owner::new(user).map_err(|e| AuthError::forbidden(e.to_string()))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// The owner of this request.
    ///
    /// # Errors
    /// [`AuthError::Unauthorized`] (401) or [`AuthError::Forbidden`]
    /// (403): the request is answered with it and goes no further.
    async fn authorize(&self, parts: &Parts) -> Result<Owner, AuthError>;
}

/// An [`Authorizer`] from a function of the request parts returning a
/// future: `FnAuthorizer(|parts: &Parts| { let h = parts.headers.clone();
/// async move { ... } })`. The future may not borrow the parts: take what
/// it needs before `async move`.
#[derive(Debug, Clone, Copy)]
pub struct FnAuthorizer<F>(pub F);

#[async_trait::async_trait]
impl<F, Fut> Authorizer for FnAuthorizer<F>
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Owner, AuthError>> + Send + 'static,
{
    async fn authorize(&self, parts: &Parts) -> Result<Owner, AuthError> {
        (self.0)(parts).await
    }
}

/// Extracting an [`Owner`] asks the state's authorizer.
impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        Ok(st.authorizer.authorize(parts).await?)
    }
}
