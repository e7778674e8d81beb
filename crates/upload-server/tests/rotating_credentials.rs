//! The upload API signs with credentials from a provider that rotate
//! while it runs (role credentials living 3 s here): every ticket is
//! signed with credentials that outlive its URL, the server picks up the
//! new key without a restart, and a provider that fails signs nothing
//! (503). Driven over HTTP against the local endpoint, which verifies the
//! signatures and refuses expired credentials.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use upload_core::{MemoryStorage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_presign::provider::FnProvider;
use upload_presign::{Credentials, LocalEndpoint, RefreshingPresigner, ServerTimeouts, Verifier};
use upload_server::{AppState, ServerConfig, UploadTicket, router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_keep_working_across_a_credentials_rotation() {
    // The keys the provider hands out, in turn; the endpoint knows them all.
    let keys: Vec<Credentials> = (0..6).map(|_| Credentials::random()).collect();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(storage.clone()));
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", keys.clone()))
        .with_bucket(storage.clone(), Some(mp.clone()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(Mutex::new(false));
    let provider = {
        let (calls, failing, keys) = (calls.clone(), failing.clone(), keys.clone());
        FnProvider::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let fail = *failing.lock().unwrap();
            let key = keys[n % keys.len()].clone();
            async move {
                if fail {
                    return Err(upload_presign::Error::CredentialsUnavailable {
                        reason: "the instance metadata service is down".into(),
                    });
                }
                Ok(key
                    .with_session_token(format!("token-{n}"))
                    .with_expiry(SystemTime::now() + Duration::from_secs(3)))
            }
        })
    };
    let presigner = Arc::new(
        RefreshingPresigner::new(endpoint.url(), "us-east-1", provider)
            .unwrap()
            .with_refresh_before(Duration::from_millis(500)),
    );
    let policy = UploadPolicy::images_and_pdf(1 << 20)
        .unwrap()
        .with_expiry(Duration::from_secs(1))
        .unwrap();
    let state = AppState {
        presigner: presigner.clone(),
        uploads: mp,
        processed: storage.clone(),
        processed_presigner: presigner,
        config: Arc::new(ServerConfig::new(policy)),
        session_secret: Arc::new([3; 32]),
        authorizer: common::test_authorizer(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(upload_presign::serve(
        listener,
        router(state),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let ticket = || async {
        let r = http
            .post(format!("{api}/uploads"))
            .header("x-owner", "alice")
            .json(&json!({"content_type": "image/png", "size": 4}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let put = |t: serde_json::Value| async {
        let UploadTicket::Put { request, .. } = serde_json::from_value(t).unwrap() else {
            panic!("a PUT ticket")
        };
        let key_id = url_param(&request.url, "X-Amz-Credential")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let mut r = http.put(&request.url);
        for (n, v) in &request.headers {
            r = r.header(n.as_str(), v.as_str());
        }
        let status = r
            .body(&b"\x89PNG"[..])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (key_id, status)
    };

    // 4.5 s of tickets, one every 300 ms: credentials rotate (3 s each,
    // refreshed 0.5 s + the URL's 1 s before they expire), every upload
    // succeeds.
    let mut used = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(4500) {
        let (status, t) = ticket().await;
        assert_eq!(status, 200, "{t}");
        let (key_id, status) = put(t).await;
        assert_eq!(status, 200, "signed with {key_id}");
        if used.last() != Some(&key_id) {
            used.push(key_id);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(used.len() >= 3, "rotated through {used:?}");
    let want: Vec<String> = keys[..used.len()]
        .iter()
        .map(|k| k.access_key_id.clone())
        .collect();
    assert_eq!(used, want, "each key in turn, never an old one again");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        used.len(),
        "one provider call per rotation"
    );

    // The provider fails and the cached credentials run out: 503, nothing
    // signed.
    *failing.lock().unwrap() = true;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, e) = ticket().await;
    assert_eq!(
        (status, e["error"].as_str()),
        (503, Some("credentials_unavailable")),
        "{e}"
    );
    // It recovers with the provider.
    *failing.lock().unwrap() = false;
    let (status, t) = ticket().await;
    assert_eq!(status, 200);
    assert_eq!(put(t).await.1, 200);
}

fn url_param(url: &str, name: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}
