//! `check --sign --upload` and `report upload` against a loopback compliance monitor that does
//! with `POST /reports` what upstream's compliance-monitor/monitor.py does (standards 077174d):
//! 415 for another content type, 401 for the account, a missing signature or one that
//! `ssh-keygen -Y verify -n report` rejects for the account's key, or a subject the account may
//! not report; 409 for a run uuid it has; 200 `null` when stored.

use crate::common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

const USER: &str = "acme";
const PASSWORD: &str = "canary-monitor-pw-7d21";
const SEP: &str = "-----END SSH SIGNATURE-----\n&";

#[derive(Default)]
struct State {
    /// What was stored: the signed bytes, as the monitor keeps them.
    stored: Vec<Vec<u8>>,
    uuids: HashSet<String>,
    /// Answer this many requests with 503 first.
    unavailable: usize,
}

struct Monitor {
    url: String,
    state: Arc<Mutex<State>>,
}

fn key(dir: &Path, name: &str) -> PathBuf {
    let k = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&k)
        .status()
        .unwrap();
    assert!(st.success());
    k
}

/// The monitor's verification: `ssh-keygen -Y verify` with the account's public key.
fn verified(public: &str, signature: &str, data: &[u8], dir: &Path) -> bool {
    let allowed = dir.join("allowed_signers");
    let sig = dir.join("report.sig");
    std::fs::write(&allowed, format!("mail@csp.eu {public}")).unwrap();
    std::fs::write(&sig, signature).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed)
        .args(["-I", "mail@csp.eu", "-n", "report", "-s"])
        .arg(&sig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait().unwrap().success()
}

fn answer(st: &Mutex<State>, public: &str, dir: &Path, content_type: Option<&str>, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let detail = |s: &str| serde_json::json!({ "detail": s }).to_string();
    if content_type != Some("application/x-signed-yaml") {
        return (415, detail("Unsupported Media Type"));
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if auth != Some(expected.as_str()) {
        return (401, detail("Incorrect username or password"));
    }
    {
        let mut s = st.lock().unwrap();
        if s.unavailable > 0 {
            s.unavailable -= 1;
            return (503, "Service Unavailable".into());
        }
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let Some(at) = text.find(SEP) else {
        return (401, detail("missing signature"));
    };
    let end = at + SEP.len();
    let (signature, data) = (&text[..end - 1], &text[end..]);
    if !verified(public, signature, data.as_bytes(), dir) {
        return (401, detail("verification failed"));
    }
    let doc: serde_json::Value = serde_saphyr::from_str(data).unwrap();
    if doc["subject"] != USER {
        return (401, detail("delegation problem?"));
    }
    let uuid = doc["run"]["uuid"].as_str().unwrap().to_string();
    let mut s = st.lock().unwrap();
    if !s.uuids.insert(uuid) {
        return (409, detail("Conflict: report already present"));
    }
    s.stored.push(data.as_bytes().to_vec());
    (200, "null".into())
}

impl Monitor {
    async fn start(public_key: &Path, dir: &Path) -> Monitor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let public = std::fs::read_to_string(public_key).unwrap();
        // `ssh-ed25519 AAAA... comment`: the allowed_signers line takes type and key.
        let public: String = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let state = Arc::new(Mutex::new(State::default()));
        let (st, work) = (state.clone(), dir.to_path_buf());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (st, public, work) = (st.clone(), public.clone(), work.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (st, public, work) = (st.clone(), public.clone(), work.clone());
                        async move {
                            let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                            let (ct, auth) = (header("content-type"), header("authorization"));
                            let route = (req.method().clone(), req.uri().path().to_string());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let (status, text) = if route == (hyper::Method::POST, "/reports".into()) {
                                tokio::task::spawn_blocking(move || {
                                    answer(&st.clone(), &public, &work, ct.as_deref(), auth.as_deref(), &body)
                                })
                                .await
                                .unwrap()
                            } else {
                                (404, "{\"detail\":\"Not Found\"}".into())
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Monitor { url, state }
    }
}

/// `scs-e2e ARGS` in `dir`, the password in the environment if given: exit code and output.
fn scs(dir: &Path, args: &[&str], password: Option<&str>) -> (Option<i32>, String) {
    let mut c = Command::new(common::bin());
    c.args(args)
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .env_remove("SCS_E2E_UPLOAD_PASSWORD");
    if let Some(p) = password {
        c.env("SCS_E2E_UPLOAD_PASSWORD", p);
    }
    let out = c.output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_signed_and_uploaded_as_upstream_does_and_the_monitors_answers_are_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registered = key(dir, "keyfile");
    let stranger = key(dir, "other-key");
    let monitor = Monitor::start(&registered.with_extension("pub"), dir).await;
    // A cluster that is not there: the check ABORTs at once (one CRITICAL line, count 1) and still
    // writes its report.
    std::fs::write(
        dir.join("gone.kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: x}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let key_arg = registered.to_str().unwrap();
    fn check<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let head = [
            "check",
            "-s",
            USER,
            "-a",
            "kubeconfig=gone.kubeconfig",
            "-t",
            "node-distribution",
            "-o",
            "report.yaml",
        ];
        head.iter()
            .copied()
            .chain(extra.iter().copied())
            .chain(["scs-compatible-kaas"])
            .collect()
    }
    let texts = Mutex::new(Vec::new());
    let run = |args: &[&str], password: Option<&str>| {
        let (code, text) = scs(dir, args, password);
        texts.lock().unwrap().push(text.clone());
        (code, text)
    };

    // No password: refused before anything is checked.
    let (code, text) = run(&check(&["--sign", key_arg, "--upload", &monitor.url]), None);
    assert!(code == Some(2) && text.contains("SCS_E2E_UPLOAD_PASSWORD"), "{text}");
    assert!(!dir.join("report.yaml").exists(), "nothing was checked");

    // Checked, signed, uploaded: the exit code stays the check's count; the monitor verified the
    // signature with the account's key and holds the very bytes of report.yaml.
    let (code, text) = run(&check(&["--sign", key_arg, "--upload", &monitor.url]), Some(PASSWORD));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("uploaded: the monitor stored report"), "{text}");
    let on_disk = std::fs::read(dir.join("report.yaml")).unwrap();
    assert_eq!(monitor.state.lock().unwrap().stored, vec![on_disk.clone()]);

    // The same report again, by `report upload`: 409, which counts as uploaded.
    let (code, text) = run(
        &[
            "report",
            "upload",
            "report.yaml",
            "--sign",
            key_arg,
            "--upload",
            &format!("{}reports", monitor.url),
        ],
        Some(PASSWORD),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("already uploaded"), "{text}");

    // A 5xx is retried: the second try is stored.
    monitor.state.lock().unwrap().unavailable = 1;
    let (code, text) = run(&check(&["--sign", key_arg, "--upload", &monitor.url]), Some(PASSWORD));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("upload attempt 1 failed") && text.contains("503"), "{text}");
    assert_eq!(monitor.state.lock().unwrap().stored.len(), 2);
    // ... but not forever: exit 125 from check, 3 from report upload; the report stays on disk.
    monitor.state.lock().unwrap().unavailable = 5;
    let (code, text) = run(
        &check(&["--sign", key_arg, "--upload", &monitor.url, "--upload-retries", "0"]),
        Some(PASSWORD),
    );
    assert_eq!(code, Some(125), "{text}");
    assert!(text.contains("answered 503") && dir.join("report.yaml").exists(), "{text}");

    // A key the monitor does not have for the account, or a wrong password: 401, naming the
    // key file and the account; nothing stored.
    monitor.state.lock().unwrap().unavailable = 0;
    let (code, text) = run(
        &[
            "report",
            "upload",
            "report.yaml",
            "--sign",
            stranger.to_str().unwrap(),
            "--upload",
            &monitor.url,
        ],
        Some(PASSWORD),
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("401: verification failed") && text.contains("other-key") && text.contains("account `acme`"),
        "{text}"
    );
    let (code, text) = run(
        &["report", "upload", "report.yaml", "--sign", key_arg, "--upload", &monitor.url],
        Some("wrong-password-1"),
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("Incorrect username or password") && text.contains("account `acme`"),
        "{text}"
    );
    // An account the monitor does not know: refused, nothing stored.
    let (code, text) = run(
        &[
            "report",
            "upload",
            "report.yaml",
            "--sign",
            key_arg,
            "--upload",
            &monitor.url,
            "--upload-user",
            "zuul_ci",
        ],
        Some(PASSWORD),
    );
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(monitor.state.lock().unwrap().stored.len(), 2);

    // The password is in no output and no file.
    for t in texts.lock().unwrap().iter() {
        assert!(!t.contains(PASSWORD), "{t}");
    }
    for e in std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.path().is_file()) {
        assert!(!String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).contains(PASSWORD));
    }
}
