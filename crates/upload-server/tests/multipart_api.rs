//! The presign server's multipart session API, in both of its shapes (ours
//! and Uppy's `@uppy/aws-s3` routes), driven over HTTP as a browser would:
//! part bytes go straight to storage through the presigned part URLs.
//!
//! Every scenario runs twice: on in-memory storage behind the local
//! endpoint, and on moto (the moto test is `#[ignore]`d in plain
//! `cargo test`; `scripts/test.sh` starts moto and sets
//! `UPLOAD_SDK_MOTO_ENDPOINT`; without it the test fails, never skips).

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::storage::{etag_of, multipart_etag};
use upload_core::{MemoryStorage, MultipartStore, ObjectKey, Storage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_presign::{AddressingStyle, Credentials, LocalEndpoint, Presigner, Url, Verifier};
use upload_server::{
    AppState, DEFAULT_SESSION_LIFETIME, ServerConfig, SessionClaims, SessionError, router,
    session_token, verify_session_token,
};

const MIB: usize = 1024 * 1024;

struct Harness {
    api: String,
    http: reqwest::Client,
    objects: Arc<dyn Storage>,
    multipart: Arc<dyn MultipartStore>,
    // Kept alive for the test.
    _endpoint: Option<upload_presign::RunningEndpoint>,
}

fn state(
    presigner: Presigner,
    objects: Arc<dyn Storage>,
    multipart: Arc<dyn MultipartStore>,
    session_lifetime: Duration,
) -> AppState {
    let policy = UploadPolicy::images_and_pdf(64 * MIB as u64)
        .unwrap()
        .with_expiry(Duration::from_secs(300))
        .unwrap();
    let mut config = ServerConfig::new(policy);
    config.multipart_threshold = MIB as u64;
    config.part_size = 5 * MIB as u64;
    config.first_batch = 2;
    config.session_lifetime = session_lifetime;
    let presigner = Arc::new(presigner);
    AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: multipart,
        processed: objects,
        processed_presigner: Arc::new(presigner),
        config: Arc::new(config),
        session_secret: Arc::new([7; 32]),
        authorizer: common::test_authorizer(),
    }
}

async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    format!("http://{addr}")
}

async fn in_memory() -> Harness {
    in_memory_with(DEFAULT_SESSION_LIFETIME).await
}

/// The in-memory harness with sessions that live `session_lifetime`.
async fn in_memory_with(session_lifetime: Duration) -> Harness {
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(storage.clone()));
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(storage.clone(), Some(mp.clone()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Presigner::new(endpoint.url(), "us-east-1", creds).unwrap();
    let api = serve(state(
        presigner,
        storage.clone(),
        mp.clone(),
        session_lifetime,
    ))
    .await;
    Harness {
        api,
        http: reqwest::Client::new(),
        objects: storage,
        multipart: mp,
        _endpoint: Some(endpoint),
    }
}

async fn on_moto() -> Harness {
    let endpoint = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT")
        .expect("UPLOAD_SDK_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(upload_core::s3::aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let name = format!("mpapi-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let s3 = S3Storage::new(AwsSettings::local(&endpoint).s3_client(&sdk), name).unwrap();
    s3.create_bucket().await.unwrap();
    let presigner = Presigner::new(
        Url::parse(&endpoint).unwrap(),
        "us-east-1",
        Credentials::new("testing", "testing"),
    )
    .unwrap()
    .with_style(AddressingStyle::Path);
    let s3 = Arc::new(s3);
    let api = serve(state(
        presigner,
        s3.clone(),
        s3.clone(),
        DEFAULT_SESSION_LIFETIME,
    ))
    .await;
    Harness {
        api,
        http: reqwest::Client::new(),
        objects: s3.clone(),
        multipart: s3,
        _endpoint: None,
    }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + i / 4093) as u8).wrapping_add(seed))
        .collect()
}

impl Harness {
    /// A JSON call to the API as `owner`; returns (status, body).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        owner: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("x-owner", owner);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (status, v)
    }

    async fn get(&self, path: &str, owner: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, owner, None).await
    }

    async fn post(&self, path: &str, owner: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, owner, Some(body))
            .await
    }

    /// PUTs a part body to a presigned URL with its signed headers;
    /// returns the ETag header (quoted, as a browser sees it).
    async fn put_part(&self, url: &str, headers: &Value, body: Vec<u8>) -> String {
        let mut req = self.http.put(url).body(body);
        if let Some(h) = headers.as_object() {
            for (k, v) in h {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{}",
            resp.text().await.unwrap()
        );
        resp.headers()["etag"].to_str().unwrap().to_owned()
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        self.objects
            .get(&ObjectKey::new(key).unwrap())
            .await
            .unwrap()
            .body
            .to_vec()
    }
}

fn q(s: &str) -> String {
    url_escape(s)
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Our own shape: create, sign in batches, paginated list, refused
/// completions, an owner who is not the creator, a completion repeated.
async fn own_api(h: &Harness) {
    let size = 12 * MIB + 3;
    let data = bytes(size, 1);
    let (st, t) = h
        .post(
            "/uploads",
            "alice",
            json!({"content_type": "image/jpeg", "size": size}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["kind"], "multipart");
    assert_eq!(t["part_size"], 5 * MIB);
    assert_eq!(t["part_count"], 3);
    assert_eq!(t["parts"].as_array().unwrap().len(), 2, "first batch of 2");
    let key = t["key"].as_str().unwrap().to_owned();
    let upload_id = t["upload_id"].as_str().unwrap().to_owned();
    let session = t["session"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("uploads/alice/") && key.ends_with(".jpg"),
        "{key}"
    );
    let ids = json!({"key": key, "upload_id": upload_id, "session": session});

    // The rest of the URLs, then the parts.
    let (st, more) = h
        .post(
            "/multipart/sign",
            "alice",
            json!({"key": key, "upload_id": upload_id, "session": session, "first": 3, "last": 3}),
        )
        .await;
    assert_eq!(st, 200, "{more}");
    let (st, e) = h
        .post(
            "/multipart/sign",
            "alice",
            json!({"key": key, "upload_id": upload_id, "session": session, "first": 1, "last": 4}),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("bad_request")), "{e}");
    let mut urls: Vec<Value> = t["parts"].as_array().unwrap().clone();
    urls.extend(more["parts"].as_array().unwrap().iter().cloned());
    let mut etags = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        assert_eq!(u["part_number"], i + 1);
        let chunk = data[i * 5 * MIB..((i + 1) * 5 * MIB).min(size)].to_vec();
        let headers: serde_json::Map<String, Value> = u["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].clone()))
            .collect();
        let etag = h
            .put_part(
                u["request"]["url"].as_str().unwrap(),
                &Value::Object(headers),
                chunk.clone(),
            )
            .await;
        assert_eq!(etag.trim_matches('"'), etag_of(&chunk));
        etags.push(etag);
    }

    // Paginated ListParts: one part per page.
    let mut seen = Vec::new();
    let mut marker = 0;
    loop {
        let (st, p) = h
            .get(
                &format!(
                    "/multipart/parts?key={}&upload_id={}&session={}&max_parts=1&part_number_marker={marker}",
                    q(&key),
                    q(&upload_id),
                    q(&session)
                ),
                "alice",
            )
            .await;
        assert_eq!(st, 200, "{p}");
        let parts = p["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 1, "{p}");
        seen.push((
            parts[0]["part_number"].as_u64().unwrap(),
            parts[0]["size"].as_u64().unwrap(),
        ));
        if !p["is_truncated"].as_bool().unwrap() {
            assert_eq!(p["next_part_number_marker"], Value::Null);
            break;
        }
        marker = p["next_part_number_marker"].as_u64().unwrap();
    }
    assert_eq!(
        seen,
        [
            (1, 5 * MIB as u64),
            (2, 5 * MIB as u64),
            (3, 2 * MIB as u64 + 3)
        ]
    );

    // Another owner, with or without the session, touches nothing.
    for path in ["/multipart/abort", "/multipart/complete", "/multipart/sign"] {
        let body = match path {
            "/multipart/abort" => json!({"key": key, "upload_id": upload_id, "session": session}),
            "/multipart/sign" => {
                json!({"key": key, "upload_id": upload_id, "session": session, "first": 1, "last": 1})
            }
            _ => json!({"key": key, "upload_id": upload_id, "session": session, "parts": []}),
        };
        let (st, e) = h.post(path, "mallory", body.clone()).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (403, Some("not_your_upload")),
            "{path}: {e}"
        );
        // Her own key prefix with Alice's upload ID and session: the
        // token binds the key.
        let mut forged = body;
        forged["key"] = json!(key.replace("/alice/", "/mallory/"));
        let (st, e) = h.post(path, "mallory", forged).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (403, Some("bad_session")),
            "{path}: {e}"
        );
    }
    let (st, _) = h
        .get(
            &format!(
                "/multipart/parts?key={}&upload_id={}&session={}",
                q(&key),
                q(&upload_id),
                q(&session)
            ),
            "mallory",
        )
        .await;
    assert_eq!(st, 403);

    // The owner's own token with another of her keys: the token binds
    // the key, not just the owner.
    let (st, e) = h
        .post(
            "/multipart/abort",
            "alice",
            json!({"key": "uploads/alice/other.jpg", "upload_id": upload_id, "session": session}),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (403, Some("bad_session")), "{e}");

    // Refused before the store sees them: a wrong ETag, a missing part,
    // parts out of order. The upload stays open.
    let part = |n: usize| json!({"part_number": n, "etag": etags[n - 1]});
    for (parts, needle) in [
        (
            json!([part(1), {"part_number": 2, "etag": etags[0]}, part(3)]),
            "part 2: ETag",
        ),
        (json!([part(1), part(2)]), "12582915 were declared"),
        (
            json!([part(2), part(1), part(3)]),
            "position 2 holds part 1 after part 2",
        ),
        // S3 would take a gap; the session refuses it (part 2 never
        // reaches the object).
        (json!([part(1), part(3)]), "part 2 is missing"),
    ] {
        let mut body = ids.clone();
        body["parts"] = parts;
        let (st, e) = h.post("/multipart/complete", "alice", body).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (400, Some("invalid_parts")),
            "{e}"
        );
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
    assert_eq!(
        h.multipart
            .list_parts(&ObjectKey::new(key.as_str()).unwrap(), &upload_id)
            .await
            .unwrap()
            .len(),
        3,
        "refused completions leave the upload open"
    );

    // Completion, then the same request again (a retry after a lost
    // answer): the same object is reported both times.
    let mut body = ids.clone();
    body["parts"] = json!([part(1), part(2), part(3)]);
    let (st, done) = h.post("/multipart/complete", "alice", body.clone()).await;
    assert_eq!(st, 200, "{done}");
    let expected = multipart_etag(etags.iter().map(|e| e.as_str())).unwrap();
    assert_eq!(done["etag"], expected);
    assert_eq!(done["size"], size);
    let (st, again) = h.post("/multipart/complete", "alice", body).await;
    assert_eq!((st, &again), (200, &done));
    assert_eq!(h.object(&key).await, data, "the object is the bytes sent");
    // A repeat naming other parts is not taken for this object.
    let mut body = ids.clone();
    body["parts"] = json!([part(1), part(3), part(2)]);
    let (st, e) = h.post("/multipart/complete", "alice", body).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (404, Some("no_such_upload")),
        "{e}"
    );
}

/// Uppy's shape, request for request as `@uppy/aws-s3` sends them.
async fn uppy_api(h: &Harness) {
    let (st, c) = h
        .post(
            "/s3/multipart",
            "bob",
            json!({"filename": "../../etc/passwd.jpg", "type": "image/jpeg", "metadata": {"name": "x.jpg", "size": (10 * MIB + 1).to_string()}}),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let key = c["key"].as_str().unwrap().to_owned();
    let upload_id = c["uploadId"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("uploads/bob/") && !key.contains("passwd"),
        "{key}"
    );
    assert!(upload_id.contains('~'), "{upload_id}");
    let base = format!("/s3/multipart/{}", q(&upload_id));
    let kq = format!("key={}", q(&key));

    // Three parts, the middle one 4,999,999 bytes.
    let sizes = [5 * MIB, 4_999_999, 5 * MIB + 1 - 4_999_999];
    let mut sent = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let (st, s) = h.get(&format!("{base}/{}?{kq}", i + 1), "bob").await;
        assert_eq!(st, 200, "{s}");
        assert_eq!(s["method"], "PUT");
        assert_eq!(s["expires"], 300);
        let body = bytes(*len, i as u8);
        let etag = h
            .put_part(s["url"].as_str().unwrap(), &s["headers"], body.clone())
            .await;
        sent.push((etag, body));
    }
    let (st, listed) = h.get(&format!("{base}?{kq}"), "bob").await;
    assert_eq!(st, 200, "{listed}");
    let listed: Vec<(u64, u64, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["PartNumber"].as_u64().unwrap(),
                p["Size"].as_u64().unwrap(),
                p["ETag"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        sent.iter()
            .enumerate()
            .map(|(i, (e, b))| {
                assert_eq!(
                    e.trim_matches('"'),
                    etag_of(b),
                    "the part's ETag is its MD5"
                );
                (i as u64 + 1, b.len() as u64, format!("\"{}\"", etag_of(b)))
            })
            .collect::<Vec<_>>()
    );
    let parts = |sent: &[(String, Vec<u8>)]| json!({"parts": sent.iter().enumerate().map(|(i, (e, _))| json!({"PartNumber": i + 1, "ETag": e})).collect::<Vec<_>>()});
    let (st, e) = h
        .post(&format!("{base}/complete?{kq}"), "bob", parts(&sent))
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_parts")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("part 2 has 4999999 bytes"),
        "{e}"
    );

    // Re-sent at 5 MiB (a fresh signature, as Uppy asks for on retry),
    // the upload completes.
    let (_, s) = h.get(&format!("{base}/2?{kq}"), "bob").await;
    let body = bytes(5 * MIB, 9);
    let etag = h
        .put_part(s["url"].as_str().unwrap(), &s["headers"], body.clone())
        .await;
    sent[1] = (etag, body);
    let last = bytes(1, 3);
    let (_, s) = h.get(&format!("{base}/3?{kq}"), "bob").await;
    let etag = h
        .put_part(s["url"].as_str().unwrap(), &s["headers"], last.clone())
        .await;
    sent[2] = (etag, last);
    let (st, done) = h
        .post(&format!("{base}/complete?{kq}"), "bob", parts(&sent))
        .await;
    assert_eq!(st, 200, "{done}");
    assert!(done["location"].as_str().unwrap().ends_with(&key), "{done}");
    assert_eq!(done["size"], 10 * MIB + 1);
    let whole: Vec<u8> = sent.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(h.object(&key).await, whole);

    // Old-style batch signing; part numbers beyond S3's limit refused.
    let (st, c) = h
        .post("/s3/multipart", "bob", json!({"type": "image/png"}))
        .await;
    assert_eq!(st, 200, "{c}");
    let (key2, id2) = (
        c["key"].as_str().unwrap().to_owned(),
        c["uploadId"].as_str().unwrap().to_owned(),
    );
    let base2 = format!("/s3/multipart/{}", q(&id2));
    let kq2 = format!("key={}", q(&key2));
    let (st, b) = h
        .get(&format!("{base2}/batch?{kq2}&partNumbers=1,2"), "bob")
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["presignedUrls"].as_object().unwrap().len(), 2);
    assert!(
        b["presignedUrls"]["2"]
            .as_str()
            .unwrap()
            .contains("partNumber=2")
    );
    let (st, _) = h.get(&format!("{base2}/10001?{kq2}"), "bob").await;
    assert_eq!(st, 400);
    let (st, _) = h.get(&format!("{base2}/0?{kq2}"), "bob").await;
    assert_eq!(st, 400);

    // Someone else, or a forged upload ID, is refused; then the owner aborts.
    let (st, e) = h.get(&format!("{base2}/1?{kq2}"), "mallory").await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_your_upload")));
    let (s3_id, _) = id2.rsplit_once('~').unwrap();
    for forged in [s3_id.to_owned(), format!("{s3_id}~1.0.00")] {
        let (st, e) = h
            .get(&format!("/s3/multipart/{}/1?{kq2}", q(&forged)), "bob")
            .await;
        assert_eq!(
            (st, e["error"].as_str()),
            (403, Some("bad_session")),
            "{forged}"
        );
    }
    let (st, e) = h
        .call(
            reqwest::Method::DELETE,
            &format!("{base2}?{kq2}"),
            "mallory",
            None,
        )
        .await;
    assert_eq!(st, 403, "{e}");
    let (st, e) = h
        .get(
            &format!("{base2}/1?key={}", q("uploads/bob/other.png")),
            "bob",
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (403, Some("bad_session")), "{e}");
    let (st, v) = h
        .call(
            reqwest::Method::DELETE,
            &format!("{base2}?{kq2}"),
            "bob",
            None,
        )
        .await;
    assert_eq!((st, v), (200, json!({})));
    assert!(matches!(
        h.multipart
            .list_parts(&ObjectKey::new(key2.as_str()).unwrap(), s3_id)
            .await,
        Err(upload_core::Error::NoSuchUpload { .. })
    ));

    // Single uploads: a POST form without a size, a PUT with one.
    let (st, p) = h
        .get("/s3/params?filename=a.jpg&type=image%2Fjpeg", "bob")
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["method"], "POST");
    assert!(p["fields"]["policy"].is_string(), "{p}");
    assert!(
        p["fields"]["key"]
            .as_str()
            .unwrap()
            .starts_with("uploads/bob/")
    );
    let (st, p) = h
        .get(
            "/s3/params?filename=a.jpg&type=image%2Fjpeg&size=1234",
            "bob",
        )
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["method"], "PUT");
    assert_eq!(p["headers"]["content-type"], "image/jpeg");
    let (st, e) = h
        .get("/s3/params?filename=a.html&type=text%2Fhtml", "bob")
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (415, Some("content_type_not_allowed"))
    );
    let (st, e) = h
        .post(
            "/s3/multipart",
            "bob",
            json!({"type": "image/jpeg", "metadata": {"size": 65 * MIB}}),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (413, Some("too_large")), "{e}");
}

/// Part URLs of an upload that was completed or aborted are refused
/// (404 `no_such_upload`, from the store's ListParts) on our route and on
/// both of Uppy's signing routes.
async fn ended_uploads_sign_nothing(h: &Harness) {
    // Ours: one part of 2 MiB, completed; another aborted.
    for end in ["/multipart/complete", "/multipart/abort"] {
        let size = 2 * MIB;
        let (st, t) = h
            .post(
                "/uploads",
                "carol",
                json!({"content_type": "image/png", "size": size}),
            )
            .await;
        assert_eq!((st, t["part_count"].as_u64()), (200, Some(1)), "{t}");
        let ids = json!({"key": t["key"], "upload_id": t["upload_id"], "session": t["session"]});
        let sign = || {
            let mut b = ids.clone();
            b["first"] = json!(1);
            b["last"] = json!(1);
            b
        };
        let (st, e) = h.post("/multipart/sign", "carol", sign()).await;
        assert_eq!(st, 200, "{e}");
        let mut body = ids.clone();
        if end == "/multipart/complete" {
            let u = &t["parts"][0]["request"];
            let headers: serde_json::Map<String, Value> = u["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].clone()))
                .collect();
            let etag = h
                .put_part(
                    u["url"].as_str().unwrap(),
                    &Value::Object(headers),
                    bytes(size, 4),
                )
                .await;
            body["parts"] = json!([{"part_number": 1, "etag": etag}]);
        }
        let (st, e) = h.post(end, "carol", body).await;
        assert!(st == 200 || st == 204, "{end}: {st} {e}");
        let (st, e) = h.post("/multipart/sign", "carol", sign()).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (404, Some("no_such_upload")),
            "signing after {end}: {e}"
        );
    }

    // Uppy's: one part of 1 KiB, completed; another aborted (DELETE).
    for end in ["complete", "delete"] {
        let (st, c) = h
            .post(
                "/s3/multipart",
                "carol",
                json!({"type": "image/png", "metadata": {"size": 1024}}),
            )
            .await;
        assert_eq!(st, 200, "{c}");
        let base = format!("/s3/multipart/{}", q(c["uploadId"].as_str().unwrap()));
        let kq = format!("key={}", q(c["key"].as_str().unwrap()));
        let (st, s) = h.get(&format!("{base}/1?{kq}"), "carol").await;
        assert_eq!(st, 200, "{s}");
        let (st, e) = if end == "complete" {
            let etag = h
                .put_part(s["url"].as_str().unwrap(), &s["headers"], bytes(1024, 5))
                .await;
            h.post(
                &format!("{base}/complete?{kq}"),
                "carol",
                json!({"parts": [{"PartNumber": 1, "ETag": etag}]}),
            )
            .await
        } else {
            h.call(
                reqwest::Method::DELETE,
                &format!("{base}?{kq}"),
                "carol",
                None,
            )
            .await
        };
        assert_eq!(st, 200, "{end}: {e}");
        for path in [
            format!("{base}/1?{kq}"),
            format!("{base}/batch?{kq}&partNumbers=1"),
        ] {
            let (st, e) = h.get(&path, "carol").await;
            assert_eq!(
                (st, e["error"].as_str()),
                (404, Some("no_such_upload")),
                "{path} after {end}: {e}"
            );
        }
    }
}

/// A 0-byte file never becomes a multipart session (it has no part plan:
/// `PartPlan` answers `EmptyObject`): refused on every route that could
/// start one, before the store is asked.
async fn empty_files_never_go_multipart(h: &Harness) {
    let before = h.multipart.list_multipart_uploads("").await.unwrap().len();
    let (st, e) = h
        .post(
            "/uploads",
            "erin",
            json!({"content_type": "image/jpeg", "size": 0}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("empty_upload")),
        "{e}"
    );
    let (st, e) = h
        .post(
            "/s3/multipart",
            "erin",
            json!({"type": "image/jpeg", "metadata": {"size": 0}}),
        )
        .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("bad_request")), "{e}");
    let (st, e) = h
        .get("/s3/params?filename=a.jpg&type=image%2Fjpeg&size=0", "erin")
        .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("bad_request")), "{e}");
    assert_eq!(
        h.multipart.list_multipart_uploads("").await.unwrap().len(),
        before,
        "no upload was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_sessions_in_memory() {
    let h = in_memory().await;
    own_api(&h).await;
    uppy_api(&h).await;
    ended_uploads_sign_nothing(&h).await;
    empty_files_never_go_multipart(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run scripts/test.sh"]
async fn multipart_sessions_on_moto() {
    let h = on_moto().await;
    own_api(&h).await;
    uppy_api(&h).await;
    ended_uploads_sign_nothing(&h).await;
}

/// A token is valid until the second of its expiry, which is bound into
/// its MAC: a later expiry written into it is not a token.
#[test]
fn session_tokens_carry_a_signed_expiry() {
    let secret = [9; 32];
    let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let claims = SessionClaims::new(Some(12), Some(5), t0, Duration::from_millis(59_500));
    assert_eq!(claims.expires_at, 1_700_000_060, "rounded up to a second");
    let token = session_token(&secret, "alice", "uploads/alice/a.jpg", "up-1", &claims);
    assert_eq!(
        token.rsplit_once('.').unwrap().0,
        "12.5.1700000060",
        "{token}"
    );
    let verify = |token: &str, at: u64| {
        verify_session_token(
            &secret,
            "alice",
            "uploads/alice/a.jpg",
            "up-1",
            token,
            t0 + Duration::from_secs(at),
        )
    };
    assert_eq!(verify(&token, 0), Ok(claims));
    assert_eq!(verify(&token, 59), Ok(claims));
    assert_eq!(
        verify(&token, 60),
        Err(SessionError::Expired {
            expires_at: 1_700_000_060
        })
    );
    assert_eq!(
        verify(&token, 86_400).unwrap_err().to_string(),
        "the session expired at 1700000060 (unix seconds); start a new upload"
    );
    let extended = token.replace(".1700000060.", ".1800000000.");
    assert_eq!(verify(&extended, 60), Err(SessionError::Mismatch));
    // The old three-field form (no expiry) is not a token.
    let mac = token.rsplit_once('.').unwrap().1;
    assert_eq!(
        verify(&format!("12.5.{mac}"), 0),
        Err(SessionError::Mismatch)
    );
    // Another upload ID with this token.
    assert_eq!(
        verify_session_token(&secret, "alice", "uploads/alice/a.jpg", "up-2", &token, t0),
        Err(SessionError::Mismatch)
    );
}

/// Sessions living 1 s: after that, every session call on our routes and
/// Uppy's is refused with 403 `session_expired`, and the upload is left
/// for the owner's lifecycle rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_refused_on_both_routes() {
    let h = in_memory_with(Duration::from_secs(1)).await;
    let (st, t) = h
        .post(
            "/uploads",
            "dave",
            json!({"content_type": "image/jpeg", "size": 2 * MIB}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    let ids = json!({"key": t["key"], "upload_id": t["upload_id"], "session": t["session"]});
    let (st, c) = h
        .post("/s3/multipart", "dave", json!({"type": "image/jpeg"}))
        .await;
    assert_eq!(st, 200, "{c}");
    let base = format!("/s3/multipart/{}", q(c["uploadId"].as_str().unwrap()));
    let kq = format!("key={}", q(c["key"].as_str().unwrap()));
    let mut sign = ids.clone();
    sign["first"] = json!(1);
    sign["last"] = json!(1);
    assert_eq!(h.post("/multipart/sign", "dave", sign.clone()).await.0, 200);
    assert_eq!(h.get(&format!("{base}/1?{kq}"), "dave").await.0, 200);

    // Wait past the expiry the token names.
    let expires_at: u64 = t["session"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let until = std::time::UNIX_EPOCH + Duration::from_secs(expires_at);
    if let Ok(left) = until.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }

    let mut complete = ids.clone();
    complete["parts"] = json!([{"part_number": 1, "etag": "x"}]);
    let parts = format!(
        "/multipart/parts?key={}&upload_id={}&session={}",
        q(t["key"].as_str().unwrap()),
        q(t["upload_id"].as_str().unwrap()),
        q(t["session"].as_str().unwrap())
    );
    let mut answers = vec![
        ("sign", h.post("/multipart/sign", "dave", sign).await),
        (
            "complete",
            h.post("/multipart/complete", "dave", complete).await,
        ),
        (
            "abort",
            h.post("/multipart/abort", "dave", ids.clone()).await,
        ),
        ("parts", h.get(&parts, "dave").await),
    ];
    for (name, path) in [
        ("uppy sign", format!("{base}/1?{kq}")),
        ("uppy batch", format!("{base}/batch?{kq}&partNumbers=1")),
        ("uppy list", format!("{base}?{kq}")),
    ] {
        answers.push((name, h.get(&path, "dave").await));
    }
    answers.push((
        "uppy complete",
        h.post(
            &format!("{base}/complete?{kq}"),
            "dave",
            json!({"parts": []}),
        )
        .await,
    ));
    answers.push((
        "uppy abort",
        h.call(
            reqwest::Method::DELETE,
            &format!("{base}?{kq}"),
            "dave",
            None,
        )
        .await,
    ));
    for (name, (st, e)) in answers {
        assert_eq!(
            (st, e["error"].as_str()),
            (403, Some("session_expired")),
            "{name}: {e}"
        );
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("session expired at"),
            "{name}: {e}"
        );
    }
    // Refused, not aborted: the uploads are still there.
    let key = ObjectKey::new(t["key"].as_str().unwrap()).unwrap();
    h.multipart
        .list_parts(&key, t["upload_id"].as_str().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn client_config() {
    let h = in_memory().await;
    let config: Value = h
        .http
        .get(format!("{}/config", h.api))
        .header("x-owner", "alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config,
        json!({
            "route": "default",
            "content_types": ["image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf"],
            "max_bytes": 64 * MIB,
            "multipart_threshold": MIB,
            "part_size": 5 * MIB,
        })
    );
}

/// Every route of both contracts (ours and Uppy's), with bodies and
/// queries that would otherwise sign, create, list, complete or abort:
/// `(method, path, body)`, aimed at the session `(key, upload ID,
/// session token)`.
fn every_route(
    key: &str,
    upload_id: &str,
    session: &str,
) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    let ids = json!({"key": key, "upload_id": upload_id, "session": session});
    let with = |extra: Value| {
        let mut body = ids.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Some(body)
    };
    let base = format!("/s3/multipart/{}", q(&format!("{upload_id}~{session}")));
    let kq = format!("key={}", q(key));
    vec![
        (Method::GET, "/config".into(), None),
        (
            Method::POST,
            "/uploads".into(),
            Some(json!({"content_type": "image/jpeg", "size": 1000})),
        ),
        (
            Method::POST,
            "/uploads".into(),
            Some(json!({"content_type": "image/jpeg", "size": 1000, "form": "post"})),
        ),
        (
            Method::POST,
            "/uploads".into(),
            Some(json!({"content_type": "image/jpeg", "size": 3 * MIB})),
        ),
        (Method::GET, format!("/uploads/status?{kq}"), None),
        (
            Method::POST,
            "/multipart/sign".into(),
            with(json!({"first": 1, "last": 1})),
        ),
        (
            Method::GET,
            format!(
                "/multipart/parts?{kq}&upload_id={}&session={}",
                q(upload_id),
                q(session)
            ),
            None,
        ),
        (
            Method::POST,
            "/multipart/complete".into(),
            with(json!({"parts": []})),
        ),
        (Method::POST, "/multipart/abort".into(), with(json!({}))),
        (
            Method::GET,
            "/s3/params?filename=a.jpg&type=image%2Fjpeg".into(),
            None,
        ),
        (
            Method::GET,
            "/s3/params?filename=a.jpg&type=image%2Fjpeg&size=1000".into(),
            None,
        ),
        (
            Method::POST,
            "/s3/multipart".into(),
            Some(json!({"filename": "a.png", "type": "image/png"})),
        ),
        (Method::GET, format!("{base}/1?{kq}"), None),
        (
            Method::GET,
            format!("{base}/batch?{kq}&partNumbers=1,2"),
            None,
        ),
        (Method::GET, format!("{base}?{kq}"), None),
        (
            Method::POST,
            format!("{base}/complete?{kq}"),
            Some(json!({"parts": []})),
        ),
        (Method::DELETE, format!("{base}?{kq}"), None),
    ]
}

/// A multipart session of `owner`'s through our routes, with its first
/// part stored: `(key, upload ID, session token)`.
async fn open_session_with_a_part(h: &Harness, owner: &str) -> (String, String, String) {
    let (st, t) = h
        .post(
            "/uploads",
            owner,
            json!({"content_type": "image/jpeg", "size": 6 * MIB}),
        )
        .await;
    assert_eq!((st, &t["kind"]), (200, &json!("multipart")), "{t}");
    let part = &t["parts"][0]["request"];
    let mut put = h.http.put(part["url"].as_str().unwrap());
    for pair in part["headers"].as_array().unwrap() {
        put = put.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
    }
    let resp = put.body(bytes(5 * MIB, 3)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let s = |f: &str| t[f].as_str().unwrap().to_owned();
    (s("key"), s("upload_id"), s("session"))
}

/// The session is still open with its one part, as its owner sees it.
async fn still_open_with_one_part(
    h: &Harness,
    owner: &str,
    (key, id, session): &(String, String, String),
) {
    let (st, page) = h
        .get(
            &format!(
                "/multipart/parts?key={}&upload_id={}&session={}",
                q(key),
                q(id),
                q(session)
            ),
            owner,
        )
        .await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["parts"].as_array().unwrap().len(), 1, "{page}");
    let uploads = h
        .multipart
        .list_multipart_uploads("uploads/")
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1, "no upload was created or ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_sign_nothing_on_any_route() {
    let h = in_memory().await;
    let alice = open_session_with_a_part(&h, "alice").await;
    let (key, id, session) = &alice;
    for (method, path, body) in every_route(key, id, session) {
        // No credentials: the authorizer refuses before any body is read.
        let mut req = h.http.request(method.clone(), format!("{}{path}", h.api));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, ct.as_str(), &v),
            (
                401,
                "application/json",
                &json!({"error": "unauthorized", "message": "sign in first"})
            ),
            "{method} {path}"
        );
        // Nor with a body that is not JSON at all.
        if body.is_some() {
            let resp = h
                .http
                .request(method.clone(), format!("{}{path}", h.api))
                .body("{not json")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{method} {path}");
        }
    }
    still_open_with_one_part(&h, "alice", &alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizers_403_is_passed_through() {
    let h = in_memory().await;
    let alice = open_session_with_a_part(&h, "alice").await;
    let (key, id, session) = &alice;
    for (method, path, body) in every_route(key, id, session) {
        let (st, v) = h.call(method.clone(), &path, "banned", body).await;
        assert_eq!(
            (st, v),
            (
                403,
                json!({"error": "forbidden", "message": "this account may not upload"})
            ),
            "{method} {path}"
        );
    }
    still_open_with_one_part(&h, "alice", &alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owner_cannot_touch_a_session_on_either_contract() {
    let h = in_memory().await;
    let alice = open_session_with_a_part(&h, "alice").await;
    let (key, id, session) = &alice;
    for (method, path, body) in every_route(key, id, session) {
        let (st, v) = h.call(method.clone(), &path, "mallory", body).await;
        let creates = path == "/config"
            || path == "/uploads"
            || path.starts_with("/s3/params")
            || path == "/s3/multipart";
        if creates {
            // Mallory's own uploads: keys under her name, nothing of Alice's.
            assert_eq!(st, 200, "{method} {path}: {v}");
            assert!(!v.to_string().contains("/alice/"), "{path}: {v}");
        } else {
            assert_eq!(
                (st, v["error"].as_str()),
                (403, Some("not_your_upload")),
                "{method} {path}: {v}"
            );
        }
    }
    // Her own key prefix with Alice's upload ID and token: the token binds
    // the key, on both contracts.
    let forged_key = key.replace("/alice/", "/mallory/");
    for (method, path, body) in every_route(&forged_key, id, session) {
        if path.contains("/multipart") && !path.ends_with("/s3/multipart") {
            let (st, v) = h.call(method.clone(), &path, "mallory", body).await;
            assert_eq!(
                (st, v["error"].as_str()),
                (403, Some("bad_session")),
                "{method} {path}: {v}"
            );
        }
    }
    let (st, page) = h
        .get(
            &format!(
                "/multipart/parts?key={}&upload_id={}&session={}",
                q(key),
                q(id),
                q(session)
            ),
            "alice",
        )
        .await;
    assert_eq!(
        (st, page["parts"].as_array().unwrap().len()),
        (200, 1),
        "{page}"
    );
}
