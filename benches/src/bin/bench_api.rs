//! The upload API under load: requests per second per core and p99
//! latency of `POST /routes/avatar/uploads` (a presigned PUT, the request
//! the JS clients send), served by the `upload-server` router with a
//! bearer-token [`Authorizer`] and a named route's policy in the path,
//! against the ceiling of the framework on this machine: the same server
//! answering a fixed JSON from a bare axum handler.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-api [SECONDS_PER_RUN] [ROUNDS]
//! ```
//!
//! Both servers run in this process on one tokio `current_thread` runtime,
//! its thread pinned to the first CPU this process may use, each served by
//! `upload_presign::serve` (HTTP/1.1 with the header-read and body-idle
//! timeouts) on its own 127.0.0.1 port. The API is the real router
//! (`AppState::router`) with in-memory storage, a fixed `Presigner`, an
//! authorizer that looks bearer tokens up in a session table, and the route
//! `avatar` (JPEG, PNG or WebP up to 20 MiB, keys under `avatars/`); each
//! request is authorized, its JSON body parsed and checked against the
//! route's policy, a key picked, and a create-only PUT presigned
//! (`Content-Type`, `Content-Length`, `If-None-Match`, `Content-Disposition`
//! and the route, owner and trace-context metadata signed). The ceiling
//! serves the same path with a handler that returns, as is, the bytes of
//! one answer the API gave.
//!
//! Load comes from `wrk` (Debian's package, installed with apt-get when
//! missing) pinned with `taskset` to the second CPU: one thread, 64
//! keep-alive connections, the same POST (body and headers, from a small
//! Lua script whose `done()` prints the counts and latency percentiles).
//! Before timing, one answer of each server is checked: 200, a `put`
//! ticket whose URL the `Verifier` accepts with the ticket's headers (and
//! 401 without the token). Runs alternate between the API and the ceiling,
//! `SECONDS_PER_RUN` each (default 10) for `ROUNDS` rounds (default 3),
//! after a 2 s warm-up of each; any non-2xx answer or socket error fails
//! the bench.
//!
//! Requests per second per core are the requests a run completed over the
//! CPU time the server thread used during it (its thread clock), so that a
//! busy machine does not count; the wall-clock rate and the server
//! thread's utilization are printed too (with a warning below 90%: other
//! processes shared its core). Latencies are wrk's, from sending a request
//! to its answer. It prints each run and the medians, and ends with one
//! line:
//!
//! ```text
//! RESULT api_requests_per_sec=... api_ratio_vs_ceiling=... api_p99_ms=... ceiling_requests_per_sec=... ceiling_p99_ms=... api_wall_requests_per_sec=... ceiling_wall_requests_per_sec=... api_wall_ratio_vs_ceiling=...
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::thread::JoinHandleExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::routing::post;
use upload_benches::median;
use upload_core::{MemoryStorage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_presign::{Credentials, IncomingRequest, Presigner, ServerTimeouts, Url, Verifier};
use upload_server::http::header::{AUTHORIZATION, CONTENT_TYPE};
use upload_server::http::request::Parts;
use upload_server::{
    AppState, AuthError, Authorizer, Owner, Router, ServerConfig, UploadRoute, UploadTicket,
    async_trait,
};

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ENDPOINT: &str = "https://s3.eu-west-3.amazonaws.com";
const REGION: &str = "eu-west-3";
const BUCKET: &str = "upload-sdk-bench";
/// The route's path: its policy applies.
const PATH: &str = "/routes/avatar/uploads";
/// What a browser sends for a 1 MiB photo.
const BODY: &str = r#"{"content_type":"image/jpeg","size":1048576,"filename":"holiday.jpg"}"#;
/// The bearer token of the user the load is sent as.
const TOKEN: &str = "6f1c2b9e4a7d4e0f8c3b5a1d9e2f7c4b";
const CONNECTIONS: u32 = 64;

/// The app's authentication as a service would bring it: a bearer token
/// looked up in its session table.
struct BearerTokens(HashMap<String, Owner>);

#[async_trait]
impl Authorizer for BearerTokens {
    async fn authorize(&self, parts: &Parts) -> Result<Owner, AuthError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| AuthError::unauthorized("a bearer token is required"))?;
        self.0
            .get(token)
            .cloned()
            .ok_or_else(|| AuthError::unauthorized("unknown or expired token"))
    }
}

/// The upload API with its route `avatar`, a fixed presigner and a session
/// table of 1,000 users.
fn api_router() -> Result<Router, String> {
    let storage = Arc::new(MemoryStorage::new(BUCKET).map_err(|e| e.to_string())?);
    let uploads = Arc::new(MemoryMultipartStore::new(storage.clone()));
    let presigner = Arc::new(
        Presigner::new(
            Url::parse(ENDPOINT).map_err(|e| e.to_string())?,
            REGION,
            Credentials::new(AK, SK),
        )
        .map_err(|e| e.to_string())?,
    );
    let avatar = UploadRoute::new(
        "avatar",
        UploadPolicy::new(["image/jpeg", "image/png", "image/webp"], 20 << 20)
            .map_err(|e| e.to_string())?,
    )
    .and_then(|r| r.with_key_prefix("avatars"))
    .map_err(|e| e.to_string())?;
    let config =
        ServerConfig::new(UploadPolicy::images_and_pdf(64 << 20).map_err(|e| e.to_string())?)
            .with_route(avatar)
            .map_err(|e| e.to_string())?;
    let mut sessions: HashMap<String, Owner> = (0..1000)
        .map(|i| {
            let owner = Owner::new(format!("user-{i}")).expect("valid owner");
            (
                format!("{:032x}", u128::from(i as u32) * 0x9E37_79B9_7F4A_7C15),
                owner,
            )
        })
        .collect();
    sessions.insert(TOKEN.to_owned(), Owner::new("alice").expect("valid owner"));
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads,
        processed: storage,
        processed_presigner: Arc::new(presigner),
        config: Arc::new(config),
        session_secret: Arc::new([7; 32]),
        authorizer: Arc::new(BearerTokens(sessions)),
    };
    Ok(state.router())
}

/// The ceiling: the same path answered by a bare handler with `body`.
fn ceiling_router(body: Arc<OnceLock<Bytes>>) -> Router {
    Router::new().route(
        PATH,
        post(move || {
            let body = body.get().cloned().unwrap_or_default();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        }),
    )
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity only read and write the set they are given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin_to`; sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// CPU time `thread` has used, in seconds.
fn server_cpu_secs(thread: libc::pthread_t) -> f64 {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `thread` is a live thread (the server thread runs until the
    // process exits); both calls only write what they are given.
    let ok = unsafe {
        libc::pthread_getcpuclockid(thread, &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
    };
    if ok {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        f64::NAN
    }
}

struct Servers {
    api: SocketAddr,
    ceiling: SocketAddr,
    /// The answer the ceiling gives, set once the API gave one.
    ceiling_body: Arc<OnceLock<Bytes>>,
    thread: libc::pthread_t,
    /// The server thread, which serves until the process exits.
    _handle: std::thread::JoinHandle<()>,
}

/// Starts both servers on one `current_thread` runtime, on a thread
/// pinned to `cpu`.
fn start_servers(cpu: usize) -> Result<Servers, String> {
    let api = api_router()?;
    let ceiling_body = Arc::new(OnceLock::new());
    let ceiling = ceiling_router(ceiling_body.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("bench-api-server".into())
        .spawn(move || {
            let started = (|| -> Result<_, String> {
                pin_to(cpu).map_err(|e| format!("pinning the server to CPU {cpu}: {e}"))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let listeners = rt.block_on(async {
                    let a = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    let c = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    std::io::Result::Ok((a, c))
                });
                let (a, c) = listeners.map_err(|e| format!("binding 127.0.0.1: {e}"))?;
                let addrs = (
                    a.local_addr().map_err(|e| e.to_string())?,
                    c.local_addr().map_err(|e| e.to_string())?,
                );
                Ok((rt, a, c, addrs))
            })();
            match started {
                Ok((rt, a, c, addrs)) => {
                    let _ = tx.send(Ok(addrs));
                    rt.block_on(async move {
                        let t = ServerTimeouts::default();
                        let never = std::future::pending::<()>;
                        let _ = tokio::join!(
                            upload_presign::serve(a, api, t, never()),
                            upload_presign::serve(c, ceiling, t, never()),
                        );
                    });
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let (api, ceiling) = rx
        .recv()
        .map_err(|_| "the server thread ended".to_owned())??;
    Ok(Servers {
        api,
        ceiling,
        ceiling_body,
        thread: handle.as_pthread_t(),
        _handle: handle,
    })
}

/// One HTTP/1.1 POST of `BODY` to `addr` (with the token, if given), on a
/// connection of its own: the status and the body of the answer.
fn post_once(addr: SocketAddr, token: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("an answer without a header end")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err("a chunked answer (expected Content-Length)".into());
    }
    Ok((status, answer[split + 4..].to_vec()))
}

/// Checks one answer of the API (200, a `put` ticket the verifier accepts;
/// 401 without the token) and returns its bytes.
fn check_api(addr: SocketAddr) -> Result<Vec<u8>, String> {
    let (status, body) = post_once(addr, Some(TOKEN))?;
    if status != 200 {
        return Err(format!(
            "the API answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let ticket: UploadTicket =
        serde_json::from_slice(&body).map_err(|e| format!("not a ticket: {e}"))?;
    let UploadTicket::Put { key, request, .. } = ticket else {
        return Err("the API answered with another ticket than a PUT".into());
    };
    if !key.starts_with("avatars/alice/") {
        return Err(format!("key {key:?} is not under the route's prefix"));
    }
    let url = Url::parse(&request.url).map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let mut headers: Vec<(&str, &str)> = vec![("host", host.as_str())];
    headers.extend(
        request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    Verifier::new(REGION, [Credentials::new(AK, SK)])
        .verify(
            &IncomingRequest {
                method: &request.method,
                path: url.path(),
                query: url.query().unwrap_or_default(),
                headers: &headers,
            },
            SystemTime::now(),
        )
        .map_err(|e| format!("the presigned URL does not verify: {e}"))?;
    let (status, _) = post_once(addr, None)?;
    if status != 401 {
        return Err(format!(
            "without a token the API answered {status}, not 401"
        ));
    }
    Ok(body)
}

/// Installs Debian's `wrk` when it is missing.
fn ensure_wrk() -> Result<(), String> {
    let found = || {
        Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if found() {
        return Ok(());
    }
    eprintln!("wrk missing: installing Debian's wrk");
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if quiet(&["update", "-qq"])
        && quiet(&["install", "-y", "-qq", "--no-install-recommends", "wrk"])
        && found()
    {
        Ok(())
    } else {
        Err("wrk is missing and apt-get could not install it".to_owned())
    }
}

/// The Lua script: the POST, and a `done()` that prints one parsable line.
fn write_script() -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("bench-api-{}.lua", std::process::id()));
    let script = format!(
        r#"wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f non2xx=%.0f socket_errors=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"#
    );
    std::fs::write(&path, script).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// One wrk run.
struct Run {
    requests: f64,
    wall_s: f64,
    server_cpu_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Run {
    fn per_core(&self) -> f64 {
        self.requests / self.server_cpu_s
    }

    fn wall_rate(&self) -> f64 {
        self.requests / self.wall_s
    }
}

/// Drives `addr` with wrk pinned to `cpu` for `seconds`; fails on any
/// non-2xx answer or socket error.
fn run_wrk(
    servers: &Servers,
    addr: SocketAddr,
    cpu: usize,
    script: &Path,
    seconds: u64,
) -> Result<Run, String> {
    let cpu0 = server_cpu_secs(servers.thread);
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string(), "wrk", "-t1"])
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "5s", "-s"])
        .arg(script)
        .arg(format!("http://{addr}{PATH}"))
        .output()
        .map_err(|e| format!("running taskset/wrk: {e}"))?;
    let server_cpu_s = server_cpu_secs(servers.thread) - cpu0;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("WRK "))
        .ok_or_else(|| format!("no WRK line in wrk's output:\n{stdout}"))?;
    let field = |name: &str| -> Result<f64, String> {
        line.split_ascii_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name} in {line:?}"))
    };
    let (non2xx, socket_errors) = (field("non2xx")?, field("socket_errors")?);
    if non2xx > 0.0 || socket_errors > 0.0 {
        return Err(format!(
            "{non2xx} non-2xx answers and {socket_errors} socket errors:\n{stdout}"
        ));
    }
    Ok(Run {
        requests: field("requests")?,
        wall_s: field("duration_us")? / 1e6,
        server_cpu_s,
        p50_ms: field("p50_us")? / 1e3,
        p99_ms: field("p99_us")? / 1e3,
        max_ms: field("max_us")? / 1e3,
    })
}

fn print_run(name: &str, r: &Run) {
    println!(
        "{name:<8} {:>8.0} req/s per core  {:>8.0} req/s wall  server {:>3.0}% busy  p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms  ({:.0} requests)",
        r.per_core(),
        r.wall_rate(),
        100.0 * r.server_cpu_s / r.wall_s,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.requests
    );
}

fn bench(seconds: u64, rounds: usize) -> Result<(), String> {
    ensure_wrk()?;
    let cpus = allowed_cpus();
    let [server_cpu, wrk_cpu, ..] = cpus[..] else {
        return Err(format!(
            "needs two CPUs (server and wrk), this process may use {cpus:?}"
        ));
    };
    let servers = start_servers(server_cpu)?;
    let answer = check_api(servers.api)?;
    servers
        .ceiling_body
        .set(Bytes::from(answer.clone()))
        .map_err(|_| "the ceiling's answer was set twice")?;
    let (status, body) = post_once(servers.ceiling, Some(TOKEN))?;
    if status != 200 || body != answer {
        return Err(format!("the ceiling answered {status} with another body"));
    }
    println!(
        "checked: the API answers 200 with a PUT ticket the verifier accepts ({} bytes), 401 without a token; the ceiling answers the same bytes",
        answer.len()
    );
    println!(
        "server on CPU {server_cpu} (one current_thread runtime), wrk on CPU {wrk_cpu}: 1 thread, {CONNECTIONS} connections, {seconds} s per run"
    );
    let script = write_script()?;
    let result = (|| {
        run_wrk(&servers, servers.api, wrk_cpu, &script, 2)?;
        run_wrk(&servers, servers.ceiling, wrk_cpu, &script, 2)?;
        let (mut api, mut ceiling) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first.
            for first in [round % 2 == 0, round % 2 != 0] {
                if first {
                    let r = run_wrk(&servers, servers.api, wrk_cpu, &script, seconds)?;
                    print_run("api", &r);
                    api.push(r);
                } else {
                    let r = run_wrk(&servers, servers.ceiling, wrk_cpu, &script, seconds)?;
                    print_run("ceiling", &r);
                    ceiling.push(r);
                }
            }
        }
        Ok::<_, String>((api, ceiling))
    })();
    let _ = std::fs::remove_file(&script);
    let (api, ceiling) = result?;

    let med = |runs: &[Run], f: fn(&Run) -> f64| {
        median(&mut runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let ratios = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = api.iter().zip(&ceiling).map(|(a, c)| f(a) / f(c)).collect();
        median(&mut v).unwrap_or(f64::NAN)
    };
    let (a_core, c_core) = (med(&api, Run::per_core), med(&ceiling, Run::per_core));
    let (a_wall, c_wall) = (med(&api, Run::wall_rate), med(&ceiling, Run::wall_rate));
    let (a_p99, c_p99) = (med(&api, |r| r.p99_ms), med(&ceiling, |r| r.p99_ms));
    let (ratio, wall_ratio) = (ratios(Run::per_core), ratios(Run::wall_rate));
    println!(
        "api      {a_core:>8.0} req/s per core (median of {rounds}), {a_wall:.0} wall, p99 {a_p99:.2} ms"
    );
    println!(
        "ceiling  {c_core:>8.0} req/s per core (median of {rounds}), {c_wall:.0} wall, p99 {c_p99:.2} ms"
    );
    println!(
        "api / ceiling: {ratio:.2} per core, {wall_ratio:.2} wall (medians of the rounds' ratios)"
    );
    let busy = |runs: &[Run]| med(runs, |r| r.server_cpu_s / r.wall_s);
    let busy = busy(&api).min(busy(&ceiling));
    if busy < 0.9 {
        println!(
            "warning: the server thread had {:.0}% of its core: other processes ran there, so latencies include their time slices and the rates are lower than on an idle machine",
            busy * 100.0
        );
    }
    println!(
        "RESULT api_requests_per_sec={a_core:.0} api_ratio_vs_ceiling={ratio:.2} api_p99_ms={a_p99:.2} ceiling_requests_per_sec={c_core:.0} ceiling_p99_ms={c_p99:.2} api_wall_requests_per_sec={a_wall:.0} ceiling_wall_requests_per_sec={c_wall:.0} api_wall_ratio_vs_ceiling={wall_ratio:.2}"
    );
    Ok(())
}

fn main() -> ExitCode {
    let arg = |i: usize, default: u64| match std::env::args().nth(i).map(|a| a.parse::<u64>()) {
        None => Some(default),
        Some(Ok(n)) if n >= 1 => Some(n),
        Some(_) => None,
    };
    let (Some(seconds), Some(rounds)) = (arg(1, 10), arg(2, 3)) else {
        eprintln!("usage: bench-api [SECONDS_PER_RUN >= 1] [ROUNDS >= 1]");
        return ExitCode::from(2);
    };
    match bench(seconds, rounds as usize) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
