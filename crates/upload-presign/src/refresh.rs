//! Presigners whose credentials rotate: [`RefreshingPresigner`], and
//! [`PresignerSource`], what an HTTP layer asks for a presigner per request.
//!
//! Role credentials (instance profile, container role, `AssumeRole`) expire
//! after an hour or so and are replaced by new ones. A
//! [`RefreshingPresigner`] asks its [`CredentialsProvider`] for new
//! credentials before the cached ones expire, and hands out a [`Presigner`]
//! whose credentials outlive the URL about to be signed, so a URL never
//! stops working before its `X-Amz-Expires` is up.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use url::Url;

use crate::error::Result;
use crate::provider::CredentialsProvider;
use crate::sigv4::{AddressingStyle, Presigner, check_endpoint};

/// How long before the credentials expire a [`RefreshingPresigner`] asks
/// for new ones by default: 5 minutes, as the AWS SDKs do.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// How long a [`RefreshingPresigner`] waits by default before asking its
/// provider again after an early refresh (one made while the cached
/// credentials still cover the request) failed or gave credentials that
/// already need refreshing: 10 seconds.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Default [`RefreshingPresigner::with_provider_timeout`]: 10 seconds.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Something that hands out a [`Presigner`] good for a URL of a given
/// lifetime: a fixed one (`Arc<Presigner>`) or a [`RefreshingPresigner`].
///
/// An HTTP layer holds an `Arc<dyn PresignerSource>` and asks it once per
/// request, with the expiry of the URL it is about to sign:
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use upload_presign::{Credentials, Presigner, PresignerSource, Url};
/// use upload_core::ObjectKey;
///
/// struct AppState {
///     presigner: Arc<dyn PresignerSource>,
/// }
///
/// async fn upload_url(st: &AppState, key: &ObjectKey) -> upload_presign::Result<String> {
///     let expiry = Duration::from_secs(300);
///     let p = st.presigner.presigner(expiry).await?;
///     let r = p.presign_put("uploads", key, "image/jpeg", Some(42), expiry, SystemTime::now())?;
///     Ok(r.url.to_string())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let fixed = Presigner::new(
///     Url::parse("http://127.0.0.1:9000").unwrap(),
///     "us-east-1",
///     Credentials::new("AKIDEXAMPLE", "secret"),
/// )?;
/// let st = AppState { presigner: Arc::new(Arc::new(fixed)) };
/// let url = upload_url(&st, &ObjectKey::new("a.jpg").unwrap()).await?;
/// assert!(url.contains("X-Amz-Expires=300"));
/// # Ok::<_, upload_presign::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait PresignerSource: Send + Sync + fmt::Debug {
    /// A presigner whose credentials stay valid for at least `min_lifetime`
    /// from now (pass the expiry of the URL to sign; credentials without an
    /// expiry always qualify).
    ///
    /// # Errors
    /// [`Error::CredentialsExpireFirst`](crate::Error::CredentialsExpireFirst)
    /// when no credentials at hand last that long;
    /// [`Error::TimeOutOfRange`](crate::Error::TimeOutOfRange) when now +
    /// `min_lifetime` overflows the clock; for a [`RefreshingPresigner`],
    /// the provider's error when it fails and the cached credentials do not
    /// cover `min_lifetime`.
    async fn presigner(&self, min_lifetime: Duration) -> Result<Arc<Presigner>>;
}

/// A fixed presigner: itself, if its credentials cover `min_lifetime`.
#[async_trait]
impl PresignerSource for Arc<Presigner> {
    async fn presigner(&self, min_lifetime: Duration) -> Result<Arc<Presigner>> {
        check_covers(self, SystemTime::now(), min_lifetime)?;
        Ok(Arc::clone(self))
    }
}

#[async_trait]
impl PresignerSource for RefreshingPresigner {
    async fn presigner(&self, min_lifetime: Duration) -> Result<Arc<Presigner>> {
        RefreshingPresigner::presigner(self, min_lifetime).await
    }
}

/// `Ok` when `p`'s credentials are valid at `now + lifetime`.
fn check_covers(p: &Presigner, now: SystemTime, lifetime: Duration) -> Result<()> {
    if p.credentials().expires_at.is_none() {
        return Ok(());
    }
    let until = now
        .checked_add(lifetime)
        .ok_or(crate::Error::TimeOutOfRange)?;
    p.check_credentials_expiry(until)
}

/// A presigner for one endpoint and region whose credentials come from a
/// [`CredentialsProvider`] and are refreshed before they expire.
///
/// The current credentials are cached as an `Arc<Presigner>` (with its
/// cached signing key); [`RefreshingPresigner::presigner`] returns it while
/// its credentials stay valid for the URL's lifetime plus
/// [`refresh_before`](RefreshingPresigner::with_refresh_before), and asks
/// the provider otherwise:
///
/// - **Early refresh**: the cached credentials still cover the URL but
///   expire within `refresh_before`. One caller asks the provider while the
///   others keep signing with the cached credentials; if the provider fails,
///   the cached credentials are used (a `tracing` warning is logged) and the
///   provider is asked again after
///   [`retry_after`](RefreshingPresigner::with_retry_after).
/// - **Required refresh**: nothing cached, or the cached credentials expire
///   before the URL would. Callers wait for a single provider call (however
///   many there are) and get its credentials, or its error, or
///   [`Error::CredentialsExpireFirst`](crate::Error::CredentialsExpireFirst)
///   if the new credentials do not last long enough either.
///
/// URLs never outlive their credentials: a presigner is only handed out for
/// a lifetime its credentials cover, and [`Presigner::presign`] refuses a
/// longer expiry anyway. So a URL lifetime must stay below how long before
/// expiry the source hands out new credentials: EC2 and ECS roles make new
/// ones available at least 5 minutes ahead, so URLs of up to 5 minutes
/// always get a presigner; a longer one can get `CredentialsExpireFirst`
/// while the source still returns credentials closer to their expiry.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use upload_presign::{
///     Credentials, PresignerSource, RefreshingPresigner, Url, provider::FnProvider,
/// };
/// use upload_core::ObjectKey;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // Temporary credentials valid for one hour, from the application's own source
/// // (with feature `s3`, `upload_presign::s3::SdkCredentialsProvider` reads the AWS chain).
/// let provider = FnProvider::new(|| async {
///     Ok(Credentials::new("ASIAEXAMPLE", "secret")
///         .with_session_token("token")
///         .with_expiry(SystemTime::now() + Duration::from_secs(3600)))
/// });
/// let source: Arc<dyn PresignerSource> = Arc::new(RefreshingPresigner::new(
///     Url::parse("https://s3.eu-west-1.amazonaws.com")?,
///     "eu-west-1",
///     provider,
/// )?);
///
/// // Per request: a presigner good for the URL's expiry, then sign.
/// let expiry = Duration::from_secs(900);
/// let p = source.presigner(expiry).await?;
/// let key = ObjectKey::new("photos/a.jpg").unwrap();
/// let r = p.presign_get("my-bucket", &key, expiry, SystemTime::now())?;
/// assert!(r.url.as_str().contains("X-Amz-Security-Token=token"));
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct RefreshingPresigner {
    endpoint: Url,
    region: String,
    style: AddressingStyle,
    provider: Arc<dyn CredentialsProvider>,
    refresh_before: Duration,
    retry_after: Duration,
    provider_timeout: Option<Duration>,
    /// The presigner of the newest credentials from the provider. Never
    /// held across an `.await`.
    cached: RwLock<Option<Arc<Presigner>>>,
    /// Held during a provider call (single flight).
    refresh: tokio::sync::Mutex<LastRefresh>,
}

/// The last provider call.
#[derive(Debug, Default)]
struct LastRefresh {
    /// When it finished.
    finished: Option<Instant>,
    /// Its error, if it failed.
    error: Option<String>,
}

impl fmt::Debug for RefreshingPresigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshingPresigner")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("style", &self.style)
            .field("provider", &self.provider)
            .field("refresh_before", &self.refresh_before)
            .field("retry_after", &self.retry_after)
            .field(
                "cached",
                &self.cached_presigner().map(|p| {
                    let c = p.credentials();
                    (c.access_key_id.clone(), c.expires_at)
                }),
            )
            .finish()
    }
}

impl RefreshingPresigner {
    /// A presigner for `endpoint` (e.g. `https://s3.eu-west-1.amazonaws.com`)
    /// and `region`, path-style, with credentials from `provider` (asked
    /// first on the first [`RefreshingPresigner::presigner`] call).
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`](crate::Error::InvalidEndpoint) as
    /// [`Presigner::new`]: not http(s), no host, a query or fragment, or a
    /// region that is not non-empty `[A-Za-z0-9-]`.
    pub fn new(
        endpoint: Url,
        region: &str,
        provider: impl CredentialsProvider + 'static,
    ) -> Result<Self> {
        check_endpoint(&endpoint, region)?;
        Ok(Self {
            endpoint,
            region: region.to_owned(),
            style: AddressingStyle::Path,
            provider: Arc::new(provider),
            refresh_before: DEFAULT_REFRESH_BEFORE,
            retry_after: DEFAULT_RETRY_AFTER,
            provider_timeout: None,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(LastRefresh::default()),
        })
    }

    /// Sets the addressing style of the presigners handed out.
    pub fn with_style(mut self, style: AddressingStyle) -> Self {
        self.style = style;
        self
    }

    /// Refreshes credentials early when they expire less than
    /// `refresh_before` after the URL asked for would (default
    /// [`DEFAULT_REFRESH_BEFORE`], 5 minutes).
    pub fn with_refresh_before(mut self, refresh_before: Duration) -> Self {
        self.refresh_before = refresh_before;
        self
    }

    /// After an early refresh that failed (or gave credentials that already
    /// need refreshing), waits `retry_after` (default
    /// [`DEFAULT_RETRY_AFTER`], 10 s) before asking the provider again while
    /// the cached credentials still cover requests. Required refreshes never
    /// wait.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Longest wait for one provider call (none by default;
    /// [`DEFAULT_PROVIDER_TIMEOUT`], 10 s, is a good value): past it the
    /// call counts as failed ([`crate::Error::CredentialsUnavailable`]),
    /// so a hung provider never holds every request that needs a refresh.
    /// Needs a tokio runtime with timers enabled (`#[tokio::main]` has
    /// them; a runtime built without `enable_time` panics on the first
    /// refresh).
    pub fn with_provider_timeout(mut self, timeout: Duration) -> Self {
        self.provider_timeout = Some(timeout);
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

    /// The presigner of the credentials cached now, if the provider was
    /// asked successfully before (whatever their remaining lifetime).
    pub fn cached_presigner(&self) -> Option<Arc<Presigner>> {
        self.cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A presigner whose credentials stay valid for at least `min_lifetime`
    /// from now (the expiry of the URL about to be signed), refreshing the
    /// credentials as described on [`RefreshingPresigner`].
    ///
    /// # Errors
    /// The provider's error when it fails and the cached credentials (if
    /// any) do not cover `min_lifetime` (callers that waited for that failed
    /// call get [`Error::CredentialsUnavailable`](crate::Error::CredentialsUnavailable)
    /// with its message);
    /// [`Error::CredentialsExpireFirst`](crate::Error::CredentialsExpireFirst)
    /// when the provider's newest credentials expire within `min_lifetime`;
    /// [`Error::TimeOutOfRange`](crate::Error::TimeOutOfRange) when now +
    /// `min_lifetime` overflows the clock.
    pub async fn presigner(&self, min_lifetime: Duration) -> Result<Arc<Presigner>> {
        let now = SystemTime::now();
        if let Some(p) = self.cached_presigner() {
            let wanted = min_lifetime.saturating_add(self.refresh_before);
            if check_covers(&p, now, wanted).is_ok() {
                return Ok(p);
            }
            if check_covers(&p, now, min_lifetime).is_ok() {
                return Ok(self.refresh_early(p, min_lifetime).await);
            }
        }
        self.refresh_required(min_lifetime).await
    }

    /// Early refresh: `current` covers `min_lifetime`, so it is returned
    /// whenever a refresh is under way, failed recently, or fails now.
    async fn refresh_early(
        &self,
        current: Arc<Presigner>,
        min_lifetime: Duration,
    ) -> Arc<Presigner> {
        let Ok(mut last) = self.refresh.try_lock() else {
            return current;
        };
        if last
            .finished
            .is_some_and(|t| t.elapsed() < self.retry_after)
        {
            return current;
        }
        // Another caller may have refreshed between our read and the lock.
        if let Some(newer) = self.cached_presigner()
            && !Arc::ptr_eq(&newer, &current)
            && check_covers(&newer, SystemTime::now(), min_lifetime).is_ok()
        {
            return newer;
        }
        match self.fetch(&mut last).await {
            Ok(fresh) if check_covers(&fresh, SystemTime::now(), min_lifetime).is_ok() => fresh,
            Ok(_) => current,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    access_key_id = %current.credentials().access_key_id,
                    expires_at = ?current.credentials().expires_at,
                    "refreshing the signing credentials failed; signing with the cached ones until they expire"
                );
                current
            }
        }
    }

    /// Required refresh: waits for the single provider call, or shares the
    /// outcome of the one that ran while waiting.
    async fn refresh_required(&self, min_lifetime: Duration) -> Result<Arc<Presigner>> {
        let waiting_since = Instant::now();
        let mut last = self.refresh.lock().await;
        let now = SystemTime::now();
        let cached = self.cached_presigner();
        // Whoever held the lock before may have refreshed already.
        if let Some(p) = &cached
            && check_covers(p, now, min_lifetime).is_ok()
        {
            return Ok(Arc::clone(p));
        }
        // A provider call that finished while we waited (so was under way or
        // started after us) did not give credentials covering
        // `min_lifetime`: its outcome is ours too, without another call.
        if last.finished.is_some_and(|t| t >= waiting_since) {
            if let Some(reason) = &last.error {
                return Err(crate::Error::CredentialsUnavailable {
                    reason: reason.clone(),
                });
            }
            if let Some(p) = &cached {
                check_covers(p, now, min_lifetime)?;
            }
        }
        let fresh = self.fetch(&mut last).await?;
        check_covers(&fresh, SystemTime::now(), min_lifetime)?;
        Ok(fresh)
    }

    /// Asks the provider (recording the call in `last`) and caches a
    /// presigner of its credentials.
    async fn fetch(&self, last: &mut LastRefresh) -> Result<Arc<Presigner>> {
        let outcome = match self.provider_timeout {
            None => self.provider.credentials().await,
            Some(limit) => tokio::time::timeout(limit, self.provider.credentials())
                .await
                .unwrap_or_else(|_| {
                    Err(crate::Error::CredentialsUnavailable {
                        reason: format!("the credentials provider did not answer within {limit:?}"),
                    })
                }),
        };
        last.finished = Some(Instant::now());
        last.error = outcome.as_ref().err().map(|e| match e {
            // Shared as the same error, not nested in another.
            crate::Error::CredentialsUnavailable { reason } => reason.clone(),
            other => other.to_string(),
        });
        let credentials = outcome?;
        tracing::debug!(
            access_key_id = %credentials.access_key_id,
            expires_at = ?credentials.expires_at,
            "signing credentials refreshed"
        );
        let p = Arc::new(
            Presigner::new(self.endpoint.clone(), &self.region, credentials)?
                .with_style(self.style),
        );
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&p));
        Ok(p)
    }
}
