//! Our own in-memory cluster stack, compiled into scs-e2e (`source: builtin:inmemory/scs`), so
//! the embedded quickstart suite runs from an installed binary without a checkout. Its source of
//! truth is `fixtures/cluster-stacks/inmemory/scs/`.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Prefix of a built-in stack source in `source:`, as in `builtin:inmemory/scs`.
pub const PREFIX: &str = "builtin:";

static INMEMORY_SCS: &[(&str, &str)] = &[
    (
        "1-33/cluster-addon-values.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-addon-values.yaml"),
    ),
    (
        "1-33/cluster-addon/Chart.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-addon/Chart.yaml"),
    ),
    (
        "1-33/cluster-addon/templates/info-configmap.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-addon/templates/info-configmap.yaml"),
    ),
    (
        "1-33/cluster-addon/values.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-addon/values.yaml"),
    ),
    (
        "1-33/cluster-class/Chart.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/Chart.yaml"),
    ),
    (
        "1-33/cluster-class/templates/_helpers.tpl",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/templates/_helpers.tpl"),
    ),
    (
        "1-33/cluster-class/templates/cluster-class.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/templates/cluster-class.yaml"),
    ),
    (
        "1-33/cluster-class/templates/dev-cluster-template.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/templates/dev-cluster-template.yaml"),
    ),
    (
        "1-33/cluster-class/templates/dev-machine-templates.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/templates/dev-machine-templates.yaml"),
    ),
    (
        "1-33/cluster-class/templates/kubeadm-config-template-worker.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/templates/kubeadm-config-template-worker.yaml"),
    ),
    (
        "1-33/cluster-class/templates/kubeadm-control-plane-template.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/templates/kubeadm-control-plane-template.yaml"),
    ),
    (
        "1-33/cluster-class/values.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/cluster-class/values.yaml"),
    ),
    (
        "1-33/csctl.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-33/csctl.yaml"),
    ),
    (
        "1-34/cluster-addon-values.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-addon-values.yaml"),
    ),
    (
        "1-34/cluster-addon/Chart.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-addon/Chart.yaml"),
    ),
    (
        "1-34/cluster-addon/templates/info-configmap.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-addon/templates/info-configmap.yaml"),
    ),
    (
        "1-34/cluster-addon/values.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-addon/values.yaml"),
    ),
    (
        "1-34/cluster-class/Chart.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/Chart.yaml"),
    ),
    (
        "1-34/cluster-class/templates/_helpers.tpl",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/templates/_helpers.tpl"),
    ),
    (
        "1-34/cluster-class/templates/cluster-class.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/templates/cluster-class.yaml"),
    ),
    (
        "1-34/cluster-class/templates/dev-cluster-template.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/templates/dev-cluster-template.yaml"),
    ),
    (
        "1-34/cluster-class/templates/dev-machine-templates.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/templates/dev-machine-templates.yaml"),
    ),
    (
        "1-34/cluster-class/templates/kubeadm-config-template-worker.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/templates/kubeadm-config-template-worker.yaml"),
    ),
    (
        "1-34/cluster-class/templates/kubeadm-control-plane-template.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/templates/kubeadm-control-plane-template.yaml"),
    ),
    (
        "1-34/cluster-class/values.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/cluster-class/values.yaml"),
    ),
    (
        "1-34/csctl.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/1-34/csctl.yaml"),
    ),
    (
        "stack.yaml",
        include_str!("../../../fixtures/cluster-stacks/inmemory/scs/stack.yaml"),
    ),
];

/// The built-in stacks by name.
pub fn files(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match name {
        "inmemory/scs" => Some(INMEMORY_SCS),
        _ => None,
    }
}

/// Writes a built-in stack into the cache (once per content) and returns its directory.
pub fn materialize(name: &str) -> anyhow::Result<PathBuf> {
    let files =
        files(name).ok_or_else(|| anyhow::anyhow!("no built-in cluster stack `{name}`: the built-in one is `builtin:inmemory/scs`"))?;
    let mut h = Sha256::new();
    for (p, text) in files {
        h.update(p);
        h.update(text);
    }
    let hash = format!("{:x}", h.finalize());
    let dir = crate::base::cache_root()
        .join("cluster-stacks")
        .join(format!("{}-{}", name.replace('/', "-"), &hash[..10]));
    if !dir.join(super::source::WRAPPER_FILE).is_file() {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        for (p, text) in files {
            let f = tmp.join(p);
            std::fs::create_dir_all(f.parent().expect("files live in a directory"))?;
            std::fs::write(&f, text)?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to the fixture must be added here too, or the built-in copy differs.
    #[test]
    fn the_embedded_copy_lists_every_fixture_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster-stacks/inmemory/scs");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    on_disk.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = INMEMORY_SCS.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }
}
