//! Presigned URLs against s3s-fs, an S3 server that verifies SigV4 query
//! signatures itself: what our sans-IO `Presigner` signs, and what
//! aws-sdk-s3's presigning (`SdkPresigner`) signs, is accepted; a tampered,
//! expired or mismatched request is refused with 403 and stores nothing.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts s3s-fs and
//! sets `UPLOAD_SDK_S3S_ENDPOINT`, `UPLOAD_SDK_S3S_ACCESS_KEY` and
//! `UPLOAD_SDK_S3S_SECRET_KEY`. Without them the tests fail, never skip.

use std::time::{Duration, SystemTime};

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials as SdkCredentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{
    CompletedPart, Error as CoreError, MultipartStore, ObjectKey, PutOptions, Storage,
};
use upload_presign::s3::{SdkPresigner, credentials_from_sdk};
use upload_presign::{Credentials, PresignedRequest, Presigner, Url};

struct Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
}

fn server() -> Server {
    let var = |n: &str| {
        std::env::var(n)
            .unwrap_or_else(|_| panic!("{n} is not set: run scripts/test.sh, which starts s3s-fs"))
    };
    Server {
        endpoint: var("UPLOAD_SDK_S3S_ENDPOINT"),
        access_key: var("UPLOAD_SDK_S3S_ACCESS_KEY"),
        secret_key: var("UPLOAD_SDK_S3S_SECRET_KEY"),
    }
}

struct Fixture {
    presigner: Presigner,
    sdk_presigner: SdkPresigner,
    storage: S3Storage,
    bucket: String,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    let srv = server();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SdkCredentials::new(
            &srv.access_key,
            &srv.secret_key,
            None,
            None,
            "tests",
        ))
        .load()
        .await;
    let client = AwsSettings::local(&srv.endpoint).s3_client(&sdk);
    let bucket = format!(
        "presign-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let storage = S3Storage::new(client.clone(), &bucket).unwrap();
    storage
        .create_bucket()
        .await
        .expect("create bucket on s3s-fs");
    let (creds, expiry) = credentials_from_sdk(&sdk)
        .await
        .expect("credentials from the SDK chain");
    assert_eq!(creds, Credentials::new(&srv.access_key, &srv.secret_key));
    assert_eq!(expiry, None, "static keys do not expire");
    Fixture {
        presigner: Presigner::new(Url::parse(&srv.endpoint).unwrap(), "us-east-1", creds).unwrap(),
        sdk_presigner: SdkPresigner::new(client),
        storage,
        bucket,
        http: reqwest::Client::new(),
    }
}

/// Sends `p` with `body`; returns the status and the response body.
async fn send(f: &Fixture, p: &PresignedRequest, body: &'static [u8]) -> (u16, Vec<u8>) {
    let mut req = match p.method.as_str() {
        "PUT" => f.http.put(p.url.clone()).body(body),
        _ => f.http.get(p.url.clone()),
    };
    for (n, v) in &p.headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let resp = req.send().await.expect("s3s-fs answers");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (status, body)
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(format!("uploads/user-1/{name}")).unwrap()
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn our_presigned_put_and_get_are_accepted() {
    let f = fixture().await;
    let k = key("photo one+two ✓.jpg");
    let body: &'static [u8] = b"\xFF\xD8\xFF\xE0 jpeg bytes";
    let now = SystemTime::now();
    let put = f
        .presigner
        .presign_put(
            &f.bucket,
            &k,
            "image/jpeg",
            Some(body.len() as u64),
            Duration::from_secs(300),
            now,
        )
        .unwrap();
    let (status, text) = send(&f, &put, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    let got = f.storage.get(&k).await.unwrap();
    assert_eq!(got.body.as_ref(), body);
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
    let get = f
        .presigner
        .presign_get(&f.bucket, &k, Duration::from_secs(60), now)
        .unwrap();
    let (status, text) = send(&f, &get, b"").await;
    assert_eq!(status, 200);
    assert_eq!(text, body);
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn tampered_expired_and_mismatched_requests_are_refused() {
    let f = fixture().await;
    let k = key("refused.png");
    let now = SystemTime::now();
    let put = f
        .presigner
        .presign_put(
            &f.bucket,
            &k,
            "image/png",
            None,
            Duration::from_secs(300),
            now,
        )
        .unwrap();

    // Another Content-Type than the one signed.
    let mut wrong_type = put.clone();
    wrong_type.headers = vec![("content-type".into(), "text/html".into())];
    let (status, text) = send(&f, &wrong_type, b"<html>").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&text));
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");

    // A changed signature.
    let mut tampered = put.clone();
    let sig: String = tampered
        .url
        .query_pairs()
        .find(|(n, _)| n == "X-Amz-Signature")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { '1' } else { '0' },
        &sig[1..]
    );
    let q = tampered.url.query().unwrap().replace(&sig, &flipped);
    tampered.url.set_query(Some(&q));
    let (status, _) = send(&f, &tampered, b"png").await;
    assert_eq!(status, 403);

    // Another key than the one signed.
    let mut moved = put.clone();
    moved
        .url
        .set_path(&format!("/{}/uploads/user-1/elsewhere.png", f.bucket));
    let (status, _) = send(&f, &moved, b"png").await;
    assert_eq!(status, 403);

    // Signed two hours ago for one minute.
    let old = f
        .presigner
        .presign_put(
            &f.bucket,
            &k,
            "image/png",
            None,
            Duration::from_secs(60),
            now - Duration::from_secs(7200),
        )
        .unwrap();
    let (status, text) = send(&f, &old, b"png").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&text));

    // Signed with another secret.
    let other = Presigner::new(
        Url::parse(&server().endpoint).unwrap(),
        "us-east-1",
        Credentials::new(server().access_key, "another-secret-key-000000000000"),
    )
    .unwrap()
    .presign_put(
        &f.bucket,
        &k,
        "image/png",
        None,
        Duration::from_secs(60),
        now,
    )
    .unwrap();
    let (status, _) = send(&f, &other, b"png").await;
    assert_eq!(status, 403);

    for name in ["refused.png", "elsewhere.png"] {
        assert!(
            matches!(
                f.storage.head(&key(name)).await,
                Err(CoreError::NotFound { .. })
            ),
            "nothing stored for {name}"
        );
    }
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn presigned_upload_parts_complete_into_the_object() {
    let f = fixture().await;
    let k = key("big.bin");
    let id = f
        .storage
        .create_multipart_upload(
            &k,
            PutOptions::default().with_content_type("application/octet-stream"),
        )
        .await
        .unwrap();
    static PART1: std::sync::LazyLock<Vec<u8>> =
        std::sync::LazyLock::new(|| (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect());
    let now = SystemTime::now();
    let mut done = Vec::new();
    for (n, body) in [(1u32, PART1.as_slice()), (2, b"tail".as_slice())] {
        let p = f
            .presigner
            .presign_upload_part(&f.bucket, &k, &id, n, Duration::from_secs(300), now)
            .unwrap();
        let resp = f.http.put(p.url.clone()).body(body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "part {n}");
        let etag = resp
            .headers()
            .get("etag")
            .expect("ETag header")
            .to_str()
            .unwrap()
            .to_owned();
        done.push(CompletedPart {
            part_number: n,
            etag,
            checksum: None,
        });
    }
    let meta = f
        .storage
        .complete_multipart_upload(&k, &id, &done)
        .await
        .expect("complete");
    assert_eq!(meta.size, PART1.len() as u64 + 4);
    let got = f.storage.get(&k).await.unwrap();
    assert_eq!(&got.body[..PART1.len()], PART1.as_slice());
    assert_eq!(&got.body[PART1.len()..], b"tail");
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn the_sdk_presigner_is_accepted_and_carries_no_checksum() {
    let f = fixture().await;
    let k = key("sdk.webp");
    let now = SystemTime::now();
    let put = f
        .sdk_presigner
        .presign_put(
            &f.bucket,
            &k,
            "image/webp",
            None,
            Duration::from_secs(300),
            now,
        )
        .await
        .unwrap();
    let names: Vec<String> = put
        .url
        .query_pairs()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("checksum")),
        "no checksum parameter (aws-sdk-rust issue 1240): {names:?}"
    );
    assert!(
        put.headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "image/webp")
    );
    let (status, text) = send(&f, &put, b"RIFF....WEBP").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    let get = f
        .sdk_presigner
        .presign_get(&f.bucket, &k, Duration::from_secs(60), now)
        .await
        .unwrap();
    let (status, text) = send(&f, &get, b"").await;
    assert_eq!((status, text.as_slice()), (200, b"RIFF....WEBP".as_slice()));
    let err = f
        .sdk_presigner
        .presign_put(
            &f.bucket,
            &k,
            "image/webp",
            None,
            Duration::from_secs(8 * 24 * 3600),
            now,
        )
        .await
        .expect_err("over 7 days");
    assert!(
        matches!(
            err,
            upload_presign::Error::Policy(CoreError::ExpiryOutOfRange { .. })
        ),
        "{err:?}"
    );
    let err = f
        .sdk_presigner
        .presign_upload_part(&f.bucket, &k, "id", 0, Duration::from_secs(60), now)
        .await
        .expect_err("part 0");
    assert!(
        matches!(
            err,
            upload_presign::Error::Policy(CoreError::InvalidPartNumber { part_number: 0 })
        ),
        "{err:?}"
    );
}

/// Sends the presigned POST form with `file` as the last field.
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
        reqwest::multipart::Part::bytes(file).file_name("client name.jpg"),
    );
    let resp = f
        .http
        .post(p.url.clone())
        .multipart(form)
        .send()
        .await
        .expect("s3s-fs answers");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn presigned_post_bounds_size_key_and_time() {
    use upload_presign::PostRequest;
    let f = fixture().await;
    let k = key("posted.jpg");
    let now = SystemTime::now();
    let req = PostRequest::new(
        &f.bucket,
        &k,
        "image/jpeg",
        10..=1000,
        Duration::from_secs(300),
    )
    .with_success_action_status(201);
    let p = f.presigner.presign_post(&req, now).unwrap();

    let (status, text) = post_form(&f, &p, &p.fields, vec![7u8; 1001]).await;
    assert_eq!(status, 400, "one byte over the range: {text}");
    assert!(text.contains("EntityTooLarge"), "{text}");
    let (status, text) = post_form(&f, &p, &p.fields, vec![7u8; 9]).await;
    assert_eq!(status, 400, "one byte under the range: {text}");
    assert!(text.contains("EntityTooSmall"), "{text}");
    let moved: Vec<(String, String)> = p
        .fields
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                if n == "key" {
                    "uploads/user-1/elsewhere.jpg".to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let (status, text) = post_form(&f, &p, &moved, vec![7u8; 100]).await;
    // AWS answers a failed condition with 403 AccessDenied ("Invalid
    // according to Policy"), s3s-fs 0.14 with 400 InvalidPolicyDocument:
    // either way the upload is refused and names the condition.
    assert!(
        matches!(status, 400 | 403),
        "another key than the policy's: {status} {text}"
    );
    assert!(text.contains("key"), "{text}");
    // Valid for one second, sent after two.
    let old = f
        .presigner
        .presign_post(
            &PostRequest::new(
                &f.bucket,
                &k,
                "image/jpeg",
                10..=1000,
                Duration::from_secs(1),
            ),
            now,
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, text) = post_form(&f, &old, &old.fields, vec![7u8; 100]).await;
    assert!(
        matches!(status, 400 | 403),
        "expired policy: {status} {text}"
    );
    assert!(text.to_ascii_lowercase().contains("expire"), "{text}");
    for name in ["posted.jpg", "elsewhere.jpg"] {
        assert!(
            matches!(
                f.storage.head(&key(name)).await,
                Err(CoreError::NotFound { .. })
            ),
            "nothing stored for {name}"
        );
    }

    let (status, text) = post_form(&f, &p, &p.fields, vec![7u8; 1000]).await;
    assert_eq!(status, 201, "{text}");
    let got = f.storage.get(&k).await.unwrap();
    assert_eq!(got.body.len(), 1000);
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn signed_optional_headers_and_downloads_are_accepted() {
    use upload_presign::headers::{Disposition, PutHeaders, content_disposition};
    let f = fixture().await;
    let k = key("report.pdf");
    let now = SystemTime::now();
    let disposition = content_disposition(Disposition::Attachment, "Rapport été.pdf");
    let headers = PutHeaders::default()
        .with_content_length(9)
        .with_content_disposition(disposition.clone())
        .with_cache_control("private, max-age=0")
        .with_metadata("owner", "user-1");
    let put = f
        .presigner
        .presign_put_with(
            &f.bucket,
            &k,
            "application/pdf",
            &headers,
            Duration::from_secs(60),
            now,
        )
        .unwrap();
    // The five pinned above and the create-only If-None-Match: *.
    assert_eq!(put.headers.len(), 6);
    let (status, text) = send(&f, &put, b"%PDF-1.7\n").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    // Leaving out one signed header breaks the signature.
    let mut missing = put.clone();
    missing.headers.retain(|(n, _)| n != "cache-control");
    let (status, _) = send(&f, &missing, b"%PDF-1.7\n").await;
    assert_eq!(status, 403, "an unsent signed header is refused");
    let got = f.storage.get(&k).await.unwrap();
    assert_eq!(
        got.meta.cache_control.as_deref(),
        Some("private, max-age=0")
    );

    let dl = f
        .presigner
        .presign_download(
            &f.bucket,
            &k,
            "Rapport été.pdf",
            Some("application/octet-stream"),
            Duration::from_secs(60),
            now,
        )
        .unwrap();
    let resp = f.http.get(dl.url.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-disposition"].to_str().unwrap(),
        disposition
    );
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"%PDF-1.7\n");
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn a_replayed_create_only_put_gets_412_from_s3s_fs() {
    // s3s-fs 0.14 honours `If-None-Match: *` on PutObject as S3 does.
    let f = fixture().await;
    let k = key("original.jpg");
    let policy = upload_core::UploadPolicy::new(["image/jpeg"], 1024).unwrap();
    let put = upload_presign::presign_upload(
        &f.presigner,
        &policy,
        &f.bucket,
        &k,
        "image/jpeg",
        5,
        SystemTime::now(),
    )
    .unwrap();
    assert!(put.headers.contains(&("if-none-match".into(), "*".into())));
    let (status, text) = send(&f, &put, b"first").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    let (status, text) = send(&f, &put, b"later").await;
    let text = String::from_utf8_lossy(&text);
    assert_eq!(status, 412, "{text}");
    assert!(text.contains("<Code>PreconditionFailed</Code>"), "{text}");
    assert_eq!(f.storage.get(&k).await.unwrap().body.as_ref(), b"first");
    // Without the signed condition the signature fails.
    let mut bare = put.clone();
    bare.headers.retain(|(n, _)| n != "if-none-match");
    assert_eq!(send(&f, &bare, b"later").await.0, 403);
    assert_eq!(f.storage.get(&k).await.unwrap().body.as_ref(), b"first");
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn a_part_of_another_size_than_its_url_pins_is_refused() {
    use upload_presign::headers::PartHeaders;
    let f = fixture().await;
    let k = key("pinned.bin");
    let id = f
        .storage
        .create_multipart_upload(
            &k,
            PutOptions::default().with_content_type("application/octet-stream"),
        )
        .await
        .unwrap();
    let p = f
        .presigner
        .presign_upload_part_with(
            &f.bucket,
            &k,
            &id,
            1,
            &PartHeaders::default().with_content_length(4),
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    for wrong in [b"tai".as_slice(), b"tails".as_slice()] {
        let resp = f.http.put(p.url.clone()).body(wrong).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{} bytes", wrong.len());
    }
    assert!(f.storage.list_parts(&k, &id).await.unwrap().is_empty());
    let resp = f
        .http
        .put(p.url.clone())
        .body(&b"tail"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let parts = f.storage.list_parts(&k, &id).await.unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].size, 4);
}

#[tokio::test]
#[ignore = "needs s3s-fs: run scripts/test.sh"]
async fn a_form_bounded_to_its_declared_size_refuses_more() {
    let f = fixture().await;
    let k = key("declared.jpg");
    let policy = upload_core::UploadPolicy::new(["image/jpeg"], 1024 * 1024).unwrap();
    let p = upload_presign::presign_post_upload(
        &f.presigner,
        &policy,
        &f.bucket,
        &k,
        "image/jpeg",
        Some(100),
        SystemTime::now(),
    )
    .unwrap();
    let (status, text) = post_form(&f, &p, &p.fields, vec![7u8; 101]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("EntityTooLarge"), "{text}");
    let (status, text) = post_form(&f, &p, &p.fields, vec![7u8; 99]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("EntityTooSmall"), "{text}");
    let (status, text) = post_form(&f, &p, &p.fields, vec![7u8; 100]).await;
    assert_eq!(status, 201, "{text}");
    // A form cannot be create-only: s3s-fs, like S3, lets it replace.
    let (status, text) = post_form(&f, &p, &p.fields, vec![8u8; 100]).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(f.storage.get(&k).await.unwrap().body.as_ref(), [8u8; 100]);
}
