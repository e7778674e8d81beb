//! The presign server binds every upload to what the client declared and
//! never lets a URL overwrite an original: PUT tickets are create-only,
//! POST forms are bounded to the declared size, each multipart part URL
//! pins its part's size; and its HTTP server drops connections that stall
//! their headers. Driven over HTTP against the local endpoint.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use upload_core::{MemoryStorage, Storage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_presign::{Credentials, LocalEndpoint, Presigner, ServerTimeouts, Verifier};
use upload_server::{AppState, ServerConfig, UploadTicket, router};

const MIB: u64 = 1024 * 1024;

struct Harness {
    api: String,
    http: reqwest::Client,
    storage: Arc<MemoryStorage>,
    _endpoint: upload_presign::RunningEndpoint,
}

async fn harness(timeouts: ServerTimeouts) -> Harness {
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(storage.clone()));
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(storage.clone(), Some(mp.clone()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Arc::new(Presigner::new(endpoint.url(), "us-east-1", creds).unwrap());
    let policy = UploadPolicy::images_and_pdf(64 * MIB).unwrap();
    let mut config = ServerConfig::new(policy);
    config.multipart_threshold = MIB;
    config.part_size = 5 * MIB;
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: mp,
        processed: storage.clone(),
        processed_presigner: Arc::new(presigner),
        config: Arc::new(config),
        session_secret: Arc::new([9; 32]),
        authorizer: common::test_authorizer(),
    };
    // Served as the presign-server binary serves it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upload_presign::serve(
        listener,
        router(state),
        timeouts,
        std::future::pending(),
    ));
    Harness {
        api: format!("http://{addr}"),
        // The tests' authorizer takes the owner from `x-owner`.
        http: reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::HeaderName::from_static("x-owner"),
                    reqwest::header::HeaderValue::from_static("anonymous"),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        storage,
        _endpoint: endpoint,
    }
}

async fn ticket(h: &Harness, body: serde_json::Value) -> UploadTicket {
    let r = h
        .http
        .post(format!("{}/uploads", h.api))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

fn code(xml: &str) -> &str {
    let start = xml.find("<Code>").expect("an S3 error") + 6;
    &xml[start..start + xml[start..].find("</Code>").unwrap()]
}

#[tokio::test]
async fn a_put_ticket_is_create_only() {
    let h = harness(ServerTimeouts::default()).await;
    let UploadTicket::Put { key, request, .. } = ticket(
        &h,
        json!({"content_type": "image/jpeg", "size": 5, "filename": "a.jpg"}),
    )
    .await
    else {
        panic!("a PUT ticket")
    };
    assert!(
        request
            .headers
            .contains(&("if-none-match".into(), "*".into())),
        "{:?}",
        request.headers
    );
    let put = |body: &'static [u8]| {
        let mut r = h.http.put(&request.url);
        for (n, v) in &request.headers {
            r = r.header(n.as_str(), v.as_str());
        }
        r.body(body).send()
    };
    assert_eq!(put(b"first").await.unwrap().status().as_u16(), 200);
    let again = put(b"later").await.unwrap();
    assert_eq!(again.status().as_u16(), 412);
    assert_eq!(code(&again.text().await.unwrap()), "PreconditionFailed");
    let k = upload_core::ObjectKey::new(key).unwrap();
    assert_eq!(h.storage.get(&k).await.unwrap().body.as_ref(), b"first");
}

#[tokio::test]
async fn a_post_ticket_is_bounded_to_the_declared_size() {
    let h = harness(ServerTimeouts::default()).await;
    let declared = 100_000u64;
    let UploadTicket::Post {
        key, url, fields, ..
    } = ticket(
        &h,
        json!({"content_type": "image/jpeg", "size": declared, "form": "post"}),
    )
    .await
    else {
        panic!("a POST ticket")
    };
    let post = |len: u64| {
        let mut form = reqwest::multipart::Form::new();
        for (n, v) in &fields {
            form = form.text(n.clone(), v.clone());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(vec![1u8; len as usize]),
        );
        h.http.post(&url).multipart(form).send()
    };
    // Once the policy allowed anything up to the policy's 64 MiB.
    for len in [declared + 1, 2 * MIB, declared - 1] {
        let r = post(len).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{len}");
        let want = if len > declared {
            "EntityTooLarge"
        } else {
            "EntityTooSmall"
        };
        assert_eq!(code(&r.text().await.unwrap()), want, "{len}");
    }
    assert!(h.storage.is_empty());
    assert_eq!(post(declared).await.unwrap().status().as_u16(), 201);
    let k = upload_core::ObjectKey::new(key).unwrap();
    assert_eq!(h.storage.get(&k).await.unwrap().body.len() as u64, declared);
}

#[tokio::test]
async fn every_part_url_pins_its_part_size() {
    let h = harness(ServerTimeouts::default()).await;
    let size = 11 * MIB;
    let UploadTicket::Multipart {
        key,
        upload_id,
        session,
        parts,
        part_count,
        ..
    } = ticket(&h, json!({"content_type": "application/pdf", "size": size})).await
    else {
        panic!("a multipart ticket")
    };
    assert_eq!(part_count, 3);
    let len_of = |headers: &[(String, String)]| {
        headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<u64>().unwrap())
    };
    let lens: Vec<Option<u64>> = parts.iter().map(|p| len_of(&p.request.headers)).collect();
    assert_eq!(lens, [Some(5 * MIB), Some(5 * MIB), Some(MIB)]);
    // A part of the wrong size is refused by storage when it is sent.
    let r = h
        .http
        .put(&parts[0].request.url)
        .body(vec![0u8; MIB as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(code(&r.text().await.unwrap()), "SignatureDoesNotMatch");
    let r = h
        .http
        .put(&parts[0].request.url)
        .body(vec![0u8; 5 * MIB as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // URLs signed later pin sizes too.
    let r = h
        .http
        .post(format!("{}/multipart/sign", h.api))
        .json(
            &json!({"key": key, "upload_id": upload_id, "session": session, "first": 2, "last": 2}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let signed: serde_json::Value = r.json().await.unwrap();
    let headers: Vec<(String, String)> =
        serde_json::from_value(signed["parts"][0]["request"]["headers"].clone()).unwrap();
    assert_eq!(len_of(&headers), Some(5 * MIB));
}

#[tokio::test]
async fn the_api_server_closes_connections_that_stall_their_headers() {
    let h = harness(ServerTimeouts::default().with_header_read(Duration::from_millis(300))).await;
    let addr = h.api.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /uploads HTTP/1.1\r\nhost: x\r\ncontent-type: appl")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("the connection is closed after the header-read timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer: {:?}", &buf[..n]);
    // The server still answers others.
    let r = h
        .http
        .get(format!("{}/config", h.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
