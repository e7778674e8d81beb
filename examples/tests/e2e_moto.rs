//! End to end against real services: moto (S3 + SQS, with S3 → SQS event
//! notifications) and clamd. Runs the three example binaries as a user
//! would: `upload-setup` creates the buckets, queues and wiring,
//! `presign-server` hands out presigned URLs over HTTP, `worker` consumes
//! the queue. The test uploads the bundled photos straight to the bucket
//! through presigned URLs (the 8 MiB one by multipart with parallel parts),
//! an EICAR-carrying JPEG and a PNG declared as JPEG, then checks manifests,
//! variants (fetched through presigned GETs), quarantine, and that every
//! original is untouched.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto and
//! clamd, sets `UPLOAD_SDK_MOTO_ENDPOINT` and `UPLOAD_SDK_CLAMD_TCP`, and
//! runs it. Without them it fails, never skips.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{CompletedPart, ObjectKey, Storage};
use upload_pipeline::Outcome;
use upload_server::{SignedRequest, UploadStatus, UploadTicket};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts moto and clamd")
    })
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
struct Proc(Child, &'static str);

impl Proc {
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..200 {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not stop within 10 s of SIGTERM", self.1);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aws_flags(endpoint: &str) -> Vec<String> {
    vec![
        "--endpoint-url".into(),
        endpoint.into(),
        "--region".into(),
        "us-east-1".into(),
    ]
}

fn bin(name: &str) -> Command {
    let path = match name {
        "upload-setup" => env!("CARGO_BIN_EXE_upload-setup"),
        "presign-server" => env!("CARGO_BIN_EXE_presign-server"),
        "worker" => env!("CARGO_BIN_EXE_worker"),
        "upload-rescan" => env!("CARGO_BIN_EXE_upload-rescan"),
        other => panic!("unknown binary {other}"),
    };
    let mut c = Command::new(path);
    // moto accepts any credentials; these keep the AWS chain off the
    // developer's own profile.
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

async fn send(http: &reqwest::Client, r: &SignedRequest, body: Vec<u8>) -> reqwest::Response {
    assert_eq!(r.method, "PUT");
    let mut req = http.put(&r.url).body(body);
    for (n, v) in &r.headers {
        req = req.header(n, v);
    }
    req.send().await.expect("the store answers")
}

/// Uploads `body` through the server's ticket; returns the key.
async fn upload(
    http: &reqwest::Client,
    server: &str,
    content_type: &str,
    body: &[u8],
    form: &str,
) -> (String, &'static str) {
    let resp = http
        .post(format!("{server}/uploads"))
        .header("x-owner", "user-7")
        .json(&serde_json::json!({
            "content_type": content_type,
            "size": body.len(),
            "form": form,
            "filename": "Été 2024/../photo \"1\".jpg",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    match resp.json::<UploadTicket>().await.unwrap() {
        UploadTicket::Put { key, request, .. } => {
            assert!(key.starts_with("uploads/user-7/"), "{key}");
            let r = send(http, &request, body.to_vec()).await;
            assert_eq!(r.status(), 200, "presigned PUT of {key}");
            (key, "put")
        }
        UploadTicket::Post {
            key, url, fields, ..
        } => {
            assert!(key.starts_with("uploads/user-7/"), "{key}");
            let mut form = reqwest::multipart::Form::new();
            for (n, v) in fields {
                form = form.text(n, v);
            }
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(body.to_vec()).file_name("x.jpg"),
            );
            let r = http
                .post(&url)
                .multipart(form)
                .send()
                .await
                .expect("the store answers");
            let status = r.status();
            assert_eq!(
                status,
                201,
                "presigned POST of {key}: {}",
                r.text().await.unwrap_or_default()
            );
            (key, "post")
        }
        UploadTicket::Multipart {
            key,
            upload_id,
            part_size,
            part_count,
            parts,
            session,
        } => {
            assert_eq!(
                parts.len() as u32,
                part_count,
                "every part URL in the first batch"
            );
            let puts = parts.iter().map(|p| {
                let start = (p.part_number as u64 - 1) * part_size;
                let end = (start + part_size).min(body.len() as u64);
                let chunk = body[start as usize..end as usize].to_vec();
                async move {
                    let r = send(http, &p.request, chunk).await;
                    assert_eq!(r.status(), 200, "part {}", p.part_number);
                    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
                    CompletedPart {
                        part_number: p.part_number,
                        etag,
                        checksum: None,
                    }
                }
            });
            let done: Vec<CompletedPart> = futures::future::join_all(puts).await;
            let resp = http
                .post(format!("{server}/multipart/complete"))
                .header("x-owner", "user-7")
                .json(&serde_json::json!({"key": key, "upload_id": upload_id, "session": session, "parts": done}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                200,
                "{}",
                resp.text().await.unwrap_or_default()
            );
            (key, "multipart")
        }
    }
}

async fn wait_processed(
    http: &reqwest::Client,
    server: &str,
    key: &str,
) -> (upload_pipeline::Manifest, Vec<(String, String)>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let resp = http
            .get(format!("{server}/uploads/status"))
            .query(&[("key", key)])
            .header("x-owner", "user-7")
            .send()
            .await
            .unwrap();
        match resp.json::<UploadStatus>().await.unwrap() {
            UploadStatus::Processed {
                manifest,
                variant_urls,
            } => return (*manifest, variant_urls),
            UploadStatus::Pending => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{key} not processed within 90 s"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and clamd: run scripts/test.sh"]
async fn photos_flow_from_presigned_upload_to_variants_through_moto_and_clamd() {
    let endpoint = env("UPLOAD_SDK_MOTO_ENDPOINT");
    let clamd = env("UPLOAD_SDK_CLAMD_TCP");
    let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (uploads_bucket, processed_bucket) =
        (format!("e2e-uploads-{run}"), format!("e2e-processed-{run}"));

    // 1. Setup: buckets, queue + DLQ, notifications, CORS, lifecycle,
    // bucket policy. Without the worker's ARN the deny-unscanned-reads
    // policy (on by default) would lock the worker out: refused.
    let setup_args = |extra: &[&str]| {
        let mut cmd = bin("upload-setup");
        cmd.args(aws_flags(&endpoint))
            .args([
                "--uploads-bucket",
                &uploads_bucket,
                "--processed-bucket",
                &processed_bucket,
            ])
            .args([
                "--queue-name",
                &format!("e2e-{run}"),
                "--cors-origin",
                "http://127.0.0.1:8080",
            ])
            .args(extra);
        cmd
    };
    let refused = setup_args(&[]).output().expect("upload-setup runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--worker-principal-arn"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // moto 5.1 evaluates bucket policies without their conditions (the
    // deny-unscanned-reads statement then refuses even ListParts), so on
    // moto the policy is opted out of; its document is tested in
    // `upload_pipeline::deploy::tests`.
    let out = setup_args(&["--allow-unscanned-reads"])
        .output()
        .expect("upload-setup runs");
    assert!(
        out.status.success(),
        "upload-setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON from upload-setup");
    let queue_url = setup["queue_url"].as_str().unwrap().to_owned();
    assert!(
        setup["dead_letter_queue_url"]
            .as_str()
            .unwrap()
            .ends_with("-dlq")
    );

    // 2. The presign server, on a port of its choosing.
    let mut server = Proc(
        bin("presign-server")
            .args(aws_flags(&endpoint))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--uploads-bucket",
                &uploads_bucket,
                "--processed-bucket",
                &processed_bucket,
            ])
            .args([
                "--multipart-threshold",
                &(8 * 1024 * 1024).to_string(),
                "--part-size",
                &(5 * 1024 * 1024).to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("presign-server starts"),
        "presign-server",
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let listening: serde_json::Value =
        serde_json::from_str(&first).expect("first line names the address");
    let api = listening["listening"].as_str().unwrap().to_owned();

    // 3. The worker, with its health endpoint.
    let health_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let mut worker = Proc(
        bin("worker")
            .args(aws_flags(&endpoint))
            .args([
                "--queue-url",
                &queue_url,
                "--uploads-bucket",
                &uploads_bucket,
                "--processed-bucket",
                &processed_bucket,
            ])
            .args(["--clamd", &clamd, "--wait-seconds", "1"])
            .args([
                "--health-addr",
                &health_addr,
                "--visibility-timeout-seconds",
                "30",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("worker starts"),
        "worker",
    );

    let http = reqwest::Client::new();
    // A disallowed type never gets a URL.
    let resp = http
        .post(format!("{api}/uploads"))
        .json(&serde_json::json!({"content_type": "text/html", "size": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    // Bad requests get JSON errors, never a 5xx.
    for (body, status) in [
        ("{not json", 400),
        (r#"{"content_type":"image/jpeg","size":0}"#, 400),
        (r#"{"content_type":"image/jpeg","size":-1}"#, 400),
        (r#"{"content_type":"image/jpeg","size":10,"extra":1}"#, 400),
    ] {
        let resp = http
            .post(format!("{api}/uploads"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{body}");
        let err: serde_json::Value = resp.json().await.expect("a JSON error body");
        assert!(
            err["error"].is_string() && err["message"].is_string(),
            "{err}"
        );
    }
    // Another owner's upload ID, or a made-up session, is refused.
    let resp = http
        .post(format!("{api}/multipart/abort"))
        .header("x-owner", "user-7")
        .json(&serde_json::json!({"key": "uploads/user-7/x.jpg", "upload_id": "someone-elses", "session": "1.5242880.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/photos");
    let mut uploaded = Vec::new();
    for (name, ct, form) in [
        ("derived_bythewater_orient6.jpg", "image/jpeg", "put"),
        ("photo_colorfulcups_2560x1600_gps.jpg", "image/jpeg", "post"),
        (
            "photo_elephants_3840x2160_progressive.jpg",
            "image/jpeg",
            "put",
        ),
        ("transparent.png", "image/png", "put"),
        ("exiftool_PDF.pdf", "application/pdf", "put"),
    ] {
        let body = std::fs::read(photos.join(name)).unwrap();
        let (key, how) = upload(&http, &api, ct, &body, form).await;
        uploaded.push((name, key, how, body));
    }
    let kinds: Vec<&str> = uploaded.iter().map(|u| u.2).collect();
    assert_eq!(
        kinds,
        ["put", "post", "multipart", "put", "put"],
        "the 8.1 MiB photo goes multipart"
    );
    // The EICAR file declared as a JPEG: refused by type *and* infected;
    // scanned all the same, so it ends in quarantine as infected.
    let infected_body = upload_scan::eicar().to_vec();
    let (infected_key, _) = upload(&http, &api, "image/jpeg", &infected_body, "put").await;
    let png = std::fs::read(photos.join("transparent.png")).unwrap();
    let (spoofed_key, _) = upload(&http, &api, "image/jpeg", &png, "post").await;

    // 4. What the worker made of it.
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let s3 = AwsSettings::local(&endpoint).s3_client(&sdk);
    let uploads = S3Storage::new(s3.clone(), &uploads_bucket).unwrap();
    let processed = S3Storage::new(s3, &processed_bucket).unwrap();
    assert_eq!(
        uploads.bucket_policy().await.unwrap(),
        None,
        "--allow-unscanned-reads applies no policy"
    );
    for (name, key, _, body) in &uploaded {
        let (manifest, urls) = wait_processed(&http, &api, key).await;
        assert_eq!(manifest.verdict, Outcome::Clean, "{name}: {manifest:?}");
        let original = uploads
            .get(&ObjectKey::new(key.as_str()).unwrap())
            .await
            .unwrap();
        assert_eq!(&original.body[..], &body[..], "{name}: original untouched");
        assert_eq!(
            manifest.source.etag, original.meta.etag,
            "{name}: manifest names the processed version"
        );
        if name.ends_with(".pdf") {
            assert!(manifest.variants.is_empty(), "no variants of a PDF");
            continue;
        }
        let names: Vec<&str> = manifest.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["thumb", "medium"], "{name}");
        assert_eq!(urls.len(), 2);
        for ((vname, url), v) in urls.iter().zip(&manifest.variants) {
            let got = http.get(url).send().await.unwrap();
            assert_eq!(got.status(), 200, "{name} {vname} by presigned GET");
            let bytes = got.bytes().await.unwrap();
            assert_eq!(bytes.len() as u64, v.bytes);
            assert!(
                bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP",
                "{name} {vname} is WebP"
            );
            assert!(v.width <= 1024 && v.height <= 1024);
            let stored = processed.head(&v.key).await.unwrap();
            assert_eq!(stored.content_type.as_deref(), Some("image/webp"));
        }
    }
    let (manifest, _) = wait_processed(&http, &api, &infected_key).await;
    assert_eq!(manifest.verdict, Outcome::Infected, "{manifest:?}");
    assert!(
        manifest
            .signature
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("eicar"),
        "{manifest:?}"
    );
    assert_eq!(
        manifest.reason.as_deref(),
        Some("content type not recognised from magic bytes"),
        "the type check's refusal kept beside the verdict"
    );
    let q = manifest.quarantine.expect("quarantine location");
    assert!(q.key.as_str().starts_with("quarantine/"), "{q:?}");
    assert!(
        matches!(
            uploads
                .head(&ObjectKey::new(infected_key.as_str()).unwrap())
                .await,
            Err(upload_core::Error::NotFound { .. })
        ),
        "the infected original left the uploads prefix"
    );
    assert_eq!(
        &uploads.get(&q.key).await.unwrap().body[..],
        &infected_body[..],
        "quarantined bytes intact"
    );
    let (manifest, _) = wait_processed(&http, &api, &spoofed_key).await;
    assert_eq!(
        manifest.verdict,
        Outcome::Rejected,
        "PNG bytes declared as JPEG: {manifest:?}"
    );
    assert_eq!(
        &uploads
            .get(&ObjectKey::new(spoofed_key.as_str()).unwrap())
            .await
            .unwrap()
            .body[..],
        &png[..]
    );

    // The worker's probes: live, ready, with its counts.
    for probe in ["healthz", "readyz"] {
        let resp = http
            .get(format!("http://{health_addr}/{probe}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{probe}");
        let h: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(h["ready"], true, "{h}");
        assert!(h["stats"]["clean"].as_u64().unwrap() >= 5, "{h}");
    }

    // 5. Both services stop cleanly on SIGTERM; the worker reports its work.
    let mut stdout = worker.0.stdout.take().unwrap();
    assert!(worker.terminate().success(), "worker exits 0 on SIGTERM");
    let mut summary = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut summary).unwrap();
    let stats: serde_json::Value = serde_json::from_str(summary.trim()).expect("JSON summary");
    assert!(stats["clean"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["infected"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["failed"], 0, "{stats}");
    assert!(
        server.terminate().success(),
        "presign-server exits 0 on SIGTERM"
    );

    // 6. A rescan, as after a signature update (every recorded database
    // counts as older than the largest number): each clean upload is
    // scanned again through clamd and stays clean; nothing else changes.
    let out = bin("upload-rescan")
        .args(aws_flags(&endpoint))
        .args([
            "--uploads-bucket",
            &uploads_bucket,
            "--processed-bucket",
            &processed_bucket,
            "--clamd",
            &clamd,
            "--older-than-database",
            &u64::MAX.to_string(),
            "--window-days",
            "1",
            "--concurrency",
            "2",
        ])
        .output()
        .expect("upload-rescan runs");
    assert!(
        out.status.success(),
        "upload-rescan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(report["rescanned"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["still_clean"], report["rescanned"], "{report}");
    assert!(
        report["examined"].as_u64().unwrap() > report["rescanned"].as_u64().unwrap(),
        "infected and rejected uploads are examined, not rescanned: {report}"
    );
    assert_eq!(report["newly_infected"], 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["complete"], true, "{report}");
}
