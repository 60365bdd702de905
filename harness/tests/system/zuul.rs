//! The Zuul configuration in `zuul/` hangs together: every parent job, playbook, role, tasks file
//! and pipeline job it names exists (here, or in the documented lists of what SCS's Zuul
//! provides), every variable the playbooks use is defined for every job that runs them, and every
//! job variable is documented. Zuul itself only finds such mistakes when a job runs on the cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Jobs defined outside this repository, with the variables each provides to its children.
const EXTERNAL_JOBS: &[(&str, &[&str])] = &[
    // SCS's zuul-scs-jobs: the tenant's base job (checks out the repos, fetches zuul-output).
    ("base", &[]),
    // zuul-scs-jobs: writes /etc/openstack/clouds.yaml and secure.yaml with a temporary
    // application credential for `cloud`, holds semaphore-openstack-access.
    ("openstack-access-base", &["cloud"]),
    // Built into Zuul: succeeds without a node (SCS's unlabel pipelines run it).
    ("noop", &[]),
];

/// Roles from zuul-jobs, which the base job puts on the roles path (and .ansible-lint mocks).
const EXTERNAL_ROLES: &[&str] = &["ensure-docker", "ensure-rust"];

/// Nodesets of the SCS tenant (zuul-scs-jobs).
const EXTERNAL_NODESETS: &[&str] = &["ubuntu-jammy", "ubuntu-jammy-large"];

/// Pipelines of the SCS tenant (zuul-scs-jobs: gh_pipelines.yaml, timer_pipelines.yaml).
const EXTERNAL_PIPELINES: &[&str] = &[
    "check",
    "gate",
    "post",
    "tag",
    "e2e-test",
    "e2e-quick-test",
    "unlabel-on-update-e2e-test",
    "unlabel-on-update-e2e-quick-test",
    "periodic-hourly",
    "periodic-daily",
    "periodic-weekly",
];

/// Variables Zuul and Ansible define (besides every `ansible_*`).
const BUILTIN_VARS: &[&str] = &[
    "zuul",
    "zuul_success",
    "zuul_will_retry",
    "nodepool",
    "item",
    "omit",
    "inventory_hostname",
    "hostvars",
    "groups",
    "group_names",
    "playbook_dir",
    "role_path",
    "lookup",
    "query",
    "q",
    "range",
    "dict",
    "lipsum",
    "now",
];

/// Jinja words that are not variables.
const JINJA_WORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None",
];

/// A job's variables as its playbooks get them from Zuul: each from the nearest job of its
/// chain that sets it (the job's own value wins over its parents').
pub(crate) fn job_variables(job: &str) -> serde_json::Map<String, Value> {
    let mut p = Vec::new();
    let cfg = load_config(&repo(), &mut p);
    assert!(p.is_empty(), "{p:?}");
    assert!(cfg.jobs.contains_key(job), "job {job} in zuul/zuul.d");
    let mut out = serde_json::Map::new();
    for (k, v) in cfg.job_vars(job).1 {
        out.entry(k).or_insert(v);
    }
    out
}

/// What [`playbook`] did: whether ansible-playbook succeeded, and what it printed.
pub(crate) struct Played {
    pub ok: bool,
    pub output: String,
}

impl std::fmt::Display for Played {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ansible-playbook {}:\n{}",
            if self.ok { "succeeded" } else { "failed" },
            self.output
        )
    }
}

/// Runs one of our playbooks (`zuul/playbooks/NAME`) as Zuul runs it on a job's node:
/// ansible-playbook (the lint virtualenv's, fixtures/tools/lint-venv.sh) against localhost, with
/// `home` as the node's home, the job's variables from zuul/zuul.d, what Zuul provides
/// (`zuul.build`, `zuul.project.src_dir`) and the parent job (`cloud`: `openstack`), and `extra`
/// over them as a project's job variant would set them. The checkout is linked where Zuul puts
/// it and scs-e2e where the pre-run playbook installs it (pre-run itself downloads the tools,
/// which cannot run here: `env`'s PATH has them). `env` is the node's environment.
pub(crate) async fn playbook(name: &str, job: &str, home: &Path, extra: &Value, env: &[(&str, std::ffi::OsString)]) -> Played {
    let venv = tokio::process::Command::new("sh")
        .arg(repo().join("fixtures/tools/lint-venv.sh"))
        .output()
        .await
        .unwrap();
    assert!(venv.status.success(), "lint-venv.sh: {}", String::from_utf8_lossy(&venv.stderr));
    let venv = PathBuf::from(String::from_utf8(venv.stdout).unwrap().trim());
    let src_dir = "src/github.com/SovereignCloudStack/scs-e2e";
    for (link, target) in [
        (home.join(src_dir), repo()),
        (home.join(".local/bin/scs-e2e"), PathBuf::from(env!("CARGO_BIN_EXE_scs-e2e"))),
    ] {
        if !link.exists() {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &link).unwrap();
        }
    }
    let mut vars = job_variables(job);
    vars.insert(
        "zuul".into(),
        serde_json::json!({"build": format!("{:x}", std::process::id()), "project": {"src_dir": src_dir}}),
    );
    vars.insert("cloud".into(), Value::from("openstack"));
    // Ansible reads the home from the password database, not $HOME.
    vars.insert("ansible_user_dir".into(), Value::from(home.to_string_lossy()));
    vars.insert(
        "ansible_python_interpreter".into(),
        Value::from(venv.join("bin/python").to_string_lossy()),
    );
    vars.extend(extra.as_object().cloned().unwrap_or_default());
    let vars_file = home.join(format!("{name}.vars.json"));
    std::fs::write(&vars_file, serde_json::to_string(&vars).unwrap()).unwrap();
    let mut c = tokio::process::Command::new(venv.join("bin/ansible-playbook"));
    c.args(["-v", "-i", "localhost,", "-c", "local", "-e"])
        .arg(format!("@{}", vars_file.display()))
        .arg(repo().join("zuul/playbooks").join(name))
        .env_clear()
        .env("HOME", home)
        .env("ANSIBLE_LOCAL_TEMP", home.join(".ansible/tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("LANG", "C.UTF-8");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().await.unwrap();
    Played {
        ok: out.status.success(),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn load(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, Default)]
struct Job {
    parent: Option<String>,
    abstract_: bool,
    description: String,
    vars: serde_json::Map<String, Value>,
    nodeset: Option<String>,
    /// pre-run, run, post-run, cleanup-run, as written on this job.
    playbooks: BTreeMap<&'static str, Vec<String>>,
}

const PLAYBOOK_KEYS: [&str; 4] = ["pre-run", "run", "post-run", "cleanup-run"];

/// A playbook attribute: one path, or a list of paths or of `{name: path}`.
fn playbook_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().or_else(|| x.get("name").and_then(Value::as_str)))
            .map(String::from)
            .collect(),
        _ => vec![],
    }
}

struct Config {
    root: PathBuf,
    jobs: BTreeMap<String, Job>,
    /// (pipeline, job) pairs from the project stanzas.
    project_jobs: Vec<(String, String)>,
}

fn load_config(root: &Path, problems: &mut Vec<String>) -> Config {
    let mut jobs = BTreeMap::new();
    let mut project_jobs = Vec::new();
    let dir = root.join("zuul/zuul.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let doc = match load(&file) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for item in doc.as_array().into_iter().flatten() {
            if let Some(j) = item.get("job") {
                let name = j["name"].as_str().unwrap_or_default().to_string();
                let mut job = Job {
                    parent: j.get("parent").and_then(Value::as_str).map(String::from),
                    abstract_: j.get("abstract").and_then(Value::as_bool).unwrap_or(false),
                    description: j.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
                    vars: j.get("vars").and_then(Value::as_object).cloned().unwrap_or_default(),
                    nodeset: j.get("nodeset").and_then(Value::as_str).map(String::from),
                    playbooks: BTreeMap::new(),
                };
                for k in PLAYBOOK_KEYS {
                    if let Some(v) = j.get(k) {
                        job.playbooks.insert(k, playbook_list(v));
                    }
                }
                if jobs.insert(name.clone(), job).is_some() {
                    problems.push(format!("{}: job {name} is defined twice", file.display()));
                }
            } else if let Some(p) = item.get("project").and_then(Value::as_object) {
                for (pipeline, v) in p {
                    let Some(list) = v.get("jobs").and_then(Value::as_array) else {
                        continue;
                    };
                    for j in list {
                        // A job is a name, or a one-key map of name to project-pipeline variant.
                        let name = j
                            .as_str()
                            .map(String::from)
                            .or_else(|| j.as_object().and_then(|m| m.keys().next().cloned()));
                        if let Some(name) = name {
                            project_jobs.push((pipeline.clone(), name));
                        }
                    }
                }
            }
        }
    }
    Config {
        root: root.to_path_buf(),
        jobs,
        project_jobs,
    }
}

fn external(name: &str) -> Option<&'static [&'static str]> {
    EXTERNAL_JOBS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

impl Config {
    /// The job and its ancestors defined here, child first, and the external job the chain
    /// ends at (None if it dangles or loops; that is reported by `check_jobs`).
    fn chain<'a>(&'a self, name: &'a str) -> (Vec<(&'a str, &'a Job)>, Option<&'a str>) {
        let mut out: Vec<(&str, &Job)> = Vec::new();
        let mut cur = name;
        loop {
            if out.iter().any(|(n, _)| *n == cur) {
                return (out, None);
            }
            match self.jobs.get(cur) {
                Some(j) => {
                    out.push((cur, j));
                    // Without a parent a job inherits from the tenant's default base job.
                    cur = j.parent.as_deref().unwrap_or("base");
                }
                None => return (out, external(cur).map(|_| cur)),
            }
        }
    }

    fn check_jobs(&self, problems: &mut Vec<String>) {
        for (name, job) in &self.jobs {
            let (chain, end) = self.chain(name);
            if end.is_none() {
                let last = chain.last().map(|(_, j)| j.parent.as_deref().unwrap_or("base")).unwrap_or(name);
                problems.push(format!(
                    "job {name}: parent chain {} does not end at a job defined in zuul/zuul.d or one of {:?} (at `{last}`)",
                    chain.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" → "),
                    EXTERNAL_JOBS.iter().map(|(n, _)| *n).collect::<Vec<_>>()
                ));
            }
            for (kind, books) in &job.playbooks {
                for b in books {
                    if !self.root.join(b).is_file() {
                        problems.push(format!("job {name}: {kind} playbook {b} does not exist"));
                    }
                }
            }
            if let Some(n) = &job.nodeset
                && !EXTERNAL_NODESETS.contains(&n.as_str())
            {
                problems.push(format!("job {name}: nodeset {n} is not one of {EXTERNAL_NODESETS:?}"));
            }
            if !job.abstract_ && self.effective_playbooks(name).get("run").is_none_or(|r| r.is_empty()) {
                problems.push(format!("job {name}: no run playbook (its own or inherited)"));
            }
            for var in job.vars.keys() {
                let directive = format!(".. zuul:jobvar:: {var}\n");
                if !self.jobs.values().any(|j| j.description.contains(&directive)) {
                    problems.push(format!(
                        "job {name}: variable {var} is not documented (`{}` in a job description)",
                        directive.trim_end()
                    ));
                }
            }
        }
        for (pipeline, job) in &self.project_jobs {
            if !EXTERNAL_PIPELINES.contains(&pipeline.as_str()) {
                problems.push(format!(
                    "project: pipeline {pipeline} is not one of the tenant's {EXTERNAL_PIPELINES:?}"
                ));
            }
            match self.jobs.get(job) {
                Some(j) if j.abstract_ => problems.push(format!("project: {pipeline} runs abstract job {job}")),
                Some(_) => {}
                None if external(job).is_some() => {}
                None => problems.push(format!("project: {pipeline} runs job {job}, which is not defined")),
            }
        }
    }

    /// Zuul's inheritance: pre-run parent first, post-run and cleanup-run child first, run from
    /// the nearest job that sets it. Only this repository's playbooks are listed.
    fn effective_playbooks(&self, name: &str) -> BTreeMap<&'static str, Vec<String>> {
        let (chain, _) = self.chain(name);
        let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (_, j) in chain.iter().rev() {
            if let Some(p) = j.playbooks.get("pre-run") {
                out.entry("pre-run").or_default().extend(p.iter().cloned());
            }
            if let Some(p) = j.playbooks.get("run") {
                out.insert("run", p.clone());
            }
        }
        for (_, j) in &chain {
            for k in ["post-run", "cleanup-run"] {
                if let Some(p) = j.playbooks.get(k) {
                    out.entry(k).or_default().extend(p.iter().cloned());
                }
            }
        }
        out
    }

    /// Variables a job's playbooks see from Zuul: its chain's vars and what the external parent
    /// provides.
    fn job_vars(&self, name: &str) -> (BTreeSet<String>, Vec<(String, Value)>) {
        let (chain, end) = self.chain(name);
        let mut names: BTreeSet<String> = end.and_then(external).unwrap_or(&[]).iter().map(|s| s.to_string()).collect();
        let mut values = Vec::new();
        for (_, j) in chain {
            for (k, v) in &j.vars {
                names.insert(k.clone());
                values.push((k.clone(), v.clone()));
            }
        }
        (names, values)
    }
}

/// What a walk over playbooks, roles and tasks files found.
#[derive(Default)]
struct Walk {
    defined: BTreeSet<String>,
    /// (variable, where) for every variable an expression needs.
    used: Vec<(String, String)>,
    visited: BTreeSet<PathBuf>,
}

const EXPRESSION_KEYS: &[&str] = &["when", "failed_when", "changed_when", "until", "that"];
const ROLE_MODULES: &[&str] = &["include_role", "import_role"];
const TASKS_MODULES: &[&str] = &["include_tasks", "import_tasks"];

fn module<'a>(task: &'a serde_json::Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    task.iter().find_map(|(k, v)| {
        let short = k.rsplit('.').next().unwrap_or(k);
        (names.contains(&short) && (k == short || k.starts_with("ansible.builtin.") || k.starts_with("ansible.legacy."))).then_some(v)
    })
}

impl Walk {
    fn scan(&mut self, v: &Value, key: Option<&str>, at: &str) {
        match v {
            Value::String(s) => {
                let bare = key.is_some_and(|k| EXPRESSION_KEYS.contains(&k)) && !s.contains("{{");
                let found = if bare { jinja_vars(s) } else { template_vars(s) };
                self.used.extend(found.into_iter().map(|n| (n, at.to_string())));
            }
            Value::Array(a) => a.iter().for_each(|x| self.scan(x, key, at)),
            Value::Object(m) => m.iter().for_each(|(k, x)| self.scan(x, Some(k), at)),
            _ => {}
        }
    }

    fn playbook(&mut self, path: &Path, problems: &mut Vec<String>) {
        if !self.visited.insert(path.to_path_buf()) {
            return;
        }
        let doc = match load(path) {
            Ok(d) => d,
            Err(e) => return problems.push(e),
        };
        let roles_dir = path.parent().unwrap().join("roles");
        for play in doc.as_array().into_iter().flatten() {
            let Some(play) = play.as_object() else { continue };
            if let Some(vars) = play.get("vars").and_then(Value::as_object) {
                self.defined.extend(vars.keys().cloned());
            }
            for r in play.get("roles").and_then(Value::as_array).into_iter().flatten() {
                let name = r
                    .as_str()
                    .or_else(|| r.get("role").or_else(|| r.get("name")).and_then(Value::as_str));
                if let Some(name) = name {
                    self.role(&roles_dir, name, "main", path, problems);
                }
                if let Some(vars) = r.get("vars").and_then(Value::as_object) {
                    self.defined.extend(vars.keys().cloned());
                }
            }
            for (k, v) in play {
                match k.as_str() {
                    "tasks" | "pre_tasks" | "post_tasks" | "handlers" => self.tasks(v, &roles_dir, path.parent().unwrap(), path, problems),
                    "roles" => {}
                    _ => self.scan(v, Some(k), &path.display().to_string()),
                }
            }
        }
    }

    fn role(&mut self, roles_dir: &Path, name: &str, from: &str, by: &Path, problems: &mut Vec<String>) {
        let dir = roles_dir.join(name);
        if !dir.is_dir() {
            if !EXTERNAL_ROLES.contains(&name) {
                problems.push(format!(
                    "{}: role {name} is neither in {} nor one of the zuul-jobs roles {EXTERNAL_ROLES:?}",
                    by.display(),
                    roles_dir.display()
                ));
            }
            return;
        }
        for vars in ["defaults/main.yaml", "vars/main.yaml"] {
            let p = dir.join(vars);
            if p.is_file() && self.visited.insert(p.clone()) {
                match load(&p) {
                    Ok(Value::Object(m)) => {
                        self.defined.extend(m.keys().cloned());
                        self.scan(&Value::Object(m), None, &p.display().to_string());
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(e),
                }
            }
        }
        let tasks = dir.join("tasks").join(format!("{from}.yaml"));
        if !tasks.is_file() {
            problems.push(format!("{}: role {name} has no tasks file {}", by.display(), tasks.display()));
            return;
        }
        self.tasks_file(&tasks, roles_dir, problems);
    }

    fn tasks_file(&mut self, path: &Path, roles_dir: &Path, problems: &mut Vec<String>) {
        if !self.visited.insert(path.to_path_buf()) {
            return;
        }
        match load(path) {
            Ok(doc) => self.tasks(&doc, roles_dir, path.parent().unwrap(), path, problems),
            Err(e) => problems.push(e),
        }
    }

    fn tasks(&mut self, list: &Value, roles_dir: &Path, here: &Path, file: &Path, problems: &mut Vec<String>) {
        for task in list.as_array().into_iter().flatten() {
            let Some(t) = task.as_object() else { continue };
            let at = format!(
                "{} ({})",
                file.display(),
                t.get("name").and_then(Value::as_str).unwrap_or("unnamed task")
            );
            for k in ["block", "rescue", "always"] {
                if let Some(b) = t.get(k) {
                    self.tasks(b, roles_dir, here, file, problems);
                }
            }
            if let Some(vars) = t.get("vars").and_then(Value::as_object) {
                self.defined.extend(vars.keys().cloned());
            }
            if let Some(r) = t.get("register").and_then(Value::as_str) {
                self.defined.insert(r.to_string());
            }
            if let Some(v) = t.get("loop_control").and_then(|l| l.get("loop_var")).and_then(Value::as_str) {
                self.defined.insert(v.to_string());
            }
            if let Some(Value::Object(m)) = module(t, &["set_fact"]) {
                self.defined.extend(m.keys().filter(|k| *k != "cacheable").cloned());
            }
            if let Some(args) = module(t, ROLE_MODULES)
                && let Some(name) = args.get("name").and_then(Value::as_str)
            {
                let from = args.get("tasks_from").and_then(Value::as_str).unwrap_or("main");
                self.role(roles_dir, name, from, file, problems);
            }
            if let Some(args) = module(t, TASKS_MODULES) {
                let f = args.as_str().or_else(|| args.get("file").and_then(Value::as_str));
                if let Some(f) = f {
                    let p = here.join(f);
                    if p.is_file() {
                        self.tasks_file(&p, roles_dir, problems);
                    } else {
                        problems.push(format!("{at}: tasks file {} does not exist", p.display()));
                    }
                }
            }
            let before = self.used.len();
            for (k, v) in t {
                if !matches!(k.as_str(), "block" | "rescue" | "always") {
                    self.scan(v, Some(k), &at);
                }
            }
            // `when: x is defined` makes the whole task safe to use x (a secret, say).
            let guards = defined_guards(t.get("when"));
            let mut i = before;
            while i < self.used.len() {
                if guards.contains(&self.used[i].0) {
                    self.used.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }
}

fn check_vars(cfg: &Config, problems: &mut Vec<String>) {
    for (name, job) in &cfg.jobs {
        if job.abstract_ {
            continue;
        }
        let mut walk = Walk::default();
        for books in cfg.effective_playbooks(name).values() {
            for b in books {
                let p = cfg.root.join(b);
                if p.is_file() {
                    walk.playbook(&p, problems);
                }
            }
        }
        let (job_vars, values) = cfg.job_vars(name);
        for (k, v) in values {
            walk.scan(&v, None, &format!("job {name} var {k}"));
        }
        let mut missing = BTreeSet::new();
        for (var, at) in &walk.used {
            let known =
                walk.defined.contains(var) || job_vars.contains(var) || BUILTIN_VARS.contains(&var.as_str()) || var.starts_with("ansible_");
            if !known && missing.insert((var.clone(), at.clone())) {
                problems.push(format!(
                    "job {name}: {at} uses `{var}`, defined by no job var, role default, playbook, or Zuul/Ansible built-in"
                ));
            }
        }
    }
}

/// Every problem in the Zuul configuration under `root`.
fn problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let cfg = load_config(root, &mut problems);
    cfg.check_jobs(&mut problems);
    check_vars(&cfg, &mut problems);
    problems
}

/// The variables a `when:` (one condition or a list, all of which must hold) requires to be
/// defined: `x is defined`, not inside an `or`.
fn defined_guards(when: Option<&Value>) -> BTreeSet<String> {
    let conds: Vec<&str> = match when {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let mut out = BTreeSet::new();
    for c in conds.into_iter().filter(|c| !c.contains(" or ")) {
        for part in c.split(" and ") {
            if let [name, "is", "defined"] = part.split_whitespace().collect::<Vec<_>>().as_slice() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The variables in each `{{ ... }}` of a template.
fn template_vars(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.extend(jinja_vars(&after[..end]));
        rest = &after[end + 2..];
    }
    out
}

/// The root variables a Jinja expression needs: not attributes, filters, tests, keyword
/// arguments or literals, and not those guarded by `| default(...)` or `is defined`.
fn jinja_vars(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let word_at = |i: usize| {
        let mut j = i;
        while j < b.len() && ident(b[j]) {
            j += 1;
        }
        &expr[i..j]
    };
    let mut out = Vec::new();
    // The last significant token: a char, or a word.
    let mut prev = String::new();
    let mut prev2 = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' || c == b'"' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            prev2 = std::mem::replace(&mut prev, "'".into());
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            if c.is_ascii_digit() {
                while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                    i += 1;
                }
                prev2 = std::mem::replace(&mut prev, "0".into());
                continue;
            }
            prev2 = std::mem::replace(&mut prev, (c as char).to_string());
            i += 1;
            continue;
        }
        let word = word_at(i);
        let mut j = i + word.len();
        let is_test = prev == "is" || (prev == "not" && prev2 == "is");
        let skip = prev == "." || prev == "|" || is_test || JINJA_WORDS.contains(&word);
        let next = skip_ws(j);
        let kwarg = next < b.len() && b[next] == b'=' && b.get(next + 1) != Some(&b'=');
        if !skip && !kwarg {
            // Walk the attribute and subscript chain to see what guards it.
            let mut k = j;
            loop {
                let n = skip_ws(k);
                if n < b.len() && b[n] == b'.' {
                    k = n + 1 + word_at(skip_ws(n + 1)).len();
                } else if n < b.len() && b[n] == b'[' {
                    let mut depth = 0;
                    let mut m = n;
                    while m < b.len() {
                        depth += match b[m] {
                            b'[' => 1,
                            b']' => -1,
                            _ => 0,
                        };
                        m += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    k = m;
                } else {
                    k = n;
                    break;
                }
            }
            let tail = &expr[k.min(expr.len())..];
            let guarded = {
                let t = tail.trim_start();
                let filter = t.strip_prefix('|').map(str::trim_start).is_some_and(|f| {
                    let w = f.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
                    w == "default" || w == "d"
                });
                let words: Vec<&str> = t.split_whitespace().take(3).collect();
                let defined = matches!(words.as_slice(), ["is", "defined" | "undefined", ..] | ["is", "not", "defined", ..]);
                filter || defined
            };
            if !guarded {
                out.push(word.to_string());
            }
        }
        j = j.max(i + 1);
        prev2 = std::mem::replace(&mut prev, word.to_string());
        i = j;
    }
    out
}

#[test]
fn the_zuul_configuration_has_no_dangling_reference() {
    let p = problems(&repo());
    assert!(p.is_empty(), "zuul/ has {} problem(s):\n{}", p.len(), p.join("\n"));
}

#[test]
fn the_configuration_defines_what_the_issue_asks_for() {
    let mut p = Vec::new();
    let cfg = load_config(&repo(), &mut p);
    assert!(p.is_empty(), "{p:?}");
    assert!(cfg.jobs["scs-e2e-base"].abstract_);
    for job in ["scs-e2e-openstack-quick", "scs-e2e-openstack-nightly"] {
        let (chain, end) = cfg.chain(job);
        assert_eq!(
            end,
            Some("openstack-access-base"),
            "{job}: {:?}",
            chain.iter().map(|c| c.0).collect::<Vec<_>>()
        );
        let books = cfg.effective_playbooks(job);
        assert_eq!(books["cleanup-run"], ["zuul/playbooks/cleanup.yaml"], "{job}");
        let (_, vars) = cfg.job_vars(job);
        assert!(
            vars.iter().any(|(k, v)| k == "scs_e2e_cleanup" && v == &Value::Bool(true)),
            "{job} cleans the cloud"
        );
    }
    // The cleanup reads the file every run writes before it starts.
    let tasks = std::fs::read_to_string(repo().join("zuul/playbooks/roles/scs_e2e/tasks/cleanup.yaml")).unwrap();
    assert!(
        tasks.contains(&format!("{{{{ scs_e2e_artifacts }}}}/{}", scs_e2e::report::CLUSTER_PLAN_FILE))
            && tasks.contains("cleanup, --from, \"{{ scs_e2e_artifacts }}\""),
        "{tasks}"
    );
    let runs = |pipeline: &str, job: &str| cfg.project_jobs.iter().any(|(p, j)| p == pipeline && j == job);
    assert!(runs("e2e-quick-test", "scs-e2e-openstack-quick"));
    assert!(runs("periodic-daily", "scs-e2e-openstack-nightly"));
    assert!(runs("check", "scs-e2e-kind"));
    assert_eq!(cfg.jobs["scs-e2e-compliance"].vars["scs_e2e_command"], "check");
}

#[test]
fn ansible_lint_mocks_exactly_the_external_roles() {
    let cfg = load(&repo().join(".ansible-lint")).unwrap();
    let mocked: BTreeSet<&str> = cfg["mock_roles"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(mocked, EXTERNAL_ROLES.iter().copied().collect::<BTreeSet<_>>());
}

#[test]
fn jinja_variables_are_found_and_guards_respected() {
    let v = |s: &str| jinja_vars(s);
    assert_eq!(v("a.b | default(c) ~ d['x'].e"), ["c", "d"]);
    assert_eq!(v("x is defined and y is not defined or z"), ["z"]);
    assert_eq!(v("item.stat.exists"), ["item"]);
    assert_eq!(v("['--shard', s] if s else []"), ["s", "s"]);
    assert_eq!(v("l | map('regex_replace', '^', '--x=') | list"), ["l"]);
    assert_eq!(v("f(a, key=b) | string | length > 0"), ["f", "a", "b"]);
    assert_eq!(v("x is not none and 'y' in z"), ["x", "z"]);
    assert_eq!(template_vars("a {{ b }} c {{ d.e }}"), ["b", "d"]);
}

/// A copy of `zuul/` to break in a test.
fn copy_of_the_configuration() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &t);
            } else {
                std::fs::copy(e.path(), t).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&repo().join("zuul"), &dir.path().join("zuul"));
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn each_kind_of_dangling_reference_is_reported() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "zuul.d/jobs.yaml",
            "parent: openstack-access-base",
            "parent: openstack-access-bse",
            "does not end at a job",
        ),
        (
            "zuul.d/jobs.yaml",
            "run: zuul/playbooks/run.yaml",
            "run: zuul/playbooks/rn.yaml",
            "run playbook zuul/playbooks/rn.yaml does not exist",
        ),
        (
            "zuul.d/project.yaml",
            "- scs-e2e-openstack-quick",
            "- scs-e2e-openstack-quik",
            "runs job scs-e2e-openstack-quik, which is not defined",
        ),
        (
            "playbooks/roles/scs_e2e/tasks/main.yaml",
            "name: ensure-rust",
            "name: ensure-rustup",
            "role ensure-rustup is neither",
        ),
        ("playbooks/run.yaml", "tasks_from: run", "tasks_from: runn", "has no tasks file"),
        (
            "playbooks/roles/scs_e2e/tasks/run.yaml",
            "'--delete', scs_e2e_delete",
            "'--delete', scs_e2e_delet",
            "uses `scs_e2e_delet`",
        ),
        (
            "playbooks/roles/scs_e2e/tasks/cleanup.yaml",
            "\"{{ scs_e2e_os_cloud }}\"",
            "\"{{ cloud }}\"",
            "uses `cloud`",
        ),
        (
            "zuul.d/jobs.yaml",
            "      scs_e2e_parallel: 2\n",
            "      scs_e2e_paralel: 2\n",
            "variable scs_e2e_paralel is not documented",
        ),
    ];
    for (file, from, to, want) in cases {
        let dir = copy_of_the_configuration();
        edit(&dir.path().join("zuul").join(file), from, to);
        let p = problems(dir.path());
        assert!(
            p.iter().any(|x| x.contains(want)),
            "{file}: `{from}` → `{to}` should report `{want}`, got {p:#?}"
        );
    }
}

/// `scs-e2e run --env ENV --suite S... --dry-run` from the repository, with a clouds.yaml like
/// the one openstack-access-base writes (nothing is contacted in a dry run) and nothing of the
/// user's: exit code and stderr.
fn dry_run(env: &str, suites: &[String]) -> (Option<i32>, String) {
    dry_run_args(env, suites, &[])
}

/// [`dry_run`] with more of the job's arguments (`--delete`, `--focus`, `--skip`, extra args).
fn dry_run_args(env: &str, suites: &[String], more: &[String]) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let clouds = tmp.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        "clouds:\n  ci:\n    auth: {auth_url: 'https://keystone.example/v3', username: u, password: p, project_name: e2e, user_domain_name: Default, project_domain_name: Default}\n    region_name: RegionOne\n",
    )
    .unwrap();
    let mut c = std::process::Command::new(crate::common::bin());
    c.args(["run", "--env", env, "--dry-run"])
        .current_dir(repo())
        .env("HOME", tmp.path())
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .env("OS_CLOUD", "ci")
        .env_remove("KUBECONFIG")
        .env_remove("SCS_E2E_ENV")
        .env_remove("SCS_E2E_SUITE");
    for s in suites {
        c.args(["--suite", s]);
    }
    c.args(more);
    let out = c.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every job a pipeline runs, and the GitHub kind workflow's default suites, pass a dry run of
/// their own command line: the suites exist, their variables are defined and their stacks can
/// run in the job's environment (an in-memory stack cannot run on CAPO).
#[test]
fn every_ci_job_dry_runs_its_own_command_line() {
    let mut p = Vec::new();
    let cfg = load_config(&repo(), &mut p);
    assert!(p.is_empty(), "{p:?}");
    let defaults = load(&repo().join("zuul/playbooks/roles/scs_e2e/defaults/main.yaml")).unwrap();
    let passes = |what: &str, env: &str, suites: &[String], more: &[String]| {
        let (code, err) = dry_run_args(env, suites, more);
        assert_eq!(
            code,
            Some(0),
            "{what}: `scs-e2e run --env {env} --suite {} {} --dry-run` fails:\n{err}",
            suites.join(" --suite "),
            more.join(" ")
        );
    };
    let mut checked = 0;
    for (_, job) in cfg.project_jobs.iter().filter(|(_, j)| j != "noop") {
        let (_, vars) = cfg.job_vars(job);
        // The job's own value wins over its parents', the role's default over nothing.
        let var = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| defaults[k].clone())
        };
        if var("scs_e2e_command") != "run" {
            continue;
        }
        let env = var("scs_e2e_env").as_str().unwrap().to_string();
        let suites: Vec<String> = var("scs_e2e_suites")
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        // As the role's run task builds the command line (zuul/playbooks/roles/scs_e2e/tasks/run.yaml).
        let mut more: Vec<String> = vec!["--delete".into(), var("scs_e2e_delete").as_str().unwrap().into()];
        for (flag, key) in [
            ("--focus", "scs_e2e_focus"),
            ("--skip", "scs_e2e_skip"),
            ("--shard", "scs_e2e_shard"),
        ] {
            if let Some(v) = var(key).as_str().filter(|v| !v.is_empty()) {
                more.extend([flag.to_string(), v.to_string()]);
            }
        }
        more.extend(
            var("scs_e2e_extra_args")
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
        passes(job, &env, &suites, &more);
        checked += 1;
    }
    assert!(checked >= 3, "the kind and OpenStack jobs were checked ({checked})");
    // .github/workflows/e2e-kind.yml: `SUITES: ${{ inputs.suites || '<defaults>' }}`.
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/e2e-kind.yml")).unwrap();
    let defaults = workflow
        .lines()
        .find_map(|l| l.trim().strip_prefix("SUITES: ${{ inputs.suites || '"))
        .and_then(|rest| rest.split('\'').next())
        .expect("the workflow's default suites");
    let suites: Vec<String> = defaults.split_whitespace().map(String::from).collect();
    passes("e2e-kind.yml", "kind", &suites, &[]);
}

/// The dry run that guards the CI jobs refuses what cannot run: the quickstart's in-memory
/// stack on `--env openstack`, naming the step and where it can run.
#[test]
fn a_stack_the_environment_cannot_run_is_refused_before_anything_is_touched() {
    let (code, err) = dry_run("openstack", &["quickstart".to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("provider `inmemory` (quickstart.cluster-stack-lifecycle, step 1)") && err.contains("--env lab or --env kind"),
        "{err}"
    );
}

/// The dry run also refuses a stack source that is not there or lacks a version the suite
/// installs, naming the scenario, step and file, so a CI job fails in seconds, not at step N.
#[test]
fn a_stack_source_without_the_version_is_refused_by_the_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("src.yaml");
    std::fs::write(
        &suite,
        r#"apiVersion: scs-e2e/v1alpha1
kind: Suite
name: src
scenarios:
  - name: a
    steps:
      - installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v2, v9], source: "builtin:inmemory/scs"}
      - installClusterStack: {provider: openstack, name: scs, kubernetesVersion: "1.32", versions: [v1], source: "../no-such-stack"}
"#,
    )
    .unwrap();
    let (code, err) = dry_run("lab", &[suite.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("src.a, step 1") && err.contains("no release of inmemory/scs 1.33 v9") && err.contains("inmemory/scs 1.33 v2"),
        "{err}"
    );
    assert!(
        err.contains("src.a, step 2") && err.contains("no-such-stack: no such directory"),
        "{err}"
    );
    // The suites' own sources are all there.
    let (code, err) = dry_run("openstack", &["openstack".to_string()]);
    assert_eq!(code, Some(0), "{err}");
}
