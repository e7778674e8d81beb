//! One-shot clamd benchmark: our [`upload_scan::ClamdScanner`] against
//! Debian's `clamdscan --stream`, streaming 100 MiB files to the same
//! private clamd in the same run.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-scan [ROUNDS]
//! ```
//!
//! It starts its own clamd with `scripts/clamd.sh start DIR PORT 200M` (a
//! temporary `DIR`, a free loopback port) and stops it at the end, on error
//! too. After one untimed warm-up scan each, every round (default 5) times
//! one scan of ours and one of `clamdscan`, alternating which goes first.
//!
//! Every scan gets a file of **fresh** random content (a fast PRNG, not
//! `/dev/urandom`): clamd caches the verdict of a clean file by its hash, so
//! a second scan of the same bytes (even by the other client) is answered
//! from the cache in about a third of the time and would measure that
//! cache, not the scan.
//!
//! Both clients stream over TCP to `127.0.0.1:PORT`. `clamdscan` prefers
//! the `LocalSocket` of its config when there is one (the `clamd.conf`
//! that `clamd.sh` writes has both), so it is given a copy of that config
//! without the `LocalSocket` line, `DIR/clamdscan-tcp.conf`.
//!
//! Each scan must come back clean (ours [`Verdict::Clean`], `clamdscan`
//! exit code 0 with `OK` in its output), or the run fails. It prints each
//! client's median wall time and the process's peak RSS (`VmHWM`), and ends
//! with exactly one line (`time_ratio_vs_clamdscan` = our median /
//! clamdscan's; lower is better):
//!
//! ```text
//! RESULT time_ratio_vs_clamdscan=... ours_median_ms=... clamdscan_median_ms=... peak_rss_mb=...
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use upload_benches::{median, peak_rss_mb};
use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner, Verdict};

/// Size of each scanned file: 100 MiB.
const FILE_SIZE: u64 = 100 * 1024 * 1024;
/// The daemon's `StreamMaxLength`, as `clamd.sh` takes it.
const STREAM_MAX: &str = "200M";
/// [`STREAM_MAX`] in bytes, for [`ClamdConfig::with_stream_max_length`].
const STREAM_MAX_BYTES: u64 = 200 * 1024 * 1024;
/// Timed rounds when no `ROUNDS` argument is given.
const DEFAULT_ROUNDS: usize = 5;

fn main() -> ExitCode {
    let rounds = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => DEFAULT_ROUNDS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: bench-scan [ROUNDS > 0]");
            return ExitCode::from(2);
        }
    };
    match run(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-scan FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts clamd, runs the warm-up and `rounds` timed rounds, prints the
/// report; `Err` says why a step failed (clamd is stopped either way).
fn run(rounds: usize) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Declared first so that it is dropped last, after clamd has stopped.
    let dir = TempDir::new()?;
    let port = free_port()?;
    let clamd = Clamd::start(&root.join("scripts/clamd.sh"), dir.path(), port)?;
    let clamdscan_conf = tcp_only_config(dir.path())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))?;
    let scanner = ClamdScanner::new(
        ClamdConfig::new(ClamdAddress::Tcp(format!("127.0.0.1:{port}")))
            .with_stream_max_length(STREAM_MAX_BYTES),
    );
    let version = rt
        .block_on(scanner.version())
        .map_err(|e| format!("clamd VERSION: {e}"))?;
    println!(
        "clamd {version} on 127.0.0.1:{port} (StreamMaxLength {STREAM_MAX}); \
         {} MiB files, fresh content per scan; 1 warm-up + {rounds} timed rounds",
        FILE_SIZE >> 20
    );

    let file = dir.path().join("object.bin");
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64);
    let mut fresh_file = || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        write_random_file(&file, FILE_SIZE, seed)
            .map_err(|e| format!("writing {}: {e}", file.display()))
            .map(|()| file.clone())
    };
    let ours = |path: &Path| rt.block_on(scan_ours(&scanner, path));
    let theirs = |path: &Path| scan_clamdscan(&clamdscan_conf, path);

    ours(&fresh_file()?)?;
    theirs(&fresh_file()?)?;

    let mut ours_ms = Vec::with_capacity(rounds);
    let mut theirs_ms = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let ours_first = round % 2 == 0;
        for ours_turn in [ours_first, !ours_first] {
            let path = fresh_file()?;
            if ours_turn {
                let ms = ours(&path)?;
                println!("round {}: upload_scan {ms:.0} ms", round + 1);
                ours_ms.push(ms);
            } else {
                let ms = theirs(&path)?;
                println!("round {}: clamdscan   {ms:.0} ms", round + 1);
                theirs_ms.push(ms);
            }
        }
    }
    drop(clamd);

    let ours = median(&mut ours_ms).expect("rounds > 0");
    let theirs = median(&mut theirs_ms).expect("rounds > 0");
    let ratio = ours / theirs;
    let rss = peak_rss_mb().unwrap_or(f64::NAN);
    println!(
        "upload_scan::ClamdScanner (TCP, scan_reader): median {ours:.0} ms \
         (min {:.0}, max {:.0})",
        ours_ms[0],
        ours_ms[ours_ms.len() - 1]
    );
    println!(
        "clamdscan --stream (TCP):                     median {theirs:.0} ms \
         (min {:.0}, max {:.0})",
        theirs_ms[0],
        theirs_ms[theirs_ms.len() - 1]
    );
    println!("time ratio (ours / clamdscan): {ratio:.3}; peak RSS {rss:.1} MiB");
    println!(
        "RESULT time_ratio_vs_clamdscan={ratio:.3} ours_median_ms={ours:.1} \
         clamdscan_median_ms={theirs:.1} peak_rss_mb={rss:.1}"
    );
    Ok(())
}

/// Scans `path` with our client; the wall time in ms, or why it was not
/// a clean verdict.
async fn scan_ours(scanner: &ClamdScanner, path: &Path) -> Result<f64, String> {
    let start = Instant::now();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let verdict = scanner
        .scan_reader(file)
        .await
        .map_err(|e| format!("upload_scan on {}: {e}", path.display()))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if verdict != Verdict::Clean {
        return Err(format!(
            "upload_scan on {}: {verdict:?}, not Clean",
            path.display()
        ));
    }
    Ok(ms)
}

/// Scans `path` with `clamdscan --stream`; the wall time in ms, or why it
/// did not exit 0 with an `OK` verdict.
fn scan_clamdscan(conf: &Path, path: &Path) -> Result<f64, String> {
    let start = Instant::now();
    let out = Command::new("clamdscan")
        .arg("--stream")
        .arg("--no-summary")
        .arg("-c")
        .arg(conf)
        .arg(path)
        .output()
        .map_err(|e| format!("running clamdscan: {e}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("OK") {
        return Err(format!(
            "clamdscan on {}: {}, stdout {:?}, stderr {:?}",
            path.display(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(ms)
}

/// A loopback port that was free a moment ago (bound to port 0, then
/// released).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Writes `DIR/clamdscan-tcp.conf`: `DIR/clamd.conf` without its
/// `LocalSocket` line, so that `clamdscan` uses `TCPSocket`/`TCPAddr`.
fn tcp_only_config(dir: &Path) -> Result<PathBuf, String> {
    let conf = dir.join("clamd.conf");
    let text =
        std::fs::read_to_string(&conf).map_err(|e| format!("reading {}: {e}", conf.display()))?;
    let tcp_only: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("LocalSocket"))
        .flat_map(|l| [l, "\n"])
        .collect();
    if !tcp_only.lines().any(|l| l.starts_with("TCPSocket")) {
        return Err(format!("{} has no TCPSocket line", conf.display()));
    }
    let out = dir.join("clamdscan-tcp.conf");
    std::fs::write(&out, tcp_only).map_err(|e| format!("writing {}: {e}", out.display()))?;
    Ok(out)
}

/// Writes `len` pseudo-random bytes (wyrand from `seed`) to `path`, 1 MiB
/// at a time so the process never holds the file.
fn write_random_file(path: &Path, len: u64, mut seed: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            seed = seed.wrapping_add(0xa076_1d64_78bd_642f);
            let t = u128::from(seed) * u128::from(seed ^ 0xe703_7ed1_a0b4_28db);
            word.copy_from_slice(&((t >> 64) as u64 ^ t as u64).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_data()
}

/// A private clamd, stopped (`scripts/clamd.sh stop DIR`) when dropped.
struct Clamd {
    /// `scripts/clamd.sh`.
    script: PathBuf,
    /// The daemon's folder (config, pid file, sockets).
    dir: PathBuf,
}

impl Clamd {
    /// Runs `scripts/clamd.sh start DIR PORT 200M`. The guard exists before
    /// the script runs, so a daemon that started but never answered PING is
    /// stopped too.
    fn start(script: &Path, dir: &Path, port: u16) -> Result<Self, String> {
        let guard = Self {
            script: script.to_owned(),
            dir: dir.to_owned(),
        };
        let status = Command::new("bash")
            .arg(script)
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .arg(STREAM_MAX)
            .status()
            .map_err(|e| format!("running {} start: {e}", script.display()))?;
        if !status.success() {
            return Err(format!("{} start failed: {status}", script.display()));
        }
        Ok(guard)
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        // Output captured: clamd removes its own pid file on exit, and the
        // script's wait loop then complains on stderr that it is gone.
        let stopped = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
        match stopped {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `{} stop {}` failed: {}: {}",
                self.script.display(),
                self.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: running {} stop: {e}", self.script.display()),
        }
    }
}

/// A fresh folder under the system temp folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    /// Creates `bench-scan-{pid}-{nanos}` under [`std::env::temp_dir`].
    fn new() -> Result<Self, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("bench-scan-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Self(path))
    }

    /// The folder.
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
