//! External commands: streamed output, deadlines, cancellation, and process-group kills so a
//! script's children die with it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a command run by [`run_streaming`] ended.
#[derive(Debug)]
pub enum Ended {
    /// Exited with this code (-1 when the status could not be read).
    Exited(i32),
    /// Killed by a signal (the number).
    Signalled(i32),
    /// The deadline passed; the process group was killed.
    TimedOut,
    /// The run was cancelled; the process group was killed.
    Cancelled,
}

/// What [`run_streaming`] saw: how the command ended and all it printed.
#[derive(Debug)]
pub struct Outcome {
    /// How the command ended.
    pub ended: Ended,
    /// Combined stdout and stderr.
    pub output: String,
}

/// Runs `expr` in its own process group, handing each output line to `on_line`. At the deadline
/// or on cancellation the whole group gets SIGTERM, then SIGKILL after a short grace period.
pub async fn run_streaming(
    expr: duct::Expression,
    on_line: impl Fn(&str) + Send + Sync + 'static,
    deadline: Instant,
    cancel: &CancellationToken,
) -> std::io::Result<Outcome> {
    let expr = expr.stderr_to_stdout().unchecked().before_spawn(|c| {
        c.process_group(0);
        Ok(())
    });
    let reader = Arc::new(expr.reader()?);
    let pids = reader.pids();
    // If this future is dropped (a caller's timeout or Ctrl-C won the race), the process group
    // must still die: its open pipe would otherwise keep the reader thread, and the runtime, alive.
    live_groups().extend(&pids);
    let mut guard = GroupGuard {
        pids: pids.clone(),
        armed: true,
    };
    let r = reader.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        let mut br = BufReader::new(&*r);
        let mut line = Vec::new();
        while br.read_until(b'\n', &mut line).map(|n| n > 0).unwrap_or(false) {
            let s = String::from_utf8_lossy(&line);
            let s = s.trim_end_matches(['\n', '\r']);
            on_line(s);
            out.push_str(s);
            out.push('\n');
            line.clear();
        }
        let status = r.try_wait().ok().flatten().map(|o| o.status);
        (out, status)
    });
    let stop = tokio::select! {
        res = &mut task => {
            guard.armed = false;
            let (output, status) = res.map_err(std::io::Error::other)?;
            return Ok(Outcome { ended: exit_of(status), output });
        }
        _ = tokio::time::sleep_until(deadline) => Ended::TimedOut,
        _ = cancel.cancelled() => Ended::Cancelled,
    };
    for pid in &pids {
        kill_group(*pid, libc::SIGTERM);
    }
    let (output, _) = match tokio::time::timeout(Duration::from_secs(3), &mut task).await {
        Ok(r) => r.map_err(std::io::Error::other)?,
        Err(_) => {
            for pid in &pids {
                kill_group(*pid, libc::SIGKILL);
            }
            let _ = reader.kill();
            task.await.map_err(std::io::Error::other)?
        }
    };
    let _ = reader.kill();
    guard.armed = false;
    Ok(Outcome { ended: stop, output })
}

struct GroupGuard {
    pids: Vec<u32>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            for pid in &self.pids {
                kill_group(*pid, libc::SIGKILL);
            }
        }
        live_groups().retain(|p| !self.pids.contains(p));
    }
}

/// The process groups [`run_streaming`] started that may still run. They are groups of their
/// own, so a signal to us does not reach them: an exit that skips unwinding must kill them.
fn live_groups() -> std::sync::MutexGuard<'static, Vec<u32>> {
    static LIVE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exits at once (a second Ctrl-C) without unwinding, killing every running script's process
/// group first: they would outlive us otherwise. The lab's processes die with us by themselves
/// (PR_SET_PDEATHSIG).
pub fn exit_now(code: i32) -> ! {
    for pid in live_groups().iter() {
        kill_group(*pid, libc::SIGKILL);
    }
    std::process::exit(code)
}

fn exit_of(status: Option<std::process::ExitStatus>) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => Ended::Exited(c),
            (None, Some(sig)) => Ended::Signalled(sig),
            _ => Ended::Exited(-1),
        },
        None => Ended::Exited(-1),
    }
}

/// Sends `sig` to the process group led by `pid` (children spawned here lead their own group).
pub fn kill_group(pid: u32, sig: i32) {
    // SAFETY: killpg only sends a signal; a stale pgid yields ESRCH, which we ignore.
    unsafe {
        libc::killpg(pid as libc::pid_t, sig);
    }
}

/// Sends `sig` to one process.
pub fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill only sends a signal.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Whether a process exists (zombies included, which a reaped child is not).
pub fn alive(pid: u32) -> bool {
    signal(pid, 0)
}

/// A regular file (symlinks followed) with an execute bit.
pub fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Searches PATH (plus `extra` first) for an executable.
pub fn which(name: &str, extra: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    extra
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// PATH with `extra` directories first.
pub fn path_with(extra: &[std::path::PathBuf]) -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(extra.iter().cloned().chain(std::env::split_paths(&path))).unwrap_or(path)
}

/// An exclusive `flock` on a file, released when dropped (a build in progress, a port range in use).
pub struct FileLock(std::fs::File);

impl FileLock {
    fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)
    }

    fn flock(f: &std::fs::File, op: i32) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(f.as_raw_fd(), op) == 0 }
    }

    /// Blocks until the lock is ours.
    pub fn acquire(path: &std::path::Path) -> std::io::Result<FileLock> {
        let f = Self::open(path)?;
        if !Self::flock(&f, libc::LOCK_EX) {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(f))
    }

    /// The lock if nobody holds it, else `None`.
    pub fn try_acquire(path: &std::path::Path) -> std::io::Result<Option<FileLock>> {
        let f = Self::open(path)?;
        Ok(Self::flock(&f, libc::LOCK_EX | libc::LOCK_NB).then_some(FileLock(f)))
    }

    /// [`FileLock::acquire_within`], first without waiting: if someone holds the lock,
    /// `waiting(what they wrote)` is told before the wait. Once `wait` has passed, `Err` names the
    /// holder (a placeholder when it wrote nothing).
    pub fn acquire_announced(
        path: &std::path::Path,
        wait: std::time::Duration,
        holder: &str,
        waiting: impl FnOnce(&str),
    ) -> std::io::Result<Result<FileLock, String>> {
        let got = match Self::acquire_within(path, std::time::Duration::ZERO, holder)? {
            Ok(l) => Ok(l),
            Err(who) => {
                waiting(&who);
                Self::acquire_within(path, wait, holder)?
            }
        };
        Ok(got.map_err(|who| {
            if who.is_empty() {
                "a process that did not say who it is".to_string()
            } else {
                who
            }
        }))
    }

    /// The lock within `wait`, saying in the lock file who holds it now (`holder`); else, once
    /// `wait` has passed, `Err` with what the holder wrote there. Polled, so that giving up
    /// leaves no thread behind that would take the lock later.
    pub fn acquire_within(path: &std::path::Path, wait: std::time::Duration, holder: &str) -> std::io::Result<Result<FileLock, String>> {
        use std::io::{Seek, Write};
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some(mut l) = Self::try_acquire(path)? {
                l.0.set_len(0)?;
                l.0.seek(std::io::SeekFrom::Start(0))?;
                l.0.write_all(holder.as_bytes())?;
                return Ok(Ok(l));
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                let who = std::fs::read_to_string(path).unwrap_or_default();
                return Ok(Err(who.trim().to_string()));
            }
            std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(200)));
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        Self::flock(&self.0, libc::LOCK_UN);
    }
}

/// A bound in seconds from the environment variable `name`, else `default` (also when the value
/// is not a whole number).
pub fn secs_from_env(name: &str, default: std::time::Duration) -> std::time::Duration {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
        .unwrap_or(default)
}

/// Who takes a lock: pid, command line (masked) and the time, for whoever waits on it.
pub fn lock_holder() -> String {
    let args: Vec<String> = std::env::args().collect();
    format!(
        "pid {} (`{}`) since {}",
        std::process::id(),
        crate::redact::apply(&args.join(" ")),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")
    )
}
