//! Named upload routes, from the client's and the attacker's side: each
//! route's policy, key prefix and hook; metadata signed into every upload
//! (PUT, POST form, multipart on both contracts) that the stored object
//! carries and a client cannot change; and no route's session or key
//! usable on another route. Driven over HTTP against the local endpoint,
//! which verifies signatures as S3 does.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use upload_core::{MemoryStorage, MultipartStore, ObjectKey, Storage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_presign::{Credentials, LocalEndpoint, Presigner, ServerTimeouts, Verifier};
use upload_server::{
    AppState, FnHook, HookRefusal, HookRequest, RouteError, ServerConfig, UploadMetadata,
    UploadRoute, UploadTicket, router,
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

/// `avatar`: PNG/JPEG up to 5 MiB under `avatars/`, with a hook that
/// refuses `{"refuse": true}` and signs in the tier and the (checked)
/// album it was given; `document`: PDF up to 25 MiB under `documents/`,
/// multipart above 5 MiB in 5 MiB parts; and the default route.
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
    .with_hook(FnHook(move |req: HookRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if req.input["refuse"] == json!(true) {
                return Err(HookRefusal::new(format!(
                    "{} may not change their avatar today",
                    req.owner
                )));
            }
            let mut meta = UploadMetadata::from([("tier".to_owned(), "gold".to_owned())]);
            // Untrusted input: only a short number is copied.
            if let Some(album) = req.input["album"].as_str()
                && album.len() <= 8
                && album.bytes().all(|b| b.is_ascii_digit())
            {
                meta.insert("album".into(), album.into());
            }
            Ok(meta)
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
    .with_part_size(5 * MIB)
    .with_post_forms(false);
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
        session_secret: Arc::new([7; 32]),
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

impl Harness {
    async fn post(&self, owner: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.api)).json(&body);
        if let Some(o) = owner {
            r = r.header("x-owner", o);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, owner: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.api))
            .header("x-owner", owner)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn put_ticket(&self, path: &str, body: Value) -> (String, upload_server::SignedRequest) {
        let (status, got) = self.post(Some("alice"), path, body).await;
        assert_eq!(status, 200, "{got}");
        match serde_json::from_value(got).unwrap() {
            UploadTicket::Put { key, request, .. } => (key, request),
            other => panic!("a PUT ticket, not {other:?}"),
        }
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
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn send(
    http: &reqwest::Client,
    req: &upload_server::SignedRequest,
    change: Option<(&str, &str)>,
    body: Vec<u8>,
) -> u16 {
    let mut r = http.put(&req.url);
    for (n, v) in &req.headers {
        match change {
            Some((name, value)) if name == n => r = r.header(n.as_str(), value),
            _ => r = r.header(n.as_str(), v.as_str()),
        }
    }
    r.body(body).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_has_its_policy_prefix_and_signed_metadata() {
    let h = harness().await;
    let (key, req) = h
        .put_ticket(
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4, "input": {"album": "12"}}),
        )
        .await;
    assert!(
        key.starts_with("avatars/alice/") && key.ends_with(".png"),
        "{key}"
    );
    for (name, value) in [
        ("x-amz-meta-upload-route", "avatar"),
        ("x-amz-meta-upload-owner", "alice"),
        ("x-amz-meta-tier", "gold"),
        ("x-amz-meta-album", "12"),
    ] {
        assert!(
            req.headers.contains(&(name.into(), value.into())),
            "{name}: {:?}",
            req.headers
        );
    }
    assert_eq!(send(&h.http, &req, None, b"\x89PNG".to_vec()).await, 200);
    assert_eq!(
        h.metadata(&key).await,
        meta(&[
            ("album", "12"),
            ("tier", "gold"),
            ("upload-owner", "alice"),
            ("upload-route", "avatar"),
        ])
    );

    // The avatar route's policy, not the default's.
    let (status, e) = h
        .post(
            Some("alice"),
            "/routes/avatar/uploads",
            json!({"content_type": "application/pdf", "size": 4}),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (415, Some("content_type_not_allowed"))
    );
    let (status, e) = h
        .post(
            Some("alice"),
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 5 * MIB + 1}),
        )
        .await;
    assert_eq!((status, e["error"].as_str()), (413, Some("too_large")));
    // Input the hook does not trust is not signed in.
    let (key, req) = h
        .put_ticket(
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4, "input": {"album": "1; DROP"}}),
        )
        .await;
    assert!(!req.headers.iter().any(|(n, _)| n == "x-amz-meta-album"));
    assert_eq!(send(&h.http, &req, None, b"\x89PNG".to_vec()).await, 200);
    assert_eq!(h.metadata(&key).await.get("album"), None);

    // The document route: its prefix, its types; no hook.
    let (key, req) = h
        .put_ticket(
            "/routes/document/uploads",
            json!({"content_type": "application/pdf", "size": 5}),
        )
        .await;
    assert!(
        key.starts_with("documents/alice/") && key.ends_with(".pdf"),
        "{key}"
    );
    assert_eq!(send(&h.http, &req, None, b"%PDF-".to_vec()).await, 200);
    assert_eq!(
        h.metadata(&key).await,
        meta(&[("upload-owner", "alice"), ("upload-route", "document")])
    );
    // No POST forms on the document route: only create-only PUTs.
    let (status, e) = h
        .post(
            Some("alice"),
            "/routes/document/uploads",
            json!({"content_type": "application/pdf", "size": 5, "form": "post"}),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("post_forms_disabled"))
    );
    let (status, e) = h
        .get(
            "alice",
            "/routes/document/s3/params?type=application/pdf&filename=a.pdf",
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("post_forms_disabled"))
    );
    let (status, p) = h
        .get(
            "alice",
            "/routes/document/s3/params?type=application/pdf&size=5",
        )
        .await;
    assert_eq!((status, p["method"].as_str()), (200, Some("PUT")));
    // The default route still serves the top level, keys under uploads/.
    let (key, _) = h
        .put_ticket(
            "/uploads",
            json!({"content_type": "application/pdf", "size": 5}),
        )
        .await;
    assert!(key.starts_with("uploads/alice/"), "{key}");

    // Each route's /config.
    let (status, c) = h.get("alice", "/routes/document/config").await;
    assert_eq!(status, 200);
    assert_eq!(c["route"], "document");
    assert_eq!(c["content_types"], json!(["application/pdf"]));
    assert_eq!(c["max_bytes"], json!(25 * MIB));
    assert_eq!(c["multipart_threshold"], json!(5 * MIB));
    let (_, c) = h.get("alice", "/config").await;
    assert_eq!(c["route"], "default");
    // An unknown route is a JSON 404.
    let (status, e) = h
        .post(
            Some("alice"),
            "/routes/nope/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
    assert_eq!((status, e["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_change_or_add_signed_metadata() {
    let h = harness().await;
    // A PUT with another route, owner or hook value is refused by the
    // signature, and nothing is stored.
    for (name, value) in [
        ("x-amz-meta-upload-route", "document"),
        ("x-amz-meta-upload-owner", "bob"),
        ("x-amz-meta-tier", "platinum"),
    ] {
        let (key, req) = h
            .put_ticket(
                "/routes/avatar/uploads",
                json!({"content_type": "image/png", "size": 4}),
            )
            .await;
        assert_eq!(
            send(&h.http, &req, Some((name, value)), b"\x89PNG".to_vec()).await,
            403,
            "{name}"
        );
        assert!(
            h.storage
                .head(&ObjectKey::new(&key).unwrap())
                .await
                .is_err(),
            "{name}: nothing stored"
        );
    }
    // An unsigned metadata header is refused as S3 refuses it
    // (HeadersNotSigned); nothing is stored.
    let (key, req) = h
        .put_ticket(
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
    let r = h
        .http
        .put(&req.url)
        .headers(
            req.headers
                .iter()
                .chain([&("x-amz-meta-admin".to_owned(), "true".to_owned())])
                .map(|(n, v)| {
                    (
                        reqwest::header::HeaderName::try_from(n.as_str()).unwrap(),
                        reqwest::header::HeaderValue::try_from(v.as_str()).unwrap(),
                    )
                })
                .collect(),
        )
        .body(&b"\x89PNG"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "{}", r.text().await.unwrap());
    assert!(
        h.storage
            .head(&ObjectKey::new(&key).unwrap())
            .await
            .is_err()
    );

    // A POST form whose metadata fields are changed fails its policy.
    let (status, t) = h
        .post(
            Some("alice"),
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4, "form": "post"}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let UploadTicket::Post {
        key, url, fields, ..
    } = serde_json::from_value(t).unwrap()
    else {
        panic!("a POST ticket")
    };
    assert!(fields.contains(&("x-amz-meta-upload-route".into(), "avatar".into())));
    let post = |fields: Vec<(String, String)>| {
        let mut form = reqwest::multipart::Form::new();
        for (n, v) in fields {
            form = form.text(n, v);
        }
        form = form.part("file", reqwest::multipart::Part::bytes(b"\x89PNG".to_vec()));
        h.http.post(&url).multipart(form).send()
    };
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| match n.as_str() {
            "x-amz-meta-upload-owner" => (n.clone(), "bob".to_owned()),
            _ => (n.clone(), v.clone()),
        })
        .collect();
    assert_eq!(post(forged).await.unwrap().status().as_u16(), 403);
    assert!(
        h.storage
            .head(&ObjectKey::new(&key).unwrap())
            .await
            .is_err()
    );
    assert_eq!(post(fields).await.unwrap().status().as_u16(), 201);
    assert_eq!(
        h.metadata(&key).await,
        meta(&[
            ("tier", "gold"),
            ("upload-owner", "alice"),
            ("upload-route", "avatar"),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_refuses_before_anything_is_signed_and_is_never_asked_for_strangers() {
    let h = harness().await;
    let before = h.hook_calls.load(Ordering::SeqCst);
    // Unauthenticated: 401, the hook is not asked.
    let (status, _) = h
        .post(
            None,
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = h
        .post(
            None,
            "/routes/avatar/s3/multipart",
            json!({"type": "image/png"}),
        )
        .await;
    assert_eq!(status, 401);
    // Outside the policy: refused before the hook too.
    let (status, _) = h
        .post(
            Some("alice"),
            "/routes/avatar/uploads",
            json!({"content_type": "image/gif", "size": 4}),
        )
        .await;
    assert_eq!(status, 415);
    assert_eq!(h.hook_calls.load(Ordering::SeqCst), before);

    // Refused by the hook on every path: 403 with its message, no upload
    // created.
    for (path, body) in [
        (
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4, "input": {"refuse": true}}),
        ),
        (
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4, "form": "post", "input": {"refuse": true}}),
        ),
        (
            "/routes/avatar/s3/multipart",
            json!({"type": "image/png", "metadata": {"refuse": true}}),
        ),
    ] {
        let (status, e) = h.post(Some("alice"), path, body).await;
        assert_eq!(status, 403, "{path}: {e}");
        assert_eq!(e["error"], "upload_refused");
        assert_eq!(e["message"], "alice may not change their avatar today");
    }
    let (status, e) = h
        .get(
            "alice",
            "/routes/avatar/s3/params?type=image/png&size=4&metadata%5Brefuse%5D=true",
        )
        .await;
    // Uppy's metadata arrives as strings: the hook sees "true", not true.
    assert_eq!(status, 200, "{e}");
    assert_eq!(h.hook_calls.load(Ordering::SeqCst), before + 4);
    assert!(
        h.mp.list_multipart_uploads("avatars/")
            .await
            .unwrap()
            .is_empty(),
        "a refused multipart upload is never created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_one_route_is_refused_on_every_other() {
    let h = harness().await;
    // A document multipart session (6 MiB > its 5 MiB threshold).
    let (status, t) = h
        .post(
            Some("alice"),
            "/routes/document/uploads",
            json!({"content_type": "application/pdf", "size": 6 * MIB}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let UploadTicket::Multipart {
        key,
        upload_id,
        session,
        parts,
        ..
    } = serde_json::from_value(t).unwrap()
    else {
        panic!("a multipart ticket")
    };
    assert!(key.starts_with("documents/alice/"));
    let sign =
        json!({"key": key, "upload_id": upload_id, "session": session, "first": 1, "last": 2});
    for path in ["/multipart/sign", "/routes/avatar/multipart/sign"] {
        let (status, e) = h.post(Some("alice"), path, sign.clone()).await;
        assert_eq!(
            (status, e["error"].as_str()),
            (403, Some("not_your_upload")),
            "{path}"
        );
    }
    let (status, _) = h
        .post(Some("alice"), "/routes/document/multipart/sign", sign)
        .await;
    assert_eq!(status, 200);
    // Another owner on the right route: refused too.
    let abort = json!({"key": key, "upload_id": upload_id, "session": session});
    let (status, _) = h
        .post(Some("mallory"), "/routes/document/multipart/abort", abort)
        .await;
    assert_eq!(status, 403);

    // Upload both parts and complete: the object carries the route's
    // metadata given at CreateMultipartUpload.
    let mut done = Vec::new();
    for p in &parts {
        let len = if p.part_number == 1 { 5 * MIB } else { MIB };
        let r = send(&h.http, &p.request, None, vec![b'%'; len as usize]).await;
        assert_eq!(r, 200);
    }
    for p in
        h.mp.list_parts(&ObjectKey::new(&key).unwrap(), &upload_id)
            .await
            .unwrap()
    {
        done.push(json!({"part_number": p.part_number, "etag": p.etag}));
    }
    let complete = json!({"key": key, "upload_id": upload_id, "session": session, "parts": done});
    let (status, e) = h
        .post(
            Some("alice"),
            "/routes/avatar/multipart/complete",
            complete.clone(),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_your_upload"))
    );
    let (status, c) = h
        .post(
            Some("alice"),
            "/routes/document/multipart/complete",
            complete,
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["size"], json!(6 * MIB));
    assert_eq!(
        h.metadata(&key).await,
        meta(&[("upload-owner", "alice"), ("upload-route", "document")])
    );

    // Uppy's contract: a document session, refused on the avatar route
    // and at the top level, in both directions.
    let (status, c) = h
        .post(
            Some("alice"),
            "/routes/document/s3/multipart",
            json!({"type": "application/pdf", "filename": "a.pdf", "metadata": {"size": 6 * MIB}}),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    let (ukey, uid) = (c["key"].as_str().unwrap(), c["uploadId"].as_str().unwrap());
    assert!(ukey.starts_with("documents/alice/"));
    let enc = |s: &str| s.replace('~', "%7E");
    for prefix in ["", "/routes/avatar"] {
        let (status, e) = h
            .get(
                "alice",
                &format!("{prefix}/s3/multipart/{}/1?key={ukey}", enc(uid)),
            )
            .await;
        assert_eq!(
            (status, e["error"].as_str()),
            (403, Some("not_your_upload")),
            "{prefix}"
        );
    }
    let (status, s) = h
        .get(
            "alice",
            &format!("/routes/document/s3/multipart/{}/1?key={ukey}", enc(uid)),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    let info =
        h.mp.list_multipart_uploads("documents/alice/")
            .await
            .unwrap();
    assert_eq!(info.len(), 1, "only the Uppy session is still open");
    // An avatar key is not a document key either.
    let (akey, _) = h
        .put_ticket(
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
    let (status, e) = h
        .get(
            "alice",
            &format!("/routes/document/uploads/status?key={akey}"),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_your_upload"))
    );
    let (status, _) = h
        .get(
            "alice",
            &format!("/routes/avatar/uploads/status?key={akey}"),
        )
        .await;
    assert_eq!(status, 202, "pending until the worker writes its manifest");
}

#[test]
fn routes_that_would_share_keys_are_refused_at_configuration() {
    let policy = UploadPolicy::images_and_pdf(MIB).unwrap();
    let route = |name: &str, prefix: &str| {
        UploadRoute::new(name, policy.clone())
            .unwrap()
            .with_key_prefix(prefix)
            .unwrap()
    };
    let config = ServerConfig::new(policy.clone());
    assert_eq!(
        config
            .clone()
            .with_route(route("default", "x"))
            .unwrap_err(),
        RouteError::DuplicateName("default".into())
    );
    assert_eq!(
        config
            .clone()
            .with_route(route("legacy", "uploads/legacy"))
            .unwrap_err(),
        RouteError::OverlappingPrefixes("uploads".into(), "uploads/legacy".into())
    );
    let config = config.with_route(route("a", "media/a")).unwrap();
    assert_eq!(
        config.clone().with_route(route("b", "media")).unwrap_err(),
        RouteError::OverlappingPrefixes("media/a".into(), "media".into())
    );
    let config = config.with_route(route("b", "media/b")).unwrap();
    assert_eq!(
        config
            .routes()
            .iter()
            .map(UploadRoute::name)
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_can_wait_for_the_outcome() {
    use upload_pipeline::manifest::{Manifest, SourceObject, manifest_key};
    let h = harness().await;
    let (key, _) = h
        .put_ticket(
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
    let path = format!("/routes/avatar/uploads/status?key={key}&wait=10");
    // The manifest appears while the request waits: one request answers.
    let writer = {
        let storage = h.storage.clone();
        let key = ObjectKey::new(&key).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let mut m = Manifest::new(
                SourceObject {
                    bucket: "uploads".into(),
                    key: key.clone(),
                    etag: "abc".into(),
                    size: 4,
                    sniffed: Some("image/png".into()),
                    version_id: None,
                    sequencer: None,
                },
                upload_pipeline::Outcome::Clean,
            );
            m.upload.route = Some("avatar".into());
            storage
                .put(
                    &manifest_key(&key).unwrap(),
                    serde_json::to_vec(&m).unwrap().into(),
                    Default::default(),
                )
                .await
                .unwrap();
        })
    };
    let (status, got) = h.get("alice", &path).await;
    writer.await.unwrap();
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["state"], "processed");
    assert_eq!(got["manifest"]["route"], "avatar");
    assert_eq!(got["manifest"]["source"]["key"], json!(key));

    // Nothing written: 202 pending once the wait is over.
    let (other, _) = h
        .put_ticket(
            "/routes/avatar/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
    let (status, got) = h
        .get(
            "alice",
            &format!("/routes/avatar/uploads/status?key={other}&wait=1"),
        )
        .await;
    assert_eq!((status, got["state"].as_str()), (202, Some("pending")));
    // At most 8 waits per owner at once (the default): the ninth is 429,
    // another owner is not affected, and slots come back.
    let waits: Vec<_> = (0..8)
        .map(|_| {
            let (http, url) = (
                h.http.clone(),
                format!("{}/routes/avatar/uploads/status?key={other}&wait=2", h.api),
            );
            tokio::spawn(async move {
                http.get(url)
                    .header("x-owner", "alice")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, got) = h
        .get(
            "alice",
            &format!("/routes/avatar/uploads/status?key={other}&wait=1"),
        )
        .await;
    assert_eq!(
        (status, got["error"].as_str()),
        (429, Some("too_many_waits"))
    );
    let (status, _) = h
        .get(
            "alice",
            &format!("/routes/avatar/uploads/status?key={other}"),
        )
        .await;
    assert_eq!(status, 202, "without wait it answers at once");
    for w in waits {
        assert_eq!(w.await.unwrap(), 202);
    }
    let (status, _) = h
        .get(
            "alice",
            &format!("/routes/avatar/uploads/status?key={other}&wait=1"),
        )
        .await;
    assert_eq!(status, 202, "the slots came back");
    // A wait past the bound is refused; another owner waits for nothing.
    let (status, got) = h
        .get(
            "alice",
            &format!("/routes/avatar/uploads/status?key={other}&wait=31"),
        )
        .await;
    assert_eq!((status, got["error"].as_str()), (400, Some("bad_request")));
    let (status, got) = h
        .get(
            "bob",
            &format!("/routes/avatar/uploads/status?key={key}&wait=5"),
        )
        .await;
    assert_eq!(
        (status, got["error"].as_str()),
        (403, Some("not_your_upload"))
    );
}
