//! Uppy 6's `@uppy/aws-s3` in its `signRequest` mode (`POST /s3/sign` and
//! the session's control URLs), from the client's and the attacker's
//! side: a single PUT and a multipart upload as Uppy 6 sends them, every
//! request to storage against the local endpoint, which verifies
//! signatures as S3 does; nothing signed for a caller without
//! authentication, for another owner's session, across routes, or for an
//! operation, key or bucket that is not the caller's upload.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use upload_core::{MemoryStorage, ObjectKey, Storage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_presign::{Credentials, LocalEndpoint, Presigner, ServerTimeouts, Verifier};
use upload_server::{
    AppState, FnHook, HookRequest, ServerConfig, UploadMetadata, UploadRoute, router,
};

const MIB: u64 = 1024 * 1024;

struct Harness {
    api: String,
    http: reqwest::Client,
    storage: Arc<MemoryStorage>,
    mp: Arc<MemoryMultipartStore>,
    hook_calls: Arc<AtomicUsize>,
    _endpoint: upload_presign::RunningEndpoint,
}

/// `avatar`: PNG/JPEG up to 5 MiB under `avatars/`, single PUTs up to
/// 1 MiB, a hook that signs in `tier: gold`; `document`: PDF up to
/// 25 MiB under `documents/`, multipart above 5 MiB in 5 MiB parts; and
/// the default route.
async fn harness() -> Harness {
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(storage.clone()));
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(storage.clone(), Some(mp.clone()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Arc::new(Presigner::new(endpoint.url(), "us-east-1", creds).unwrap());
    let hook_calls = Arc::new(AtomicUsize::new(0));
    let calls = hook_calls.clone();
    let avatar = UploadRoute::new(
        "avatar",
        UploadPolicy::new(["image/png", "image/jpeg"], 5 * MIB).unwrap(),
    )
    .unwrap()
    .with_key_prefix("avatars")
    .unwrap()
    .with_multipart_threshold(MIB)
    .with_hook(FnHook(move |_req: HookRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok(UploadMetadata::from([(
                "tier".to_owned(),
                "gold".to_owned(),
            )]))
        }
    }));
    let document = UploadRoute::new(
        "document",
        UploadPolicy::new(["application/pdf"], 25 * MIB).unwrap(),
    )
    .unwrap()
    .with_key_prefix("documents")
    .unwrap()
    .with_multipart_threshold(5 * MIB)
    .with_part_size(5 * MIB);
    let config = ServerConfig::new(UploadPolicy::images_and_pdf(64 * MIB).unwrap())
        .with_route(avatar)
        .unwrap()
        .with_route(document)
        .unwrap();
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: mp.clone(),
        processed: storage.clone(),
        processed_presigner: Arc::new(presigner),
        config: Arc::new(config),
        session_secret: Arc::new([9; 32]),
        authorizer: common::test_authorizer(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upload_presign::serve(
        listener,
        router(state),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    Harness {
        api: format!("http://{addr}"),
        http: reqwest::Client::new(),
        storage,
        mp,
        hook_calls,
        _endpoint: endpoint,
    }
}

/// An answer: status, body text, headers.
struct Answer {
    status: u16,
    text: String,
    content_type: String,
    etag: Option<String>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl Harness {
    /// Any request; `url` is absolute, a path of the API, or relative to
    /// a `/s3/sign` URL (`sign/multipart/…`, of the route `prefix`).
    async fn control(
        &self,
        method: &str,
        prefix: &str,
        url: &str,
        owner: Option<&str>,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Answer {
        assert!(url.starts_with("sign/multipart/"), "{url}");
        self.send(method, &format!("{prefix}/s3/{url}"), owner, headers, body)
            .await
    }

    /// Any request; `url` is absolute or a path of the API.
    async fn send(
        &self,
        method: &str,
        url: &str,
        owner: Option<&str>,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Answer {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.api)
        } else {
            url.to_owned()
        };
        let mut r = self.http.request(method.parse().unwrap(), url).body(body);
        if let Some(o) = owner {
            r = r.header("x-owner", o);
        }
        for (n, v) in headers {
            r = r.header(n.as_str(), v.as_str());
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let etag = header("etag");
        Answer {
            status,
            text: r.text().await.unwrap(),
            content_type,
            etag,
        }
    }

    /// `POST {prefix}/s3/sign` as `owner`.
    async fn sign(&self, owner: Option<&str>, prefix: &str, body: Value) -> Answer {
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        self.send(
            "POST",
            &format!("{prefix}/s3/sign"),
            owner,
            &headers,
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Signs and expects 200: the answer's url, key and headers.
    async fn signed(
        &self,
        owner: &str,
        prefix: &str,
        body: Value,
    ) -> (String, Option<String>, Vec<(String, String)>) {
        let a = self.sign(Some(owner), prefix, body).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let v = a.json();
        let headers = v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        (
            v["url"].as_str().unwrap().to_owned(),
            v["key"].as_str().map(str::to_owned),
            headers,
        )
    }

    /// The stored object's metadata, without its trace context (checked
    /// to be a valid W3C `traceparent` signed in by the API).
    async fn metadata(&self, key: &str) -> BTreeMap<String, String> {
        let mut m = self
            .storage
            .head(&ObjectKey::new(key).unwrap())
            .await
            .unwrap()
            .metadata;
        let tp = m
            .remove(upload_core::trace::METADATA)
            .expect("every upload carries its trace context");
        upload_core::trace::TraceParent::parse(&tp).unwrap();
        m
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.storage
            .get(&ObjectKey::new(key).unwrap())
            .await
            .ok()
            .map(|o| o.body.to_vec())
    }
}

/// The text of the first `<tag>` in `xml`.
fn tag<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + i / 4093) as u8).wrapping_add(seed))
        .collect()
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A multipart upload of `size` bytes of PDF on the document route,
/// created as Uppy 6 does (sign the create, POST to the URL): its key and
/// Uppy's upload ID.
async fn create_pdf(h: &Harness, owner: &str, size: u64) -> (String, String) {
    let (url, key, headers) = h
        .signed(
            owner,
            "/routes/document",
            json!({"method": "POST", "key": "a1b2-report.pdf", "contentType": "application/pdf",
                   "size": size, "filename": "report.pdf"}),
        )
        .await;
    assert!(headers.is_empty(), "{headers:?}");
    let key = key.expect("the server's key");
    assert!(
        url.starts_with("sign/multipart/") && url.contains("/created?key="),
        "{url}"
    );
    let created = h
        .control(
            "POST",
            "/routes/document",
            &url,
            Some(owner),
            &[("content-type".into(), "application/pdf".into())],
            Vec::new(),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.content_type, "application/xml");
    assert_eq!(tag(&created.text, "Key"), key);
    assert_eq!(tag(&created.text, "Bucket"), "uploads");
    let upload_id = tag(&created.text, "UploadId").to_owned();
    assert!(upload_id.contains('~'), "{upload_id}");
    (key, upload_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_put_is_signed_for_a_new_key_exact_size_create_only_with_metadata() {
    let h = harness().await;
    let png = b"\x89PNG\r\n\x1a\n-cat".to_vec();
    let (url, key, headers) = h
        .signed(
            "alice",
            "/routes/avatar",
            json!({"method": "PUT", "key": "0f3e-cat.png", "contentType": "image/png",
                   "size": png.len(), "filename": "cat.png", "metadata": {"name": "cat.png"}}),
        )
        .await;
    let key = key.expect("the server picks the key");
    assert!(
        key.starts_with("avatars/alice/") && key.ends_with(".png") && !key.contains("cat"),
        "{key}"
    );
    let got: BTreeMap<&str, &str> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got.get("content-type"), Some(&"image/png"));
    assert_eq!(got.get("if-none-match"), Some(&"*"));
    assert_eq!(got.get("x-amz-meta-upload-route"), Some(&"avatar"));
    assert_eq!(got.get("x-amz-meta-upload-owner"), Some(&"alice"));
    assert_eq!(got.get("x-amz-meta-tier"), Some(&"gold"));
    assert!(
        got.get("content-disposition")
            .is_some_and(|v| v.contains("cat.png")),
        "{got:?}"
    );
    assert!(!got.contains_key("content-length"), "the browser's own");
    assert!(url.contains("X-Amz-Signature=") && url.contains(&key));
    assert_eq!(h.hook_calls.load(Ordering::SeqCst), 1);

    // Another size than the signed one, or another type: refused by storage.
    let mut longer = png.clone();
    longer.push(0);
    assert_eq!(
        h.send("PUT", &url, None, &headers, longer).await.status,
        403
    );
    let mut other_type = headers.clone();
    for (n, v) in &mut other_type {
        if n == "content-type" {
            *v = "image/jpeg".into();
        }
    }
    assert_eq!(
        h.send("PUT", &url, None, &other_type, png.clone())
            .await
            .status,
        403
    );
    assert_eq!(h.object(&key).await, None);

    let put = h.send("PUT", &url, None, &headers, png.clone()).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(h.object(&key).await, Some(png.clone()));
    assert_eq!(
        h.metadata(&key).await,
        meta(&[
            ("tier", "gold"),
            ("upload-owner", "alice"),
            ("upload-route", "avatar"),
        ])
    );
    // Create-only: the URL replayed never replaces the object.
    let replay = h.send("PUT", &url, None, &headers, png.clone()).await;
    assert_eq!(replay.status, 412, "{}", replay.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_as_uppy6_sends_it_completes_through_the_server() {
    let h = harness().await;
    let size = 11 * MIB;
    let data = bytes(size as usize, 3);
    let (key, upload_id) = create_pdf(&h, "bob", size).await;
    assert!(
        key.starts_with("documents/bob/") && key.ends_with(".pdf"),
        "{key}"
    );
    assert_eq!(h.mp.uploads_in_progress(), 1);

    // Parts 1..=3 of the plan (5 + 5 + 1 MiB), each signed for its size.
    let mut etags = Vec::new();
    for (n, chunk) in data.chunks(5 * MIB as usize).enumerate() {
        let n = n + 1;
        let (url, key_back, headers) = h
            .signed(
                "bob",
                "/routes/document",
                json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": n}),
            )
            .await;
        assert_eq!(key_back, None);
        assert!(
            url.contains(&format!("partNumber={n}")) && url.contains("uploadId="),
            "{url}"
        );
        // Pinned to the part's exact length.
        if n == 1 {
            let short = h
                .send("PUT", &url, None, &headers, chunk[..1000].to_vec())
                .await;
            assert_eq!(short.status, 403, "{}", short.text);
        }
        let put = h.send("PUT", &url, None, &headers, chunk.to_vec()).await;
        assert_eq!(put.status, 200, "{}", put.text);
        etags.push(put.etag.unwrap().trim_matches('"').to_owned());
    }
    // Part 4 is not in the plan.
    let beyond = h
        .sign(
            Some("bob"),
            "/routes/document",
            json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 4}),
        )
        .await;
    assert_eq!(beyond.status, 400, "{}", beyond.text);

    // ListParts, as S3 answers it.
    let (url, _, _) = h
        .signed(
            "bob",
            "/routes/document",
            json!({"method": "GET", "key": key, "uploadId": upload_id}),
        )
        .await;
    let listed = h
        .control(
            "GET",
            "/routes/document",
            &url,
            Some("bob"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.text.matches("<Part>").count(), 3, "{}", listed.text);
    assert_eq!(tag(&listed.text, "PartNumber"), "1");
    assert_eq!(
        tag(&listed.text, "ETag"),
        format!("&quot;{}&quot;", etags[0])
    );
    assert_eq!(tag(&listed.text, "Size"), (5 * MIB).to_string());

    // Completion goes to the server, which checks the parts first.
    let (url, _, _) = h
        .signed(
            "bob",
            "/routes/document",
            json!({"method": "POST", "key": key, "uploadId": upload_id}),
        )
        .await;
    assert!(url.contains("/complete?key="), "{url}");
    let xml = |parts: &[(usize, &String)]| {
        let mut s = String::from("<CompleteMultipartUpload>");
        for (n, e) in parts {
            s.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
            ));
        }
        s.push_str("</CompleteMultipartUpload>");
        s.into_bytes()
    };
    let xml_headers = [("content-type".to_owned(), "application/xml".to_owned())];
    // Two of three parts: not the declared size.
    let short = h
        .control(
            "POST",
            "/routes/document",
            &url,
            Some("bob"),
            &xml_headers,
            xml(&[(1, &etags[0]), (2, &etags[1])]),
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.text);
    assert_eq!(h.object(&key).await, None);
    let all: Vec<(usize, &String)> = etags.iter().enumerate().map(|(i, e)| (i + 1, e)).collect();
    // Another owner cannot complete it.
    let theirs = h
        .control(
            "POST",
            "/routes/document",
            &url,
            Some("carol"),
            &xml_headers,
            xml(&all),
        )
        .await;
    assert_eq!(theirs.status, 403, "{}", theirs.text);
    let done = h
        .control(
            "POST",
            "/routes/document",
            &url,
            Some("bob"),
            &xml_headers,
            xml(&all),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.content_type, "application/xml");
    assert_eq!(tag(&done.text, "Key"), key);
    assert!(
        tag(&done.text, "ETag").ends_with("-3&quot;"),
        "{}",
        done.text
    );
    assert!(
        tag(&done.text, "Location").ends_with(&format!("/uploads/{key}")),
        "{}",
        done.text
    );
    assert_eq!(h.object(&key).await, Some(data));
    assert_eq!(
        h.metadata(&key).await,
        meta(&[("upload-owner", "bob"), ("upload-route", "document")])
    );
    assert_eq!(h.mp.uploads_in_progress(), 0);
    // Safe to repeat: the same answer.
    let again = h
        .control(
            "POST",
            "/routes/document",
            &url,
            Some("bob"),
            &xml_headers,
            xml(&all),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(tag(&again.text, "Key"), key);
    // No more parts of a completed upload.
    let late = h
        .sign(
            Some("bob"),
            "/routes/document",
            json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 1}),
        )
        .await;
    assert_eq!((late.status, late.code().as_str()), (404, "no_such_upload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_is_the_owners_and_ends_the_session() {
    let h = harness().await;
    let (key, upload_id) = create_pdf(&h, "bob", 6 * MIB).await;
    let (url, _, _) = h
        .signed(
            "bob",
            "/routes/document",
            json!({"method": "DELETE", "key": key, "uploadId": upload_id}),
        )
        .await;
    let theirs = h
        .control(
            "DELETE",
            "/routes/document",
            &url,
            Some("carol"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(
        (theirs.status, theirs.code().as_str()),
        (403, "not_your_upload")
    );
    assert_eq!(h.mp.uploads_in_progress(), 1);
    let gone = h
        .control(
            "DELETE",
            "/routes/document",
            &url,
            Some("bob"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    assert_eq!(h.mp.uploads_in_progress(), 0);
    let part = h
        .sign(
            Some("bob"),
            "/routes/document",
            json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 1}),
        )
        .await;
    assert_eq!((part.status, part.code().as_str()), (404, "no_such_upload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_or_refused_callers_get_nothing_signed() {
    let h = harness().await;
    let (key, upload_id) = create_pdf(&h, "bob", 6 * MIB).await;
    let calls = h.hook_calls.load(Ordering::SeqCst);
    for (owner, status, code) in [
        (None, 401, "unauthorized"),
        (Some("banned"), 403, "forbidden"),
    ] {
        for body in [
            json!({"method": "PUT", "key": "x.png", "contentType": "image/png", "size": 4}),
            json!({"method": "POST", "key": "x.png", "contentType": "image/png", "size": 4}),
            json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 1}),
            json!({"method": "POST", "key": key, "uploadId": upload_id}),
        ] {
            for prefix in ["", "/routes/avatar", "/routes/document"] {
                let a = h.sign(owner, prefix, body.clone()).await;
                assert_eq!((a.status, a.code().as_str()), (status, code), "{}", a.text);
                assert!(!a.text.contains("X-Amz-Signature"), "{}", a.text);
            }
        }
        let id = upload_id.replace('~', "%7E");
        for (method, tail) in [
            ("POST", "/created"),
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/complete"),
        ] {
            let url = format!("/routes/document/s3/sign/multipart/{id}{tail}?key={key}");
            let a = h.send(method, &url, owner, &[], Vec::new()).await;
            assert_eq!(
                (a.status, a.code().as_str()),
                (status, code),
                "{method} {tail}: {}",
                a.text
            );
        }
    }
    assert_eq!(
        h.hook_calls.load(Ordering::SeqCst),
        calls,
        "the hook never ran"
    );
    assert_eq!(
        h.mp.uploads_in_progress(),
        1,
        "nothing created, nothing aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owner_cannot_sign_parts_of_a_session() {
    let h = harness().await;
    let (key, upload_id) = create_pdf(&h, "bob", 6 * MIB).await;
    let (id, token) = upload_id.split_once('~').unwrap();
    // Bob's key and upload ID as they are, as carol.
    for method in ["PUT", "GET", "POST", "DELETE"] {
        let mut body = json!({"method": method, "key": key, "uploadId": upload_id});
        if method == "PUT" {
            body["partNumber"] = json!(1);
        }
        let a = h.sign(Some("carol"), "/routes/document", body).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (403, "not_your_upload"),
            "{method}: {}",
            a.text
        );
    }
    // Bob's upload ID under a key of carol's: the token binds owner and key.
    let carols = key.replace("/bob/", "/carol/");
    let a = h
        .sign(
            Some("carol"),
            "/routes/document",
            json!({"method": "PUT", "key": carols, "uploadId": upload_id, "partNumber": 1}),
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (403, "bad_session"),
        "{}",
        a.text
    );
    // Without the token, or with another upload's, bob himself is refused.
    for forged in [id.to_owned(), format!("{id}~"), format!("other~{token}")] {
        let a = h
            .sign(
                Some("bob"),
                "/routes/document",
                json!({"method": "PUT", "key": key, "uploadId": forged, "partNumber": 1}),
            )
            .await;
        assert_eq!(a.status, 403, "{forged}: {}", a.text);
    }
    // Carol's own session does not open bob's.
    let (_, carol_upload) = create_pdf(&h, "carol", 6 * MIB).await;
    let a = h
        .sign(
            Some("carol"),
            "/routes/document",
            json!({"method": "PUT", "key": key, "uploadId": carol_upload, "partNumber": 1}),
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (403, "not_your_upload"),
        "{}",
        a.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_or_key_of_one_route_is_refused_on_another() {
    let h = harness().await;
    let (key, upload_id) = create_pdf(&h, "bob", 6 * MIB).await;
    for prefix in ["", "/routes/avatar"] {
        for method in ["PUT", "GET", "POST", "DELETE"] {
            let mut body = json!({"method": method, "key": key, "uploadId": upload_id});
            if method == "PUT" {
                body["partNumber"] = json!(1);
            }
            let a = h.sign(Some("bob"), prefix, body).await;
            assert_eq!(
                (a.status, a.code().as_str()),
                (403, "not_your_upload"),
                "{prefix} {method}: {}",
                a.text
            );
        }
        let id = upload_id.replace('~', "%7E");
        let url = format!("{prefix}/s3/sign/multipart/{id}/created?key={key}");
        let a = h.send("POST", &url, Some("bob"), &[], Vec::new()).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (403, "not_your_upload"),
            "{}",
            a.text
        );
    }
    // The same key moved under the default route's prefix: the token is
    // bound to the original key.
    let moved = key.replacen("documents/", "uploads/", 1);
    let a = h
        .sign(
            Some("bob"),
            "",
            json!({"method": "PUT", "key": moved, "uploadId": upload_id, "partNumber": 1}),
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (403, "bad_session"),
        "{}",
        a.text
    );
    // Each route's own policy: a PDF is not an avatar.
    let a = h
        .sign(
            Some("bob"),
            "/routes/avatar",
            json!({"method": "PUT", "key": "x.pdf", "contentType": "application/pdf", "size": 10}),
        )
        .await;
    assert_eq!(a.status, 415, "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_operations_keys_and_buckets_are_refused() {
    let h = harness().await;
    let (key, upload_id) = create_pdf(&h, "bob", 6 * MIB).await;
    let calls = h.hook_calls.load(Ordering::SeqCst);
    let cases = [
        // DeleteObject, of the caller's own object or anyone's.
        (
            json!({"method": "DELETE", "key": key}),
            403,
            "operation_not_allowed",
        ),
        (
            json!({"method": "DELETE", "key": "uploads/alice/x.png"}),
            403,
            "operation_not_allowed",
        ),
        // GetObject, HeadObject, unknown methods.
        (json!({"method": "GET", "key": key}), 400, "bad_request"),
        (
            json!({"method": "HEAD", "key": key, "uploadId": upload_id}),
            400,
            "bad_request",
        ),
        (
            json!({"method": "PATCH", "key": "x.png", "contentType": "image/png", "size": 4}),
            400,
            "bad_request",
        ),
        // A part number without an upload, or a part of a made-up upload
        // of another owner's key.
        (
            json!({"method": "PUT", "key": key, "partNumber": 1}),
            400,
            "bad_request",
        ),
        (
            json!({"method": "PUT", "key": "documents/alice/x.pdf", "uploadId": "abc~def", "partNumber": 1}),
            403,
            "not_your_upload",
        ),
        (
            json!({"method": "GET", "key": "../etc/passwd", "uploadId": upload_id}),
            403,
            "not_your_upload",
        ),
        // Another bucket, or anything else Uppy does not send.
        (
            json!({"method": "PUT", "key": "x.pdf", "contentType": "application/pdf", "size": 4, "bucket": "other"}),
            400,
            "bad_request",
        ),
        (
            json!({"method": "PUT", "key": "x.pdf", "contentType": "application/pdf", "size": 4, "headers": {"x-amz-acl": "public-read"}}),
            400,
            "bad_request",
        ),
        // A single PUT without its size, above the multipart threshold,
        // or above the policy.
        (
            json!({"method": "PUT", "key": "x.pdf", "contentType": "application/pdf"}),
            400,
            "bad_request",
        ),
        (
            json!({"method": "PUT", "key": "x.pdf", "contentType": "application/pdf", "size": 6 * MIB}),
            400,
            "use_multipart",
        ),
        (
            json!({"method": "POST", "key": "x.pdf", "contentType": "application/pdf", "size": 26 * MIB}),
            413,
            "",
        ),
        (
            json!({"method": "POST", "key": "x.pdf", "contentType": "text/html", "size": 10 * MIB}),
            415,
            "",
        ),
    ];
    for (body, status, code) in cases {
        let a = h.sign(Some("bob"), "/routes/document", body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.text);
        if !code.is_empty() {
            assert_eq!(a.code(), code, "{body}: {}", a.text);
        }
        assert!(!a.text.contains("X-Amz-Signature"), "{}", a.text);
    }
    assert_eq!(h.hook_calls.load(Ordering::SeqCst), calls);
    assert_eq!(h.mp.uploads_in_progress(), 1);
    // The requested key is never where a single PUT goes.
    let (url, signed_key, _) = h
        .signed(
            "bob",
            "",
            json!({"method": "PUT", "key": "uploads/alice/evil.png", "contentType": "image/png", "size": 4}),
        )
        .await;
    let signed_key = signed_key.unwrap();
    assert!(signed_key.starts_with("uploads/bob/"), "{signed_key}");
    assert!(!url.contains("alice") && !url.contains("evil"), "{url}");
}
