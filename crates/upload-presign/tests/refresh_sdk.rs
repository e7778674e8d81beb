//! `SdkCredentialsProvider` (feature `s3`): the AWS SDK's credentials,
//! with their session token and expiry, feed a `RefreshingPresigner`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_s3::config::{Credentials as SdkCredentials, ProvideCredentials};
use upload_core::ObjectKey;
use upload_core::s3::SdkConfig;
use upload_presign::s3::{SdkCredentialsProvider, credentials_from_sdk};
use upload_presign::{Credentials, CredentialsProvider, Error, RefreshingPresigner, Url};

#[tokio::test]
async fn expiry_and_session_token_map_through() {
    let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let sdk = SdkCredentials::new(
        "ASIAEXAMPLE",
        "secret/key",
        Some("session-token".into()),
        Some(expiry),
        "test",
    );
    let got = SdkCredentialsProvider::new(sdk.clone())
        .credentials()
        .await
        .unwrap();
    assert_eq!(
        got,
        Credentials::new("ASIAEXAMPLE", "secret/key")
            .with_session_token("session-token")
            .with_expiry(expiry)
    );

    let long_term = SdkCredentials::new("AKIAEXAMPLE", "s", None, None, "test");
    let got = SdkCredentialsProvider::new(long_term)
        .credentials()
        .await
        .unwrap();
    assert_eq!(got, Credentials::new("AKIAEXAMPLE", "s"));

    // From an SdkConfig, and once through `credentials_from_sdk`.
    let config = SdkConfig::builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(sdk))
        .build();
    let got = SdkCredentialsProvider::from_sdk_config(&config)
        .unwrap()
        .credentials()
        .await
        .unwrap();
    assert_eq!(got.session_token.as_deref(), Some("session-token"));
    let (once, once_expiry) = credentials_from_sdk(&config).await.unwrap();
    assert_eq!(once, got);
    assert_eq!(once_expiry, Some(expiry));

    let e = SdkCredentialsProvider::from_sdk_config(&SdkConfig::builder().build()).unwrap_err();
    assert!(
        matches!(&e, Error::CredentialsUnavailable { reason }
            if reason == "the AWS configuration has no credentials provider"),
        "{e:?}"
    );
}

/// An SDK provider like an instance role's: new credentials on each call,
/// expiring 2 s later; fails on call `fail_on`.
#[derive(Debug)]
struct RotatingSdkProvider {
    calls: AtomicUsize,
    fail_on: usize,
}

impl ProvideCredentials for RotatingSdkProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        future::ProvideCredentials::ready(if n == self.fail_on {
            Err(CredentialsError::not_loaded("no role attached"))
        } else {
            Ok(SdkCredentials::new(
                format!("ASIAROTATED{n}"),
                format!("secret-{n}"),
                Some(format!("token-{n}")),
                Some(SystemTime::now() + Duration::from_secs(2)),
                "rotating",
            ))
        })
    }
}

#[tokio::test]
async fn a_refreshing_presigner_follows_the_sdk_chain_across_expiry() {
    let sdk = Arc::new(RotatingSdkProvider {
        calls: AtomicUsize::new(0),
        fail_on: 2,
    });
    let source = RefreshingPresigner::new(
        Url::parse("http://127.0.0.1:9000").unwrap(),
        "us-east-1",
        SdkCredentialsProvider::from_shared(aws_sdk_s3::config::SharedCredentialsProvider::new(
            Arc::clone(&sdk) as Arc<dyn ProvideCredentials>,
        )),
    )
    .unwrap()
    .with_refresh_before(Duration::from_millis(200));
    let key = ObjectKey::new("a.jpg").unwrap();
    let one = Duration::from_secs(1);
    let url_of = |p: &upload_presign::Presigner| {
        let url = p
            .presign_get("uploads", &key, one, SystemTime::now())
            .unwrap()
            .url;
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        (
            q["X-Amz-Credential"].split('/').next().unwrap().to_owned(),
            q["X-Amz-Security-Token"].clone(),
        )
    };

    let p0 = source.presigner(one).await.unwrap();
    assert_eq!(
        url_of(&p0),
        ("ASIAROTATED0".to_owned(), "token-0".to_owned())
    );
    let exp0 = p0.credentials().expires_at.unwrap();
    assert!(exp0 > SystemTime::now() + Duration::from_millis(1500));

    // Past the expiry of the first credentials: the second ones sign.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(SystemTime::now() > exp0);
    let p1 = source.presigner(one).await.unwrap();
    assert_eq!(
        url_of(&p1),
        ("ASIAROTATED1".to_owned(), "token-1".to_owned())
    );
    assert!(p1.credentials().expires_at.unwrap() > exp0);
    assert_eq!(sdk.calls.load(Ordering::SeqCst), 2);

    // The chain fails once they expired too: a typed error with its cause.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = source.presigner(one).await.unwrap_err();
    assert!(
        matches!(&e, Error::CredentialsUnavailable { reason } if reason.contains("no role attached")),
        "{e:?}"
    );
    // And recovers on the next call.
    let p3 = source.presigner(one).await.unwrap();
    assert_eq!(
        url_of(&p3),
        ("ASIAROTATED3".to_owned(), "token-3".to_owned())
    );
}
