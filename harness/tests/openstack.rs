//! The OpenStack identity client against a real Keystone (PyPI, SQLite, loopback), started by
//! `fixtures/keystone/keystone.sh` (its virtualenv is built once into the cache).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scs_e2e::env::openstack::clouds::{Lookup, load};
use scs_e2e::env::openstack::identity::{IdentityError, Session};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "canary-admin-pw-7f3a";

struct Keystone {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start-ups one at a time: the first builds the shared virtualenv, which must not happen twice
/// at once.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts Keystone with tokens valid for `expiration` seconds and waits until `/v3` answers.
async fn keystone(expiration: u64) -> Keystone {
    let _one_at_a_time = STARTING.lock().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/keystone/keystone.sh");
    let venv = scs_e2e::config::cache_root().join("keystone-venv");
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(state.path().join("script.log")).unwrap();
    let child = Command::new("sh")
        .arg(&script)
        .arg(&venv)
        .arg(state.path())
        .arg(port.to_string())
        .env("KEYSTONE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("KEYSTONE_TOKEN_EXPIRATION", expiration.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut k = Keystone {
        child,
        port,
        _state: state,
    };
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v3");
    // A process start-up (the first one also builds the virtualenv): nothing to watch, so poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return k;
        }
        if let Ok(Some(st)) = k.child.try_wait() {
            let log = std::fs::read_to_string(k._state.path().join("script.log")).unwrap_or_default();
            panic!("keystone.sh exited ({st}):\n{log}");
        }
        assert!(std::time::Instant::now() < deadline, "Keystone did not answer on {url}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cloud_file(dir: &std::path::Path, text: &str) -> scs_e2e::env::openstack::clouds::Cloud {
    std::fs::write(dir.join("clouds.yaml"), text).unwrap();
    load(&Lookup {
        cwd: dir.to_path_buf(),
        etc: dir.join("none"),
        ..Default::default()
    })
    .unwrap()
}

fn admin_clouds(port: u16, password: &str) -> String {
    format!(
        "clouds:\n  lab:\n    auth: {{auth_url: 'http://127.0.0.1:{port}', username: admin, password: '{password}', project_name: admin, user_domain_name: Default, project_domain_name: Default}}\n    region_name: RegionOne\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_application_credential_logins_the_catalog_and_reauth() {
    let k = keystone(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = cloud_file(dir.path(), &admin_clouds(k.port, ADMIN_PASSWORD));
    let s = Session::login(&admin).await.unwrap();
    let identity = s.endpoint("identity").unwrap();
    assert_eq!(identity, format!("http://127.0.0.1:{}/v3", k.port));
    let e = s.endpoint("compute").unwrap_err().to_string();
    assert!(e.contains("no compute endpoint") && e.contains("identity"), "{e}");

    // A revoked token: the next call gets 401, logs in again and succeeds.
    let old = s.current_token().await;
    let r = reqwest::Client::new()
        .delete(format!("{identity}/auth/tokens"))
        .header("X-Auth-Token", &old)
        .header("X-Subject-Token", &old)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = s.get(&format!("{identity}/projects")).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(s.logins(), 2);

    // An application credential made through the API, then used to log in.
    let user = s.user_id.clone().unwrap();
    let r = s
        .send(
            reqwest::Method::POST,
            &format!("{identity}/users/{user}/application_credentials"),
            Some(&json!({"application_credential": {"name": "e2e", "secret": "canary-appcred-9c1d"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    let id = body["application_credential"]["id"].as_str().unwrap().to_string();
    let ac = cloud_file(
        dir.path(),
        &format!(
            "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    auth: {{auth_url: 'http://127.0.0.1:{}/v3', application_credential_id: {id}, application_credential_secret: canary-appcred-9c1d}}\n",
            k.port
        ),
    );
    let s2 = Session::login(&ac).await.unwrap();
    assert_eq!(s2.project_id, s.project_id);

    // Wrong secrets: Keystone's refusal, without the secret in the message.
    let bad = cloud_file(dir.path(), &admin_clouds(k.port, "canary-wrong-pw-51b2"));
    let e = Session::login(&bad).await.err().unwrap();
    assert!(matches!(e, IdentityError::Refused { status: 401, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("refused the password login (401)") && !text.contains("canary-wrong-pw-51b2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_its_expiry_is_renewed_before_use() {
    // Tokens live 30 s, less than the client's 60 s margin: every use logs in anew.
    let k = keystone(30).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Session::login(&cloud_file(dir.path(), &admin_clouds(k.port, ADMIN_PASSWORD)))
        .await
        .unwrap();
    let first = s.current_token().await;
    let t = s.token().await.unwrap();
    assert_eq!(s.logins(), 2);
    assert_ne!(t, first);
    let r = s.get(&format!("http://127.0.0.1:{}/v3/projects", k.port)).await.unwrap();
    assert!(r.status().is_success());
}
