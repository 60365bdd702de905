//! Faults: the API server killed, restarted and paused under a running wait; `lab up` failing
//! half way; stale directories, busy ports, no Go toolchain, no module proxy.

use crate::common;

use std::time::Duration;

use common::*;
use scs_e2e::env::lab::{Lab, LabError};
use scs_e2e::kube::{Target, Verdict, WaitError, conditions, describe_conditions, wait_until};

/// Starts a wait for Ready=True on Gadget `g`; resolves the returned receiver once the wait has
/// seen the initial state.
fn start_wait(
    client: &kube::Client,
    ns: &str,
    timeout: Duration,
) -> (tokio::sync::oneshot::Receiver<()>, tokio::task::JoinHandle<Result<(), WaitError>>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let api = gadget_api(client, ns);
    let deadline = tokio::time::Instant::now() + timeout;
    let h = tokio::spawn(async move {
        wait_until(api, &Target::Name("g".into()), deadline, |objs| {
            if let Some(t) = tx.take() {
                let _ = t.send(());
            }
            match objs.get("g") {
                Some(o) if conditions(o).iter().any(|c| c.type_ == "Ready" && c.status == "True") => Verdict::Done,
                Some(o) => Verdict::Pending(format!("Gadget/g: {}", describe_conditions(o))),
                None => Verdict::Pending("Gadget/g does not exist".into()),
            }
        })
        .await
        .map(|_| ())
    });
    (rx, h)
}

#[tokio::test]
async fn a_wait_survives_an_apiserver_kill_and_restart() {
    let lab = Lab::start(lab_options("restart")).await.unwrap();
    let client = client_for(&lab).await;
    let ns = namespace(&client, "restart").await;
    gadget(&step_ctx(&lab, client.clone(), &ns, Duration::from_secs(60)), "g").await;
    set_condition(&client, &ns, "g", "Ready", "False", "Waiting").await;
    let (synced, waiter) = start_wait(&client, &ns, Duration::from_secs(90));
    synced.await.unwrap();

    lab.kill("kube-apiserver").await;
    assert!(!waiter.is_finished(), "a dead API server is no reason to fail the wait");
    lab.restart_apiserver().await.unwrap();
    let fresh = client_for(&lab).await;
    set_condition(&fresh, &ns, "g", "Ready", "True", "Done").await;

    waiter
        .await
        .unwrap()
        .expect("the wait completes after the restart, without a false failure");
    lab.stop().await.unwrap();
}

#[tokio::test]
async fn a_wait_against_a_paused_apiserver_times_out_naming_the_last_state() {
    let lab = Lab::start(lab_options("pause")).await.unwrap();
    let client = client_for(&lab).await;
    let ns = namespace(&client, "pause").await;
    gadget(&step_ctx(&lab, client.clone(), &ns, Duration::from_secs(60)), "g").await;
    set_condition(&client, &ns, "g", "Ready", "False", "Provisioning").await;
    let (synced, waiter) = start_wait(&client, &ns, Duration::from_secs(3));
    synced.await.unwrap();
    assert!(lab.pause("kube-apiserver"));
    let res = waiter.await.unwrap();
    assert!(lab.resume("kube-apiserver"));
    match res {
        Err(WaitError::Timeout { last, .. }) => {
            assert!(last.contains("Gadget/g: Ready=False (Provisioning): set by test"), "{last}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    lab.stop().await.unwrap();
}

#[tokio::test]
async fn lab_up_failing_half_way_leaves_no_process_behind() {
    // A controller manager that dies at once: etcd and the API server are up by then.
    let mut opts = lab_options("halfway");
    let real = opts.assets.bin_dir.clone();
    let fake = opts.dir.with_extension("bin");
    std::fs::create_dir_all(&fake).unwrap();
    for b in ["etcd", "kube-apiserver"] {
        std::os::unix::fs::symlink(real.join(b), fake.join(b)).unwrap();
    }
    let kcm = fake.join("kube-controller-manager");
    std::fs::write(&kcm, "#!/bin/sh\necho 'cannot start: injected failure' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&kcm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    opts.assets = scs_e2e::env::lab::build::Assets::locate(Some(fake.clone()), None);
    let dir = opts.dir.clone();

    let err = match Lab::start(opts).await {
        Err(e) => e,
        Ok(_) => panic!("the lab must not come up"),
    };
    match &err {
        LabError::Exited { name, tail, .. } => {
            assert_eq!(name, "kube-controller-manager");
            assert!(tail.contains("injected failure"), "{tail}");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(
        processes_mentioning(&dir.display().to_string()),
        Vec::<u32>::new(),
        "stray lab processes"
    );
    assert!(dir.join("logs/kube-apiserver.log").exists(), "logs stay for debugging");
    assert!(!dir.join("lab.json").exists(), "no state of a lab that does not exist");
}

#[tokio::test]
async fn a_second_lab_in_a_used_directory_is_refused() {
    let opts = lab_options("twice");
    let lab = Lab::start(opts.clone()).await.unwrap();
    match Lab::start(opts.clone()).await {
        Err(LabError::Running { dir, .. }) => assert_eq!(dir, opts.dir.display().to_string()),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("two labs in one directory"),
    }
    // Kill everything without cleaning up: the directory is now stale.
    for n in ["kube-controller-manager", "kube-apiserver", "etcd"] {
        lab.kill(n).await;
    }
    match Lab::start(opts.clone()).await {
        Err(e @ LabError::Stale { .. }) => assert!(e.to_string().contains("lab down --dir"), "{e}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("started over a stale directory"),
    }
    scs_e2e::env::lab::down_dir(&opts.dir).unwrap();
    assert!(!opts.dir.exists());
    drop(lab);
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut opts = lab_options("port");
    opts.apiserver_port = Some(port);
    match Lab::start(opts.clone()).await {
        Err(e @ LabError::PortInUse { .. }) => {
            assert!(e.to_string().contains(&format!("port {port} on 127.0.0.1 is in use")), "{e}");
            assert!(e.to_string().contains("--apiserver-port"), "{e}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("started on a busy port"),
    }
    assert_eq!(processes_mentioning(&opts.dir.display().to_string()), Vec::<u32>::new());
}

#[test]
fn lab_install_without_go_says_how_to_get_it() {
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["lab", "install", "--cache-dir"])
        .arg(cache.path())
        .env("PATH", "/nonexistent")
        .env_remove("SCS_E2E_LAB_BIN_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("the Go toolchain (`go`) is not on PATH"), "{err}");
    assert!(err.contains("SCS_E2E_LAB_BIN_DIR"), "{err}");
}

#[test]
fn lab_install_without_module_proxy_names_the_proxy_and_the_fix() {
    let cache = tempfile::tempdir().unwrap();
    let modcache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["lab", "install", "--cache-dir"])
        .arg(cache.path())
        .env("GOPROXY", "off")
        .env("GOMODCACHE", modcache.path())
        .env("GOFLAGS", "-modcacherw")
        .env_remove("SCS_E2E_LAB_BIN_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("downloading Go modules for etcd failed (GOPROXY=off)"), "{err}");
    assert!(err.contains("fix: check that the Go module proxy is reachable"), "{err}");
    assert!(
        !cache
            .path()
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.path().join("bin/etcd").exists()),
        "no partial binary"
    );
}

#[tokio::test]
async fn fault_injection_is_a_capability_of_the_lab_environment_only() {
    use scs_e2e::env::Environment;
    let mut env = scs_e2e::env::lab::LabEnv::new(lab_options("capability"), false);
    env.up().await.unwrap();
    let faults = env.faults().expect("the lab offers fault injection");
    assert_eq!(faults.processes(), ["etcd", "kube-apiserver", "kube-controller-manager"]);
    let e = faults.kill("kubelet").await.unwrap_err().to_string();
    assert!(e.contains("the lab has no process `kubelet`"), "{e}");
    faults.kill("kube-controller-manager").await.unwrap();
    faults.restart("kube-controller-manager").await.unwrap();
    faults.pause("etcd").unwrap();
    faults.resume("etcd").unwrap();
    let client = client_for(env.lab().unwrap()).await;
    client.apiserver_version().await.expect("the API server serves after the faults");
    env.down().await.unwrap();

    let other = scs_e2e::env::kubeconfig::KubeconfigEnv::new(lab().kubeconfig());
    assert!(other.faults().is_none(), "an existing cluster is not ours to disturb");
}
