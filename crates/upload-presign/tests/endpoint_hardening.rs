//! The local endpoint refuses as S3 refuses, before it reads what it
//! refuses: replayed create-only URLs (412), unsigned `x-amz-*` headers
//! (403), bodies over their declared or allowed size, bad POST signatures
//! answered while the client still holds the file, POST bodies of every
//! allowed size, and connections that stall (header-read and body-idle
//! timeouts).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use upload_core::testkit::counting::CountingStorage;
use upload_core::{MemoryStorage, ObjectKey, Storage, UploadPolicy};
use upload_presign::headers::PutHeaders;
use upload_presign::{
    Credentials, LocalEndpoint, PostRequest, Presigner, RunningEndpoint, ServerTimeouts, Verifier,
    presign_upload,
};

const MIB: u64 = 1024 * 1024;

struct Fixture {
    storage: Arc<MemoryStorage>,
    counting: Arc<CountingStorage>,
    presigner: Presigner,
    endpoint: RunningEndpoint,
    http: reqwest::Client,
}

async fn fixture_with(max_bytes: u64, timeouts: ServerTimeouts) -> Fixture {
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let counting = Arc::new(CountingStorage::new(storage.clone()));
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(counting.clone(), None)
        .with_max_object_bytes(max_bytes)
        .with_timeouts(timeouts)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Presigner::new(endpoint.url(), "us-east-1", creds).unwrap();
    Fixture {
        storage,
        counting,
        presigner,
        endpoint,
        http: reqwest::Client::new(),
    }
}

async fn fixture(max_bytes: u64) -> Fixture {
    fixture_with(max_bytes, ServerTimeouts::default()).await
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

fn code(xml: &str) -> &str {
    element(xml, "Code").expect("XML error has a Code")
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// Sends `p` with its signed headers, `extra` headers and `body`.
async fn send(
    f: &Fixture,
    p: &upload_presign::PresignedRequest,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut r = f.http.put(p.url.clone());
    for (n, v) in p.headers.iter() {
        r = r.header(n.as_str(), v.as_str());
    }
    for (n, v) in extra {
        r = r.header(*n, *v);
    }
    let r = r.body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

// ---------------------------------------------------------------- item 5

#[tokio::test]
async fn a_replayed_create_only_put_gets_412_and_the_original_stays() {
    let f = fixture(MIB).await;
    let policy = UploadPolicy::new(["image/jpeg"], MIB).unwrap();
    let k = key("uploads/alice/original.jpg");
    let p = presign_upload(
        &f.presigner,
        &policy,
        "uploads",
        &k,
        "image/jpeg",
        5,
        SystemTime::now(),
    )
    .unwrap();
    assert!(
        p.headers.contains(&("if-none-match".into(), "*".into())),
        "{:?}",
        p.headers
    );
    assert!(
        p.url
            .query()
            .unwrap()
            .contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match"),
        "{}",
        p.url
    );
    assert_eq!(send(&f, &p, &[], b"first".to_vec()).await.0, 200);
    // The same URL again, inside its expiry: refused, the original kept.
    let (status, body) = send(&f, &p, &[], b"later".to_vec()).await;
    assert_eq!((status, code(&body)), (412, "PreconditionFailed"), "{body}");
    assert_eq!(f.storage.get(&k).await.unwrap().body.as_ref(), b"first");
    // Leaving the condition out breaks the signature.
    let mut r = f.http.put(p.url.clone());
    for (n, v) in p.headers.iter().filter(|(n, _)| n != "if-none-match") {
        r = r.header(n.as_str(), v.as_str());
    }
    let r = r.body(&b"later"[..]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(code(&r.text().await.unwrap()), "SignatureDoesNotMatch");
    assert_eq!(f.storage.get(&k).await.unwrap().body.as_ref(), b"first");
}

#[tokio::test]
async fn a_replayed_post_form_replaces_the_object_as_on_s3() {
    // S3 POST policies cannot carry If-None-Match; the endpoint does as S3
    // does, so this documents the gap rather than hiding it.
    let f = fixture(MIB).await;
    let k = key("uploads/bob/form.jpg");
    let p = f
        .presigner
        .presign_post(
            &PostRequest::new("uploads", &k, "image/jpeg", 5..=5, Duration::from_secs(60))
                .with_success_action_status(201),
            SystemTime::now(),
        )
        .unwrap();
    for body in [b"first", b"later"] {
        let (status, text) = post_form(&f.http, &p, body.to_vec()).await;
        assert_eq!(status, 201, "{text}");
    }
    assert_eq!(f.storage.get(&k).await.unwrap().body.as_ref(), b"later");
}

// ---------------------------------------------------------------- item 8

async fn post_form(
    http: &reqwest::Client,
    p: &upload_presign::PresignedPost,
    file: Vec<u8>,
) -> (u16, String) {
    let mut form = reqwest::multipart::Form::new();
    for (n, v) in &p.fields {
        form = form.text(n.clone(), v.clone());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("client.jpg"),
    );
    let r = http
        .post(p.url.clone())
        .multipart(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn post_accepts_every_size_the_policy_allows_and_refuses_as_s3() {
    let f = fixture(64 * MIB).await;
    let max = 4 * MIB;
    let k = key("uploads/carol/big.jpg");
    let p = f
        .presigner
        .presign_post(
            &PostRequest::new(
                "uploads",
                &k,
                "image/jpeg",
                1..=max,
                Duration::from_secs(60),
            )
            .with_success_action_status(201),
            SystemTime::now(),
        )
        .unwrap();
    // 3 MiB: above axum's 2 MB default body limit, well inside the range.
    let (status, body) = post_form(&f.http, &p, vec![7; 3 * MIB as usize]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(f.storage.get(&k).await.unwrap().body.len() as u64, 3 * MIB);
    // Exactly the maximum.
    let (status, body) = post_form(&f.http, &p, vec![8; max as usize]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(f.storage.get(&k).await.unwrap().body.len() as u64, max);
    // One byte over, and empty: S3's codes, nothing stored.
    let puts = f.counting.counts().put;
    let (status, body) = post_form(&f.http, &p, vec![9; max as usize + 1]).await;
    assert_eq!((status, code(&body)), (400, "EntityTooLarge"), "{body}");
    assert_eq!(element(&body, "MaxSizeAllowed"), Some("4194304"), "{body}");
    let (status, body) = post_form(&f.http, &p, Vec::new()).await;
    assert_eq!((status, code(&body)), (400, "EntityTooSmall"), "{body}");
    assert_eq!(element(&body, "MinSizeAllowed"), Some("1"), "{body}");
    assert_eq!(f.counting.counts().put, puts, "refused forms store nothing");
    assert_eq!(f.storage.get(&k).await.unwrap().body.len() as u64, max);
}

// --------------------------------------------------------------- item 10

/// An HTTP/1.1 exchange on a raw socket: writes `sent` (a head and maybe
/// part of a body, whose `Content-Length` may promise more) and reads one
/// answer without sending the rest. A server that waited for the rest of
/// the body would never answer (the test's 30 s guard then fails it).
async fn answer_without_the_rest(addr: SocketAddr, sent: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(sent).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), read_answer(&mut s))
        .await
        .expect("answered before the rest of the body was sent")
}

/// Reads one HTTP response (head, then `Content-Length` bytes of body).
async fn read_answer(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    (
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned(),
    )
}

fn path_and_query(url: &reqwest::Url) -> String {
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

#[tokio::test]
async fn refusals_are_answered_before_the_body_is_read() {
    let f = fixture(DEFAULT_MAX).await;
    let addr = f.endpoint.local_addr();
    let k = key("uploads/dave/big.bin");

    // An UploadPart to a bucket without multipart, announcing 768 MiB: 501
    // from the head alone (it used to read, and hold twice, the body).
    let part = f
        .presigner
        .presign_upload_part(
            "uploads",
            &k,
            "id",
            1,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
        path_and_query(&part.url),
        768 * MIB
    );
    let (status, body) = answer_without_the_rest(addr, head.as_bytes()).await;
    assert_eq!((status, code(&body)), (501, "NotImplemented"), "{body}");

    // A PUT announcing more than the endpoint takes: 400 from the head.
    let put = f
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
    let head = format!(
        "PUT {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        path_and_query(&put.url),
        DEFAULT_MAX + 1
    );
    let (status, body) = answer_without_the_rest(addr, head.as_bytes()).await;
    assert_eq!((status, code(&body)), (400, "EntityTooLarge"), "{body}");

    // A POST whose policy signature is wrong: refused once the fields are
    // read, while the client still holds its 64 MiB file.
    let post = f
        .presigner
        .presign_post(
            &PostRequest::new(
                "uploads",
                &k,
                "image/jpeg",
                1..=100 * MIB,
                Duration::from_secs(60),
            ),
            SystemTime::now(),
        )
        .unwrap();
    let mut fields = post.fields.clone();
    fields.last_mut().unwrap().1 = "0".repeat(64);
    let (head, form_start) = post_head(addr, &fields, 64 * MIB);
    let mut sent = head.into_bytes();
    sent.extend_from_slice(&form_start);
    let (status, body) = answer_without_the_rest(addr, &sent).await;
    assert_eq!(
        (status, code(&body)),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );

    // A good POST whose file runs past the range: refused at its first
    // byte too many, before the rest of the announced body.
    let small = f
        .presigner
        .presign_post(
            &PostRequest::new(
                "uploads",
                &k,
                "image/jpeg",
                1..=1000,
                Duration::from_secs(60),
            ),
            SystemTime::now(),
        )
        .unwrap();
    let (head, form_start) = post_head(addr, &small.fields, 64 * MIB);
    let mut sent = head.into_bytes();
    sent.extend_from_slice(&form_start);
    sent.extend_from_slice(&[1u8; 1001]);
    let (status, body) = answer_without_the_rest(addr, &sent).await;
    assert_eq!((status, code(&body)), (400, "EntityTooLarge"), "{body}");

    assert_eq!(f.counting.counts().put, 0, "nothing reached the store");
    assert!(f.storage.is_empty());
}

const DEFAULT_MAX: u64 = 16 * MIB;
const BOUNDARY: &str = "----upload-sdk-test-boundary";

/// The head of a form POST announcing a file of `file_len` bytes, and the
/// body up to the file's first byte.
fn post_head(addr: SocketAddr, fields: &[(String, String)], file_len: u64) -> (String, Vec<u8>) {
    let mut start = Vec::new();
    for (n, v) in fields {
        start.extend_from_slice(
            format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    start.extend_from_slice(
        format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\ncontent-type: image/jpeg\r\n\r\n")
            .as_bytes(),
    );
    let end = format!("\r\n--{BOUNDARY}--\r\n");
    let total = start.len() as u64 + file_len + end.len() as u64;
    let head = format!(
        "POST /uploads/ HTTP/1.1\r\nhost: {addr}\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {total}\r\n\r\n"
    );
    (head, start)
}

#[tokio::test]
async fn stalled_headers_and_bodies_time_out() {
    let timeouts = ServerTimeouts::default()
        .with_header_read(Duration::from_millis(300))
        .with_body_idle(Duration::from_millis(300));
    let f = fixture_with(MIB, timeouts).await;
    let addr = f.endpoint.local_addr();

    // Half a head, then nothing: the server closes the connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /uploads/x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("closed by the header-read timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer: {:?}", &buf[..n]);

    // A valid PUT whose body stops after 3 of 10 bytes: 400 RequestTimeout.
    let k = key("uploads/erin/slow.bin");
    let put = f
        .presigner
        .presign_put(
            "uploads",
            &k,
            "application/octet-stream",
            Some(10),
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let sent = format!(
        "PUT {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: 10\r\n\r\nabc",
        path_and_query(&put.url)
    );
    let (status, body) = answer_without_the_rest(addr, sent.as_bytes()).await;
    assert_eq!((status, code(&body)), (400, "RequestTimeout"), "{body}");
    assert!(f.storage.is_empty());
}

// --------------------------------------------------------------- item 11

#[tokio::test]
async fn unsigned_headers_are_refused_or_not_stored_as_on_s3() {
    let f = fixture(MIB).await;
    let k = key("uploads/frank/a.jpg");
    let headers = PutHeaders::default().with_content_length(5);
    let p = f
        .presigner
        .presign_put_with(
            "uploads",
            &k,
            "image/jpeg",
            &headers,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let crc = upload_core::ChecksumAlgorithm::Crc32c
        .checksum(b"hello")
        .value;
    for extra in [
        ("x-amz-meta-role", "admin"),
        ("x-amz-tagging", "scan-status=CLEAN"),
        ("x-amz-checksum-crc32c", crc.as_str()),
    ] {
        let (status, body) = send(&f, &p, &[extra], b"hello".to_vec()).await;
        assert_eq!(
            (status, code(&body)),
            (403, "AccessDenied"),
            "{extra:?}: {body}"
        );
        assert!(
            body.contains("There were headers present in the request which were not signed"),
            "{body}"
        );
        assert_eq!(element(&body, "HeadersNotSigned"), Some(extra.0), "{body}");
    }
    assert_eq!(f.counting.counts().put, 0);

    // An unsigned Cache-Control is accepted but not stored, nor served;
    // x-amz-content-sha256 may go unsigned, as on S3.
    let (status, body) = send(
        &f,
        &p,
        &[
            ("cache-control", "public, max-age=31536000"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(f.storage.get(&k).await.unwrap().meta.cache_control, None);
    let get = f
        .presigner
        .presign_get("uploads", &k, Duration::from_secs(60), SystemTime::now())
        .unwrap();
    let r = f.http.get(get.url.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("cache-control").is_none());

    // Signed, it is stored and served.
    let k2 = key("uploads/frank/b.jpg");
    let signed = f
        .presigner
        .presign_put_with(
            "uploads",
            &k2,
            "image/jpeg",
            &headers.clone().with_cache_control("private, max-age=60"),
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(send(&f, &signed, &[], b"hello".to_vec()).await.0, 200);
    assert_eq!(
        f.storage
            .get(&k2)
            .await
            .unwrap()
            .meta
            .cache_control
            .as_deref(),
        Some("private, max-age=60")
    );
    // An unsigned x-amz-* header on a GET is refused too.
    let r = f
        .http
        .get(get.url)
        .header("x-amz-request-payer", "requester")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        element(&r.text().await.unwrap(), "HeadersNotSigned"),
        Some("x-amz-request-payer")
    );
}
