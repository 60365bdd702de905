//! Sending a compliance report to the SCS compliance monitor the way upstream's tooling does
//! (standards 077174d, `Tests/scs-test-runner.py` and `compliance-monitor/monitor.py`): signed
//! with `ssh-keygen -Y sign -n report`, the body is the signature, `&` and the report's bytes,
//! `Content-Type: application/x-signed-yaml`, Basic auth, `POST <monitor>/reports`. The monitor
//! answers 200 when it stored the report, 409 when it has this `run.uuid` already, 401 for the
//! account, the signature or the subject, 415 for the content type.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable holding the monitor account's password (never a flag, never logged:
/// its name marks it secret for [`crate::redact`]).
pub const PASSWORD_ENV: &str = "SCS_E2E_UPLOAD_PASSWORD";

/// The namespace the monitor verifies signatures in.
const NAMESPACE: &str = "report";

/// Where and as whom to upload, and how to sign.
#[derive(Clone, Debug)]
pub struct Upload {
    /// The monitor's address (`https://compliance.sovereignit.cloud/`) or its `/reports` URL.
    pub url: String,
    /// The monitor account (upstream: the subject's name).
    pub user: String,
    /// The account's password.
    pub password: String,
    /// The SSH private key whose public half the monitor has for the account.
    pub key: PathBuf,
    /// Further tries after a 5xx answer or a failed connection.
    pub retries: u32,
    /// The wait before the first retry; each further one waits twice as long.
    pub backoff: Duration,
}

/// What the monitor did with the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// Stored (200).
    Stored,
    /// It had a report with this run's uuid already (409): nothing new was stored.
    AlreadyThere,
}

/// Why a report did not get to the monitor.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// `ssh-keygen -Y sign` failed.
    #[error("cannot sign the report with {key}: {why} (an unencrypted OpenSSH private key is needed, like upstream's .secret/keyfile)")]
    Sign {
        /// The key file.
        key: String,
        /// What ssh-keygen said.
        why: String,
    },
    /// 401: the account, the signature or the subject.
    #[error(
        "the monitor at {url} refused the upload (401: {detail}): check the password of account `{user}` (in {PASSWORD_ENV}), that the public half of {key} is registered for that account, and that the account may report for the subject"
    )]
    Unauthorized {
        /// The URL posted to.
        url: String,
        /// The account.
        user: String,
        /// The key file.
        key: String,
        /// The monitor's `detail`.
        detail: String,
    },
    /// Any other answer that is not 200 or 409 (after the retries, for 5xx).
    #[error("the monitor at {url} answered {status}: {detail}")]
    Refused {
        /// The URL posted to.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The monitor's `detail`, or the body.
        detail: String,
    },
    /// No answer (after the retries).
    #[error("cannot reach the monitor at {url}: {why}")]
    Unreachable {
        /// The URL posted to.
        url: String,
        /// The transport error.
        why: String,
    },
}

/// The `/reports` URL of a monitor given by its address or by that URL.
pub fn reports_url(given: &str) -> String {
    let t = given.trim_end_matches('/');
    if t.ends_with("/reports") {
        t.to_string()
    } else {
        format!("{t}/reports")
    }
}

/// The armored SSH signature of `data` by `key` in the monitor's namespace (data on stdin, the
/// signature on stdout: no file is written beside the report).
pub fn sign(key: &Path, data: &[u8]) -> Result<Vec<u8>, UploadError> {
    let failed = |why: String| UploadError::Sign {
        key: key.display().to_string(),
        why,
    };
    let out = duct::cmd!("ssh-keygen", "-q", "-Y", "sign", "-f", key, "-n", NAMESPACE)
        .stdin_bytes(data.to_vec())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| failed(format!("cannot run ssh-keygen: {e}")))?;
    if !out.status.success() || !out.stdout.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(failed(if why.is_empty() {
            format!("ssh-keygen exited {}", out.status)
        } else {
            why
        }));
    }
    Ok(out.stdout)
}

/// The request body: the signature, `&`, the report (as curl joins upstream's two
/// `--data-binary` files; the monitor splits at `-----END SSH SIGNATURE-----\n&`).
pub fn body(signature: &[u8], report: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(signature.len() + 1 + report.len());
    b.extend_from_slice(signature);
    if !signature.ends_with(b"\n") {
        b.push(b'\n');
    }
    b.push(b'&');
    b.extend_from_slice(report);
    b
}

/// FastAPI's `{"detail": ...}`, else the body as text.
fn detail(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("detail")
                .map(|d| d.as_str().map(str::to_string).unwrap_or_else(|| d.to_string()))
        })
        .unwrap_or_else(|| body.trim().chars().take(300).collect())
}

/// Signs `report` and posts it; 5xx answers and failed connections are retried with a doubling
/// wait. `say` gets a line per retry.
pub async fn upload(u: &Upload, report: &[u8], say: &(dyn Fn(&str) + Sync)) -> Result<Uploaded, UploadError> {
    let signature = sign(&u.key, report)?;
    let url = reports_url(&u.url);
    let payload = body(&signature, report);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| UploadError::Unreachable {
            url: url.clone(),
            why: e.to_string(),
        })?;
    let mut wait = u.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-signed-yaml")
            .basic_auth(&u.user, Some(&u.password))
            .body(payload.clone())
            .send()
            .await;
        let retry = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                match status {
                    200..=299 => return Ok(Uploaded::Stored),
                    409 => return Ok(Uploaded::AlreadyThere),
                    401 | 403 => {
                        return Err(UploadError::Unauthorized {
                            url,
                            user: u.user.clone(),
                            key: u.key.display().to_string(),
                            detail: detail(&text),
                        });
                    }
                    500..=599 => UploadError::Refused {
                        url: url.clone(),
                        status,
                        detail: detail(&text),
                    },
                    _ => {
                        return Err(UploadError::Refused {
                            url,
                            status,
                            detail: detail(&text),
                        });
                    }
                }
            }
            Err(e) => UploadError::Unreachable {
                url: url.clone(),
                why: e.without_url().to_string(),
            },
        };
        if attempt > u.retries {
            return Err(retry);
        }
        say(&format!(
            "upload attempt {attempt} failed ({retry}); trying again in {}",
            humantime::format_duration(wait)
        ));
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

/// The `--sign`/`--upload` flags of `check` and `report upload`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UploadArgs {
    /// Sign the compliance report with this SSH private key (`ssh-keygen -Y sign -n report`).
    #[arg(long, value_name = "KEYFILE", requires = "upload")]
    pub sign: Option<PathBuf>,
    /// Upload the signed report to this compliance monitor (its address, e.g.
    /// https://compliance.sovereignit.cloud/, or its /reports URL); the account's password comes
    /// from SCS_E2E_UPLOAD_PASSWORD.
    #[arg(long, value_name = "URL", requires = "sign")]
    pub upload: Option<String>,
    /// The monitor account (default: the report's subject, as upstream's tokens have it).
    #[arg(long, value_name = "USER", requires = "upload")]
    pub upload_user: Option<String>,
    /// Further tries after a 5xx answer or no answer, waiting 2 s, 4 s, ...
    #[arg(long, default_value_t = 3, requires = "upload")]
    pub upload_retries: u32,
}

impl UploadArgs {
    /// The upload these flags ask for, if any, for a report about `subject`; the password is read
    /// from [`PASSWORD_ENV`] (missing: an error naming it).
    pub fn resolve(&self, subject: &str) -> Result<Option<Upload>, crate::error::Invalid> {
        let (Some(key), Some(url)) = (&self.sign, &self.upload) else {
            return Ok(None);
        };
        if !key.is_file() {
            return Err(format!("--sign {}: no such key file", key.display()).into());
        }
        let password = std::env::var(PASSWORD_ENV)
            .map_err(|_| format!("--upload needs the monitor account's password in {PASSWORD_ENV} (never on the command line)"))?;
        crate::redact::add(&password);
        Ok(Some(Upload {
            url: url.clone(),
            user: self.upload_user.clone().unwrap_or_else(|| subject.to_string()),
            password,
            key: key.clone(),
            retries: self.upload_retries,
            backoff: Duration::from_secs(2),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reports_url_and_the_body_are_upstreams() {
        for given in [
            "https://compliance.sovereignit.cloud",
            "https://compliance.sovereignit.cloud/",
            "https://compliance.sovereignit.cloud/reports",
            "https://compliance.sovereignit.cloud/reports/",
        ] {
            assert_eq!(reports_url(given), "https://compliance.sovereignit.cloud/reports", "{given}");
        }
        let sig = b"-----BEGIN SSH SIGNATURE-----\nabc\n-----END SSH SIGNATURE-----\n";
        assert_eq!(
            body(sig, b"---\nspec: x\n"),
            b"-----BEGIN SSH SIGNATURE-----\nabc\n-----END SSH SIGNATURE-----\n&---\nspec: x\n"
        );
        assert_eq!(detail(r#"{"detail": "verification failed"}"#), "verification failed");
        assert_eq!(detail("plain text"), "plain text");
    }
}
