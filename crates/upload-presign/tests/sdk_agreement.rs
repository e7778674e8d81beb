//! Byte-exact agreement with aws-sdk-s3's own presigning: for the same
//! credentials, time, bucket, key, headers and expiry, our sans-IO
//! `Presigner` produces the very same URL (path encoding, parameter order,
//! signature) and the same headers as `presigned()` of the SDK. The SDK
//! adds `x-id=PutObject` (an operation hint S3 ignores) to its URLs; the
//! test gives our signer the same parameter.
//!
//! No server needed: both sides are pure computations.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use upload_core::ObjectKey;
use upload_core::s3::AwsSettings;
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::Client;
use upload_core::s3::aws_sdk_s3::config::Credentials as SdkCredentials;
use upload_core::s3::aws_sdk_s3::presigning::PresigningConfig;
use upload_presign::sigv4::{AddressingStyle, Method, PresignRequest};
use upload_presign::{Credentials, Presigner, Url};

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sdk_client(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    path_style: bool,
    token: Option<&str>,
) -> Client {
    rt.block_on(async {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("eu-west-3"))
            .credentials_provider(SdkCredentials::new(
                AK,
                SK,
                token.map(str::to_owned),
                None,
                "tests",
            ))
            .load()
            .await;
        AwsSettings::local(endpoint)
            .with_force_path_style(path_style)
            .s3_client(&sdk)
    })
}

fn ours(endpoint: &str, path_style: bool, token: Option<&str>) -> Presigner {
    let mut c = Credentials::new(AK, SK);
    if let Some(t) = token {
        c = c.with_session_token(t);
    }
    Presigner::new(Url::parse(endpoint).unwrap(), "eu-west-3", c)
        .unwrap()
        .with_style(if path_style {
            AddressingStyle::Path
        } else {
            AddressingStyle::VirtualHosted
        })
}

#[derive(Debug, Clone)]
struct Case {
    key: String,
    content_type: String,
    content_length: Option<u64>,
    cache_control: Option<String>,
    meta: Vec<(String, String)>,
    expires: u64,
    at: u64,
    token: Option<String>,
    path_style: bool,
    create_only: bool,
}

fn key_strategy() -> impl Strategy<Value = String> {
    let segment =
        proptest::string::string_regex("[a-zA-Z0-9 +%=&?#~!*'()_.,;:@$é✓漢😀-]{1,40}").unwrap();
    prop::collection::vec(segment, 1..5)
        .prop_map(|segs| segs.join("/"))
        .prop_filter("valid object key", |k| ObjectKey::new(k.as_str()).is_ok())
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        key_strategy(),
        prop::sample::select(vec![
            "image/jpeg",
            "image/png",
            "application/pdf",
            "text/plain; charset=utf-8",
        ]),
        prop::option::of(0u64..5_000_000_000),
        prop::option::of(prop::sample::select(vec![
            "no-store",
            "public, max-age=31536000, immutable",
        ])),
        prop::collection::vec(("[a-z0-9-]{1,12}", "[ -~]{0,20}"), 0..3),
        1u64..=604_800,
        1_000_000_000u64..2_000_000_000,
        prop::option::of("[A-Za-z0-9/+=]{20,60}"),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(key, ct, len, cc, meta, expires, at, token, path_style, create_only)| Case {
                key,
                content_type: ct.to_owned(),
                content_length: len,
                cache_control: cc.map(str::to_owned),
                meta,
                expires,
                at,
                token,
                path_style,
                create_only,
            },
        )
}

fn check(rt: &tokio::runtime::Runtime, c: &Case) -> Result<(), TestCaseError> {
    let endpoint = "https://s3.eu-west-3.amazonaws.com";
    let client = sdk_client(rt, endpoint, c.path_style, c.token.as_deref());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(c.at);
    let expires = Duration::from_secs(c.expires);
    let bucket = "upload-sdk-test";
    let mut meta = c.meta.clone();
    meta.sort();
    meta.dedup_by(|a, b| a.0 == b.0);
    let mut put = client
        .put_object()
        .bucket(bucket)
        .key(&c.key)
        .content_type(&c.content_type)
        .set_content_length(c.content_length.map(|l| l as i64))
        .set_cache_control(c.cache_control.clone())
        .set_if_none_match(c.create_only.then(|| "*".to_owned()));
    for (k, v) in &meta {
        put = put.metadata(k, v);
    }
    let cfg = PresigningConfig::builder()
        .start_time(now)
        .expires_in(expires)
        .build()
        .unwrap();
    let theirs = rt.block_on(put.presigned(cfg)).unwrap();

    let key = ObjectKey::new(c.key.as_str()).unwrap();
    let mut req = PresignRequest::new(Method::Put, bucket, &key, expires)
        .with_query("x-id", "PutObject")
        .with_header("content-type", &c.content_type);
    if let Some(l) = c.content_length {
        req = req.with_header("content-length", l.to_string());
    }
    if let Some(cc) = &c.cache_control {
        req = req.with_header("cache-control", cc);
    }
    if c.create_only {
        req = req.with_header("if-none-match", "*");
    }
    for (k, v) in &meta {
        req = req.with_header(&format!("x-amz-meta-{k}"), v);
    }
    let signer = ours(endpoint, c.path_style, c.token.as_deref());
    let mine = signer.presign(&req, now).unwrap();
    prop_assert_eq!(mine.url.as_str(), theirs.uri(), "URL");
    let text = signer.presign_url(&req, now).unwrap();
    prop_assert_eq!(
        text.url.as_str(),
        theirs.uri(),
        "presign_url gives the same text"
    );
    prop_assert_eq!(&text.headers, &mine.headers);
    let mut their_headers: Vec<(String, String)> = theirs
        .headers()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    their_headers.sort();
    // We hand out header values trimmed, as they are signed (SigV4 trims
    // them in the canonical request); the SDK echoes them untrimmed.
    prop_assert_eq!(&mine.headers, &their_headers, "headers");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn our_presigned_put_is_byte_identical_to_the_sdks(c in case_strategy()) {
        let rt = runtime();
        check(&rt, &c)?;
    }
}

#[test]
fn longest_keys_and_get_and_upload_part_agree() {
    let rt = runtime();
    // A 1024-byte key (the S3 maximum), of multi-byte characters.
    let long = format!("{}{}", "ü/".repeat(340), "abcd");
    assert_eq!(long.len(), 1024);
    let case = Case {
        key: long.clone(),
        content_type: "image/jpeg".into(),
        content_length: Some(1),
        cache_control: None,
        meta: vec![],
        expires: 604_800,
        at: 1_750_000_000,
        token: Some("FwoGZXIvYXdzEJr//////////wEaDOCSESSIONTOKEN".into()),
        path_style: false,
        create_only: true,
    };
    check(&rt, &case).unwrap();

    let endpoint = "http://127.0.0.1:9000";
    let client = sdk_client(&rt, endpoint, true, None);
    let p = ours(endpoint, true, None);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let cfg = || {
        PresigningConfig::builder()
            .start_time(now)
            .expires_in(Duration::from_secs(900))
            .build()
            .unwrap()
    };
    let key = ObjectKey::new("uploads/u 1/ph+oto.jpg").unwrap();

    let theirs = rt
        .block_on(
            client
                .get_object()
                .bucket("bkt")
                .key(key.as_str())
                .presigned(cfg()),
        )
        .unwrap();
    let mine = p
        .presign(
            &PresignRequest::new(Method::Get, "bkt", &key, Duration::from_secs(900))
                .with_query("x-id", "GetObject"),
            now,
        )
        .unwrap();
    assert_eq!(mine.url.as_str(), theirs.uri());

    let theirs = rt
        .block_on(
            client
                .upload_part()
                .bucket("bkt")
                .key(key.as_str())
                .upload_id("abc/DEF+ghi==")
                .part_number(42)
                .presigned(cfg()),
        )
        .unwrap();
    let mine = p
        .presign(
            &PresignRequest::new(Method::Put, "bkt", &key, Duration::from_secs(900))
                .with_query("x-id", "UploadPart")
                .with_query("partNumber", "42")
                .with_query("uploadId", "abc/DEF+ghi=="),
            now,
        )
        .unwrap();
    assert_eq!(mine.url.as_str(), theirs.uri());

    // A part URL with its exact size pinned, as the server signs planned
    // parts (`PartHeaders`).
    let theirs = rt
        .block_on(
            client
                .upload_part()
                .bucket("bkt")
                .key(key.as_str())
                .upload_id("abc/DEF+ghi==")
                .part_number(42)
                .content_length(8_388_608)
                .presigned(cfg()),
        )
        .unwrap();
    let part_headers =
        upload_presign::headers::PartHeaders::default().with_content_length(8_388_608);
    let mut req = PresignRequest::new(Method::Put, "bkt", &key, Duration::from_secs(900))
        .with_query("x-id", "UploadPart")
        .with_query("partNumber", "42")
        .with_query("uploadId", "abc/DEF+ghi==");
    for (n, v) in part_headers.to_pairs() {
        req = req.with_header(&n, v);
    }
    let mine = p.presign(&req, now).unwrap();
    assert_eq!(mine.url.as_str(), theirs.uri());
    assert!(
        theirs
            .uri()
            .contains("X-Amz-SignedHeaders=content-length%3Bhost"),
        "{}",
        theirs.uri()
    );
    let direct = p
        .presign_upload_part_with(
            "bkt",
            &key,
            "abc/DEF+ghi==",
            42,
            &part_headers,
            Duration::from_secs(900),
            now,
        )
        .unwrap();
    assert_eq!(signature_of(direct.url.as_str()).len(), 64);
    assert_eq!(
        direct.headers,
        [("content-length".to_owned(), "8388608".to_owned())]
    );
}

#[test]
fn every_put_header_and_the_download_form_agree() {
    use upload_core::Tags;
    use upload_core::s3::aws_sdk_s3::types::ServerSideEncryption as SdkSse;
    use upload_presign::headers::{
        Disposition, PutHeaders, ServerSideEncryption, content_disposition,
    };
    let rt = runtime();
    let endpoint = "https://s3.eu-west-3.amazonaws.com";
    let client = sdk_client(&rt, endpoint, false, None);
    let p = ours(endpoint, false, None);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000);
    let cfg = || {
        PresigningConfig::builder()
            .start_time(now)
            .expires_in(Duration::from_secs(600))
            .build()
            .unwrap()
    };
    let key = ObjectKey::new("uploads/u1/0b7e.pdf").unwrap();
    let tags = Tags::from_pairs([("scan-status", "PENDING"), ("owner", "u 1")]).unwrap();
    let disposition = content_disposition(Disposition::Attachment, "Rapport été.pdf");
    let headers = PutHeaders::default()
        .with_content_length(12345)
        .with_content_disposition(disposition.clone())
        .with_cache_control("private, max-age=0")
        .with_metadata("owner", "u1")
        .with_tagging(tags.clone())
        .with_server_side_encryption(ServerSideEncryption::AwsKms {
            key_id: Some("alias/uploads".into()),
        });
    let theirs = rt
        .block_on(
            client
                .put_object()
                .bucket("bkt-1")
                .key(key.as_str())
                .content_type("application/pdf")
                .if_none_match("*")
                .content_length(12345)
                .content_disposition(&disposition)
                .cache_control("private, max-age=0")
                .metadata("owner", "u1")
                .tagging(tags.to_query_string())
                .server_side_encryption(SdkSse::AwsKms)
                .ssekms_key_id("alias/uploads")
                .presigned(cfg()),
        )
        .unwrap();
    let mut mine = p
        .presign_put_with(
            "bkt-1",
            &key,
            "application/pdf",
            &headers,
            Duration::from_secs(600),
            now,
        )
        .unwrap();
    let mut their_headers: Vec<(String, String)> = theirs
        .headers()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    their_headers.sort();
    mine.headers.sort();
    assert_eq!(mine.headers, their_headers);
    // With the SDK's x-id, the URLs are byte-identical.
    let mut req = PresignRequest::new(Method::Put, "bkt-1", &key, Duration::from_secs(600))
        .with_query("x-id", "PutObject")
        .with_header("content-type", "application/pdf");
    for (n, v) in headers.to_pairs() {
        req = req.with_header(&n, v);
    }
    assert_eq!(p.presign(&req, now).unwrap().url.as_str(), theirs.uri());
    assert!(theirs.uri().contains("X-Amz-SignedHeaders=cache-control%3Bcontent-disposition%3Bcontent-length%3Bcontent-type%3Bhost%3Bif-none-match%3Bx-amz-meta-owner%3Bx-amz-server-side-encryption%3Bx-amz-server-side-encryption-aws-kms-key-id%3Bx-amz-tagging"), "{}", theirs.uri());

    // The private-download GET with response overrides.
    let theirs = rt
        .block_on(
            client
                .get_object()
                .bucket("bkt-1")
                .key(key.as_str())
                .response_content_disposition(content_disposition(
                    Disposition::Attachment,
                    "Rapport été.pdf",
                ))
                .response_content_type("application/pdf")
                .presigned(cfg()),
        )
        .unwrap();
    let mine = p
        .presign(
            &PresignRequest::new(Method::Get, "bkt-1", &key, Duration::from_secs(600))
                .with_query(
                    "response-content-disposition",
                    content_disposition(Disposition::Attachment, "Rapport été.pdf"),
                )
                .with_query("response-content-type", "application/pdf")
                .with_query("x-id", "GetObject"),
            now,
        )
        .unwrap();
    assert_eq!(
        signature_of(mine.url.as_str()),
        signature_of(theirs.uri()),
        "same signature"
    );
    let dl = p
        .presign_download(
            "bkt-1",
            &key,
            "Rapport été.pdf",
            Some("application/pdf"),
            Duration::from_secs(600),
            now,
        )
        .unwrap();
    let q: Vec<(String, String)> = dl
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert!(
        q.contains(&("response-content-disposition".into(), disposition)),
        "{q:?}"
    );
}

fn signature_of(url: &str) -> String {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-Signature")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}
