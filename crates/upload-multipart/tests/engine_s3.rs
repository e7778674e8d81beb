//! The client engine against moto's S3 through `S3Storage`: a killed
//! upload resumed from its state file and ListParts, then the sweeper.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto, sets
//! `UPLOAD_SDK_MOTO_ENDPOINT` and runs it. Without it the test fails, never
//! skips.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{MultipartStore, ObjectKey, PutOptions, Storage};
use upload_multipart::{MultipartUploader, ResumeState, UploadOptions, abort_stale_uploads};

const MIB: usize = 1024 * 1024;

async fn moto_bucket() -> S3Storage {
    let endpoint = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT")
        .expect("UPLOAD_SDK_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let name = format!(
        "engine-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let s = S3Storage::new(AwsSettings::local(endpoint).s3_client(&sdk), name).unwrap();
    s.create_bucket().await.expect("create bucket on moto");
    s
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn killed_upload_resumes_on_moto_and_the_sweeper_aborts_leftovers() {
    let s3 = Arc::new(moto_bucket().await);
    let data: Vec<u8> = (0..17 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let key = ObjectKey::new("uploads/engine/big.bin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let options = UploadOptions::default()
        .with_part_size(5 * MIB as u64)
        .with_concurrency(1)
        .with_put_options(PutOptions::default().with_content_type("application/octet-stream"));

    let uploader = MultipartUploader::new(s3.clone(), options.clone());
    common::interrupt_after(&uploader, &key, &data, &state, 2).await;
    let saved = ResumeState::load(&state).unwrap();
    assert_eq!(saved.parts.len(), 2);
    let listed = s3.list_parts(&key, &saved.upload_id).await.unwrap();
    assert_eq!(listed.len(), 2, "moto holds the two parts");

    let mut sent_by_resume = 0;
    let meta = MultipartUploader::new(s3.clone(), options.with_concurrency(4))
        .upload(
            &key,
            &data[..],
            data.len() as u64,
            Some(&state),
            |p| sent_by_resume = p.bytes_sent,
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(
        sent_by_resume,
        (data.len() - 10 * MIB) as u64,
        "parts 3 and 4 only"
    );
    assert!(meta.etag.ends_with("-4"), "{}", meta.etag);
    assert_eq!(s3.get(&key).await.unwrap().body.as_ref(), &data[..]);
    assert!(!state.exists());

    // An abandoned upload; the sweeper aborts it (moto dates every upload
    // 2010, so "older than a day" holds).
    let left = ObjectKey::new("uploads/engine/abandoned.bin").unwrap();
    let id = s3
        .create_multipart_upload(&left, PutOptions::default())
        .await
        .unwrap();
    let r = abort_stale_uploads(
        s3.as_ref(),
        "uploads/",
        Duration::from_secs(86_400),
        SystemTime::now(),
    )
    .await
    .unwrap();
    let aborted: Vec<_> = r.aborted.iter().map(|u| u.upload_id.as_str()).collect();
    assert_eq!(aborted, [id.as_str()]);
    assert!(
        s3.list_multipart_uploads("uploads/")
            .await
            .unwrap()
            .is_empty()
    );
}
