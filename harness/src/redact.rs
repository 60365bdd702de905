//! Secret values never reach logs, reports or artifacts: values of the environment's secret
//! variables (tokens, passwords, application-credential secrets) and secrets the harness reads
//! itself (kubeconfig tokens, clouds.yaml passwords) are registered here, and every step log
//! line and report text passes through [`apply`].

use std::borrow::Cow;
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

/// Registers one secret value.
pub fn add(secret: &str) {
    let s = secret.trim();
    if s.len() < MIN_LEN {
        return;
    }
    let mut v = SECRETS.write().unwrap();
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
        // Longest first, so a secret containing another is masked whole.
        v.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
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
}
