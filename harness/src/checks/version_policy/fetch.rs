//! Where inputs come from (files, URLs, a mirror directory) and loading them: an on-disk cache,
//! bounded concurrency, pagination of the GitHub releases API.

use super::*;

/// Default EOL data: `k8s-eol-data.yml` in the SCS standards repository.
pub const EOL_DATA_URL: &str =
    "https://raw.githubusercontent.com/SovereignCloudStack/standards/main/Tests/kaas/scs_0210_version_policy/k8s-eol-data.yml";
/// Default releases: the GitHub releases API of kubernetes/kubernetes (paginated).
pub const RELEASES_URL: &str = "https://api.github.com/repos/kubernetes/kubernetes/releases";
/// Default CVE feed: the official Kubernetes CVE feed (JSON Feed).
pub const CVE_FEED_URL: &str = "https://kubernetes.io/docs/reference/issues-security/official-cve-feed/index.json";
/// Default CVE records: the CVE services API, `<this><CVE-ID>`.
pub const CVE_RECORD_BASE_URL: &str = "https://cveawg.mitre.org/api/cve/";

pub(super) const GITHUB_API: &str = "https://api.github.com/";
pub(super) const PER_PAGE: usize = 100;
/// Kubernetes has about a thousand releases; far more pages means a server that ignores `page`.
pub(super) const MAX_RELEASE_PAGES: usize = 100;

/// Where one input comes from: a local file (offline, air-gapped) or a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local file (for CVE records: a directory).
    File(PathBuf),
    /// An `http(s)://` URL.
    Url(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
        }
    }
}

/// `http(s)://…` is a URL, `file://…` or anything else a path.
impl FromStr for Source {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.to_string())
        } else {
            Source::File(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
        })
    }
}

/// The four inputs of the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    /// `k8s-eol-data.yml`
    pub eol: Source,
    /// GitHub releases: a URL is paginated, a file holds one JSON array.
    pub releases: Source,
    /// The official Kubernetes CVE feed (JSON Feed).
    pub cve_feed: Source,
    /// URL prefix for `<CVE-ID>`, or a directory of `<CVE-ID>.json` records.
    pub cve_record_base: Source,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            eol: Source::Url(EOL_DATA_URL.into()),
            releases: Source::Url(RELEASES_URL.into()),
            cve_feed: Source::Url(CVE_FEED_URL.into()),
            cve_record_base: Source::Url(CVE_RECORD_BASE_URL.into()),
        }
    }
}

impl Sources {
    /// A mirror directory: `k8s-eol-data.yml`, `releases.json`, `cve-feed.json`, `cve/<CVE-ID>.json`.
    pub fn from_dir(dir: &Path) -> Self {
        Sources {
            eol: Source::File(dir.join("k8s-eol-data.yml")),
            releases: Source::File(dir.join("releases.json")),
            cve_feed: Source::File(dir.join("cve-feed.json")),
            cve_record_base: Source::File(dir.join("cve")),
        }
    }
}

/// CVE records fetched at once by default: the feed's ~60 records in three waves, over reused
/// connections (upstream holds 5 connections and takes twelve waves). `--cve-concurrency` lowers
/// it for a CVE services API that asks for less.
pub const DEFAULT_CONCURRENCY: usize = 24;
/// The most `--cve-concurrency` may ask for.
pub const MAX_CONCURRENCY: usize = 64;

/// How inputs are loaded: caching and concurrency.
/// Default: no cache, a 6-hour TTL, [`DEFAULT_CONCURRENCY`] CVE records at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Where URL sources are cached; no caching without one.
    pub cache_dir: Option<PathBuf>,
    /// How long a cached answer stands in for the network.
    pub ttl: Duration,
    /// CVE records fetched at once.
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_dir: None,
            ttl: Duration::from_secs(6 * 3600),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// The testcase: loads the inputs and decides for the cluster's `gitVersion` at `now`.
/// Anything that cannot be read or parsed is an ABORT with a CRITICAL message.
pub async fn run(client_version: &str, sources: &Sources, opts: &Options, now: DateTime<Utc>) -> Outcome {
    let cluster = match parse_version(client_version) {
        Ok(v) => v,
        Err(e) => {
            return Outcome::new(Verdict::Abort).with(Level::Critical, format!("Cannot read the cluster version: {e}"));
        }
    };
    match load(sources, opts).await {
        Ok(inputs) => evaluate(cluster, &inputs, now),
        Err(e) => Outcome::new(Verdict::Abort).with(Level::Critical, format!("Could not complete {TESTCASE}: {e:#}")),
    }
}

/// The `gitVersion` of the cluster's `/version`.
pub async fn cluster_version(client: &kube::Client) -> anyhow::Result<String> {
    let info = client.apiserver_version().await.context("cannot read /version of the cluster")?;
    Ok(info.git_version)
}

/// Loads all inputs; `GITHUB_TOKEN`, if set, authenticates the GitHub API requests.
pub async fn load(sources: &Sources, opts: &Options) -> anyhow::Result<Inputs> {
    let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.trim().is_empty());
    Fetcher::new(opts, token)?.inputs(sources).await
}

// The token must never reach another host, mirrors included.
pub(super) fn auth_for<'t>(url: &str, token: Option<&'t str>) -> Option<&'t str> {
    token.filter(|_| url.starts_with(GITHUB_API))
}

pub(super) fn join_url(prefix: &str, id: &str) -> String {
    if prefix.ends_with('/') {
        format!("{prefix}{id}")
    } else {
        format!("{prefix}/{id}")
    }
}

pub(super) fn page_url(base: &str, page: usize) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}per_page={PER_PAGE}&page={page}")
}

pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

pub(super) struct Fetcher {
    http: reqwest::Client,
    cache_dir: Option<PathBuf>,
    ttl: Duration,
    concurrency: usize,
    github_token: Option<String>,
}

impl Fetcher {
    fn new(opts: &Options, github_token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("scs-e2e/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Fetcher {
            http,
            cache_dir: opts.cache_dir.clone(),
            ttl: opts.ttl,
            concurrency: opts.concurrency.max(1),
            github_token,
        })
    }

    async fn inputs(&self, sources: &Sources) -> anyhow::Result<Inputs> {
        let eol = async {
            self.load(&sources.eol, "*/*", parse_eol_data)
                .await
                .with_context(|| format!("cannot load the EOL data from {}", sources.eol))
        };
        let releases = async {
            self.releases(&sources.releases)
                .await
                .with_context(|| format!("cannot load the Kubernetes releases from {}", sources.releases))
        };
        let cves = self.cves(&sources.cve_feed, &sources.cve_record_base);
        let (eol, releases, cves) = tokio::try_join!(eol, releases, cves)?;
        Ok(Inputs { eol, releases, cves })
    }

    async fn releases(&self, source: &Source) -> anyhow::Result<Vec<Release>> {
        let base = match source {
            Source::File(p) => return parse_releases(&tokio::fs::read(p).await?),
            Source::Url(u) => u,
        };
        let mut all: Vec<RawRelease> = Vec::new();
        let mut previous: Option<Vec<RawRelease>> = None;
        for page in 1..=MAX_RELEASE_PAGES {
            let url = page_url(base, page);
            let items: Vec<RawRelease> = self.get(&url, "application/vnd.github+json", parse_json).await?;
            // A plain file server ignores the query and answers every page alike.
            if items.is_empty() || previous.as_ref() == Some(&items) {
                return releases_from_raw(all);
            }
            all.extend(items.iter().cloned());
            previous = Some(items);
        }
        bail!("more than {MAX_RELEASE_PAGES} pages of releases at {base}; does the server ignore `page`?")
    }

    async fn cves(&self, feed: &Source, base: &Source) -> anyhow::Result<Vec<CveRecord>> {
        let ids = self
            .load(feed, "application/json", parse_cve_feed)
            .await
            .with_context(|| format!("cannot load the CVE feed from {feed}"))?;
        // Owned ids: a closure taking `&String` makes rustc's higher-ranked `Send` check fail once
        // this runs inside an `async_trait` step (rust-lang/rust#102211).
        let mut records: Vec<CveRecord> = futures::stream::iter(ids)
            .map(|id| async move { self.cve_record(base, &id).await })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    async fn cve_record(&self, base: &Source, id: &str) -> anyhow::Result<CveRecord> {
        let source = match base {
            Source::File(dir) => Source::File(dir.join(format!("{id}.json"))),
            Source::Url(prefix) => Source::Url(join_url(prefix, id)),
        };
        self.load(&source, "application/json", |b| parse_cve_record(id, b))
            .await
            .with_context(|| format!("cannot load the record of {id} from {source}"))
    }

    async fn load<T>(&self, source: &Source, accept: &str, parse: impl Fn(&[u8]) -> anyhow::Result<T>) -> anyhow::Result<T> {
        match source {
            // Local files are read every time: caching them would hide edits.
            Source::File(p) => parse(&tokio::fs::read(p).await?),
            Source::Url(u) => self.get(u, accept, parse).await,
        }
    }

    /// A URL through the cache; only answers that parse are cached, so a captive portal's
    /// HTML page or a half-written file is never served from it.
    async fn get<T>(&self, url: &str, accept: &str, parse: impl Fn(&[u8]) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{:x}.body", Sha256::digest(url.as_bytes()))));
        if let Some(path) = &cached
            && let Some(bytes) = read_fresh(path, self.ttl).await
        {
            match parse(&bytes) {
                Ok(v) => return Ok(v),
                Err(e) => tracing::debug!("ignoring the cached copy of {url}: {e:#}"),
            }
        }
        let bytes = self.download(url, accept).await?;
        let value = parse(&bytes).with_context(|| format!("cannot parse {url}"))?;
        if let Some(path) = &cached
            && let Err(e) = crate::base::write_atomic(path, &bytes)
        {
            // A cache that cannot be written costs time, not correctness.
            tracing::warn!("cannot cache {url} in {}: {e}", path.display());
        }
        Ok(value)
    }

    async fn download(&self, url: &str, accept: &str) -> anyhow::Result<Vec<u8>> {
        let mut req = self.http.get(url).header(reqwest::header::ACCEPT, accept);
        if url.starts_with(GITHUB_API) {
            req = req.header("X-GitHub-Api-Version", "2022-11-28");
        }
        if let Some(token) = auth_for(url, self.github_token.as_deref()) {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let hint = if url.starts_with(GITHUB_API) && (status.as_u16() == 403 || status.as_u16() == 429) {
                " (GitHub rate limit? set GITHUB_TOKEN)"
            } else {
                ""
            };
            bail!("GET {url}: HTTP {status}{hint}");
        }
        Ok(resp.bytes().await.with_context(|| format!("GET {url}: reading the body"))?.to_vec())
    }
}

pub(super) async fn read_fresh(path: &Path, ttl: Duration) -> Option<Vec<u8>> {
    let modified = tokio::fs::metadata(path).await.ok()?.modified().ok()?;
    // A file from the future (clock skew) is not trusted to be fresh.
    let age = SystemTime::now().duration_since(modified).ok()?;
    if age >= ttl {
        return None;
    }
    tokio::fs::read(path).await.ok()
}
