//! The OpenStack identity client against a real Keystone (PyPI, SQLite, loopback; see
//! `common/keystone.rs`).

use crate::common;

use common::keystone::{ADMIN_PASSWORD, admin_clouds};
use scs_e2e::env::openstack::clouds::{Lookup, load};
use scs_e2e::env::openstack::identity::{IdentityError, Session};
use serde_json::{Value, json};

async fn keystone(expiration: u64) -> common::keystone::Keystone {
    common::keystone::start(expiration, None).await
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
