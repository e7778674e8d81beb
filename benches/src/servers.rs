//! The local servers some benchmarks need: moto (S3 + SQS, Python) and
//! s3s-fs (S3 on a folder, verifies signatures), clamd, and nats-server
//! with JetStream.
//!
//! Each is taken from the environment when `scripts/test.sh`'s variables
//! name a running one (`UPLOAD_SDK_MOTO_ENDPOINT`, `UPLOAD_SDK_S3S_ENDPOINT`
//! with `UPLOAD_SDK_S3S_ACCESS_KEY` / `UPLOAD_SDK_S3S_SECRET_KEY`,
//! `UPLOAD_SDK_CLAMD_TCP`, `UPLOAD_SDK_NATS_URL`), else started on a free port of 127.0.0.1 with
//! the repository's scripts (`scripts/moto.sh`, `scripts/s3s-fs.sh`,
//! `scripts/clamd.sh`, `scripts/nats.sh`, which install what they need) and stopped when the
//! [`Server`] is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use upload_core::s3::AwsSettings;
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;

/// A running server: where it listens and the credentials it takes.
#[derive(Debug)]
pub struct Server {
    /// `moto`, `s3s-fs`, `clamd` or `nats-server`.
    pub name: &'static str,
    /// `http://127.0.0.1:PORT` for S3 servers, `127.0.0.1:PORT` for clamd,
    /// `nats://127.0.0.1:PORT` for nats-server.
    pub endpoint: String,
    /// Access key ID it accepts (S3 servers).
    pub access_key: String,
    /// Secret access key it accepts (S3 servers).
    pub secret_key: String,
    /// `(script, dir)` to stop it with, when this process started it.
    started: Option<(PathBuf, PathBuf)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((script, dir)) = &self.started {
            let _ = Command::new(script).arg("stop").arg(dir).status();
        }
    }
}

impl Server {
    /// A server this process did not start (dropping it stops nothing).
    pub fn external(
        name: &'static str,
        endpoint: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            name,
            endpoint: endpoint.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            started: None,
        }
    }

    /// An S3 client for this server (region `us-east-1`, path-style).
    pub async fn s3_client(&self) -> upload_core::s3::aws_sdk_s3::Client {
        s3_client(&self.endpoint, &self.access_key, &self.secret_key).await
    }
}

/// An S3 client for `endpoint` with static credentials (region
/// `us-east-1`, path-style, as local servers want).
pub async fn s3_client(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
) -> upload_core::s3::aws_sdk_s3::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            access_key, secret_key, None, None, "bench",
        ))
        .load()
        .await;
    AwsSettings::local(endpoint).s3_client(&sdk)
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn start(name: &'static str, dir: &Path, args: &[&str]) -> Result<(PathBuf, PathBuf, u16), String> {
    let script = scripts().join(format!("{name}.sh"));
    let port = free_port()?;
    eprintln!("starting {name} on 127.0.0.1:{port} (scripts/{name}.sh)");
    let dir_arg = dir.to_str().ok_or("temp dir is not UTF-8")?;
    let port_arg = port.to_string();
    let mut all = vec!["start", dir_arg, &port_arg];
    all.extend_from_slice(args);
    let status = Command::new(&script)
        .args(&all)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!("{} {all:?} failed: {status}", script.display()));
    }
    Ok((script, dir.to_owned(), port))
}

/// moto from `UPLOAD_SDK_MOTO_ENDPOINT`, else started in `tmp/moto`.
///
/// # Errors
/// The script failed (its message names why).
pub fn moto(tmp: &Path) -> Result<Server, String> {
    if let Ok(endpoint) = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT") {
        return Ok(Server {
            name: "moto",
            endpoint,
            access_key: "testing".into(),
            secret_key: "testing".into(),
            started: None,
        });
    }
    let (script, dir, port) = start("moto", &tmp.join("moto"), &[])?;
    Ok(Server {
        name: "moto",
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: "testing".into(),
        secret_key: "testing".into(),
        started: Some((script, dir)),
    })
}

/// s3s-fs from `UPLOAD_SDK_S3S_ENDPOINT` (with its keys), else started in
/// `tmp/s3s-fs`.
///
/// # Errors
/// A key variable missing beside the endpoint, or the script failed.
pub fn s3s_fs(tmp: &Path) -> Result<Server, String> {
    if let Ok(endpoint) = std::env::var("UPLOAD_SDK_S3S_ENDPOINT") {
        return Ok(Server {
            name: "s3s-fs",
            endpoint,
            access_key: std::env::var("UPLOAD_SDK_S3S_ACCESS_KEY")
                .map_err(|_| "UPLOAD_SDK_S3S_ACCESS_KEY is required with the endpoint")?,
            secret_key: std::env::var("UPLOAD_SDK_S3S_SECRET_KEY")
                .map_err(|_| "UPLOAD_SDK_S3S_SECRET_KEY is required with the endpoint")?,
            started: None,
        });
    }
    let (access, secret) = ("BENCHACCESSKEY", "bench-secret-key-0123456789");
    let (script, dir, port) = start("s3s-fs", &tmp.join("s3s-fs"), &[access, secret])?;
    Ok(Server {
        name: "s3s-fs",
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: access.into(),
        secret_key: secret.into(),
        started: Some((script, dir)),
    })
}

/// clamd from `UPLOAD_SDK_CLAMD_TCP` (`host:port`), else started in
/// `tmp/clamd` with a 32 MiB stream limit (the script installs ClamAV and
/// uses only local test signatures: loading takes seconds, not minutes).
///
/// # Errors
/// The script failed.
pub fn clamd(tmp: &Path) -> Result<Server, String> {
    if let Ok(endpoint) = std::env::var("UPLOAD_SDK_CLAMD_TCP") {
        return Ok(Server {
            name: "clamd",
            endpoint,
            access_key: String::new(),
            secret_key: String::new(),
            started: None,
        });
    }
    let (script, dir, port) = start("clamd", &tmp.join("clamd"), &["32M"])?;
    Ok(Server {
        name: "clamd",
        endpoint: format!("127.0.0.1:{port}"),
        access_key: String::new(),
        secret_key: String::new(),
        started: Some((script, dir)),
    })
}

/// nats-server with JetStream from `UPLOAD_SDK_NATS_URL`, else started in
/// `tmp/nats` (the script installs Debian's package when missing).
///
/// # Errors
/// The script failed.
pub fn nats(tmp: &Path) -> Result<Server, String> {
    if let Ok(endpoint) = std::env::var("UPLOAD_SDK_NATS_URL") {
        return Ok(Server::external("nats-server", endpoint, "", ""));
    }
    let (script, dir, port) = start("nats", &tmp.join("nats"), &[])?;
    Ok(Server {
        name: "nats-server",
        endpoint: format!("nats://127.0.0.1:{port}"),
        access_key: String::new(),
        secret_key: String::new(),
        started: Some((script, dir)),
    })
}
