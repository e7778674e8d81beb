//! What the server is configured with, its state, and `GET /config`.

use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use upload_core::sign::{SignerCapabilities, UploadSigner};
use upload_core::{MultipartStore, Storage, UploadPolicy};
use upload_presign::{PresignerSource, S3UploadSigner};

use crate::auth::*;
use crate::route::*;

/// What the server is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Types and sizes accepted, and the expiry of presigned URLs.
    pub policy: UploadPolicy,
    /// Uploads larger than this many bytes go multipart (default 100 MiB,
    /// the size AWS recommends multipart from).
    pub multipart_threshold: u64,
    /// Preferred part size in bytes (default 8 MiB); see [`PartPlan`](upload_multipart::PartPlan).
    pub part_size: u64,
    /// Part URLs signed in the first answer; more through
    /// `/multipart/sign` (default 100).
    pub first_batch: u32,
    /// How long presigned GETs of variants live (default 300 s).
    pub download_expiry: Duration,
    /// How long a multipart session token is accepted after the session
    /// was created (default [`DEFAULT_SESSION_LIFETIME`], 24 hours; whole
    /// seconds, rounded up): signing, listing, completing and aborting
    /// are refused after it ([`SessionError::Expired`](crate::SessionError::Expired)).
    pub session_lifetime: Duration,
    /// Whether the router serves the [`DEFAULT_ROUTE`] (built from the
    /// fields above, keys under `uploads/`) at its top level (default
    /// true). Named routes are served under `/routes/{name}/` either way.
    pub serve_default_route: bool,
    /// Most `GET /uploads/status?wait=S` requests one owner may have
    /// waiting at once (default 8); more answer 429 `too_many_waits`.
    pub max_waits_per_owner: usize,
    routes: Vec<UploadRoute>,
    upload_signer: Option<Arc<dyn UploadSigner>>,
    pub(crate) waiting: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// Default [`ServerConfig::session_lifetime`]: 24 hours.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

impl ServerConfig {
    /// Defaults around `policy`.
    pub fn new(policy: UploadPolicy) -> Self {
        Self {
            policy,
            multipart_threshold: 100 * 1024 * 1024,
            part_size: upload_multipart::DEFAULT_PART_SIZE,
            first_batch: 100,
            download_expiry: Duration::from_secs(300),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            serve_default_route: true,
            max_waits_per_owner: 8,
            routes: Vec::new(),
            upload_signer: None,
            waiting: Arc::default(),
        }
    }

    /// Adds a named route, served under `/routes/{name}/` with every
    /// endpoint of the top level (see the crate docs).
    ///
    /// # Errors
    /// [`RouteError::DuplicateName`] or [`RouteError::OverlappingPrefixes`]
    /// against the routes already added and the default route (name
    /// `default`, prefix `uploads`).
    pub fn with_route(mut self, route: UploadRoute) -> Result<Self, RouteError> {
        let default = self.default_route();
        check_routes(self.routes.iter().chain([&default, &route]))?;
        self.routes.push(route);
        Ok(self)
    }

    /// Signs the single-PUT uploads of every route with `signer` instead
    /// of an S3 presigned PUT from [`AppState::presigner`]: e.g. an Azure
    /// container's SAS URLs (`upload_object_store::ObjectStoreStorage`
    /// with feature `azure`; it must be the container of
    /// [`AppState::uploads`]). The answers keep their JSON shape
    /// (`method`, `url`, `headers`, `key`, `expires_at`); the `headers`
    /// are the signer's (Azure: `content-type`, `x-ms-blob-type`).
    ///
    /// What the signer cannot do is typed in its
    /// [`SignerCapabilities`] and decided here:
    /// - single PUTs are handed out with the signer's weaker guarantees
    ///   where it pins less than S3 (Azure: no exact `Content-Length`, no
    ///   create-only, the content type and the route, owner and hook
    ///   metadata not signed): the worker's checks (sniffed type, real
    ///   size against the policy, scan) still decide, and a blob replaced
    ///   through a URL that has not expired yet reads untagged
    ///   (unscanned) until the worker has processed it again;
    /// - POST forms (`form: "post"`, `GET /s3/params` without a size) and
    ///   multipart (above the multipart threshold, Uppy's multipart
    ///   routes, part URLs) are refused with 501 `post_form_unsupported`
    ///   or `multipart_unsupported` when the signer cannot sign them,
    ///   never answered with S3 URLs that would not work.
    ///
    /// A setting of the configuration rather than a field of [`AppState`],
    /// so apps that build `AppState` with a struct literal keep compiling
    /// ([`AppState::with_upload_signer`] sets it on a built state).
    pub fn with_upload_signer(mut self, signer: Arc<dyn UploadSigner>) -> Self {
        self.upload_signer = Some(signer);
        self
    }

    /// The signer set by [`ServerConfig::with_upload_signer`]; `None`
    /// signs S3 presigned PUTs with [`AppState::presigner`].
    pub fn upload_signer(&self) -> Option<&Arc<dyn UploadSigner>> {
        self.upload_signer.as_ref()
    }

    /// The named routes, in the order added.
    pub fn routes(&self) -> &[UploadRoute] {
        &self.routes
    }

    /// The [`DEFAULT_ROUTE`]: this configuration's policy, multipart
    /// threshold and part size, keys under `uploads/`, no hook.
    pub fn default_route(&self) -> UploadRoute {
        UploadRoute::new(DEFAULT_ROUTE, self.policy.clone())
            .and_then(|r| r.with_key_prefix("uploads"))
            .expect("the default route's name and prefix are valid")
            .with_multipart_threshold(self.multipart_threshold)
            .with_part_size(self.part_size)
    }
}

/// The server's state: the presigner clients' URLs are signed with, the
/// uploads bucket (multipart side) and the processed bucket.
///
/// Built with a struct literal; a store that signs its own upload URLs
/// (Azure SAS) is given with [`AppState::with_upload_signer`] (kept in the
/// [`ServerConfig`], so this struct gained no field), with [`NoPresigner`]
/// as the presigners when no S3 request is signed.
#[derive(Clone)]
pub struct AppState {
    /// Signs URLs for the uploads bucket: a fixed `Arc<Presigner>` or a
    /// [`RefreshingPresigner`](upload_presign::RefreshingPresigner) whose
    /// credentials come from a provider (the AWS chain) and are refreshed
    /// before they expire; asked once per request for a presigner whose
    /// credentials outlive the URL.
    pub presigner: Arc<dyn PresignerSource>,
    /// The uploads bucket, for multipart sessions.
    pub uploads: Arc<dyn MultipartStore>,
    /// The processed bucket, for manifests and variants.
    pub processed: Arc<dyn Storage>,
    /// Signs GETs for the processed bucket (as [`AppState::presigner`]).
    pub processed_presigner: Arc<dyn PresignerSource>,
    /// Configuration.
    pub config: Arc<ServerConfig>,
    /// Key of the session tokens that bind a multipart upload ID to its
    /// owner, key and declared size (see [`session_token`](crate::session_token)); random per
    /// process unless configured, so a restart ends open sessions.
    pub session_secret: Arc<[u8; 32]>,
    /// The app's authentication: names the owner of every request, or
    /// refuses it (401 or 403) before anything is signed.
    pub authorizer: Arc<dyn Authorizer>,
}

impl AppState {
    /// The API's router (see the crate docs), to nest under any path of
    /// the app (`Router::nest("/api/uploads", state.router())`) and wrap
    /// with the app's own layers (CORS, tracing, body limits). It binds no
    /// port and reads no environment.
    pub fn router(&self) -> Router {
        crate::routes::router(self.clone())
    }

    /// The same state with its configuration's single-PUT signer set (see
    /// [`ServerConfig::with_upload_signer`]): the non-breaking way to
    /// sign through Azure SAS with an `AppState` built as a struct
    /// literal.
    pub fn with_upload_signer(mut self, signer: Arc<dyn UploadSigner>) -> Self {
        self.config = Arc::new((*self.config).clone().with_upload_signer(signer));
        self
    }

    /// What single uploads are signed with: the configured signer, or S3
    /// presigned PUTs of the uploads bucket with [`AppState::presigner`].
    pub fn upload_signer(&self) -> Arc<dyn UploadSigner> {
        match self.config.upload_signer() {
            Some(s) => Arc::clone(s),
            None => Arc::new(S3UploadSigner::new(
                Arc::clone(&self.presigner),
                self.uploads.bucket(),
            )),
        }
    }

    /// What [`AppState::upload_signer`] can sign (S3's everything without
    /// a configured signer).
    pub(crate) fn signer_capabilities(&self) -> SignerCapabilities {
        self.config
            .upload_signer()
            .map_or(SignerCapabilities::S3, |s| s.capabilities())
    }

    /// `Ok` when multipart uploads can be signed; 501
    /// `multipart_unsupported` otherwise.
    pub(crate) fn require_multipart(&self) -> Result<(), crate::ApiError> {
        if self.signer_capabilities().multipart {
            return Ok(());
        }
        Err(crate::ApiError {
            status: axum::http::StatusCode::NOT_IMPLEMENTED,
            code: "multipart_unsupported",
            message: "the storage of this API cannot sign multipart part URLs: upload in one PUT (at most the route's multipart threshold)".into(),
        })
    }

    /// `Ok` when POST forms can be signed; 501 `post_form_unsupported`
    /// otherwise.
    pub(crate) fn require_post_forms(&self) -> Result<(), crate::ApiError> {
        if self.signer_capabilities().post_forms {
            return Ok(());
        }
        Err(crate::ApiError {
            status: axum::http::StatusCode::NOT_IMPLEMENTED,
            code: "post_form_unsupported",
            message:
                "the storage of this API cannot sign POST forms: ask for a PUT with the file's size"
                    .into(),
        })
    }
}

/// A [`PresignerSource`] for an API that signs no S3 request: its
/// uploads are signed by another [`UploadSigner`]
/// ([`ServerConfig::with_upload_signer`], e.g. Azure SAS), so
/// [`AppState::presigner`] and [`AppState::processed_presigner`] need no
/// S3 credentials. Asked anyway (a presigned GET of a variant from
/// `/uploads/status`), it refuses: 503 `credentials_unavailable`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPresigner;

#[async_trait::async_trait]
impl PresignerSource for NoPresigner {
    async fn presigner(
        &self,
        _min_lifetime: Duration,
    ) -> upload_presign::Result<Arc<upload_presign::Presigner>> {
        Err(upload_presign::Error::CredentialsUnavailable {
            reason: "this API has no S3 presigner (NoPresigner): its uploads are signed by another UploadSigner".into(),
        })
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("presigner", &self.presigner)
            .field("uploads", &self.uploads)
            .field("processed", &self.processed)
            .field("processed_presigner", &self.processed_presigner)
            .field("config", &self.config)
            .field("session_secret", &"<redacted>")
            .field("authorizer", &"<dyn Authorizer>")
            .finish()
    }
}

/// The answer to `GET /config`: the policy and multipart settings a
/// client needs to pick its upload path and check files before asking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientConfig {
    /// The route these settings are of (`default` at the top level).
    pub route: String,
    /// Content types accepted (`image/jpeg`, ...).
    pub content_types: Vec<String>,
    /// Largest upload accepted, in bytes.
    pub max_bytes: u64,
    /// Uploads larger than this many bytes go multipart.
    pub multipart_threshold: u64,
    /// Part size the server plans multipart uploads with, in bytes.
    pub part_size: u64,
}

/// `GET /config`; asks the authorizer first, as every route does.
pub(crate) async fn client_config(
    _owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
) -> Json<ClientConfig> {
    Json(ClientConfig {
        route: route.name().to_owned(),
        content_types: route.policy.allowed_content_types().to_vec(),
        max_bytes: route.policy.max_bytes(),
        multipart_threshold: route.multipart_threshold,
        part_size: route.part_size,
    })
}
