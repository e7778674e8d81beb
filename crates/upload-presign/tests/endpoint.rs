//! The local upload endpoint over real HTTP: presigned requests in, S3-style
//! answers out, nothing stored on refusal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use upload_core::{MemoryStorage, ObjectKey, Storage};
use upload_presign::{Credentials, LocalEndpoint, Presigner, RunningEndpoint, Verifier};

struct Fixture {
    storage: Arc<MemoryStorage>,
    presigner: Presigner,
    endpoint: RunningEndpoint,
    http: reqwest::Client,
}

async fn fixture(max_bytes: u64) -> Fixture {
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(storage.clone(), None)
        .with_max_object_bytes(max_bytes)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Presigner::new(endpoint.url(), "us-east-1", creds).unwrap();
    Fixture {
        storage,
        presigner,
        endpoint,
        http: reqwest::Client::new(),
    }
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

async fn put(f: &Fixture, url: &reqwest::Url, ct: &str, body: &'static [u8]) -> (u16, String) {
    let r = f
        .http
        .put(url.clone())
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A presigned PUT of 5 bytes of `image/jpeg` to `k` in `uploads`, valid 60 s.
fn jpeg_put(presigner: &Presigner, k: &ObjectKey) -> upload_presign::PresignedRequest {
    presigner
        .presign_put(
            "uploads",
            k,
            "image/jpeg",
            Some(5),
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap()
}

fn code(xml: &str) -> &str {
    let start = xml.find("<Code>").expect("XML error has a Code") + 6;
    let end = xml[start..].find("</Code>").unwrap() + start;
    &xml[start..end]
}

#[tokio::test]
async fn presigned_put_then_get() {
    let f = fixture(1 << 20).await;
    let k = key("uploads/alice/my photo+1.jpg");
    let put_req = jpeg_put(&f.presigner, &k);
    let r = f
        .http
        .put(put_req.url.clone())
        .header("content-type", "image/jpeg")
        .body(&b"hello"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["etag"].to_str().unwrap(),
        "\"5d41402abc4b2a76b9719d911017c592\""
    );
    let stored = f.storage.get(&k).await.unwrap();
    assert_eq!(stored.body.as_ref(), b"hello");
    assert_eq!(stored.meta.content_type.as_deref(), Some("image/jpeg"));

    let get_req = f
        .presigner
        .presign_get("uploads", &k, Duration::from_secs(60), SystemTime::now())
        .unwrap();
    let r = f.http.get(get_req.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
    f.endpoint.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_tampered_and_wrong_type_get_403_and_store_nothing() {
    let f = fixture(1 << 20).await;
    let k = key("uploads/x.jpg");
    // Signed 400 s ago with a 300 s expiry: expired 100 s ago.
    let expired = f
        .presigner
        .presign_put(
            "uploads",
            &k,
            "image/jpeg",
            None,
            Duration::from_secs(300),
            SystemTime::now() - Duration::from_secs(400),
        )
        .unwrap();
    let (status, body) = put(&f, &expired.url, "image/jpeg", b"data").await;
    assert_eq!((status, code(&body)), (403, "AccessDenied"), "{body}");
    assert!(body.contains("Request has expired"), "{body}");
    assert!(body.starts_with("<?xml"), "{body}");

    let good = f
        .presigner
        .presign_put(
            "uploads",
            &k,
            "image/jpeg",
            None,
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    let mut tampered = good.url.clone();
    tampered.set_path("/uploads/uploads/other.jpg");
    let (status, body) = put(&f, &tampered, "image/jpeg", b"data").await;
    assert_eq!(
        (status, code(&body)),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );

    let (status, body) = put(&f, &good.url, "text/html", b"<script>").await;
    assert_eq!(
        (status, code(&body)),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );

    let mut no_sig = good.url.clone();
    no_sig.set_query(None);
    let (status, body) = put(&f, &no_sig, "image/jpeg", b"data").await;
    assert_eq!(
        (status, code(&body)),
        (400, "AuthorizationQueryParametersError"),
        "{body}"
    );

    assert!(f.storage.is_empty(), "nothing stored after refusals");
    // The good URL still works.
    assert_eq!(put(&f, &good.url, "image/jpeg", b"data").await.0, 200);
    assert_eq!(f.storage.len(), 1);
}

#[tokio::test]
async fn limits_and_s3_errors() {
    let f = fixture(10).await;
    let k = key("big.bin");
    let u = f
        .presigner
        .presign_put(
            "uploads",
            &k,
            "application/octet-stream",
            None,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let (status, body) = put(&f, &u.url, "application/octet-stream", b"eleven bytes").await;
    assert_eq!((status, code(&body)), (400, "EntityTooLarge"), "{body}");
    assert!(f.storage.is_empty());

    // Create-only: the second write with If-None-Match: * is refused.
    for expected in [200, 412] {
        let r = f
            .http
            .put(u.url.clone())
            .header("content-type", "application/octet-stream")
            .header("if-none-match", "*")
            .body(&b"0123"[..])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected);
    }

    let missing = f
        .presigner
        .presign_get(
            "uploads",
            &key("nope"),
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let r = f.http.get(missing.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(code(&r.text().await.unwrap()), "NoSuchKey");

    let other_bucket = f
        .presigner
        .presign_get(
            "elsewhere",
            &key("x"),
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let r = f.http.get(other_bucket.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(code(&r.text().await.unwrap()), "NoSuchBucket");

    let r = f
        .http
        .get(format!("{}uploads/..%2Fetc", f.endpoint.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(code(&r.text().await.unwrap()), "InvalidArgument");
}

async fn post_form(
    f: &Fixture,
    p: &upload_presign::PresignedPost,
    fields: &[(String, String)],
    file: Vec<u8>,
) -> (u16, String) {
    let mut form = reqwest::multipart::Form::new();
    for (n, v) in fields {
        form = form.text(n.clone(), v.clone());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("client.jpg"),
    );
    let r = f
        .http
        .post(p.url.clone())
        .multipart(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn presigned_post_is_verified_like_s3() {
    use upload_presign::PostRequest;
    let f = fixture(1 << 20).await;
    let k = key("uploads/bob/form.jpg");
    let now = SystemTime::now();
    let req = PostRequest::new(
        "uploads",
        &k,
        "image/jpeg",
        1..=100,
        Duration::from_secs(60),
    )
    .with_success_action_status(201);
    let p = f.presigner.presign_post(&req, now).unwrap();

    let (status, body) = post_form(&f, &p, &p.fields, vec![1; 101]).await;
    assert_eq!((status, code(&body)), (400, "EntityTooLarge"), "{body}");
    let (status, body) = post_form(&f, &p, &p.fields, Vec::new()).await;
    assert_eq!((status, code(&body)), (400, "EntityTooSmall"), "{body}");
    let moved: Vec<(String, String)> = p
        .fields
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                if n == "key" {
                    "uploads/bob/other.jpg".into()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let (status, body) = post_form(&f, &p, &moved, vec![1; 10]).await;
    assert_eq!((status, code(&body)), (403, "AccessDenied"), "{body}");
    assert!(body.contains("Invalid according to Policy"), "{body}");
    let mut tampered = p.fields.clone();
    tampered.last_mut().unwrap().1 = "0".repeat(64);
    let (status, body) = post_form(&f, &p, &tampered, vec![1; 10]).await;
    assert_eq!(
        (status, code(&body)),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );
    let old = f
        .presigner
        .presign_post(
            &PostRequest::new(
                "uploads",
                &k,
                "image/jpeg",
                1..=100,
                Duration::from_secs(60),
            ),
            now - Duration::from_secs(120),
        )
        .unwrap();
    let (status, body) = post_form(&f, &old, &old.fields, vec![1; 10]).await;
    assert_eq!((status, code(&body)), (403, "AccessDenied"), "{body}");
    assert!(body.contains("Policy expired"), "{body}");
    assert!(
        f.storage.list("").await.unwrap().is_empty(),
        "nothing stored by refused POSTs"
    );

    let mut form = reqwest::multipart::Form::new();
    for (n, v) in &p.fields {
        form = form.text(n.clone(), v.clone());
    }
    let r = f
        .http
        .post(p.url.clone())
        .multipart(form.part("file", reqwest::multipart::Part::bytes(vec![1; 100])))
        .send()
        .await
        .unwrap();
    let (status, location) = (
        r.status().as_u16(),
        r.headers()["location"].to_str().unwrap().to_owned(),
    );
    let body = r.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        location,
        format!("{}uploads/uploads/bob/form.jpg", f.endpoint.url())
    );
    assert!(body.contains("<Key>uploads/bob/form.jpg</Key>"), "{body}");
    let got = f.storage.get(&k).await.unwrap();
    assert_eq!(got.body.len(), 100);
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
    let r = f
        .http
        .post(f.endpoint.url().join("uploads/").unwrap())
        .body("not a form")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

const PAGE: &str = "http://127.0.0.1:8080";

/// A preflight of `url` from `origin` for `method`, as a browser sends it.
async fn preflight(
    http: &reqwest::Client,
    url: &str,
    origin: Option<&str>,
    method: &str,
) -> reqwest::Response {
    let mut req = http
        .request(reqwest::Method::OPTIONS, url)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type");
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_preflights_and_answers_like_s3_exposing_etag() {
    use upload_core::cors::CorsConfig;
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let other = Arc::new(MemoryStorage::new("private").unwrap());
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(storage.clone(), None)
        .with_bucket(other, None)
        .with_cors("uploads", CorsConfig::new([PAGE]).unwrap())
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Presigner::new(endpoint.url(), "us-east-1", creds).unwrap();
    let http = reqwest::Client::new();
    let put_req = jpeg_put(&presigner, &key("uploads/web/page.jpg"));
    let url = put_req.url.as_str();

    // The preflight of a presigned PUT: no signature needed, 200.
    let r = preflight(&http, url, Some(PAGE), "PUT").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("PUT, POST, GET, HEAD")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("3000"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("ETag, Location, x-amz-version-id")
    );
    assert!(storage.list("").await.unwrap().is_empty());

    // The PUT itself: its answer lets the page read the ETag.
    let put_from_page = |content_type: &'static str| {
        http.put(url)
            .header("origin", PAGE)
            .header("content-type", content_type)
            .body(&b"hello"[..])
            .send()
    };
    let r = put_from_page("image/jpeg").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("ETag, Location, x-amz-version-id")
    );
    assert_eq!(
        header(&r, "etag"),
        Some("\"5d41402abc4b2a76b9719d911017c592\"")
    );
    // A refusal carries the CORS headers too, so the page can read why.
    let r = put_from_page("image/png").await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE));

    // Another origin: the preflight is refused and answers carry no grant.
    let r = preflight(&http, url, Some("http://evil.example"), "PUT").await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let body = r.text().await.unwrap();
    assert_eq!(code(&body), "AccessForbidden");
    assert!(body.contains("This CORS request is not allowed"), "{body}");
    let r = http
        .get(url)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    // No Origin, a method the rule does not allow, a bucket without CORS.
    let r = preflight(&http, url, None, "PUT").await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Origin request header needed")
    );
    let r = preflight(&http, url, Some(PAGE), "DELETE").await;
    assert_eq!(r.status().as_u16(), 403);
    let r = preflight(
        &http,
        &format!("{}private/a.jpg", endpoint.url()),
        Some(PAGE),
        "PUT",
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("CORS is not enabled for this bucket")
    );
    // The Origin is checked first, then whether the bucket exists.
    let r = preflight(
        &http,
        &format!("{}private/a.jpg", endpoint.url()),
        None,
        "PUT",
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);
    let r = preflight(
        &http,
        &format!("{}nosuch/a.jpg", endpoint.url()),
        Some(PAGE),
        "PUT",
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("Bucket not found"));
}
