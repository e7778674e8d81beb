//! The S3 path behind the `UploadSigner` interface signs exactly the URL
//! it signed before the interface existed (`Presigner::presign_put_url_with`
//! with the same `PutHeaders`): a known answer for fixed credentials and
//! time, and the API's ticket compared with a direct signature.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use upload_core::{MemoryStorage, ObjectKey, UploadPolicy};
use upload_presign::headers::{Disposition, PutHeaders, content_disposition};
use upload_presign::{Credentials, Presigner, S3UploadSigner, ServerTimeouts, Url};
use upload_server::{
    AppState, FnHook, HookRequest, PutToSign, ServerConfig, SignerCapabilities, UploadMetadata,
    UploadSigner, UploadTicket,
};

fn presigner() -> Arc<Presigner> {
    Arc::new(
        Presigner::new(
            Url::parse("http://127.0.0.1:9000/").unwrap(),
            "us-east-1",
            Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
        )
        .unwrap(),
    )
}

/// The headers the routes signed before the interface: exact length, the
/// file name's disposition, the metadata (create-only by default).
fn old_headers(size: u64, filename: Option<&str>, metadata: &UploadMetadata) -> PutHeaders {
    let mut headers = PutHeaders::default().with_content_length(size);
    if let Some(name) = filename {
        headers =
            headers.with_content_disposition(content_disposition(Disposition::Attachment, name));
    }
    for (name, value) in metadata.clone() {
        headers = headers.with_metadata(&name, value);
    }
    headers
}

#[tokio::test]
async fn the_s3_signer_signs_the_old_url_byte_for_byte() {
    let p = presigner();
    let signer = S3UploadSigner::new(Arc::new(p.clone()), "uploads");
    assert_eq!(signer.capabilities(), SignerCapabilities::S3);
    let key = ObjectKey::new("uploads/alice/0b9f0c1e.png").unwrap();
    let metadata = UploadMetadata::from([
        ("upload-owner".to_owned(), "alice".to_owned()),
        ("upload-route".to_owned(), "default".to_owned()),
    ]);
    let now = UNIX_EPOCH + Duration::from_secs(1_764_900_000);
    let expiry = Duration::from_secs(300);
    let signed = signer
        .sign_put(&PutToSign {
            key: &key,
            content_type: "image/png",
            size: 1234,
            filename: Some("Été.png"),
            metadata: &metadata,
            expires_in: expiry,
            now,
        })
        .await
        .unwrap();
    let headers = old_headers(1234, Some("Été.png"), &metadata);
    // POST /uploads and GET /s3/params signed with presign_put_url_with ...
    let old = p
        .presign_put_url_with("uploads", &key, "image/png", &headers, expiry, now)
        .unwrap();
    assert_eq!(signed.method, "PUT");
    assert_eq!(signed.url, old.url);
    assert_eq!(signed.headers, old.headers);
    assert_eq!(signed.expires_at, old.expires_at);
    assert_eq!(signed.expires_at, now + expiry);
    // ... and POST /s3/sign with presign_put_with.
    let old6 = p
        .presign_put_with("uploads", &key, "image/png", &headers, expiry, now)
        .unwrap();
    assert_eq!(signed.url, old6.url.as_str());
    // The known answer (SigV4 over these credentials, time and headers).
    assert_eq!(
        signed.url,
        "http://127.0.0.1:9000/uploads/uploads/alice/0b9f0c1e.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20251205%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20251205T020000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=content-disposition%3Bcontent-length%3Bcontent-type%3Bhost%3Bif-none-match%3Bx-amz-meta-upload-owner%3Bx-amz-meta-upload-route&X-Amz-Signature=d4a6c51a713a8c0802b35a5c55410bc19a2f000e34da3167a3abf9fdd141c2e1"
    );
    assert_eq!(
        signed
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "content-disposition",
            "content-length",
            "content-type",
            "if-none-match",
            "x-amz-meta-upload-owner",
            "x-amz-meta-upload-route"
        ]
    );
}

/// `POST /uploads` (default signer, no configuration) hands out the URL
/// a direct `presign_put_url_with` gives for its key at its second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_ticket_is_the_direct_signature() {
    let p = presigner();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(upload_multipart::MemoryMultipartStore::new(storage.clone()));
    let config = ServerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap()).with_route(
        upload_server::UploadRoute::new(
            "avatar",
            UploadPolicy::new(["image/png"], 1 << 20).unwrap(),
        )
        .unwrap()
        .with_key_prefix("avatars")
        .unwrap()
        .with_hook(FnHook(|_req: HookRequest| async {
            Ok(UploadMetadata::from([(
                "tier".to_owned(),
                "gold".to_owned(),
            )]))
        })),
    );
    let state = AppState {
        presigner: Arc::new(p.clone()),
        uploads: mp,
        processed: storage,
        processed_presigner: Arc::new(p.clone()),
        config: Arc::new(config.unwrap()),
        session_secret: Arc::new([7; 32]),
        authorizer: common::test_authorizer(),
    };
    assert!(state.config.upload_signer().is_none());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upload_presign::serve(
        listener,
        state.router(),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    let before = SystemTime::now();
    let ticket: UploadTicket = reqwest::Client::new()
        .post(format!("http://{addr}/routes/avatar/uploads"))
        .header("x-owner", "alice")
        .json(&json!({"content_type": "image/png; charset=x", "size": 99, "filename": "a b.png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = SystemTime::now();
    let UploadTicket::Put { key, request, .. } = ticket else {
        panic!("a PUT ticket")
    };
    let key = ObjectKey::new(key).unwrap();
    // The metadata signed: the hook's, the route's, the owner's and the
    // trace context (a fresh one per request).
    let metadata: UploadMetadata = request
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.strip_prefix("x-amz-meta-")?.to_owned(), v.clone())))
        .collect();
    assert_eq!(
        metadata.keys().map(String::as_str).collect::<Vec<_>>(),
        ["tier", "upload-owner", "upload-route", "upload-traceparent"]
    );
    assert_eq!(
        (
            &metadata["tier"][..],
            &metadata["upload-owner"][..],
            &metadata["upload-route"][..]
        ),
        ("gold", "alice", "avatar")
    );
    let headers = old_headers(99, Some("a b.png"), &metadata);
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let matched = (secs(before)..=secs(after)).find_map(|s| {
        let old = p
            .presign_put_url_with(
                "uploads",
                &key,
                "image/png",
                &headers,
                Duration::from_secs(300),
                UNIX_EPOCH + Duration::from_secs(s),
            )
            .unwrap();
        (old.url == request.url).then_some(old)
    });
    let old = matched.unwrap_or_else(|| panic!("no direct signature matches {}", request.url));
    assert_eq!(request.headers, old.headers);
    assert_eq!(request.method, "PUT");
}
