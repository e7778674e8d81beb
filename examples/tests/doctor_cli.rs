//! The `upload-doctor` binary on moto and the test clamd: a deployment made
//! by `upload-setup` passes (exit 0), the same deployment checked against
//! another origin and prefix fails those checks (exit 1, the fix under
//! each), `--json` and `--print-iam` print JSON.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto and
//! clamd and sets `UPLOAD_SDK_MOTO_ENDPOINT` and `UPLOAD_SDK_CLAMD_TCP`.
//! Without them they fail, never skip.

use std::process::{Command, Output};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts moto and clamd")
    })
}

fn bin(path: &str, endpoint: &str, args: &[&str]) -> Output {
    Command::new(path)
        .args(["--endpoint-url", endpoint, "--region", "us-east-1"])
        .args(args)
        // moto accepts any credentials; these keep the AWS chain off the
        // developer's own profile.
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("UPLOAD_QUEUE_URL")
        .env_remove("UPLOAD_CLAMD")
        .output()
        .expect("the binary runs")
}

#[test]
#[ignore = "needs moto and clamd: run scripts/test.sh"]
fn upload_doctor_checks_what_upload_setup_made() {
    let endpoint = env("UPLOAD_SDK_MOTO_ENDPOINT");
    let clamd = env("UPLOAD_SDK_CLAMD_TCP");
    let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (up, done, queue) = (
        format!("cli-doc-up-{run}"),
        format!("cli-doc-done-{run}"),
        format!("cli-doc-events-{run}"),
    );
    let setup = bin(
        env!("CARGO_BIN_EXE_upload-setup"),
        &endpoint,
        &[
            "--uploads-bucket",
            &up,
            "--processed-bucket",
            &done,
            "--queue-name",
            &queue,
            "--cors-origin",
            "http://app.example.test",
            "--versioning",
            "--worker-principal-arn",
            "arn:aws:iam::123456789012:role/upload-worker",
        ],
    );
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let doctor = env!("CARGO_BIN_EXE_upload-doctor");
    let common = [
        "--uploads-bucket",
        up.as_str(),
        "--processed-bucket",
        done.as_str(),
        "--queue",
        queue.as_str(),
        "--clamd",
        clamd.as_str(),
        "--probe-timeout",
        "10",
    ];
    let ok = bin(
        doctor,
        &endpoint,
        &[&common[..], &["--app-origin", "http://app.example.test"]].concat(),
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 13, "{text}");
    for (i, name) in [
        "buckets",
        "queue",
        "cors",
        "lifecycle",
        "versioning",
        "deny-unscanned-reads",
        "queue-redrive",
        "queue-policy",
        "bucket-notifications",
        "notification-round-trip",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            lines[i].starts_with(&format!("[PASS] {name}: ")),
            "{}",
            lines[i]
        );
    }
    // The test clamd has no official database: a warning, with its fix.
    assert!(
        lines[10].starts_with("[WARN] clamd: clamd answers (ClamAV "),
        "{}",
        lines[10]
    );
    assert!(
        lines[11].starts_with("       fix: update the signatures"),
        "{}",
        lines[11]
    );
    assert_eq!(lines[12], "10 passed, 1 warning, 0 failed, 0 skipped");

    // Another origin and prefix: CORS and the notifications fail.
    let bad_args = [
        &common[..],
        &[
            "--app-origin",
            "http://other.example.test",
            "--prefix",
            "other/",
            "--json",
        ],
    ]
    .concat();
    let bad = bin(doctor, &endpoint, &bad_args);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&bad.stdout).expect("--json prints JSON");
    assert_eq!(report["passed"], false);
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| {
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["fix"].is_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(status("cors"), ("fail".into(), true));
    assert_eq!(status("bucket-notifications"), ("fail".into(), true));
    assert_eq!(status("notification-round-trip"), ("skipped".into(), false));
    assert_eq!(status("lifecycle"), ("pass".into(), false));

    let iam = bin(doctor, &endpoint, &[&common[..], &["--print-iam"]].concat());
    assert!(
        iam.status.success(),
        "{}",
        String::from_utf8_lossy(&iam.stderr)
    );
    let iam: serde_json::Value = serde_json::from_slice(&iam.stdout).expect("JSON");
    assert_eq!(
        iam["api_role"]["Statement"][0]["Resource"],
        format!("arn:aws:s3:::{up}/uploads/*")
    );
    assert_eq!(
        iam["worker_role"]["Statement"][4]["Resource"],
        format!("arn:aws:sqs:us-east-1:123456789012:{queue}")
    );
}
