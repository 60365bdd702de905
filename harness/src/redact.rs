//! Secret values never reach logs, reports or artifacts: values of the environment's secret
//! variables (tokens, passwords, application-credential secrets) and secrets the harness reads
//! itself (kubeconfig tokens, clouds.yaml passwords) are registered here, each in its plain and
//! its base64 forms (a Secret's `data`, a kubeconfig's embedded data), and every writer passes
//! through this module: [`write`] and [`write_atomic`] for artifact files, [`masked`] for report
//! models, [`Stderr`] for the console and the log at every verbosity, [`apply`] for the rest.

use base64::Engine as _;
use std::borrow::Cow;
use std::path::Path;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shorter values would mask ordinary words.
const MIN_LEN: usize = 6;

/// A variable name that holds a secret (`GITHUB_TOKEN`, `OS_PASSWORD`, `AWS_SECRET_ACCESS_KEY`, ...).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["TOKEN", "PASSWORD", "SECRET", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "ACCESS_KEY"]
        .iter()
        .any(|w| n.contains(w))
}

/// Registers one secret value, with its base64 forms.
pub fn add(secret: &str) {
    let s = secret.trim();
    if s.len() < MIN_LEN {
        return;
    }
    let mut v = SECRETS.write().unwrap();
    for form in std::iter::once(s.to_string()).chain(base64_forms(s.as_bytes())) {
        if form.len() >= MIN_LEN && !v.contains(&form) {
            v.push(form);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    v.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

/// How `secret` can appear base64-encoded: alone (standard and URL-safe alphabet, padded or
/// not), and inside a longer encoded value (a kubeconfig, a Secret holding a whole file), where
/// its encoding depends on its offset modulo 3: for each offset, the characters that encode only
/// the secret's own bits.
pub fn base64_forms(secret: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let mut out = vec![STANDARD.encode(secret)];
    for k in 0..3usize {
        let mut buf = vec![0u8; k];
        buf.extend_from_slice(secret);
        let enc = STANDARD_NO_PAD.encode(&buf);
        // Character i holds bits 6i..6i+6; the secret's bits are 8k..8(k+n).
        let (from, to) = ((8 * k).div_ceil(6), (8 * (k + secret.len())) / 6);
        if to > from {
            out.push(enc[from..to].to_string());
        }
    }
    let url: Vec<String> = out.iter().map(|e| e.replace('+', "-").replace('/', "_")).collect();
    out.extend(url);
    out.sort();
    out.dedup();
    out
}

/// Registers the values of this process's secret environment variables.
pub fn add_from_env() {
    for (k, v) in std::env::vars() {
        if is_secret_name(&k) {
            add(&v);
        }
    }
}

/// The text with every registered secret masked.
pub fn apply(text: &str) -> Cow<'_, str> {
    let v = SECRETS.read().unwrap();
    if !v.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in v.iter() {
        out = out.replace(s.as_str(), MASK);
    }
    Cow::Owned(out)
}

/// `value` with every string in it (at any depth) masked: the one way report models are masked
/// before any renderer sees them. A model that does not come back from JSON is an error, never
/// written unmasked.
pub fn masked<T: serde::Serialize + serde::de::DeserializeOwned + Clone>(value: &T) -> std::io::Result<T> {
    if SECRETS.read().unwrap().is_empty() {
        return Ok(value.clone());
    }
    let mut v = serde_json::to_value(value).map_err(std::io::Error::other)?;
    mask_value(&mut v);
    serde_json::from_value(v).map_err(std::io::Error::other)
}

fn mask_value(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(o) = apply(s) {
                *s = o;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_value),
        Value::Object(m) => m.values_mut().for_each(mask_value),
        _ => {}
    }
}

/// Writes an artifact (a step log, events, pod logs, a dumped resource) with secrets masked,
/// creating its parent directories.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    crate::base::write_file(path, apply(text).as_bytes())
}

/// [`write`], atomically (reports, which readers may open while a run writes them).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    crate::base::write_atomic(path, apply(text).as_bytes())
}

/// Masks, in place, every text file below `dir` that holds a secret: logs that tools copied
/// there themselves (`kind export logs`, the lab's process logs).
pub fn mask_tree(dir: &Path) -> std::io::Result<()> {
    if SECRETS.read().unwrap().is_empty() || !dir.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let (path, ty) = (e.path(), e.file_type()?);
        if ty.is_dir() {
            mask_tree(&path)?;
        } else if ty.is_file() {
            let bytes = std::fs::read(&path)?;
            // Binary files (archives, journals) are not text a secret is written into.
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Cow::Owned(o) = apply(text)
            {
                crate::base::write_atomic(&path, o.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Standard error with secrets masked: the console's and the log's writer (`tracing` writes each
/// event in one call, so a secret is never split across two writes).
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::Write::write_all(&mut std::io::stderr(), apply(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

/// [`apply`] on an optional string in place.
pub fn apply_opt(text: &mut Option<String>) {
    if let Some(t) = text
        && let Cow::Owned(o) = apply(t)
    {
        *t = o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked_and_short_values_ignored() {
        add("canary-redact-unit-1f2e");
        add("abc");
        assert_eq!(apply("token=canary-redact-unit-1f2e; abc"), "token=***; abc");
        assert!(matches!(apply("nothing secret"), Cow::Borrowed(_)));
        assert!(is_secret_name("GITHUB_TOKEN") && is_secret_name("OS_PASSWORD") && is_secret_name("os_application_credential_secret"));
        assert!(!is_secret_name("KUBECONFIG") && !is_secret_name("HOME"));
    }

    #[test]
    fn base64_forms_are_masked_alone_and_inside_longer_encoded_values() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let secret = "canary-b64-unit-7a1c?>";
        add(secret);
        // Alone, as a Secret's data holds it, in both alphabets.
        for enc in [STANDARD.encode(secret), URL_SAFE.encode(secret)] {
            assert!(!apply(&format!("token: {enc}")).contains(&enc), "{enc}");
        }
        // Inside a longer value at each offset modulo 3: no run of the secret's own
        // characters survives.
        for prefix in ["", "a", "ab", "abc", "kubeconfig: user: x\n token: "] {
            let enc = STANDARD.encode(format!("{prefix}{secret} and more after it"));
            let out = apply(&enc);
            assert!(out.contains(MASK), "{prefix:?}: {out}");
            let core = &base64_forms(secret.as_bytes());
            assert!(core.iter().all(|c| !out.contains(c.as_str())), "{prefix:?}: {out}");
        }
        // Text that merely shares no secret stays as it was.
        assert!(matches!(
            apply(&STANDARD.encode("an ordinary value of some length")),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_model_is_masked_in_every_string_at_any_depth() {
        add("canary-model-unit-3b9d");
        let v = serde_json::json!({"a": ["x canary-model-unit-3b9d y", {"b": "canary-model-unit-3b9d"}], "n": 3});
        let m = masked(&v).unwrap();
        assert_eq!(m, serde_json::json!({"a": ["x *** y", {"b": "***"}], "n": 3}));
    }
}
