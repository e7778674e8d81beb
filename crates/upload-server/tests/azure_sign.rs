//! The upload API on Azure Blob Storage (Azurite, `scripts/azurite.sh`,
//! started by `scripts/test.sh`): single PUTs are signed as SAS URLs by
//! `ObjectStoreStorage` through `ServerConfig::with_upload_signer`, in the
//! answers' usual JSON shape; what a SAS cannot do (POST forms, multipart)
//! is refused with 501. Driven over HTTP from the client's and the
//! attacker's side. Ignored in plain `cargo test`; they fail, not skip,
//! without `UPLOAD_SDK_AZURITE_BLOB_ENDPOINT` or with Azurite down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use upload_core::{ObjectKey, Storage, UploadPolicy};
use upload_object_store::ObjectStoreStorage;
use upload_object_store::testkit::{azurite_endpoint as endpoint, azurite_storage};
use upload_presign::ServerTimeouts;
use upload_server::{AppState, NoPresigner, ServerConfig, SignerCapabilities, UploadSigner};

const CONTAINER: &str = "api-sas";
const MIB: u64 = 1024 * 1024;

struct Api {
    url: String,
    http: reqwest::Client,
    storage: Arc<ObjectStoreStorage>,
}

/// The API on the Azurite container, signing with its SAS: the default
/// route (images and PDF up to 1 MiB, multipart above 512 KiB, URLs
/// living 300 s) and route `brief` (PNG, URLs living 1 s, keys under
/// `brief/`).
async fn api() -> Api {
    let storage = Arc::new(azurite_storage(CONTAINER).await);
    let brief = upload_server::UploadRoute::new(
        "brief",
        UploadPolicy::new(["image/png"], MIB)
            .unwrap()
            .with_expiry(Duration::from_secs(1))
            .unwrap(),
    )
    .unwrap()
    .with_key_prefix("brief")
    .unwrap();
    let mut config = ServerConfig::new(
        UploadPolicy::images_and_pdf(MIB)
            .unwrap()
            .with_expiry(Duration::from_secs(300))
            .unwrap(),
    )
    .with_route(brief)
    .unwrap();
    config.multipart_threshold = 512 * 1024;
    // Built as apps built it before signers existed, then given one.
    let state = AppState {
        presigner: Arc::new(NoPresigner),
        uploads: storage.clone(),
        processed: storage.clone(),
        processed_presigner: Arc::new(NoPresigner),
        config: Arc::new(config),
        session_secret: Arc::new([7; 32]),
        authorizer: common::test_authorizer(),
    }
    .with_upload_signer(storage.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upload_presign::serve(
        listener,
        state.router(),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    Api {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        storage,
    }
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder, owner: Option<&str>) -> (u16, Value) {
        let req = match owner {
            Some(o) => req.header("x-owner", o),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, owner: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let req = self.http.post(format!("{}{path}", self.url)).json(&body);
        self.send(req, owner).await
    }

    async fn get(&self, owner: &str, path: &str) -> (u16, Value) {
        let req = self.http.get(format!("{}{path}", self.url));
        self.send(req, Some(owner)).await
    }

    /// Sends `body` to the signed `request` ({method, url, headers}) with
    /// exactly its headers; the status.
    async fn upload(&self, request: &Value, body: &[u8]) -> u16 {
        assert_eq!(request["method"], "PUT");
        self.put_to(request["url"].as_str().unwrap(), &request["headers"], body)
            .await
    }

    /// A PUT of `body` to `url` with `headers` (pairs or a map).
    async fn put_to(&self, url: &str, headers: &Value, body: &[u8]) -> u16 {
        let mut req = self.http.put(url).body(body.to_vec());
        for (n, v) in header_pairs(headers) {
            req = req.header(n, v);
        }
        let r = req.send().await.unwrap();
        r.status().as_u16()
    }
}

/// Headers of an answer: `[[name, value], ...]` (our tickets) or
/// `{name: value}` (Uppy's).
fn header_pairs(headers: &Value) -> Vec<(String, String)> {
    match headers {
        Value::Array(pairs) => pairs
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
        other => panic!("headers: {other}"),
    }
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR not a whole png";

/// The same URL with the blob's last path segment replaced by `sibling`.
fn sibling_url(url: &str, sibling: &str) -> String {
    let (path, query) = url.split_once('?').unwrap();
    let (dir, _) = path.rsplit_once('/').unwrap();
    format!("{dir}/{sibling}?{query}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn an_owner_gets_a_sas_url_that_stores_the_blob() {
    let api = api().await;
    // No owner: nothing signed.
    let (status, body) = api
        .post(
            None,
            "/uploads",
            json!({"content_type": "image/png", "size": PNG.len()}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );

    let (status, ticket) = api
        .post(
            Some("alice"),
            "/uploads",
            json!({"content_type": "image/png", "size": PNG.len(), "filename": "me.png"}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    // The answer's usual shape: kind, key, request {method, url, headers}, expires_at.
    assert_eq!(ticket["kind"], "put");
    let key = ticket["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("uploads/alice/") && key.ends_with(".png"),
        "{key}"
    );
    let url = ticket["request"]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/{CONTAINER}/{key}?", endpoint())),
        "{url}"
    );
    for part in ["sp=w", "sr=b", "sig="] {
        assert!(url.contains(part), "{part} in {url}");
    }
    assert_eq!(
        header_pairs(&ticket["request"]["headers"]),
        [
            ("content-type".to_owned(), "image/png".to_owned()),
            ("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())
        ]
    );
    let expires_at = ticket["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with('Z'), "RFC 3339: {expires_at}");

    assert_eq!(api.upload(&ticket["request"], PNG).await, 201);
    let got = api
        .storage
        .get(&ObjectKey::new(key.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(got.body.as_ref(), PNG);
    assert_eq!(got.meta.content_type.as_deref(), Some("image/png"));
    assert!(
        api.storage
            .get_tags(&ObjectKey::new(key.clone()).unwrap())
            .await
            .unwrap()
            .is_empty(),
        "unscanned until the worker tags it"
    );

    // Uppy's `GET /s3/params` with a size and Uppy 6's `POST /s3/sign`
    // hand out the same kind of URL, in their own shapes.
    let (status, params) = api
        .get(
            "alice",
            &format!(
                "/s3/params?filename=a.png&type=image/png&size={}",
                PNG.len()
            ),
        )
        .await;
    assert_eq!(status, 200, "{params}");
    assert_eq!(params["method"], "PUT");
    assert_eq!(params["fields"], json!({}));
    assert_eq!(
        params["headers"],
        json!({"content-type": "image/png", "x-ms-blob-type": "BlockBlob"})
    );
    let params_key = params["key"].as_str().unwrap();
    assert!(params_key.starts_with("uploads/alice/"), "{params_key}");
    assert_eq!(api.upload(&params, PNG).await, 201);
    let (status, signed) = api
        .post(
            Some("alice"),
            "/s3/sign",
            json!({"method": "PUT", "key": "x.png", "contentType": "image/png", "size": PNG.len()}),
        )
        .await;
    assert_eq!(status, 200, "{signed}");
    let signed_key = signed["key"].as_str().unwrap();
    assert!(signed_key.starts_with("uploads/alice/"), "{signed_key}");
    assert_eq!(
        api.put_to(signed["url"].as_str().unwrap(), &signed["headers"], PNG)
            .await,
        201
    );
    for k in [key.as_str(), params_key, signed_key] {
        let k = ObjectKey::new(k).unwrap();
        assert_eq!(api.storage.head(&k).await.unwrap().size, PNG.len() as u64);
        api.storage.delete(&k).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn the_policy_refuses_before_anything_is_signed() {
    let api = api().await;
    for (body, status, code) in [
        (
            json!({"content_type": "text/html", "size": 10}),
            415,
            "content_type_not_allowed",
        ),
        (
            json!({"content_type": "image/png", "size": 2 * MIB}),
            413,
            "too_large",
        ),
    ] {
        let (got, answer) = api.post(Some("alice"), "/uploads", body).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)));
        assert!(answer.get("request").is_none() && answer.get("url").is_none());
    }
    let (got, answer) = api
        .get("alice", "/s3/params?filename=a.html&type=text/html&size=10")
        .await;
    assert_eq!(
        (got, answer["error"].as_str()),
        (415, Some("content_type_not_allowed"))
    );
    let (got, answer) = api
        .post(
            Some("alice"),
            "/s3/sign",
            json!({"method": "PUT", "key": "x.png", "contentType": "image/png", "size": 2 * MIB}),
        )
        .await;
    assert_eq!(got, 400, "above the multipart threshold: {answer}");
    assert!(answer.get("url").is_none());
}

/// A SAS cannot sign POST forms or part URLs: 501 with a code, never an
/// S3 URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn what_a_sas_cannot_sign_is_refused_with_501() {
    let api = api().await;
    let refused = |got: (u16, Value), code: &str| {
        assert_eq!(
            (got.0, got.1["error"].as_str()),
            (501, Some(code)),
            "{}",
            got.1
        );
    };
    refused(
        api.post(
            Some("alice"),
            "/uploads",
            json!({"content_type": "image/png", "size": 600 * 1024}),
        )
        .await,
        "multipart_unsupported",
    );
    refused(
        api.post(
            Some("alice"),
            "/uploads",
            json!({"content_type": "image/png", "size": 100, "form": "post"}),
        )
        .await,
        "post_form_unsupported",
    );
    refused(
        api.get("alice", "/s3/params?filename=a.png&type=image/png")
            .await,
        "post_form_unsupported",
    );
    refused(
        api.post(
            Some("alice"),
            "/s3/multipart",
            json!({"filename": "a.png", "type": "image/png"}),
        )
        .await,
        "multipart_unsupported",
    );
    refused(
        api.post(
            Some("alice"),
            "/s3/sign",
            json!({"method": "POST", "key": "a.png", "contentType": "image/png", "size": 600 * 1024}),
        )
        .await,
        "multipart_unsupported",
    );
    refused(
        api.post(
            Some("alice"),
            "/multipart/sign",
            json!({"key": "uploads/alice/a.png", "upload_id": "u", "session": "s", "first": 1, "last": 1}),
        )
        .await,
        "multipart_unsupported",
    );
}

/// Keys are the server's: another owner's key is never signed, and a SAS
/// opens its own blob only, for writing only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn a_sas_opens_one_blob_of_one_owner() {
    let api = api().await;
    let (_, alice) = api
        .post(
            Some("alice"),
            "/uploads",
            json!({"content_type": "image/png", "size": PNG.len()}),
        )
        .await;
    let alice_key = alice["key"].as_str().unwrap().to_owned();
    assert_eq!(api.upload(&alice["request"], PNG).await, 201);

    // Bob proposes Alice's key (Uppy 6 sends a key): he gets one of his own.
    let (status, bob) = api
        .post(
            Some("bob"),
            "/s3/sign",
            json!({"method": "PUT", "key": alice_key, "contentType": "image/png", "size": PNG.len()}),
        )
        .await;
    assert_eq!(status, 200, "{bob}");
    let bob_key = bob["key"].as_str().unwrap();
    assert!(bob_key.starts_with("uploads/bob/"), "{bob_key}");
    let bob_url = bob["url"].as_str().unwrap();
    assert!(!bob_url.contains(&alice_key), "{bob_url}");
    // And asking about her upload is refused.
    let (status, answer) = api
        .get(
            "bob",
            &format!("/uploads/status?key={}", alice_key.replace('/', "%2F")),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_your_upload"))
    );

    // Bob's SAS on Alice's blob (same directory level: uploads/bob/ →
    // uploads/alice/…) or on a sibling of his: 403.
    let query = bob_url.split_once('?').unwrap().1;
    let on_alice = format!("{}/{CONTAINER}/{alice_key}?{query}", endpoint());
    assert!(on_alice.contains(&alice_key), "{on_alice}");
    assert_eq!(api.put_to(&on_alice, &bob["headers"], b"evil").await, 403);
    let sibling = sibling_url(bob_url, "sibling.png");
    assert_eq!(api.put_to(&sibling, &bob["headers"], PNG).await, 403);
    // Reading with it: another blob, or its own (write permission only).
    for url in [on_alice.as_str(), bob_url] {
        let got = api.http.get(url).send().await.unwrap();
        assert_eq!(got.status().as_u16(), 403, "GET {url}");
    }
    let alice_obj = api
        .storage
        .get(&ObjectKey::new(alice_key.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(alice_obj.body.as_ref(), PNG, "Alice's blob is untouched");
    assert!(
        api.storage
            .head(&ObjectKey::new("uploads/bob/sibling.png").unwrap())
            .await
            .is_err(),
        "no sibling was written"
    );
    api.storage
        .delete(&ObjectKey::new(alice_key).unwrap())
        .await
        .unwrap();
}

/// A URL signed for 1 s is refused 2 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn an_expired_sas_is_refused() {
    let api = api().await;
    let (status, ticket) = api
        .post(
            Some("alice"),
            "/routes/brief/uploads",
            json!({"content_type": "image/png", "size": PNG.len()}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    let key = ticket["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("brief/alice/"), "{key}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.upload(&ticket["request"], PNG).await, 403);
    assert!(
        api.storage
            .head(&ObjectKey::new(key).unwrap())
            .await
            .is_err(),
        "nothing was stored"
    );
}

/// `ObjectStoreStorage` says what a SAS pins (nothing but the blob and
/// the time); a backend that cannot sign (memory) answers 501
/// `not_supported_by_storage` through the API, with no URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_sign_answers_501() {
    let storage = Arc::new(ObjectStoreStorage::in_memory("memory").unwrap());
    assert_eq!(
        UploadSigner::capabilities(storage.as_ref()),
        SignerCapabilities::AZURE_SAS
    );
    let state = AppState {
        presigner: Arc::new(NoPresigner),
        uploads: storage.clone(),
        processed: storage.clone(),
        processed_presigner: Arc::new(NoPresigner),
        config: Arc::new(ServerConfig::new(
            UploadPolicy::images_and_pdf(MIB).unwrap(),
        )),
        session_secret: Arc::new([7; 32]),
        authorizer: common::test_authorizer(),
    }
    .with_upload_signer(storage.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upload_presign::serve(
        listener,
        state.router(),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/uploads"))
        .header("x-owner", "alice")
        .json(&json!({"content_type": "image/png", "size": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 501);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_supported_by_storage", "{body}");
    assert!(body.get("request").is_none());
}
