//! The local mode's restart test (issue 20): the real `upload-dev` binary
//! as a child process, killed with SIGKILL mid-upload and started again on
//! the same `--data`. The multipart upload resumes with the same upload ID
//! (ListParts shows the part stored before the kill; part URLs presigned
//! before it still work), and an upload whose event was still in the
//! queue when the process died is processed after the restart.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../samples/photos/derived_bythewater_orient6.jpg"
);

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Dev {
    child: Child,
    api: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `upload-dev` and waits (up to 60 s) for its first stdout line.
fn start(data: &Path, api: SocketAddr, endpoint: SocketAddr, worker: bool) -> Dev {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upload-dev"));
    cmd.arg("--data")
        .arg(data)
        .args(["--listen", &api.to_string()])
        .args(["--endpoint-listen", &endpoint.to_string()])
        .args(["--multipart-threshold", &(5 * MIB).to_string()])
        .args(["--part-size", &(5 * MIB).to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !worker {
        cmd.arg("--no-worker");
    }
    let mut child = cmd.spawn().expect("upload-dev starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("upload-dev prints its URLs");
    let urls: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(
        urls["endpoint"].as_str().unwrap().trim_end_matches('/'),
        format!("http://{endpoint}")
    );
    Dev {
        child,
        api: urls["api"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned(),
    }
}

async fn api(dev: &Dev, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", dev.api);
    let mut r = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    }
    .header("x-owner", "alice");
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("the API answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sends a presigned PUT: (status, ETag without quotes).
async fn put(req: &Value, body: Vec<u8>) -> (u16, String) {
    let mut r = reqwest::Client::new().put(req["url"].as_str().unwrap());
    for h in req["headers"].as_array().unwrap() {
        r = r.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
    }
    let res = r.body(body).send().await.expect("the endpoint answers");
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().trim_matches('"').to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), etag)
}

async fn wait_processed(dev: &Dev, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = api(
            dev,
            "GET",
            &format!("/uploads/status?key={key}&wait=10"),
            None,
        )
        .await;
        if status == 200 {
            return body;
        }
        assert_eq!(status, 202, "{body}");
        assert!(Instant::now() < deadline, "{key} not processed in time");
    }
}

fn pdf_part(n: usize, len: usize) -> Vec<u8> {
    let mut b = vec![b'0' + n as u8; len];
    if n == 1 {
        b[..9].copy_from_slice(b"%PDF-1.4\n");
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_then_restart_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (api_addr, endpoint_addr) = (free_port(), free_port());
    // First run without the worker: events stay in the queue file.
    let mut dev = start(data.path(), api_addr, endpoint_addr, false);

    let photo = std::fs::read(PHOTO).unwrap();
    let (s, t) = api(
        &dev,
        "POST",
        "/uploads",
        Some(json!({"content_type": "image/jpeg", "size": photo.len()})),
    )
    .await;
    assert_eq!((s, t["kind"].as_str()), (200, Some("put")), "{t}");
    let photo_key = t["key"].as_str().unwrap().to_owned();
    assert_eq!(put(&t["request"], photo).await.0, 200);

    let size = 11 * MIB;
    let (s, mp) = api(
        &dev,
        "POST",
        "/uploads",
        Some(json!({"content_type": "application/pdf", "size": size})),
    )
    .await;
    assert_eq!((s, mp["kind"].as_str()), (200, Some("multipart")), "{mp}");
    assert_eq!(mp["part_count"], 3);
    let key = mp["key"].as_str().unwrap().to_owned();
    let (s, etag1) = put(&mp["parts"][0]["request"], pdf_part(1, 5 * MIB)).await;
    assert_eq!(s, 200);

    // kill -9: no shutdown, no flush beyond what was committed.
    dev.child.kill().unwrap();
    let status = dev.child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
    drop(dev);

    let dev = start(data.path(), api_addr, endpoint_addr, true);
    // The demo page beside the API.
    let page = reqwest::get(format!("{}/", dev.api)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let parts_q = format!(
        "/multipart/parts?key={key}&upload_id={}&session={}",
        mp["upload_id"].as_str().unwrap(),
        mp["session"].as_str().unwrap()
    );
    let (s, page) = api(&dev, "GET", &parts_q, None).await;
    assert_eq!(s, 200, "the session token outlives the restart: {page}");
    let listed = page["parts"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["part_number"], 1);
    assert_eq!(listed[0]["etag"].as_str().unwrap().trim_matches('"'), etag1);
    assert_eq!(listed[0]["size"], 5 * MIB);

    // The URLs presigned before the kill still work: same keys, same
    // endpoint address.
    let (s2, etag2) = put(&mp["parts"][1]["request"], pdf_part(2, 5 * MIB)).await;
    let (s3, etag3) = put(&mp["parts"][2]["request"], pdf_part(3, MIB)).await;
    assert_eq!((s2, s3), (200, 200));
    let (s, done) = api(
        &dev,
        "POST",
        "/multipart/complete",
        Some(json!({
            "key": key, "upload_id": mp["upload_id"], "session": mp["session"],
            "parts": [
                {"part_number": 1, "etag": etag1},
                {"part_number": 2, "etag": etag2},
                {"part_number": 3, "etag": etag3},
            ],
        })),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["size"], size);
    let on_disk = std::fs::read(data.path().join("buckets/uploads").join(&key)).unwrap();
    assert_eq!(on_disk.len(), size);
    assert_eq!(&on_disk[..9], b"%PDF-1.4\n");
    assert_eq!(on_disk[size - 1], b'3');

    // The worker processes the completed upload ...
    let got = wait_processed(&dev, &key).await;
    assert_eq!(got["manifest"]["verdict"], "clean", "{got}");
    assert_eq!(got["manifest"]["source"]["size"], size);
    // ... and the photo whose event waited in the queue through the kill.
    let got = wait_processed(&dev, &photo_key).await;
    assert_eq!(got["manifest"]["verdict"], "clean", "{got}");
    assert!(!got["manifest"]["variants"].as_array().unwrap().is_empty());
    let variant = reqwest::get(got["variant_urls"][0][1].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(variant.status().as_u16(), 200);

    // SIGTERM (as Ctrl-C): a clean stop, exit code 0.
    let mut dev = dev;
    let pid = dev.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = dev.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "upload-dev did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
}
