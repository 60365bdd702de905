//! The floor every module may use, importing nothing of the crate: file writes (plain, atomic,
//! private), the cache and private directories, copying trees, slugs and run ids.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path`, creating its parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, bytes)
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes a file atomically: a temp file beside it, synced, then renamed over `path`. A killed run
/// never leaves a truncated file, and readers of a shared cache never see half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // pid and sequence: two writers of one path (threads, processes) never share a temp file.
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}-{seq}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fault_before_rename(path);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Test hook: `SCS_E2E_TEST_FAULT=kill-before-rename:<file name>:<n>` SIGKILLs this process at
/// the n-th atomic write of a file so named, its temp file written and synced and not yet renamed:
/// the moment a CI job's timeout can hit. The tests make that moment exact with it.
fn fault_before_rename(path: &Path) {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("SCS_E2E_TEST_FAULT") else {
        return;
    };
    let Some((name, n)) = spec.strip_prefix("kill-before-rename:").and_then(|r| r.rsplit_once(':')) else {
        return;
    };
    if path.file_name().is_some_and(|f| f == name) && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == n.parse().unwrap_or(0) {
        // SAFETY: kill only sends a signal (to ourselves).
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Writes a file readable by this user only (mode 0600, also when it existed with another mode).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)
}

/// The harness's cache: `SCS_E2E_CACHE_DIR`, else `$XDG_CACHE_HOME/scs-e2e`, else `~/.cache/scs-e2e`.
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("SCS_E2E_CACHE_DIR") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("scs-e2e")
}

/// A directory only this user can read, for credentials that must not land in artifacts
/// (workload kubeconfigs): `$XDG_RUNTIME_DIR/scs-e2e`, else `<tmp>/scs-e2e-<uid>`.
pub fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("scs-e2e"),
        None => std::env::temp_dir().join(format!("scs-e2e-{uid}")),
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    let meta = std::fs::symlink_metadata(&dir)?;
    // A directory someone else made in a shared /tmp must not receive our credentials.
    if meta.uid() != uid || !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a directory owned by us", dir.display())));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Copies every regular file of `src` (recursively) into `dst`; returns how many.
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            n += copy_tree(&e.path(), &to)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), &to)?;
            n += 1;
        }
    }
    Ok(n)
}

/// A file-system friendly form of a name: lower-case ASCII letters, digits, `.`, `_`, `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A short random-enough id for a run (8 hex digits): namespaces and names derive from it.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mixed = (nanos as u64) ^ ((std::process::id() as u64) << 32);
    format!("{:08x}", (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_and_collapse_separators() {
        assert_eq!(slug("Quick Start: 1.33 / kind"), "quick-start-1.33-kind");
        assert_eq!(slug("--a__b--"), "a__b");
    }

    #[test]
    fn private_files_lose_a_wider_mode_they_had() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kubeconfig");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
    }

    #[test]
    fn atomic_writes_leave_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/results.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("results.json")]);
    }
}
