//! Credentials that expire during the test: a `RefreshingPresigner` keeps
//! presigning across rotations, never hands out a URL that outlives the
//! credentials that signed it, calls its provider once per refresh however
//! many callers there are, rides out provider failures while the cached
//! credentials still cover the URL, and the local endpoint accepts URLs
//! signed before and after a rotation.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use upload_core::{MemoryStorage, ObjectKey, Storage};
use upload_presign::{
    Credentials, CredentialsProvider, Error, LocalEndpoint, Presigner, PresignerSource,
    RefreshingPresigner, Url, Verifier,
};

/// How long each credential set lives.
const LIFETIME: Duration = Duration::from_secs(2);

/// Hands out the next of a fixed list of keys on each call, expiring
/// `lifetime` after the call, after `delay`; fails while `fail` is set.
#[derive(Debug)]
struct RotatingProvider {
    keys: Vec<Credentials>,
    lifetime: Duration,
    calls: AtomicUsize,
    fail: AtomicBool,
    delay: Duration,
    /// Access key ID -> the expiry it was handed out with.
    issued: Mutex<HashMap<String, SystemTime>>,
}

impl RotatingProvider {
    fn new(delay: Duration) -> Arc<Self> {
        Self::with_lifetime(delay, LIFETIME)
    }

    fn with_lifetime(delay: Duration, lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            lifetime,
            // Session tokens as role credentials carry them.
            keys: (0..40)
                .map(|i| Credentials::random().with_session_token(format!("token-{i}")))
                .collect(),
            calls: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            delay,
            issued: Mutex::new(HashMap::new()),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn expiry_of(&self, access_key_id: &str) -> SystemTime {
        self.issued.lock().unwrap()[access_key_id]
    }
}

#[async_trait]
impl CredentialsProvider for RotatingProvider {
    async fn credentials(&self) -> upload_presign::Result<Credentials> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::CredentialsUnavailable {
                reason: format!("instance metadata unreachable (call {n})"),
            });
        }
        let expires_at = SystemTime::now() + self.lifetime;
        let c = self.keys[n].clone().with_expiry(expires_at);
        self.issued
            .lock()
            .unwrap()
            .insert(c.access_key_id.clone(), expires_at);
        Ok(c)
    }
}

fn refreshing(provider: &Arc<RotatingProvider>, endpoint: Url) -> RefreshingPresigner {
    RefreshingPresigner::new(endpoint, "us-east-1", Arc::clone(provider))
        .unwrap()
        .with_refresh_before(Duration::from_millis(500))
        .with_retry_after(Duration::ZERO)
}

fn local() -> Url {
    Url::parse("http://127.0.0.1:9000").unwrap()
}

/// `(access key ID, X-Amz-Date + X-Amz-Expires, X-Amz-Security-Token)` of a
/// presigned URL.
fn signed_by(url: &Url) -> (String, SystemTime, String) {
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let akid = q["X-Amz-Credential"].split('/').next().unwrap().to_owned();
    let d = q["X-Amz-Date"].as_str();
    let n = |r: std::ops::Range<usize>| d[r].parse::<u32>().unwrap();
    let date = time::Date::from_calendar_date(
        n(0..4) as i32,
        time::Month::try_from(n(4..6) as u8).unwrap(),
        n(6..8) as u8,
    )
    .unwrap();
    let t = time::Time::from_hms(n(9..11) as u8, n(11..13) as u8, n(13..15) as u8).unwrap();
    let ts = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp();
    let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(ts as u64);
    let expires: u64 = q["X-Amz-Expires"].parse().unwrap();
    (
        akid,
        signed_at + Duration::from_secs(expires),
        q["X-Amz-Security-Token"].clone(),
    )
}

fn put_url(p: &Presigner, key: &str, expires_in: Duration) -> Url {
    p.presign_put(
        "uploads",
        &ObjectKey::new(key).unwrap(),
        "text/plain",
        Some(2),
        expires_in,
        SystemTime::now(),
    )
    .unwrap()
    .url
}

#[tokio::test]
async fn presigning_keeps_working_across_expiry_and_urls_never_outlive_credentials() {
    let provider = RotatingProvider::new(Duration::ZERO);
    let source = refreshing(&provider, local());
    let started = std::time::Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut urls = 0;
    // 5.5 s: the credentials expire (and are replaced) at least twice.
    while started.elapsed() < Duration::from_millis(5500) {
        let expires_in = Duration::from_secs(1);
        let p = source.presigner(expires_in).await.unwrap();
        let url = put_url(&p, "a.txt", expires_in);
        let (akid, url_expires_at, token) = signed_by(&url);
        let creds_expire_at = provider.expiry_of(&akid);
        assert!(
            url_expires_at <= creds_expire_at,
            "URL of {akid} expires at {url_expires_at:?}, after its credentials at {creds_expire_at:?}"
        );
        assert_eq!(Some(creds_expire_at), p.credentials().expires_at);
        assert_eq!(Some(&token), p.credentials().session_token.as_ref());
        if seen.last() != Some(&akid) {
            seen.push(akid);
        }
        urls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every key handed out was used, in order, and each exactly once.
    let want: Vec<String> = provider.keys[..provider.calls()]
        .iter()
        .map(|c| c.access_key_id.clone())
        .collect();
    assert_eq!(seen, want);
    // Each key signs from its issue until under 1.5 s of its 2 s are left
    // (1 s URL + 500 ms refresh_before): about 0.5 s, so about 11 keys.
    assert!(
        (3..=13).contains(&seen.len()),
        "about one refresh per 0.5 s over 5.5 s: {} keys",
        seen.len()
    );
    assert!(urls > 50, "{urls}");
}

#[tokio::test]
async fn a_url_longer_than_any_credentials_is_refused() {
    let provider = RotatingProvider::new(Duration::ZERO);
    let source = refreshing(&provider, local());
    // 3 s > the 2 s the provider's credentials live.
    let e = source.presigner(Duration::from_secs(3)).await.unwrap_err();
    let Error::CredentialsExpireFirst {
        credentials_expire_at,
        url_expires_at,
    } = &e
    else {
        panic!("{e:?}")
    };
    let akid = &provider.keys[0].access_key_id;
    assert_eq!(
        credentials_expire_at,
        &upload_core::timestamp::rfc3339(provider.expiry_of(akid))
    );
    assert!(url_expires_at > credentials_expire_at);
    assert_eq!((e.s3_code(), e.http_status()), ("ExpiredToken", 500));
    assert_eq!(provider.calls(), 1);
    // The credentials fetched are cached and serve shorter URLs.
    let p = source.presigner(Duration::from_secs(1)).await.unwrap();
    assert_eq!(&p.credentials().access_key_id, akid);
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_cause_one_provider_call_per_refresh() {
    let provider = RotatingProvider::new(Duration::from_millis(150));
    let source: Arc<dyn PresignerSource> = Arc::new(refreshing(&provider, local()));
    let burst = |source: &Arc<dyn PresignerSource>| {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = Arc::clone(source);
                tokio::spawn(async move { s.presigner(Duration::from_secs(1)).await })
            })
            .collect();
        async move {
            let mut ids = HashSet::new();
            for t in tasks {
                ids.insert(
                    t.await
                        .unwrap()
                        .unwrap()
                        .credentials()
                        .access_key_id
                        .clone(),
                );
            }
            ids
        }
    };

    // Cold: all 50 wait for the one call.
    let ids = burst(&source).await;
    assert_eq!(provider.calls(), 1);
    assert_eq!(ids, HashSet::from([provider.keys[0].access_key_id.clone()]));

    // Early refresh (1.2..1.5 s left, within refresh_before of the 1 s
    // asked): one caller refreshes, the others sign with the cached
    // credentials meanwhile.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ids = burst(&source).await;
    assert_eq!(provider.calls(), 2);
    assert!(ids.contains(&provider.keys[1].access_key_id), "{ids:?}");
    assert!(ids.len() <= 2);

    // Required refresh (under 1 s left): all 50 wait for the one call.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ids = burst(&source).await;
    assert_eq!(provider.calls(), 3);
    assert_eq!(ids, HashSet::from([provider.keys[2].access_key_id.clone()]));

    // A failing provider: still one call, its error shared by all 50.
    provider.fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = Arc::clone(&source);
            tokio::spawn(async move { s.presigner(Duration::from_secs(1)).await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert!(
            matches!(&e, Error::CredentialsUnavailable { reason } if reason == "instance metadata unreachable (call 3)"),
            "{e:?}"
        );
    }
    assert_eq!(provider.calls(), 4);
}

#[tokio::test]
async fn a_failing_provider_is_ridden_out_while_the_cached_credentials_cover_the_url() {
    let provider = RotatingProvider::new(Duration::ZERO);
    let source = RefreshingPresigner::new(local(), "us-east-1", Arc::clone(&provider))
        .unwrap()
        // Early refresh as soon as under 2.5 s are left for a 1 s URL: always.
        .with_refresh_before(Duration::from_millis(1500))
        .with_retry_after(Duration::from_millis(300));
    let k0 = provider.keys[0].access_key_id.clone();
    let one = Duration::from_secs(1);
    assert_eq!(
        source
            .presigner(one)
            .await
            .unwrap()
            .credentials()
            .access_key_id,
        k0
    );
    assert_eq!(provider.calls(), 1);

    provider.fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The early refresh fails: the cached credentials still sign.
    let p = source.presigner(one).await.unwrap();
    assert_eq!(p.credentials().access_key_id, k0);
    assert_eq!(provider.calls(), 2);
    let (akid, url_expires_at, _) = signed_by(&put_url(&p, "b.txt", one));
    assert_eq!(akid, k0);
    assert!(url_expires_at <= provider.expiry_of(&k0));
    // Within retry_after of the failure: no new call.
    let p = source.presigner(one).await.unwrap();
    assert_eq!(p.credentials().access_key_id, k0);
    assert_eq!(provider.calls(), 2);

    // 2.0 - 1.2 = 0.8 s left: a 1 s URL needs new credentials, which fail;
    // a 500 ms lifetime is still covered by the cached ones.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let e = source.presigner(one).await.unwrap_err();
    assert!(
        matches!(&e, Error::CredentialsUnavailable { reason } if reason == "instance metadata unreachable (call 2)"),
        "{e:?}"
    );
    assert_eq!(provider.calls(), 3);
    let p = source.presigner(Duration::from_millis(500)).await.unwrap();
    assert_eq!(p.credentials().access_key_id, k0);
    // Presigning itself refuses a URL outliving them.
    let e = p
        .presign_get(
            "uploads",
            &ObjectKey::new("b.txt").unwrap(),
            one,
            SystemTime::now(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::CredentialsExpireFirst { .. }), "{e:?}");

    // Expired: nothing signs until the provider recovers.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(SystemTime::now() > provider.expiry_of(&k0));
    let e = source
        .presigner(Duration::from_millis(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CredentialsUnavailable { .. }), "{e:?}");
    provider.fail.store(false, Ordering::SeqCst);
    let p = source.presigner(one).await.unwrap();
    let calls = provider.calls();
    assert_eq!(
        p.credentials().access_key_id,
        provider.keys[calls - 1].access_key_id
    );
}

#[tokio::test]
async fn a_fixed_presigner_is_a_source_for_what_its_credentials_cover() {
    let expires_at = SystemTime::now() + Duration::from_secs(60);
    let fixed = Arc::new(
        Presigner::new(
            local(),
            "us-east-1",
            Credentials::new("AKIDFIXED", "s").with_expiry(expires_at),
        )
        .unwrap(),
    );
    let source: Arc<dyn PresignerSource> = Arc::new(Arc::clone(&fixed));
    let p = source.presigner(Duration::from_secs(30)).await.unwrap();
    assert!(Arc::ptr_eq(&p, &fixed));
    let e = source
        .presigner(Duration::from_secs(120))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::CredentialsExpireFirst { credentials_expire_at, .. }
            if *credentials_expire_at == upload_core::timestamp::rfc3339(expires_at)),
        "{e:?}"
    );

    let long_term: Arc<dyn PresignerSource> = Arc::new(Arc::new(
        Presigner::new(local(), "us-east-1", Credentials::new("AKIDLONG", "s")).unwrap(),
    ));
    let p = long_term
        .presigner(Duration::from_secs(7 * 86_400))
        .await
        .unwrap();
    assert_eq!(p.credentials().access_key_id, "AKIDLONG");
    assert!(long_term.presigner(Duration::MAX).await.is_ok());
}

#[tokio::test]
async fn static_credentials_and_bad_endpoints() {
    let creds = Credentials::new("AKIDSTATIC", "s").with_session_token("tok");
    let source = RefreshingPresigner::new(local(), "eu-west-1", creds.clone()).unwrap();
    let a = source
        .presigner(Duration::from_secs(604_800))
        .await
        .unwrap();
    let b = source.presigner(Duration::from_secs(1)).await.unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "long-term credentials are fetched once"
    );
    assert_eq!(a.credentials(), &creds);
    assert_eq!(a.region(), "eu-west-1");
    assert!(Arc::ptr_eq(&source.cached_presigner().unwrap(), &a));

    for (url, region) in [
        ("ftp://x", "us-east-1"),
        ("http://x/?a=b", "us-east-1"),
        ("http://x", ""),
        ("http://x", "us east"),
    ] {
        let e =
            RefreshingPresigner::new(Url::parse(url).unwrap(), region, creds.clone()).unwrap_err();
        assert!(
            matches!(e, Error::InvalidEndpoint { .. }),
            "{url} {region}: {e:?}"
        );
    }
}

/// URLs signed with the credentials before and after a rotation upload
/// through the verifying local endpoint, which knows every key the provider
/// can hand out: both while the old credentials are still valid, and the
/// old URL no longer once they expired.
#[tokio::test]
async fn urls_signed_before_and_after_rotation_verify_end_to_end() {
    // 4 s credentials, 3 s URLs, refreshed early once under 3.5 s are left.
    let provider = RotatingProvider::with_lifetime(Duration::ZERO, Duration::from_secs(4));
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", provider.keys.clone()))
        .with_bucket(storage.clone(), None)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let source = refreshing(&provider, endpoint.url());
    let http = reqwest::Client::new();
    let put = |url: Url, body: &'static [u8]| {
        let http = http.clone();
        async move {
            let r = http
                .put(url.as_str())
                .header("content-type", "text/plain")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let three = Duration::from_secs(3);
    let (k0, k1) = (&provider.keys[0], &provider.keys[1]);

    let before = put_url(&source.presigner(three).await.unwrap(), "before.txt", three);
    assert_eq!(signed_by(&before).0, k0.access_key_id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Rotated early: the old credentials and the URL are still valid.
    let after = put_url(&source.presigner(three).await.unwrap(), "after.txt", three);
    let (akid, url_expires_at, token) = signed_by(&after);
    assert_eq!(akid, k1.access_key_id);
    assert_eq!(token, "token-1");
    assert!(url_expires_at <= provider.expiry_of(&k1.access_key_id));
    assert!(SystemTime::now() < provider.expiry_of(&k0.access_key_id));
    assert_eq!(put(before.clone(), b"b1").await, (200, String::new()));
    assert_eq!(put(after, b"a2").await, (200, String::new()));

    // Past the old credentials' expiry, and so past the old URL's.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(SystemTime::now() > provider.expiry_of(&k0.access_key_id));
    let (status, body) = put(before, b"b3").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    // The current credentials still upload.
    let now = put_url(&source.presigner(three).await.unwrap(), "now.txt", three);
    assert_eq!(put(now, b"n4").await.0, 200);

    for (k, body) in [
        ("before.txt", b"b1"),
        ("after.txt", b"a2"),
        ("now.txt", b"n4"),
    ] {
        let got = storage.get(&ObjectKey::new(k).unwrap()).await.unwrap();
        assert_eq!(got.body.as_ref(), body, "{k}");
    }
    assert_eq!(provider.calls(), 3, "k0, k1 early, k2 after k1 aged");
    endpoint.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_hung_provider_times_out_with_a_typed_error() {
    use upload_presign::provider::FnProvider;
    let p = upload_presign::RefreshingPresigner::new(
        "http://127.0.0.1:9000".parse().unwrap(),
        "us-east-1",
        FnProvider::new(|| async {
            std::future::pending::<()>().await;
            Ok(upload_presign::Credentials::random())
        }),
    )
    .unwrap()
    .with_provider_timeout(std::time::Duration::from_millis(100));
    let e = p
        .presigner(std::time::Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, upload_presign::Error::CredentialsUnavailable { reason } if reason.contains("did not answer")),
        "{e}"
    );
}
