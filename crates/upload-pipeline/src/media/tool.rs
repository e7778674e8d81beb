//! Running a media tool (poppler-utils, ffmpeg) as a child process under
//! limits: a wall-clock timeout that kills it, an address-space limit
//! (`RLIMIT_AS`), no core dumps, no files written, no stdin, a clean
//! environment (no proxy variables), bounded output.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::MediaRejection;
use crate::error::Error;

/// The limits of one tool run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLimits {
    /// Killed after this long.
    pub timeout: Duration,
    /// `RLIMIT_AS` of the child, in bytes (its virtual address space).
    pub memory: u64,
    /// Most bytes of standard output kept; more stops the tool.
    pub max_stdout: usize,
}

/// What a finished run gave.
#[derive(Debug)]
pub(crate) struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ran {
    /// The first lines of its error output (at most 400 characters), or
    /// its exit status when it wrote none.
    pub fn error_detail(&self, tool: &str) -> String {
        let text: String = self
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(4)
            .collect::<Vec<_>>()
            .join("; ");
        let text: String = text.chars().take(400).collect();
        if text.is_empty() {
            format!("{tool} failed ({})", self.status)
        } else {
            format!("{tool}: {text}")
        }
    }
}

/// Most bytes of standard error kept.
const MAX_STDERR: usize = 64 << 10;

/// Runs `program` with `args` under `limits`; `tool` names it in errors
/// and `install` says how to get it when it is missing.
///
/// # Errors
/// - [`Error::MediaUnsupported`] when the program is not installed;
/// - [`Error::MediaRejected`] with [`MediaRejection::TimedOut`] or
///   [`MediaRejection::OutputTooLarge`] (the child is killed);
/// - [`Error::TaskFailed`] when it cannot be started for another reason.
pub(crate) fn run(
    program: &Path,
    args: &[&OsStr],
    limits: RunLimits,
    tool: &'static str,
    content_type: &str,
    install: &'static str,
) -> Result<Ran, Error> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // No http_proxy, no FFREPORT, no locale surprises in the output.
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("LC_ALL", "C")
        // glibc malloc keeps few arenas, so threads do not each reserve
        // 64 MiB of address space under RLIMIT_AS.
        .env("MALLOC_ARENA_MAX", "2");
    // A process group of its own: a timeout kills the tool and anything
    // it started, so no grandchild keeps the output pipes open.
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let memory = limits.memory;
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only setrlimit, which is async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(move || {
            set_limit(libc::RLIMIT_AS, memory)?;
            set_limit(libc::RLIMIT_CORE, 0)?;
            // Output goes to pipes only: no file is ever written.
            set_limit(libc::RLIMIT_FSIZE, 0)?;
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::MediaUnsupported {
                content_type: content_type.to_owned(),
                tool: program.display().to_string(),
                install,
            });
        }
        Err(e) => {
            return Err(Error::TaskFailed {
                reason: format!("{tool} could not be started: {e}"),
            });
        }
    };
    let stdout = child
        .stdout
        .take()
        .map(|o| reader(o, limits.max_stdout, false));
    let stderr = child.stderr.take().map(|e| reader(e, MAX_STDERR, true));
    let status = wait(&mut child, limits.timeout);
    let out = stdout
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let err = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let status = match status {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(Error::MediaRejected {
                content_type: content_type.to_owned(),
                reason: MediaRejection::TimedOut {
                    tool,
                    limit_ms: limits.timeout.as_millis() as u64,
                },
            });
        }
        Err(e) => {
            return Err(Error::TaskFailed {
                reason: format!("waiting for {tool}: {e}"),
            });
        }
    };
    if out.1 {
        return Err(Error::MediaRejected {
            content_type: content_type.to_owned(),
            reason: MediaRejection::OutputTooLarge {
                tool,
                max: limits.max_stdout,
            },
        });
    }
    Ok(Ran {
        status,
        stdout: out.0,
        stderr: String::from_utf8_lossy(&err.0).into_owned(),
    })
}

/// The type of `setrlimit`'s resource argument.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
/// The type of `setrlimit`'s resource argument.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// Sets both the soft and hard limit of `resource` to `value`.
fn set_limit(resource: Resource, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &lim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `from` on a thread of its own, keeping at most `max` bytes. Past
/// that the flag is set and, unless `drain` (error output: the rest is
/// read and dropped, so a chatty tool is not stopped), the pipe is closed
/// (the writer gets EPIPE).
fn reader(
    mut from: impl Read + Send + 'static,
    max: usize,
    drain: bool,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut over = false;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return (kept, over),
                Ok(n) if kept.len() + n > max => {
                    over = true;
                    if !drain {
                        return (kept, over);
                    }
                    let room = max - kept.len();
                    kept.extend_from_slice(&buf[..room]);
                }
                Ok(n) => kept.extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Waits for `child` at most `timeout`: its status, or `None` after it was
/// killed for running too long.
fn wait(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kills `child`'s process group (it leads one: `process_group(0)`), or
/// the child alone if that fails.
fn kill_group(child: &mut Child) {
    match i32::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; a negative pid
        // names the group the child leads.
        Ok(pid) if pid > 0 && unsafe { libc::kill(-pid, libc::SIGKILL) } == 0 => {}
        _ => {
            let _ = child.kill();
        }
    }
}

/// A private copy of an upload on local disk for a tool to read: created
/// with mode 0600 under the system's temporary directory, deleted when
/// dropped.
pub(crate) fn private_copy(body: &[u8], suffix: &str) -> Result<tempfile::NamedTempFile, Error> {
    use std::io::Write as _;
    let failed = |e: io::Error| Error::TaskFailed {
        reason: format!("temporary copy of the upload: {e}"),
    };
    let mut file = tempfile::Builder::new()
        .prefix("upload-media-")
        .suffix(suffix)
        .tempfile()
        .map_err(failed)?;
    file.write_all(body).map_err(failed)?;
    file.flush().map_err(failed)?;
    Ok(file)
}

/// A program name or path: `name` unless `configured` is set.
pub(crate) fn program(configured: &Option<PathBuf>, name: &str) -> PathBuf {
    configured.clone().unwrap_or_else(|| PathBuf::from(name))
}
