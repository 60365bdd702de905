//! `cargo bench --bench version_policy`: the version-policy check's input loading against a
//! loopback HTTP server that answers every request after 20 ms (EOL data, one page of releases,
//! the CVE feed, 60 CVE records). Prints wall times for CVE fetches one at a time and with the
//! default bounded concurrency, and their ratio, and the process's peak RSS; caching is off so
//! every run hits the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scs_e2e::checks::Verdict;
use scs_e2e::checks::version_policy::{self, Options, Source, Sources};

const LATENCY: Duration = Duration::from_millis(20);
const CVES: usize = 60;

fn body_for(path: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let day = |d: i64| (now - chrono::TimeDelta::days(d)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if path == "/eol.yml" {
        let eol = |d: i64| (now + chrono::TimeDelta::days(d)).format("%Y-%m-%d").to_string();
        return format!(
            "- branch: '1.33'\n  end-of-life: '{}'\n- branch: '1.34'\n  end-of-life: '{}'\n- branch: '1.35'\n  end-of-life: '{}'\n",
            eol(100),
            eol(220),
            eol(340)
        )
        .into_bytes();
    }
    if path == "/releases" {
        // One page; a server that ignores `page` answers the same again, which ends pagination.
        return serde_json::to_vec(&serde_json::json!([
            {"tag_name": "v1.33.13", "draft": false, "prerelease": false, "published_at": day(60)},
            {"tag_name": "v1.33.14", "draft": false, "prerelease": false, "published_at": day(10)},
        ]))
        .unwrap();
    }
    if path == "/feed.json" {
        let items: Vec<_> = (0..CVES).map(|i| serde_json::json!({"id": format!("CVE-2099-{i:04}")})).collect();
        return serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap();
    }
    let id = path.trim_start_matches("/cve/");
    serde_json::to_vec(&serde_json::json!({
        "cveMetadata": {"cveId": id},
        "containers": {"cna": {
            "metrics": [{"cvssV3_1": {"baseScore": 5.0}}],
            "affected": [{"product": "Kubernetes", "versions": [{"version": "1.30.0", "lessThan": "1.30.2", "status": "affected"}]}],
        }},
    }))
    .unwrap()
}

async fn serve(hits: Arc<AtomicUsize>) -> String {
    let now = chrono::Utc::now();
    scs_e2e::testing::serve_http(LATENCY, move |target| {
        hits.fetch_add(1, Ordering::SeqCst);
        (200, body_for(target.split('?').next().unwrap_or("/"), now))
    })
    .await
}

fn sources(base: &str) -> Sources {
    Sources {
        eol: Source::Url(format!("{base}/eol.yml")),
        releases: Source::Url(format!("{base}/releases")),
        cve_feed: Source::Url(format!("{base}/feed.json")),
        cve_record_base: Source::Url(format!("{base}/cve/")),
    }
}

/// Peak resident memory of this process (ru_maxrss), in MiB.
fn peak_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

/// The env var that makes this binary the measured child: one check's loading against the
/// parent's server, then its peak RSS on stdout (the server's memory is the parent's).
const CHILD: &str = "SCS_E2E_BENCH_VP_CHILD";

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench binaries; nothing to list here.
    }
    // The product's runtime: multi-threaded, as `scs-e2e check` runs.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if let Ok(base) = std::env::var(CHILD) {
        rt.block_on(async {
            let out = version_policy::run("v1.33.13", &sources(&base), &Options::default(), chrono::Utc::now()).await;
            assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        });
        println!("{:.1}", peak_rss_mib());
        return;
    }
    rt.block_on(async {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(hits.clone()).await;
        let sources = sources(&base);
        let default_concurrency = Options::default().concurrency;
        let mut times = Vec::new();
        for concurrency in [1, default_concurrency] {
            let opts = Options {
                cache_dir: None,
                concurrency,
                ..Options::default()
            };
            let mut best = Duration::MAX;
            for _ in 0..3 {
                let before = hits.load(Ordering::SeqCst);
                let t0 = Instant::now();
                let out = version_policy::run("v1.33.13", &sources, &opts, chrono::Utc::now()).await;
                let took = t0.elapsed();
                assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
                // EOL, two identical release pages, the feed, every record.
                assert_eq!(hits.load(Ordering::SeqCst) - before, 4 + CVES);
                best = best.min(took);
            }
            println!(
                "version-policy, {CVES} CVE records, {} ms latency, concurrency {concurrency:>2}: {:>6.0} ms (best of 3)",
                LATENCY.as_millis(),
                best.as_secs_f64() * 1000.0
            );
            times.push(best);
        }
        println!(
            "speed-up with concurrency {default_concurrency}: {:.1}x",
            times[0].as_secs_f64() / times[1].as_secs_f64()
        );
        // One check's loading in a process of its own (runtime, HTTP client, the loaded inputs),
        // the server left in this one.
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD, &base)
            .output()
            .await
            .unwrap();
        assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
        println!(
            "peak RSS of a process loading the inputs once (concurrency {default_concurrency}): {} MiB; of this bench process (server, {} runs): {:.1} MiB",
            String::from_utf8_lossy(&child.stdout).trim(),
            times.len() * 3,
            peak_rss_mib()
        );
    });
}
