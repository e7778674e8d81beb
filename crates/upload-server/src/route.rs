//! Named upload routes: each with its own policy (types, maximum size,
//! URL expiry), key prefix and multipart settings, and an optional async
//! [`UploadHook`] that runs before anything is signed and can refuse the
//! upload or attach metadata to it.
//!
//! What a route signs into every upload it hands out, as S3 user metadata
//! (`x-amz-meta-*`) the client cannot change (the header is signed into a
//! presigned PUT, a condition of a POST form's policy, and given by the
//! server itself at CreateMultipartUpload):
//!
//! | metadata | value |
//! |---|---|
//! | [`ROUTE_METADATA`] (`upload-route`) | the route's name |
//! | [`OWNER_METADATA`] (`upload-owner`) | the [`Owner`] the app's authorizer named |
//! | the hook's entries | what [`UploadHook::before_upload`] returned |
//!
//! The worker reads them from the stored object (the route picks its
//! processing) and the notifications carry them. Keys are
//! `{key prefix}/{owner}/{uuid}.{extension}`; prefixes of two routes never
//! nest, so a key names its route, and a session or key of one route is
//! refused (403 `not_your_upload`) on every endpoint of another.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tracing::Instrument as _;

use axum::http::StatusCode;
use upload_core::{ObjectKey, UploadPolicy, extension_for};

use crate::auth::Owner;
use crate::error::ApiError;

/// Name of the route served at the router's top level, built from
/// [`ServerConfig`](crate::ServerConfig)'s policy and multipart settings,
/// with the key prefix `uploads`.
pub const DEFAULT_ROUTE: &str = "default";

/// User metadata name (`x-amz-meta-upload-route`) holding the route an
/// upload was made through.
pub const ROUTE_METADATA: &str = upload_core::metadata::ROUTE;

/// User metadata name (`x-amz-meta-upload-owner`) holding the owner of an
/// upload.
pub const OWNER_METADATA: &str = upload_core::metadata::OWNER;

/// Most bytes of user metadata (names and values, as S3 counts them) an
/// upload may carry: S3's limit of 2 KB.
pub const MAX_METADATA_BYTES: usize = upload_core::metadata::MAX_BYTES;

/// A route or prefix that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A route name must be 1..=32 of `[a-z0-9_-]`, starting with a
    /// letter or digit.
    #[error("route name {0:?} must be 1..=32 of [a-z0-9_-], starting with a letter or digit")]
    InvalidName(String),
    /// A key prefix must be 1..=256 bytes of `/`-separated segments of
    /// `[A-Za-z0-9._-]` (no empty, `.` or `..` segment).
    #[error(
        "key prefix {0:?} must be 1..=256 bytes of /-separated segments of [A-Za-z0-9._-] (no empty, . or .. segment)"
    )]
    InvalidPrefix(String),
    /// Two routes share a name.
    #[error("two routes are named {0:?}")]
    DuplicateName(String),
    /// One route's key prefix equals or contains another's, so a key
    /// would not name its route.
    #[error("the key prefixes {0:?} and {1:?} overlap")]
    OverlappingPrefixes(String, String),
}

/// What a hook learns of an upload before anything is signed.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRequest {
    /// The route's name.
    pub route: String,
    /// The owner the app's authorizer named.
    pub owner: Owner,
    /// The declared content type (already checked against the route's
    /// policy).
    pub content_type: String,
    /// The declared size in bytes (already checked against the route's
    /// maximum); `None` when the client declared none (an Uppy form or
    /// multipart upload without a size).
    pub size: Option<u64>,
    /// The client's file name, if it sent one (never part of the key).
    pub filename: Option<String>,
    /// What the client sent for the hook: the `input` of `POST /uploads`,
    /// or the `metadata` Uppy sends; `Null` when none. Untrusted: check it
    /// before you copy any of it into metadata.
    pub input: serde_json::Value,
}

/// A hook's answer that refuses an upload: 403 `upload_refused` with the
/// message, before anything is signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookRefusal {
    /// Shown to the client as the error's `message`.
    pub message: String,
}

impl HookRefusal {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Metadata a hook attaches to an upload: names are 1..=64 of
/// `[a-z0-9-]` not starting with `upload-` (reserved for
/// [`ROUTE_METADATA`] and [`OWNER_METADATA`]), values printable ASCII
/// (`0x20..=0x7E`), everything together within [`MAX_METADATA_BYTES`].
/// Anything else is the app's bug and answers 500 `invalid_hook_metadata`.
pub type UploadMetadata = BTreeMap<String, String>;

/// Runs before anything is signed for an upload on its route: refuses it
/// or names the metadata signed into it (e.g. the record the upload
/// belongs to, looked up in the app's database).
#[async_trait::async_trait]
pub trait UploadHook: Send + Sync + 'static {
    /// Decides on one upload.
    ///
    /// # Errors
    /// A [`HookRefusal`] refuses the upload (403 `upload_refused`).
    async fn before_upload(&self, req: &HookRequest) -> Result<UploadMetadata, HookRefusal>;
}

/// An [`UploadHook`] from an async closure:
/// `FnHook(|req: HookRequest| async move { Ok(UploadMetadata::new()) })`.
#[derive(Debug, Clone, Copy)]
pub struct FnHook<F>(pub F);

#[async_trait::async_trait]
impl<F, Fut> UploadHook for FnHook<F>
where
    F: Fn(HookRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<UploadMetadata, HookRefusal>> + Send + 'static,
{
    async fn before_upload(&self, req: &HookRequest) -> Result<UploadMetadata, HookRefusal> {
        (self.0)(req.clone()).await
    }
}

/// One named upload route (see the module docs).
#[derive(Clone)]
pub struct UploadRoute {
    name: String,
    key_prefix: String,
    /// Types and sizes accepted, and the expiry of presigned URLs.
    pub policy: UploadPolicy,
    /// Uploads larger than this many bytes go multipart (default 100 MiB).
    pub multipart_threshold: u64,
    /// Preferred part size in bytes (default 8 MiB).
    pub part_size: u64,
    hook: Option<Arc<dyn UploadHook>>,
    post_forms: bool,
}

impl fmt::Debug for UploadRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadRoute")
            .field("name", &self.name)
            .field("key_prefix", &self.key_prefix)
            .field("policy", &self.policy)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("hook", &self.hook.as_ref().map(|_| "<dyn UploadHook>"))
            .field("post_forms", &self.post_forms)
            .finish()
    }
}

impl UploadRoute {
    /// A route named `name` (its key prefix too, until
    /// [`with_key_prefix`](Self::with_key_prefix)) with `policy`, the
    /// default multipart threshold (100 MiB) and part size (8 MiB), no
    /// hook.
    ///
    /// # Errors
    /// [`RouteError::InvalidName`].
    pub fn new(name: &str, policy: UploadPolicy) -> Result<Self, RouteError> {
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && name.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            return Err(RouteError::InvalidName(name.chars().take(64).collect()));
        }
        Ok(Self {
            name: name.to_owned(),
            key_prefix: name.to_owned(),
            policy,
            multipart_threshold: 100 * 1024 * 1024,
            part_size: upload_multipart::DEFAULT_PART_SIZE,
            hook: None,
            post_forms: true,
        })
    }

    /// Sets the key prefix: keys are `{prefix}/{owner}/{uuid}.{ext}`.
    ///
    /// # Errors
    /// [`RouteError::InvalidPrefix`].
    pub fn with_key_prefix(mut self, prefix: &str) -> Result<Self, RouteError> {
        let ok = (1..=256).contains(&prefix.len())
            && prefix.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if !ok {
            return Err(RouteError::InvalidPrefix(
                prefix.chars().take(300).collect(),
            ));
        }
        self.key_prefix = prefix.to_owned();
        Ok(self)
    }

    /// Sets the multipart threshold in bytes.
    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// Sets the preferred part size in bytes.
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Whether browser POST forms are handed out (default true):
    /// `{"form": "post"}` on `POST /uploads`, and Uppy's `GET /s3/params`
    /// without a size. S3 forms cannot carry `If-None-Match`, so a form
    /// replayed before it expires replaces the object it made (the worker
    /// processes the new bytes as a new version). Off, every single upload
    /// is a create-only PUT of a declared size, and those requests get 400
    /// `post_forms_disabled`.
    pub fn with_post_forms(mut self, allowed: bool) -> Self {
        self.post_forms = allowed;
        self
    }

    /// Whether POST forms are handed out ([`with_post_forms`](Self::with_post_forms)).
    pub fn post_forms(&self) -> bool {
        self.post_forms
    }

    /// Sets the hook run before anything is signed.
    pub fn with_hook(mut self, hook: impl UploadHook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The route's key prefix (no leading or trailing `/`).
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// A fresh key for an upload of `content_type` by `owner`:
    /// `{prefix}/{owner}/{uuid v4}.{ext}`, the extension from the type,
    /// never from a client file name.
    ///
    /// # Errors
    /// 415 `content_type_not_allowed` when no extension is known for the
    /// type.
    pub fn new_key(&self, owner: &Owner, content_type: &str) -> Result<ObjectKey, ApiError> {
        let ext = extension_for(content_type).ok_or_else(|| ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "content_type_not_allowed",
            message: format!("no file extension is known for {content_type:?}"),
        })?;
        let mut key = String::with_capacity(self.key_prefix.len() + owner.len() + ext.len() + 39);
        key.push_str(&self.key_prefix);
        key.push('/');
        key.push_str(owner);
        key.push('/');
        key.push_str(
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        key.push('.');
        key.push_str(ext);
        Ok(ObjectKey::new(key)?)
    }

    /// `key` if it is an upload of `owner` on this route
    /// (`{prefix}/{owner}/{one segment}`).
    ///
    /// # Errors
    /// 403 `not_your_upload` otherwise.
    pub fn owned_key(&self, owner: &Owner, key: &str) -> Result<ObjectKey, ApiError> {
        let forbidden = || ApiError {
            status: StatusCode::FORBIDDEN,
            code: "not_your_upload",
            message: format!("{key:?} is not an upload of {owner} on route {}", self.name),
        };
        let rest = key
            .strip_prefix(self.key_prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_prefix(owner.as_str()))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(forbidden)?;
        if rest.is_empty() || rest.contains('/') {
            return Err(forbidden());
        }
        Ok(ObjectKey::new(key)?)
    }

    /// Runs the hook (if any) and returns the metadata to sign into the
    /// upload: the route, the owner and the hook's entries.
    ///
    /// # Errors
    /// 403 `upload_refused` when the hook refuses; 500
    /// `invalid_hook_metadata` when its metadata breaks the rules of
    /// [`UploadMetadata`].
    pub async fn authorize_upload(&self, req: HookRequest) -> Result<UploadMetadata, ApiError> {
        let span = tracing::info_span!(
            "presign",
            route = %self.name,
            owner = %req.owner,
            trace_id = tracing::field::Empty
        );
        self.authorize_upload_in(req).instrument(span).await
    }

    async fn authorize_upload_in(&self, req: HookRequest) -> Result<UploadMetadata, ApiError> {
        let extra = match &self.hook {
            Some(hook) => hook.before_upload(&req).await.map_err(|r| ApiError {
                status: StatusCode::FORBIDDEN,
                code: "upload_refused",
                message: r.message,
            })?,
            None => UploadMetadata::new(),
        };
        let mut meta = UploadMetadata::new();
        meta.insert(ROUTE_METADATA.to_owned(), self.name.clone());
        meta.insert(OWNER_METADATA.to_owned(), req.owner.as_str().to_owned());
        let invalid = |message: String| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "invalid_hook_metadata",
            message,
        };
        for (name, value) in extra {
            let name_ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with(upload_core::metadata::RESERVED_PREFIX);
            if !name_ok {
                return Err(invalid(format!(
                    "the {} route's hook named metadata {name:?}: names are 1..=64 of [a-z0-9-], not starting with upload-",
                    self.name
                )));
            }
            if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(invalid(format!(
                    "the {} route's hook gave metadata {name:?} a value that is not printable ASCII",
                    self.name
                )));
            }
            meta.insert(name, value);
        }
        // The trace context this upload is presigned in, for the worker
        // to continue (`upload_core::trace`).
        meta.insert(
            upload_core::trace::METADATA.to_owned(),
            upload_trace_context(&tracing::Span::current()).to_string(),
        );
        let bytes: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_METADATA_BYTES {
            return Err(invalid(format!(
                "the {} route's upload metadata is {bytes} bytes; S3 takes at most {MAX_METADATA_BYTES}",
                self.name
            )));
        }
        Ok(meta)
    }
}

/// The trace context to sign into an upload presigned in `span`: the
/// span's OpenTelemetry context when a `tracing-opentelemetry` layer gives
/// it one (feature `otel`), else a new random one, so that the API's and
/// the worker's log lines of one upload still share a `trace_id`. Recorded
/// as the span's `trace_id` field.
fn upload_trace_context(span: &tracing::Span) -> upload_core::trace::TraceParent {
    #[cfg(feature = "otel")]
    let tp = upload_core::trace::TraceParent::of_span(span)
        .unwrap_or_else(upload_core::trace::TraceParent::random);
    #[cfg(not(feature = "otel"))]
    let tp = upload_core::trace::TraceParent::random();
    if !span.is_disabled() {
        span.record("trace_id", tp.trace_id_hex());
    }
    tp
}

/// 400 `post_forms_disabled`: `route` hands out create-only PUTs only.
pub(crate) fn post_forms_disabled(route: &UploadRoute) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "post_forms_disabled",
        message: format!(
            "route {} hands out create-only PUTs of a declared size only: send the size",
            route.name()
        ),
    }
}

/// Checks that no two routes share a name and that no key prefix equals
/// or contains another (`a` and `a/b` overlap; `a` and `ab` do not).
///
/// # Errors
/// [`RouteError::DuplicateName`], [`RouteError::OverlappingPrefixes`].
pub fn check_routes<'a>(
    routes: impl IntoIterator<Item = &'a UploadRoute>,
) -> Result<(), RouteError> {
    let routes: Vec<&UploadRoute> = routes.into_iter().collect();
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if a.name == b.name {
                return Err(RouteError::DuplicateName(a.name.clone()));
            }
            let nests = |x: &str, y: &str| {
                x == y || y.strip_prefix(x).is_some_and(|rest| rest.starts_with('/'))
            };
            if nests(&a.key_prefix, &b.key_prefix) || nests(&b.key_prefix, &a.key_prefix) {
                return Err(RouteError::OverlappingPrefixes(
                    a.key_prefix.clone(),
                    b.key_prefix.clone(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> UploadPolicy {
        UploadPolicy::new(["image/png"], 1000).unwrap()
    }

    #[test]
    fn names_and_prefixes_are_checked() {
        assert!(UploadRoute::new("avatar", policy()).is_ok());
        for bad in ["", "Avatar", "-x", "a/b", "a b", &"x".repeat(33)] {
            assert_eq!(
                UploadRoute::new(bad, policy()).unwrap_err(),
                RouteError::InvalidName(bad.to_owned())
            );
        }
        let r = UploadRoute::new("avatar", policy()).unwrap();
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a b", "ä"] {
            assert!(
                matches!(
                    r.clone().with_key_prefix(bad),
                    Err(RouteError::InvalidPrefix(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            r.with_key_prefix("media/avatars.v2").unwrap().key_prefix(),
            "media/avatars.v2"
        );
    }

    #[test]
    fn overlapping_prefixes_and_duplicate_names_are_refused() {
        let a = UploadRoute::new("a", policy()).unwrap();
        let ab = UploadRoute::new("ab", policy()).unwrap();
        let nested = UploadRoute::new("n", policy())
            .unwrap()
            .with_key_prefix("a/b")
            .unwrap();
        assert_eq!(check_routes([&a, &ab]), Ok(()));
        assert_eq!(
            check_routes([&a, &ab, &nested]),
            Err(RouteError::OverlappingPrefixes("a".into(), "a/b".into()))
        );
        assert_eq!(
            check_routes([&a, &a.clone()]),
            Err(RouteError::DuplicateName("a".into()))
        );
    }

    #[test]
    fn keys_belong_to_their_route_and_owner() {
        let owner = Owner::new("u1").unwrap();
        let r = UploadRoute::new("avatar", policy())
            .unwrap()
            .with_key_prefix("media/avatars")
            .unwrap();
        let key = r.new_key(&owner, "image/png").unwrap();
        assert!(key.as_str().starts_with("media/avatars/u1/"), "{key}");
        assert!(key.as_str().ends_with(".png"));
        assert_eq!(r.owned_key(&owner, key.as_str()).unwrap(), key);
        let other = Owner::new("u2").unwrap();
        assert_eq!(
            r.owned_key(&other, key.as_str()).unwrap_err().code(),
            "not_your_upload"
        );
        for bad in [
            "uploads/u1/x.png",
            "media/avatars/u1/",
            "media/avatars/u1/a/b.png",
            "media/avatars/u10/x.png",
            "media/avatarsx/u1/x.png",
        ] {
            assert_eq!(
                r.owned_key(&owner, bad).unwrap_err().code(),
                "not_your_upload",
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn hooks_refuse_or_attach_checked_metadata() {
        let owner = Owner::new("u1").unwrap();
        let req = HookRequest {
            route: "avatar".into(),
            owner: owner.clone(),
            content_type: "image/png".into(),
            size: Some(10),
            filename: None,
            input: serde_json::json!({"post": "42"}),
        };
        let r = UploadRoute::new("avatar", policy())
            .unwrap()
            .with_hook(FnHook(|req: HookRequest| async move {
                match req.input["post"].as_str() {
                    Some("42") => Ok(UploadMetadata::from([("post-id".into(), "42".into())])),
                    _ => Err(HookRefusal::new("no such post")),
                }
            }));
        let mut meta = r.authorize_upload(req.clone()).await.unwrap();
        // The trace context of the `presign` span: a new random one here
        // (no OpenTelemetry layer).
        let tp = meta.remove(upload_core::trace::METADATA).unwrap();
        assert!(upload_core::trace::TraceParent::parse(&tp).is_ok(), "{tp}");
        assert_eq!(
            meta,
            UploadMetadata::from([
                ("post-id".into(), "42".into()),
                ("upload-owner".into(), "u1".into()),
                ("upload-route".into(), "avatar".into()),
            ])
        );
        let mut other = req.clone();
        other.input = serde_json::json!({"post": "7"});
        let e = r.authorize_upload(other).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (403, "upload_refused"));
        assert_eq!(e.message(), "no such post");

        for (name, value) in [
            ("upload-route", "document"),
            ("Caps", "x"),
            ("ok", "line\nbreak"),
            ("big", &"x".repeat(MAX_METADATA_BYTES)),
        ] {
            let (name, value) = (name.to_owned(), value.to_owned());
            let r = UploadRoute::new("avatar", policy())
                .unwrap()
                .with_hook(FnHook(move |_req: HookRequest| {
                    let m = UploadMetadata::from([(name.clone(), value.clone())]);
                    async move { Ok(m) }
                }));
            let e = r.authorize_upload(req.clone()).await.unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (500, "invalid_hook_metadata")
            );
        }
    }
}
