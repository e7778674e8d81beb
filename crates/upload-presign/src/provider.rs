//! Where signing credentials come from: [`CredentialsProvider`].
//!
//! A provider is asked for credentials whenever a
//! [`RefreshingPresigner`](crate::RefreshingPresigner) needs new ones
//! (first use, or the cached ones expire soon). Implementations:
//!
//! - [`Credentials`] itself: fixed credentials, handed out as they are.
//! - [`FnProvider`]: an async closure, for applications with their own
//!   source (a secrets manager, a token exchange).
//! - `upload_presign::s3::SdkCredentialsProvider` (feature `s3`): the AWS SDK's
//!   provider chain (environment, profile, instance or container role).
//! - `Arc<P>` and `Box<P>` of any provider.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::credentials::Credentials;
use crate::error::Result;

/// A source of [`Credentials`], asked again each time they need refreshing.
///
/// Temporary credentials carry their expiry in
/// [`Credentials::expires_at`]; a provider should hand out the newest it
/// has (it may cache them itself, as the AWS SDK chain does). Credentials
/// without `expires_at` are taken as never expiring.
#[async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    /// The current credentials.
    ///
    /// # Errors
    /// Whatever the source reports; providers of this crate use
    /// [`Error::CredentialsUnavailable`](crate::Error::CredentialsUnavailable).
    async fn credentials(&self) -> Result<Credentials>;
}

/// Fixed credentials: every call returns a clone of them.
#[async_trait]
impl CredentialsProvider for Credentials {
    async fn credentials(&self) -> Result<Credentials> {
        Ok(self.clone())
    }
}

#[async_trait]
impl<P: CredentialsProvider + ?Sized> CredentialsProvider for Arc<P> {
    async fn credentials(&self) -> Result<Credentials> {
        (**self).credentials().await
    }
}

#[async_trait]
impl<P: CredentialsProvider + ?Sized> CredentialsProvider for Box<P> {
    async fn credentials(&self) -> Result<Credentials> {
        (**self).credentials().await
    }
}

/// A provider calling an async closure, for applications that fetch
/// credentials themselves.
///
/// ```
/// use upload_presign::{Credentials, CredentialsProvider, provider::FnProvider};
///
/// let provider = FnProvider::new(|| async {
///     // e.g. read a secrets manager here.
///     Ok(Credentials::new("AKIDEXAMPLE", "secret").with_session_token("token"))
/// });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(provider.credentials().await?.access_key_id, "AKIDEXAMPLE");
/// # Ok::<_, upload_presign::Error>(()) }).unwrap();
/// ```
pub struct FnProvider<F> {
    f: F,
}

impl<F, Fut> FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<Credentials>> + Send,
{
    /// A provider whose [`CredentialsProvider::credentials`] awaits `f()`.
    pub fn new(f: F) -> Self {
        Self { f }
    }
}

impl<F> fmt::Debug for FnProvider<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProvider").finish_non_exhaustive()
    }
}

#[async_trait]
impl<F, Fut> CredentialsProvider for FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<Credentials>> + Send,
{
    async fn credentials(&self) -> Result<Credentials> {
        (self.f)().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[tokio::test]
    async fn static_arc_box_and_closure_providers() {
        let c = Credentials::new("AKID1", "s1").with_session_token("t1");
        assert_eq!(c.credentials().await.unwrap(), c);
        let arc: Arc<dyn CredentialsProvider> = Arc::new(c.clone());
        assert_eq!(arc.credentials().await.unwrap(), c);
        let boxed: Box<dyn CredentialsProvider> = Box::new(c.clone());
        assert_eq!(boxed.credentials().await.unwrap(), c);

        let failing = FnProvider::new(|| async {
            Err(Error::CredentialsUnavailable {
                reason: "vault sealed".into(),
            })
        });
        let e = failing.credentials().await.unwrap_err();
        assert_eq!(e.to_string(), "AWS credentials unavailable: vault sealed");
        assert_eq!(format!("{failing:?}"), "FnProvider { .. }");
    }
}
