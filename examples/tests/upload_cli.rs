//! The `upload` binary against moto: a presigned single PUT, a multipart
//! upload, and an interrupted multipart upload resumed with `--resume`.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto, sets
//! `UPLOAD_SDK_MOTO_ENDPOINT` and runs it. Without it the test fails,
//! never skips.

use std::process::Command;
use std::sync::Arc;

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{ObjectKey, Storage};
use upload_multipart::{Error, MultipartUploader, UploadOptions, state_file_for};

const MIB: usize = 1024 * 1024;

fn endpoint() -> String {
    std::env::var("UPLOAD_SDK_MOTO_ENDPOINT")
        .expect("UPLOAD_SDK_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto")
}

async fn bucket() -> S3Storage {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let name = format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let s = S3Storage::new(AwsSettings::local(endpoint()).s3_client(&sdk), name).unwrap();
    s.create_bucket().await.unwrap();
    s
}

/// Runs `upload` with `args`; returns (exit code, stdout JSON or Null, stderr).
fn upload(bucket: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_upload"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .args(["--endpoint-url", &endpoint(), "--region", "us-east-1"])
        .args(["--bucket", bucket, "--quiet"])
        .args(args)
        .output()
        .expect("upload runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7) as u8).wrapping_add(seed))
        .collect()
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn upload_cli_puts_small_files_and_parts_large_ones_resumably() {
    let s3 = Arc::new(bucket().await);
    let b = Storage::bucket(s3.as_ref()).to_owned();
    let dir = tempfile::tempdir().unwrap();

    // Below the threshold: one presigned PUT, content type from the name.
    let small = dir.path().join("photo.jpg");
    let small_bytes = bytes(300_000, 1);
    std::fs::write(&small, &small_bytes).unwrap();
    let (code, out, err) = upload(&b, &[small.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["upload"], "put", "{out}");
    assert_eq!(out["key"], "photo.jpg");
    let got = s3.get(&ObjectKey::new("photo.jpg").unwrap()).await.unwrap();
    assert_eq!(got.body.as_ref(), &small_bytes[..]);
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(out["etag"], got.meta.etag.as_str());

    // Above it: multipart, 5 MiB parts.
    let large = dir.path().join("backup.bin");
    let large_bytes = bytes(11 * MIB + 7, 2);
    std::fs::write(&large, &large_bytes).unwrap();
    let mp = [
        "--multipart-threshold",
        "5242880",
        "--part-size",
        "5242880",
        "--key",
        "backups/backup.bin",
    ];
    let (code, out, err) = upload(&b, &[&mp[..], &[large.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (out["upload"].as_str(), out["parts"].as_u64()),
        (Some("multipart"), Some(3)),
        "{out}"
    );
    let k = ObjectKey::new("backups/backup.bin").unwrap();
    assert_eq!(s3.get(&k).await.unwrap().body.as_ref(), &large_bytes[..]);

    // Interrupted after one part (as a killed run leaves it): refused
    // without --resume, completed with it.
    let resumed = ObjectKey::new("backups/resumed.bin").unwrap();
    let state = state_file_for(&large);
    let stop = Arc::new(tokio::sync::Notify::new());
    let s = stop.clone();
    let err = MultipartUploader::new(
        s3.clone(),
        UploadOptions::default()
            .with_part_size(5 * MIB as u64)
            .with_concurrency(1),
    )
    .upload(
        &resumed,
        &large_bytes[..],
        large_bytes.len() as u64,
        Some(&state),
        move |p| {
            if p.parts_done == 1 {
                s.notify_one();
            }
        },
        stop.notified(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    let mp = [&mp[..4], &["--key", "backups/resumed.bin"]].concat();
    let (code, _, err) = upload(&b, &[&mp[..], &[large.to_str().unwrap()]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("--resume"), "{err}");
    let (code, out, err) = upload(
        &b,
        &[&mp[..], &["--resume", large.to_str().unwrap()]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["parts"], 3, "{out}");
    assert_eq!(
        s3.get(&resumed).await.unwrap().body.as_ref(),
        &large_bytes[..]
    );
    assert!(!state.exists(), "state removed when done");

    // A missing file and a bad key are clear errors.
    let (code, _, err) = upload(&b, &["/nonexistent/file.bin"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/file.bin"), "{err}");
    let (code, _, err) = upload(&b, &["--key", "a//b", small.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("key"), "{err}");
}
